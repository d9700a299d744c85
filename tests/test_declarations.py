"""Definitions load from the declarations, and bad declarations fail at load naming the culprit."""

import dagster as dg
import pytest

from jobs.registry import DeclarationError
from platform_assets.definitions import build_definitions, defs


def test_code_location_loads_every_table_keyed_by_catalog_schema_table():
    dg.Definitions.validate_loadable(defs)

    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    assert set(specs) == {
        dg.AssetKey(["main", "bronze", "orders"]),
        dg.AssetKey(["main", "bronze", "lineitem"]),
        dg.AssetKey(["main", "bronze", "customers"]),
        dg.AssetKey(["main", "silver", "order_lines"]),
        dg.AssetKey(["main", "gold", "daily_nation_revenue"]),
    }
    silver = specs[dg.AssetKey(["main", "silver", "order_lines"])]
    assert silver.group_name == "silver"
    assert {dep.asset_key.path[-1] for dep in silver.deps} == {"orders", "lineitem", "customers"}


def test_catalog_setting_changes_every_key(monkeypatch):
    monkeypatch.setenv("PLATFORM_CATALOG", "dev")
    keys = {spec.key for spec in build_definitions().resolve_all_asset_specs()}
    assert {key.path[0] for key in keys} == {"dev"}


@pytest.mark.parametrize(
    ("package", "message"),
    [
        ("unknown_input", r"tests\.declarations\.unknown_input\.report: table gold\.report "
                          r"reads unknown table silver\.sales"),
        ("cycle", r"tables form a cycle: silver\.(first|second) -> .* \(declared in "
                  r"tests\.declarations\.cycle\.first, tests\.declarations\.cycle\.second\)"),
        ("duplicate", r"table bronze\.orders is declared twice: in "
                      r"tests\.declarations\.duplicate\.orders and in "
                      r"tests\.declarations\.duplicate\.orders_again"),
        ("wrong_params", r"tests\.declarations\.wrong_params\.orders: table bronze\.orders: "
                         r"transform takes \['raw'\] but the inputs are \['orders'\]"),
    ],
)
def test_bad_declarations_fail_the_definitions_load_naming_module_and_table(package, message):
    with pytest.raises(DeclarationError, match=message):
        build_definitions(tables_package=f"tests.declarations.{package}")
