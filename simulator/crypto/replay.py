"""Persistent replay guard (再送攻撃の検知): remembers each accepted message id and nonce in SQLite.

A row is kept until its message could no longer pass the freshness check, so the table stays bounded and a
restart on the same database still refuses a replay (CHUKAN-013 T−4).
This module must never check signatures or freshness; it only records and refuses repeats.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta

from simulator.crypto.pki import utc
from simulator.errors import InputError, Refusal, RefusalCode
from simulator.model.envelope import Envelope
from simulator.store.db import ensure_schema, transaction

__all__ = ["REPLAY_CONTROL", "ReplayGuard"]

#: Control that a replay refusal cites: 電文への署名付与・署名の検証 (replay is its T−4 case).
REPLAY_CONTROL = "CHUKAN-013"

_DDL = """
CREATE TABLE IF NOT EXISTS seen_messages (
    message_id TEXT PRIMARY KEY,
    nonce TEXT NOT NULL UNIQUE,
    sender TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_messages_expires_at ON seen_messages (expires_at);
"""


def _stamp(moment: datetime) -> str:
    # Fixed-width UTC text sorts in time order, so SQLite can compare and index it directly.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ReplayGuard:
    """Refuses a message whose id or nonce has been seen within ``window``; durable across restarts.

    ``window`` must be at least the freshness tolerance of whoever calls it (``MessageSecurity.max_skew``):
    a row is kept until ``max(issued_at, seen_at) + window``, after which a replay is already stale.
    """

    def __init__(self, conn: sqlite3.Connection, window: timedelta) -> None:
        if window <= timedelta(0):
            raise InputError("window", "must be positive")
        self.window = window
        self._conn = conn
        self._lock = threading.Lock()
        self._next_purge: datetime | None = None
        ensure_schema(conn, _DDL)

    def check_and_record(self, envelope: Envelope, now: datetime) -> None:
        """Record ``envelope``'s id and nonce, or raise ``Refusal`` (REPLAYED_MESSAGE) if either was seen.

        Runs in one transaction (nested as a savepoint inside the caller's, so a rolled-back acceptance
        forgets the message again); rows past their expiry are purged now and then, in the same transaction.
        """
        when = utc(now)
        expires = max(utc(envelope.issued_at, "issued_at"), when) + self.window
        with self._lock, transaction(self._conn):
            # Purging once per eighth of a window keeps the table bounded without a DELETE per message.
            if self._next_purge is None or not self._next_purge - self.window <= when < self._next_purge:
                self._conn.execute("DELETE FROM seen_messages WHERE expires_at < ?", (_stamp(when),))
                self._next_purge = when + self.window / 8
            row = self._conn.execute(
                "SELECT message_id FROM seen_messages WHERE message_id = ? OR nonce = ? LIMIT 1",
                (envelope.id, envelope.nonce),
            ).fetchone()
            if row is not None:
                raise self._refusal(envelope, same_id=row[0] == envelope.id)
            self._conn.execute(
                "INSERT INTO seen_messages (message_id, nonce, sender, seen_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (envelope.id, envelope.nonce, envelope.sender, _stamp(when), _stamp(expires)),
            )

    def purge(self, now: datetime) -> int:
        """Delete rows whose expiry has passed; returns how many went."""
        with self._lock, transaction(self._conn):
            cursor = self._conn.execute("DELETE FROM seen_messages WHERE expires_at < ?", (_stamp(utc(now)),))
            return cursor.rowcount

    @staticmethod
    def _refusal(envelope: Envelope, *, same_id: bool) -> Refusal:
        if same_id:
            return Refusal(
                RefusalCode.REPLAYED_MESSAGE,
                component=envelope.recipient,
                control_id=REPLAY_CONTROL,
                reason_ja=f"メッセージID「{envelope.id}」は受信済みです（再送攻撃の疑い）。",
                reason_en=f"Message id '{envelope.id}' has already been received (possible replay).",
                field="id",
            )
        return Refusal(
            RefusalCode.REPLAYED_MESSAGE,
            component=envelope.recipient,
            control_id=REPLAY_CONTROL,
            reason_ja=f"ナンス「{envelope.nonce}」は別のメッセージで使用済みです（再送攻撃の疑い）。",
            reason_en=f"Nonce '{envelope.nonce}' was already used by another message (possible replay).",
            field="nonce",
        )
