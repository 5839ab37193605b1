"""団体内統合宛名システム: one 団体内統合宛名番号 per person, and the only door from business systems to the 中間サーバー.

Same-person decisions are made on the 個人番号 (ATENA-004); each business system's own 宛名番号 is linked to
the unified number; only registered 番号法 business systems may connect (ATENA-001); a person can be the
subject of an NWS exchange only once their 符号 is obtained (ATENA-005); every message it carries on leaves a
情報連携記録 (LOG-008). It must never receive or hold a 符号, and never pass a 個人番号 towards the 中間サーバー:
on that side persons are named by 団体内統合宛名番号.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.oplog import record_exchange
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode
from simulator.identifiers import IdentifierError, validate_my_number
from simulator.model.envelope import Envelope, MessageType

__all__ = ["ATENA_ITEMS", "DEPARTMENTS", "Atena"]

#: What the 宛名 system may hold (ATENA-003): 個人番号, 宛名情報 (4情報, 世帯, 住登外 data), nothing of any business.
ATENA_ITEMS = frozenset(
    {"my_number", "name", "name_kana", "birth_date", "sex", "address", "postal_code", "household_id", "relationship",
     "status", "non_resident", "domicile_address"}
)  # fmt: skip
#: Departments known to the 宛名 system: (id, name, performs 番号法 事務). Users carry "dept:<id>" (ATENA-002).
DEPARTMENTS = (
    ("kaigo_hoken", "介護保険課", True),
    ("shiminzei", "市民税課", True),
    ("shimin", "市民課", True),
    ("kokuho", "国民健康保険課", True),
    ("gesuido", "下水道課", False),
    ("soumu", "総務課", False),
)
_WILDCARDS = set("*%?_")
_LINKAGE_CODE_KEYS = {"linkage_code", "fugo"}


def _nested_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _nested_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _nested_keys(v)}
    return set()


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
        staff: StaffDirectory | None = None,
    ) -> None:
        """``business_systems`` maps each registered 番号法 system's party id to its business key."""
        super().__init__(party, conn, security, directory)
        self.tenant = tenant
        self.intermediate_server = intermediate_server
        self.registry_party = registry_party
        self.business_systems = dict(business_systems)
        self.staff = staff
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
            CREATE TABLE IF NOT EXISTS atena_departments (
                department TEXT PRIMARY KEY, name_ja TEXT NOT NULL, number_act_business INTEGER NOT NULL);
            """
        )
        conn.executemany(
            "INSERT OR IGNORE INTO atena_departments (department, name_ja, number_act_business) VALUES (?,?,?)",
            [(d, n, int(b)) for d, n, b in DEPARTMENTS],
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
        beyond = sorted(set(data) - ATENA_ITEMS)
        if beyond:
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED,
                "ATENA-003",
                f"宛名システムは宛名管理に必要な項目のみ保有します。業務の項目は登録できません: {', '.join(beyond)}",
                f"the addressee system holds addressee items only; business items are refused: {', '.join(beyond)}",
                field=beyond[0],
            )
        self.allow(
            result,
            "ATENA-003",
            now,
            "宛名管理に必要な項目（宛名情報・個人番号・既存システム利用番号）のみを登録します",
            "only addressee items (宛名情報, My Number, the system's own number) are stored",
            env.correlation_id,
            items=sorted(data),
        )
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
            sent = self.send(
                result,
                MessageType.CODE_REQUEST,
                self.intermediate_server,
                now,
                body={"atena_number": atena_number, "tenant": self.tenant},
                correlation_id=env.correlation_id,
            )
            record_exchange(self, sent, now, source=self.party, person_key=atena_number, outcome="requested")
        sent = self.send(
            result,
            MessageType.ATENA_REGISTERED,
            env.sender,
            now,
            body={"business_atena_number": business_atena_number, "status": "linked"},
            correlation_id=env.correlation_id,
        )
        record_exchange(self, sent, now, source=self.party, person_key=atena_number, outcome="linked")
        return result

    def _on_replica_update(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        business = self._registered(env, result, now)
        atena_number = self._atena_number_for(business, str(env.body.get("business_atena_number", "")))
        if atena_number is None:
            # Nothing leaves towards the 中間サーバー without a 団体内統合宛名番号 (RELAY-004 T−2).
            raise self.refuse(
                RefusalCode.NOT_FOUND,
                "RELAY-004",
                "宛名番号に対応する団体内統合宛名番号がないため、中間サーバーへ送信できません",
                "no unified addressee number for this business addressee number; nothing is sent on",
                field="business_atena_number",
            )
        self.allow(
            result,
            "RELAY-004",
            now,
            "業務の宛名番号を団体内統合宛名番号に変換して送信します",
            "the business addressee number is replaced by the unified addressee number on the way out",
            env.correlation_id,
            business=business,
        )
        record = self.unseal(env).get("record")
        # Forward only the 副本 record, re-keyed to the unified number and re-sealed for the 中間サーバー.
        sent = self.send(
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
        record_exchange(self, sent, now, source=env.sender, person_key=atena_number, outcome="forwarded")
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
            sent = self.send(
                result,
                MessageType.CODE_ACQUISITION_NOTIFY,
                self.registry_party,
                now,
                body={"processing_serial": serial, "business_atena_number": registry_number[0]},
                correlation_id=env.correlation_id,
            )
            record_exchange(self, sent, now, source=env.sender, person_key=atena_number, outcome="forwarded")
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
        sent = self.send(
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
        record_exchange(self, sent, now, source=env.sender, person_key=atena_number, outcome="forwarded")
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
        personal = self.unseal(env) if env.sealed else None
        carried = sorted((set(env.body) | set(personal or {}) | _nested_keys(personal)) & _LINKAGE_CODE_KEYS)
        if carried:
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED,
                "RELAY-004",
                "符号を含む照会結果は業務システムへ渡せません。遮断しました",
                "a result carrying a linkage code (符号) is blocked before it reaches the business system",
                field=carried[0],
            )
        body = {k: v for k, v in env.body.items() if k != "atena_number"}
        # Results go back keyed by the business system's own number, never the unified number (RELAY-004).
        sent = self.send(
            result,
            MessageType.BUSINESS_ANSWER,
            str(row[0]),
            now,
            body={**body, "business_atena_number": row[1]},
            personal=personal,
            correlation_id=env.correlation_id,
        )
        record_exchange(self, sent, now, source=env.sender, person_key=str(row[1]), outcome="answered")
        self.allow(
            result,
            "RELAY-004",
            now,
            "照会結果を業務システム自身の宛名番号で返しました（団体内統合宛名番号・符号は含みません）",
            "the result went back under the business system's own number, without the unified number or a 符号",
            env.correlation_id,
            business_party=str(row[0]),
        )
        return result

    # -- staff use of the 宛名 system (ATENA-002) and lookups (ATENA-006) --------------------------------

    def _authorise_user(self, session: StaffSession, result: Result, now: datetime) -> None:
        if self.staff is None:
            raise self.refuse(
                RefusalCode.NOT_AUTHENTICATED,
                "ATENA-002",
                "この宛名システムには職員の利用者が登録されていません",
                "this addressee system has no staff users",
                field="session",
            )
        self.staff.require(session, "atena_user", "ATENA-002", "宛名システムの利用", "use the addressee system")
        row = self.conn.execute(
            "SELECT roles FROM staff WHERE component = ? AND user_id = ?", (self.party, session.user_id)
        ).fetchone()
        departments = [r.removeprefix("dept:") for r in json.loads(row[0]) if r.startswith("dept:")]
        allowed = [
            d
            for d in departments
            if self.conn.execute(
                "SELECT 1 FROM atena_departments WHERE department = ? AND number_act_business = 1", (d,)
            ).fetchone()
        ]
        if not allowed:
            raise self.refuse(
                RefusalCode.ROLE_MISSING,
                "ATENA-002",
                "所属部署が番号法に定める事務を行う部署ではないため、宛名システムは利用できません",
                "the user's department does not perform My Number Act business; the addressee system is refused",
                field="department",
            )
        self.allow(
            result,
            "ATENA-002",
            now,
            "番号法の事務を行う部署で、宛名システムの権限を付与された職員です",
            "the user belongs to a My Number Act department and holds the addressee privilege",
            None,
            user=session.user_id,
            department=allowed[0],
        )

    def _find(self, key: Mapping[str, Any]) -> str:
        values = {k: str(v) for k, v in key.items() if v is not None}
        if any(set(v) & _WILDCARDS for v in values.values()):
            raise self.refuse(
                RefusalCode.SEARCH_TOO_BROAD,
                "ATENA-006",
                "ワイルドカードによる検索はできません。個人番号または業務の宛名番号の完全一致で検索してください",
                "wildcard lookups are refused; look up by the exact My Number or business number",
                field=next(k for k, v in values.items() if set(v) & _WILDCARDS),
            )
        if "my_number" in values:
            try:
                my_number = validate_my_number(values["my_number"])
            except IdentifierError as exc:
                raise self.refuse(
                    RefusalCode.SEARCH_TOO_BROAD,
                    "ATENA-006",
                    f"個人番号の一部による検索はできません（{exc.rule}）",
                    f"a partial or malformed My Number is not a lookup key ({exc.rule})",
                    field="my_number",
                ) from None
            row = self.conn.execute(
                "SELECT atena_number FROM atena_persons WHERE my_number = ?", (my_number,)
            ).fetchone()
        elif values.get("business") and values.get("business_atena_number"):
            row = self.conn.execute(
                "SELECT atena_number FROM atena_business_links WHERE business = ? AND business_atena_number = ?",
                (values["business"], values["business_atena_number"]),
            ).fetchone()
        else:
            raise self.refuse(
                RefusalCode.SEARCH_TOO_BROAD,
                "ATENA-006",
                "検索キーが不足しています（個人番号、または業務と宛名番号）",
                "a lookup needs the My Number, or a business and its addressee number",
                field="key",
            )
        if row is None:
            raise self.refuse(
                RefusalCode.NOT_FOUND,
                "ATENA-006",
                "該当する団体内統合宛名番号はありません",
                "no unified addressee number for this key",
                field="key",
            )
        return str(row[0])

    def lookup(self, session: StaffSession, key: Mapping[str, Any], now: datetime) -> Result:
        """A staff lookup of the 統合宛名番号 and 宛名 data, by exact 個人番号 or business number only."""

        def act(result: Result) -> None:
            self._authorise_user(session, result, now)
            atena_number = self._find(key)
            person = self.conn.execute(
                "SELECT name, name_kana, birth_date, sex, address FROM atena_persons WHERE atena_number = ?",
                (atena_number,),
            ).fetchone()
            self.allow(
                result,
                "ATENA-006",
                now,
                "完全一致の検索キーで団体内統合宛名番号を特定し、その者の宛名情報のみを返しました",
                "the exact key found one unified number; only that person's addressee data is returned",
                None,
                key=sorted(k for k in key if k != "business_atena_number") or ["business_atena_number"],
            )
            result.value = {
                "atena_number": atena_number,
                **dict(zip(("name", "name_kana", "birth_date", "sex", "address"), person, strict=True)),
            }

        return self.command(now, None, act)

    def code_status(self, my_number: str) -> str | None:
        row = self.conn.execute("SELECT code_status FROM atena_persons WHERE my_number = ?", (my_number,)).fetchone()
        return str(row[0]) if row else None
