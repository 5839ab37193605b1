"""SQLite storage for one organisation: opening a database durably and writing atomically.

Every organisation in a world has one SQLite file (WAL journal). Components keep their tables in it.
This module must never know what the tables mean; it only opens, migrates and brackets transactions,
so that a refused or failed operation leaves nothing half-written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["connect", "ensure_schema", "transaction"]


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (creating if needed) an organisation's database in WAL mode.

    ``synchronous=NORMAL`` in WAL mode survives a crash of the process at any point; only a power cut can lose
    the last transactions. That is the trade-off a real server with a UPS makes (DATA-002) and it keeps the
    in-process driver fast enough to measure the cryptography rather than fsync.
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All-or-nothing: BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception. Nests by savepoint."""
    if conn.in_transaction:
        name = f"sp_{id(conn)}_{abs(hash(object()))}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def ensure_schema(conn: sqlite3.Connection, ddl: str) -> None:
    """Apply idempotent DDL (CREATE … IF NOT EXISTS)."""
    conn.executescript(ddl)
