"""PEP 508 environment markers (`; python_version < "3.11"`, `; extra == "test"`) of a wheel's
Requires-Dist, evaluated for the runtime: does the requirement apply on the cluster? No extras
are installed, and the emulator's own Python stands for the runtime's."""

import operator
import os
import platform
import re
import sys

_TOKEN = re.compile(r"""\s*(\(|\)|and\b|or\b|not\s+in\b|in\b|===|==|!=|<=|>=|~=|<|>|'[^']*'|"[^"]*"|\w+)""")
_VERSION = re.compile(r"\d+(\.\d+)*")
_OPERATORS = {"==": operator.eq, "===": operator.eq, "!=": operator.ne, "<": operator.lt,
              "<=": operator.le, ">": operator.gt, ">=": operator.ge}

ENVIRONMENT = {
    "python_version": "%d.%d" % sys.version_info[:2],
    "python_full_version": platform.python_version(),
    "os_name": os.name,
    "sys_platform": sys.platform,
    "platform_system": platform.system(),
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "implementation_name": sys.implementation.name,
    "platform_python_implementation": platform.python_implementation(),
    "extra": "",
}


def marker_holds(marker: str) -> bool:
    """Whether `marker` holds; one the emulator cannot read is taken to hold (the stricter
    answer: the requirement is then needed)."""
    try:
        tokens = _tokens(marker)
        holds = _any(tokens)
    except (IndexError, KeyError, ValueError):
        return True
    return holds if not tokens else True


def _tokens(marker: str) -> list[str]:
    tokens, position, end = [], 0, len(marker.rstrip())
    while position < end:
        match = _TOKEN.match(marker, position)
        if match is None:
            raise ValueError(f"cannot read marker {marker!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _any(tokens: list[str]) -> bool:
    holds = _all(tokens)
    while tokens and tokens[0] == "or":
        tokens.pop(0)
        holds = _all(tokens) or holds  # evaluate first: it consumes its tokens
    return holds


def _all(tokens: list[str]) -> bool:
    holds = _one(tokens)
    while tokens and tokens[0] == "and":
        tokens.pop(0)
        holds = _one(tokens) and holds
    return holds


def _one(tokens: list[str]) -> bool:
    if tokens[0] == "(":
        tokens.pop(0)
        holds = _any(tokens)
        if tokens.pop(0) != ")":
            raise ValueError("unbalanced parentheses")
        return holds
    left, op, right = (tokens.pop(0) for _ in range(3))
    return _compare(_value(left), " ".join(op.split()), _value(right))


def _value(token: str) -> str:
    if token[0] in "'\"":
        return token[1:-1]
    return ENVIRONMENT[token]


def _compare(left: str, op: str, right: str) -> bool:
    if op in ("in", "not in"):
        return (left in right) == (op == "in")
    if op == "===" or not (_VERSION.fullmatch(left) and _VERSION.fullmatch(right)):
        # Not two versions: compared as strings (`~=` needs versions, so it cannot tell).
        return _OPERATORS[op](left, right) if op in _OPERATORS else True
    width = max(left.count("."), right.count(".")) + 1
    a, b = _version(left, width), _version(right, width)
    if op == "~=":  # compatible release: >= right, and the same release up to its last part
        return a >= b and a[:right.count(".")] == b[:right.count(".")]
    return _OPERATORS[op](a, b)


def _version(text: str, width: int) -> tuple[int, ...]:
    """'3.11' -> (3, 11, 0) for width 3: "3.11" == "3.11.0"."""
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (width - len(parts)))
