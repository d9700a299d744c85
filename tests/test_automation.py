"""Table triggers as Dagster evaluates them: each tick is one automation sensor evaluation,
and the tables it requests are run with `materialize()` like a launched run would.

Every scenario runs twice: with the gates (platform_assets/gates.py), as the platform runs, and
with Dagster's own conditions alone, which the gates may make cheaper but never different."""

import datetime as dt
import warnings

import dagster as dg
import pytest

from jobs.table import ByHandOnly, OnCron, WhenAllInputsUpdate, WhenAnyInputUpdates
from platform_assets.automation import AUTOMATION_RUN_TAG, automation_condition
from platform_assets.gates import InputEvents
from platform_assets.sources import DATA_VERSION_TAG

FAILING: set[str] = set()  # names of the toy tables whose next run fails
BLOCKED: set[str] = set()  # names of the toy tables whose blocking check fails next
TABLES = ("customers", "orders", "order_lines", "joined", "by_hand", "morning_report")


def toy_table(name: str, inputs: list[str], trigger, events: InputEvents | None) -> dg.AssetsDefinition:
    keys = [dg.AssetKey(i) for i in inputs]

    @dg.asset(name=name, deps=keys, automation_condition=automation_condition(trigger, keys, events),
              check_specs=[dg.AssetCheckSpec("rows", asset=name, blocking=True)])
    def _table() -> dg.MaterializeResult:
        if name in FAILING:
            raise RuntimeError(f"{name} failed")
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=name not in BLOCKED)])

    return _table


def observe_nation() -> dg.DataVersion:
    return dg.DataVersion("0")


def toy_graph(gated: bool) -> list:
    """nation (observed) -> customers; orders; both -> order_lines (ANY), joined (ALL);
    customers -> by_hand; orders -> morning_report (at 06:00)."""
    events = InputEvents(materialized=[dg.AssetKey(n) for n in TABLES], observed=[dg.AssetKey("nation")])
    events = events if gated else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        nation = dg.observable_source_asset(key="nation")(observe_nation)
    return [
        nation,
        toy_table("customers", ["nation"], WhenAnyInputUpdates(), events),
        toy_table("orders", [], WhenAnyInputUpdates(), events),
        toy_table("order_lines", ["orders", "customers"], WhenAnyInputUpdates(), events),
        toy_table("joined", ["orders", "customers"], WhenAllInputsUpdate(), events),
        toy_table("by_hand", ["customers"], ByHandOnly(), events),
        toy_table("morning_report", ["orders"], OnCron("0 6 * * *"), events),
    ]


class Automation:
    """An instance plus the automation sensor's cursor, ticked by hand. Each evaluation is a
    second after the previous one on the sensor's clock, which starts at `clock`."""

    def __init__(self, graph: list, clock: dt.datetime):
        self.graph, self.clock = graph, clock
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor = None
        assert self.tick() == set(), "the first evaluation only sets a baseline"

    def tick(self) -> set[str]:
        """One sensor tick: evaluate, run what it requested, and check that the next tick (which
        sees that run's results) starts nothing more. Returns the tables requested."""
        requested = self.tick_without_settling()
        assert self._evaluate() == set(), f"started twice after {requested}"
        return requested

    def tick_without_settling(self) -> set[str]:
        """Evaluate and run what was requested, as the daemon does: the sensor evaluates again
        while the run is queued (a Spark job outlasts an interval), and the run's results are
        first seen by the evaluation after it."""
        requested = self._evaluate()
        if requested:
            assert self._evaluate() == set(), f"requested twice: {requested}"
            self.run(*requested, tags={AUTOMATION_RUN_TAG: "true"})
        return requested

    def _evaluate(self) -> set[str]:
        self.clock += dt.timedelta(seconds=1)
        result = dg.evaluate_automation_conditions(self.graph, self.instance, cursor=self.cursor,
                                                   evaluation_time=self.clock)
        self.cursor = result.cursor
        return {a.key.to_user_string() for a in self.graph if result.get_num_requested(a.key)}

    def run_by_hand(self, *names: str) -> None:
        """A run from the UI or CLI, followed by a tick, which starts nothing: everything
        downstream of these tables ran with them or still lacks an input."""
        self.run(*names)
        assert self.tick() == set()

    def run(self, *names: str, tags: dict[str, str] | None = None) -> bool:
        """A run of these tables that, like a launched run, records them as its selection."""
        job = dg.Definitions(assets=self.graph).resolve_implicit_global_asset_job_def()
        self.last_run = job.execute_in_process(
            asset_selection=[dg.AssetKey(name) for name in names], instance=self.instance,
            raise_on_error=False, tags=tags,
        )
        return self.last_run.success

    def built_by_last_run(self) -> set[str]:
        return {e.asset_key.to_user_string() for e in self.last_run.get_asset_materialization_events()}

    def observe_nation(self, version: str) -> None:
        self.instance.report_runless_asset_event(
            dg.AssetObservation(asset_key="nation", tags={DATA_VERSION_TAG: version})
        )


