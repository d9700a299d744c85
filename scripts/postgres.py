"""`python -m scripts.postgres {start,stop,status,env}`: the project's embedded PostgreSQL.

With `PLATFORM_INSTANCE=postgres` and no `PLATFORM_PG_HOST`, the Dagster instance keeps its runs,
event log and schedules in this server: Debian's PostgreSQL (package `postgresql`, binaries in
/usr/lib/postgresql/<version>/bin), run from the project, listening on 127.0.0.1 only. Its files
live under `PLATFORM_PG_DIR` (default `.local/postgres`):

    data/         the cluster, made by initdb on the first start
    socket/       its Unix socket: the superuser's setup commands use it (peer authentication)
    server.log    the server's log
    server.json   the port chosen at the first start; every later start reuses it
    lock          one process at a time starts or stops the server

Dagster connects over TCP as PLATFORM_PG_USER (default `dagster`) to PLATFORM_PG_DB (`dagster`),
with PLATFORM_PG_PASSWORD, or, for this embedded server only, the local default below. `start`
creates that role and database, and sets the password, each time it is called; `env` prints the
`export` lines that point Dagster at the server (docs/settings.md, "PostgreSQL storage").
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pwd
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from resources.paths import local_dir

HOST_ENV = "PLATFORM_PG_HOST"
PORT_ENV = "PLATFORM_PG_PORT"
DB_ENV = "PLATFORM_PG_DB"
USER_ENV = "PLATFORM_PG_USER"
PASSWORD_ENV = "PLATFORM_PG_PASSWORD"
CONNECTION_ENVS = (HOST_ENV, PORT_ENV, DB_ENV, USER_ENV, PASSWORD_ENV)

LOCAL_HOST = "127.0.0.1"
DEFAULT_DB = "dagster"
DEFAULT_USER = "dagster"
# For the embedded server only: it listens on 127.0.0.1 alone, so the password guards nothing a
# local user could not read anyway. A managed server's password must come from the environment.
DEV_PASSWORD = "platform-dev"
MANAGED_PORT = "5432"

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"  # Debian's package creates it; initdb and pg_ctl refuse to run as root
START_TIMEOUT_SECONDS = 60


class PostgresError(RuntimeError):
    """The embedded server cannot be set up, started or reached; the message says what is missing."""


@dataclass(frozen=True)
class Dirs:
    """Where the embedded server keeps its files (see the module docstring)."""

    root: Path

    @classmethod
    def from_env(cls) -> Dirs:
        return cls(Path(local_dir("PLATFORM_PG_DIR", "postgres")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return self.root / "socket"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def state(self) -> Path:
        return self.root / "server.json"

    @property
    def lock(self) -> Path:
        return self.root / "lock"


# --- finding the server's binaries -------------------------------------------------------------

def installed_versions(root: Path = DEBIAN_ROOT) -> dict[str, Path]:
    """Debian's server binary directories by major version: {"15": /usr/lib/postgresql/15/bin}."""
    found = {}
    for candidate in root.glob("*/bin"):
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            found[candidate.parent.name] = candidate
    return found


def pick_bin_dir(installed: Mapping[str, Path], data_version: str | None) -> Path:
    """The binaries of the data directory's version if it has one, else of the newest version."""
    if not installed:
        raise PostgresError(
            f"PostgreSQL's server is not installed: no {DEBIAN_ROOT}/<version>/bin/initdb. "
            "Install Debian's `postgresql` package (apt-get install postgresql; .ci/run does).")
    if data_version is None:
        return installed[max(installed, key=_version_key)]
    if data_version not in installed:
        raise PostgresError(
            f"the data directory was made by PostgreSQL {data_version}, whose server is not "
            f"installed (installed: {', '.join(sorted(installed, key=_version_key))}). "
            f"Install postgresql-{data_version}, or `make postgres-stop` and remove the data directory.")
    return installed[data_version]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def data_version(dirs: Dirs) -> str | None:
    """The major version that made the data directory, None before the first initdb."""
    version_file = dirs.data / "PG_VERSION"
    return version_file.read_text().strip() if version_file.exists() else None


