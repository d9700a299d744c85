"""The sensor that observes every source and records the versions it has not seen before."""

from __future__ import annotations

import json

import dagster as dg

from platform_assets.sources import DATA_VERSION_TAG, Source, observe
from resources.landing_area import LandingArea


def new_observations(
    sources: list[Source], landing: LandingArea, seen: dict[str, str], log
) -> tuple[list[dg.AssetObservation], dict[str, str]]:
    """Observe each source; return events for versions not in `seen`, and the updated `seen`.

    A source that cannot be read is logged and skipped, so one broken table does not hide
    the new versions of the others.
    """
    events, seen = [], dict(seen)
    for source in sources:
        name = source.key.to_user_string()
        try:
            observation = observe(source, landing)
        except Exception as error:  # noqa: BLE001 - reported, then the next source
            log.warning(f"cannot observe {name} at {source.location(landing)}: {error}")
            continue
        if observation is not None and seen.get(name) != observation.version:
            events.append(observation.event(source.key))
            seen[name] = observation.version
    return events, seen


def recorded_versions(instance: dg.DagsterInstance, sources: list[Source]) -> dict[str, str]:
    """The latest data version the instance holds for each source (a first tick's baseline)."""
    seen = {}
    for source in sources:
        records = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=source.key), limit=1)
        for record in records.records:
            version = record.event_log_entry.tags.get(DATA_VERSION_TAG)
            if version is not None:
                seen[source.key.to_user_string()] = version
    return seen


def source_sensor(sources: list[Source], interval_seconds: int) -> dg.SensorDefinition:
    """Each tick records an observation per source whose version changed; the automation
    sensor then starts the tables that read it. The cursor (in the instance) holds the versions
    seen, so a daemon restart neither repeats nor misses one."""

    @dg.sensor(
        name="observe_sources",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Records a new version of a landing file set or external Delta table.",
    )
    def _sensor(context: dg.SensorEvaluationContext, landing: LandingArea) -> dg.SensorResult:
        seen = json.loads(context.cursor) if context.cursor else recorded_versions(context.instance, sources)
        events, seen = new_observations(sources, landing, seen, context.log)
        if events:
            context.log.info("new versions: " + ", ".join(
                f"{event.asset_key.to_user_string()}={event.tags[DATA_VERSION_TAG]}" for event in events))
        return dg.SensorResult(asset_events=events, cursor=json.dumps(seen, sort_keys=True))

    return _sensor
