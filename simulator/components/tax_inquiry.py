"""他市町村からの扶養照会への回答 (GYOMU-003): a municipality's 税務 desk answering another city's dependant check.

It answers only an inquiry naming the 扶養者, the 被扶養者 and their relationship, with the dependant's taxable
income from its own 税務 records, sealed to the asker (a signed LGWAN message: the seed states no channel, F-31).
It must never answer an incomplete inquiry, search by anything but name and birth date, or write 税務 records.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode
from simulator.model.envelope import Envelope, MessageType

__all__ = ["TaxInquiryDesk"]


class TaxInquiryDesk(Component):
    name_ja = "税務（扶養照会回答）"
    name_en = "tax desk answering dependant inquiries"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        tax_business: str,
        tax_table: str,
        askers: frozenset[str],
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.tax_business = tax_business
        self.tax_table = tax_table
        self.askers = askers
        conn.execute(
            "CREATE TABLE IF NOT EXISTS tax_inquiry_answers (message_id TEXT PRIMARY KEY, asker TEXT NOT NULL,"
            " inquiry_id TEXT NOT NULL, found INTEGER NOT NULL, answered_at TEXT NOT NULL)"
        )
        self._handlers = {MessageType.DEPENDANT_INQUIRY: self._on_inquiry}

    def _on_inquiry(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, set(self.askers), "GYOMU-003", "扶養照会")
        inquiry = self.unseal(env)
        taxpayer, dependant = inquiry.get("taxpayer") or {}, inquiry.get("dependant") or {}
        for field, present in (
            ("taxpayer", bool(taxpayer.get("name")) and bool(taxpayer.get("city"))),
            ("dependant", bool(dependant.get("name")) and bool(dependant.get("birth_date"))),
            ("relationship", bool(inquiry.get("relationship"))),
        ):
            if not present:
                raise self.refuse(
                    RefusalCode.FIELD_MISSING,
                    "GYOMU-003",
                    "扶養者・被扶養者・続柄のすべてを特定しない照会には回答しません",
                    f"an inquiry that does not name the {field} gets no answer",
                    field=field,
                )
        row = self.conn.execute(
            f"SELECT r.record FROM atena_persons p JOIN atena_business_links l ON l.atena_number = p.atena_number"
            f" AND l.business = ? JOIN {self.tax_table}_records r ON r.business_atena_number = l.business_atena_number"
            " WHERE p.name = ? AND p.birth_date = ?",
            (self.tax_business, str(dependant["name"]), str(dependant["birth_date"])),
        ).fetchone()
        answer: dict[str, Any] = {"found": row is not None}
        if row is not None:
            answer["taxable_income"] = int(json.loads(row[0]).get("taxable_income", 0))
        inquiry_id = str(env.body.get("inquiry_id", ""))
        self.conn.execute(
            "INSERT INTO tax_inquiry_answers (message_id, asker, inquiry_id, found, answered_at) VALUES (?,?,?,?,?)",
            (env.id, env.sender, inquiry_id, int(row is not None), now.isoformat()),
        )
        result = Result()
        self.allow(result, "GYOMU-003", now, "扶養者・被扶養者・続柄が特定された照会に回答しました",
                   "the inquiry names taxpayer, dependant and relationship; answered", env.correlation_id,
                   asker=env.sender, found=row is not None)
        self.send(result, MessageType.DEPENDANT_ANSWER, env.sender, now, body={"inquiry_id": inquiry_id},
                  personal=answer, correlation_id=env.correlation_id)
        return result
