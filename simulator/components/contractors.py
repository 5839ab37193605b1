"""委託先管理 (contractor management): contracts, the worker roster, contractor accounts, sessions and work records,
and the file server shared with contractors.

Contracts come from the profile (`contractors:`); what the assessment claims about them from
scenarios/data/itaku.yaml. Accounts exist only for rostered workers (ITAKU-001), sessions only at on-premises
terminals and inside the contract term, every session leaves login and work records (ITAKU-002), a subcontractor
account needs the profile's written approval chain (ITAKU-005), and the shared file server admits rights holders at
city terminals with a password per file (ITAKU-004). It must never let a contractor act outside a session it issued,
and never keep a file password or a file's plaintext.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field

from simulator.components.base import Component, Directory, Result
from simulator.components.media import MediaControl, MediaRules, _scrypt_key, load_area_data, media_rules
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import InputError, RefusalCode
from simulator.model.area_data import Cited
from simulator.profiles import Contractor, load_profile

if TYPE_CHECKING:
    from simulator.world import World

__all__ = ["Contract", "ContractorDesk", "ContractorRules", "SharedFileServer", "contractor_rules", "install"]


class TerminalRule(Cited):
    terminals: tuple[str, ...] = Field(min_length=1)


class TermRule(Cited):
    ends: date


class ContractorRules(BaseModel):
    """What one profile claims about contractors (an absent rule is not claimed, so not enforced)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roster: Cited | None = None
    work_log: Cited | None = None
    premises: TerminalRule | None = None
    contract_term: TermRule | None = None
    handover_encryption: Cited | None = None
    shared_file_server: TerminalRule | None = None


def contractor_rules(profile: str) -> ContractorRules:
    return load_area_data("itaku", ContractorRules, profile)


@dataclass(frozen=True)
class Contract:
    contract_id: str  # "<m>-c<n>", n in the profile's order
    contractor: Contractor
    ends: date | None


#: What a contractor account may be granted; a resident's 住民票 view is never among them (ITAKU-001).
FUNCTIONS = frozenset({"maintenance", "window", "data_entry", "backup_custody"})
#: Functions that copy data: forbidden to contractors by contract clause (MEDIA-001 複写又は複製の禁止).
COPY_FUNCTIONS = frozenset({"dump", "copy", "export"})
#: Functions that would erase the record of contractor work: never a contractor's (ITAKU-002).
LOG_FUNCTIONS = frozenset({"delete_log", "purge_log", "edit_log"})

_DDL = """
CREATE TABLE IF NOT EXISTS itaku_contracts (
    contract_id TEXT PRIMARY KEY, contractor TEXT NOT NULL, scope TEXT NOT NULL, systems TEXT NOT NULL,
    subcontract INTEGER NOT NULL, chain TEXT NOT NULL, ends TEXT);
CREATE TABLE IF NOT EXISTS itaku_roster (
    contract_id TEXT NOT NULL, worker_id TEXT NOT NULL, person_name TEXT NOT NULL, tier INTEGER NOT NULL,
    employer TEXT NOT NULL, added_at TEXT NOT NULL, removed_at TEXT, PRIMARY KEY (contract_id, worker_id));
CREATE TABLE IF NOT EXISTS itaku_documents (
    contract_id TEXT NOT NULL, worker_id TEXT NOT NULL, document TEXT NOT NULL, submitted_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL, PRIMARY KEY (contract_id, worker_id, document));
CREATE TABLE IF NOT EXISTS itaku_accounts (
    user_id TEXT PRIMARY KEY, contract_id TEXT NOT NULL, worker_id TEXT NOT NULL, functions TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS itaku_sessions (
    session_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, contract_id TEXT NOT NULL, terminal TEXT NOT NULL,
    started_at TEXT NOT NULL, ended_at TEXT, work_record TEXT, flagged INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS itaku_operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, user_id TEXT NOT NULL, at TEXT NOT NULL,
    system TEXT NOT NULL, function TEXT NOT NULL, target TEXT);
CREATE TRIGGER IF NOT EXISTS itaku_operations_no_delete BEFORE DELETE ON itaku_operations
    BEGIN SELECT RAISE(ABORT, 'itaku_operations is append-only'); END;
CREATE TRIGGER IF NOT EXISTS itaku_operations_no_update BEFORE UPDATE ON itaku_operations
    BEGIN SELECT RAISE(ABORT, 'itaku_operations is append-only'); END;
"""


