"""The Dagster names without a public route that the scripts use, kept here, one line each on
why, so that jobs/, platform_assets/, resources/ and scripts/ import Dagster's public API only.
Each is exercised by the tests of the script that uses it, against Dagster's own behaviour."""

# A run executed in this process that the code location can re-execute needs the job as Dagster
# rebuilds it from the repository's module (scripts/runs.py; dg.reconstructable takes a
# module-level job only, not the code location's implicit asset job).
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository

# The size of the definitions snapshot the code server sends the daemon and the webserver
# (scripts/bench_scale.py): no public route to it.
from dagster._core.remote_representation.external_data import RepositorySnap

__all__ = ["ReconstructableJob", "ReconstructableRepository", "RepositorySnap"]
