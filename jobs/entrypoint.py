"""`python -m jobs.entrypoint <schema.table> [pipes arguments]`: the process a runner starts.

On Databricks the same `main` runs from a small launcher script (see resources/job_package.py);
Pipes may append its bootstrap arguments after the table name.
"""

import sys

from jobs.registry import discover
from jobs.runtime import run_table


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: python -m jobs.entrypoint <schema.table>")
    declarations = discover()
    tables = declarations.tables
    if argv[1] not in tables:
        sys.exit(f"unknown table {argv[1]}; declared tables: {', '.join(sorted(tables))}")
    run_table(tables[argv[1]], declarations)


if __name__ == "__main__":
    main(sys.argv)