class ContractorDesk(Component):
    """The city's contractor management and the contractors' work terminals (party ``<m>.contractors``)."""

    name_ja = "委託先管理"
    name_en = "contractor management"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        municipality: str,
        contracts: tuple[Contract, ...],
        rules: ContractorRules,
        media_rules: MediaRules,
        staff: StaffDirectory,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.municipality = municipality
        self.contracts = {c.contract_id: c for c in contracts}
        self.rules = rules
        self.media_rules = media_rules
        self.staff = staff
        conn.executescript(_DDL)

    # -- building (a fresh world only) --------------------------------------------------------------------------

    def record_contracts(self, now: datetime) -> None:
        with self.conn:
            for c in self.contracts.values():
                self.conn.execute(
                    "INSERT OR IGNORE INTO itaku_contracts VALUES (?,?,?,?,?,?,?)",
                    (
                        c.contract_id,
                        c.contractor.name,
                        c.contractor.scope,
                        json.dumps(list(c.contractor.systems)),
                        int(c.contractor.subcontract),
                        json.dumps(list(c.contractor.chain), ensure_ascii=False),
                        c.ends.isoformat() if c.ends else None,
                    ),
                )

    def enrol_worker(self, contract_id: str, worker_id: str, person_name: str, tier: int, now: datetime) -> None:
        """The roster the contractor submitted (名簿): one row per worker, tier 2 for a subcontractor's worker."""
        contract = self._contract(contract_id)
        employer = contract.contractor.name if tier == 1 else f"{contract.contractor.name} 再委託先"
        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO itaku_roster VALUES (?,?,?,?,?,?,NULL)",
                (contract_id, worker_id, person_name, tier, employer, now.isoformat()),
            )

    # -- lookups ------------------------------------------------------------------------------------------------

    def _contract(self, contract_id: str) -> Contract:
        if contract_id not in self.contracts:
            raise InputError("contract", f"no contract {contract_id!r}; known: {', '.join(sorted(self.contracts))}")
        return self.contracts[contract_id]

    def roster_entry(self, contract_id: str, worker_id: str) -> tuple[str, int, str | None] | None:
        row = self.conn.execute(
            "SELECT person_name, tier, removed_at FROM itaku_roster WHERE contract_id = ? AND worker_id = ?",
            (contract_id, worker_id),
        ).fetchone()
        return (str(row[0]), int(row[1]), row[2]) if row else None

    def account(self, user_id: str) -> tuple[str, str, list[str]] | None:
        row = self.conn.execute(
            "SELECT contract_id, worker_id, functions FROM itaku_accounts WHERE user_id = ?", (user_id,)
        ).fetchone()
        return (str(row[0]), str(row[1]), json.loads(row[2])) if row else None

    # -- the city's administration -------------------------------------------------------------------------------

    def create_account(
        self,
        admin: StaffSession,
        now: datetime,
        *,
        contract_id: str,
        worker_id: str,
        functions: tuple[str, ...],
        password: str,
    ) -> Result:
        """Issue an account to a worker: only for a rostered worker (ITAKU-001), and for a subcontractor's worker
        only with the profile's whole written chain on file (ITAKU-005). Value: the user ID."""

        def act(result: Result) -> None:
            self.staff.require(admin, "contract_manager", "ITAKU-001", "委託先アカウントの発行", "issue contractor accounts")
            contract = self._contract(contract_id)
            unknown = sorted(set(functions) - FUNCTIONS)
            if unknown:
                raise InputError("functions", f"unknown functions {unknown}; grantable: {', '.join(sorted(FUNCTIONS))}")
            entry = self.roster_entry(contract_id, worker_id)
            if self.rules.roster is not None:
                if entry is None or entry[2] is not None:
                    raise self.refuse(
                        RefusalCode.NOT_ON_ROSTER,
                        "ITAKU-001",
                        f"{worker_id} は委託先が提出した名簿（{contract_id}）に載っていないため、アカウントを作成できません",
                        f"{worker_id} is not on the roster submitted for {contract_id}; no account can be created",
                        field="worker",
                    )
                self.allow(
                    result, "ITAKU-001", now,
                    f"名簿に載った従事者 {worker_id} にアカウントを発行します（{'・'.join(functions)}）",
                    f"account issued to rostered worker {worker_id} ({', '.join(functions)})",
                    None, contract=contract_id, worker=worker_id, functions=list(functions),
                )
            elif entry is None:
                raise InputError("worker", f"{worker_id} is not a worker of {contract_id}")
            assert entry is not None
            self._check_subcontract(result, now, contract, worker_id, tier=entry[1])
            user_id = f"itaku-{worker_id}"
            self.staff.add(user_id, entry[0], {"contractor", f"contract:{contract_id}"}, password,
                           employee_id=f"{contract_id}:{worker_id}", now=now)
            self.conn.execute(
                "INSERT INTO itaku_accounts VALUES (?,?,?,?)",
                (user_id, contract_id, worker_id, json.dumps(sorted(functions))),
            )
            self.audit.append(
                at=now.isoformat(), kind="contractor.account",
                data={"user": user_id, "contract": contract_id, "worker": worker_id, "functions": sorted(functions),
                      "by": admin.user_id},
            )
            result.value = user_id

        return self.command(now, None, act)

    def _check_subcontract(self, result: Result, now: datetime, contract: Contract, worker_id: str, *, tier: int) -> None:
        c = contract.contractor
        if tier == 1:
            self.allow(
                result, "ITAKU-005", now,
                f"{worker_id} は委託先（{c.name}）自身の従事者で、再委託先の者ではありません",
                f"{worker_id} works for the contractor ({c.name}) itself, not a subcontractor",
                None, contract=contract.contract_id, tier=1,
            )
            return
        if not c.subcontract:
            raise self.refuse(
                RefusalCode.SUBCONTRACT_NOT_APPROVED,
                "ITAKU-005",
                f"この委託（{contract.contract_id}）は再委託しない契約です。再委託先の従事者にアカウントは作れません",
                f"{contract.contract_id} is declared without 再委託: no subcontractor account can exist",
                field="worker",
            )
        held = {
            d for (d,) in self.conn.execute(
                "SELECT document FROM itaku_documents WHERE contract_id = ? AND worker_id = ? AND submitted_at <= ?",
                (contract.contract_id, worker_id, now.isoformat()),
            )
        }
        missing = [d for d in c.chain if d not in held]
        if missing:
            raise self.refuse(
                RefusalCode.SUBCONTRACT_NOT_APPROVED,
                "ITAKU-005",
                f"再委託の書面がそろっていません（不足: {'、'.join(missing)}）",
                f"the subcontracting chain is incomplete (missing: {', '.join(missing)})",
                field="documents",
            )
        self.allow(
            result, "ITAKU-005", now,
            f"再委託の書面（{'、'.join(c.chain)}）がそろっているため再委託先従事者 {worker_id} を有効化します",
            f"subcontractor worker {worker_id} activated: the chain ({', '.join(c.chain)}) is complete",
            None, contract=contract.contract_id, tier=2, chain=list(c.chain),
        )

    def record_document(self, admin: StaffSession, now: datetime, *, contract_id: str, worker_id: str,
                        document: str) -> Result:
        """A document of the subcontracting chain received and filed by the city (申出書, 名簿, 承諾書, 誓約書 …)."""

        def act(result: Result) -> None:
            self.staff.require(admin, "contract_manager", "ITAKU-005", "再委託書面の受付", "file subcontracting papers")
            contract = self._contract(contract_id)
            if document not in contract.contractor.chain:
                raise InputError(
                    "document",
                    f"{document!r} is not in {contract_id}'s chain ({', '.join(contract.contractor.chain) or 'none'})",
                )
            self.conn.execute(
                "INSERT OR REPLACE INTO itaku_documents VALUES (?,?,?,?,?)",
                (contract_id, worker_id, document, now.isoformat(), admin.user_id),
            )
            self.audit.append(at=now.isoformat(), kind="contractor.document",
                              data={"contract": contract_id, "worker": worker_id, "document": document})

        return self.command(now, None, act)

    def add_to_roster(self, admin: StaffSession, now: datetime, *, contract_id: str, worker_id: str,
                      person_name: str, tier: int) -> Result:
        """A roster update the contractor submitted (名簿), filed by the city; tier 2 names a subcontractor's worker.
        Filing it grants nothing: accounts are checked when issued (ITAKU-001, ITAKU-005)."""

        def act(result: Result) -> None:
            self.staff.require(admin, "contract_manager", "ITAKU-001", "名簿の受付", "file a roster")
            if tier not in (1, 2):
                raise InputError("tier", "tier must be 1 (the contractor's own worker) or 2 (a subcontractor's)")
            if not person_name.strip():
                raise InputError("person_name", "a roster line names one natural person")
            contract = self._contract(contract_id)
            employer = contract.contractor.name if tier == 1 else f"{contract.contractor.name} 再委託先"
            self.conn.execute(
                "INSERT INTO itaku_roster VALUES (?,?,?,?,?,?,NULL) ON CONFLICT(contract_id, worker_id) DO UPDATE"
                " SET person_name = excluded.person_name, tier = excluded.tier, employer = excluded.employer,"
                " removed_at = NULL",
                (contract_id, worker_id, person_name, tier, employer, now.isoformat()),
            )
            self.audit.append(at=now.isoformat(), kind="contractor.roster_added",
                              data={"contract": contract_id, "worker": worker_id, "tier": tier, "by": admin.user_id})

        return self.command(now, None, act)

    def remove_from_roster(self, admin: StaffSession, now: datetime, *, contract_id: str, worker_id: str) -> Result:
        """The contractor's roster drops a worker: the worker's account is disabled at once (ITAKU-001)."""

        def act(result: Result) -> None:
            self.staff.require(admin, "contract_manager", "ITAKU-001", "名簿の変更", "change the roster")
            self._contract(contract_id)
            self.conn.execute(
                "UPDATE itaku_roster SET removed_at = ? WHERE contract_id = ? AND worker_id = ?",
                (now.isoformat(), contract_id, worker_id),
            )
            disabled = []
            for (user_id,) in self.conn.execute(
                "SELECT user_id FROM itaku_accounts WHERE contract_id = ? AND worker_id = ?", (contract_id, worker_id)
            ).fetchall():
                self.staff.disable(user_id, now)
                disabled.append(user_id)
            self.audit.append(at=now.isoformat(), kind="contractor.roster_removed",
                              data={"contract": contract_id, "worker": worker_id, "disabled": disabled})
            if self.rules.roster is not None:
                self.allow(
                    result, "ITAKU-001", now,
                    f"名簿から外れた {worker_id} のアカウント（{', '.join(disabled) or 'なし'}）を停止しました",
                    f"{worker_id} left the roster; account(s) {', '.join(disabled) or 'none'} disabled",
                    None, contract=contract_id, worker=worker_id, disabled=disabled,
                )

        return self.command(now, None, act)

    # -- the contractor's session -----------------------------------------------------------------------------

    def login(self, user_id: str, password: str, now: datetime, *, terminal: str, biometric: str | None = None
              ) -> Result:
        """A contractor worker signs in at a work terminal. Value: the session."""

        def act(result: Result) -> None:
            # The password first, so nothing about the account is told to someone who cannot sign in as it; the
            # contract binding next, so an ended contract or a dropped worker is refused as such (ITAKU-001) before
            # the municipality's own staff-policy checks run.
            self.staff._check_password(user_id, password)
            bound = self.account(user_id)
            if bound is None:
                raise self.refuse(
                    RefusalCode.ROLE_MISSING, "ITAKU-001", "委託先従事者のアカウントではありません",
                    "not a contractor worker's account", field="user_id",
                )
            contract_id, worker_id, functions = bound
            contract = self._contract(contract_id)
            entry = self.roster_entry(contract_id, worker_id)
            if self.rules.roster is not None and (entry is None or entry[2] is not None):
                raise self.refuse(
                    RefusalCode.NOT_ON_ROSTER, "ITAKU-001", "名簿に載っていない従事者はログインできません",
                    "a worker who is not on the current roster cannot sign in", field="user_id",
                )
            if contract.ends is not None and now.date() > contract.ends:
                raise self.refuse(
                    RefusalCode.CONTRACT_ENDED, "ITAKU-001",
                    f"委託契約 {contract_id} は {contract.ends.isoformat()} に終了しています。アカウントは失効しました",
                    f"contract {contract_id} ended on {contract.ends.isoformat()}; the account has expired",
                    field="user_id",
                )
            if self.rules.premises is not None and terminal not in self.rules.premises.terminals:
                raise self.refuse(
                    RefusalCode.OFF_PREMISES, "ITAKU-001",
                    f"委託作業は庁舎内の登録端末でのみ行えます（{terminal} は登録外）",
                    f"contractor work is allowed only at registered on-premises terminals ({terminal} is not one)",
                    field="terminal",
                )
            session, _ = self.staff.verify_login(user_id, password, now=now, biometric=biometric, terminal=terminal)
            if self.rules.roster is not None:
                self.allow(
                    result, "ITAKU-001", now,
                    f"名簿に載った従事者が契約期間内に庁舎内端末 {terminal} からログインしました",
                    f"a rostered worker signed in within the contract term at on-premises terminal {terminal}",
                    None, user=user_id, contract=contract_id, terminal=terminal, functions=functions,
                )
            self.conn.execute(
                "INSERT INTO itaku_sessions (session_id, user_id, contract_id, terminal, started_at) VALUES (?,?,?,?,?)",
                (session.session_id, user_id, contract_id, terminal, now.isoformat()),
            )
            self.audit.append(at=now.isoformat(), kind="contractor.login", correlation_id=session.session_id,
                              data={"user": user_id, "contract": contract_id, "terminal": terminal})
            if self.rules.work_log is not None:
                self.allow(
                    result, "ITAKU-002", now, "委託先のログインを記録しました", "the contractor login was recorded",
                    session.session_id, user=user_id, terminal=terminal,
                )
            result.value = session

        return self.command(now, None, act)

    def _open_session(self, session: StaffSession) -> tuple[str, str]:
        row = self.conn.execute(
            "SELECT contract_id, ended_at FROM itaku_sessions WHERE session_id = ? AND user_id = ?",
            (session.session_id, session.user_id),
        ).fetchone()
        if row is None or row[1] is not None or session.component != self.party:
            raise self.refuse(
                RefusalCode.NOT_AUTHENTICATED, "ITAKU-002", "この作業端末で開始された作業セッションではありません",
                "no open work session issued at this terminal", field="session",
            )
        active = self.conn.execute(
            "SELECT active FROM staff WHERE component = ? AND user_id = ?", (self.party, session.user_id)
        ).fetchone()
        if not active or not active[0]:
            raise self.refuse(
                RefusalCode.ACCOUNT_DISABLED, "ITAKU-001", "このアカウントは停止されています（名簿から外れた従事者）",
                "this account was disabled (the worker left the roster)", field="session",
            )
        return str(row[0]), session.session_id

    def operate(self, session: StaffSession, now: datetime, *, system: str, function: str, target: str | None = None
                ) -> Result:
        """One operation in a session: only on the contract's systems and with a granted function (ITAKU-001);
        never a copy (MEDIA-001); always recorded (ITAKU-002)."""

        def act(result: Result) -> None:
            contract_id, session_id = self._open_session(session)
            contract = self._contract(contract_id)
            granted = (self.account(session.user_id) or ("", "", []))[2]
            if function in COPY_FUNCTIONS and self.media_rules.copy_rule and self.media_rules.copy_rule.contractors_forbidden:
                raise self.refuse(
                    RefusalCode.ROLE_MISSING, "MEDIA-001",
                    "委託先には特定個人情報の複写・複製を禁じています（契約条項）",
                    "contractors are forbidden to copy 特定個人情報 (contract clause 複写又は複製の禁止)",
                    field="function",
                )
            if function in LOG_FUNCTIONS:
                raise self.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED, "ITAKU-002",
                    "委託先は自らの作業記録・ログを削除・変更できません",
                    "a contractor cannot delete or alter the records of contractor work", field="function",
                )
            if system not in contract.contractor.systems or function not in granted:
                raise self.refuse(
                    RefusalCode.ROLE_MISSING, "ITAKU-001",
                    f"この委託先アカウントに許された操作ではありません（{system} の {function}）",
                    f"{function} on {system} is not granted to this contractor account "
                    f"(systems {', '.join(contract.contractor.systems)}; functions {', '.join(granted)})",
                    field="function",
                )
            self.allow(
                result, "ITAKU-001", now, f"委託先アカウントに許された操作です（{system} の {function}）",
                f"{function} on {system} is granted to this contractor account", session_id,
                user=session.user_id, system=system, function=function,
            )
            self.conn.execute(
                "INSERT INTO itaku_operations (session_id, user_id, at, system, function, target) VALUES (?,?,?,?,?,?)",
                (session_id, session.user_id, now.isoformat(), system, function, target),
            )
            self.audit.append(at=now.isoformat(), kind="contractor.operation", correlation_id=session_id,
                              data={"user": session.user_id, "system": system, "function": function, "target": target})
            if self.rules.work_log is not None:
                self.allow(
                    result, "ITAKU-002", now, f"委託先の操作（{system} の {function}）を記録しました",
                    f"the contractor operation ({function} on {system}) was recorded", session_id,
                    user=session.user_id, system=system, function=function,
                )

        return self.command(now, None, act)

    def end_session(self, session: StaffSession, now: datetime, *, work_record: str | None) -> Result:
        """Close a session with the worker's 作業記録 (what was done). A session closed without one is flagged for
        the city's review (ITAKU-002 hold), and the flag stays on the record."""

        def act(result: Result) -> None:
            contract_id, session_id = self._open_session(session)
            missing = not (work_record or "").strip()
            flagged = missing and self.rules.work_log is not None
            self.conn.execute(
                "UPDATE itaku_sessions SET ended_at = ?, work_record = ?, flagged = ? WHERE session_id = ?",
                (now.isoformat(), work_record, int(flagged), session_id),
            )
            self.audit.append(at=now.isoformat(), kind="contractor.work_record", correlation_id=session_id,
                              data={"user": session.user_id, "contract": contract_id, "work_record": work_record})
            if self.rules.work_log is None:
                return
            if flagged:
                result.decisions.append(
                    self.decide(
                        "ITAKU-002", Outcome.HOLD, now,
                        reason_ja="作業記録のない委託先セッションです。市の確認まで要確認として残します",
                        reason_en="a contractor session closed without a work record: flagged for the city's review",
                        correlation_id=session_id, code=str(RefusalCode.WORK_RECORD_MISSING),
                        evidence={"user": session.user_id, "contract": contract_id},
                    )
                )
            else:
                self.allow(result, "ITAKU-002", now, "作業記録を残してセッションを終了しました",
                           "the session closed with its work record", session_id, user=session.user_id)

        return self.command(now, None, act)

    def review(self, auditor: StaffSession, now: datetime, *, since: datetime | None = None) -> Result:
        """The city's periodic review: sessions and operations by worker, and every session without a work record.
        Value: {worker: {sessions, operations, flagged}}."""

        def act(result: Result) -> None:
            self.staff.require(auditor, "log_auditor", "ITAKU-002", "委託先の作業記録の確認", "review contractor records")
            start = (since or datetime.min.replace(tzinfo=now.tzinfo)).isoformat()
            report: dict[str, dict[str, Any]] = {}
            for user_id, session_id, ended, record, _flag in self.conn.execute(
                "SELECT user_id, session_id, ended_at, work_record, flagged FROM itaku_sessions WHERE started_at >= ?"
                " ORDER BY started_at",
                (start,),
            ).fetchall():
                entry = report.setdefault(user_id, {"sessions": 0, "operations": 0, "flagged": []})
                entry["sessions"] += 1
                entry["operations"] += int(self.conn.execute(
                    "SELECT COUNT(*) FROM itaku_operations WHERE session_id = ?", (session_id,)).fetchone()[0])
                if ended is not None and not (record or "").strip():
                    entry["flagged"].append(session_id)
            flagged = {u: e["flagged"] for u, e in report.items() if e["flagged"]}
            self.audit.append(at=now.isoformat(), kind="contractor.review",
                              data={"by": auditor.user_id, "report": report})
            if flagged:
                result.decisions.append(self.decide(
                    "ITAKU-002", Outcome.HOLD, now,
                    reason_ja=f"作業記録のない委託先セッションがあります（{', '.join(sorted(flagged))}）",
                    reason_en=f"contractor sessions without a work record: {', '.join(sorted(flagged))}",
                    code=str(RefusalCode.WORK_RECORD_MISSING), evidence={"flagged": flagged},
                ))
            else:
                self.allow(result, "ITAKU-002", now, "すべての委託先セッションに作業記録があります",
                           "every contractor session has its work record", None, workers=sorted(report))
            result.value = report

        return self.command(now, None, act)


