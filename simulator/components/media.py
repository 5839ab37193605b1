"""媒体・データ出力の管理 (media and export control): copies, exports and media intake of one municipality.

Every export of 特定個人情報 to a medium or a contractor passes here: who may copy (MEDIA-001), the output record
(MEDIA-002), the staff witness (MEDIA-003), the 使用管理簿, prior approval and designated media (MEDIA-004), the bulk
threshold (MEDIA-005), media intake per flow (MEDIA-006), CS encryption of 送付先 media (MEDIA-007) and encrypted
hand-over to contractors (ITAKU-003), each only where the profile's data (scenarios/data/media.yaml) claims it. It must
never write a medium without its record, and never call ciphertext what is only encoded: packages are AES-256-GCM.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import BaseModel, ConfigDict, Field

from simulator.components.base import Component, Directory, Result
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import InputError, RefusalCode
from simulator.model.area_data import DATA_DIR, Cited, load_area_file

__all__ = [
    "MediaControl",
    "MediaRules",
    "load_area_data",
    "media_rules",
    "open_package",
    "seal_package",
]

M = TypeVar("M", bound=BaseModel)

class CopyRule(Cited):
    staff_admin_only: bool  # only holders of the admin privilege may copy (000, 001, 003)
    contractors_forbidden: bool  # contract clause 複写又は複製の禁止 (004 and the others)


class BulkRule(Cited):
    threshold: int = Field(ge=1)  # person-records per output, or cumulative per user over the window
    window_hours: int = Field(ge=1)


class UsageRegisterRule(Cited):
    designated_media: tuple[str, ...] = Field(min_length=1)


class FlowChannels(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    channels: tuple[str, ...] = Field(min_length=1)


class ChannelRule(Cited):
    flows: tuple[FlowChannels, ...] = Field(min_length=1)


class CsEncryptionRule(Cited):
    files: tuple[str, ...] = Field(min_length=1)


class MediaRules(BaseModel):
    """What one profile claims about media and export (an absent rule is not claimed, so not enforced)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    copy_rule: CopyRule | None = Field(default=None, alias="copy")
    export_record: Cited | None = None
    witness: Cited | None = None
    usage_register: UsageRegisterRule | None = None
    bulk_output: BulkRule | None = None
    media_channels: ChannelRule | None = None
    cs_media_encryption: CsEncryptionRule | None = None


def load_area_data(name: str, model: type[M], profile: str, path: Path | None = None) -> M:
    """One profile's entry of scenarios/data/<name>.yaml (or ``path``), validated by the shared area-data loader; a
    bad entry names its ``file:line field`` and rule."""
    source = path or DATA_DIR / f"{name}.yaml"
    entries = load_area_file(source, model)
    if profile not in entries:
        raise InputError(f"{name}.{profile}", f"{source.name} has no entry for profile {profile!r}")
    return entries[profile]


def media_rules(profile: str) -> MediaRules:
    return load_area_data("media", MediaRules, profile)


# -- packages: what a medium or a hand-over really holds --------------------------------------------------------


def _scrypt_key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(passphrase.encode())


def seal_package(rows: list[dict[str, Any]], *, key: bytes | None = None, passphrase: str | None = None) -> bytes:
    """AES-256-GCM over the canonical JSON of the rows, with a held key or a passphrase-derived (scrypt) key."""
    plain = json.dumps(rows, ensure_ascii=False, sort_keys=True).encode()
    nonce = secrets.token_bytes(12)
    if passphrase is not None:
        salt = secrets.token_bytes(16)
        return b"JKPW" + salt + nonce + AESGCM(_scrypt_key(passphrase, salt)).encrypt(nonce, plain, b"JKPW")
    if key is None:
        raise ValueError("key or passphrase: one is needed to seal a package")
    return b"JKKY" + nonce + AESGCM(key).encrypt(nonce, plain, b"JKKY")


def open_package(blob: bytes, *, key: bytes | None = None, passphrase: str | None = None) -> list[dict[str, Any]]:
    """Decrypt a package (raises cryptography's InvalidTag on a wrong key or passphrase)."""
    if blob.startswith(b"JKPW"):
        if passphrase is None:
            raise ValueError("passphrase: this package is sealed with a passphrase")
        salt, nonce, body = blob[4:20], blob[20:32], blob[32:]
        plain = AESGCM(_scrypt_key(passphrase, salt)).decrypt(nonce, body, b"JKPW")
    elif blob.startswith(b"JKKY"):
        if key is None:
            raise ValueError("key: this package is sealed with a held key")
        plain = AESGCM(key).decrypt(blob[4:16], blob[16:], b"JKKY")
    else:
        plain = blob  # a plaintext medium, written only where no rule forbids it
    rows: list[dict[str, Any]] = json.loads(plain)
    return rows


