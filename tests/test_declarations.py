"""Definitions load from the declarations, and bad declarations fail at load naming the culprit."""

import dagster as dg
import pytest

from jobs.registry import DeclarationError
from platform_assets.definitions import build_definitions, defs
from resources.databricks_runner import DatabricksRunner
from resources.paths import PROJECT_DIR
from scripts.scale_tables import declare_tables


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


def test_daily_tables_are_partitioned_by_day_and_checks_are_asset_checks():
    graph = defs.resolve_asset_graph()
    silver, gold = (dg.AssetKey(["main", *name.split(".")]) for name in ("silver.order_lines", "gold.daily_nation_revenue"))
    for key in (silver, gold):
        partitions = graph.get(key).partitions_def
        assert isinstance(partitions, dg.DailyPartitionsDefinition)
        assert (partitions.get_first_partition_key(), partitions.get_last_partition_key()) == ("1992-01-01", "1998-08-02")
    assert graph.get(dg.AssetKey(["main", "bronze", "orders"])).partitions_def is None

    checks = {key.to_user_string() for key in graph.asset_check_keys}
    assert "main/bronze/orders:unique_o_orderkey" in checks
    blocking = {key.name for key in graph.asset_check_keys if graph.get(key).blocking and key.asset_key == silver}
    assert blocking == {"unique_order_key_line_number", "not_null_order_date_net_revenue"}


def test_each_tables_condition_is_one_described_node_in_the_definitions_snapshot():
    # The snapshot sent to the daemon and the webserver holds a condition's declared children:
    # ours declares none, so a table costs one node there, not its 50 parts.
    graph = defs.resolve_asset_graph()
    silver = graph.get(dg.AssetKey(["main", "silver", "order_lines"])).automation_condition

    assert silver.name == "WhenAnyInputUpdates"
    assert silver.description.startswith("any input has a new version since the table was last requested")
    assert silver.children == []


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
        ("partitioned_merge", r"table silver\.sales: a partitioned table is written with Overwrite"),
        ("quarantine_clash", r"table bronze\.orders: quarantine table bronze\.orders must be a new"),
    ],
)
def test_bad_declarations_fail_the_definitions_load_naming_module_and_table(package, message):
    with pytest.raises(DeclarationError, match=message):
        build_definitions(tables_package=f"tests.declarations.{package}")


REQUIRED_DATABRICKS_SETTINGS = """\
deployment: dev
landing_dir: /Volumes/main/landing/tpch
artifacts_dir: /Volumes/main/platform/artifacts
pipes_volume: /Volumes/main/platform/pipes
"""


def use_databricks_settings(monkeypatch, tmp_path, text: str, required: str = REQUIRED_DATABRICKS_SETTINGS) -> None:
    """Select the Databricks target with `text` (after the required settings) as its settings file."""
    settings = tmp_path / "databricks.yaml"
    settings.write_text(required + text)
    monkeypatch.setenv("PLATFORM_CATALOG", "main")
    monkeypatch.setenv("PLATFORM_TARGET", "databricks")
    monkeypatch.setenv("PLATFORM_DATABRICKS_CONFIG", str(settings))