# -- the shared file server (ITAKU-004) ------------------------------------------------------------------------

_FS_DDL = """
CREATE TABLE IF NOT EXISTS shared_files (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, salt BLOB NOT NULL, check_hash BLOB NOT NULL, nonce BLOB NOT NULL,
    content BLOB NOT NULL, stored_at TEXT NOT NULL);
"""


class SharedFileServer(Component):
    """The file server the city set up for hand-overs with its contractor (party ``<m>.shared_file_server``)."""

    name_ja = "委託元・委託先共用ファイルサーバ"
    name_en = "file server shared with the contractor"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        rule: TerminalRule,
        staff: StaffDirectory,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.rule = rule
        self.staff = staff
        conn.executescript(_FS_DDL)

    def _admit(self, result: Result, session: StaffSession, terminal: str, now: datetime, what: str) -> None:
        if terminal not in self.rule.terminals:
            raise self.refuse(
                RefusalCode.OFF_PREMISES, "ITAKU-004",
                f"共用ファイルサーバには委託元が提供する端末からのみ接続できます（{terminal} は対象外）",
                f"the shared file server is reachable only from city-provided terminals ({terminal} is not one)",
                field="terminal",
            )
        self.staff.require(session, "file_share", "ITAKU-004", "共用ファイルサーバの利用", "use the shared file server")
        self.allow(result, "ITAKU-004", now, f"閲覧/更新権限を持つ {session.user_id} が市の端末から{what}",
                   f"rights holder {session.user_id} at city terminal {terminal}: {what}", None,
                   user=session.user_id, terminal=terminal)

    def put(self, session: StaffSession, now: datetime, *, terminal: str, name: str, content: str,
            file_password: str) -> Result:
        def act(result: Result) -> None:
            self._admit(result, session, terminal, now, f"ファイル {name} を格納します")
            if len(file_password) < 8:
                raise InputError("file_password", "a file password needs at least 8 characters")
            salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
            key = _scrypt_key(file_password, salt)
            sealed = AESGCM(key).encrypt(nonce, content.encode(), name.encode())
            self.conn.execute(
                "INSERT OR REPLACE INTO shared_files VALUES (?,?,?,?,?,?,?)",
                (name, session.user_id, salt, hashlib.sha256(key).digest(), nonce, sealed, now.isoformat()),
            )
            self.audit.append(at=now.isoformat(), kind="file_server.put", data={"name": name, "user": session.user_id})

        return self.command(now, None, act)

    def listing(self, session: StaffSession, now: datetime, *, terminal: str) -> Result:
        def act(result: Result) -> None:
            self._admit(result, session, terminal, now, "一覧を表示します")
            result.value = [n for (n,) in self.conn.execute("SELECT name FROM shared_files ORDER BY name")]
            self.audit.append(at=now.isoformat(), kind="file_server.list", data={"user": session.user_id})

        return self.command(now, None, act)

    def open(self, session: StaffSession, now: datetime, *, terminal: str, name: str, file_password: str) -> Result:
        def act(result: Result) -> None:
            self._admit(result, session, terminal, now, f"ファイル {name} を開きます")
            row = self.conn.execute(
                "SELECT salt, check_hash, nonce, content FROM shared_files WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                raise InputError("name", f"no file {name!r} on the shared server")
            key = _scrypt_key(file_password, bytes(row[0]))
            try:
                if not hmac.compare_digest(hashlib.sha256(key).digest(), bytes(row[1])):
                    raise InvalidTag
                plain = AESGCM(key).decrypt(bytes(row[2]), bytes(row[3]), name.encode())
            except InvalidTag:
                raise self.refuse(
                    RefusalCode.FILE_PASSWORD_WRONG, "ITAKU-004", "ファイルのパスワードが違うため開けません",
                    "the file's own password is wrong; the file stays closed", field="file_password",
                ) from None
            self.allow(result, "ITAKU-004", now, f"ファイル {name} を個別パスワードで開きました",
                       f"{name} opened with its own password", None, user=session.user_id, name=name)
            self.audit.append(at=now.isoformat(), kind="file_server.open", data={"name": name, "user": session.user_id})
            result.value = plain.decode()

        return self.command(now, None, act)


# -- installing (simulator.extensions.media_contractors) ----------------------------------------------------------


def provision_account(desk: ContractorDesk, contract_id: str, worker_id: str, functions: tuple[str, ...]) -> str:
    """Bind a build-time account (made by World.add_staff) to its rostered worker; only on a fresh world."""
    user_id = f"itaku-{worker_id}"
    with desk.conn:
        desk.conn.execute(
            "INSERT OR IGNORE INTO itaku_accounts VALUES (?,?,?,?)",
            (user_id, contract_id, worker_id, json.dumps(sorted(functions))),
        )
    return user_id


def install(world: World) -> None:
    """Per municipality of the world: its media control, its contractor desk with the profile's contracts and
    rosters, and (where the profile claims one) the file server shared with contractors."""
    start = world.spec.start
    for m in world.spec.municipalities:
        db = world.store(m.key)
        profile = load_profile(m.key)
        mrules, crules = media_rules(m.key), contractor_rules(m.key)
        ends = crules.contract_term.ends if crules.contract_term else None
        contracts = tuple(Contract(f"{m.key}-c{i}", c, ends) for i, c in enumerate(profile.contractors, 1))

        desk_party = f"{m.key}.contractors"
        desk_staff = StaffDirectory(db, desk_party)
        world.add_staff(desk_staff, "itaku-kanri", "委託 管理子", {"contract_manager"})
        world.add_staff(desk_staff, "itaku-kansa", "委託 監査男", {"log_auditor"})
        desk = world.add(
            ContractorDesk, desk_party, m.key,
            municipality=m.key, contracts=contracts, rules=crules, media_rules=mrules, staff=desk_staff,
        )
        if world.fresh:
            desk.record_contracts(start)
            for contract in contracts:
                cid = contract.contract_id
                for n in range(1, contract.contractor.accounts + 1):
                    desk.enrol_worker(cid, f"{cid}-w{n}", f"{contract.contractor.name} 従事者 {cid}-{n}", 1, start)
                if contract.contractor.subcontract:
                    desk.enrol_worker(cid, f"{cid}-s1", f"{contract.contractor.name} 再委託先従事者 {cid}-s1", 2, start)
                # One account per contract at build (the first rostered worker); the rest are issued by scenarios.
                world.add_staff(desk_staff, f"itaku-{cid}-w1", f"{contract.contractor.name} 従事者 {cid}-1",
                                {"contractor", f"contract:{cid}"})
                provision_account(desk, cid, f"{cid}-w1", ("maintenance",))

        media_party = f"{m.key}.media_control"
        media_staff = StaffDirectory(db, media_party)
        world.add_staff(media_staff, "media-admin", "媒体 管理者", {"media_admin"})
        world.add_staff(media_staff, "clerk", "一般 職員", {"registry_clerk"})
        world.add_staff(media_staff, "witness", "立会 職員", {"registry_clerk"})
        world.add_staff(media_staff, "manager", "管理 責任者", {"media_manager"})
        media = world.add(
            MediaControl, media_party, m.key,
            rules=mrules, staff=media_staff, media_key=world.key(f"{m.key}.cs.media"),
            contractor_destinations=frozenset(f"contractor:{c.contract_id}" for c in contracts),
            handover_encryption=crules.handover_encryption is not None,
        )
        if world.fresh:
            media.seed_designated_media(start)

        if crules.shared_file_server is not None:
            fs_party = f"{m.key}.shared_file_server"
            fs_staff = StaffDirectory(db, fs_party)
            world.add_staff(fs_staff, "zei-a", "税務 一子", {"file_share"})
            world.add_staff(fs_staff, "zei-b", "税務 二郎", {"registry_clerk"})
            if contracts:
                world.add_staff(fs_staff, "itaku-share", f"{contracts[0].contractor.name} 従事者 {contracts[0].contract_id}-1",
                                {"file_share", "contractor"})
            world.add(
                SharedFileServer,
                fs_party,
                m.key,
                rule=crules.shared_file_server,
                staff=fs_staff,
            )
