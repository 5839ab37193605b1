"""Append-only, hash-chained tables: the audit trail and the 情報提供等記録 (provision records).

Each row stores the SHA-256 of (previous hash, sequence number, canonical JSON of the row), so any edit,
deletion, reordering or gap shows up when the chain is recomputed; SQLite triggers refuse UPDATE and DELETE,
and the head (last sequence and hash) is kept in a separate table so that a cut-off tail is found too.
This module must never interpret the records; it only appends them and proves they are intact (LOG-005).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from simulator.store.db import transaction

__all__ = ["CHAINED_TABLES", "ChainBreak", "HashChain", "canonical_json", "verify_chain"]

GENESIS = "0" * 64
CHAINED_TABLES = ("audit_trail", "provision_records")


def canonical_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _row_hash(prev: str, seq: int, payload: str) -> str:
    return hashlib.sha256(f"{prev}|{seq}|{payload}".encode()).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    table: str
    seq: int
    problem: str  # "edited", "gap", "head_mismatch", "missing_head"

    def describe(self) -> str:
        return f"{self.table} #{self.seq}: {self.problem}"


class HashChain:
    """One append-only table. ``append`` must be called inside the caller's transaction when it has one."""

    def __init__(self, conn: sqlite3.Connection, table: str) -> None:
        if table not in CHAINED_TABLES:
            raise ValueError(f"table: must be one of {CHAINED_TABLES}")
        self.conn = conn
        self.table = table
        self._pending: list[tuple[str, str, str | None, str, str]] | None = None
        conn.executescript(
            f"""
            CREATE TABLE IF NOT EXISTS {table} (
                seq INTEGER PRIMARY KEY,
                at TEXT NOT NULL,
                kind TEXT NOT NULL,
                correlation_id TEXT,
                data TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {table}_corr ON {table}(correlation_id);
            CREATE INDEX IF NOT EXISTS {table}_kind ON {table}(kind);
            CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
                BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;
            CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
                BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;
            CREATE TABLE IF NOT EXISTS chain_heads (
                tbl TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL
            );
            """
        )

    def append(self, *, at: str, kind: str, data: Mapping[str, Any], correlation_id: str | None = None) -> int:
        data_json = canonical_json(data)
        # Same bytes as canonical_json({"at", "correlation_id", "data", "kind"}) with keys sorted, built without
        # serialising ``data`` twice: appends are on every hop's path.
        payload = (
            f'{{"at":{json.dumps(at, ensure_ascii=False)},"correlation_id":'
            f'{json.dumps(correlation_id, ensure_ascii=False)},"data":{data_json},'
            f'"kind":{json.dumps(kind, ensure_ascii=False)}}}'
        )
        if self._pending is not None:
            self._pending.append((at, kind, correlation_id, data_json, payload))
            return -1
        if self.conn.in_transaction:
            return self._write([(at, kind, correlation_id, data_json, payload)])
        with transaction(self.conn):
            return self._write([(at, kind, correlation_id, data_json, payload)])

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Collect appends and write them together when the block ends; discard them if it raises.

        Used inside one component step's transaction: the step's audit rows are chained and stored with one
        head read and one head write instead of one of each per row.
        """
        if self._pending is not None:
            yield
            return
        self._pending = []
        try:
            yield
            pending, self._pending = self._pending, None
            if pending:
                self._write(pending)
        finally:
            self._pending = None

    def _write(self, rows: list[tuple[str, str, str | None, str, str]]) -> int:
        head = self.conn.execute("SELECT seq, hash FROM chain_heads WHERE tbl = ?", (self.table,)).fetchone()
        seq, prev = (head[0], head[1]) if head else (0, GENESIS)
        values = []
        for at, kind, correlation_id, data_json, payload in rows:
            seq += 1
            digest = _row_hash(prev, seq, payload)
            values.append((seq, at, kind, correlation_id, data_json, prev, digest))
            prev = digest
        self.conn.executemany(
            f"INSERT INTO {self.table} (seq, at, kind, correlation_id, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            values,
        )
        self.conn.execute(
            "INSERT INTO chain_heads (tbl, seq, hash) VALUES (?, ?, ?)"
            " ON CONFLICT(tbl) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (self.table, seq, prev),
        )
        return seq

    def rows(self, kind: str | None = None, correlation_id: str | None = None) -> Iterator[dict[str, Any]]:
        sql = f"SELECT seq, at, kind, correlation_id, data FROM {self.table}"
        clauses, params = [], []
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        if correlation_id is not None:
            clauses.append("correlation_id = ?")
            params.append(correlation_id)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        for seq, at, k, corr, data in self.conn.execute(sql + " ORDER BY seq", params):
            yield {"seq": seq, "at": at, "kind": k, "correlation_id": corr, "data": json.loads(data)}


def verify_chain(conn: sqlite3.Connection, table: str) -> list[ChainBreak]:
    """Recompute the chain; return every break found (empty list: intact)."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
    if not exists:
        return []
    breaks: list[ChainBreak] = []
    prev = GENESIS
    expected_seq = 1
    last_seq, last_hash = 0, GENESIS
    rows = conn.execute(f"SELECT seq, at, kind, correlation_id, data, prev_hash, hash FROM {table} ORDER BY seq")
    for seq, at, kind, corr, data, prev_hash, digest in rows:
        if seq != expected_seq:
            breaks.append(ChainBreak(table, expected_seq, f"gap (next row is #{seq})"))
        payload = canonical_json({"at": at, "kind": kind, "correlation_id": corr, "data": json.loads(data)})
        if prev_hash != prev or _row_hash(prev_hash, seq, payload) != digest:
            breaks.append(ChainBreak(table, seq, "edited (hash does not match its content)"))
        prev = digest
        expected_seq = seq + 1
        last_seq, last_hash = seq, digest
    head = conn.execute("SELECT seq, hash FROM chain_heads WHERE tbl = ?", (table,)).fetchone()
    if head is None:
        if last_seq:
            breaks.append(ChainBreak(table, last_seq, "missing_head"))
    elif (head[0], head[1]) != (last_seq, last_hash):
        breaks.append(ChainBreak(table, head[0], f"tail cut or head altered (head #{head[0]}, last row #{last_seq})"))
    return breaks
