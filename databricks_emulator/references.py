"""Dynamic value references (`{{job.parameters.date}}`, `{{task.run_id}}`, ...) in task
parameters, resolved when the task starts.

As Databricks documents: a reference outside the known namespaces (or with a syntax error,
or spaces inside the braces) stays literal text; a reference inside a known namespace that
does not resolve is an error (here: the task fails with that message). Identifiers with
other characters than letters, digits and `_` are quoted with backticks:
`{{job.parameters.`my-param`}}`.
"""

import re
from datetime import datetime, timezone

_REFERENCE = re.compile(r"\{\{([^{}]*)\}\}")
KNOWN_NAMESPACES = ("job", "task", "tasks", "workspace", "backfill")
# The older "task parameter variables", still accepted by Databricks.
DEPRECATED = ("job_id", "run_id", "parent_run_id", "task_key", "start_date", "start_time",
              "task_retry_count")


class UnresolvedReference(Exception):
    """A reference in a known namespace that has no value; the task fails with this text."""


def reference_values(*, job_id: int, job_name: str, job_run_id: int, repair_count: int,
                     job_start_ms: int, parameters: dict[str, str], task_key: str,
                     task_run_id: int, task_start_ms: int) -> dict[tuple, str]:
    """Every reference the emulator resolves, keyed by its path."""
    job_start = datetime.fromtimestamp(job_start_ms / 1000, timezone.utc)
    task_start = datetime.fromtimestamp(task_start_ms / 1000, timezone.utc)
    values = {
        ("job", "id"): str(job_id),
        ("job", "name"): job_name,
        ("job", "run_id"): str(job_run_id),
        ("job", "repair_count"): str(repair_count),
        ("job", "start_time", "iso_date"): job_start.strftime("%Y-%m-%d"),
        ("job", "start_time", "timestamp_ms"): str(job_start_ms),
        ("task", "name"): task_key,
        ("task", "run_id"): str(task_run_id),
        # Deprecated spellings: run_id is the *task* run, parent_run_id the job run.
        ("job_id",): str(job_id),
        ("run_id",): str(task_run_id),
        ("parent_run_id",): str(job_run_id),
        ("task_key",): task_key,
        ("start_date",): task_start.strftime("%Y-%m-%d"),
        ("start_time",): str(task_start_ms),
        ("task_retry_count",): "0",  # the emulator does not retry tasks
    }
    for name, value in parameters.items():
        values[("job", "parameters", name)] = value
    return values


def resolve(text: str, values: dict[tuple, str]) -> str:
    """`text` with each reference replaced; raises UnresolvedReference."""

    def replace(match: re.Match) -> str:
        path = _path(match.group(1))
        if path is None:
            return match.group(0)
        if path in values:
            return values[path]
        if path[0] in KNOWN_NAMESPACES or (len(path) == 1 and path[0] in DEPRECATED):
            raise UnresolvedReference(_why(match.group(0), path))
        return match.group(0)

    return _REFERENCE.sub(replace, text)


def _path(inner: str) -> tuple | None:
    """'job.parameters.`a-b`' -> ('job', 'parameters', 'a-b'); None when it is no reference."""
    parts, rest = [], inner
    while True:
        if rest.startswith("`"):
            end = rest.find("`", 1)
            if end < 0:
                return None
            parts.append(rest[1:end])
            rest = rest[end + 1:]
        else:
            match = re.match(r"[A-Za-z0-9_]+", rest)
            if not match:
                return None
            parts.append(match.group(0))
            rest = rest[match.end():]
        if not rest:
            return tuple(parts)
        if not rest.startswith("."):
            return None
        rest = rest[1:]


def _why(reference: str, path: tuple) -> str:
    if path[:2] == ("job", "parameters") and len(path) == 3:
        return f"{reference}: the job has no parameter named {path[2]!r}."
    return f"{reference} is not a valid dynamic value reference (or the emulator does not support it)."
