"""Where the orchestrator itself looks for new data: landing file sets and external tables."""

import dagster as dg

from resources.paths import landing_dir


class LandingArea(dg.ConfigurableResource):
    """The landing directory as the orchestrator sees it (for observations, not for jobs).

    A file set counts only once its newest file is `settle_seconds` old, so a set that is still
    being written is not taken for a new version.
    """

    path: str
    settle_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> "LandingArea":
        """PLATFORM_LANDING_DIR (default `.local/landing`), PLATFORM_LANDING_SETTLE_SECONDS."""
        settle = dg.EnvVar("PLATFORM_LANDING_SETTLE_SECONDS").get_value()
        return cls(path=landing_dir(), **({"settle_seconds": float(settle)} if settle else {}))
