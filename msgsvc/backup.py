"""``python -m msgsvc.backup DB COPY``: a consistent copy of a running server's database.

SQLite's online backup reads the database page by page under its own
locks, so the copy is whole even while the server writes (WAL and all);
``cp`` of a live database can copy a torn file and leaves the WAL behind.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from contextlib import closing


def backup(source: str, destination: str) -> None:
    """Copy the database at ``source`` to ``destination`` (replaced if it exists)."""
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src:
        with closing(sqlite3.connect(destination)) as dst:
            src.backup(dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m msgsvc.backup", description="A consistent copy of a running msgsvc server's database."
    )
    parser.add_argument("database", help="the server's --db file")
    parser.add_argument("copy", help="where to write the copy")
    args = parser.parse_args(argv)
    try:
        backup(args.database, args.copy)
    except sqlite3.Error as e:
        print(f"msgsvc backup: {args.database}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