def bin_dir(dirs: Dirs) -> Path:
    return pick_bin_dir(installed_versions(), data_version(dirs))


# --- running the server's commands --------------------------------------------------------------

def running_as_root() -> bool:
    return os.geteuid() == 0


def as_server_user(command: list[str], as_root: bool) -> list[str]:
    """The command as the unprivileged `postgres` user when we are root (initdb and pg_ctl
    refuse root), else as ourselves."""
    return ["runuser", "-u", SERVER_USER, "--", *command] if as_root else command


def server_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for the server's commands: without the caller's PG* variables, which
    point libpq at a managed server (PGHOST, PGSSLMODE, ...), not at ours."""
    return {key: value for key, value in environ.items() if not key.startswith("PG")}


def run(command: list[str], dirs: Dirs, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run a server command in the state directory (the postgres user may not be able to enter
    the caller's working directory); fail with its output."""
    result = subprocess.run(
        as_server_user(command, running_as_root()), cwd=dirs.root, input=stdin, text=True,
        capture_output=True, env=server_env(os.environ))
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise PostgresError(f"{Path(command[0]).name} failed (exit {result.returncode}): {output}")
    return result


def prepare_dirs(dirs: Dirs) -> None:
    """Make the state directory; as root, hand it (and only it) to the postgres user."""
    dirs.socket.mkdir(parents=True, exist_ok=True)
    # The socket is for the superuser's commands alone.
    dirs.socket.chmod(0o700)
    if not running_as_root():
        return
    try:
        account = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresError(
            f"running as root, but there is no `{SERVER_USER}` user to run the server as: "
            "Debian's postgresql package creates it (or run as a non-root user)") from None
    for path in (dirs.root, dirs.socket):
        os.chown(path, account.pw_uid, account.pw_gid)
    unreachable = first_unreachable(dirs.root)
    if unreachable is not None:
        raise PostgresError(
            f"the `{SERVER_USER}` user cannot reach {dirs.root}: it may not enter {unreachable}. "
            f"Allow it (chmod o+x {unreachable}) or set PLATFORM_PG_DIR to a directory it can reach.")


def first_unreachable(path: Path) -> Path | None:
    """The first directory on the way to `path` (itself included) that the postgres user may not
    enter, None if it can write `path`. Asked of the system, so groups and ACLs count."""
    if _as_postgres_test("-w", path) and _as_postgres_test("-x", path):
        return None
    for directory in [*reversed(path.parents), path]:
        if not _as_postgres_test("-x", directory):
            return directory
    return path


def _as_postgres_test(flag: str, path: Path) -> bool:
    return subprocess.run(as_server_user(["test", flag, str(path)], True)).returncode == 0


@contextlib.contextmanager
def locked(dirs: Dirs) -> Iterator[None]:
    """One process at a time starts or stops the server (a test session and `make dev` may)."""
    dirs.root.mkdir(parents=True, exist_ok=True)
    with dirs.lock.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- the port --------------------------------------------------------------------------------

def recorded_port(dirs: Dirs) -> int | None:
    """The port of the server's first start, kept so that settings and clients stay valid."""
    try:
        return int(json.loads(dirs.state.read_text())["port"])
    except (FileNotFoundError, KeyError, ValueError):
        return None


def record_port(dirs: Dirs, port: int) -> None:
    dirs.state.write_text(json.dumps({"host": LOCAL_HOST, "port": port}) + "\n")