_DDL = """
CREATE TABLE IF NOT EXISTS media_exports (
    export_id TEXT PRIMARY KEY, at TEXT NOT NULL, user_id TEXT NOT NULL, witness TEXT, file TEXT NOT NULL,
    records INTEGER NOT NULL, medium_id TEXT NOT NULL, destination TEXT NOT NULL, encryption TEXT NOT NULL,
    sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS media_contents (export_id TEXT PRIMARY KEY, package BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS media_designated (medium_id TEXT PRIMARY KEY, registered_at TEXT);
CREATE TABLE IF NOT EXISTS media_usage_register (
    entry_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, medium_id TEXT NOT NULL, purpose TEXT NOT NULL,
    entered_at TEXT NOT NULL, approved_by TEXT, approved_at TEXT, used_by_export TEXT);
CREATE TABLE IF NOT EXISTS media_bulk_approvals (
    approval_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, records INTEGER NOT NULL, approved_by TEXT NOT NULL,
    approved_at TEXT NOT NULL, valid_until TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS media_imports (
    import_id TEXT PRIMARY KEY, at TEXT NOT NULL, user_id TEXT NOT NULL, flow TEXT NOT NULL, channel TEXT NOT NULL);
"""

#: Files an export can take, and how their rows are read from the municipality's own store.
_FILES: dict[str, str] = {
    # 住民記録: the register rows with 個人番号 (特定個人情報)
    "resident_register": "SELECT resident_code, my_number, name, birth_date, sex, address FROM registry_residents"
    " WHERE status = 'active' ORDER BY resident_code",
    # 送付先情報: name and address of the people a card notice goes to
    "delivery_info": "SELECT resident_code, name, address, postal_code FROM registry_residents"
    " WHERE status = 'active' ORDER BY resident_code",
}
Encryption = Literal["key", "passphrase", "none"]


