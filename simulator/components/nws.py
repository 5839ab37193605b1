"""情報提供ネットワークシステム (NWS) コアシステム: 処理通番, 機関別符号, the list check, 提供許可証 and routing.

NWS mediates every 情報照会: it checks the (requester, row, provider, item) tuple against the
照会許可用照合リスト (NWS-001), converts the requester's 符号 to the provider's (NWS-003), issues a signed
single-use 提供許可証 with 経路情報, relays the provider's reply along that route only (NWS-004), and keeps its own
情報提供等記録. It must never see a 個人番号 or 住民票コード, and never read a reply: replies are sealed to the
requester and NWS forwards the ciphertext untouched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode
from simulator.model.envelope import Envelope, MessageType
from simulator.model.permissions import PermissionList
from simulator.store.chain import HashChain

__all__ = ["NwsCore", "Organisation"]

SERIAL_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class Organisation:
    """An organisation connected to NWS: its 中間サーバー (or equivalent) and what kind of body it is."""

    org: str  # "kuwana", "kurashiki", "portal"
    kind: str  # "municipality", "health_insurer", "portal"
    gateway: str  # the party that talks to NWS for it
    name_ja: str


class NwsCore(Component):
    name_ja = "情報提供ネットワークシステム（コアシステム）"
    name_en = "NWS core system"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        organisations: list[Organisation],
        permission_list: PermissionList,
        national_server: str,
        code_key: bytes,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.organisations = {o.org: o for o in organisations}
        self.by_gateway = {o.gateway: o for o in organisations}
        self.national_server = national_server
        self._code_key = code_key
        self.records = HashChain(conn, "provision_records")
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS nws_serials (
                serial TEXT PRIMARY KEY, requester TEXT NOT NULL, issued_at TEXT NOT NULL,
                expires_at TEXT NOT NULL, used_at TEXT);
            CREATE TABLE IF NOT EXISTS nws_linkage_codes (
                org TEXT NOT NULL, linkage_code TEXT NOT NULL, link_code TEXT NOT NULL,
                PRIMARY KEY (org, linkage_code), UNIQUE (org, link_code));
            CREATE TABLE IF NOT EXISTS nws_routes (
                permit_id TEXT PRIMARY KEY, query_id TEXT NOT NULL, requester TEXT NOT NULL,
                provider TEXT NOT NULL, requester_linkage_code TEXT NOT NULL, issued_at TEXT NOT NULL,
                replied_at TEXT);
            CREATE TABLE IF NOT EXISTS nws_master (
                name TEXT PRIMARY KEY, version TEXT NOT NULL, sequence INTEGER NOT NULL, body TEXT NOT NULL,
                distributed_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS nws_distribution_acks (
                sequence INTEGER NOT NULL, org TEXT NOT NULL, sent_at TEXT NOT NULL, acked_at TEXT,
                PRIMARY KEY (sequence, org));
            """
        )
        if conn.execute("SELECT 1 FROM nws_master WHERE name = 'permission_list'").fetchone() is None:
            conn.execute(
                "INSERT INTO nws_master (name, version, sequence, body, distributed_at) VALUES (?,?,?,?,?)",
                ("permission_list", permission_list.version, 0, permission_list.model_dump_json(), "initial"),
            )
        self._handlers = {
            MessageType.SERIAL_REQUEST: self._on_serial_request,
            MessageType.LINK_CODE_NOTIFY: self._on_link_code,
            MessageType.QUERY: self._on_query,
            MessageType.PROVISION_REPLY: self._on_reply,
            MessageType.RECORDS_REQUEST: self._on_records_request,
            MessageType.RECEIPT: self._on_receipt,
        }

    # -- 照会許可用照合リスト等の配信 (NWS-002) ----------------------------------------------------------------

    @property
    def permission_list(self) -> PermissionList:
        """The list in force at NWS: the latest version it distributed (kept in its store, not in memory)."""
        # The store is the truth; the parsed list is cached per distribution sequence, since parsing the whole list
        # on every query cost more than the query's cryptography.
        sequence = self._list_sequence()
        cached: tuple[int, PermissionList] | None = getattr(self, "_list_cache", None)
        if cached is None or cached[0] != sequence:
            row = self.conn.execute("SELECT body FROM nws_master WHERE name = 'permission_list'").fetchone()
            cached = (sequence, PermissionList.model_validate_json(row[0]))
            self._list_cache = cached
        return cached[1]

    def _list_sequence(self) -> int:
        return int(self.conn.execute("SELECT sequence FROM nws_master WHERE name = 'permission_list'").fetchone()[0])

    def _tenant_gateways(self) -> list[Organisation]:
        return [o for o in self.organisations.values() if o.kind != "portal"]

    def _send_list(self, result: Result, org: Organisation, now: datetime) -> None:
        """One signed, versioned distribution document per 中間サーバー, carried in a signed message."""
        current = self.permission_list
        sequence = self._list_sequence()
        document = Envelope(
            id=secrets.token_hex(16),
            type=MessageType.PERMISSION_LIST,
            sender=self.party,
            recipient=org.gateway,
            issued_at=now,
            nonce=secrets.token_hex(16),
            body={"version": current.version, "sequence": sequence, "list": current.model_dump(mode="json")},
        )
        self.conn.execute(
            "INSERT INTO nws_distribution_acks (sequence, org, sent_at) VALUES (?,?,?)"
            " ON CONFLICT(sequence, org) DO UPDATE SET sent_at=excluded.sent_at",
            (sequence, org.org, now.isoformat()),
        )
        self.send(
            result,
            MessageType.PERMISSION_LIST,
            org.gateway,
            now,
            body={"document": self.security.sign(document), "version": current.version, "sequence": sequence},
            correlation_id=f"list-{sequence}-{org.org}",
        )

    def distribute(self, permission_list: PermissionList, now: datetime) -> Result:
        """Put a new list version in force at NWS and distribute it to every 中間サーバー (NWS-002)."""

        def act(result: Result) -> None:
            sequence = self._list_sequence() + 1
            self.conn.execute(
                "UPDATE nws_master SET version = ?, sequence = ?, body = ?, distributed_at = ? WHERE name = ?",
                (
                    permission_list.version,
                    sequence,
                    permission_list.model_dump_json(),
                    now.isoformat(),
                    "permission_list",
                ),
            )
            targets = self._tenant_gateways()
            for org in targets:
                self._send_list(result, org, now)
            self.allow(
                result,
                "NWS-002",
                now,
                f"照会許可用照合リスト（版 {permission_list.version}）を署名付きで全中間サーバーへ配信しました",
                f"distributed the signed list version {permission_list.version} to every intermediate server",
                None,
                version=permission_list.version,
                sequence=sequence,
                tenants=[o.org for o in targets],
            )
            result.value = sequence

        return self.command(now, None, act)

    def _on_receipt(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        org = self._gateway_org(env)
        sequence = int(env.body.get("sequence", -1))
        updated = self.conn.execute(
            "UPDATE nws_distribution_acks SET acked_at = ? WHERE sequence = ? AND org = ? AND acked_at IS NULL",
            (now.isoformat(), sequence, org.org),
        ).rowcount
        if updated != 1:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "NWS-002",
                "配信していない版の受領通知です",
                "a receipt for a distribution that was not sent to this organisation",
                field="sequence",
            )
        result = Result()
        pending = [o.org for o in self._tenant_gateways() if not self._acked(sequence, o.org)]
        if not pending and sequence == self._list_sequence():
            self.allow(
                result,
                "NWS-002",
                now,
                f"全ての中間サーバーが照会許可用照合リスト（通番 {sequence}）の適用を通知しました",
                f"every intermediate server acknowledged list sequence {sequence}",
                env.correlation_id,
                sequence=sequence,
            )
        return result

    def _acked(self, sequence: int, org: str) -> bool:
        if sequence == 0:
            return True  # the list every 中間サーバー was built with
        row = self.conn.execute(
            "SELECT acked_at FROM nws_distribution_acks WHERE sequence = ? AND org = ?", (sequence, org)
        ).fetchone()
        return row is not None and row[0] is not None

    def distribution_status(self, now: datetime, resend: bool = False) -> Result:
        """Check which 中間サーバー have not applied the list in force; hold them, and re-send if asked."""

        def act(result: Result) -> None:
            sequence = self._list_sequence()
            pending = [o for o in self._tenant_gateways() if not self._acked(sequence, o.org)]
            if pending:
                result.decisions.append(
                    self.decide(
                        "NWS-002",
                        Outcome.HOLD,
                        now,
                        reason_ja=f"照会許可用照合リスト（通番 {sequence}）を未適用の中間サーバーがあります: "
                        + ", ".join(o.org for o in pending),
                        reason_en=f"not every intermediate server has applied list sequence {sequence}: "
                        + ", ".join(o.org for o in pending),
                        evidence={"sequence": sequence, "pending": [o.org for o in pending]},
                        code=str(RefusalCode.STATE_CONFLICT),
                    )
                )
                if resend:
                    for org in pending:
                        self._send_list(result, org, now)
            else:
                self.allow(
                    result,
                    "NWS-002",
                    now,
                    f"全ての中間サーバーが通番 {sequence} を適用済みです",
                    f"every intermediate server has applied sequence {sequence}",
                    None,
                    sequence=sequence,
                )
            result.value = [o.org for o in pending]

        return self.command(now, None, act)

    # -- 符号 -----------------------------------------------------------------------------------------------

    def _linkage_code_for(self, org: str, link_code: str) -> str:
        """One 符号 per (organisation, person); without NWS's key, two organisations' codes cannot be linked."""
        digest = hmac.new(self._code_key, f"{org}|{link_code}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest[:20]).decode().rstrip("=")

    def _gateway_org(self, envelope: Envelope) -> Organisation:
        org = self.by_gateway.get(envelope.sender)
        if org is None:
            raise self.refuse(
                RefusalCode.SYSTEM_NOT_REGISTERED,
                "CHUKAN-015",
                f"{envelope.sender} は情報提供ネットワークシステムに登録された機関ではありません",
                f"{envelope.sender} is not an organisation registered with NWS",
                field="sender",
            )
        return org

    def _on_serial_request(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        org = self._gateway_org(env)
        result = Result()
        serial = secrets.token_hex(10)
        self.conn.execute(
            "INSERT INTO nws_serials (serial, requester, issued_at, expires_at) VALUES (?,?,?,?)",
            (serial, org.org, now.isoformat(), (now + SERIAL_LIFETIME).isoformat()),
        )
        self.allow(
            result,
            "NWS-005",
            now,
            "処理通番を発行しました",
            "processing serial issued",
            env.correlation_id,
            requester=org.org,
        )
        self.send(
            result,
            MessageType.SERIAL_ISSUED,
            env.sender,
            now,
            body={"processing_serial": serial, "request_ref": env.body.get("request_ref")},
            correlation_id=env.correlation_id,
        )
        return result

    def _on_link_code(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.national_server}, "NWS-005", "符号生成用の情報")
        serial = str(env.body.get("processing_serial", ""))
        row = self.conn.execute(
            "SELECT requester, expires_at, used_at FROM nws_serials WHERE serial = ?", (serial,)
        ).fetchone()
        if row is None:
            raise self.refuse(
                RefusalCode.SERIAL_INVALID,
                "NWS-005",
                "未発行の処理通番です",
                "unknown processing serial",
                field="processing_serial",
            )
        if row[2] is not None:
            raise self.refuse(
                RefusalCode.SERIAL_INVALID,
                "NWS-005",
                "この処理通番は使用済みです",
                "this processing serial was already used",
                field="processing_serial",
            )
        if datetime.fromisoformat(row[1]) < now:
            raise self.refuse(
                RefusalCode.SERIAL_INVALID,
                "NWS-005",
                "処理通番の有効期限が切れています",
                "the processing serial has expired",
                field="processing_serial",
            )
        link_code = str(self.unseal(env)["link_code"])
        org = self.organisations[row[0]]
        code = self._linkage_code_for(org.org, link_code)
        self.conn.execute("UPDATE nws_serials SET used_at = ? WHERE serial = ?", (now.isoformat(), serial))
        self.conn.execute(
            "INSERT OR IGNORE INTO nws_linkage_codes (org, linkage_code, link_code) VALUES (?,?,?)",
            (org.org, code, link_code),
        )
        result = Result()
        self.allow(
            result,
            "NWS-005",
            now,
            "処理通番に対応する符号を生成し払い出しました",
            "generated the linkage code for the processing serial and delivered it",
            env.correlation_id,
            requester=org.org,
        )
        self.send(
            result,
            MessageType.LINKAGE_CODE_ISSUED,
            org.gateway,
            now,
            body={"processing_serial": serial},
            personal={"linkage_code": code},
            correlation_id=env.correlation_id,
        )
        return result

    # -- 情報照会 ------------------------------------------------------------------------------------------

    def _record(self, now: datetime, kind: str, correlation_id: str | None, **data: Any) -> None:
        self.records.append(at=now.isoformat(), kind=kind, correlation_id=correlation_id, data=data)

    def _on_query(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        requester = self._gateway_org(env)
        body = env.body
        row_id = str(body.get("row", ""))
        items = [str(i) for i in body.get("items", [])]
        provider = self.organisations.get(str(body.get("provider", "")))
        query_id = str(body.get("query_id", ""))
        requester_code = str(body.get("requester_linkage_code", ""))
        result = Result()
        record = {
            "requester": requester.org,
            "provider": body.get("provider"),
            "row": row_id,
            "items": items,
            "query_id": query_id,
            "requester_linkage_code": requester_code,
        }
        mapped = self.conn.execute(
            "SELECT link_code FROM nws_linkage_codes WHERE org = ? AND linkage_code = ?",
            (requester.org, requester_code),
        ).fetchone()
        if mapped is None:
            raise self.refuse(
                RefusalCode.LINKAGE_CODE_UNKNOWN,
                "NWS-003",
                "照会者の符号が登録されていません（他機関の符号は使えません）",
                "the requester's linkage code is not registered to it (another organisation's code cannot be used)",
                field="requester_linkage_code",
            )
        refused_items = [
            item
            for item in items
            if provider is None
            or not self.permission_list.allows(
                row=row_id,
                table=body.get("table"),
                requester_kind=requester.kind,
                requester_business=str(body.get("business", "")),
                provider_kind=provider.kind,
                item=item,
            )
        ]
        if not items or refused_items:
            reason_ja = (
                f"照会許可用照合リスト（版 {self.permission_list.version}）に該当する組合せがありません: "
                f"第{row_id}項 照会者={requester.org} 提供者={body.get('provider')} 項目={','.join(refused_items)}"
            )
            reason_en = (
                f"not on the query-permission list (version {self.permission_list.version}): row {row_id}, "
                f"requester {requester.org}, provider {body.get('provider')}, items {refused_items}"
            )
            decision = self.decide(
                "NWS-001",
                Outcome.DENY,
                now,
                reason_ja=reason_ja,
                reason_en=reason_en,
                correlation_id=env.correlation_id,
                evidence={**record, "list_version": self.permission_list.version},
                code=str(RefusalCode.NOT_ON_PERMISSION_LIST),
            )
            result.decisions.append(decision)
            self._record(now, "query.refused", env.correlation_id, **record, reason=reason_en)
            self.send(
                result,
                MessageType.QUERY_REFUSED,
                env.sender,
                now,
                body={
                    "query_id": query_id,
                    "code": str(RefusalCode.NOT_ON_PERMISSION_LIST),
                    "control_id": "NWS-001",
                    "reason_ja": reason_ja,
                    "reason_en": reason_en,
                },
                correlation_id=env.correlation_id,
            )
            return result
        assert provider is not None
        self.allow(
            result,
            "NWS-001",
            now,
            f"照会許可用照合リストの第{row_id}項に該当するため提供許可証を発行します",
            f"the tuple matches row {row_id} of the query-permission list; issuing a provision permit",
            env.correlation_id,
            list_version=self.permission_list.version,
            **record,
        )
        provider_code_row = self.conn.execute(
            "SELECT linkage_code FROM nws_linkage_codes WHERE org = ? AND link_code = ?", (provider.org, mapped[0])
        ).fetchone()
        if provider_code_row is None:
            raise self.refuse(
                RefusalCode.LINKAGE_CODE_NOT_OBTAINED,
                "NWS-003",
                "提供者側でこの本人の符号が取得されていません",
                "the provider has not obtained a linkage code for this person",
                field="provider",
            )
        self.allow(
            result,
            "NWS-003",
            now,
            "照会者の符号を提供者の符号に変換しました",
            "converted the requester's linkage code to the provider's",
            env.correlation_id,
            requester=requester.org,
            provider=provider.org,
        )
        permit_id = secrets.token_hex(12)
        route = {"requester": requester.gateway, "provider": provider.gateway, "query_id": query_id}
        permit = self._issue_permit(
            permit_id,
            provider,
            now,
            env.correlation_id,
            {
                "permit_id": permit_id,
                "requester": requester.org,
                "requester_kind": requester.kind,
                "requester_business": body.get("business"),
                "provider": provider.org,
                "row": row_id,
                "table": body.get("table"),
                "items": items,
                "provider_linkage_code": provider_code_row[0],
                "reply_key": body.get("reply_key"),
                "route": route,
                "list_version": self.permission_list.version,
            },
        )
        self.conn.execute(
            "INSERT INTO nws_routes (permit_id, query_id, requester, provider, requester_linkage_code, issued_at)"
            " VALUES (?,?,?,?,?,?)",
            (permit_id, query_id, requester.gateway, provider.gateway, requester_code, now.isoformat()),
        )
        self._record(
            now,
            "query.mediated",
            env.correlation_id,
            **record,
            permit_id=permit_id,
            provider_linkage_code=provider_code_row[0],
        )
        self.send(
            result,
            MessageType.PROVISION_REQUEST,
            provider.gateway,
            now,
            body={"permit": permit, "route": route, "query_id": query_id},
            correlation_id=env.correlation_id,
        )
        return result

    def _issue_permit(
        self, permit_id: str, provider: Organisation, now: datetime, correlation_id: str | None, body: dict[str, Any]
    ) -> str:
        """A 提供許可証 is itself a signed envelope addressed to the provider: verifiable, single-use, short-lived."""
        envelope = Envelope(
            id=permit_id,
            type=MessageType.PERMIT,
            sender=self.party,
            recipient=provider.gateway,
            issued_at=now,
            nonce=secrets.token_hex(16),
            correlation_id=correlation_id,
            body=body,
        )
        return self.security.sign(envelope)

    def _on_reply(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        provider = self._gateway_org(env)
        permit_id = str(env.body.get("permit_id", ""))
        route = self.conn.execute(
            "SELECT query_id, requester, provider, replied_at, requester_linkage_code FROM nws_routes"
            " WHERE permit_id = ?",
            (permit_id,),
        ).fetchone()
        claimed = env.body.get("route", {})
        if route is None or route[2] != env.sender or claimed.get("requester") != route[1] or route[3] is not None:
            raise self.refuse(
                RefusalCode.ROUTE_MISMATCH,
                "NWS-004",
                "経路情報が発行したものと一致しないため送達しません",
                "the route does not match the one issued with the permit; not delivered",
                field="route",
            )
        result = Result()
        self.allow(
            result,
            "NWS-004",
            now,
            "経路情報どおり照会者へ送達します",
            "delivering to the requester named by the route information",
            env.correlation_id,
            permit_id=permit_id,
            requester=route[1],
        )
        self.conn.execute("UPDATE nws_routes SET replied_at = ? WHERE permit_id = ?", (now.isoformat(), permit_id))
        self._record(
            now,
            "provision.relayed",
            env.correlation_id,
            permit_id=permit_id,
            query_id=route[0],
            provider=provider.org,
            requester=self.by_gateway[route[1]].org,
            status=env.body.get("status"),
        )
        # Relay the ciphertext untouched: NWS holds no key that opens it.
        self.send(
            result,
            MessageType.PROVISION_REPLY,
            route[1],
            now,
            body={**env.body, "relayed_by": self.party, "requester_linkage_code": route[4]},
            sealed=env.sealed,
            sealed_for=route[1] if env.sealed else None,
            correlation_id=env.correlation_id,
        )
        return result

    # -- マイナポータル: the resident's own records --------------------------------------------------------

    def _on_records_request(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        org = self._gateway_org(env)
        code = str(env.body.get("linkage_code", ""))
        mapped = self.conn.execute(
            "SELECT link_code FROM nws_linkage_codes WHERE org = ? AND linkage_code = ?", (org.org, code)
        ).fetchone()
        if mapped is None or org.kind != "portal":
            raise self.refuse(
                RefusalCode.LINKAGE_CODE_UNKNOWN,
                "CHUKAN-022",
                "本人の符号が確認できないため情報提供等記録を開示できません",
                "the person's linkage code is not known; records cannot be disclosed",
                field="linkage_code",
            )
        codes = {
            (o, c)
            for o, c in self.conn.execute(
                "SELECT org, linkage_code FROM nws_linkage_codes WHERE link_code = ?", (mapped[0],)
            )
        }
        own: list[dict[str, Any]] = []
        for row in self.records.rows():
            data = row["data"]
            if (data.get("requester"), data.get("requester_linkage_code")) in codes:
                own.append(
                    {
                        "at": row["at"],
                        "kind": row["kind"],
                        **{
                            k: data.get(k)
                            for k in ("requester", "provider", "row", "items", "permit_id", "reason", "status")
                        },
                    }
                )
        # Close the rows with the reply, which the per-permit relay records do not carry person codes for.
        permits = {r["permit_id"] for r in own if r.get("permit_id")}
        for row in self.records.rows(kind="provision.relayed"):
            if row["data"].get("permit_id") in permits:
                own.append({"at": row["at"], "kind": row["kind"], **row["data"]})
        result = Result()
        self.allow(
            result,
            "CHUKAN-022",
            now,
            "本人の情報提供等記録のみを開示します",
            "disclosing only this person's provision records",
            env.correlation_id,
            count=len(own),
        )
        self.send(
            result,
            MessageType.RECORDS_RESPONSE,
            env.sender,
            now,
            body={"request_ref": env.body.get("request_ref")},
            personal={"records": own},
            correlation_id=env.correlation_id,
        )
        return result