def port_free(port: int) -> bool:
    """Nothing listens on the port. SO_REUSEADDR, as the server sets it: connections of a server
    stopped a moment ago (TIME_WAIT) do not make its port taken."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOCAL_HOST, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCAL_HOST, 0))
        return probe.getsockname()[1]


def choose_port(recorded: int | None) -> int:
    """The recorded port while it is free, else a new free one (another program took it)."""
    return recorded if recorded is not None and port_free(recorded) else free_port()


# --- the Dagster role and database ---------------------------------------------------------------

def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    # standard_conforming_strings is on (the default since 9.1): only quotes need doubling.
    return "'" + value.replace("'", "''") + "'"


def setup_sql(db: str, user: str, password: str) -> str:
    """psql input that creates the role and the database if missing and sets the password.
    Given on stdin, so the password never shows in a process list."""
    return "\n".join([
        "\\set ON_ERROR_STOP on",
        f"SELECT 'CREATE ROLE ' || {quote_literal(quote_ident(user))} || ' LOGIN'"
        f" WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {quote_literal(user)}) \\gexec",
        f"ALTER ROLE {quote_ident(user)} WITH LOGIN PASSWORD {quote_literal(password)};",
        # CREATE DATABASE cannot run in a DO block (a transaction): \gexec runs it if needed.
        f"SELECT 'CREATE DATABASE ' || {quote_literal(quote_ident(db))} || ' OWNER '"
        f" || {quote_literal(quote_ident(user))}"
        f" WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {quote_literal(db)}) \\gexec",
        "",
    ])


def superuser_psql(dirs: Dirs, port: int, sql: str) -> str:
    """Run `sql` as the cluster's superuser through the Unix socket; return psql's output."""
    psql = str(bin_dir(dirs) / "psql")
    command = [psql, "-X", "-q", "-A", "-t", "-h", str(dirs.socket), "-p", str(port), "-d", "postgres"]
    return run(command, dirs, stdin=sql).stdout


def drop_database(dirs: Dirs, db: str) -> None:
    """Remove a database of the running server, if it exists (tests start from an empty one)."""
    port = recorded_port(dirs)
    if port is None:
        raise PostgresError(f"the embedded PostgreSQL has not been started ({dirs.root})")
    superuser_psql(dirs, port, f"\\set ON_ERROR_STOP on\nDROP DATABASE IF EXISTS {quote_ident(db)} WITH (FORCE);\n")


# --- connection settings ---------------------------------------------------------------------------

def is_embedded(environ: Mapping[str, str], embedded_port: int | None) -> bool:
    """No PLATFORM_PG_HOST, or the address the embedded server's `env` printed: the project's
    server. Any other host is a managed server."""
    host = environ.get(HOST_ENV)
    if not host:
        return True
    port = environ.get(PORT_ENV)
    return (host in (LOCAL_HOST, "localhost") and embedded_port is not None
            and port in (None, "", str(embedded_port)))


def connection_env(environ: Mapping[str, str], embedded_port: int | None) -> dict[str, str]:
    """The five PLATFORM_PG_* values the PostgreSQL instance yaml reads: the environment's where
    set, else the embedded server's address and the defaults."""
    if is_embedded(environ, embedded_port):
        if embedded_port is None:
            raise PostgresError("the embedded PostgreSQL has not been started: make postgres-start")
        defaults = {HOST_ENV: LOCAL_HOST, PORT_ENV: str(embedded_port), PASSWORD_ENV: DEV_PASSWORD}
        environ = {**environ, HOST_ENV: LOCAL_HOST, PORT_ENV: str(embedded_port)}
    else:
        if not environ.get(PASSWORD_ENV):
            raise PostgresError(
                f"{PASSWORD_ENV} is not set: the password of a managed PostgreSQL "
                f"({HOST_ENV}={environ[HOST_ENV]}) must come from the environment")
        defaults = {PORT_ENV: MANAGED_PORT}
    defaults |= {DB_ENV: DEFAULT_DB, USER_ENV: DEFAULT_USER}
    return {name: environ.get(name) or defaults[name] for name in CONNECTION_ENVS}


def export_lines(values: Mapping[str, str], environ: Mapping[str, str]) -> list[str]:
    """Shell `export` lines for the values the environment does not already hold."""
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()
            if environ.get(name) != value]


# --- start, stop, status ---------------------------------------------------------------------------

def is_running(dirs: Dirs) -> bool:
    """The server of this data directory is up (pg_ctl's own check of postmaster.pid)."""
    if not (dirs.data / "postmaster.pid").exists():
        return False  # no binaries needed: `stop` works even after the package is removed
    pg_ctl = str(bin_dir(dirs) / "pg_ctl")
    result = subprocess.run(as_server_user([pg_ctl, "status", "-D", str(dirs.data)], running_as_root()),
                            cwd=dirs.root, capture_output=True, env=server_env(os.environ))
    return result.returncode == 0


