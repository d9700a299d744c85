"""Benchmark instrument: records how long each process spends storing Dagster events.

Put this directory on PYTHONPATH and set PLATFORM_EVENT_TIMING_LOG to a file: every process
that starts with that environment (the CLI, its step processes, the daemon, run workers) then
appends one line per event-log write, `<pid> <method> <events> <seconds>`, to it. Lines are
written at once because forked step processes end without running exit handlers.
`scripts.bench` sums them. Nothing else loads this file.

Dagster's SQLite event log and dagster-postgres' are patched when a process imports them, not
before: processes that never store events (table jobs, Dagster's small helper processes) are
left as they are.
"""

import importlib.abc
import importlib.util
import os
import sys
import threading
import time

_LOG = os.environ.get("PLATFORM_EVENT_TIMING_LOG")
# The stock event logs, by module: the project's classes subclass them.
_STORAGES = {
    "dagster._core.storage.event_log.sqlite.sqlite_event_log": "SqliteEventLogStorage",
    "dagster_postgres.event_log.event_log": "PostgresEventLogStorage",
}
_depth = threading.local()  # a batch that falls back to store_event is counted once


def _timed(method, name: str, count):
    def wrapper(self, argument):
        depth = getattr(_depth, "value", 0)
        _depth.value = depth + 1
        started = time.perf_counter()
        try:
            return method(self, argument)
        finally:
            _depth.value = depth
            if depth == 0:
                with open(_LOG, "a") as log:
                    log.write(f"{os.getpid()} {name} {count(argument)} {time.perf_counter() - started:.6f}\n")
    return wrapper


def _instrument(module) -> None:
    storage = getattr(module, _STORAGES[module.__name__])
    storage.store_event = _timed(storage.store_event, "store_event", lambda _: 1)

    def time_batches(cls, **kwargs):  # the project's storage subclasses it later
        if "store_event_batch" in cls.__dict__:
            cls.store_event_batch = _timed(cls.store_event_batch, "store_event_batch", len)

    storage.__init_subclass__ = classmethod(time_batches)


class _InstrumentOnImport(importlib.abc.MetaPathFinder):
    done: set[str] = set()

    def find_spec(self, fullname, path, target=None):
        if fullname not in _STORAGES or fullname in self.done:
            return None
        self.done.add(fullname)
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _instrument(module)

        spec.loader.exec_module = exec_module
        return spec


if _LOG:
    sys.meta_path.insert(0, _InstrumentOnImport())
