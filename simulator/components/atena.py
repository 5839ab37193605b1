"""団体内統合宛名システム: one 団体内統合宛名番号 per person, and the only door from business systems to the 中間サーバー.

Same-person decisions are made on the 個人番号 (ATENA-004); each business system's own 宛名番号 is linked to
the unified number; only registered 番号法 business systems may connect (ATENA-001); a person can be the
subject of an NWS exchange only once their 符号 is obtained (ATENA-005). It must never receive or hold a
符号, and never pass a 個人番号 towards the 中間サーバー: on that side persons are named by 団体内統合宛名番号.
"""

from __future__ import annotations

import secrets
import sqlite3
from datetime import datetime

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode
from simulator.identifiers import IdentifierError, validate_my_number
from simulator.model.envelope import Envelope, MessageType

__all__ = ["Atena"]


class Atena(Component):
    name_ja = "団体内統合宛名システム"
    name_en = "unified addressee system"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        tenant: str,
        intermediate_server: str,
        registry_party: str,
        business_systems: dict[str, str],
    ) -> None:
        """``business_systems`` maps each registered 番号法 system's party id to its business key."""
        super().__init__(party, conn, security, directory)
        self.tenant = tenant
        self.intermediate_server = intermediate_server
        self.registry_party = registry_party
        self.business_systems = dict(business_systems)
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS atena_persons (
                atena_number TEXT PRIMARY KEY, my_number TEXT UNIQUE, name TEXT, name_kana TEXT,
                birth_date TEXT, sex TEXT, address TEXT, status TEXT, code_status TEXT NOT NULL DEFAULT 'none',
                processing_serial TEXT, updated_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS atena_business_links (
                business TEXT NOT NULL, business_atena_number TEXT NOT NULL, atena_number TEXT NOT NULL
                    REFERENCES atena_persons(atena_number),
                PRIMARY KEY (business, business_atena_number));
            CREATE TABLE IF NOT EXISTS atena_queries (
                query_id TEXT PRIMARY KEY, business_party TEXT NOT NULL, business_atena_number TEXT NOT NULL,
                opened_at TEXT NOT NULL, closed_at TEXT);
            """
        )
        self._handlers = {
            MessageType.ATENA_REGISTER: self._on_register,
            MessageType.REPLICA_UPDATE: self._on_replica_update,
            MessageType.CODE_STATUS: self._on_code_status,
            MessageType.BUSINESS_QUERY: self._on_business_query,
            MessageType.BUSINESS_ANSWER: self._on_business_answer,
        }

    def _registered(self, env: Envelope, result: Result, now: datetime) -> str:
        business = self.business_systems.get(env.sender)
        if business is None:
            raise self.refuse(
                RefusalCode.SYSTEM_NOT_REGISTERED,
                "ATENA-001",
                f"{env.sender} は番号法に定める個人番号利用事務のシステムとして登録されていません",
                f"{env.sender} is not registered as a My Number Act business system",
                field="sender",
            )
        self.allow(
            result,
            "ATENA-001",
            now,
            "登録された個人番号利用事務システムからの接続です",
            "the caller is a registered My Number Act business system",
            env.correlation_id,
            system=env.sender,
        )
        return business

    def _atena_number_for(self, business: str, business_atena_number: str) -> str | None:
        row = self.conn.execute(
            "SELECT atena_number FROM atena_business_links WHERE business = ? AND business_atena_number = ?",
            (business, business_atena_number),
        ).fetchone()
        return str(row[0]) if row else None

    def _on_register(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        business = self._registered(env, result, now)
        data = self.unseal(env)
        business_atena_number = str(env.body.get("business_atena_number", ""))
        try:
            my_number = validate_my_number(str(data.get("my_number", "")))
        except IdentifierError as exc:
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                "ATENA-004",
                f"個人番号が不正です: {exc.rule}",
                f"invalid My Number: {exc.rule}",
                field="my_number",
            ) from None
        row = self.conn.execute("SELECT atena_number FROM atena_persons WHERE my_number = ?", (my_number,)).fetchone()
        new_person = row is None
        atena_number = f"{secrets.randbelow(10**15):015d}" if row is None else str(row[0])
        linked = self._atena_number_for(business, business_atena_number)
        if linked is not None and linked != atena_number:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "ATENA-004",
                "この業務の宛名番号は既に別の者に紐付いています",
                "this business addressee number is already linked to another person",
                field="business_atena_number",
            )
        fields = (
            data.get("name"),
            data.get("name_kana"),
            data.get("birth_date"),
            data.get("sex"),
            data.get("address"),
            data.get("status", "active"),
            now.isoformat(),
        )
        if new_person:
            self.conn.execute(
                "INSERT INTO atena_persons (atena_number, my_number, name, name_kana, birth_date, sex, address, status,"
                " updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (atena_number, my_number, *fields),
            )
        elif data.get("name"):
            self.conn.execute(
                "UPDATE atena_persons SET name=?, name_kana=?, birth_date=?, sex=?, address=?, status=?, updated_at=?"
                " WHERE atena_number = ?",
                (*fields, atena_number),
            )
        self.conn.execute(
            "INSERT OR IGNORE INTO atena_business_links (business, business_atena_number, atena_number) VALUES (?,?,?)",
            (business, business_atena_number, atena_number),
        )
        self.allow(
            result,
            "ATENA-004",
            now,
            "個人番号で同一人判定を行い、団体内統合宛名番号に業務の宛名番号を紐付けました",
            "same-person decision by My Number; the business addressee number is linked to the unified number",
            env.correlation_id,
            new_person=new_person,
            business=business,
        )
        code_status = self.conn.execute(
            "SELECT code_status FROM atena_persons WHERE atena_number = ?", (atena_number,)
        ).fetchone()[0]
        if code_status == "none":
            # A person new to the 宛名 system also needs a 符号 before any NWS exchange (FL-17).
            self.conn.execute(
                "UPDATE atena_persons SET code_status = 'requested' WHERE atena_number = ?", (atena_number,)
            )
            self.send(
                result,
                MessageType.CODE_REQUEST,
                self.intermediate_server,
                now,
                body={"atena_number": atena_number, "tenant": self.tenant},
                correlation_id=env.correlation_id,
            )
        self.send(
            result,
            MessageType.ATENA_REGISTERED,
            env.sender,
            now,
            body={"business_atena_number": business_atena_number, "status": "linked"},
            correlation_id=env.correlation_id,
        )
        return result

    def _on_replica_update(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        business = self._registered(env, result, now)
        atena_number = self._atena_number_for(business, str(env.body.get("business_atena_number", "")))
        if atena_number is None:
            raise self.refuse(
                RefusalCode.NOT_FOUND,
                "ATENA-006",
                "宛名番号に対応する団体内統合宛名番号がありません",
                "no unified addressee number for this business addressee number",
                field="business_atena_number",
            )
        record = self.unseal(env).get("record")
        # Forward only the 副本 record, re-keyed to the unified number and re-sealed for the 中間サーバー.
        self.send(
            result,
            MessageType.REPLICA_UPDATE,
            self.intermediate_server,
            now,
            body={
                "tenant": self.tenant,
                "atena_number": atena_number,
                "item": env.body.get("item"),
                "auto_reply_disabled": bool(env.body.get("auto_reply_disabled", False)),
            },
            personal={"record": record},
            correlation_id=env.correlation_id,
        )
        return result

    def _on_code_status(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.intermediate_server}, "ATENA-005", "符号取得状況")
        atena_number = str(env.body.get("atena_number", ""))
        status = str(env.body.get("status", ""))
        result = Result()
        if status == "requested":
            serial = str(env.body.get("processing_serial", ""))
            self.conn.execute(
                "UPDATE atena_persons SET code_status='requested', processing_serial=? WHERE atena_number=?",
                (serial, atena_number),
            )
            registry_number = self.conn.execute(
                "SELECT business_atena_number FROM atena_business_links WHERE atena_number = ? AND business = ?",
                (atena_number, "resident_register"),
            ).fetchone()
            if registry_number is None:
                raise self.refuse(
                    RefusalCode.NOT_FOUND,
                    "ATENA-005",
                    "住基の宛名番号が紐付いていないため符号を要求できません",
                    "no resident-register link; the code request cannot go through Juki-net",
                    field="atena_number",
                )
            # 処理通番 and the 住基 宛名番号 go to 既存住基, which sends (処理通番, 住民票コード) to 機構 (NWS-005).
            self.send(
                result,
                MessageType.CODE_ACQUISITION_NOTIFY,
                self.registry_party,
                now,
                body={"processing_serial": serial, "business_atena_number": registry_number[0]},
                correlation_id=env.correlation_id,
            )
        elif status == "obtained":
            self.conn.execute("UPDATE atena_persons SET code_status='obtained' WHERE atena_number=?", (atena_number,))
            self.allow(
                result,
                "ATENA-005",
                now,
                "中間サーバーからの通知により符号取得済みとしました",
                "marked the code obtained on the intermediate server's confirmation",
                env.correlation_id,
                atena_number=atena_number,
            )
        return result

    def _on_business_query(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        business = self._registered(env, result, now)
        business_atena_number = str(env.body.get("business_atena_number", ""))
        atena_number = self._atena_number_for(business, business_atena_number)
        if atena_number is None:
            raise self.refuse(
                RefusalCode.NOT_FOUND,
                "ATENA-006",
                "照会対象者の団体内統合宛名番号がありません",
                "no unified addressee number for the person",
                field="business_atena_number",
            )
        status = self.conn.execute(
            "SELECT code_status FROM atena_persons WHERE atena_number = ?", (atena_number,)
        ).fetchone()[0]
        if status != "obtained":
            raise self.refuse(
                RefusalCode.LINKAGE_CODE_NOT_OBTAINED,
                "ATENA-005",
                "照会対象者の符号が未取得のため情報照会できません",
                "the person's linkage code has not been obtained; no query is possible",
                field="business_atena_number",
            )
        self.allow(
            result,
            "ATENA-005",
            now,
            "符号取得済みの者に対する照会です",
            "the person's linkage code is obtained",
            env.correlation_id,
        )
        query_id = str(env.body.get("query_id", ""))
        self.conn.execute(
            "INSERT INTO atena_queries (query_id, business_party, business_atena_number, opened_at) VALUES (?,?,?,?)",
            (query_id, env.sender, business_atena_number, now.isoformat()),
        )
        self.send(
            result,
            MessageType.BUSINESS_QUERY,
            self.intermediate_server,
            now,
            body={
                "query_id": query_id,
                "atena_number": atena_number,
                "row": env.body.get("row"),
                "items": env.body.get("items"),
                "provider": env.body.get("provider"),
                "business": business,
            },
            correlation_id=env.correlation_id,
        )
        return result

    def _on_business_answer(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.intermediate_server}, "RELAY-004", "照会結果")
        query_id = str(env.body.get("query_id", ""))
        row = self.conn.execute(
            "SELECT business_party, business_atena_number FROM atena_queries WHERE query_id = ? AND closed_at IS NULL",
            (query_id,),
        ).fetchone()
        if row is None:
            raise self.refuse(
                RefusalCode.QUERY_NOT_OPEN,
                "RELAY-004",
                "対応する照会がありません",
                "no open query for this answer",
                field="query_id",
            )
        self.conn.execute("UPDATE atena_queries SET closed_at = ? WHERE query_id = ?", (now.isoformat(), query_id))
        result = Result()
        body = {k: v for k, v in env.body.items() if k != "atena_number"}
        # Results go back keyed by the business system's own number, never the unified number (RELAY-004).
        self.send(
            result,
            MessageType.BUSINESS_ANSWER,
            str(row[0]),
            now,
            body={**body, "business_atena_number": row[1]},
            personal=self.unseal(env) if env.sealed else None,
            correlation_id=env.correlation_id,
        )
        return result

    def code_status(self, my_number: str) -> str | None:
        row = self.conn.execute("SELECT code_status FROM atena_persons WHERE my_number = ?", (my_number,)).fetchone()
        return str(row[0]) if row else None
