"""個人番号カード管理システム (J-LIS): receives 送付先情報 and card lifecycle events from each 市町村CS over 住基ネット.

It accepts a 送付先情報ファイル only from a 市町村CS linked to it over 住基ネット (CS-022) and keeps each person's card
state, refusing a lifecycle event that does not follow from it (CS-023: no 一時停止解除 without a 一時停止). It must
never accept a file or an event from anything but a CS, nor apply the same event twice.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode
from simulator.model.envelope import Envelope, MessageType
from simulator.store.db import ensure_schema

__all__ = ["CARD_EVENTS", "CardManagementSystem"]

#: Card lifecycle events (住基法・番号法の事務): id → (Japanese, states it may follow, state it leads to). None is "no card".
CARD_EVENTS: dict[str, tuple[str, frozenset[str | None], str]] = {
    "issue": ("交付", frozenset({None, "revoked", "collected", "returned"}), "issued"),
    "suspend": ("一時停止", frozenset({"issued"}), "suspended"),
    "resume": ("一時停止解除", frozenset({"suspended"}), "issued"),
    "revoke": ("廃止", frozenset({"issued", "suspended"}), "revoked"),
    "collect": ("回収", frozenset({"revoked"}), "collected"),
    "return": ("返還", frozenset({"issued", "suspended", "revoked"}), "returned"),
}

_DDL = """
CREATE TABLE IF NOT EXISTS cms_delivery_records (
    file_id TEXT PRIMARY KEY, cs_party TEXT NOT NULL, resident_code TEXT NOT NULL, record TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cms_card_state (
    resident_code TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cms_card_events (
    event_id TEXT PRIMARY KEY, cs_party TEXT NOT NULL, resident_code TEXT NOT NULL, event TEXT NOT NULL,
    state_before TEXT, state_after TEXT NOT NULL, received_at TEXT NOT NULL
);
"""


class CardManagementSystem(Component):
    """個人番号カード管理システム. Message contracts (body never personal; ``sealed`` is JWE to this system):

    - in DELIVERY_INFO from a 市町村CS: body {"file_id"}; sealed = the 送付先情報 record;
      out DELIVERY_ACK to that CS: body {"file_id"}.
    - in CARD_EVENT from a 市町村CS: body {"event_id"}; sealed {"resident_code", "event"} (an id of CARD_EVENTS).
    """

    name_ja = "個人番号カード管理システム"
    name_en = "card management system"

    def __init__(self, party: str, conn: sqlite3.Connection, security: MessageSecurity, directory: Directory) -> None:
        super().__init__(party, conn, security, directory)
        ensure_schema(conn, _DDL)
        self._handlers[MessageType.DELIVERY_INFO] = self._on_delivery_info
        self._handlers[MessageType.CARD_EVENT] = self._on_card_event

    def _require_cs(self, envelope: Envelope, link: Link, control_id: str, what_ja: str) -> None:
        # Only a 市町村CS reaches this system, and only over 住基ネット.
        sender = envelope.sender
        if (
            not sender.endswith(".municipal_cs")
            or link.source != sender
            or self.directory.network_between(self.party, sender) != "jukinet"
        ):
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                control_id,
                f"{what_ja}は住基ネットで接続された市町村CSからのみ受け付けます（送信元: {sender}）",
                f"only a 市町村CS linked over 住基ネット may send this; refused from {sender}",
                "sender",
            )

    def _id(self, envelope: Envelope, key: str, control_id: str) -> str:
        value = envelope.body.get(key)
        if set(envelope.body) != {key} or not isinstance(value, str) or not 1 <= len(value) <= 64:
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                control_id,
                f"制御項目は「{key}」（1〜64文字）のみです",
                f"the body must hold exactly {key!r}, of 1 to 64 characters",
                key,
            )
        return value

    def _on_delivery_info(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_cs(envelope, link, "CS-022", "送付先情報")
        file_id = self._id(envelope, "file_id", "CS-022")
        record = self.unseal(envelope)
        code = record.get("resident_code")
        if not isinstance(code, str):
            raise self.refuse(
                RefusalCode.FIELD_MISSING,
                "CS-022",
                "送付先情報に住民票コードがありません",
                "the 送付先情報 carries no 住民票コード",
                "resident_code",
            )
        if self.conn.execute("SELECT 1 FROM cms_delivery_records WHERE file_id = ?", (file_id,)).fetchone():
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "CS-016",
                "同じ送付先情報ファイルを既に受領しています",
                "this 送付先情報ファイル was already received",
                "file_id",
            )
        self.conn.execute(
            "INSERT INTO cms_delivery_records (file_id, cs_party, resident_code, record, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (file_id, envelope.sender, code, json.dumps(record, ensure_ascii=False), now.isoformat()),
        )
        self.allow(
            result,
            "CS-022",
            now,
            "市町村CSから送付先情報を受領しました",
            "送付先情報 received from the 市町村CS",
            envelope.correlation_id,
            file_id=file_id,
            cs=envelope.sender,
        )
        self.send(
            result,
            MessageType.DELIVERY_ACK,
            envelope.sender,
            now,
            body={"file_id": file_id},
            correlation_id=envelope.correlation_id,
        )
        return result

    def _on_card_event(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_cs(envelope, link, "CS-023", "個人番号カードの異動情報")
        event_id = self._id(envelope, "event_id", "CS-023")
        sealed = self.unseal(envelope)
        code, event = sealed.get("resident_code"), sealed.get("event")
        if set(sealed) != {"resident_code", "event"} or not isinstance(code, str) or event not in CARD_EVENTS:
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                "CS-023",
                f"カードの異動は住民票コードと事由（{', '.join(CARD_EVENTS)}）のみです",
                f"a card event is a 住民票コード and one of {', '.join(CARD_EVENTS)}",
                "event",
            )
        if self.conn.execute("SELECT 1 FROM cms_card_events WHERE event_id = ?", (event_id,)).fetchone():
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "CS-023",
                "同じカード異動を既に受領しています（二重に適用しません）",
                "this card event was already received; it is not applied twice",
                "event_id",
            )
        row = self.conn.execute("SELECT state FROM cms_card_state WHERE resident_code = ?", (code,)).fetchone()
        before: str | None = None if row is None else str(row[0])
        label, allowed_from, after = CARD_EVENTS[str(event)]
        if before not in allowed_from:
            state_ja = before or "カードなし"
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "CS-023",
                f"カードの状態（{state_ja}）と整合しない異動です: {label}",
                f"a {event} event does not follow from the card state {before or 'no card'}",
                "event",
            )
        self.conn.execute(
            "INSERT INTO cms_card_state (resident_code, state, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(resident_code) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            (code, after, now.isoformat()),
        )
        self.conn.execute(
            "INSERT INTO cms_card_events (event_id, cs_party, resident_code, event, state_before, state_after,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id, envelope.sender, code, event, before, after, now.isoformat()),
        )
        self.allow(
            result,
            "CS-023",
            now,
            f"カードの異動（{label}）を記録しました",
            f"card event {event} recorded",
            envelope.correlation_id,
            event_id=event_id,
            event=event,
            state=after,
        )
        return result

    def card_state(self, resident_code: str) -> str | None:
        row = self.conn.execute("SELECT state FROM cms_card_state WHERE resident_code = ?", (resident_code,)).fetchone()
        return None if row is None else str(row[0])
