"""Definitions load from the declarations, and bad declarations fail at load naming the culprit."""

import dagster as dg
import pytest

from jobs.registry import DeclarationError
from platform_assets.definitions import build_definitions, defs
from resources.databricks_runner import DatabricksRunner


def test_code_location_loads_every_table_keyed_by_catalog_schema_table():
    dg.Definitions.validate_loadable(defs)

    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    assert set(specs) == {
        dg.AssetKey(["main", "bronze", "orders"]),
        dg.AssetKey(["main", "bronze", "lineitem"]),
        dg.AssetKey(["main", "bronze", "customers"]),
        dg.AssetKey(["main", "silver", "order_lines"]),
        dg.AssetKey(["main", "gold", "daily_nation_revenue"]),
        # What the tables read but do not write: an external Delta table, landing file sets.
        dg.AssetKey(["main", "ingest", "nation"]),
        dg.AssetKey(["landing", "orders"]),
        dg.AssetKey(["landing", "lineitem"]),
        dg.AssetKey(["landing", "customer"]),
    }
    silver = specs[dg.AssetKey(["main", "silver", "order_lines"])]
    assert silver.group_name == "silver"
    assert {dep.asset_key.path[-1] for dep in silver.deps} == {"orders", "lineitem", "customers"}


def test_catalog_setting_changes_every_key(monkeypatch):
    monkeypatch.setenv("PLATFORM_CATALOG", "dev")
    keys = {spec.key for spec in build_definitions().resolve_all_asset_specs()}
    assert {key.path[0] for key in keys} == {"dev", "landing"}


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


def use_databricks_settings(monkeypatch, tmp_path, text: str) -> None:
    """Select the Databricks target with `text` as its settings file."""
    settings = tmp_path / "databricks.yaml"
    settings.write_text(text)
    monkeypatch.setenv("PLATFORM_TARGET", "databricks")
    monkeypatch.setenv("PLATFORM_DATABRICKS_CONFIG", str(settings))


def test_databricks_target_reads_its_settings_file_and_keeps_the_token_a_reference(monkeypatch, tmp_path):
    use_databricks_settings(
        monkeypatch, tmp_path,
        "compute:\n  num_workers: 2\n"
        "compute_by_table:\n  silver.order_lines:\n    autoscale_min_workers: 2\n    autoscale_max_workers: 8\n",
    )
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-do-not-store")

    defs = build_definitions()

    dg.Definitions.validate_loadable(defs)
    runner = defs.resources["runner"]
    assert isinstance(runner, DatabricksRunner)
    assert "dapi-do-not-store" not in repr(runner)
    assert runner.compute.task_fields()["new_cluster"]["num_workers"] == 2
    assert runner.compute_by_table["silver.order_lines"].task_fields()["new_cluster"]["autoscale"] == {
        "min_workers": 2, "max_workers": 8,
    }


def test_a_token_in_the_settings_file_is_refused(monkeypatch, tmp_path):
    use_databricks_settings(monkeypatch, tmp_path, "token: dapi-oops\n")

    with pytest.raises(ValueError, match=r"databricks\.yaml: 'token' comes from DATABRICKS_TOKEN"):
        build_definitions()


def test_compute_for_an_undeclared_table_is_named(monkeypatch, tmp_path):
    use_databricks_settings(monkeypatch, tmp_path, "compute_by_table:\n  silver.order_line:\n    num_workers: 4\n")

    with pytest.raises(ValueError, match=r"compute_by_table names undeclared table\(s\) \['silver\.order_line'\]"):
        build_definitions()


def test_an_unknown_target_is_named(monkeypatch):
    monkeypatch.setenv("PLATFORM_TARGET", "kubernetes")

    with pytest.raises(ValueError, match="PLATFORM_TARGET must be 'local' or 'databricks', not 'kubernetes'"):
        build_definitions()
