"""J-LIS (機構): the 都道府県サーバ and 全国サーバ of 住基ネット — 本人確認情報 copies, 個人番号 generation, link codes.

The 都道府県サーバ stores what its CS notify and passes it on (JLIS-001); the 全国サーバ keeps 機構's copy, derives 個人番号
from 住民票コード with its own key, and turns (処理通番, 住民票コード) into the link code NWS derives 符号 from (NWS-005).
It must never send a 住民票コード or 個人番号 to NWS, never issue a 個人番号 twice, and never let its keys leave its store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.municipal_cs import (
    IDENTITY_ITEMS,
    REMOVAL_REASONS,
    ItemProblem,
    check_identifier,
    check_identity_format,
    exact_keys,
    status_for,
)
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import InputError, Refusal, RefusalCode
from simulator.identifiers import my_number_from_resident_code
from simulator.model.envelope import Envelope, MessageType
from simulator.store.db import ensure_schema, transaction

__all__ = ["Difference", "NationalServer", "PrefecturalServer", "compare_identity"]

_COLUMNS = ", ".join(IDENTITY_ITEMS)


@dataclass(frozen=True)
class Difference:
    """One JLIS-002 finding, by 住民票コード. kind: "missing_at_server", "missing_at_cs" or "differs"."""

    resident_code: str
    kind: str
    fields: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"resident_code": self.resident_code, "kind": self.kind, "fields": list(self.fields)}


def compare_identity(
    cs_rows: Iterable[Mapping[str, str]], server_rows: Mapping[str, tuple[Mapping[str, str], bool]]
) -> list[Difference]:
    """Compare a CS upload with a server's copy. ``server_rows``: code → (items, attributed to this CS).

    A server row attributed to another municipality is the person's later life elsewhere: it is compared only
    when the CS still holds that person as a current resident.
    """
    found: list[Difference] = []
    seen: set[str] = set()
    for row in cs_rows:
        code = row["resident_code"]
        seen.add(code)
        entry = server_rows.get(code)
        if entry is None:
            found.append(Difference(code, "missing_at_server"))
            continue
        items, ours = entry
        if not ours and row["change_reason"] in REMOVAL_REASONS:
            continue
        fields = tuple(k for k in IDENTITY_ITEMS if str(items[k]) != str(row[k]))
        if fields:
            found.append(Difference(code, "differs", fields))
    for code, (_, ours) in server_rows.items():
        if ours and code not in seen:
            found.append(Difference(code, "missing_at_cs"))
    return sorted(found, key=lambda d: (d.resident_code, d.kind))


def _role_of(party: str) -> str | None:
    """The role a party id names under the fixed id scheme (``{m}.municipal_cs``, ``jlis.prefectural_server.{p}``)."""
    if party.endswith(".municipal_cs"):
        return "municipal_cs"
    if party.startswith("jlis.prefectural_server."):
        return "prefectural_server"
    return None


class _JukinetServer(Component):
    """What both J-LIS servers share: known peers, the identity-message checks, the consistency check."""

    _table: str

    def _members(self, role: str) -> set[str]:
        """Registered peers of a role, plus those the Directory links to us over 住基ネット under that role's id."""
        rows = self.conn.execute(
            "SELECT party FROM jlis_members WHERE server = ? AND role = ?", (self.party, role)
        ).fetchall()
        members = {r[0] for r in rows}
        for party in self.directory.parties():
            if _role_of(party) == role and self.directory.network_between(self.party, party) == "jukinet":
                members.add(party)
        return members

    def _register(self, party: str, role: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO jlis_members (server, party, role) VALUES (?, ?, ?)", (self.party, party, role)
        )

    def _require_member(self, envelope: Envelope, link: Link, role: str, what_ja: str) -> None:
        self._require_party(envelope, link, self._members(role) or {"(none registered)"}, what_ja)

    def _require_party(self, envelope: Envelope, link: Link, allowed: str | set[str], what_ja: str) -> None:
        self.require_sender(envelope, {allowed} if isinstance(allowed, str) else allowed, "NET-001", what_ja)
        if link.source != envelope.sender:
            raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "NET-001",
                              f"接続元（{link.source}）と電文の送信者（{envelope.sender}）が一致しません",
                              "the connection source is not the signed sender", "sender")

    def _keys(
        self,
        data: Mapping[str, Any],
        required: Iterable[str],
        control_id: str,
        what_ja: str,
        optional: Iterable[str] = (),
    ) -> None:
        try:
            exact_keys(data, required, optional)
        except ItemProblem as problem:
            raise self._problem(problem, control_id, what_ja) from None

    def _problem(self, problem: ItemProblem, control_id: str, what_ja: str) -> Refusal:
        return self.refuse(problem.code, control_id, f"{what_ja}: 項目「{problem.field}」: {problem.rule_ja}",
                           problem.rule_en, problem.field)

    def _identity_items(self, envelope: Envelope, what_ja: str) -> dict[str, str]:
        try:
            return check_identity_format(self.unseal(envelope))
        except ItemProblem as problem:
            raise self._problem(problem, "JLIS-001", what_ja) from None

    def _initial_load(self, envelope: Envelope) -> bool:
        flag = envelope.body.get("initial_load", False)
        if not isinstance(flag, bool):
            raise self.refuse(RefusalCode.FIELD_INVALID, "JLIS-001", "initial_load は真偽値です",
                              "initial_load must be a boolean", "initial_load")
        return flag

    def _keeps_newer_elsewhere(self, current_cs: str | None, current_status: str | None, items: Mapping[str, str],
                               cs_party: str, initial_load: bool) -> bool:
        """An initial-load removal (除票) must not overwrite the person's current record from another municipality."""
        return (
            initial_load
            and items["change_reason"] in REMOVAL_REASONS
            and current_status == "active"
            and current_cs is not None
            and current_cs != cs_party
        )

    def _change_id(self, envelope: Envelope) -> str:
        change_id = envelope.body.get("change_id")
        if not isinstance(change_id, str) or not 1 <= len(change_id) <= 64:
            raise self.refuse(RefusalCode.FIELD_INVALID, "JLIS-001", "異動の識別子が正しくありません",
                              "change_id must be 1 to 64 characters", "change_id")
        return change_id

    def _server_rows(self, cs_party: str) -> dict[str, tuple[dict[str, str], bool]]:
        raise NotImplementedError

    def consistency_check(self, cs_party: str, rows: Iterable[Mapping[str, Any]], now: datetime) -> Result:
        """JLIS-002: compare a CS's 整合性確認用本人確認情報 with this server's copy. Value: list of Difference."""
        materialised = [dict(r) for r in rows]

        def action(result: Result) -> None:
            if cs_party not in self._members("municipal_cs"):
                raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "NET-003",
                                  f"{cs_party} はこのサーバに登録された市町村CSではありません",
                                  f"{cs_party} is not a municipal CS registered with this server", "cs_party")
            for index, row in enumerate(materialised):
                try:
                    check_identity_format(row)
                except ItemProblem as problem:
                    raise self.refuse(problem.code, "JLIS-002", f"整合性確認用本人確認情報 {index} 件目: {problem.rule_ja}",
                                      f"row {index}: {problem.rule_en}", problem.field) from None
            differences = compare_identity(materialised, self._server_rows(cs_party))
            self.audit.append(
                at=now.isoformat(), kind="consistency_check",
                data={"cs": cs_party, "rows": len(materialised), "differences": [d.as_dict() for d in differences]},
            )
            if differences:
                # The check itself ran; a difference is a failed agreement that needs correcting (住基法第14条).
                result.decisions.append(self.decide(
                    "JLIS-002", Outcome.DENY, now,
                    reason_ja=f"整合性確認で差異があります（{len(differences)} 件: "
                              f"{', '.join(d.resident_code for d in differences)}）。是正が必要です",
                    reason_en=f"consistency check found {len(differences)} differences; correction needed",
                    evidence={"cs": cs_party, "differences": [d.as_dict() for d in differences]},
                    code=str(RefusalCode.STATE_CONFLICT),
                ))
            else:
                self.allow(result, "JLIS-002", now, "整合性確認を行いました（差異 0 件）",
                           "consistency check done (0 differences)", cs=cs_party, differences=0)
            result.value = differences

        return self.command(now, None, action)

    def identity(self, resident_code: str) -> dict[str, str] | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM {self._table} WHERE {self._scope()} resident_code = ?",
            (*self._scope_params(), resident_code),
        ).fetchone()
        return None if row is None else dict(zip(IDENTITY_ITEMS, row, strict=True))

    def _scope(self) -> str:
        return ""

    def _scope_params(self) -> tuple[str, ...]:
        return ()


