"""`python -m scripts.spark_server {start,stop,status}`: the machine's warm Spark server.

Settings come from the environment (PLATFORM_SPARK_THREADS, PLATFORM_SPARK_MEMORY,
PLATFORM_SPARK_PORT, PLATFORM_SPARK_IDLE_STOP_MINUTES, PLATFORM_SPARK_DIR), as for the jobs.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from resources.spark_server import LocalSparkServer, ServerStatus, SparkServerError


def start(server: LocalSparkServer) -> int:
    url = server.ensure_running()
    status = server.status()
    print(f"Spark Connect server ready at {url}")
    print(f"  log: {status.log if status else server.state_dir + '/server.log'}")
    return 0


def stop(server: LocalSparkServer) -> int:
    status = server.status()
    if server.stop():
        where = f"{status.url}, supervisor pid {status.pid}, JVM pid {status.jvm_pid}" if status else server.state_dir
        print(f"stopped the Spark server ({where})")
    else:
        print(f"no Spark server was running (state in {server.state_dir})")
    return 0


def status(server: LocalSparkServer) -> int:
    current = server.status()
    if current is None:
        print(f"not running (state in {server.state_dir})")
        return 0
    print(describe(current))
    return 0


def describe(status: ServerStatus) -> str:
    uptime = timedelta(seconds=round(status.uptime.total_seconds()))
    settings = " ".join(f"{key}={value}" for key, value in status.settings.items())
    leases = ", ".join(map(str, status.leases)) if status.leases else "none"
    return "\n".join([
        f"Spark Connect server at {status.url} ({'healthy' if status.healthy else 'NOT answering'})",
        f"  supervisor pid {status.pid}, JVM pid {status.jvm_pid} ({status.jvm_rss_bytes / 2**20:.0f} MB resident)",
        f"  up {uptime}, since {status.started_at:%Y-%m-%d %H:%M:%S} UTC",
        f"  settings: {settings}",
        f"  leases held by pids: {leases}",
        f"  log: {status.log}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.spark_server", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    command = parser.parse_args(argv).command
    try:
        server = LocalSparkServer.from_env()
        return {"start": start, "stop": stop, "status": status}[command](server)
    except (SparkServerError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
