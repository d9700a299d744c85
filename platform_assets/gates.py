"""Gates: stateless wrappers that skip a sub-condition when it cannot be true on this tick.

Dagster evaluates every node of every table's condition on every tick, about 10 ms a table for
ours, whether or not anything happened. But most nodes can only turn true after an event: an
input's new version, the table's own new version or request, a pending update. A gate asks the
cheap question first (one event-log query per sensor and tick, shared by every table the sensor
evaluates) and evaluates the wrapped condition only when the answer is yes; otherwise it is
false, as the wrapped condition would have been.

Gates hold no state, so skipping one loses none: the conditions that remember (Dagster's
`since`) sit above the gates and are evaluated on every tick, on the gates' answers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg


class InputEvents:
    """Which of a sensor's assets got a new version in a tick's range of event-log storage ids:
    a materialization of one of `materialized` (the tables), an observation of one of `observed`
    (the observable sources). One query per tick, whichever gate asks first."""

    def __init__(self, materialized: Iterable[dg.AssetKey], observed: Iterable[dg.AssetKey] = ()):
        self.materialized = sorted(set(materialized))
        self.observed = sorted(set(observed))
        self._lock = threading.Lock()  # sensors of one code location tick in threads
        self._range: tuple[int, int] | None = None
        self._updated: frozenset[dg.AssetKey] = frozenset()

    def updated(self, instance: dg.DagsterInstance, after: int, upto: int) -> frozenset[dg.AssetKey]:
        """The assets with an event whose storage id is above `after`. Events after `upto`
        count too: an asset record keeps only the latest, and evaluating for nothing is safe."""
        with self._lock:
            if self._range != (after, upto):
                self._updated, self._range = self._query(instance, after, upto), (after, upto)
            return self._updated

    def _query(self, instance: dg.DagsterInstance, after: int, upto: int) -> frozenset[dg.AssetKey]:
        if upto <= after:
            return frozenset()  # nothing at all was stored since the previous tick
        updated = {
            record.asset_entry.asset_key for record in instance.get_asset_records(self.materialized)
            if (record.asset_entry.last_materialization_storage_id or 0) > after
        }
        # Observations are not in every storage's asset records (SQLite's): asked per source.
        for key in self.observed:
            new = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=1)
            if new.records:
                updated.add(key)
        return frozenset(updated)


def _instance(context: dg.AutomationContext) -> dg.DagsterInstance:
    return context.asset_graph_view.instance


def _skip(context: dg.AutomationContext) -> dg.AutomationResult:
    return dg.AutomationResult(context, true_subset=context.get_empty_subset())


def _evaluate(context: dg.AutomationContext, operand: dg.AutomationCondition):
    return context.for_child_condition(
        child_condition=operand, child_indices=[0], candidate_subset=context.candidate_subset
    ).evaluate_async()


def _first_evaluation(context: dg.AutomationContext) -> bool:
    return context.previous_max_storage_id is None or context.max_storage_id is None


@dataclass(frozen=True)
class WhenInputsChanged(dg.AutomationCondition):
    """`operand`, evaluated only on a tick where one of `inputs` has a new version or is
    requested in the same evaluation; false otherwise. For conditions that can only be true
    then, such as "an input updated"."""

    operand: dg.AutomationCondition
    inputs: tuple[dg.AssetKey, ...]
    events: InputEvents = field(compare=False, hash=False, repr=False)

    @property
    def name(self) -> str:
        # Part of the unique id of the since() above it, which Dagster builds from its
        # children's names: two gates under one table must not share a name.
        return f"when_changed({', '.join(key.to_user_string() for key in self.inputs)})"

    @property
    def description(self) -> str:
        return "an input has a new version or is requested on this tick"

    @property
    def requires_cursor(self) -> bool:
        return False

    @property
    def children(self) -> list[dg.AutomationCondition]:
        return [self.operand]

    async def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        if _first_evaluation(context) or self._changed(context):
            child = await _evaluate(context, self.operand)
            return dg.AutomationResult(context, true_subset=child.true_subset, child_results=[child])
        return _skip(context)

    def _changed(self, context: dg.AutomationContext) -> bool:
        requested = context.request_subsets_by_key
        if any(key in requested and not requested[key].is_empty for key in self.inputs):
            return True
        updated = self.events.updated(_instance(context), context.previous_max_storage_id, context.max_storage_id)
        return any(key in updated for key in self.inputs)


@dataclass(frozen=True)
class WhenHandledChanged(dg.AutomationCondition):
    """`operand`, evaluated only on the table's first evaluation, or on a tick after it was
    requested or got a new version; false otherwise. For "the table was handled", which Dagster
    computes from exactly those."""

    operand: dg.AutomationCondition
    events: InputEvents = field(compare=False, hash=False, repr=False)

    @property
    def name(self) -> str:
        return "when_table_changed"

    @property
    def description(self) -> str:
        return "the table was requested, or has a new version, since the previous tick"

    @property
    def requires_cursor(self) -> bool:
        return False

    @property
    def children(self) -> list[dg.AutomationCondition]:
        return [self.operand]

    async def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        if _first_evaluation(context) or self._changed(context):
            child = await _evaluate(context, self.operand)
            return dg.AutomationResult(context, true_subset=child.true_subset, child_results=[child])
        return _skip(context)

    def _changed(self, context: dg.AutomationContext) -> bool:
        previous = context.get_previous_requested_subset(context.key)
        if previous is None or not previous.is_empty:
            return True
        updated = self.events.updated(_instance(context), context.previous_max_storage_id, context.max_storage_id)
        return context.key in updated


@dataclass(frozen=True)
class ForCandidates(dg.AutomationCondition):
    """`operand`, evaluated only when some of the table is still a candidate (an earlier part of
    an AND left something); false otherwise, as an AND would have made it."""

    operand: dg.AutomationCondition

    @property
    def name(self) -> str:
        return "for_candidates"

    @property
    def description(self) -> str:
        return "evaluated for what is still a candidate"

    @property
    def requires_cursor(self) -> bool:
        return False

    @property
    def children(self) -> list[dg.AutomationCondition]:
        return [self.operand]

    async def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        if context.candidate_subset.is_empty:
            return _skip(context)
        child = await _evaluate(context, self.operand)
        return dg.AutomationResult(context, true_subset=child.true_subset, child_results=[child])