def initdb(dirs: Dirs) -> None:
    """A new cluster: the superuser is the OS user that runs the server, reachable through the
    socket by peer authentication only; TCP clients need a password."""
    command = [str(bin_dir(dirs) / "initdb"), "-D", str(dirs.data), "--encoding=UTF8", "--no-locale",
               "--auth-local=peer", "--auth-host=scram-sha-256",
               # A development cluster: skipping the fsyncs makes initdb several times faster.
               "--no-sync"]
    run(command, dirs)


def server_options(dirs: Dirs, port: int) -> str:
    """postgres options for pg_ctl -o (it passes them through the shell, hence the quoting)."""
    return " ".join([
        f"-c listen_addresses={LOCAL_HOST}",
        f"-c port={port}",
        f"-c unix_socket_directories={shlex.quote(str(dirs.socket))}",
    ])


def start(dirs: Dirs, environ: Mapping[str, str]) -> dict[str, str]:
    """Start the server unless it runs (initdb on the first start), make sure the Dagster role
    and database exist with the current password; return the connection values."""
    with locked(dirs):
        prepare_dirs(dirs)
        bin_dir(dirs)  # fail here, naming the package, when it is not installed
        if data_version(dirs) is None:
            initdb(dirs)
        port = recorded_port(dirs)
        if not is_running(dirs):
            port = choose_port(port)
            record_port(dirs, port)
            run([str(bin_dir(dirs) / "pg_ctl"), "start", "-D", str(dirs.data), "-l", str(dirs.log),
                 "-w", "-t", str(START_TIMEOUT_SECONDS), "-o", server_options(dirs, port)], dirs)
        # An embedded server's connection, with this environment's db, user and password.
        values = connection_env({k: v for k, v in environ.items() if k != HOST_ENV}, port)
        superuser_psql(dirs, port, setup_sql(values[DB_ENV], values[USER_ENV], values[PASSWORD_ENV]))
        return values


def empty_database(dirs: Dirs, db: str) -> dict[str, str]:
    """Start the server unless it runs, and give it an empty database `db` (dropped first if it
    exists); return the connection values that reach it."""
    environ = {**os.environ, DB_ENV: db}
    start(dirs, environ)
    drop_database(dirs, db)
    return start(dirs, environ)  # the server runs now: this only creates the database again


def stop(dirs: Dirs) -> bool:
    """Stop the server if it runs (fast shutdown: open sessions are ended); True if it ran."""
    with locked(dirs):
        if not is_running(dirs):
            return False
        run([str(bin_dir(dirs) / "pg_ctl"), "stop", "-D", str(dirs.data), "-m", "fast", "-w"], dirs)
        return True


def server_pid(dirs: Dirs) -> int | None:
    try:
        return int((dirs.data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None


def describe(dirs: Dirs) -> str:
    if not is_running(dirs):
        return f"not running (state in {dirs.root})"
    return "\n".join([
        f"PostgreSQL {data_version(dirs)} running at {LOCAL_HOST}:{recorded_port(dirs)} (pid {server_pid(dirs)})",
        f"  data: {dirs.data}",
        f"  log: {dirs.log}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.postgres", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    command = parser.parse_args(argv).command
    dirs = Dirs.from_env()
    try:
        if command == "start":
            started = time.monotonic()
            was_running = is_running(dirs)
            values = start(dirs, os.environ)
            state = "already running" if was_running else f"started in {time.monotonic() - started:.1f} s"
            print(f"PostgreSQL at {values[HOST_ENV]}:{values[PORT_ENV]}, database {values[DB_ENV]}, "
                  f"user {values[USER_ENV]}: {state} (log {dirs.log})")
        elif command == "stop":
            print(f"stopped PostgreSQL ({dirs.data})" if stop(dirs) else f"PostgreSQL was not running ({dirs.root})")
        elif command == "status":
            print(describe(dirs))
        else:
            values = connection_env(os.environ, recorded_port(dirs))
            if is_embedded(os.environ, recorded_port(dirs)) and not is_running(dirs):
                raise PostgresError("the embedded PostgreSQL is not running: make postgres-start")
            print("\n".join(export_lines(values, os.environ)))
        return 0
    except PostgresError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
