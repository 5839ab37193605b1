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
from datetime import datetime, timedelta
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
from simulator.store.db import transaction

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
        allowed_networks: frozenset[str] = frozenset({"lgwan"}),
        result_ttl: timedelta = timedelta(days=7),
        retention: timedelta = timedelta(days=365 * 7),
        table: str | None = None,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.tenant = tenant
        self.org_kind = org_kind
        self.atena_party = atena_party
        self.nws_party = nws_party
        self.query_rows = {business: set(rows) for business, rows in query_rows.items()}
        self.table = table  # the table this organisation's query rows are numbered in
        self.staff = staff
        # The tenant's key-encryption key (kept in the HSM: the world's keys/ directory) only wraps data keys.
        self._kek = AESGCM(data_key)
        self.allowed_networks = allowed_networks
        self.result_ttl = result_ttl
        self.retention = retention
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
                updated_at TEXT NOT NULL, key_version INTEGER NOT NULL DEFAULT 1,
                PRIMARY KEY (tenant, atena_number, item));
            CREATE TABLE IF NOT EXISTS chukan_permission_list (
                tenant TEXT PRIMARY KEY, version TEXT NOT NULL, body TEXT NOT NULL, applied_at TEXT NOT NULL,
                sequence INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS chukan_data_keys (
                tenant TEXT NOT NULL, version INTEGER NOT NULL, nonce BLOB NOT NULL, wrapped BLOB NOT NULL,
                exportable INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, retired_at TEXT,
                PRIMARY KEY (tenant, version));
            CREATE TABLE IF NOT EXISTS chukan_staff_sessions (
                tenant TEXT NOT NULL, session_id TEXT NOT NULL, user_id TEXT NOT NULL,
                logged_in_at TEXT NOT NULL, logged_out_at TEXT, PRIMARY KEY (tenant, session_id));
            CREATE TABLE IF NOT EXISTS chukan_query_results (
                tenant TEXT NOT NULL, query_id TEXT NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL,
                key_version INTEGER NOT NULL, closed_at TEXT NOT NULL, expires_at TEXT NOT NULL,
                PRIMARY KEY (tenant, query_id));
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
        if (
            self.conn.execute("SELECT 1 FROM chukan_permission_list WHERE tenant = ?", (self.tenant,)).fetchone()
            is None
        ):
            self.apply_permission_list(permission_list, None)
        if self.conn.execute("SELECT 1 FROM chukan_data_keys WHERE tenant = ?", (self.tenant,)).fetchone() is None:
            self._new_data_key(1, None)
        self._handlers = {
            MessageType.REPLICA_UPDATE: self._on_replica_update,
            MessageType.CODE_REQUEST: self._on_code_request,
            MessageType.SERIAL_ISSUED: self._on_serial_issued,
            MessageType.LINKAGE_CODE_ISSUED: self._on_linkage_code,
            MessageType.BUSINESS_QUERY: self._on_business_query,
            MessageType.QUERY_REFUSED: self._on_query_refused,
            MessageType.PROVISION_REQUEST: self._on_provision_request,
            MessageType.PROVISION_REPLY: self._on_provision_reply,
            MessageType.PERMISSION_LIST: self._on_permission_list,
        }

    # -- master data -------------------------------------------------------------------------------------

    def apply_permission_list(self, permission_list: PermissionList, now: datetime | None, sequence: int = 0) -> None:
        """Store the NWS-distributed list copy atomically (CHUKAN-015); it is what CHUKAN-009 checks against."""
        self.conn.execute(
            "INSERT INTO chukan_permission_list (tenant, version, body, applied_at, sequence) VALUES (?,?,?,?,?)"
            " ON CONFLICT(tenant) DO UPDATE SET version=excluded.version, body=excluded.body,"
            " applied_at=excluded.applied_at, sequence=excluded.sequence",
            (
                self.tenant,
                permission_list.version,
                permission_list.model_dump_json(),
                now.isoformat() if now else "initial",
                sequence,
            ),
        )

    @property
    def permission_list(self) -> PermissionList:
        # Parsed once per applied version (the stored copy stays the truth; see NwsCore.permission_list).
        stamp = self.conn.execute(
            "SELECT version, applied_at FROM chukan_permission_list WHERE tenant = ?", (self.tenant,)
        ).fetchone()
        cached: tuple[tuple[str, str], PermissionList] | None = getattr(self, "_list_cache", None)
        if cached is None or cached[0] != (stamp[0], stamp[1]):
            row = self.conn.execute("SELECT body FROM chukan_permission_list WHERE tenant = ?", (self.tenant,)).fetchone()
            cached = ((stamp[0], stamp[1]), PermissionList.model_validate_json(row[0]))
            self._list_cache = cached
        return cached[1]

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
            "SELECT nonce, ciphertext, auto_reply_disabled, key_version FROM chukan_replicas"
            " WHERE tenant = ? AND atena_number = ? AND item = ?",
            (self.tenant, atena_number, item),
        ).fetchone()
        if row is None:
            return None
        plain = self._data_key(int(row[3])).decrypt(row[0], row[1], self._aad(atena_number, item))
        return json.loads(plain), bool(row[2])

    def _on_replica_update(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        # 副本 arrives only automatically, over the internal path from the tenant's own 宛名 (CHUKAN-007, PF-003).
        self.require_sender(env, {self.atena_party}, "CHUKAN-007", "副本の登録")
        result = Result()
        self._replica_channel(result, "internal_path", env.sender, now, env.correlation_id)
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
        key_version = self._current_key_version()
        ciphertext = self._data_key(key_version).encrypt(
            nonce, json.dumps(record, ensure_ascii=False).encode(), self._aad(atena_number, item)
        )
        flag = 1 if env.body.get("auto_reply_disabled") else 0
        self.conn.execute(
            "INSERT INTO chukan_replicas (tenant, atena_number, item, nonce, ciphertext, auto_reply_disabled, updated_at,"
            " key_version) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(tenant, atena_number, item) DO UPDATE SET"
            " nonce=excluded.nonce, ciphertext=excluded.ciphertext, auto_reply_disabled=excluded.auto_reply_disabled,"
            " updated_at=excluded.updated_at, key_version=excluded.key_version",
            (self.tenant, atena_number, item, nonce, ciphertext, flag, now.isoformat(), key_version),
        )
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

    def _refuse_linkage_code_from_city(self, env: Envelope) -> None:
        """The city side never names a person by 符号: a 符号 is not a search or join key there (CHUKAN-001)."""
        if "linkage_code" in env.body or "requester_linkage_code" in env.body:
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED,
                "CHUKAN-001",
                "団体内のシステムから符号を指定した検索・照会はできません（符号は中間サーバー内でのみ使用します）",
                "a city-side system may not name a person by linkage code; codes are used only inside this server",
                field="linkage_code",
            )

    def _on_code_request(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.atena_party}, "CHUKAN-018", "符号取得依頼")
        self._refuse_linkage_code_from_city(env)
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
        self._refuse_linkage_code_from_city(env)
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
            "CHUKAN-018",
            now,
            "登録された既存システム（団体内統合宛名システム）からの接続として認証しました",
            "authenticated the caller as the registered city system (the unified addressee system)",
            env.correlation_id,
            caller=env.sender,
            certificate_serial=format(cert.serial_number, "x"),
        )
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
                "table": self.table,
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
        self._keep_result(query_id, {"status": "refused", "code": env.body.get("code")}, now)
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
        self._keep_result(query_id, {"status": status, "data": data.get("data", {})}, now)
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
                table=p.get("table"),
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
            if found is None:
                # No 副本 row: the 中間サーバー has no path into the source systems, so this item is not provided.
                result.decisions.append(
                    self.decide(
                        "CHUKAN-003",
                        Outcome.DENY,
                        now,
                        reason_ja=f"副本に「{item}」がないため提供しません（既存システムには照会しません）",
                        reason_en=f"no replica row for {item}; not provided (the source systems are never queried)",
                        correlation_id=correlation_id,
                        evidence={"item": item, "permit_id": permit.get("permit_id")},
                        code=str(RefusalCode.NOT_FOUND),
                    )
                )
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
            self._require_login(session)
            self._no_platform_operator(session, "CHUKAN-005", "副本の内容確認", "view replica content")
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
            self.allow(
                result,
                "CHUKAN-005",
                now,
                "副本照会の権限を持つ職員が副本の内容を画面で確認しました（操作を記録）",
                "a staff member holding the replica-view privilege viewed replica content (the view is logged)",
                None,
                user=session.user_id,
                item=item,
            )
            result.value = found[0] if found else None

        return self.command(now, None, act)

    # -- 回線 (PF-001 LGWAN only, PF-002 one tunnel per tenant) ------------------------------------------------

    def handle(self, wire: str, link: Link, now: datetime) -> Result:
        """Check the connection before reading anything: LGWAN only (PF-001), the tenant's own tunnel (PF-002)."""
        if link.network not in self.allowed_networks:
            refusal = self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                "PF-001",
                f"中間サーバーへの接続は行政専用ネットワーク（LGWAN）経由に限られます（接続元ネットワーク: {link.network}）",
                f"connections to the intermediate server are accepted only over LGWAN (came over {link.network})",
                field="network",
            )
            return self.refused(
                refusal, now, correlation_id=None, evidence={"network": link.network, "source": link.source}
            )
        city_side = link.source != self.nws_party
        if city_side and link.source != self.atena_party:
            # The platform terminates one VPN per municipality; this tenant's tunnel carries only its own systems.
            refusal = self.refuse(
                RefusalCode.TENANT_MISMATCH,
                "PF-002",
                f"{self.tenant} の回線以外から届いた通信（接続元: {link.source}）は破棄しました",
                f"dropped traffic that did not come through {self.tenant}'s own tunnel (came from {link.source})",
                field="source",
            )
            return self.refused(
                refusal, now, correlation_id=None, evidence={"network": link.network, "source": link.source}
            )
        decisions = [
            self.decide(
                "PF-001",
                Outcome.ALLOW,
                now,
                reason_ja="行政専用ネットワーク（LGWAN）経由の接続です",
                reason_en="the connection came over LGWAN",
                evidence={"network": link.network, "source": link.source},
            )
        ]
        if city_side:
            decisions.append(
                self.decide(
                    "PF-002",
                    Outcome.ALLOW,
                    now,
                    reason_ja=f"{self.tenant} 専用の暗号化回線からの通信です",
                    reason_en=f"the traffic came through {self.tenant}'s own encrypted tunnel",
                    evidence={"tunnel": self.tenant, "source": link.source},
                )
            )
        result = super().handle(wire, link, now)
        result.decisions[:0] = decisions
        return result

    # -- 鍵管理 (CHUKAN-014) ---------------------------------------------------------------------------------

    def _new_data_key(self, version: int, now: datetime | None) -> None:
        """Generate a data key inside the key-management function; only its wrapped form is ever stored."""
        nonce = secrets.token_bytes(12)
        wrapped = self._kek.encrypt(nonce, AESGCM.generate_key(bit_length=256), f"{self.tenant}|dek|{version}".encode())
        self.conn.execute(
            "INSERT INTO chukan_data_keys (tenant, version, nonce, wrapped, exportable, created_at) VALUES (?,?,?,?,0,?)",
            (self.tenant, version, nonce, wrapped, now.isoformat() if now else "initial"),
        )

    def _current_key_version(self) -> int:
        row = self.conn.execute(
            "SELECT MAX(version) FROM chukan_data_keys WHERE tenant = ? AND retired_at IS NULL", (self.tenant,)
        ).fetchone()
        return int(row[0])

    def _data_key(self, version: int) -> AESGCM:
        row = self.conn.execute(
            "SELECT nonce, wrapped FROM chukan_data_keys WHERE tenant = ? AND version = ?", (self.tenant, version)
        ).fetchone()
        if row is None:
            raise self.refuse(
                RefusalCode.NOT_FOUND,
                "CHUKAN-014",
                f"鍵バージョン {version} はこの団体の鍵管理にありません",
                f"key version {version} is not in this tenant's key store",
                field="key_version",
            )
        return AESGCM(self._kek.decrypt(row[0], row[1], f"{self.tenant}|dek|{version}".encode()))

    def rotate_key(self, session: StaffSession, now: datetime) -> Result:
        """Rotate the tenant's data key: new writes use the new key; rows under older keys must still open."""

        def act(result: Result) -> None:
            self._require_login(session)
            self._no_platform_operator(session, "CHUKAN-014", "鍵の更新", "rotate keys")
            self.staff.require(session, "key_manager", "CHUKAN-014", "鍵の更新", "rotate the data key")
            old = self._current_key_version()
            self._new_data_key(old + 1, now)
            self.conn.execute(
                "UPDATE chukan_data_keys SET retired_at = ? WHERE tenant = ? AND version <= ?",
                (now.isoformat(), self.tenant, old),
            )
            # Prove old data stays readable: open one row per older key version with the rotated key store.
            checked = 0
            for atena_number, item, _version in self.conn.execute(
                "SELECT atena_number, item, MIN(key_version) FROM chukan_replicas WHERE tenant = ?"
                " GROUP BY key_version",
                (self.tenant,),
            ).fetchall():
                if self._read_replica(str(atena_number), str(item)) is not None:
                    checked += 1
            self._operation(session, now, "key.rotate", from_version=old, to_version=old + 1)
            self.allow(
                result,
                "CHUKAN-014",
                now,
                f"データ暗号化鍵を版 {old} から {old + 1} に更新しました（旧鍵の副本 {checked} 版分の復号を確認）",
                f"rotated the data key from version {old} to {old + 1}; rows under older keys still decrypt",
                None,
                from_version=old,
                to_version=old + 1,
                old_versions_checked=checked,
            )
            result.value = old + 1

        return self.command(now, None, act)

    def export_key(self, session: StaffSession, version: int, now: datetime) -> Result:
        """A request to take key material out of the key-management function: keys are non-exportable."""

        def act(result: Result) -> None:
            self._require_login(session)
            row = self.conn.execute(
                "SELECT exportable FROM chukan_data_keys WHERE tenant = ? AND version = ?", (self.tenant, version)
            ).fetchone()
            if row is None or not row[0]:
                raise self.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED,
                    "CHUKAN-014",
                    "暗号鍵は鍵管理機能の外へ取り出せません（エクスポート不可の鍵です）",
                    "keys cannot leave the key-management function (the key is non-exportable)",
                    field="version",
                )
            # Even a key marked exportable leaves only wrapped under the tenant's key-encryption key.
            wrapped = self.conn.execute(
                "SELECT wrapped FROM chukan_data_keys WHERE tenant = ? AND version = ?", (self.tenant, version)
            ).fetchone()[0]
            self._operation(session, now, "key.export", version=version)
            result.value = bytes(wrapped).hex()

        return self.command(now, None, act)

    # -- 職員認証・操作記録 (CHUKAN-016 / CHUKAN-017) --------------------------------------------------------------

    def login(self, user_id: str, password: str, now: datetime) -> Result:
        """Staff login at this tenant's terminal: authenticated, and recorded whether it succeeds or fails."""
        try:
            session = self.staff.authenticate(user_id, password)
        except Refusal as failed:
            # A failed attempt is recorded in its own transaction, so nothing else rolls it back (CHUKAN-017).
            with transaction(self.conn), self.audit.batch():
                self.audit.append(
                    at=now.isoformat(),
                    kind="staff.login_failed",
                    correlation_id=None,
                    data={"user": user_id, "code": str(failed.code)},
                )
            refusal = self.refuse(
                failed.code,
                "CHUKAN-016",
                f"中間サーバーへのログインを拒否しました: {failed.reason_ja}",
                f"login to the intermediate server refused: {failed.reason_en}",
                field="user_id",
            )
            return self.refused(refusal, now, correlation_id=None, evidence={"user": user_id})

        def act(result: Result) -> None:
            self.conn.execute(
                "INSERT INTO chukan_staff_sessions (tenant, session_id, user_id, logged_in_at) VALUES (?,?,?,?)",
                (self.tenant, session.session_id, session.user_id, now.isoformat()),
            )
            self.audit.append(
                at=now.isoformat(),
                kind="staff.login",
                correlation_id=None,
                data={"user": session.user_id, "session": session.session_id},
            )
            self.allow(
                result,
                "CHUKAN-016",
                now,
                "職員をユーザIDとパスワードで認証しました",
                "the staff member was authenticated",
                None,
                user=session.user_id,
                roles=sorted(session.roles),
            )
            self.allow(
                result,
                "CHUKAN-017",
                now,
                "ログインした職員と時刻を記録しました",
                "recorded who logged in and when",
                None,
                user=session.user_id,
            )
            result.value = session

        return self.command(now, None, act)

    def logout(self, session: StaffSession, now: datetime) -> Result:
        def act(result: Result) -> None:
            self._require_login(session)
            self.conn.execute(
                "UPDATE chukan_staff_sessions SET logged_out_at = ? WHERE tenant = ? AND session_id = ?",
                (now.isoformat(), self.tenant, session.session_id),
            )
            self.audit.append(
                at=now.isoformat(),
                kind="staff.logout",
                correlation_id=None,
                data={"user": session.user_id, "session": session.session_id},
            )
            self.allow(
                result,
                "CHUKAN-017",
                now,
                "ログアウトした職員と時刻を記録しました",
                "recorded who logged out and when",
                None,
                user=session.user_id,
            )

        return self.command(now, None, act)

    def _require_login(self, session: StaffSession) -> None:
        row = self.conn.execute(
            "SELECT user_id, logged_out_at FROM chukan_staff_sessions WHERE tenant = ? AND session_id = ?",
            (self.tenant, session.session_id),
        ).fetchone()
        if row is None or row[0] != session.user_id or row[1] is not None:
            raise self.refuse(
                RefusalCode.NOT_AUTHENTICATED,
                "CHUKAN-017",
                "この中間サーバーにログインした記録のないセッションでは操作できません",
                "no login to this intermediate server is recorded for the session; the operation is refused",
                field="session",
            )

    def _operation(self, session: StaffSession, now: datetime, operation: str, **data: Any) -> None:
        self.audit.append(
            at=now.isoformat(),
            kind="staff.operation",
            correlation_id=None,
            data={"user": session.user_id, "session": session.session_id, "operation": operation, **data},
        )

    def _no_platform_operator(self, session: StaffSession, control: str, what_ja: str, what_en: str) -> None:
        """Platform operators run the infrastructure only; the data plane belongs to the municipality (PF-004)."""
        if "platform_operator" in session.roles:
            raise self.refuse(
                RefusalCode.ROLE_MISSING,
                "PF-004",
                f"運用事業者の権限では特定個人情報を扱う機能（{what_ja}）は使えません",
                f"the platform-operator role has no access to personal-data functions ({what_en})",
                field="role",
            )

    def operate(self, session: StaffSession, action: str, now: datetime) -> Result:
        """Infrastructure operations (service restart, metrics) for the platform-operator role (PF-004)."""

        def act(result: Result) -> None:
            self._require_login(session)
            self.staff.require(session, "platform_operator", "PF-004", "基盤の運用操作", "operate the infrastructure")
            if action == "read_metrics":
                value: Any = {
                    table: self.conn.execute(
                        f"SELECT COUNT(*) FROM {table} WHERE tenant = ?", (self.tenant,)
                    ).fetchone()[0]
                    for table in ("chukan_replicas", "chukan_open_queries", "chukan_held_requests")
                }
            elif action == "restart_service":
                value = {"restarted": self.party}
            else:
                raise self.refuse(
                    RefusalCode.FIELD_INVALID,
                    "PF-004",
                    f"運用事業者に許された基盤操作ではありません: {action}",
                    f"not an infrastructure operation the operator role may run: {action}",
                    field="action",
                )
            self._operation(session, now, f"platform.{action}")
            self.allow(
                result,
                "PF-004",
                now,
                "基盤の運用操作です（特定個人情報には触れません）",
                "an infrastructure operation that touches no personal data",
                None,
                action=action,
                user=session.user_id,
            )
            result.value = value

        return self.command(now, None, act)

    # -- 副本の取込経路 (CHUKAN-007) ------------------------------------------------------------------------------

    def _replica_channel(
        self, result: Result, channel: str, source: str, now: datetime, correlation_id: str | None
    ) -> None:
        if channel != "internal_path" or source != self.atena_party:
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                "CHUKAN-007",
                "副本は業務システムから団体内統合宛名システムを経由して自動で登録します。端末からの手動取込や他の経路からの取込はできません",
                "the replica is fed automatically over the internal path through the unified addressee system;"
                " manual uploads and other channels are refused",
                field="channel",
            )
        self.allow(
            result,
            "CHUKAN-007",
            now,
            "副本を専用経路から自動で受け付けました",
            "the replica arrived automatically over the dedicated internal path",
            correlation_id,
            source=source,
        )

    def import_replica_file(self, session: StaffSession, rows: list[dict[str, Any]], now: datetime) -> Result:
        """A 副本 file uploaded at the 中間サーバー terminal: refused, the only channel is the automatic one."""

        def act(result: Result) -> None:
            self._require_login(session)
            self._operation(session, now, "replica.upload", rows=len(rows))
            self._replica_channel(result, "terminal_upload", f"terminal:{session.user_id}", now, None)

        return self.command(now, None, act)

    # -- 照会結果の保存期間 (CHUKAN-021) ---------------------------------------------------------------------

    def _keep_result(self, query_id: str, answer: dict[str, Any], now: datetime) -> None:
        version = self._current_key_version()
        nonce = secrets.token_bytes(12)
        ciphertext = self._data_key(version).encrypt(
            nonce, json.dumps(answer, ensure_ascii=False).encode(), f"{self.tenant}|result|{query_id}".encode()
        )
        self.conn.execute(
            "INSERT OR REPLACE INTO chukan_query_results (tenant, query_id, nonce, ciphertext, key_version, closed_at,"
            " expires_at) VALUES (?,?,?,?,?,?,?)",
            (self.tenant, query_id, nonce, ciphertext, version, now.isoformat(), (now + self.result_ttl).isoformat()),
        )

    def view_query_result(self, session: StaffSession, query_id: str, now: datetime) -> Result:
        """The 照会 function's result screen: available to the owner until the TTL passes, then gone."""

        def act(result: Result) -> None:
            self._require_login(session)
            self._no_platform_operator(session, "CHUKAN-021", "照会結果の確認", "view query results")
            self.staff.require(session, "query_operator", "CHUKAN-016", "照会結果の確認", "view query results")
            row = self.conn.execute(
                "SELECT nonce, ciphertext, key_version, expires_at FROM chukan_query_results"
                " WHERE tenant = ? AND query_id = ?",
                (self.tenant, query_id),
            ).fetchone()
            if row is None or datetime.fromisoformat(row[3]) <= now:
                raise self.refuse(
                    RefusalCode.NOT_FOUND,
                    "CHUKAN-021",
                    "照会結果は保存期間の経過により削除されています（または存在しません）",
                    "the query result is past its retention period and has been deleted (or never existed)",
                    field="query_id",
                )
            answer = json.loads(
                self._data_key(int(row[2])).decrypt(row[0], row[1], f"{self.tenant}|result|{query_id}".encode())
            )
            self._operation(session, now, "query_result.view", query_id=query_id)
            self.allow(
                result,
                "CHUKAN-021",
                now,
                f"保存期間内（{row[3]} まで）の照会結果です",
                f"the query result is within its retention period (until {row[3]})",
                None,
                query_id=query_id,
                expires_at=row[3],
            )
            result.value = answer

        return self.command(now, None, act)

    def purge_expired_results(self, now: datetime) -> Result:
        """The 照会 function's scheduled purge of completed or aborted results past their TTL (CHUKAN-021)."""

        def act(result: Result) -> None:
            expired = [
                r[0]
                for r in self.conn.execute(
                    "SELECT query_id FROM chukan_query_results WHERE tenant = ? AND expires_at <= ?",
                    (self.tenant, now.isoformat()),
                )
            ]
            self.conn.execute(
                "DELETE FROM chukan_query_results WHERE tenant = ? AND expires_at <= ?", (self.tenant, now.isoformat())
            )
            kept = self.conn.execute(
                "SELECT COUNT(*) FROM chukan_query_results WHERE tenant = ?", (self.tenant,)
            ).fetchone()[0]
            self.audit.append(
                at=now.isoformat(),
                kind="batch.query_results_purged",
                correlation_id=None,
                data={"deleted": len(expired), "kept": kept},
            )
            if expired:
                self.allow(
                    result,
                    "CHUKAN-021",
                    now,
                    f"保存期間を過ぎた照会結果 {len(expired)} 件を自動削除しました",
                    f"purged {len(expired)} query results past their retention period",
                    None,
                    deleted=expired,
                    kept=kept,
                )
            result.value = {"deleted": len(expired), "kept": kept}

        return self.command(now, None, act)

    # -- 保管期限切れ情報の削除 (CHUKAN-023) --------------------------------------------------------------------------

    def run_retention_batch(self, now: datetime) -> Result:
        """System-management batch: delete working data past its retention limit, and report what it did."""
        limit = (now - self.retention).isoformat()

        def act(result: Result) -> None:
            report: dict[str, dict[str, int]] = {}
            for table, closed in (("chukan_open_queries", "closed_at"), ("chukan_held_requests", "decided_at")):
                deleted = self.conn.execute(
                    f"DELETE FROM {table} WHERE tenant = ? AND {closed} IS NOT NULL AND {closed} < ?",
                    (self.tenant, limit),
                ).rowcount
                kept = self.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE tenant = ?", (self.tenant,)).fetchone()[0]
                report[table] = {"deleted": deleted, "kept": kept}
            left = sum(
                self.conn.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE tenant = ? AND {closed} IS NOT NULL AND {closed} < ?",
                    (self.tenant, limit),
                ).fetchone()[0]
                for table, closed in (("chukan_open_queries", "closed_at"), ("chukan_held_requests", "decided_at"))
            )
            status = "ok" if left == 0 else "failed"
            self.audit.append(
                at=now.isoformat(),
                kind="batch.retention",
                correlation_id=None,
                data={"limit": limit, "report": report, "status": status},
            )
            deleted_total = sum(r["deleted"] for r in report.values())
            if status != "ok":
                result.decisions.append(
                    self.decide(
                        "CHUKAN-023",
                        Outcome.HOLD,
                        now,
                        reason_ja=f"保管期限切れ情報の削除バッチが完了しませんでした（残 {left} 件）。運用状況アラート",
                        reason_en=f"the retention batch did not complete ({left} rows left); operating-status alert",
                        evidence={"report": report},
                        code=str(RefusalCode.STATE_CONFLICT),
                    )
                )
            else:
                self.allow(
                    result,
                    "CHUKAN-023",
                    now,
                    f"保管期限（{limit} 以前）を過ぎた情報 {deleted_total} 件を削除しました",
                    f"deleted {deleted_total} rows past their retention limit ({limit})",
                    None,
                    report=report,
                )
            result.value = {"status": status, "report": report}

        return self.command(now, None, act)

    def delete_query_record(self, session: StaffSession, query_id: str, now: datetime) -> Result:
        """A request to delete a 照会 record by hand: only once its retention limit has passed (CHUKAN-023)."""

        def act(result: Result) -> None:
            self._require_login(session)
            self._no_platform_operator(session, "CHUKAN-023", "照会記録の削除", "delete query records")
            row = self.conn.execute(
                "SELECT closed_at FROM chukan_open_queries WHERE tenant = ? AND query_id = ?", (self.tenant, query_id)
            ).fetchone()
            if row is None:
                raise self.refuse(
                    RefusalCode.NOT_FOUND,
                    "CHUKAN-023",
                    "該当する照会記録はありません",
                    "no such query record",
                    field="query_id",
                )
            until = datetime.fromisoformat(row[0]) + self.retention if row[0] else None
            if until is None or until > now:
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "CHUKAN-023",
                    f"保管期限（{until.date() if until else '未完了'}）前の照会記録は削除できません",
                    f"the query record is within its retention limit ({until or 'still open'}) and cannot be deleted",
                    field="query_id",
                )
            self.conn.execute(
                "DELETE FROM chukan_open_queries WHERE tenant = ? AND query_id = ?", (self.tenant, query_id)
            )
            self._operation(session, now, "query_record.delete", query_id=query_id)
            self.allow(
                result,
                "CHUKAN-023",
                now,
                "保管期限を過ぎた照会記録を削除しました",
                "deleted a query record past its retention limit",
                None,
                query_id=query_id,
            )

        return self.command(now, None, act)

    # -- 配信マスター (CHUKAN-015 / NWS-002) ---------------------------------------------------------------------

    def _on_permission_list(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {self.nws_party}, "CHUKAN-015", "配信マスター情報")
        current = self.conn.execute(
            "SELECT version, sequence FROM chukan_permission_list WHERE tenant = ?", (self.tenant,)
        ).fetchone()
        try:
            document = self.security.verify_with_sender(str(env.body.get("document", "")), now)[0]
        except Refusal as bad:
            raise self.refuse(
                RefusalCode.BAD_SIGNATURE,
                "CHUKAN-015",
                f"署名を検証できない配信マスターは適用しません（現行の版 {current[0]} を維持します）: {bad.reason_ja}",
                f"a master distribution whose signature does not verify is not applied (version {current[0]}"
                f" stays in force): {bad.reason_en}",
                field="document",
            ) from None
        if document.sender != self.nws_party or document.type != MessageType.PERMISSION_LIST:
            raise self.refuse(
                RefusalCode.BAD_SIGNATURE,
                "CHUKAN-015",
                "情報提供ネットワークシステムが署名した配信マスターではありません",
                "the master data was not signed by NWS",
                field="document",
            )
        sequence = int(document.body.get("sequence", 0))
        if sequence <= int(current[1]):
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "CHUKAN-015",
                f"適用済みの版（通番 {current[1]}）より古い配信マスターは適用しません",
                f"a distribution not newer than the applied one (sequence {current[1]}) is not applied",
                field="sequence",
            )
        try:
            new_list = PermissionList.model_validate(document.body.get("list"))
        except ValueError:
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                "CHUKAN-015",
                "配信マスターの形式が正しくありません",
                "the distributed master data is malformed",
                field="list",
            ) from None
        self.apply_permission_list(new_list, now, sequence)
        result = Result()
        self.allow(
            result,
            "CHUKAN-015",
            now,
            f"署名を検証した配信マスター（版 {new_list.version}）を一括で適用しました",
            f"applied the verified master distribution (version {new_list.version}) atomically",
            env.correlation_id,
            version=new_list.version,
            previous=current[0],
            sequence=sequence,
        )
        self.send(
            result,
            MessageType.RECEIPT,
            self.nws_party,
            now,
            body={"of": "permission_list", "version": new_list.version, "sequence": sequence, "tenant": self.tenant},
            correlation_id=env.correlation_id,
        )
        return result