# -- 都道府県サーバ -------------------------------------------------------------------------------------------

_MEMBERS_DDL = """
CREATE TABLE IF NOT EXISTS jlis_members (
    server TEXT NOT NULL, party TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (server, party, role)
);
"""

_PS_DDL = """
CREATE TABLE IF NOT EXISTS ps_identity_info (
    server TEXT NOT NULL, resident_code TEXT NOT NULL,
    name TEXT NOT NULL, birth_date TEXT NOT NULL, sex TEXT NOT NULL, address TEXT NOT NULL,
    my_number TEXT NOT NULL, change_reason TEXT NOT NULL, change_date TEXT NOT NULL,
    status TEXT NOT NULL, cs_party TEXT NOT NULL, change_id TEXT, updated_at TEXT NOT NULL,
    PRIMARY KEY (server, resident_code)
);
CREATE TABLE IF NOT EXISTS ps_changes (
    server TEXT NOT NULL, change_id TEXT NOT NULL, resident_code TEXT NOT NULL, cs_party TEXT NOT NULL,
    received_at TEXT NOT NULL, national_ack_at TEXT,
    PRIMARY KEY (server, change_id)
);
"""


class PrefecturalServer(_JukinetServer):
    """都道府県サーバ. Message contracts:

    - in  IDENTITY_NOTIFY from a member CS: body {"change_id", optional "initial_load"}; sealed = the 8 items.
      out IDENTITY_NOTIFY to the 全国サーバ: body {"change_id", "source_cs", optional "initial_load"}; sealed = 8 items.
      out IDENTITY_ACK to the CS: body {"change_id"}.
    - in  IDENTITY_ACK from the 全国サーバ: body {"change_id"}.
    """

    name_ja = "都道府県サーバ"
    name_en = "prefectural server"
    _table = "ps_identity_info"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        national_party: str,
        municipal_cs: Iterable[str] = (),
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.national_party = national_party
        ensure_schema(conn, _MEMBERS_DDL + _PS_DDL)
        with transaction(conn):
            for cs in municipal_cs:
                self._register(cs, "municipal_cs")
        self._handlers[MessageType.IDENTITY_NOTIFY] = self._on_identity_notify
        self._handlers[MessageType.IDENTITY_ACK] = self._on_national_ack

    def register_municipal_cs(self, cs_party: str) -> None:
        """Add a municipality's CS to this prefecture (persisted)."""
        with transaction(self.conn):
            self._register(cs_party, "municipal_cs")

    def _scope(self) -> str:
        return "server = ? AND"

    def _scope_params(self) -> tuple[str, ...]:
        return (self.party,)

    def _store(self, items: Mapping[str, str], cs_party: str, change_id: str | None, now: datetime) -> None:
        self.conn.execute(
            f"""INSERT INTO ps_identity_info (server, {_COLUMNS}, status, cs_party, change_id, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(server, resident_code) DO UPDATE SET name = excluded.name,
                  birth_date = excluded.birth_date, sex = excluded.sex, address = excluded.address,
                  my_number = excluded.my_number, change_reason = excluded.change_reason,
                  change_date = excluded.change_date, status = excluded.status, cs_party = excluded.cs_party,
                  change_id = excluded.change_id, updated_at = excluded.updated_at""",
            (self.party, *(items[k] for k in IDENTITY_ITEMS), status_for(items["change_reason"]), cs_party,
             change_id, now.isoformat()),
        )

    def _on_identity_notify(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        corr = envelope.correlation_id
        self._require_member(envelope, link, "municipal_cs", "本人確認情報の更新通知")
        self._keys(envelope.body, ["change_id"], "JLIS-001", "本人確認情報の更新通知（制御項目）", ["initial_load"])
        change_id = self._change_id(envelope)
        initial_load = self._initial_load(envelope)
        items = self._identity_items(envelope, "本人確認情報の更新通知")
        if self.conn.execute(
            "SELECT 1 FROM ps_changes WHERE server = ? AND change_id = ?", (self.party, change_id)
        ).fetchone():
            raise self.refuse(RefusalCode.STATE_CONFLICT, "JLIS-001", "同じ異動の更新通知が既に届いています",
                              "this change was already notified", "change_id")
        current = self.conn.execute(
            "SELECT cs_party, status FROM ps_identity_info WHERE server = ? AND resident_code = ?",
            (self.party, items["resident_code"]),
        ).fetchone()
        current_cs, current_status = (None, None) if current is None else (str(current[0]), str(current[1]))
        if not self._keeps_newer_elsewhere(current_cs, current_status, items, envelope.sender, initial_load):
            self._store(items, envelope.sender, change_id, now)
        self.conn.execute(
            "INSERT INTO ps_changes (server, change_id, resident_code, cs_party, received_at) VALUES (?, ?, ?, ?, ?)",
            (self.party, change_id, items["resident_code"], envelope.sender, now.isoformat()),
        )
        body: dict[str, Any] = {"change_id": change_id, "source_cs": envelope.sender}
        if initial_load:
            body["initial_load"] = True
        self.send(result, MessageType.IDENTITY_NOTIFY, self.national_party, now, body=body, personal=items,
                  correlation_id=corr)
        self.send(result, MessageType.IDENTITY_ACK, envelope.sender, now, body={"change_id": change_id},
                  correlation_id=corr)
        self.allow(result, "JLIS-001", now, "都道府県知事保存本人確認情報を更新し、機構へ通知しました",
                   "prefectural copy updated and the update passed on to 機構", corr, change_id=change_id)
        return result

    def _on_national_ack(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self._require_party(envelope, link, self.national_party, "更新受領通知")
        self._keys(envelope.body, ["change_id"], "JLIS-001", "更新受領通知")
        updated = self.conn.execute(
            "UPDATE ps_changes SET national_ack_at = ? WHERE server = ? AND change_id = ? AND national_ack_at IS NULL",
            (now.isoformat(), self.party, envelope.body["change_id"]),
        ).rowcount
        if updated != 1:
            raise self.refuse(RefusalCode.STATE_CONFLICT, "JLIS-001", "未送信または受領済みの更新に対する受領通知です",
                              "an acknowledgement for an update not sent or already acknowledged", "change_id")
        return Result()

    def pending_propagation(self) -> list[str]:
        """Change ids stored here and not yet acknowledged by the 全国サーバ (JLIS-001 gap)."""
        rows = self.conn.execute(
            "SELECT change_id FROM ps_changes WHERE server = ? AND national_ack_at IS NULL ORDER BY received_at",
            (self.party,),
        )
        return [r[0] for r in rows]

    def bulk_load(self, cs_party: str, rows: Iterable[Mapping[str, Any]], now: datetime) -> Result:
        """Initial load of one municipality's 本人確認情報 (8 items per row); one transaction."""
        count = 0
        with transaction(self.conn):
            self._register(cs_party, "municipal_cs")
            for index, row in enumerate(rows):
                try:
                    items = check_identity_format(row)
                except ItemProblem as problem:
                    raise problem.as_input_error(f"rows[{index}].") from None
                self._store(items, cs_party, None, now)
                count += 1
            self.audit.append(at=now.isoformat(), kind="bulk_load",
                              data={"table": "ps_identity_info", "cs": cs_party, "count": count})
        return Result(value=count)

    def _server_rows(self, cs_party: str) -> dict[str, tuple[dict[str, str], bool]]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS}, cs_party FROM ps_identity_info WHERE server = ?", (self.party,)
        ).fetchall()
        return {r[0]: (dict(zip(IDENTITY_ITEMS, r[:8], strict=True)), r[8] == cs_party) for r in rows}


