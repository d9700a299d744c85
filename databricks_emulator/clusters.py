"""Clusters API: `clusters/get` for clusters registered with `DatabricksEmulator.add_cluster`."""

import threading

from .errors import bad_request


class Clusters:
    def __init__(self):
        self._clusters: dict[str, dict] = {}
        self._lock = threading.Lock()

    def routes(self, router) -> None:
        router.add("GET", r"/api/2\.[01]/clusters/get", self.get)

    def add(self, cluster_id: str, spark_version: str, **fields) -> dict:
        cluster = {"cluster_id": cluster_id, "spark_version": spark_version, "state": "RUNNING"}
        cluster.update(fields)
        with self._lock:
            self._clusters[cluster_id] = cluster
        return cluster

    def __contains__(self, cluster_id) -> bool:
        with self._lock:
            return cluster_id in self._clusters

    def __getitem__(self, cluster_id) -> dict:
        with self._lock:
            return self._clusters[cluster_id]

    def get(self, request):
        cluster_id = request.query.get("cluster_id")
        with self._lock:
            cluster = self._clusters.get(cluster_id)
        if cluster is None:
            # Databricks answers 400 INVALID_PARAMETER_VALUE here; the SDK turns exactly this
            # message into ResourceDoesNotExist (a NotFound).
            raise bad_request(f"Cluster {cluster_id} does not exist")
        return dict(cluster)
