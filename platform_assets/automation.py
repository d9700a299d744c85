"""A table's trigger as a Dagster automation condition, evaluated by an automation sensor in
the code location (platform_assets/automation_sensors.py)."""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass

import dagster as dg

from jobs.table import ByHandOnly, OnCron, Trigger, WhenAllInputsUpdate, WhenAnyInputUpdates
from platform_assets.gates import ForCandidates, InputEvents, WhenHandledChanged, WhenInputsChanged
from platform_assets.touched_days import TouchedDays

AC = dg.AutomationCondition


# Runs that the automation sensor launches carry this tag.
AUTOMATION_RUN_TAG = "dagster/from_automation_condition"


@functools.cache
def handled() -> dg.AutomationCondition:
    """When a table's pending input updates count as dealt with: when automation requests it, or
    when a run from the UI or CLI rebuilds it. Not when an automation run's result lands: that
    run was counted at its request, and its result may land in the same evaluation as a newer
    input update, which must then start the table again rather than be swallowed (Dagster's
    since_last_handled() would drop it)."""
    return (
        AC.newly_requested()
        | (AC.newly_updated() & ~AC.executed_with_tags(tag_keys={AUTOMATION_RUN_TAG}))
        | AC.initial_evaluation()
    ).with_label("handled")


@functools.cache
def held_back() -> dg.AutomationCondition:
    """What keeps a triggered table waiting: the table or an input still running, an input that
    has never landed or whose latest run failed (unless it is retried in the same run), or an
    input whose blocking checks did not pass."""
    return (
        AC.in_progress()
        | AC.any_deps_in_progress()
        | AC.any_deps_missing()
        | AC.any_deps_match(AC.execution_failed() & ~AC.will_be_requested()).with_label("any_deps_failed")
        | ~_inputs_trusted()
    ).with_label("held_back")


@functools.cache
def _inputs_trusted() -> dg.AutomationCondition:
    """Every input's blocking checks passed, or the input is requested in this same evaluation:
    then the table runs after it in one run, and a failing blocking check stops the table's step
    there. Dagster's all_deps_blocking_checks_passed() allows the latter only for checks
    requested by name, and a table's checks ride along with it unnamed, so a daily table and
    its daily reader would take two runs (and, as backfills, a minute more)."""
    return AC.all_deps_match(
        AC.all_checks_match(AC.check_passed(), blocking_only=True) | AC.will_be_requested()
    ).with_label("inputs_trusted")


def _updated(key: dg.AssetKey) -> dg.AutomationCondition:
    """Input `key` updated since the last evaluation (not by a run that also built this table),
    or requested in this one: what any_deps_updated() asks of each input."""
    return AC.asset_matches(
        key, (AC.newly_updated() & ~AC.executed_with_root_target()) | AC.will_be_requested()
    ).with_label(f"{key.to_user_string()} updated")


def _when_inputs_changed(condition: dg.AutomationCondition, inputs: list[dg.AssetKey],
                         events: InputEvents | None) -> dg.AutomationCondition:
    return condition if events is None else WhenInputsChanged(condition, tuple(inputs), events)


def _when_handled_changed(condition: dg.AutomationCondition, events: InputEvents | None) -> dg.AutomationCondition:
    return condition if events is None else WhenHandledChanged(condition, events)


def _for_candidates(condition: dg.AutomationCondition, events: InputEvents | None) -> dg.AutomationCondition:
    return condition if events is None else ForCandidates(condition)


def _on_cron(trigger: OnCron, inputs: list[dg.AssetKey], events: InputEvents | None) -> dg.AutomationCondition:
    """Dagster's on_cron(), built again from its parts to gate those that wait for events."""
    if events is None:
        return AC.on_cron(trigger.schedule, trigger.timezone)
    tick = AC.cron_tick_passed(trigger.schedule, trigger.timezone)
    dagster_handled = (AC.newly_requested() | AC.newly_updated() | AC.initial_evaluation()).with_label("handled")
    inputs_since_tick = [
        AC.asset_matches(key, WhenInputsChanged(AC.newly_updated(), (key,), events).since(tick) | AC.will_be_requested())
        for key in inputs
    ]
    return functools.reduce(operator.and_, [
        AC.in_latest_time_window(), tick.since(WhenHandledChanged(dagster_handled, events)), *inputs_since_tick,
    ]).with_label(f"on_cron({trigger.schedule}, {trigger.timezone})")