# -- 全国サーバ ---------------------------------------------------------------------------------------------

_NS_DDL = """
CREATE TABLE IF NOT EXISTS ns_keys (purpose TEXT PRIMARY KEY, key BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ns_identity_info (
    resident_code TEXT PRIMARY KEY,
    name TEXT NOT NULL, birth_date TEXT NOT NULL, sex TEXT NOT NULL, address TEXT NOT NULL,
    my_number TEXT NOT NULL, change_reason TEXT NOT NULL, change_date TEXT NOT NULL,
    status TEXT NOT NULL, cs_party TEXT NOT NULL, prefectural_party TEXT, change_id TEXT, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ns_changes (change_id TEXT PRIMARY KEY, resident_code TEXT NOT NULL, received_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ns_numbers (
    resident_code TEXT PRIMARY KEY, my_number TEXT NOT NULL UNIQUE, generation INTEGER, issued_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ns_issued_numbers (
    my_number TEXT PRIMARY KEY, resident_code TEXT NOT NULL, generation INTEGER, issued_at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS ns_issued_numbers_no_delete BEFORE DELETE ON ns_issued_numbers
    BEGIN SELECT RAISE(ABORT, 'ns_issued_numbers is append-only: a 個人番号 is never reissued'); END;
CREATE TABLE IF NOT EXISTS ns_code_acquisitions (
    processing_serial TEXT PRIMARY KEY, resident_code TEXT NOT NULL, requesting_party TEXT NOT NULL,
    received_at TEXT NOT NULL
);
"""


