"""SQLite username logs the tests start from: one an old msgsvc wrote, one of many names."""

from __future__ import annotations

import os
import sqlite3

from msgsvc.state.sqlite import Database

#: A username log written by msgsvc before accounts (schema version 1, commit af8db63).
VERSION_1 = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "usernames-v1.sqlite3")


def big_log(path: str, names: int) -> None:
    """Make the SQLite username log at ``path`` with ``names`` offline names in it."""
    Database(path).close()
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO users VALUES (?, ?, 1.0, 1.0)", ((f"user{i:06d}", f"user{i:06d}") for i in range(names))
        )
    db.close()