def automation_condition(
    trigger: Trigger, inputs: list[dg.AssetKey], events: InputEvents | None,
    touched_days: TouchedDays | None = None,
) -> dg.AutomationCondition | None:
    """The condition for a table with these input asset keys; None when nothing can start it.

    `events` answers the gates (platform_assets/gates.py): what changed since the previous tick.
    None leaves them out, and Dagster evaluates every part on every tick: the same requests, at
    ten times the cost (the tests compare the two). For a daily table, `touched_days` narrows
    what its unpartitioned inputs' updates rebuild to the days they touched (WhenAnyInputUpdates).
    """
    if isinstance(trigger, ByHandOnly) or (not inputs and not isinstance(trigger, OnCron)):
        return None
    since_handled = _when_handled_changed(handled(), events)
    if isinstance(trigger, OnCron):
        updated = _on_cron(trigger, inputs, events)
    elif isinstance(trigger, WhenAnyInputUpdates) and touched_days is not None:
        partitioned_updated = AC.any_deps_updated().ignore(dg.AssetSelection.assets(*touched_days.inputs))
        updated = _when_inputs_changed(touched_days | partitioned_updated, inputs, events).since(since_handled)
    elif isinstance(trigger, WhenAnyInputUpdates):
        updated = _when_inputs_changed(AC.any_deps_updated(), inputs, events).since(since_handled)
    elif isinstance(trigger, WhenAllInputsUpdate):
        # One "updated since this table was last handled" per input, all of them required.
        # Built from asset_matches rather than any_deps_updated().allow(...): in this Dagster
        # release, since() conditions over deps filtered by allow() share one cursor entry
        # (dagster-io/dagster#32999), so each would see the others' state.
        updated = functools.reduce(operator.and_, [
            _when_inputs_changed(_updated(key), [key], events).since(since_handled) for key in inputs
        ])
    else:
        raise TypeError(f"unknown trigger {trigger!r}")
    # Held back is only asked of a table with an update waiting: most have none on most ticks.
    condition = (updated & _for_candidates(~held_back(), events)).with_label(type(trigger).__name__)
    return condition if events is None else TableCondition(condition, type(trigger).__name__, _SUMMARIES[type(trigger)])


_SUMMARIES = {
    WhenAnyInputUpdates: "any input has a new version since the table was last requested or built by hand",
    WhenAllInputsUpdate: "every input has a new version since the table was last requested or built by hand",
    OnCron: "a tick of its schedule passed, and every input has a new version since",
}


@dataclass(frozen=True)
class TableCondition(dg.AutomationCondition):
    """A table's whole condition, shown as one node in the definitions snapshot.

    Its parts are evaluated, remembered and recorded in each evaluation's history as usual.
    Only the snapshot that the code location sends the daemon and the webserver leaves them out
    (the asset page shows `summary`): with them, about 50 nodes and 14 KB a table, the snapshot
    of 10,000 tables is 180 MB in one gRPC message, past Dagster's 100 MB limit, and the daemon
    reads it again every minute."""

    condition: dg.AutomationCondition
    trigger: str
    summary: str

    @property
    def name(self) -> str:
        return self.trigger

    @property
    def description(self) -> str:
        return f"{self.summary}, unless an input is running, failed, missing or failed a blocking check"

    @property
    def requires_cursor(self) -> bool:
        return False

    async def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        child = await context.for_child_condition(
            child_condition=self.condition, child_indices=[0], candidate_subset=context.candidate_subset
        ).evaluate_async()
        return dg.AutomationResult(context, true_subset=child.true_subset, child_results=[child])
