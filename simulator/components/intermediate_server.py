"""中間サーバー: one municipality's tenant on the 中間サーバー・プラットフォーム.

It holds the only 符号 ↔ 団体内統合宛名番号 link (CHUKAN-001), the 副本 encrypted at rest with the tenant's
key (CHUKAN-012/014), its own copy of the 照会許可用照合リスト (CHUKAN-009), the 自動応答不可フラグ (CHUKAN-011)
and the tenant's 情報提供等記録 (CHUKAN-022). As requester it queries only with a permit (CHUKAN-008) and
accepts only replies to its own open queries (CHUKAN-019/020); as provider it answers only a verified,
unused 提供許可証 from its 副本 (CHUKAN-010/003). It must never put a 個人番号 on NWS, never hand a 符号 to
the city side, and never touch another tenant's rows.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import InputError, Refusal, RefusalCode
from simulator.model.envelope import Envelope, MessageType
from simulator.model.permissions import PermissionList
from simulator.model.replica import validate_replica
from simulator.store.chain import HashChain

__all__ = ["IntermediateServer", "certificate_fingerprint"]


def certificate_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


class IntermediateServer(Component):
    name_ja = "中間サーバー"
    name_en = "intermediate server"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        tenant: str,
        org_kind: str,
        atena_party: str,
        nws_party: str,
        permission_list: PermissionList,
        query_rows: dict[str, set[str]],
        data_key: bytes,
        staff: StaffDirectory,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.tenant = tenant
        self.org_kind = org_kind
        self.atena_party = atena_party
        self.nws_party = nws_party
        self.query_rows = {business: set(rows) for business, rows in query_rows.items()}
        self.staff = staff
        self._aead = AESGCM(data_key)
        self.records = HashChain(conn, "provision_records")
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS chukan_linkage_codes (
                tenant TEXT NOT NULL, atena_number TEXT NOT NULL, linkage_code TEXT,
                processing_serial TEXT, status TEXT NOT NULL, updated_at TEXT NOT NULL,
                PRIMARY KEY (tenant, atena_number), UNIQUE (tenant, linkage_code));
            CREATE TABLE IF NOT EXISTS chukan_replicas (
                tenant TEXT NOT NULL, atena_number TEXT NOT NULL, item TEXT NOT NULL,
                nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, auto_reply_disabled INTEGER NOT NULL DEFAULT 0,
                updated_at TEXT NOT NULL, PRIMARY KEY (tenant, atena_number, item));
            CREATE TABLE IF NOT EXISTS chukan_permission_list (
                tenant TEXT PRIMARY KEY, version TEXT NOT NULL, body TEXT NOT NULL, applied_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS chukan_open_queries (
                tenant TEXT NOT NULL, query_id TEXT NOT NULL, atena_number TEXT NOT NULL,
                linkage_code TEXT NOT NULL, business TEXT NOT NULL, row TEXT NOT NULL, items TEXT NOT NULL,
                provider TEXT NOT NULL, state TEXT NOT NULL, opened_at TEXT NOT NULL, closed_at TEXT,
                PRIMARY KEY (tenant, query_id));
            CREATE TABLE IF NOT EXISTS chukan_held_requests (
                tenant TEXT NOT NULL, permit_id TEXT NOT NULL, atena_number TEXT NOT NULL,
                permit TEXT NOT NULL, route TEXT NOT NULL, query_id TEXT NOT NULL, state TEXT NOT NULL,
                held_at TEXT NOT NULL, decided_at TEXT, decided_by TEXT, correlation_id TEXT,
                PRIMARY KEY (tenant, permit_id));
            """
        )
        self.apply_permission_list(permission_list, None)
        self._handlers = {
            MessageType.REPLICA_UPDATE: self._on_replica_update,
            MessageType.CODE_REQUEST: self._on_code_request,
            MessageType.SERIAL_ISSUED: self._on_serial_issued,
            MessageType.LINKAGE_CODE_ISSUED: self._on_linkage_code,
            MessageType.BUSINESS_QUERY: self._on_business_query,
            MessageType.QUERY_REFUSED: self._on_query_refused,
            MessageType.PROVISION_REQUEST: self._on_provision_request,
            MessageType.PROVISION_REPLY: self._on_provision_reply,
        }

    # -- master data -------------------------------------------------------------------------------------

    def apply_permission_list(self, permission_list: PermissionList, now: datetime | None) -> None:
        """Store the NWS-distributed list copy atomically (CHUKAN-015); it is what CHUKAN-009 checks against."""
        self.conn.execute(
            "INSERT INTO chukan_permission_list (tenant, version, body, applied_at) VALUES (?,?,?,?)"
            " ON CONFLICT(tenant) DO UPDATE SET version=excluded.version, body=excluded.body,"
            " applied_at=excluded.applied_at",
            (
                self.tenant,
                permission_list.version,
                permission_list.model_dump_json(),
                now.isoformat() if now else "initial",
            ),
        )

    @property
    def permission_list(self) -> PermissionList:
        row = self.conn.execute("SELECT body FROM chukan_permission_list WHERE tenant = ?", (self.tenant,)).fetchone()
        return PermissionList.model_validate_json(row[0])

    def _record(self, now: datetime, kind: str, correlation_id: str | None, **data: Any) -> None:
        self.records.append(
            at=now.isoformat(), kind=kind, correlation_id=correlation_id, data={"tenant": self.tenant, **data}
        )

    # -- 副本 (replica) -----------------------------------------------------------------------------------

    def _aad(self, atena_number: str, item: str) -> bytes:
        # Binding the row key into the AEAD means a ciphertext moved to another person or tenant will not open.
        return f"{self.tenant}|{atena_number}|{item}".encode()

    def _read_replica(self, atena_number: str, item: str) -> tuple[dict[str, Any], bool] | None:
        row = self.conn.execute(
            "SELECT nonce, ciphertext, auto_reply_disabled FROM chukan_replicas"
            " WHERE tenant = ? AND atena_number = ? AND item = ?",
            (self.tenant, atena_number, item),
        ).fetchone()
        if row is None:
            return None
        plain = self._aead.decrypt(row[0], row[1], self._aad(atena_number, item))
        return json.loads(plain), bool(row[2])

    def _on_replica_update(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        # 副本 arrives only automatically, over the internal path from the tenant's own 宛名 (CHUKAN-007, PF-003).
        self.require_sender(env, {self.atena_party}, "CHUKAN-007", "副本の登録")
        if env.body.get("tenant") != self.tenant:
            raise self.refuse(
                RefusalCode.TENANT_MISMATCH,
                "PF-003",
                "他団体の区画への書込みは受け付けません",
                "a write addressed to another tenant's partition is refused",
                field="tenant",
            )
        atena_number = str(env.body.get("atena_number", ""))
        item = str(env.body.get("item", ""))
        try:
            record = validate_replica(item, self.unseal(env).get("record"))
        except InputError as exc:
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                "CHUKAN-004",
                f"副本インポートデータの形式チェックでエラー: {exc.field}: {exc.rule}",
                f"replica import failed the format check: {exc.field}: {exc.rule}",
                field=exc.field,
            ) from None
        known = self.conn.execute(
            "SELECT 1 FROM chukan_linkage_codes WHERE tenant = ? AND atena_number = ?", (self.tenant, atena_number)
        ).fetchone()
        if known is None:
            raise self.refuse(
                RefusalCode.NOT_FOUND,
                "CHUKAN-004",
                "未登録の団体内統合宛名番号に対する副本は登録できません",
                "replica rows for an unknown unified addressee number are refused",
                field="atena_number",
            )
        nonce = secrets.token_bytes(12)
        ciphertext = self._aead.encrypt(
            nonce, json.dumps(record, ensure_ascii=False).encode(), self._aad(atena_number, item)
        )
        flag = 1 if env.body.get("auto_reply_disabled") else 0
        self.conn.execute(
            "INSERT INTO chukan_replicas (tenant, atena_number, item, nonce, ciphertext, auto_reply_disabled, updated_at)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT(tenant, atena_number, item) DO UPDATE SET nonce=excluded.nonce,"
            " ciphertext=excluded.ciphertext, auto_reply_disabled=excluded.auto_reply_disabled,"
            " updated_at=excluded.updated_at",
            (self.tenant, atena_number, item, nonce, ciphertext, flag, now.isoformat()),
        )
        result = Result()
        self.allow(
            result,
            "CHUKAN-004",
            now,
            "副本インポートデータの形式チェックに合格しました",
            "the replica import passed the format check",
            env.correlation_id,
            item=item,
        )
        self.allow(
            result,
            "CHUKAN-012",
            now,
            "副本を団体の鍵で暗号化して保存しました",
            "stored the replica encrypted under the tenant's key",
            env.correlation_id,
            item=item,
        )
        return result

    # -- 符号取得 (code acquisition) --------------------------------------------------------------------------

    def _on_code_request(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.atena_party}, "CHUKAN-018", "符号取得依頼")
        atena_number = str(env.body.get("atena_number", ""))
        if not atena_number:
            raise self.refuse(
                RefusalCode.FIELD_MISSING,
                "CHUKAN-018",
                "団体内統合宛名番号がありません",
                "the unified addressee number is missing",
                field="atena_number",
            )
        existing = self.conn.execute(
            "SELECT status FROM chukan_linkage_codes WHERE tenant = ? AND atena_number = ?", (self.tenant, atena_number)
        ).fetchone()
        result = Result()
        if existing is not None and existing[0] == "obtained":
            self.send(
                result,
                MessageType.CODE_STATUS,
                self.atena_party,
                now,
                body={"atena_number": atena_number, "status": "obtained"},
                correlation_id=env.correlation_id,
            )
            return result
        self.conn.execute(
            "INSERT INTO chukan_linkage_codes (tenant, atena_number, status, updated_at) VALUES (?,?,?,?)"
            " ON CONFLICT(tenant, atena_number) DO UPDATE SET status=excluded.status, updated_at=excluded.updated_at",
            (self.tenant, atena_number, "serial_requested", now.isoformat()),
        )
        self.send(
            result,
            MessageType.SERIAL_REQUEST,
            self.nws_party,
            now,
            body={"request_ref": atena_number},
            correlation_id=env.correlation_id,
        )
        return result

    def _on_serial_issued(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.nws_party}, "NWS-005", "処理通番")
        atena_number = str(env.body.get("request_ref", ""))
        serial = str(env.body.get("processing_serial", ""))
        updated = self.conn.execute(
            "UPDATE chukan_linkage_codes SET processing_serial = ?, status = 'requested', updated_at = ?"
            " WHERE tenant = ? AND atena_number = ? AND status = 'serial_requested'",
            (serial, now.isoformat(), self.tenant, atena_number),
        ).rowcount
        if updated != 1:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "NWS-005",
                "依頼していない処理通番です",
                "a processing serial that was not asked for",
                field="request_ref",
            )
        result = Result()
        self.send(
            result,
            MessageType.CODE_STATUS,
            self.atena_party,
            now,
            body={"atena_number": atena_number, "status": "requested", "processing_serial": serial},
            correlation_id=env.correlation_id,
        )
        return result

    def _on_linkage_code(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.nws_party}, "NWS-005", "符号の払出し")
        serial = str(env.body.get("processing_serial", ""))
        row = self.conn.execute(
            "SELECT atena_number FROM chukan_linkage_codes WHERE tenant = ? AND processing_serial = ?"
            " AND status = 'requested'",
            (self.tenant, serial),
        ).fetchone()
        if row is None:
            raise self.refuse(
                RefusalCode.SERIAL_INVALID,
                "NWS-005",
                "対応する処理通番の依頼がありません",
                "no open request for this processing serial",
                field="processing_serial",
            )
        code = str(self.unseal(env)["linkage_code"])
        self.conn.execute(
            "UPDATE chukan_linkage_codes SET linkage_code = ?, status = 'obtained', updated_at = ?"
            " WHERE tenant = ? AND atena_number = ?",
            (code, now.isoformat(), self.tenant, row[0]),
        )
        result = Result()
        self.allow(
            result,
            "CHUKAN-001",
            now,
            "符号を団体内統合宛名番号に紐付けて中間サーバーにのみ保存しました",
            "linked the linkage code to the unified addressee number, kept only on the intermediate server",
            env.correlation_id,
            atena_number=row[0],
        )
        # The city side learns only that the code exists, never the code itself (CHUKAN-001).
        self.send(
            result,
            MessageType.CODE_STATUS,
            self.atena_party,
            now,
            body={"atena_number": row[0], "status": "obtained"},
            correlation_id=env.correlation_id,
        )
        return result

    # -- 情報照会 (as requester) -------------------------------------------------------------------------------

    def _on_business_query(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.atena_party}, "CHUKAN-018", "情報照会依頼")
        body = env.body
        query_id, row_id = str(body.get("query_id", "")), str(body.get("row", ""))
        items = [str(i) for i in body.get("items", [])]
        provider, business = str(body.get("provider", "")), str(body.get("business", ""))
        atena_number = str(body.get("atena_number", ""))
        if "my_number" in body or (env.sealed and "my_number" in self.unseal(env)):
            # Persons travel on NWS by 符号 only; a 個人番号 never leaves for NWS (CHUKAN-002).
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED,
                "CHUKAN-002",
                "情報照会に個人番号を含めることはできません",
                "a query may not carry a My Number",
                field="my_number",
            )
        if row_id not in self.query_rows.get(business, set()):
            # Query rows are per 事務: the 住基事務 has none at all, so its queries are always refused here.
            raise self.refuse(
                RefusalCode.NOT_ON_PERMISSION_LIST,
                "CHUKAN-008",
                f"第{row_id}項はこの団体の{business}事務が情報照会を行える事務手続ではありません",
                f"row {row_id} is not one this organisation's {business} business may query under",
                field="row",
            )
        code_row = self.conn.execute(
            "SELECT linkage_code FROM chukan_linkage_codes WHERE tenant = ? AND atena_number = ? AND status = 'obtained'",
            (self.tenant, atena_number),
        ).fetchone()
        if code_row is None:
            raise self.refuse(
                RefusalCode.LINKAGE_CODE_NOT_OBTAINED,
                "ATENA-005",
                "照会対象者の符号が取得されていません",
                "no linkage code has been obtained for the person",
                field="atena_number",
            )
        result = Result()
        self.allow(
            result,
            "CHUKAN-008",
            now,
            f"第{row_id}項は照会可能な事務手続です。提供許可証を求めます",
            f"row {row_id} may be queried; asking NWS for a permit",
            env.correlation_id,
            row=row_id,
            items=items,
        )
        self.allow(
            result,
            "CHUKAN-002",
            now,
            "照会対象者は符号で特定し、個人番号は送信しません",
            "the person is named by linkage code; no My Number is sent",
            env.correlation_id,
        )
        self.conn.execute(
            "INSERT INTO chukan_open_queries (tenant, query_id, atena_number, linkage_code, business, row, items,"
            " provider, state, opened_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                self.tenant,
                query_id,
                atena_number,
                code_row[0],
                business,
                row_id,
                json.dumps(items),
                provider,
                "open",
                now.isoformat(),
            ),
        )
        self._record(
            now,
            "query.sent",
            env.correlation_id,
            query_id=query_id,
            requester=self.tenant,
            provider=provider,
            row=row_id,
            items=items,
            linkage_code=code_row[0],
        )
        self.send(
            result,
            MessageType.QUERY,
            self.nws_party,
            now,
            body={
                "query_id": query_id,
                "row": row_id,
                "items": items,
                "provider": provider,
                "business": business,
                "requester_linkage_code": code_row[0],
                "reply_key": certificate_fingerprint(self.directory.certificate(self.party)),
            },
            correlation_id=env.correlation_id,
        )
        return result

    def _close_query(self, query_id: str, state: str, now: datetime) -> tuple[str, str, list[str]]:
        row = self.conn.execute(
            "SELECT atena_number, linkage_code, items, state FROM chukan_open_queries WHERE tenant = ? AND query_id = ?",
            (self.tenant, query_id),
        ).fetchone()
        if row is None or row[3] != "open":
            raise self.refuse(
                RefusalCode.QUERY_NOT_OPEN,
                "CHUKAN-019",
                "対応する未完了の情報照会がありません",
                "no open query matches this reply",
                field="query_id",
            )
        self.conn.execute(
            "UPDATE chukan_open_queries SET state = ?, closed_at = ? WHERE tenant = ? AND query_id = ?",
            (state, now.isoformat(), self.tenant, query_id),
        )
        return row[0], row[1], json.loads(row[2])

    def _on_query_refused(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.nws_party}, "CHUKAN-019", "照会結果")
        query_id = str(env.body.get("query_id", ""))
        atena_number, _code, items = self._close_query(query_id, "refused", now)
        self._record(
            now,
            "query.refused",
            env.correlation_id,
            query_id=query_id,
            requester=self.tenant,
            items=items,
            code=env.body.get("code"),
            control_id=env.body.get("control_id"),
        )
        result = Result()
        self.send(
            result,
            MessageType.BUSINESS_ANSWER,
            self.atena_party,
            now,
            body={
                "query_id": query_id,
                "atena_number": atena_number,
                "status": "refused",
                "code": env.body.get("code"),
                "control_id": env.body.get("control_id"),
                "reason_ja": env.body.get("reason_ja"),
                "reason_en": env.body.get("reason_en"),
            },
            correlation_id=env.correlation_id,
        )
        return result

    def _on_provision_reply(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        # 特定個人情報 reaches the 中間サーバー only as NWS's reply to its own open query (CHUKAN-019).
        self.require_sender(env, {self.nws_party}, "CHUKAN-019", "照会結果")
        query_id = str(env.body.get("query_id", ""))
        atena_number, code, items = self._close_query(query_id, "answered", now)
        result = Result()
        self.allow(
            result,
            "CHUKAN-019",
            now,
            "自らの照会に対する情報提供ネットワークシステム経由の回答です",
            "the reply answers this server's own open query and came through NWS",
            env.correlation_id,
        )
        status = str(env.body.get("status", ""))
        data: dict[str, Any] = {}
        if status == "provided":
            data = self.unseal(env)
            # NWS writes the requester's own 符号 into the relayed header; the provider bound the query id inside
            # the ciphertext. Both must match the open query.
            if env.body.get("requester_linkage_code") != code or data.get("query_id") != query_id:
                raise self.refuse(
                    RefusalCode.REPLY_MISMATCH,
                    "CHUKAN-020",
                    "回答の符号または照会IDが照会と一致しません",
                    "the reply's linkage code or query id does not match the open query",
                    field="linkage_code",
                )
            self.allow(
                result,
                "CHUKAN-020",
                now,
                "回答の符号が照会対象者と一致しました",
                "the reply is bound to the linkage code of the open query",
                env.correlation_id,
            )
            self.allow(
                result,
                "CHUKAN-012",
                now,
                "照会者の鍵で暗号化された回答を復号しました",
                "decrypted a reply encrypted to this requester's key",
                env.correlation_id,
            )
        self._record(
            now,
            "query.answered",
            env.correlation_id,
            query_id=query_id,
            requester=self.tenant,
            status=status,
            items=items,
            permit_id=env.body.get("permit_id"),
            linkage_code=code,
        )
        self.send(
            result,
            MessageType.BUSINESS_ANSWER,
            self.atena_party,
            now,
            body={"query_id": query_id, "atena_number": atena_number, "status": status},
            personal={"data": data.get("data", {})} if status == "provided" else None,
            correlation_id=env.correlation_id,
        )
        return result

    # -- 情報提供 (as provider) --------------------------------------------------------------------------------

    def _verify_permit(self, wire: str, now: datetime) -> Envelope:
        try:
            permit = self.security.verify_with_sender(wire, now)[0]
        except Refusal as refusal:
            code, why_ja, why_en = {
                RefusalCode.REPLAYED_MESSAGE: (
                    RefusalCode.PERMIT_REUSED,
                    "使用済みの提供許可証です",
                    "the provision permit was already used",
                ),
                RefusalCode.STALE_MESSAGE: (
                    RefusalCode.PERMIT_EXPIRED,
                    "提供許可証の有効期限が切れています",
                    "the provision permit has expired",
                ),
            }.get(
                refusal.code,
                (
                    RefusalCode.PERMIT_INVALID,
                    f"提供許可証の検証に失敗しました（{refusal.reason_ja}）",
                    f"the provision permit failed verification ({refusal.reason_en})",
                ),
            )
            raise self.refuse(
                code,
                "CHUKAN-013" if code == RefusalCode.PERMIT_INVALID else "CHUKAN-010",
                why_ja,
                why_en,
                field="permit",
            ) from None
        if permit.sender != self.nws_party or permit.type != MessageType.PERMIT:
            raise self.refuse(
                RefusalCode.PERMIT_INVALID,
                "CHUKAN-013",
                "情報提供ネットワークシステムが発行した提供許可証ではありません",
                "the permit was not issued by NWS",
                field="permit",
            )
        return permit

    def _on_provision_request(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.nws_party}, "CHUKAN-010", "情報提供の求め")
        permit_wire = env.body.get("permit")
        route = env.body.get("route")
        if not isinstance(permit_wire, str) or not isinstance(route, dict):
            raise self.refuse(
                RefusalCode.PERMIT_INVALID,
                "CHUKAN-010",
                "提供許可証または経路情報がありません",
                "the permit or the route information is missing",
                field="permit" if not isinstance(permit_wire, str) else "route",
            )
        permit = self._verify_permit(permit_wire, now)
        p = permit.body
        result = Result()
        self.allow(
            result,
            "CHUKAN-013",
            now,
            "提供許可証の署名を検証しました",
            "verified the provision permit's signature",
            env.correlation_id,
            permit_id=p.get("permit_id"),
        )
        if p.get("route") != route or p.get("provider") != self.tenant:
            raise self.refuse(
                RefusalCode.ROUTE_MISMATCH,
                "CHUKAN-010",
                "経路情報が提供許可証と一致しません",
                "the route information does not match the permit",
                field="route",
            )
        code = str(p.get("provider_linkage_code", ""))
        person = self.conn.execute(
            "SELECT atena_number FROM chukan_linkage_codes WHERE tenant = ? AND linkage_code = ? AND status = 'obtained'",
            (self.tenant, code),
        ).fetchone()
        if person is None:
            raise self.refuse(
                RefusalCode.LINKAGE_CODE_UNKNOWN,
                "CHUKAN-010",
                "提供許可証の符号に該当する者がいません",
                "no person here holds the linkage code named by the permit",
                field="provider_linkage_code",
            )
        items = [str(i) for i in p.get("items", [])]
        local_list = self.permission_list
        for item in items:
            if not local_list.allows(
                row=str(p.get("row")),
                requester_kind=str(p.get("requester_kind")),
                requester_business=str(p.get("requester_business")),
                provider_kind=self.org_kind,
                item=item,
            ):
                self._record(
                    now,
                    "provision.refused",
                    env.correlation_id,
                    permit_id=p.get("permit_id"),
                    requester=p.get("requester"),
                    row=p.get("row"),
                    items=items,
                    linkage_code=code,
                    reason="not on local permission list copy",
                )
                raise self.refuse(
                    RefusalCode.NOT_ON_PERMISSION_LIST,
                    "CHUKAN-009",
                    f"中間サーバーが保持する照会許可用照合リスト（版 {local_list.version}）で許可されていない提供要求です",
                    f"the request is not allowed by this server's copy of the list (version {local_list.version})",
                    field="items",
                )
        self.allow(
            result,
            "CHUKAN-009",
            now,
            "中間サーバーが保持する照会許可用照合リストで提供要求を確認しました",
            "checked the request against this server's own copy of the permission list",
            env.correlation_id,
            list_version=local_list.version,
            row=p.get("row"),
        )
        atena_number = str(person[0])
        records = {item: self._read_replica(atena_number, item) for item in items}
        if any(r is not None and r[1] for r in records.values()):
            self.conn.execute(
                "INSERT INTO chukan_held_requests (tenant, permit_id, atena_number, permit, route, query_id, state,"
                " held_at, correlation_id) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    self.tenant,
                    p["permit_id"],
                    atena_number,
                    json.dumps(p),
                    json.dumps(route),
                    str(env.body.get("query_id")),
                    "held",
                    now.isoformat(),
                    env.correlation_id,
                ),
            )
            result.decisions.append(
                self.decide(
                    "CHUKAN-011",
                    Outcome.HOLD,
                    now,
                    reason_ja="自動応答不可フラグが設定されているため、職員の確認待ちとしました",
                    reason_en="the auto-reply-disabled flag is set; held for staff review",
                    correlation_id=env.correlation_id,
                    evidence={"permit_id": p["permit_id"]},
                )
            )
            self._record(
                now,
                "provision.held",
                env.correlation_id,
                permit_id=p["permit_id"],
                requester=p.get("requester"),
                row=p.get("row"),
                items=items,
                linkage_code=code,
            )
            result.value = {"held": p["permit_id"]}
            return result
        self.allow(
            result,
            "CHUKAN-011",
            now,
            "自動応答不可フラグは設定されていません",
            "no auto-reply-disabled flag is set",
            env.correlation_id,
        )
        self._reply(result, p, route, atena_number, str(env.body.get("query_id")), now, env.correlation_id, None)
        return result

    def _reply(
        self,
        result: Result,
        permit: dict[str, Any],
        route: dict[str, Any],
        atena_number: str,
        query_id: str,
        now: datetime,
        correlation_id: str | None,
        released_by: str | None,
    ) -> None:
        """Answer from the 副本 with exactly the permitted items, sealed to the key the permit names."""
        data: dict[str, Any] = {}
        for item in permit.get("items", []):
            found = self._read_replica(atena_number, str(item))
            data[str(item)] = found[0] if found else None
        requester_party = str(route["requester"])
        requester_cert = self.directory.certificate(requester_party)
        if certificate_fingerprint(requester_cert) != permit.get("reply_key"):
            raise self.refuse(
                RefusalCode.PERMIT_INVALID,
                "CHUKAN-012",
                "提供許可証が指定する暗号化鍵が照会者の証明書と一致しません",
                "the key named by the permit is not the requester's certificate key",
                field="reply_key",
            )
        self.allow(
            result,
            "CHUKAN-003",
            now,
            "副本から回答を作成しました（既存システムには接続しません）",
            "built the reply from the replica, without touching the source systems",
            correlation_id,
            items=list(data),
        )
        self.allow(
            result,
            "CHUKAN-012",
            now,
            "照会者から受領した鍵で回答を暗号化しました",
            "encrypted the reply with the key received from the requester",
            correlation_id,
        )
        self.allow(
            result,
            "CHUKAN-010",
            now,
            "提供許可証と経路情報に基づき照会者にのみ自動で回答します",
            "answering automatically, only to the requester named by the permit and route",
            correlation_id,
            permit_id=permit.get("permit_id"),
        )
        self._record(
            now,
            "provision.sent",
            correlation_id,
            permit_id=permit.get("permit_id"),
            requester=permit.get("requester"),
            row=permit.get("row"),
            items=list(data),
            linkage_code=permit.get("provider_linkage_code"),
            released_by=released_by,
        )
        self.send(
            result,
            MessageType.PROVISION_REPLY,
            self.nws_party,
            now,
            body={"permit_id": permit.get("permit_id"), "query_id": query_id, "route": route, "status": "provided"},
            personal={"query_id": query_id, "permit_id": permit.get("permit_id"), "data": data},
            seal_to=requester_party,
            correlation_id=correlation_id,
        )

    # -- staff functions -------------------------------------------------------------------------------------

    def release_held(self, session: StaffSession, permit_id: str, approve: bool, now: datetime) -> Result:
        """A reviewer re-checks a held request and releases or refuses it; both are logged (CHUKAN-011/017)."""
        held = self.conn.execute(
            "SELECT atena_number, permit, route, query_id, state, correlation_id FROM chukan_held_requests"
            " WHERE tenant = ? AND permit_id = ?",
            (self.tenant, permit_id),
        ).fetchone()
        correlation_id = held[5] if held else None

        def act(result: Result) -> None:
            self.staff.require(
                session, "auto_reply_reviewer", "CHUKAN-011", "自動応答不可の要求の確認・送信", "release a held request"
            )
            if held is None or held[4] != "held":
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "CHUKAN-011",
                    "確認待ちの要求ではありません",
                    "there is no held request with this permit id",
                    field="permit_id",
                )
            state = "released" if approve else "refused"
            self.conn.execute(
                "UPDATE chukan_held_requests SET state = ?, decided_at = ?, decided_by = ? WHERE tenant = ? AND permit_id = ?",
                (state, now.isoformat(), session.user_id, self.tenant, permit_id),
            )
            self.allow(
                result,
                "CHUKAN-016",
                now,
                "確認権限を持つ職員による操作です",
                "the operator holds the reviewer role",
                correlation_id,
                user=session.user_id,
            )
            self.audit.append(
                at=now.isoformat(),
                kind="staff.operation",
                correlation_id=correlation_id,
                data={"user": session.user_id, "operation": f"held_request.{state}", "permit_id": permit_id},
            )
            permit, route = json.loads(held[1]), json.loads(held[2])
            if approve:
                result.decisions.append(
                    self.decide(
                        "CHUKAN-011",
                        Outcome.ALLOW,
                        now,
                        reason_ja="職員が送信内容を改めて確認し、送信を許可しました",
                        reason_en="a reviewer re-checked the content and released it",
                        correlation_id=correlation_id,
                        evidence={"user": session.user_id, "permit_id": permit_id},
                    )
                )
                self._reply(result, permit, route, held[0], held[3], now, correlation_id, session.user_id)
            else:
                result.decisions.append(
                    self.decide(
                        "CHUKAN-011",
                        Outcome.DENY,
                        now,
                        reason_ja="職員が確認のうえ提供しないと判断しました",
                        reason_en="a reviewer declined to provide",
                        correlation_id=correlation_id,
                        evidence={"user": session.user_id, "permit_id": permit_id},
                        code=str(RefusalCode.RELEASE_REFUSED),
                    )
                )
                self._record(
                    now,
                    "provision.declined",
                    correlation_id,
                    permit_id=permit_id,
                    requester=permit.get("requester"),
                    items=permit.get("items"),
                    declined_by=session.user_id,
                    linkage_code=permit.get("provider_linkage_code"),
                )
                self.send(
                    result,
                    MessageType.PROVISION_REPLY,
                    self.nws_party,
                    now,
                    body={"permit_id": permit_id, "query_id": held[3], "route": route, "status": "declined"},
                    correlation_id=correlation_id,
                )

        return self.command(now, correlation_id, act)

    def held_requests(self) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT permit_id FROM chukan_held_requests WHERE tenant = ? AND state = 'held' ORDER BY held_at",
                (self.tenant,),
            )
        ]

    def view_replica(self, session: StaffSession, tenant: str, atena_number: str, item: str, now: datetime) -> Result:
        """Authorised screen view of 副本 content (CHUKAN-005), confined to this tenant (PF-003)."""

        def act(result: Result) -> None:
            self.staff.require(session, "replica_viewer", "CHUKAN-005", "副本の内容確認", "view replica content")
            if tenant != self.tenant:
                raise self.refuse(
                    RefusalCode.TENANT_MISMATCH,
                    "PF-003",
                    "他団体の区画のデータは参照できません",
                    "another tenant's partition cannot be read",
                    field="tenant",
                )
            found = self._read_replica(atena_number, item)
            self.audit.append(
                at=now.isoformat(),
                kind="staff.operation",
                correlation_id=None,
                data={"user": session.user_id, "operation": "replica.view", "atena_number": atena_number, "item": item},
            )
            self.allow(result, "PF-003", now, "自団体の区画のデータです", "the row belongs to this tenant", None)
            result.value = found[0] if found else None

        return self.command(now, None, act)
