"""DatabricksEmulator: the HTTP server on 127.0.0.1 and everything it serves."""

import logging
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from .clusters import Clusters
from .compute import Capacity, ClusterStart, ClusterStarts
from .dbfs import Dbfs
from .executor import Executor, stop_run_processes
from .faults import Faults
from .files_api import FilesApi
from .handler import RecordedRequest, Router, make_handler_class
from .job_definitions import JobDefinitions
from .job_runs import JobRuns
from .jobs import Jobs
from .run_store import RunStore
from .runs import Run

log = logging.getLogger("databricks_emulator")


class DatabricksEmulator:
    """A local Databricks workspace for the real databricks-sdk.

    root: local directory for DBFS (root/dbfs), volumes (root/volumes) and run output
        (root/runs/<run_id>/<task_key>/{stdout,stderr}; a repair's attempt N of a task in
        root/runs/<run_id>/<task_key>.attempt-N/).
    token: the only accepted `Authorization: Bearer` token.
    python: the interpreter that runs tasks.
    env: the base environment of task processes (None: this process's environment).
    pending_seconds / terminating_seconds: how long runs stay PENDING / TERMINATING.
    cluster_start_seconds: how long each cluster start takes (a job cluster once per run or
        repair, a new_cluster once per task), to emulate cold starts in benchmarks.
    dbfs_root_enabled: False as in a workspace with DBFS root access disabled: the DBFS API
        answers 403 and tasks cannot read python files or libraries from DBFS.
    max_execution_contexts: running tasks a cluster holds at once; one more fails at start.
    max_concurrent_task_runs: running task runs of the workspace; one more waits (PENDING).
    pypi_reachable: False (no network egress): libraries from a package index, and wheels
        requiring what the runtime lacks, fail the task. True: they are left out.
    """

    def __init__(self, root, token: str, python: str = sys.executable, env: dict | None = None,
                 pending_seconds: float = 0.1, terminating_seconds: float = 0.05,
                 cluster_start_seconds: float = 0, dbfs_root_enabled: bool = True,
                 max_execution_contexts: int = 150, max_concurrent_task_runs: int = 1000,
                 pypi_reachable: bool = False):
        self.root = Path(root)
        self.token = token
        self.dbfs_root = self.root / "dbfs"
        self.volumes_root = self.root / "volumes"
        for directory in (self.dbfs_root, self.volumes_root, self.root / "runs", self.root / "scratch"):
            directory.mkdir(parents=True, exist_ok=True)
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.runs: dict[int, Run] = {}
        self._requests_lock = threading.Lock()
        self._clusters = Clusters()
        self._cluster_starts = ClusterStarts(cluster_start_seconds)
        self.router = Router()
        executor = Executor(
            dbfs_root=self.dbfs_root if dbfs_root_enabled else None,
            volumes_root=self.volumes_root, python=python, env=env, clusters=self._clusters,
            cluster_starts=self._cluster_starts, contexts=Capacity(max_execution_contexts),
            task_runs=Capacity(max_concurrent_task_runs), pypi_reachable=pypi_reachable,
            faults=self.faults, pending_seconds=pending_seconds,
            terminating_seconds=terminating_seconds,
        )
        store = RunStore(self.runs)
        definitions = JobDefinitions(clusters=self._clusters)
        runs_dir = self.root / "runs"
        jobs = Jobs(store=store, runs_dir=runs_dir, executor=executor, clusters=self._clusters,
                    faults=self.faults, host=lambda: self.host)
        job_runs = JobRuns(store=store, definitions=definitions, runs_dir=runs_dir,
                           executor=executor, faults=self.faults, host=lambda: self.host)
        dbfs = Dbfs(self.dbfs_root, self.root / "scratch", enabled=dbfs_root_enabled)
        for api in (jobs, definitions, job_runs, dbfs, FilesApi(self.volumes_root), self._clusters):
            api.routes(self.router)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> "DatabricksEmulator":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name="databricks-emulator", daemon=True,
        )
        self._thread.start()
        log.info("Databricks emulator listening on %s", self.host)
        return self

    def stop(self) -> None:
        """Stop serving and kill every task process still running."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for run in list(self.runs.values()):
            run.cancel_requested.set()
            stop_run_processes(run)
        for run in list(self.runs.values()):
            if run.thread is not None:
                run.thread.join(timeout=10)

    def __enter__(self) -> "DatabricksEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what tests and callers use ------------------------------------------------------

    @property
    def host(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def cluster_starts(self) -> list[ClusterStart]:
        """Every cluster start so far, oldest first: (run_id, kind, key, repair_id) with kind
        "job_cluster" (key: job_cluster_key) or "new_cluster" (key: the task_key)."""
        return self._cluster_starts.records

    @property
    def cluster_start_count(self) -> int:
        return len(self._cluster_starts.records)

    def add_cluster(self, cluster_id: str, spark_version: str, **fields) -> dict:
        """Register a RUNNING cluster for existing_cluster_id tasks and clusters/get.
        Extra fields (spark_env_vars, spark_conf, cluster_log_conf, ...) are returned by
        clusters/get and spark_env_vars/spark_conf reach the task's environment."""
        return self._clusters.add(cluster_id, spark_version, **fields)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded calls of one method and path (without query string)."""
        with self._requests_lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def requests_containing(self, secret: str) -> list[RecordedRequest]:
        """Recorded calls whose path, query or body contains `secret` (e.g. the token leaking
        into a submitted run's spark_env_vars). Headers are never recorded."""
        needle = secret.encode()
        with self._requests_lock:
            return [
                r for r in self.requests
                if needle in r.body or secret in r.path or any(secret in str(v) for v in r.query.values())
            ]

    def _record(self, request: RecordedRequest) -> None:
        with self._requests_lock:
            self.requests.append(request)
