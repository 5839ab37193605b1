"""業務システム: a municipality's business system (税務, 介護保険) as the staff at its terminals use it.

It keeps its own records keyed by its own 宛名番号, registers persons with the 宛名 system, publishes its
副本 items, and asks for 情報照会 through the 宛名 system (GYOMU-011). It must never hold or see a 符号, never
talk to the 中間サーバー or NWS directly, and sends only the fields a query needs (GYOMU-008).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import datetime
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.office_link import receive_transfer, transfer_table_ddl
from simulator.crypto.envelope import MessageSecurity
from simulator.model.envelope import Envelope, MessageType
from simulator.model.replica import validate_replica

__all__ = ["BusinessSystem"]


class BusinessSystem(Component):
    name_ja = "業務システム"
    name_en = "business system"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        business: str,
        atena_party: str,
        replica_item: str | None,
        office_link_party: str | None = None,
        office_link_control: str = "RENKEI-001",
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.business = business
        self.atena_party = atena_party
        self.replica_item = replica_item
        # 移転 arrive only from the municipality's 庁内連携 hub (RENKEI-001; 札幌's 連携基盤, RENKEI-008).
        self.office_link_party = office_link_party
        self.office_link_control = office_link_control
        self.name_ja = {"tax": "税務システム", "ltc": "介護保険システム"}.get(business, "業務システム")
        self.name_en = {"tax": "tax system", "ltc": "long-term care insurance system"}.get(business, "business system")
        self.table = f"business_{business}"
        conn.executescript(
            f"""
            CREATE TABLE IF NOT EXISTS {self.table}_records (
                business_atena_number TEXT PRIMARY KEY, my_number TEXT, record TEXT NOT NULL,
                auto_reply_disabled INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS {self.table}_queries (
                query_id TEXT PRIMARY KEY, business_atena_number TEXT NOT NULL, row TEXT NOT NULL,
                items TEXT NOT NULL, provider TEXT NOT NULL, requested_by TEXT NOT NULL, opened_at TEXT NOT NULL,
                status TEXT NOT NULL, answer TEXT, answered_at TEXT);
            """
        )
        conn.execute(transfer_table_ddl(f"{self.table}_office_transfers"))
        self._handlers = {
            MessageType.ATENA_REGISTERED: self._on_registered,
            MessageType.BUSINESS_ANSWER: self._on_answer,
            MessageType.OFFICE_TRANSFER: self._on_office_transfer,
        }

    def register(
        self,
        business_atena_number: str,
        my_number: str,
        record: dict[str, Any],
        now: datetime,
        *,
        auto_reply_disabled: bool = False,
        person: dict[str, Any] | None = None,
    ) -> Result:
        """Record a person in this system and link them in the 宛名 system (and publish the 副本 item, if any)."""

        def act(result: Result) -> None:
            stored = validate_replica(self.replica_item, record) if self.replica_item else record
            self.conn.execute(
                f"INSERT INTO {self.table}_records (business_atena_number, my_number, record, auto_reply_disabled,"
                " updated_at) VALUES (?,?,?,?,?) ON CONFLICT(business_atena_number) DO UPDATE SET"
                " record=excluded.record, auto_reply_disabled=excluded.auto_reply_disabled, updated_at=excluded.updated_at",
                (
                    business_atena_number,
                    my_number,
                    json.dumps(stored, ensure_ascii=False),
                    int(auto_reply_disabled),
                    now.isoformat(),
                ),
            )
            self.send(
                result,
                MessageType.ATENA_REGISTER,
                self.atena_party,
                now,
                body={
                    "business": self.business,
                    "business_atena_number": business_atena_number,
                    "change_type": "register",
                },
                personal={"my_number": my_number, **(person or {})},
            )
            if self.replica_item:
                self.send(
                    result,
                    MessageType.REPLICA_UPDATE,
                    self.atena_party,
                    now,
                    body={
                        "business": self.business,
                        "business_atena_number": business_atena_number,
                        "item": self.replica_item,
                        "auto_reply_disabled": auto_reply_disabled,
                    },
                    personal={"record": stored},
                )

        return self.command(now, None, act)

    def query(
        self,
        operator: str,
        business_atena_number: str,
        row: str,
        items: list[str],
        provider: str,
        now: datetime,
    ) -> Result:
        """Start a 情報照会 for one person; the operator is recorded against it (GYOMU-011)."""
        query_id = uuid.uuid4().hex

        def act(result: Result) -> None:
            self.conn.execute(
                f"INSERT INTO {self.table}_queries (query_id, business_atena_number, row, items, provider, requested_by,"
                " opened_at, status) VALUES (?,?,?,?,?,?,?,?)",
                (query_id, business_atena_number, row, json.dumps(items), provider, operator, now.isoformat(), "open"),
            )
            self.audit.append(
                at=now.isoformat(),
                kind="staff.operation",
                correlation_id=query_id,
                data={"user": operator, "operation": "query.start", "row": row, "items": items},
            )
            # Only what the query needs: the person's own-system number, the row, the items, the provider.
            self.send(
                result,
                MessageType.BUSINESS_QUERY,
                self.atena_party,
                now,
                body={
                    "query_id": query_id,
                    "business_atena_number": business_atena_number,
                    "row": row,
                    "items": items,
                    "provider": provider,
                },
                correlation_id=query_id,
            )
            result.value = query_id

        return self.command(now, query_id, act)

    def _on_registered(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.atena_party}, "ATENA-006", "宛名登録結果")
        return Result()

    def _on_office_transfer(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        return receive_transfer(
            self,
            env,
            now,
            hub=self.office_link_party,
            table=f"{self.table}_office_transfers",
            number_use=True,
            bypass_control=self.office_link_control,
        )

    def _on_answer(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.atena_party}, "RELAY-004", "照会結果")
        query_id = str(env.body.get("query_id", ""))
        status = str(env.body.get("status", ""))
        answer: dict[str, Any] = {"status": status}
        if env.sealed:
            answer["data"] = self.unseal(env).get("data", {})
        if status == "refused":
            answer.update({k: env.body.get(k) for k in ("code", "control_id", "reason_ja", "reason_en")})
        self.conn.execute(
            f"UPDATE {self.table}_queries SET status = ?, answer = ?, answered_at = ? WHERE query_id = ?",
            (status, json.dumps(answer, ensure_ascii=False), now.isoformat(), query_id),
        )
        return Result(value=answer)

    def answer(self, query_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT status, answer FROM {self.table}_queries WHERE query_id = ?", (query_id,)
        ).fetchone()
        if row is None:
            return None
        return {"status": row[0], **(json.loads(row[1]) if row[1] else {})}
