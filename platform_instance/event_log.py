"""The instance's event log: Dagster's SQLite or PostgreSQL event log, storing a batch of events
in one go.

A run that builds a daily table over its whole history stores one ASSET_MATERIALIZATION_PLANNED
event per asset and day when it starts, and one ASSET_MATERIALIZATION per day when each step
ends: about 12,000 + 4,800 events for the full history. These per-day rows are what the UI's
partition bar reads (a day is FAILED when its planned row has no later materialization and its
run failed), so they have to be stored one per day.

With DAGSTER_EVENT_BATCH_SIZE > 0, Dagster hands the planned events of a run, and the
materializations of a ranged step, to `store_event_batch`. The stock storages store most of
such a batch one event at a time, through `store_event`:
- SQLite does not override `store_event_batch`, and `store_event` opens an engine and commits on
  the run's shard, then again on the cross-run index shard, for every asset event (~5 ms each:
  about two minutes for the full history);
- dagster-postgres 0.29.27 inserts a batch at once only when it is all materializations or all
  observations; a planned event opens a connection (no pool), inserts, sends a NOTIFY and
  commits, each (dagster-io/dagster#32242; the demo's history run took 244 s against 13 s on
  SQLite).
The classes below do, for a whole batch, what `store_event` does for each event, in one
transaction per database (SQLite: the run's shard and the index shard).

This module sets DAGSTER_EVENT_BATCH_SIZE (unless it is set already) when it is imported.
Every process that stores events opens the instance first, and opening the instance imports
this module because the instance's yaml names it: the CLI, the webserver and the daemon (which
create runs and store their planned events), run workers and step workers.
"""

import os
from collections.abc import Sequence

from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._serdes import serialize_value
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

# The only module of the platform on Dagster's private API (no public base class keeps Dagster's
# own event log schema). What it uses, and why; tests/test_event_log.py compares the result with
# the stock storage's, so an upgrade that changes the stock behaviour fails there:
# - SqliteEventLogStorage, PostgresEventLogStorage: the stock event logs, extended (the
#   Postgres one, and its config helpers, from dagster-postgres' own modules);
# - SqlEventLogStorageTable, AssetCheckExecutionsTable, db_result: the stock tables, written
#   as the stock `store_event` writes them;
# - _event_to_row: the row `store_event` inserts for an event;
# - _store_asset_event_tags, _store_asset_event: what `store_event` adds for an asset event
#   in the index shard (its tags, its asset key's row);
# - _store_asset_check_evaluation_planned (overridden), _event_insert_timestamp: the rows of a
#   planned check, as the stock method writes them;
# - EventLogEntry, ASSET_EVENTS, ASSET_CHECK_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS: how
#   `store_event` tells the kinds of event apart;
# - AssetCheckExecutionRecordStatus, serialize_value, DagsterInvariantViolationError: the
#   values and the error the stock code stores and raises.

# Dagster stores a buffer of batched events when it holds this many, or at the end of the batch
# (a run's planned events; a ranged step's materializations). A full-history run plans ~12,000
# events: two batches. The cap bounds how long one transaction holds the write lock of the
# index file, which every run shares (~1-2 s for 10,000 events; other writers wait up to 30 s).
EVENT_BATCH_SIZE = 10_000

os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))


class _BatchedAssetRows:
    """What both storages do for a batch after inserting its events: the asset events' tags and
    asset-key rows, and the planned checks' rows."""

    def _stored_one_by_one(self, events: Sequence[EventLogEntry]) -> bool:
        """Store a batch that is not one run's (Dagster never makes one) as `store_event` does,
        event by event; False for a batch of one run, which is left to the caller."""
        if len({event.run_id for event in events}) <= 1:
            return False
        for event in events:
            self.store_event(event)
        return True

    @staticmethod
    def _insert_returning_ids(conn, rows: list[dict]) -> list[int]:
        """Insert event rows in one executemany; the new ids, in the order of the rows."""
        return conn.execute(
            SqlEventLogStorageTable.insert().returning(SqlEventLogStorageTable.c.id, sort_by_parameter_order=True),
            rows,
        ).scalars().all()

    def _store_asset_rows(self, conn, events_and_ids: list[tuple[EventLogEntry, int]]) -> None:
        """Store the asset events' tags and their asset keys' rows, as `store_event` does.

        `store_event` calls `_store_asset_event` for every asset event; here it is called once
        per (asset key, event type), with the last such event. The result is the same:
        `_store_asset_event` writes only the asset key's row in the `asset_keys` table (creating
        it if missing), overwriting some columns with values taken from that one event (a
        materialization: the event as `last_materialization`, `last_run_id`,
        `last_materialization_timestamp`; a planned event: `last_run_id` and the timestamp; an
        observation: the timestamp). Each column therefore ends up with the value of the last
        event that writes it. Applying the last event of each type, in the order of those last
        events, leaves every column with that same value. Nothing reads the row in between, and
        no other process can, since it all happens in one transaction. (Calling it per event
        costs a schema inspection, a failed INSERT and an UPDATE each time: on SQLite, a
        full-history run spent ~11 s storing events instead of ~4 s.)
        """
        asset_events, event_ids = [], []
        last_of_kind: dict[tuple, tuple[EventLogEntry, int]] = {}
        for event, event_id in events_and_ids:
            if event_id is None:
                raise DagsterInvariantViolationError("Cannot store asset event tags for null event id.")
            asset_events.append(event)
            event_ids.append(event_id)
            kind = (event.dagster_event.asset_key, event.dagster_event_type)
            last_of_kind.pop(kind, None)  # keep the dict in order of last occurrence
            last_of_kind[kind] = (event, event_id)
        if asset_events:
            self._store_asset_event_tags(conn, asset_events, event_ids)
        for event, event_id in last_of_kind.values():
            self._store_asset_event(conn, event, event_id)

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """What the stock method stores: one PLANNED row per partition of the check's run, each
        holding the planned event. The stock method serializes the event again for every row
        (2,406 times per check of a daily table over its whole history); this serializes it once."""
        planned = event.dagster_event.event_specific_data
        partition_keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        row = dict(
            asset_key=planned.asset_key.to_string(),
            check_name=planned.check_name,
            run_id=event.run_id,
            execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
            evaluation_event=serialize_value(event),
            evaluation_event_timestamp=self._event_insert_timestamp(event),
            evaluation_event_storage_id=event_id,
        )
        with self.index_connection() as conn:
            # executemany: one compiled statement, rather than one VALUES clause of 2,406 rows.
            conn.execute(AssetCheckExecutionsTable.insert(),
                         [{**row, "partition": partition_key} for partition_key in partition_keys])