@pytest.fixture(params=["gated", "Dagster's conditions alone"])
def automation(request):
    FAILING.clear()
    BLOCKED.clear()
    # Noon: no 06:00 tick passes while a scenario runs, unless it moves the clock there.
    return Automation(toy_graph(gated=request.param == "gated"), dt.datetime(2026, 3, 2, 12, tzinfo=dt.timezone.utc))


def test_a_new_external_version_starts_each_downstream_table_once(automation):
    automation.run_by_hand("orders")
    automation.observe_nation("1")

    # customers and what reads it go in one run: order_lines waits for ANY input, joined for
    # ALL, and orders did update since joined last ran (never).
    assert automation.tick() == {"customers", "order_lines", "joined"}
    assert automation.tick() == set()


def test_a_burst_of_versions_between_ticks_starts_one_run(automation):
    automation.run_by_hand("orders", "customers", "order_lines", "joined")
    for version in ("1", "2", "3"):
        automation.observe_nation(version)

    assert automation.tick() == {"customers", "order_lines"}
    assert automation.tick() == set()


def test_all_inputs_waits_for_every_input_and_any_input_does_not(automation):
    automation.run_by_hand("orders", "customers", "order_lines", "joined")

    automation.run("orders")
    assert automation.tick() == {"order_lines"}

    automation.observe_nation("1")
    assert automation.tick() == {"customers", "order_lines", "joined"}


def test_a_failed_input_keeps_its_downstream_tables_from_starting(automation):
    automation.run_by_hand("orders", "customers", "order_lines", "joined")
    FAILING.add("customers")
    automation.observe_nation("1")
    assert automation.tick() == {"customers", "order_lines"}  # the run fails at customers

    automation.run("orders")
    assert automation.tick() == set(), "order_lines must not start while customers' latest run failed"

    FAILING.clear()
    automation.observe_nation("2")
    assert automation.tick() == {"customers", "order_lines", "joined"}


def test_a_failed_blocking_check_stops_the_run_and_keeps_downstream_tables_from_starting(automation):
    automation.run_by_hand("orders", "customers", "order_lines", "joined")
    BLOCKED.add("customers")
    automation.observe_nation("1")
    assert automation.tick() == {"customers", "order_lines"}
    assert automation.built_by_last_run() == {"customers"}, "order_lines must not run after the check failed"

    automation.run("orders")
    assert automation.tick() == set(), "order_lines must not start while customers' blocking check fails"

    BLOCKED.clear()
    automation.observe_nation("2")
    assert automation.tick() == {"customers", "order_lines", "joined"}


def test_a_table_whose_input_never_landed_is_not_started(automation):
    automation.run("orders")
    assert automation.tick() == set(), "order_lines reads customers, which does not exist yet"
    automation.observe_nation("1")
    assert automation.tick() == {"customers", "order_lines", "joined"}


def test_a_by_hand_table_is_never_started_by_automation(automation):
    automation.run_by_hand("orders", "customers", "order_lines", "joined")
    automation.observe_nation("1")
    assert "by_hand" not in automation.tick()


def test_an_update_seen_with_the_previous_runs_results_starts_the_whole_chain_once(automation):
    automation.run_by_hand("orders", "customers", "order_lines", "joined")
    automation.observe_nation("1")
    assert automation.tick_without_settling() == {"customers", "order_lines"}

    # The next evaluation sees that run's results and a newer nation version together.
    automation.observe_nation("2")
    assert automation.tick() == {"customers", "order_lines"}


def test_a_cron_table_runs_at_its_tick_once_its_input_has_updated_since_that_tick(automation):
    automation.run_by_hand("orders", "customers", "order_lines", "joined", "morning_report")

    automation.clock = dt.datetime(2026, 3, 3, 6, 0, 30, tzinfo=dt.timezone.utc)
    assert automation.tick() == set(), "orders has not updated since the 06:00 tick"

    automation.run("orders")
    assert automation.tick() == {"order_lines", "morning_report"}
    automation.run("orders")
    assert automation.tick() == {"order_lines"}, "once a day"
