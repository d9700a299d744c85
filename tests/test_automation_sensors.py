"""How the tables are split into automation sensors: every table in exactly one, none larger
than the setting, tables that read each other or the same input together."""

from __future__ import annotations

from jobs.table import LandingFiles, Table
from platform_assets.automation_sensors import sensor_groups


def table(name: str, *inputs: str | LandingFiles) -> Table:
    params = [f"input_{n}" for n in range(len(inputs))]
    return Table(name=name, inputs=dict(zip(params, inputs)), transform=lambda **frames: None)


def tables(*declared: Table) -> dict[str, Table]:
    return {t.name: t for t in declared}


def test_connected_tables_share_a_sensor_in_build_order_and_small_groups_fill_it():
    declared = tables(
        table("gold.report", "silver.sales"),
        table("silver.sales", "bronze.orders", "bronze.customers"),
        table("bronze.orders", LandingFiles("orders")),
        table("bronze.customers", LandingFiles("customers")),
        table("bronze.rates", LandingFiles("rates")),
    )

    [group] = sensor_groups(declared, "main", tables_per_sensor=10)

    assert group.name == "table_automation"
    assert group.tables == ("bronze.customers", "bronze.orders", "silver.sales", "gold.report", "bronze.rates")


def test_tables_reading_the_same_input_are_kept_together():
    declared = tables(
        table("a.one", LandingFiles("x")), table("b.two", LandingFiles("y")), table("c.three", LandingFiles("x")),
    )

    groups = sensor_groups(declared, "main", tables_per_sensor=2)

    assert [g.tables for g in groups] == [("a.one", "c.three"), ("b.two",)]
    assert [g.name for g in groups] == ["table_automation", "table_automation_2"]


def test_a_group_larger_than_a_sensor_is_cut_into_equal_parts_along_the_build_order():
    chain = [table("s.t00", LandingFiles("x"))] + [table(f"s.t{n:02d}", f"s.t{n - 1:02d}") for n in range(1, 10)]

    groups = sensor_groups(tables(*chain), "main", tables_per_sensor=4)

    assert [g.tables for g in groups] == [
        ("s.t00", "s.t01", "s.t02"), ("s.t03", "s.t04", "s.t05"), ("s.t06", "s.t07", "s.t08", "s.t09")]


def test_a_sensor_answers_for_its_tables_and_everything_they_read():
    declared = tables(
        table("bronze.orders", LandingFiles("orders")),
        table("silver.sales", "bronze.orders", "ingest.nation"),
        table("other.t", LandingFiles("z")),
    )

    first, second = sensor_groups(declared, "main", tables_per_sensor=2)

    keys = lambda ks: {k.to_user_string() for k in ks}  # noqa: E731
    assert keys(first.events.materialized) == {"main/bronze/orders", "main/silver/sales"}
    assert keys(first.events.observed) == {"landing/orders", "main/ingest/nation"}
    assert keys(second.events.observed) == {"landing/z"}

