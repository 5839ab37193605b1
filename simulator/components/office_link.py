"""庁内連携 (intra-office linkage hub) and the 連携先 systems it feeds: 移転 only along approved routes.

The hub keeps the 参照用住記 data it receives from 既存住基 (in sequence, RENKEI-006) and hands each route only its
approved items for persons in the route's target set (RENKEI-001, RENKEI-002), never a 個人番号 to a system that is
not registered for 個人番号利用事務 (RENKEI-003), on staff request only from registered terminals and privileged users
(RENKEI-004, RENKEI-005), and records every exchange (RENKEI-008), with a 情報連携記録 per message (LOG-008).
札幌's 個人基本 also forwards the 副本 record, cut to the 主務省令 世帯情報 items (RENKEI-007). It must never deliver
along a route that is not active, and never send a 個人番号 to a non-利用事務 endpoint, whatever the request asks for.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.oplog import record_exchange
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import Refusal, RefusalCode
from simulator.model.envelope import Envelope, MessageType

__all__ = [
    "HOUSEHOLD_ITEMS",
    "HUBS",
    "LINKED_SYSTEMS",
    "RECORD_ITEMS",
    "HubProfile",
    "LinkedSystem",
    "OfficeLink",
    "Route",
    "receive_transfer",
    "transfer_table_ddl",
]

#: 主務省令第2条の表 住民票関係情報 = 住基法第7条第4号 世帯情報 as the 副本 holds it (RENKEI-007).
HOUSEHOLD_ITEMS = frozenset(
    {"name", "name_kana", "birth_date", "sex", "address", "postal_code", "household_id", "relationship", "status"}
)
#: What the hub's 参照用住記 holds per person (from 既存住基's change data).
RECORD_ITEMS = (
    "my_number", "name", "name_kana", "birth_date", "sex", "address", "postal_code", "household_id", "relationship",
    "status", "change_type", "change_date",
)  # fmt: skip
_BASIC = ("name", "birth_date", "sex", "address", "change_type", "change_date")


@dataclass(frozen=True)
class Route:
    """One approved (or pending) 庁内 route: who receives what, for which 事務, and how it was approved."""

    route_id: str
    destination: str  # business key of the receiving system ("tax", "ltc", "nhi", "welfare", "election", "sewer")
    department_ja: str  # the receiving department that applied
    purpose: str  # the 事務 or 別表 row the approval names
    legal_basis: str
    items: tuple[str, ...]
    trigger: str  # "on_change" (real time / each update), "daily" (参照用住記 batch), "on_request" (提供依頼)
    approved_by: str  # the data owner who judged the legal basis
    confirmed_by: str | None = None  # 001: the 情報主管課長's check; None where the profile needs none
    needs_confirmation: bool = False
    min_age: int | None = None  # target set: persons of at least this age (介護保険 第1号被保険者: 65)
    method: str = "online"  # "online" or "file" (001: the registered method)


@dataclass(frozen=True)
class HubProfile:
    hub: str
    name_ja: str
    name_en: str
    owner_ja: str  # the data-owning department that approves routes
    routes: tuple[Route, ...]
    terminals: tuple[tuple[str, str, str], ...]  # (terminal id, department, network)
    daily_bound: timedelta | None = None  # daily 参照用住記 batch (004); None = real time
    replica_via_hub: bool = False  # 002: 既存住基 → 個人基本 → 宛名 → 市中間サーバ (RENKEI-007)
    standard_platform: bool = False  # 002: the 標準準拠システム連携基盤 records every exchange (RENKEI-008)
    networks: tuple[str, ...] = ("office_lan",)


#: Systems a hub can deliver to besides 税務 and 介護保険: (name_ja, name_en, registered for 個人番号利用事務).
LINKED_SYSTEMS: dict[str, tuple[str, str, bool]] = {
    "nhi": ("国民健康保険システム", "national health insurance system", True),
    "welfare": ("生活保護システム", "public assistance system", True),
    "election": ("選挙システム", "elections system", False),
    "sewer": ("下水道台帳システム", "sewerage ledger system", False),
}
_NUMBER_USE = {"tax": True, "ltc": True} | {k: v[2] for k, v in LINKED_SYSTEMS.items()}

_NUMBER = ("my_number", *_BASIC)

#: A handful of representative routes per profile (catalogue §D); the seeds' full lists are not modelled.
HUBS: dict[str, HubProfile] = {
    "kuwana_renkei": HubProfile(
        "kuwana_renkei",
        "庁内連携システム",
        "intra-office linkage system",
        "戸籍・住民登録課",
        (
            Route("K-TAX", "tax", "税務課", "地方税", "番号法第9条第1項別表", _NUMBER, "on_change", "戸籍・住民登録課"),
            Route(
                "K-NHI",
                "nhi",
                "保険年金課",
                "国民健康保険",
                "番号法第9条第1項別表",
                _NUMBER,
                "on_change",
                "戸籍・住民登録課",
            ),
            Route("K-SEW", "sewer", "上下水道部", "下水道使用料", "市条例", _BASIC, "on_change", "戸籍・住民登録課"),
        ),
        (("T-ZEIMU-01", "税務課", "office_lan"), ("T-JUMIN-01", "戸籍・住民登録課", "office_lan")),
    ),
    "tsukuba_renkei": HubProfile(
        "tsukuba_renkei",
        "庁内連携システム",
        "intra-office linkage system",
        "市民税課",
        (
            Route(
                "T-24", "tax", "市民税課", "24", "地方税法", _NUMBER, "on_change", "市民税課長", "情報主管課長", True
            ),
            Route(
                "T-44",
                "nhi",
                "国民健康保険課",
                "44",
                "国民健康保険法",
                _NUMBER,
                "on_request",
                "市民税課長",
                "情報主管課長",
                True,
            ),
            # Approved by the data owner but not yet checked by the 情報主管課長: not active (RENKEI-001 T−3).
            Route("T-100", "ltc", "介護保険課", "100", "介護保険法", _NUMBER, "on_request", "市民税課長", None, True),
        ),
        (("T-SHIMINZEI-01", "市民税課", "office_lan"), ("T-MADOGUCHI-01", "市民窓口課", "office_lan")),
    ),
    "sapporo_kojin_kihon": HubProfile(
        "sapporo_kojin_kihon",
        "システム基盤(個人基本)",
        "personal-data hub (system platform)",
        "スマートシティ推進部",
        (
            Route(
                "S-TAX",
                "tax",
                "市税事務所",
                "地方税",
                "番号法第9条第1項別表",
                _NUMBER,
                "on_change",
                "スマートシティ推進部",
            ),
            Route(
                "S-LTC",
                "ltc",
                "介護保険課",
                "介護保険",
                "番号法第9条第1項別表",
                _NUMBER,
                "on_change",
                "スマートシティ推進部",
            ),
            Route(
                "S-ELE",
                "election",
                "選挙管理委員会",
                "選挙人名簿",
                "公職選挙法",
                ("name_kana", *_BASIC),
                "on_change",
                "スマートシティ推進部",
            ),
        ),
        (("T-JUMIN-01", "住民情報課", "office_lan"),),
        replica_via_hub=True,
        standard_platform=True,
    ),
    "iizuka_renkei": HubProfile(
        "iizuka_renkei",
        "庁内連携システム",
        "intra-office linkage system",
        "市民課",
        (
            Route("I-16", "tax", "税務課", "16", "番号法別表第一 16", _NUMBER, "on_change", "市民課"),
            Route("I-30", "nhi", "医療保険課", "30", "番号法別表第一 30", _NUMBER, "on_change", "市民課"),
            Route("I-41", "ltc", "高齢介護課", "41", "番号法別表第一 41", _NUMBER, "on_change", "市民課"),
        ),
        (("T-SHIMIN-01", "市民課", "office_lan"),),
    ),
    "kurashiki_kyotsu_kiban": HubProfile(
        "kurashiki_kyotsu_kiban",
        "共通基盤システム",
        "common platform system",
        "介護保険課",
        (
            Route(
                "R-LTC",
                "ltc",
                "介護保険課",
                "参照用住記",
                "介護保険法",
                ("my_number", "name_kana", "household_id", *_BASIC),
                "daily",
                "市民課",
                # 第1号被保険者 (65+) follow the 住民票; 第2号 become subjects only on an 認定 application.
                min_age=65,
                method="file",
            ),
            Route("R-26", "welfare", "生活福祉課", "26", "倉敷市個人番号利用条例", _NUMBER, "on_request", "介護保険課"),
            Route("R-87", "welfare", "生活福祉課", "87", "倉敷市個人番号利用条例", _NUMBER, "on_request", "介護保険課"),
            Route("R-42", "nhi", "国民健康保険課", "42", "倉敷市個人番号利用条例", _NUMBER, "on_request", "介護保険課"),
            Route(
                "R-SEW",
                "sewer",
                "下水道課",
                "下水道使用料",
                "市条例",
                ("name", "address"),
                "daily",
                "市民課",
                method="file",
            ),
        ),
        (("T-KAIGO-01", "介護保険課", "office_lan"),),
        daily_bound=timedelta(days=1),
    ),
}


def _age(birth_date: str, on: date) -> int:
    born = date.fromisoformat(birth_date)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def receive_transfer(
    component: Component,
    env: Envelope,
    now: datetime,
    *,
    hub: str | None,
    table: str,
    number_use: bool,
    bypass_control: str,
) -> Result:
    """What a 連携先 system does with a 移転: accept it only from its hub, and never store a 個人番号 it may not hold."""
    if hub is None or env.sender != hub:
        raise component.refuse(
            RefusalCode.SOURCE_NOT_ALLOWED,
            bypass_control,
            f"庁内連携基盤を経由しない移転は受け付けません（送信元: {env.sender}）",
            f"a transfer that bypasses the linkage hub is refused (sender {env.sender})",
            field="sender",
        )
    record = component.unseal(env).get("record", {})
    if not number_use and "my_number" in record:
        raise component.refuse(
            RefusalCode.FIELD_NOT_ALLOWED,
            "RENKEI-003",
            "個人番号利用事務ではないため、個人番号を含む移転は受け付けません",
            "this system is not registered for My Number business; a transfer carrying a My Number is refused",
            field="my_number",
        )
    component.conn.execute(
        f"INSERT INTO {table} (person_key, route_id, record, received_at) VALUES (?,?,?,?)"
        " ON CONFLICT(person_key, route_id) DO UPDATE SET record=excluded.record, received_at=excluded.received_at",
        (str(env.body.get("person_key", "")), str(env.body.get("route_id", "")), json.dumps(record, ensure_ascii=False),
         now.isoformat()),
    )  # fmt: skip
    return Result()


def transfer_table_ddl(table: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (person_key TEXT NOT NULL, route_id TEXT NOT NULL, record TEXT NOT NULL,"
        " received_at TEXT NOT NULL, PRIMARY KEY (person_key, route_id))"
    )


class LinkedSystem(Component):
    """A 連携先 system that is not a 番号制度 business system here (国保, 生活保護, 選挙, 下水道): it receives 移転."""

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        key: str,
        hub: str,
        bypass_control: str = "RENKEI-001",
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.key = key
        self.hub = hub
        self.name_ja, self.name_en, self.number_use = LINKED_SYSTEMS[key]
        self.bypass_control = bypass_control
        self.table = f"linked_{key}_records"
        conn.execute(transfer_table_ddl(self.table))
        self._handlers = {MessageType.OFFICE_TRANSFER: self._on_transfer}

    def _on_transfer(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        return receive_transfer(
            self, env, now, hub=self.hub, table=self.table, number_use=self.number_use,
            bypass_control=self.bypass_control,
        )  # fmt: skip

    def request(self, person_key: str, department: str, purpose: str, items: list[str] | None, now: datetime) -> Result:
        """提供依頼: ask the hub for one person's data under an approved (department, 事務) route."""

        def act(result: Result) -> None:
            self.send(
                result,
                MessageType.OFFICE_REQUEST,
                self.hub,
                now,
                body={"person_key": person_key, "department": department, "purpose": purpose, "items": items},
            )

        return self.command(now, None, act)

    def received(self, person_key: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT record FROM {self.table} WHERE person_key = ? ORDER BY received_at DESC LIMIT 1", (person_key,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))


class OfficeLink(Component):
    name_ja = "庁内連携システム"
    name_en = "intra-office linkage hub"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        profile: HubProfile,
        municipality: str,
        registry_party: str,
        atena_party: str,
        staff: StaffDirectory,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.profile = profile
        self.name_ja, self.name_en = profile.name_ja, profile.name_en
        self.municipality = municipality
        self.registry_party = registry_party
        self.atena_party = atena_party
        self.staff = staff
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS office_routes (
                hub TEXT NOT NULL, route_id TEXT NOT NULL, destination TEXT NOT NULL, department TEXT NOT NULL,
                purpose TEXT NOT NULL, legal_basis TEXT NOT NULL, items TEXT NOT NULL, trigger TEXT NOT NULL,
                min_age INTEGER, method TEXT NOT NULL, approved_by TEXT, confirmed_by TEXT,
                state TEXT NOT NULL CHECK (state IN ('applied', 'approved', 'active', 'rejected')),
                PRIMARY KEY (hub, route_id));
            CREATE TABLE IF NOT EXISTS office_endpoints (
                hub TEXT NOT NULL, party TEXT NOT NULL, key TEXT NOT NULL, number_use INTEGER NOT NULL,
                PRIMARY KEY (hub, party));
            CREATE TABLE IF NOT EXISTS office_terminals (
                hub TEXT NOT NULL, terminal_id TEXT NOT NULL, department TEXT NOT NULL, network TEXT NOT NULL,
                PRIMARY KEY (hub, terminal_id));
            CREATE TABLE IF NOT EXISTS office_people (
                hub TEXT NOT NULL, person_key TEXT NOT NULL, record TEXT NOT NULL, committed_at TEXT NOT NULL,
                updated_at TEXT NOT NULL, PRIMARY KEY (hub, person_key));
            CREATE TABLE IF NOT EXISTS office_sources (
                hub TEXT NOT NULL, source TEXT NOT NULL, last_seq INTEGER NOT NULL, PRIMARY KEY (hub, source));
            CREATE TABLE IF NOT EXISTS office_pending (
                hub TEXT NOT NULL, source TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, record TEXT NOT NULL,
                received_at TEXT NOT NULL, PRIMARY KEY (hub, source, seq));
            CREATE TABLE IF NOT EXISTS office_outbox (
                hub TEXT NOT NULL, route_id TEXT NOT NULL, person_key TEXT NOT NULL, committed_at TEXT NOT NULL,
                queued_at TEXT NOT NULL, delivered_at TEXT, PRIMARY KEY (hub, route_id, person_key, committed_at));
            """
        )
        for r in profile.routes:
            active = r.confirmed_by is not None or not r.needs_confirmation
            conn.execute(
                "INSERT OR IGNORE INTO office_routes (hub, route_id, destination, department, purpose, legal_basis,"
                " items, trigger, min_age, method, approved_by, confirmed_by, state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (profile.hub, r.route_id, r.destination, r.department_ja, r.purpose, r.legal_basis, json.dumps(r.items),
                 r.trigger, r.min_age, r.method, r.approved_by, r.confirmed_by, "active" if active else "approved"),
            )  # fmt: skip
        for key in {r.destination for r in profile.routes} | {"sewer"}:
            conn.execute(
                "INSERT OR IGNORE INTO office_endpoints (hub, party, key, number_use) VALUES (?,?,?,?)",
                (profile.hub, f"{municipality}.{key}", key, int(_NUMBER_USE[key])),
            )
        conn.executemany(
            "INSERT OR IGNORE INTO office_terminals (hub, terminal_id, department, network) VALUES (?,?,?,?)",
            [(profile.hub, *t) for t in profile.terminals],
        )
        self._handlers = {
            MessageType.OFFICE_CHANGE: self._on_change,
            MessageType.OFFICE_REQUEST: self._on_request,
            MessageType.REPLICA_UPDATE: self._on_replica_update,
        }

    @property
    def endpoints(self) -> set[str]:
        rows = self.conn.execute("SELECT party FROM office_endpoints WHERE hub = ?", (self.profile.hub,))
        return {str(p) for (p,) in rows}

    # -- routes -------------------------------------------------------------------------------------------

    def _route(self, destination: str, department: str, purpose: str) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT route_id, items, trigger, min_age, state, approved_by, confirmed_by, legal_basis FROM office_routes"
            " WHERE hub = ? AND destination = ? AND department = ? AND purpose = ?",
            (self.profile.hub, destination, department, purpose),
        ).fetchone()
        if row is None:
            raise self.refuse(
                RefusalCode.NOT_ON_PERMISSION_LIST,
                "RENKEI-001",
                f"{department}（{destination}）の「{purpose}」について承認された連携ルートはありません",
                f"no approved route for {department} ({destination}) under {purpose!r}",
                field="purpose",
            )
        if row[4] != "active":
            raise self.refuse(
                RefusalCode.ROUTE_MISMATCH,
                "RENKEI-001",
                f"連携ルート {row[0]} はデータ主管課の承認後、情報主管課長の確認が済んでいないため有効ではありません",
                f"route {row[0]} was approved by the data owner but not confirmed by the information manager",
                field="route",
            )
        return {
            "route_id": row[0],
            "items": tuple(json.loads(row[1])),
            "trigger": row[2],
            "min_age": row[3],
            "approved_by": row[5],
            "confirmed_by": row[6],
            "legal_basis": row[7],
            "destination": destination,
            "department": department,
            "purpose": purpose,
        }

    def _routes(self, trigger: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT destination, department, purpose FROM office_routes WHERE hub = ? AND trigger = ? AND state = 'active'"
            " ORDER BY route_id",
            (self.profile.hub, trigger),
        ).fetchall()
        return [self._route(*r) for r in rows]

    def _person(self, person_key: str) -> tuple[dict[str, Any], str]:
        row = self.conn.execute(
            "SELECT record, committed_at FROM office_people WHERE hub = ? AND person_key = ?",
            (self.profile.hub, person_key),
        ).fetchone()
        if row is None:
            raise self.refuse(
                RefusalCode.NOT_FOUND,
                "RENKEI-002",
                "参照用住記にこの宛名番号の者はいません",
                "no person with this addressee number in the reference register data",
                field="person_key",
            )
        return dict(json.loads(row[0])), str(row[1])

    # -- delivering along a route --------------------------------------------------------------------------

    def _in_target(self, route: Mapping[str, Any], record: Mapping[str, Any], now: datetime) -> bool:
        min_age = route["min_age"]
        return min_age is None or _age(str(record["birth_date"]), now.date()) >= int(min_age)

    def _deliver(
        self,
        result: Result,
        route: Mapping[str, Any],
        person_key: str,
        record: Mapping[str, Any],
        now: datetime,
        *,
        requested: Iterable[str] | None,
        correlation_id: str | None,
        strict: bool,
    ) -> bool:
        """Send one person's record along one route. ``strict``: a request (refuse what is outside the route)."""
        destination = f"{self.municipality}.{route['destination']}"
        self.allow(
            result, "RENKEI-001", now,
            f"承認済みの連携ルート {route['route_id']}（{route['department']}・{route['purpose']}、承認: {route['approved_by']}）です",
            f"approved route {route['route_id']} ({route['department']}, {route['purpose']}; approved by the data owner)",
            correlation_id, route=route["route_id"], legal_basis=route["legal_basis"],
        )  # fmt: skip
        if not self._in_target(route, record, now):
            reason_ja = f"連携ルート {route['route_id']} の対象者（{route['min_age']}歳以上）ではないため連携しません"
            reason_en = f"the person is outside the target set of route {route['route_id']} (aged {route['min_age']}+)"
            if strict:
                raise self.refuse(RefusalCode.FIELD_NOT_ALLOWED, "RENKEI-002", reason_ja, reason_en, field="person_key")
            result.decisions.append(
                self.decide("RENKEI-002", Outcome.DENY, now, reason_ja=reason_ja, reason_en=reason_en,
                            correlation_id=correlation_id, code=str(RefusalCode.FIELD_NOT_ALLOWED),
                            evidence={"route": route["route_id"], "person_key": person_key})
            )  # fmt: skip
            return False
        allowed = set(route["items"])
        wanted = set(requested) if requested else allowed
        number_use = bool(
            self.conn.execute(
                "SELECT number_use FROM office_endpoints WHERE hub = ? AND party = ?", (self.profile.hub, destination)
            ).fetchone()[0]
        )
        if "my_number" in wanted and not number_use:
            # RENKEI-003: the answer goes without the 個人番号 column, whatever was asked.
            wanted.discard("my_number")
            result.decisions.append(
                self.decide(
                    "RENKEI-003", Outcome.DENY, now,
                    reason_ja=f"{destination} は個人番号利用事務のシステムではないため、個人番号を除いて提供します",
                    reason_en=f"{destination} is not a My Number business system; the record goes without the My Number",
                    correlation_id=correlation_id, code=str(RefusalCode.FIELD_NOT_ALLOWED),
                    evidence={"route": route["route_id"], "destination": destination},
                )
            )  # fmt: skip
        outside = sorted(wanted - allowed)
        if outside and strict:
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED,
                "RENKEI-002",
                f"連携ルート {route['route_id']} で設定されていない項目です: {', '.join(outside)}",
                f"items not configured for route {route['route_id']}: {', '.join(outside)}",
                field="items",
            )
        items = sorted((wanted & allowed) - (set() if number_use else {"my_number"}))
        payload = {k: record[k] for k in items if k in record}
        self.allow(
            result, "RENKEI-002", now,
            f"連携ルート {route['route_id']} に設定された項目・対象者のみを連携します",
            f"only the items and persons configured for route {route['route_id']} are passed",
            correlation_id, route=route["route_id"], items=items,
        )  # fmt: skip
        if "my_number" in payload:
            self.allow(
                result, "RENKEI-003", now,
                f"{destination} は個人番号利用事務のシステムとして登録されているため個人番号を含めます",
                f"{destination} is registered for My Number business; the My Number is included",
                correlation_id, destination=destination,
            )  # fmt: skip
        sent = self.send(
            result,
            MessageType.OFFICE_TRANSFER,
            destination,
            now,
            body={"route_id": route["route_id"], "person_key": person_key, "items": items},
            personal={"record": payload},
            correlation_id=correlation_id,
        )
        record_exchange(self, sent, now, source=self.registry_party, person_key=person_key, outcome="delivered")
        self.audit.append(
            at=now.isoformat(),
            kind="office.exchange",
            correlation_id=correlation_id,
            data={"source": self.registry_party, "destination": destination, "interface": MessageType.OFFICE_TRANSFER,
                  "route": route["route_id"], "count": 1, "items": items},
        )  # fmt: skip
        if self.profile.standard_platform:
            self.allow(
                result, "RENKEI-008", now,
                "連携基盤を経由した連携として記録しました（連携元・連携先・インタフェース・件数・日時）",
                "the exchange passed through the linkage platform and is recorded (source, destination, interface, "
                "count, time)",
                correlation_id, destination=destination, route=route["route_id"],
            )  # fmt: skip
        return True

    # -- staff-started 移転 (RENKEI-004, RENKEI-005) ---------------------------------------------------------

    def transfer(
        self,
        session: StaffSession,
        terminal: str,
        network: str,
        destination: str,
        department: str,
        purpose: str,
        person_key: str,
        items: list[str] | None,
        now: datetime,
    ) -> Result:
        """An ad hoc 移転 started by a staff user at a terminal."""

        def act(result: Result) -> None:
            try:
                self.staff.require(session, "office_transfer", "RENKEI-005", "提供・移転の実行", "start a transfer")
            except Refusal as refusal:
                # Logged as RENKEI-005 whatever the staff directory named, so the refusal is on the control.
                if refusal.control_id == "RENKEI-005":
                    raise
                raise self.refuse(
                    refusal.code, "RENKEI-005", refusal.reason_ja, refusal.reason_en, refusal.field
                ) from None
            self.allow(result, "RENKEI-005", now, "提供・移転の権限を持つ職員による実行です",
                       "the user holds the transfer privilege", None, user=session.user_id)  # fmt: skip
            row = self.conn.execute(
                "SELECT department, network FROM office_terminals WHERE hub = ? AND terminal_id = ?",
                (self.profile.hub, terminal),
            ).fetchone()
            if row is None:
                raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "RENKEI-004",
                                  f"端末 {terminal} は提供・移転を行う端末として登録されていません",
                                  f"terminal {terminal} is not registered for transfers", field="terminal")  # fmt: skip
            if network != row[1]:
                raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "RENKEI-004",
                                  f"登録されたアクセスルート（{row[1]}）以外からの要求です（{network}）",
                                  f"the request came over {network}, not the registered route {row[1]}",
                                  field="network")  # fmt: skip
            self.allow(result, "RENKEI-004", now, "登録された端末・アクセスルートからの要求です",
                       "the request came from a registered terminal over its registered route", None,
                       terminal=terminal, network=network)  # fmt: skip
            route = self._route(destination, department, purpose)
            record, _ = self._person(person_key)
            self._deliver(result, route, person_key, record, now, requested=items, correlation_id=None, strict=True)

        return self.command(now, None, act)

    # -- 提供依頼 from a 連携先 system (on-request routes) ------------------------------------------------------

    def _on_request(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        if env.sender not in self.endpoints:
            raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "RENKEI-002",
                              f"{env.sender} はこの連携基盤に設定された連携先ではありません",
                              f"{env.sender} is not a configured endpoint of this hub", field="sender")  # fmt: skip
        if link.network not in self.profile.networks:
            raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "RENKEI-004",
                              f"登録されたアクセスルート以外（{link.network}）からの要求です",
                              f"the request came over an unregistered route ({link.network})", field="network")  # fmt: skip
        result = Result()
        destination = env.sender.removeprefix(f"{self.municipality}.")
        route = self._route(destination, str(env.body.get("department", "")), str(env.body.get("purpose", "")))
        person_key = str(env.body.get("person_key", ""))
        record, _ = self._person(person_key)
        items = env.body.get("items")
        self._deliver(result, route, person_key, record, now, requested=[str(i) for i in items] if items else None,
                      correlation_id=env.correlation_id, strict=True)  # fmt: skip
        return result

    # -- change data from 既存住基 (RENKEI-006) ----------------------------------------------------------------

    def _on_change(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.registry_party}, "RENKEI-006", "異動データ")
        result = Result()
        seq = env.body.get("seq")
        if not isinstance(seq, int) or seq < 1:
            raise self.refuse(RefusalCode.FIELD_INVALID, "RENKEI-006", "異動データに連番がありません",
                              "change data must carry a positive sequence number", field="seq")  # fmt: skip
        row = self.conn.execute(
            "SELECT last_seq FROM office_sources WHERE hub = ? AND source = ?", (self.profile.hub, env.sender)
        ).fetchone()
        last = 0 if row is None else int(row[0])
        if seq <= last:
            raise self.refuse(RefusalCode.STATE_CONFLICT, "RENKEI-006",
                              f"連番 {seq} の異動データは適用済みです（最終連番 {last}）",
                              f"change data {seq} was already applied (last {last})", field="seq")  # fmt: skip
        record = self.unseal(env).get("record", {})
        if seq > last + 1:
            # A gap: keep this change and wait for the missing ones; applying it now would lose or reorder data.
            self.conn.execute(
                "INSERT OR REPLACE INTO office_pending (hub, source, seq, body, record, received_at) VALUES (?,?,?,?,?,?)",
                (self.profile.hub, env.sender, seq, json.dumps(env.body, ensure_ascii=False),
                 json.dumps(record, ensure_ascii=False), now.isoformat()),
            )  # fmt: skip
            result.decisions.append(
                self.decide(
                    "RENKEI-006", Outcome.HOLD, now,
                    reason_ja=f"異動データの欠番を検知しました（期待 {last + 1}、受信 {seq}）。欠番の到着まで保留し、報告します",
                    reason_en=f"a gap in the change sequence was detected (expected {last + 1}, got {seq}); held and "
                    "reported until the missing change arrives",
                    correlation_id=env.correlation_id, code=str(RefusalCode.STATE_CONFLICT),
                    evidence={"expected": last + 1, "received": seq},
                )
            )  # fmt: skip
            return result
        self._apply(result, env.sender, seq, dict(env.body), record, now, env.correlation_id)
        # Then whatever was waiting behind it, in order.
        while True:
            nxt = self.conn.execute(
                "SELECT seq, body, record FROM office_pending WHERE hub = ? AND source = ? AND seq = ?",
                (self.profile.hub, env.sender, seq + 1),
            ).fetchone()
            if nxt is None:
                break
            seq = int(nxt[0])
            self.conn.execute(
                "DELETE FROM office_pending WHERE hub = ? AND source = ? AND seq = ?",
                (self.profile.hub, env.sender, seq),
            )
            self._apply(result, env.sender, seq, json.loads(nxt[1]), json.loads(nxt[2]), now, env.correlation_id)
        return result

    def _apply(
        self,
        result: Result,
        source: str,
        seq: int,
        body: dict[str, Any],
        record: dict[str, Any],
        now: datetime,
        correlation_id: str | None,
    ) -> None:
        person_key = str(body.get("business_atena_number", ""))
        committed_at = str(body.get("committed_at") or now.isoformat())
        self.conn.execute(
            "INSERT INTO office_sources (hub, source, last_seq) VALUES (?,?,?)"
            " ON CONFLICT(hub, source) DO UPDATE SET last_seq = excluded.last_seq",
            (self.profile.hub, source, seq),
        )
        self.conn.execute(
            "INSERT INTO office_people (hub, person_key, record, committed_at, updated_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT(hub, person_key) DO UPDATE SET record=excluded.record, committed_at=excluded.committed_at,"
            " updated_at=excluded.updated_at",
            (self.profile.hub, person_key, json.dumps(record, ensure_ascii=False), committed_at, now.isoformat()),
        )
        if body.get("initial_load"):
            return  # the 参照用住記 is loaded; subscribers took the same migration and need no distribution
        if self.profile.daily_bound is not None:
            for route in self._routes("daily"):
                self.conn.execute(
                    "INSERT OR IGNORE INTO office_outbox (hub, route_id, person_key, committed_at, queued_at)"
                    " VALUES (?,?,?,?,?)",
                    (self.profile.hub, route["route_id"], person_key, committed_at, now.isoformat()),
                )
        for route in self._routes("on_change"):
            if self._deliver(result, route, person_key, record, now, requested=None, correlation_id=correlation_id,
                             strict=False):  # fmt: skip
                self.allow(
                    result, "RENKEI-006", now,
                    f"異動を随時（リアルタイム）で {route['destination']} に配信しました（連番 {seq}）",
                    f"the change was distributed in real time to {route['destination']} (sequence {seq})",
                    correlation_id, seq=seq, route=route["route_id"],
                    lag_seconds=(now - datetime.fromisoformat(committed_at)).total_seconds(),
                )  # fmt: skip

    def run_batch(self, now: datetime) -> Result:
        """The daily 参照用住記 batch: deliver every queued change; a change older than the bound is reported."""
        bound = self.profile.daily_bound or timedelta(days=1)

        def act(result: Result) -> None:
            rows = self.conn.execute(
                "SELECT route_id, person_key, committed_at FROM office_outbox WHERE hub = ? AND delivered_at IS NULL"
                " ORDER BY committed_at, route_id",
                (self.profile.hub,),
            ).fetchall()
            routes = {
                r[0]: r
                for r in self.conn.execute(
                    "SELECT route_id, destination, department, purpose FROM office_routes WHERE hub = ?",
                    (self.profile.hub,),
                )
            }
            delivered = 0
            for route_id, person_key, committed_at in rows:
                _, destination, department, purpose = routes[route_id]
                route = self._route(destination, department, purpose)
                record, _ = self._person(person_key)
                lag = now - datetime.fromisoformat(committed_at)
                if self._deliver(result, route, person_key, record, now, requested=None, correlation_id=None,
                                 strict=False):  # fmt: skip
                    delivered += 1
                    if lag <= bound:
                        self.allow(
                            result, "RENKEI-006", now,
                            f"日次バッチで異動を {destination} に連携しました（遅延 {lag}）",
                            f"the daily batch carried the change to {destination} (lag {lag})",
                            None, route=route_id, lag_seconds=lag.total_seconds(),
                        )  # fmt: skip
                    else:
                        result.decisions.append(
                            self.decide(
                                "RENKEI-006", Outcome.DENY, now,
                                reason_ja=f"配信が日次の期限を超えて遅延していました（{lag}）。連携し、遅延を報告します",
                                reason_en=f"the change lagged beyond the daily schedule ({lag}); delivered and reported",
                                code=str(RefusalCode.STATE_CONFLICT),
                                evidence={"route": route_id, "lag_seconds": lag.total_seconds()},
                            )
                        )  # fmt: skip
                self.conn.execute(
                    "UPDATE office_outbox SET delivered_at = ? WHERE hub = ? AND route_id = ? AND person_key = ?"
                    " AND committed_at = ?",
                    (now.isoformat(), self.profile.hub, route_id, person_key, committed_at),
                )
            result.value = delivered

        return self.command(now, None, act)

    # -- the 副本 path in 札幌 (RENKEI-007) ---------------------------------------------------------------------

    def _on_replica_update(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.registry_party}, "RENKEI-007", "副本データ")
        if not self.profile.replica_via_hub:
            raise self.refuse(RefusalCode.ROUTE_MISMATCH, "RENKEI-007", "この連携基盤は副本データを中継しません",
                              "this hub does not carry replica data", field="type")  # fmt: skip
        record = self.unseal(env).get("record", {})
        extra = sorted(set(record) - HOUSEHOLD_ITEMS) if isinstance(record, dict) else ["record"]
        if extra:
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED,
                "RENKEI-007",
                f"主務省令第2条の表に定める世帯情報以外の項目は市中間サーバへ転送できません: {', '.join(extra)}",
                f"only the ordinance's household items may go towards the replica; refused: {', '.join(extra)}",
                field=extra[0],
            )
        result = Result()
        self.allow(
            result, "RENKEI-007", now,
            "主務省令第2条の表に定める世帯情報の項目のみを副本へ転送します",
            "only the ordinance's household items are forwarded towards the replica",
            env.correlation_id, items=sorted(record),
        )  # fmt: skip
        sent = self.send(
            result, MessageType.REPLICA_UPDATE, self.atena_party, now, body=dict(env.body),
            personal={"record": record}, correlation_id=env.correlation_id,
        )  # fmt: skip
        record_exchange(self, sent, now, source=env.sender, person_key=str(env.body.get("business_atena_number", "")),
                        outcome="forwarded")  # fmt: skip
        return result

    def exchanges(self) -> list[dict[str, Any]]:
        """The hub's record of exchanges (RENKEI-008), read from its own audit trail."""
        rows = self.conn.execute("SELECT data FROM audit_trail WHERE kind = 'office.exchange' ORDER BY seq").fetchall()
        return [dict(json.loads(r[0])) for r in rows]