class NationalServer(_JukinetServer):
    """全国サーバ. Message contracts:

    - in  IDENTITY_NOTIFY from a member 都道府県サーバ: body {"change_id", "source_cs", optional "initial_load"};
      sealed = the 8 items;
      out IDENTITY_ACK to it: body {"change_id"}.
    - in  MY_NUMBER_REQUEST from a member CS: body {"request_id"}; sealed {"resident_code"};
      out MY_NUMBER_ISSUED to that CS: body {"request_id"}; sealed {"resident_code", "my_number"}.
    - in  CODE_ACQUISITION_NOTIFY from a member CS or the portal: body {} (or {"processing_serial"}, which must
      equal the sealed one); sealed {"processing_serial", "resident_code"};
      out LINK_CODE_NOTIFY to NWS: body {"processing_serial", "requesting_party"}; sealed {"link_code"} to NWS.
    """

    name_ja = "全国サーバ"
    name_en = "national server"
    _table = "ns_identity_info"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        nws_party: str = "nws.core",
        portal_party: str | None = "portal",
        prefectural_servers: Iterable[str] = (),
        municipal_cs: Iterable[str] = (),
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.nws_party = nws_party
        # マイナポータル signs the resident in with the card (JPKI, run by 機構) and asks for a 符号 itself.
        self.portal_party = portal_party
        ensure_schema(conn, _MEMBERS_DDL + _NS_DDL)
        with transaction(conn):
            for purpose in ("my_number", "link_code"):
                # Separate keys per use: the 個人番号 permutation key never doubles as the link-code PRF key.
                conn.execute(
                    "INSERT OR IGNORE INTO ns_keys (purpose, key) VALUES (?, ?)",
                    (purpose, secrets.token_bytes(32)),
                )
            for ps in prefectural_servers:
                self._register(ps, "prefectural_server")
            for cs in municipal_cs:
                self._register(cs, "municipal_cs")
        self._handlers[MessageType.IDENTITY_NOTIFY] = self._on_identity_notify
        self._handlers[MessageType.MY_NUMBER_REQUEST] = self._on_my_number_request
        self._handlers[MessageType.CODE_ACQUISITION_NOTIFY] = self._on_code_acquisition
        self._handlers[MessageType.IDENTITY_CHECK] = self._on_identity_check

    def register_prefectural_server(self, party: str) -> None:
        with transaction(self.conn):
            self._register(party, "prefectural_server")

    def register_municipal_cs(self, party: str) -> None:
        with transaction(self.conn):
            self._register(party, "municipal_cs")

    def _key(self, purpose: str) -> bytes:
        return bytes(self.conn.execute("SELECT key FROM ns_keys WHERE purpose = ?", (purpose,)).fetchone()[0])

    # -- 機構保存本人確認情報 -------------------------------------------------------------------------------------

    def _store(self, items: Mapping[str, str], cs_party: str, ps: str | None, change_id: str | None,
               now: datetime) -> None:
        self.conn.execute(
            f"""INSERT INTO ns_identity_info ({_COLUMNS}, status, cs_party, prefectural_party, change_id, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(resident_code) DO UPDATE SET name = excluded.name, birth_date = excluded.birth_date,
                  sex = excluded.sex, address = excluded.address, my_number = excluded.my_number,
                  change_reason = excluded.change_reason, change_date = excluded.change_date,
                  status = excluded.status, cs_party = excluded.cs_party,
                  prefectural_party = excluded.prefectural_party, change_id = excluded.change_id,
                  updated_at = excluded.updated_at""",
            (*(items[k] for k in IDENTITY_ITEMS), status_for(items["change_reason"]), cs_party, ps, change_id,
             now.isoformat()),
        )

    def _record_number(self, code: str, number: str, generation: int | None, now: datetime) -> None:
        self.conn.execute(
            "INSERT INTO ns_numbers (resident_code, my_number, generation, issued_at) VALUES (?, ?, ?, ?)",
            (code, number, generation, now.isoformat()),
        )
        self.conn.execute(
            "INSERT INTO ns_issued_numbers (my_number, resident_code, generation, issued_at) VALUES (?, ?, ?, ?)",
            (number, code, generation, now.isoformat()),
        )

    def _pair_check(self, code: str, number: str, now: datetime) -> None:
        """CS-014 (機構 side): the update's 個人番号 must be the one 機構 holds for the 住民票コード."""
        known = self.conn.execute("SELECT my_number FROM ns_numbers WHERE resident_code = ?", (code,)).fetchone()
        if known is not None:
            if known[0] != number:
                raise self.refuse(RefusalCode.STATE_CONFLICT, "CS-014",
                                  "個人番号が機構の保持する住民票コードとの対応と一致しません",
                                  "the 個人番号 is not the one 機構 holds for this 住民票コード", "my_number")
            return
        holder = self.conn.execute(
            "SELECT resident_code FROM ns_issued_numbers WHERE my_number = ?", (number,)
        ).fetchone()
        if holder is not None and holder[0] != code:
            raise self.refuse(RefusalCode.STATE_CONFLICT, "CS-014", "この個人番号は別の住民票コードに指定されています",
                              "this 個人番号 was issued for another 住民票コード", "my_number")
        # A number 機構 has not issued in this world (loaded at start): adopt it so it is never issued again.
        self._record_number(code, number, None, now)

    def _on_identity_notify(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_member(envelope, link, "prefectural_server", "本人確認情報の更新通知")
        self._keys(envelope.body, ["change_id", "source_cs"], "JLIS-001", "本人確認情報の更新通知（制御項目）",
                   ["initial_load"])
        change_id = self._change_id(envelope)
        initial_load = self._initial_load(envelope)
        source_cs = envelope.body["source_cs"]
        if source_cs not in self._members("municipal_cs"):
            raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "NET-001", f"{source_cs} は登録された市町村CSではありません",
                              f"{source_cs!r} is not a registered municipal CS", "source_cs")
        items = self._identity_items(envelope, "本人確認情報の更新通知")
        if self.conn.execute("SELECT 1 FROM ns_changes WHERE change_id = ?", (change_id,)).fetchone():
            raise self.refuse(RefusalCode.STATE_CONFLICT, "JLIS-001", "同じ異動の更新通知が既に届いています",
                              "this change was already notified", "change_id")
        self._pair_check(items["resident_code"], items["my_number"], now)
        current = self.conn.execute(
            "SELECT cs_party, status FROM ns_identity_info WHERE resident_code = ?", (items["resident_code"],)
        ).fetchone()
        current_cs, current_status = (None, None) if current is None else (str(current[0]), str(current[1]))
        if not self._keeps_newer_elsewhere(current_cs, current_status, items, str(source_cs), initial_load):
            self._store(items, str(source_cs), envelope.sender, change_id, now)
        self.conn.execute(
            "INSERT INTO ns_changes (change_id, resident_code, received_at) VALUES (?, ?, ?)",
            (change_id, items["resident_code"], now.isoformat()),
        )
        self.send(result, MessageType.IDENTITY_ACK, envelope.sender, now, body={"change_id": change_id},
                  correlation_id=envelope.correlation_id)
        self.allow(result, "JLIS-001", now, "機構保存本人確認情報を更新しました", "national copy updated",
                   envelope.correlation_id, change_id=change_id)
        return result

    # -- 個人番号の生成 (FL-04) ----------------------------------------------------------------------------------

    def _on_my_number_request(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        code = self._resident_code_request(envelope, link, "request_id", ("CS-006", "CS-012"), "個人番号生成要求")
        number = self.my_number_for(code, now)
        self.send(result, MessageType.MY_NUMBER_ISSUED, envelope.sender, now,
                  body={"request_id": envelope.body["request_id"]},
                  personal={"resident_code": code, "my_number": number}, correlation_id=envelope.correlation_id)
        return result

    def _resident_code_request(
        self, envelope: Envelope, link: Link, control_field: str, controls: tuple[str, str], what_ja: str
    ) -> str:
        """A CS request about one 住民票コード: member CS only, its control field, a sealed, well-formed code.

        ``controls`` names the control for the message shape and the one for the code's format.
        """
        shape, form = controls
        self._require_member(envelope, link, "municipal_cs", what_ja)
        self._keys(envelope.body, [control_field], shape, f"{what_ja}（制御項目）")
        sealed = self.unseal(envelope)
        self._keys(sealed, ["resident_code"], shape, what_ja)
        try:
            return check_identifier(sealed["resident_code"], "resident_code")
        except ItemProblem as problem:
            raise self._problem(problem, form, what_ja) from None

    def my_number_for(self, resident_code: str, now: datetime) -> str:
        """The 個人番号 of a 住民票コード: the one already issued, or a new one that was never issued before."""
        known = self.conn.execute(
            "SELECT my_number FROM ns_numbers WHERE resident_code = ?", (resident_code,)
        ).fetchone()
        if known is not None:
            return str(known[0])
        key = self._key("my_number")
        generation = 0
        while True:
            number = my_number_from_resident_code(resident_code, key, generation)
            taken = self.conn.execute("SELECT 1 FROM ns_issued_numbers WHERE my_number = ?", (number,)).fetchone()
            if taken is None:
                break
            generation += 1  # only numbers issued under another generation (or adopted at load) can collide
        self._record_number(resident_code, number, generation, now)
        return number

    # -- 送付先情報の突合 (CS-015): the 機構保存本人確認情報 and the 個人番号 this server holds for one code ---------

    def _on_identity_check(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        code = self._resident_code_request(envelope, link, "file_id", ("CS-015", "CS-015"), "機構保存本人確認情報の照会")
        items = self.identity(code)
        # The number 機構 generated for the code, never a new one: a check must not issue a 個人番号.
        number = self.conn.execute("SELECT my_number FROM ns_numbers WHERE resident_code = ?", (code,)).fetchone()
        answer: dict[str, Any] = {"resident_code": code, "found": items is not None}
        if items is not None:
            answer.update({k: items[k] for k in ("name", "birth_date", "sex", "address")})
            answer["my_number"] = str(number[0]) if number is not None else items["my_number"]
        self.send(result, MessageType.IDENTITY_CHECK_REPLY, envelope.sender, now,
                  body={"file_id": envelope.body["file_id"]}, personal=answer,
                  correlation_id=envelope.correlation_id)
        return result

    # -- 符号取得 (FL-17 step 5) ---------------------------------------------------------------------------------

    def link_code(self, resident_code: str) -> str:
        """The 機構-generated data NWS derives 符号 from: a keyed PRF of the 住民票コード, so NWS never sees the code."""
        return hmac.new(self._key("link_code"), resident_code.encode(), hashlib.sha256).hexdigest()

    def _on_code_acquisition(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        requesters = set(self._members("municipal_cs"))
        if self.portal_party is not None and self.directory.network_between(self.party, self.portal_party):
            requesters.add(self.portal_party)
        self._require_party(envelope, link, requesters or {"(none registered)"}, "符号取得のための通知")
        self._keys(envelope.body, [], "CS-006", "符号取得のための通知（制御項目）", ["processing_serial"])
        sealed = self.unseal(envelope)
        self._keys(sealed, ["processing_serial", "resident_code"], "CS-006", "符号取得のための通知")
        serial = sealed["processing_serial"]
        if "processing_serial" in envelope.body and envelope.body["processing_serial"] != serial:
            raise self.refuse(RefusalCode.FIELD_INVALID, "NWS-005", "平文と暗号文の処理通番が一致しません",
                              "the processing serial in the body differs from the sealed one", "processing_serial")
        if not isinstance(serial, str) or not 1 <= len(serial) <= 64:
            raise self.refuse(RefusalCode.FIELD_INVALID, "NWS-005", "処理通番の形式が正しくありません",
                              "processing_serial must be 1 to 64 characters", "processing_serial")
        try:
            code = check_identifier(sealed["resident_code"], "resident_code")
        except ItemProblem as problem:
            raise self._problem(problem, "NWS-005", "符号取得のための通知") from None
        if self.conn.execute("SELECT 1 FROM ns_numbers WHERE resident_code = ?", (code,)).fetchone() is None:
            raise self.refuse(RefusalCode.NOT_FOUND, "NWS-005", "個人番号が指定されていない住民票コードです",
                              "no 個人番号 has been issued for this 住民票コード", "resident_code")
        used = self.conn.execute(
            "SELECT 1 FROM ns_code_acquisitions WHERE processing_serial = ?", (serial,)
        ).fetchone()
        if used is not None:
            raise self.refuse(RefusalCode.SERIAL_INVALID, "NWS-005", "この処理通番は既に使用されています",
                              "this 処理通番 was already used", "processing_serial")
        self.conn.execute(
            "INSERT INTO ns_code_acquisitions (processing_serial, resident_code, requesting_party, received_at)"
            " VALUES (?, ?, ?, ?)",
            (serial, code, envelope.sender, now.isoformat()),
        )
        self.send(result, MessageType.LINK_CODE_NOTIFY, self.nws_party, now,
                  body={"processing_serial": serial, "requesting_party": envelope.sender},
                  personal={"link_code": self.link_code(code)}, correlation_id=envelope.correlation_id)
        self.allow(result, "NWS-005", now, "処理通番と住民票コードの組を受け、連携用コードを情報提供ネットワークシステムへ通知しました",
                   "(処理通番, 住民票コード) received; the link code was sent to NWS", envelope.correlation_id)
        return result

    # -- bulk load, consistency --------------------------------------------------------------------------

    def bulk_load(self, cs_party: str, rows: Iterable[Mapping[str, Any]], now: datetime,
                  prefectural_party: str | None = None) -> Result:
        """Initial load of one municipality's 本人確認情報 (8 items per row); adopts the 個人番号 found."""
        count = 0
        with transaction(self.conn):
            self._register(cs_party, "municipal_cs")
            for index, row in enumerate(rows):
                try:
                    items = check_identity_format(row)
                except ItemProblem as problem:
                    raise problem.as_input_error(f"rows[{index}].") from None
                known = self.conn.execute(
                    "SELECT resident_code FROM ns_issued_numbers WHERE my_number = ?", (items["my_number"],)
                ).fetchone()
                if known is not None and known[0] != items["resident_code"]:
                    raise InputError(f"rows[{index}].my_number", "個人番号 already issued for another 住民票コード")
                if known is None:
                    mine = self.conn.execute(
                        "SELECT 1 FROM ns_numbers WHERE resident_code = ?", (items["resident_code"],)
                    ).fetchone()
                    if mine is not None:
                        raise InputError(f"rows[{index}].resident_code", "住民票コード already has another 個人番号")
                    self._record_number(items["resident_code"], items["my_number"], None, now)
                self._store(items, cs_party, prefectural_party, None, now)
                count += 1
            self.audit.append(at=now.isoformat(), kind="bulk_load",
                              data={"table": "ns_identity_info", "cs": cs_party, "count": count})
        return Result(value=count)

    def _server_rows(self, cs_party: str) -> dict[str, tuple[dict[str, str], bool]]:
        rows = self.conn.execute(f"SELECT {_COLUMNS}, cs_party FROM ns_identity_info").fetchall()
        return {r[0]: (dict(zip(IDENTITY_ITEMS, r[:8], strict=True)), r[8] == cs_party) for r in rows}

    def issued_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM ns_issued_numbers").fetchone()[0])

    def code_acquisitions(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT processing_serial, requesting_party, received_at FROM ns_code_acquisitions ORDER BY received_at"
        )
        return [{"processing_serial": r[0], "requesting_party": r[1], "received_at": r[2]} for r in rows]