class MediaControl(Component):
    """One municipality's export and media function (party ``<m>.media_control``)."""

    name_ja = "媒体出力管理"
    name_en = "media and export control"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        rules: MediaRules,
        staff: StaffDirectory,
        media_key: bytes,
        contractor_destinations: frozenset[str] = frozenset(),
        handover_encryption: bool = False,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.rules = rules
        self.staff = staff
        self._media_key = media_key  # the CS encryption function's key (MEDIA-007), kept under keys/
        self.contractor_destinations = contractor_destinations  # "contractor:<contract id>" (ITAKU-003)
        self.handover_encryption = handover_encryption
        conn.executescript(_DDL)

    def seed_designated_media(self, now: datetime) -> None:
        if self.rules.usage_register is None:
            return
        with self.conn:
            for medium in self.rules.usage_register.designated_media:
                self.conn.execute(
                    "INSERT OR IGNORE INTO media_designated VALUES (?, ?)", (medium, now.isoformat())
                )

    # -- helpers ---------------------------------------------------------------------------------------------

    def _pass(self, result: Result, control: str, now: datetime, ja: str, en: str, **evidence: Any) -> None:
        self.allow(result, control, now, ja, en, None, **evidence)

    def _live(self, session: StaffSession) -> None:
        """The session must be one this directory issued, for an account that is still active."""
        row = self.conn.execute(
            "SELECT active FROM staff WHERE component = ? AND user_id = ?", (self.party, session.user_id)
        ).fetchone()
        if row is None or session.component != self.party:
            raise self.refuse(
                RefusalCode.NOT_AUTHENTICATED,
                "MEDIA-001",
                "この端末で認証されたセッションではありません",
                "the session was not issued by the media control",
                field="session",
            )
        if not row[0]:
            raise self.refuse(
                RefusalCode.ACCOUNT_DISABLED, "AUTH-007", "このアカウントは使用停止されています",
                "this account has been disabled", field="session",
            )

    def _role(self, session: StaffSession, role: str) -> bool:
        return self.staff.has_role(session, role)

    def witness_session(self, user: str, password: str, now: datetime, biometric: str | None = None) -> StaffSession:
        """The witness signs in at the operator's terminal (their own credential: presence, not a name typed in)."""
        return self.staff.authenticate(user, password, now=now, biometric=biometric, terminal="media-writer")

    # -- commands --------------------------------------------------------------------------------------------

    def export(
        self,
        session: StaffSession,
        now: datetime,
        *,
        file: str,
        medium_id: str | None,
        destination: str = "medium",
        encryption: Encryption = "key",
        passphrase: str | None = None,
        witness: StaffSession | None = None,
        usage_entry: str | None = None,
    ) -> Result:
        """Write one file to a medium (or a contractor hand-over): every claimed check, then the record, then the
        encrypted package. Value: {export_id, records, sha256, medium_id}."""

        def act(result: Result) -> None:
            self._live(session)
            if file not in _FILES:
                raise InputError("file", f"unknown file {file!r}; known: {', '.join(sorted(_FILES))}")
            cursor = self.conn.execute(_FILES[file])
            columns = [d[0] for d in cursor.description]
            rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
            self._check_copy(result, session, now, file)
            self._check_witness(result, session, witness, now)
            if destination == "medium":  # the 使用管理簿 governs copies to external media, not hand-overs by line
                self._check_usage_register(result, session, now, medium_id, encryption, usage_entry)
            self._check_bulk(result, session, now, len(rows))
            self._check_handover(result, now, destination, encryption)
            self._check_cs_encryption(result, now, file, encryption)
            if self.rules.export_record is not None and not (medium_id or "").strip():
                raise self.refuse(
                    RefusalCode.FIELD_MISSING,
                    "MEDIA-002",
                    "媒体IDのない出力は記録が完結しないため行えません（誰が・いつ・何を・何件・どの媒体へ）",
                    "an output with no medium ID cannot be recorded completely (who, when, what, how many, which medium)",
                    field="medium_id",
                )
            if encryption == "key":
                package = seal_package(rows, key=self._media_key)
            elif encryption == "passphrase":
                if not (passphrase or "").strip():
                    raise InputError("passphrase", "encryption 'passphrase' needs a passphrase")
                package = seal_package(rows, passphrase=passphrase)
            else:
                package = json.dumps(rows, ensure_ascii=False, sort_keys=True).encode()
            export_id = uuid.uuid4().hex[:16]
            digest = hashlib.sha256(package).hexdigest()
            record = {
                "export_id": export_id,
                "user": session.user_id,
                "witness": witness.user_id if witness else None,
                "file": file,
                "records": len(rows),
                "medium_id": medium_id or "",
                "destination": destination,
                "encryption": encryption,
                "sha256": digest,
            }
            # The record goes to the hash-chained audit trail and the export table in the same transaction as the
            # medium's contents: a write without its record cannot be committed.
            self.audit.append(at=now.isoformat(), kind="media.export", data=record)
            self.conn.execute(
                "INSERT INTO media_exports VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    export_id, now.isoformat(), session.user_id, record["witness"], file, len(rows),
                    medium_id or "", destination, encryption, digest,
                ),
            )
            self.conn.execute("INSERT INTO media_contents VALUES (?, ?)", (export_id, package))
            if usage_entry is not None and self.rules.usage_register is not None:
                self.conn.execute(
                    "UPDATE media_usage_register SET used_by_export = ? WHERE entry_id = ?", (export_id, usage_entry)
                )
            if self.rules.export_record is not None:
                self._pass(
                    result, "MEDIA-002", now,
                    f"媒体出力を記録しました（{session.user_id}、{file}、{len(rows)}件、媒体 {medium_id}）",
                    f"the output was recorded ({session.user_id}, {file}, {len(rows)} records, medium {medium_id})",
                    **record,
                )
            result.value = {"export_id": export_id, "records": len(rows), "sha256": digest, "medium_id": medium_id}

        return self.command(now, None, act)

    def _check_copy(self, result: Result, session: StaffSession, now: datetime, file: str) -> None:
        rule = self.rules.copy_rule
        if rule is None:
            return
        if rule.contractors_forbidden and self._role(session, "contractor"):
            raise self.refuse(
                RefusalCode.ROLE_MISSING,
                "MEDIA-001",
                "委託先には特定個人情報の複写・複製を禁じています（契約条項）",
                "contractors are forbidden to copy 特定個人情報 (contract clause 複写又は複製の禁止)",
                field="user",
            )
        if rule.staff_admin_only and not self._role(session, "media_admin"):
            raise self.refuse(
                RefusalCode.ROLE_MISSING,
                "MEDIA-001",
                "管理権限を与えられた者以外は情報の複製を行えません",
                "only holders of the admin privilege (media_admin) may copy or export",
                field="user",
            )
        self._pass(
            result, "MEDIA-001", now,
            f"{session.user_id} は複製の権限を持ちます（{file}）",
            f"{session.user_id} may copy ({file})",
            user=session.user_id, file=file,
        )

    def _check_witness(self, result: Result, session: StaffSession, witness: StaffSession | None, now: datetime) -> None:
        if self.rules.witness is None:
            return
        if witness is None or witness.component != self.party or witness.user_id == session.user_id:
            raise self.refuse(
                RefusalCode.SAME_PERSON_CONFIRMATION,
                "MEDIA-003",
                "媒体への書き込みには操作者以外の職員の立会いが必要です",
                "a write to a medium needs a member of staff other than the operator as witness",
                field="witness",
            )
        self._live(witness)
        if self._role(witness, "contractor"):
            raise self.refuse(
                RefusalCode.SAME_PERSON_CONFIRMATION, "MEDIA-003", "立会いは市の職員が行います",
                "the witness must be a member of the city's staff, not a contractor", field="witness",
            )
        self._pass(
            result, "MEDIA-003", now,
            f"職員 {witness.user_id} の立会いのもとで書き込みます",
            f"written with staff witness {witness.user_id}",
            operator=session.user_id, witness=witness.user_id,
        )

    def _check_usage_register(
        self,
        result: Result,
        session: StaffSession,
        now: datetime,
        medium_id: str | None,
        encryption: Encryption,
        entry_id: str | None,
    ) -> None:
        if self.rules.usage_register is None:
            return
        designated = self.conn.execute(
            "SELECT 1 FROM media_designated WHERE medium_id = ?", (medium_id or "",)
        ).fetchone()
        if designated is None:
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED, "MEDIA-004",
                f"指定された外部記憶媒体ではありません（{medium_id}）",
                f"{medium_id!r} is not a designated external medium", field="medium_id",
            )
        row = self.conn.execute(
            "SELECT user_id, medium_id, approved_by, used_by_export FROM media_usage_register WHERE entry_id = ?",
            (entry_id or "",),
        ).fetchone()
        if row is None or row[0] != session.user_id or row[1] != medium_id:
            raise self.refuse(
                RefusalCode.NO_APPROVED_APPLICATION, "MEDIA-004",
                "使用管理簿にこの利用者・この媒体の記載がありません",
                "no 使用管理簿 entry for this user and medium", field="usage_entry",
            )
        if row[2] is None or row[3] is not None:
            raise self.refuse(
                RefusalCode.NO_APPROVED_APPLICATION, "MEDIA-004",
                "使用管理簿の記載に責任者の事前承認がない（または使用済み）です",
                "the 使用管理簿 entry has no prior approval by the responsible person, or was already used",
                field="usage_entry",
            )
        if encryption == "none":
            raise self.refuse(
                RefusalCode.NOT_ENCRYPTED, "MEDIA-004", "外部記憶媒体内のデータは暗号化します（平文の書き出しは不可）",
                "data on external media is encrypted; a plaintext write is refused", field="encryption",
            )
        self._pass(
            result, "MEDIA-004", now,
            f"使用管理簿 {entry_id}（承認 {row[2]}）、指定媒体 {medium_id}、暗号化して書き出します",
            f"register entry {entry_id} approved by {row[2]}, designated medium {medium_id}, encrypted",
            entry=entry_id, approved_by=row[2], medium_id=medium_id, encryption=encryption,
        )

    def _check_bulk(self, result: Result, session: StaffSession, now: datetime, records: int) -> None:
        rule = self.rules.bulk_output
        if rule is None:
            return
        since = (now - timedelta(hours=rule.window_hours)).isoformat()
        earlier = int(
            self.conn.execute(
                "SELECT COALESCE(SUM(records), 0) FROM media_exports WHERE user_id = ? AND at > ?",
                (session.user_id, since),
            ).fetchone()[0]
        )
        total = earlier + records
        if total <= rule.threshold:
            self._pass(
                result, "MEDIA-005", now,
                f"出力件数 {records} 件（{rule.window_hours}時間の累計 {total} 件）は大量出力の閾値 {rule.threshold} 件以下です",
                f"{records} records ({total} over {rule.window_hours} h) is within the bulk threshold {rule.threshold}",
                records=records, cumulative=total, threshold=rule.threshold,
            )
            return
        approved = self.conn.execute(
            "SELECT approval_id, approved_by, records FROM media_bulk_approvals WHERE user_id = ? AND approved_at <= ?"
            " AND valid_until >= ? AND records >= ? ORDER BY approved_at DESC",
            (session.user_id, now.isoformat(), now.isoformat(), total),
        ).fetchone()
        if approved is None:
            split = " (分割出力の累計)" if records <= rule.threshold else ""
            raise self.refuse(
                RefusalCode.NO_APPROVED_APPLICATION, "MEDIA-005",
                f"大量出力（{total} 件{split}、閾値 {rule.threshold} 件）には管理責任者の事前承認が必要です",
                f"a bulk output ({total} records{' cumulated over split outputs' if split else ''}, threshold "
                f"{rule.threshold}) needs the 管理責任者's prior approval",
                field="records",
            )
        self._pass(
            result, "MEDIA-005", now,
            f"大量出力（累計 {total} 件）は管理責任者 {approved[1]} の事前承認 {approved[0]} の範囲内です",
            f"bulk output ({total} records) within prior approval {approved[0]} by {approved[1]}",
            records=records, cumulative=total, approval=approved[0], approved_by=approved[1],
        )

    def _check_handover(self, result: Result, now: datetime, destination: str, encryption: Encryption) -> None:
        if not self.handover_encryption or not destination.startswith("contractor:"):
            return
        if destination not in self.contractor_destinations:
            raise InputError("destination", f"no contract {destination!r} in this municipality")
        if encryption == "none":
            raise self.refuse(
                RefusalCode.NOT_ENCRYPTED, "ITAKU-003", "委託先へ特定個人情報を提供する際は暗号化が必要です",
                "特定個人情報 handed to a contractor must be encrypted", field="encryption",
            )
        self._pass(
            result, "ITAKU-003", now, f"委託先（{destination}）へ暗号化して提供します",
            f"handed to {destination} encrypted ({encryption})", destination=destination, encryption=encryption,
        )

    def _check_cs_encryption(self, result: Result, now: datetime, file: str, encryption: Encryption) -> None:
        rule = self.rules.cs_media_encryption
        if rule is None or file not in rule.files:
            return
        if encryption != "key":
            raise self.refuse(
                RefusalCode.NOT_ENCRYPTED, "MEDIA-007",
                "送付先情報の電子記録媒体は市町村CSの暗号化機能で暗号化してから提供します",
                "送付先情報 media are encrypted with the CS encryption function before hand-over",
                field="encryption",
            )
        self._pass(
            result, "MEDIA-007", now, "送付先情報を市町村CSの暗号化機能で暗号化して媒体に書き込みます",
            "送付先情報 encrypted with the CS encryption function (AES-256-GCM) before writing", file=file,
        )

    def open_medium(self, export_id: str, *, passphrase: str | None = None) -> list[dict[str, Any]]:
        """Read a written medium back (the receiving side, holding the key or the passphrase)."""
        row = self.conn.execute("SELECT package FROM media_contents WHERE export_id = ?", (export_id,)).fetchone()
        if row is None:
            raise InputError("export_id", f"no medium written by export {export_id!r}")
        return open_package(bytes(row[0]), key=self._media_key, passphrase=passphrase)

    def enter_usage(self, session: StaffSession, now: datetime, *, medium_id: str, purpose: str) -> Result:
        """An entry in the 使用管理簿 (MEDIA-004); value: the entry id."""

        def act(result: Result) -> None:
            self._live(session)
            if not purpose.strip():
                raise InputError("purpose", "a 使用管理簿 entry needs a purpose")
            entry = uuid.uuid4().hex[:12]
            self.conn.execute(
                "INSERT INTO media_usage_register (entry_id, user_id, medium_id, purpose, entered_at)"
                " VALUES (?,?,?,?,?)",
                (entry, session.user_id, medium_id, purpose, now.isoformat()),
            )
            self.audit.append(
                at=now.isoformat(), kind="media.usage_entry",
                data={"entry": entry, "user": session.user_id, "medium_id": medium_id, "purpose": purpose},
            )
            result.value = entry

        return self.command(now, None, act)

    def approve_usage(self, manager: StaffSession, now: datetime, *, entry_id: str) -> Result:
        """The responsible person approves a 使用管理簿 entry beforehand."""

        def act(result: Result) -> None:
            self._live(manager)
            self.staff.require(manager, "media_manager", "MEDIA-004", "外部記憶媒体使用の承認", "approve media use")
            row = self.conn.execute(
                "SELECT user_id FROM media_usage_register WHERE entry_id = ?", (entry_id,)
            ).fetchone()
            if row is None:
                raise InputError("entry_id", f"no 使用管理簿 entry {entry_id!r}")
            if row[0] == manager.user_id:
                raise self.refuse(
                    RefusalCode.SAME_PERSON_CONFIRMATION, "MEDIA-004", "自分の記載は承認できません",
                    "the responsible person cannot approve their own entry", field="approver",
                )
            self.conn.execute(
                "UPDATE media_usage_register SET approved_by = ?, approved_at = ? WHERE entry_id = ?",
                (manager.user_id, now.isoformat(), entry_id),
            )
            self.audit.append(at=now.isoformat(), kind="media.usage_approved", data={"entry": entry_id,
                              "by": manager.user_id})
            result.value = entry_id

        return self.command(now, None, act)

    def approve_bulk(self, manager: StaffSession, now: datetime, *, user_id: str, records: int) -> Result:
        """The 管理責任者 approves a bulk output of up to ``records`` by ``user_id`` for the rule's window."""

        def act(result: Result) -> None:
            self._live(manager)
            rule = self.rules.bulk_output
            if rule is None:
                raise InputError("bulk_output", "this municipality has no bulk-output rule to approve under")
            self.staff.require(manager, "media_manager", "MEDIA-005", "大量出力の承認", "approve a bulk output")
            if manager.user_id == user_id:
                raise self.refuse(
                    RefusalCode.SAME_PERSON_CONFIRMATION, "MEDIA-005", "自分の大量出力は承認できません",
                    "the 管理責任者 cannot approve their own output", field="user_id",
                )
            approval = uuid.uuid4().hex[:12]
            until = now + timedelta(hours=rule.window_hours)
            self.conn.execute(
                "INSERT INTO media_bulk_approvals VALUES (?,?,?,?,?,?)",
                (approval, user_id, records, manager.user_id, now.isoformat(), until.isoformat()),
            )
            self.audit.append(
                at=now.isoformat(), kind="media.bulk_approved",
                data={"approval": approval, "user": user_id, "records": records, "by": manager.user_id},
            )
            result.value = approval

        return self.command(now, None, act)

    def intake(self, session: StaffSession, now: datetime, *, flow: str, channel: str) -> Result:
        """Data arriving on a medium for a flow (MEDIA-006): accepted only where the flow registers that channel."""

        def act(result: Result) -> None:
            self._live(session)
            rule = self.rules.media_channels
            if rule is not None:
                registered = {f.flow: f.channels for f in rule.flows}
                if flow not in registered:
                    raise InputError("flow", f"unknown flow {flow!r}; registered: {', '.join(sorted(registered))}")
                if channel not in registered[flow]:
                    raise self.refuse(
                        RefusalCode.SOURCE_NOT_ALLOWED, "MEDIA-006",
                        f"この事務（{flow}）は{'・'.join(registered[flow])}で受け取る登録です。媒体（{channel}）は使えません",
                        f"flow {flow} is registered for {', '.join(registered[flow])} only; {channel} is refused",
                        field="channel",
                    )
                self._pass(
                    result, "MEDIA-006", now, f"{flow} の{channel}による受入れは登録済みの経路です",
                    f"{channel} intake is a registered channel of {flow}", flow=flow, channel=channel,
                )
            import_id = uuid.uuid4().hex[:12]
            self.conn.execute(
                "INSERT INTO media_imports VALUES (?,?,?,?,?)", (import_id, now.isoformat(), session.user_id, flow,
                                                                 channel)
            )
            self.audit.append(at=now.isoformat(), kind="media.intake", data={"flow": flow, "channel": channel,
                              "user": session.user_id})
            result.value = import_id

        return self.command(now, None, act)
