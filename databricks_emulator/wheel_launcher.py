"""Runs a python_wheel_task inside the task process (started by path, so the task's python
needs nothing from the emulator): `python wheel_launcher.py PACKAGE ENTRY_POINT ARGS...`.

As on Databricks: the named entry point from the package's metadata if there is one,
otherwise the function PACKAGE.ENTRY_POINT.
"""

import importlib
import sys
from importlib import metadata


def _entry_point(package_name: str, name: str):
    try:
        distribution = metadata.distribution(package_name)
    except metadata.PackageNotFoundError:
        return None
    for entry_point in distribution.entry_points:
        if entry_point.name == name:
            return entry_point.load()
    return None


def main() -> None:
    package_name, entry_point_name, *parameters = sys.argv[1:]
    function = _entry_point(package_name, entry_point_name)
    if function is None:
        module = importlib.import_module(package_name.replace("-", "_"))
        function = getattr(module, entry_point_name)
    sys.argv = [package_name, *parameters]
    result = function()
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