def test_databricks_target_reads_its_settings_file_and_keeps_the_token_a_reference(monkeypatch, tmp_path):
    use_databricks_settings(
        monkeypatch, tmp_path,
        "compute:\n  node_type_id: i3.xlarge\n  num_workers: 2\n"
        "compute_by_table:\n  silver.order_lines:\n    node_type_id: i3.2xlarge\n"
        "    autoscale_min_workers: 2\n    autoscale_max_workers: 8\n",
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
    assert runner.job_name == "platform_assets.definitions [dev]"
    sensors = {sensor.name for sensor in defs.sensors}  # nothing left billing after its run ends
    assert {"cancel_leftovers_of_failed_runs", "cancel_leftovers_of_cancelled_runs"} <= sensors


def test_unity_catalog_tables_need_their_catalog_named(monkeypatch, tmp_path):
    use_databricks_settings(monkeypatch, tmp_path, "compute:\n  serverless: true\n")
    monkeypatch.delenv("PLATFORM_CATALOG")

    with pytest.raises(ValueError, match="set PLATFORM_CATALOG to the Unity Catalog catalog of the tables"):
        build_definitions()


def test_the_example_settings_file_loads(monkeypatch, tmp_path):
    use_databricks_settings(monkeypatch, tmp_path, (PROJECT_DIR / "databricks.example.yaml").read_text(), required="")

    runner = build_definitions().resources["runner"]

    assert runner.job_name == "platform_assets.definitions [dev]"
    assert runner.compute_by_table["silver.order_lines"].node_type_id == "i3.2xlarge"


def test_the_databricks_target_names_every_setting_a_workspace_needs(monkeypatch, tmp_path):
    use_databricks_settings(monkeypatch, tmp_path, "", required="")

    with pytest.raises(ValueError) as error:
        build_definitions()

    for setting in ("deployment", "landing_dir", "artifacts_dir", "pipes_volume", "compute"):
        assert f"{setting} (" in str(error.value)


@pytest.mark.parametrize("text, message", [
    ("compute:\n  num_workers: 2\n", r"a new cluster needs node_type_id \(it differs per cloud"),
    # The DBFS root, the old default: deprecated, often disabled, readable by every workspace user.
    ("compute:\n  serverless: true\npipes_volume: /tmp/platform-pipes\n",
     r"pipes_volume '/tmp/platform-pipes' is not in a Unity Catalog volume"),
])
def test_settings_that_break_on_a_real_workspace_fail_the_load(monkeypatch, tmp_path, text, message):
    use_databricks_settings(monkeypatch, tmp_path, text)

    with pytest.raises(ValueError, match=message):
        build_definitions()


def test_a_token_in_the_settings_file_is_refused(monkeypatch, tmp_path):
    use_databricks_settings(monkeypatch, tmp_path, "token: dapi-oops\n")  # refused before anything else

    with pytest.raises(ValueError, match=r"databricks\.yaml: 'token' comes from DATABRICKS_TOKEN"):
        build_definitions()


def test_compute_for_an_undeclared_table_is_named(monkeypatch, tmp_path):
    use_databricks_settings(monkeypatch, tmp_path, "compute:\n  serverless: true\n"
                            "compute_by_table:\n  silver.order_line:\n    serverless: true\n")

    with pytest.raises(ValueError, match=r"compute_by_table names undeclared table\(s\) \['silver\.order_line'\]"):
        build_definitions()


def test_an_unknown_target_is_named(monkeypatch):
    monkeypatch.setenv("PLATFORM_TARGET", "kubernetes")

    with pytest.raises(ValueError, match="PLATFORM_TARGET must be 'local' or 'databricks', not 'kubernetes'"):
        build_definitions()


def test_local_steps_run_one_at_a_time_in_the_run_process_unless_more_are_set(monkeypatch):
    assert build_definitions().executor.name == "in_process"

    monkeypatch.setenv("PLATFORM_MAX_PARALLEL_JOBS", "3")  # test_graph_run runs bronze so
    assert build_definitions().executor.name == "multiprocess"


def test_a_bad_parallel_jobs_setting_is_named(monkeypatch):
    monkeypatch.setenv("PLATFORM_MAX_PARALLEL_JOBS", "0")

    with pytest.raises(ValueError, match="PLATFORM_MAX_PARALLEL_JOBS must be a whole number of at least 1, not '0'"):
        build_definitions()


def test_a_table_whose_databricks_task_key_is_too_long_is_named(monkeypatch, tmp_path):
    use_databricks_settings(monkeypatch, tmp_path, "compute:\n  node_type_id: i3.xlarge\n")

    with pytest.raises(ValueError, match=r"task keys are at most 100 characters.*too long: \['gold\.revenue_by_"):
        build_definitions(tables_package="tests.declarations.long_name")


def test_more_tables_than_a_databricks_job_holds_fail_the_load_naming_the_limit(monkeypatch, tmp_path):
    (tmp_path / "many_tables").mkdir()
    (tmp_path / "many_tables" / "__init__.py").write_text("")
    declare_tables(tmp_path / "many_tables", 1001)
    monkeypatch.syspath_prepend(str(tmp_path))
    use_databricks_settings(monkeypatch, tmp_path, "compute:\n  node_type_id: i3.xlarge\n")

    with pytest.raises(ValueError, match=r"1,001 tables are declared.*Databricks limits to 1,000 tasks; "
                                         r"tables per schema: \{'layer_000': 100, .*'layer_010': 1\}"):
        build_definitions(tables_package="many_tables")

    use_databricks_settings(monkeypatch, tmp_path, "compute:\n  node_type_id: i3.xlarge\nrun_per_table: true\n")
    assert len(build_definitions(tables_package="many_tables").resolve_all_asset_specs()) > 1001


@pytest.mark.parametrize("size", ["0", "501"])
def test_a_sensor_size_outside_dagsters_limit_is_named(monkeypatch, size):
    monkeypatch.setenv("PLATFORM_AUTOMATION_TABLES_PER_SENSOR", size)

    with pytest.raises(ValueError, match=f"PLATFORM_AUTOMATION_TABLES_PER_SENSOR is {size}: it must be between 1 and 500"):
        build_definitions()
