"""Data the platform reads but does not write, and how its versions are observed.

Two kinds: landing file sets (`<landing>/<dataset>/*.parquet`, versioned by a fingerprint of
their files) and external Delta tables (versioned by their Delta log, read with `deltalake`,
no Spark). Each is an observable source asset; a new version starts the tables reading it.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from jobs.table import ExternalTable, external_table_path
from resources.landing_area import LandingArea

# The tag under which Dagster keeps an observation's data version (what ObserveResult sets).
DATA_VERSION_TAG = "dagster/data_version"


@dataclass(frozen=True)
class Source:
    """One observed input: a landing dataset (`dataset`) or an external table (`table`)."""

    key: dg.AssetKey
    dataset: str | None = None
    table: ExternalTable | None = None

    def location(self, landing: LandingArea) -> str:
        if self.table is not None:
            return external_table_path(landing.path, self.table.name)
        return str(Path(landing.path) / self.dataset)


@dataclass(frozen=True)
class Observation:
    version: str
    metadata: dict

    def event(self, key: dg.AssetKey) -> dg.AssetObservation:
        return dg.AssetObservation(
            asset_key=key, metadata=self.metadata, tags={DATA_VERSION_TAG: self.version}
        )


def landing_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["landing", dataset])


def observe(source: Source, landing: LandingArea) -> Observation | None:
    """The source's current version, or None while it does not exist (or is still settling)."""
    location = source.location(landing)
    if source.table is not None:
        return _observe_delta_table(location)
    return _observe_file_set(location, landing.settle_seconds)


def _observe_delta_table(location: str) -> Observation | None:
    try:
        table = DeltaTable(location)
    except TableNotFoundError:
        return None
    commit = table.history(1)[0]
    return Observation(
        version=str(table.version()),
        metadata={
            "delta_version": table.version(),
            "operation": commit.get("operation", ""),
            "committed_at": dg.MetadataValue.timestamp(commit["timestamp"] / 1000),
            "location": dg.MetadataValue.path(location),
        },
    )


def _observe_file_set(location: str, settle_seconds: float) -> Observation | None:
    files = sorted(Path(location).glob("*.parquet"))
    if not files:
        return None
    stats = [(file.name, file.stat()) for file in files]
    newest = max(stat.st_mtime for _, stat in stats)
    if time.time() - newest < settle_seconds:
        return None
    fingerprint = hashlib.sha256(
        "\n".join(f"{name} {stat.st_size} {stat.st_mtime_ns}" for name, stat in stats).encode()
    ).hexdigest()[:16]
    return Observation(
        version=fingerprint,
        metadata={
            "file_count": len(stats),
            "bytes": sum(stat.st_size for _, stat in stats),
            "newest_file_at": dg.MetadataValue.timestamp(newest),
            "location": dg.MetadataValue.path(location),
        },
    )


def source_asset(source: Source) -> dg.SourceAsset:
    """The observable source asset of `source`; the UI's Observe button runs `observe`."""
    if source.table is not None:
        group, kind, description = source.table.schema, "delta", source.table.description
    else:
        group, kind, description = "landing", "parquet", f"Landing files under <landing>/{source.dataset}/"

    def _observe(landing: LandingArea) -> dg.ObserveResult:
        observation = observe(source, landing)
        if observation is None:
            raise dg.Failure(f"{source.key.to_user_string()}: nothing at {source.location(landing)} yet")
        return dg.ObserveResult(
            data_version=dg.DataVersion(observation.version), metadata=observation.metadata
        )

    # Beta in this Dagster release; the automation sensor only counts observations as input
    # updates for observable sources, so this is the declaration that makes them triggers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.observable_source_asset(
            key=source.key,
            group_name=group,
            description=description or None,
            tags={f"dagster/kind/{kind}": ""},
        )(_observe)