class BatchedSqliteEventLogStorage(_BatchedAssetRows, SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose `store_event_batch` uses one transaction per shard.

    Configured like the stock class (`base_dir`: where the SQLite shards live), except that a
    relative `base_dir` is taken under the instance's home directory rather than the working
    directory, so that one dagster.yaml works in any `$DAGSTER_HOME`: `history/runs` is where
    Dagster's default storage keeps the event log.
    """

    def __init__(self, base_dir: str, inst_data=None):
        self._existing_tables: set[str] = set()
        if os.path.isabs(base_dir):
            super().__init__(base_dir, inst_data=inst_data)
        else:
            # The home is known once the instance registers itself, which a DagsterInstance
            # does as it is constructed, before anything else uses its event log.
            self._base_dir_under_home = base_dir
            self._inst_data = inst_data

    def register_instance(self, instance) -> None:
        if not hasattr(self, "_base_dir"):
            base_dir = os.path.join(instance.root_directory, self._base_dir_under_home)
            super().__init__(base_dir, inst_data=self._inst_data)
        super().register_instance(instance)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        # The stock classmethod constructs SqliteEventLogStorage by name.
        return cls(inst_data=inst_data, **config_value)

    def has_table(self, table_name: str) -> bool:
        # The stock method opens a new engine per call, and storing a materialization with a
        # data version calls it. Tables are only ever added (by migrations), so a hit is final.
        if table_name not in self._existing_tables and super().has_table(table_name):
            self._existing_tables.add(table_name)
        return table_name in self._existing_tables

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """What `store_event` does for each event, in the same order, with fewer transactions.

        All events go into the run's shard in one transaction. Then, in the index shard, the
        asset events (with their tags and their asset-key row) and the run-status events are
        mirrored in one transaction; an asset check event (a check planned in the same run)
        is stored exactly as `store_event` stores it, between the transactions before and after it.
        """
        if not events or self._stored_one_by_one(events):
            return
        rows = [self._event_to_row(event) for event in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)

        to_mirror = []
        for event, row in zip(events, rows):
            event_type = event.dagster_event_type  # None for a plain log message
            if event_type in ASSET_CHECK_EVENTS:
                self._mirror_in_index(to_mirror)
                to_mirror = []
                with self.index_connection() as conn, db_result(
                    conn, SqlEventLogStorageTable.insert().values(**row)
                ) as result:
                    event_id = result.inserted_primary_key[0]
                self.store_asset_check_event(event, event_id)
            elif event_type in ASSET_EVENTS or event_type in EVENT_TYPE_TO_PIPELINE_RUN_STATUS:
                to_mirror.append((event, row))
        self._mirror_in_index(to_mirror)

    def _mirror_in_index(self, events_and_rows: list[tuple[EventLogEntry, dict]]) -> None:
        """Insert the events into the index shard, with their asset tags and asset-key rows."""
        if not events_and_rows:
            return
        with self.index_transaction() as conn:
            inserted = self._insert_returning_ids(conn, [row for _, row in events_and_rows])
            # A run-status event: the row is all there is.
            self._store_asset_rows(conn, [(event, event_id) for (event, _), event_id
                                          in zip(events_and_rows, inserted, strict=True)
                                          if event.dagster_event_type in ASSET_EVENTS])


class BatchedPostgresEventLogStorage(_BatchedAssetRows, PostgresEventLogStorage):
    """`PostgresEventLogStorage` whose `store_event_batch` stores any batch in one transaction.

    Configured like the stock class (`postgres_db` or `postgres_url`). dagster-io/dagster#33832
    proposes batching planned events upstream; until a release has it, this class does.
    """

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        # The stock classmethod constructs PostgresEventLogStorage by name.
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """What `store_event` does for each event, in the same order, in one transaction; an
        asset check event (a check planned in the same run) is then stored as `store_event`
        stores it. No NOTIFY: Dagster no longer listens for it (the stock `store_event` keeps it
        for webservers of older versions)."""
        # As the stock batch: this storage does not keep asset failures (can_store_asset_failure_events).
        events = [e for e in events if not (e.dagster_event and e.dagster_event.is_asset_failed_to_materialize)]
        if not events or self._stored_one_by_one(events):
            return
        with self.index_transaction() as conn:
            inserted = self._insert_returning_ids(conn, [self._event_to_row(event) for event in events])
            stored = list(zip(events, inserted, strict=True))
            self._store_asset_rows(conn, [(e, i) for e, i in stored if e.dagster_event_type in ASSET_EVENTS])
        for event, event_id in stored:
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                self.store_asset_check_event(event, event_id)
