"""マイナポータル (the resident's view): one person sees every query and provision about them, and nobody else's.

The resident signs in with the 個人番号カード (here: the 住民票コード the card carries); the portal obtains its
own 符号 for that person through the same 処理通番 path as any organisation, then asks NWS for the
情報提供等記録 tied to that person. It must never show records of another person and never keep a 符号 or
a 住民票コード beyond the sign-in session's own row.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import datetime
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode
from simulator.identifiers import IdentifierError, validate_resident_code
from simulator.model.envelope import Envelope, MessageType

__all__ = ["ResidentPortal"]


class ResidentPortal(Component):
    name_ja = "マイナポータル"
    name_en = "resident portal"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        nws_party: str,
        national_server: str,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.nws_party = nws_party
        self.national_server = national_server
        conn.execute(
            """CREATE TABLE IF NOT EXISTS portal_sessions (
                session_id TEXT PRIMARY KEY, resident_code TEXT, state TEXT NOT NULL,
                records TEXT, opened_at TEXT NOT NULL, updated_at TEXT NOT NULL)"""
        )
        self._handlers = {
            MessageType.SERIAL_ISSUED: self._on_serial,
            MessageType.LINKAGE_CODE_ISSUED: self._on_code,
            MessageType.RECORDS_RESPONSE: self._on_records,
        }

    def sign_in(self, card_resident_code: str, now: datetime) -> Result:
        session_id = uuid.uuid4().hex

        def act(result: Result) -> None:
            try:
                validate_resident_code(card_resident_code)
            except IdentifierError as exc:
                raise self.refuse(
                    RefusalCode.FIELD_INVALID,
                    "CS-018",
                    f"カードの住民票コードが不正です: {exc.rule}",
                    f"the card's resident code is invalid: {exc.rule}",
                    field="resident_code",
                ) from None
            self.conn.execute(
                "INSERT INTO portal_sessions (session_id, resident_code, state, opened_at, updated_at) VALUES (?,?,?,?,?)",
                (session_id, card_resident_code, "serial_requested", now.isoformat(), now.isoformat()),
            )
            self.send(
                result,
                MessageType.SERIAL_REQUEST,
                self.nws_party,
                now,
                body={"request_ref": session_id},
                correlation_id=session_id,
            )
            result.value = session_id

        return self.command(now, session_id, act)

    def _on_serial(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.nws_party}, "NWS-005", "処理通番")
        session_id = str(env.body.get("request_ref", ""))
        row = self.conn.execute(
            "SELECT resident_code FROM portal_sessions WHERE session_id = ? AND state = ?",
            (session_id, "serial_requested"),
        ).fetchone()
        if row is None:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "NWS-005",
                "依頼していない処理通番です",
                "a processing serial that was not asked for",
                field="request_ref",
            )
        serial = str(env.body.get("processing_serial"))
        self.conn.execute(
            "UPDATE portal_sessions SET state = ?, updated_at = ? WHERE session_id = ?",
            (f"serial:{serial}", now.isoformat(), session_id),
        )
        result = Result()
        self.send(
            result,
            MessageType.CODE_ACQUISITION_NOTIFY,
            self.national_server,
            now,
            body={"processing_serial": serial},
            personal={"processing_serial": serial, "resident_code": row[0]},
            correlation_id=session_id,
        )
        return result

    def _on_code(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.nws_party}, "NWS-005", "符号の払出し")
        serial = str(env.body.get("processing_serial", ""))
        row = self.conn.execute(
            "SELECT session_id FROM portal_sessions WHERE state = ?", (f"serial:{serial}",)
        ).fetchone()
        if row is None:
            raise self.refuse(
                RefusalCode.SERIAL_INVALID,
                "NWS-005",
                "対応するサインインがありません",
                "no sign-in is waiting for this serial",
                field="processing_serial",
            )
        code = str(self.unseal(env)["linkage_code"])
        # Neither the 住民票コード nor the portal's 符号 is kept once the records request is on its way.
        self.conn.execute(
            "UPDATE portal_sessions SET resident_code = NULL, state = 'records_requested', updated_at = ?"
            " WHERE session_id = ?",
            (now.isoformat(), row[0]),
        )
        result = Result()
        self.send(
            result,
            MessageType.RECORDS_REQUEST,
            self.nws_party,
            now,
            body={"linkage_code": code, "request_ref": row[0]},
            correlation_id=row[0],
        )
        return result

    def _on_records(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.nws_party}, "CHUKAN-022", "情報提供等記録")
        session_id = str(env.body.get("request_ref", ""))
        records = self.unseal(env).get("records", [])
        self.conn.execute(
            "UPDATE portal_sessions SET records = ?, state = 'ready', updated_at = ? WHERE session_id = ?",
            (json.dumps(records, ensure_ascii=False), now.isoformat(), session_id),
        )
        return Result(value=records)

    def records(self, session_id: str) -> list[dict[str, Any]] | None:
        row = self.conn.execute("SELECT records FROM portal_sessions WHERE session_id = ?", (session_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        data: list[dict[str, Any]] = json.loads(row[0])
        return data
