"""既存住民基本台帳システム (既存住基): 住民票, 異動 entry with second-person confirmation, and what a commit sends on.

An 異動 is entered on its 届出 form's fields only (JUKI-001), stays PENDING until another clerk confirms it (JUKI-002),
then updates the 住民票 and sends 本人確認情報 to 市町村CS and 宛名/副本 data on. It must never send a PENDING change,
never record a 個人番号 for a 住民票コード it did not ask about (JUKI-008), and never put either number in a body or the 副本.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.municipal_cs import (
    IDENTITY_ITEMS,
    ItemProblem,
    check_date,
    check_identifier,
    check_identity_format,
    check_kana,
    check_postal_code,
    check_sex,
    check_text,
    exact_keys,
    run_staff_command,
)
from simulator.components.oplog import log_operation, mask_my_number
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import InputError, RefusalCode
from simulator.identifiers import new_resident_code
from simulator.model.envelope import Envelope, MessageType
from simulator.store.db import ensure_schema, transaction

__all__ = ["CHANGE_FORMS", "FormSpec", "Registry"]


@dataclass(frozen=True)
class FormSpec:
    """The fields of one 届出 form: nothing else may be entered (JUKI-001)."""

    title_ja: str
    required: frozenset[str]
    optional: frozenset[str] = frozenset()


def _form(title_ja: str, required: Iterable[str], optional: Iterable[str] = ()) -> FormSpec:
    return FormSpec(title_ja, frozenset({"change_type", *required}), frozenset(optional))


#: 届出 forms by change_type (GLOSSARY ids). 世帯変更 changes no 本人確認情報 item and is not modelled yet.
CHANGE_FORMS: dict[str, FormSpec] = {
    # 転入届: resident_code / my_number are copied from the 転出証明書; both absent = first entry (国外からの転入).
    "move_in": _form(
        "転入届",
        ["name", "name_kana", "birth_date", "sex", "address", "postal_code", "household_id", "relationship",
         "change_date", "previous_address"],
        ["resident_code", "my_number", "is_head"],
    ),
    "move_within": _form("転居届", ["resident_code", "address", "postal_code", "change_date"]),
    "move_out": _form("転出届", ["resident_code", "change_date", "destination_address"]),
    # 出生届: the child joins an existing 世帯 and takes its 住所; 異動年月日 is the date of birth (change_date, if
    # given, must equal it).
    "birth": _form("出生届", ["name", "name_kana", "birth_date", "sex", "household_id", "relationship"],
                   ["change_date"]),
    "death": _form("死亡届", ["resident_code", "change_date"]),
}

_RESIDENT_COLUMNS = (
    "resident_code", "my_number", "name", "name_kana", "birth_date", "sex", "address", "postal_code",
    "household_id", "relationship", "is_head", "status", "moved_in_on", "last_change_reason", "last_change_date",
    "updated_at", "business_atena_number", "protective_measure",
)
_BULK_REQUIRED = (
    "resident_code", "name", "name_kana", "birth_date", "sex", "address", "postal_code", "household_id",
    "relationship", "is_head",
)
_BULK_OPTIONAL = (
    "my_number", "moved_in_on", "business_atena_number", "change_reason", "change_date", "status", "protective_measure",
)
#: What goes to the 副本 (住民票関係情報): never the 個人番号 or the 住民票コード.
REPLICA_ITEMS = (
    "name", "name_kana", "birth_date", "sex", "address", "postal_code", "household_id", "relationship", "status",
)
_ATENA_ITEMS = ("my_number", "name", "name_kana", "birth_date", "sex", "address", "postal_code", "household_id",
                "status")

_DDL = """
CREATE TABLE IF NOT EXISTS registry_residents (
    resident_code TEXT PRIMARY KEY,
    my_number TEXT UNIQUE,
    name TEXT NOT NULL, name_kana TEXT NOT NULL, birth_date TEXT NOT NULL,
    sex TEXT NOT NULL CHECK (sex IN ('1', '2')),
    address TEXT NOT NULL, postal_code TEXT NOT NULL,
    household_id TEXT NOT NULL, relationship TEXT NOT NULL, is_head INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'removed')),
    moved_in_on TEXT, last_change_reason TEXT NOT NULL, last_change_date TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    business_atena_number TEXT NOT NULL UNIQUE,
    protective_measure INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS registry_residents_household ON registry_residents(household_id);
CREATE TABLE IF NOT EXISTS registry_households (
    household_id TEXT PRIMARY KEY, head_resident_code TEXT, address TEXT NOT NULL, postal_code TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_change_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id TEXT NOT NULL, resident_code TEXT NOT NULL, change_type TEXT NOT NULL, change_date TEXT NOT NULL,
    before TEXT, after TEXT NOT NULL, entered_by TEXT, confirmed_by TEXT, committed_at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS registry_change_history_no_update BEFORE UPDATE ON registry_change_history
    BEGIN SELECT RAISE(ABORT, 'registry_change_history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS registry_change_history_no_delete BEFORE DELETE ON registry_change_history
    BEGIN SELECT RAISE(ABORT, 'registry_change_history is append-only'); END;
CREATE TABLE IF NOT EXISTS registry_pending_changes (
    change_id TEXT PRIMARY KEY, change_type TEXT NOT NULL, form TEXT NOT NULL, resident_code TEXT,
    entered_by TEXT NOT NULL, entered_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'RETURNED', 'COMMITTED')),
    decided_by TEXT, decided_at TEXT
);
CREATE TABLE IF NOT EXISTS registry_number_requests (
    request_id TEXT PRIMARY KEY, change_id TEXT NOT NULL, resident_code TEXT NOT NULL,
    requested_at TEXT NOT NULL, answered_at TEXT
);
CREATE TABLE IF NOT EXISTS registry_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS registry_receipts (
    envelope_id TEXT PRIMARY KEY, type TEXT NOT NULL, body TEXT NOT NULL, received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_identity_outbox (
    change_id TEXT PRIMARY KEY, resident_code TEXT NOT NULL, sent_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_corrections_pending (
    correction_id TEXT PRIMARY KEY, resident_code TEXT NOT NULL, changes TEXT NOT NULL, reason TEXT NOT NULL,
    requested_by TEXT NOT NULL, requested_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'APPROVED', 'DECLINED')), decided_by TEXT, decided_at TEXT
);
CREATE TABLE IF NOT EXISTS registry_correction_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, correction_id TEXT NOT NULL UNIQUE, resident_code TEXT NOT NULL,
    before TEXT NOT NULL, after TEXT NOT NULL, operator TEXT NOT NULL, approver TEXT NOT NULL,
    reason TEXT NOT NULL, corrected_at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS registry_correction_records_no_update BEFORE UPDATE ON registry_correction_records
    BEGIN SELECT RAISE(ABORT, 'registry_correction_records is append-only (JUKI-003)'); END;
CREATE TRIGGER IF NOT EXISTS registry_correction_records_no_delete BEFORE DELETE ON registry_correction_records
    BEGIN SELECT RAISE(ABORT, 'registry_correction_records is append-only (JUKI-003)'); END;
-- 住民マスタ: what other business units may read; no 個人番号 and no 住民票コード (JUKI-005).
CREATE VIEW IF NOT EXISTS registry_resident_master AS
    SELECT business_atena_number AS atena_number, name, name_kana, birth_date, sex, address, postal_code,
           household_id, relationship, is_head, status FROM registry_residents;
-- 印鑑登録: keyed by the 住基 宛名番号 and joined only to the 住民マスタ, never to a 個人番号 (JUKI-007).
CREATE TABLE IF NOT EXISTS registry_seal_registrations (
    seal_number TEXT PRIMARY KEY, atena_number TEXT NOT NULL, seal_digest TEXT NOT NULL,
    registered_by TEXT NOT NULL, registered_at TEXT NOT NULL
);
"""

#: Items a 本人確認情報 correction may change (the codes are never corrected this way).
CORRECTABLE_ITEMS = ("name", "name_kana", "birth_date", "sex", "address", "postal_code")
#: Columns of the 住民マスタ (list screens, business-system reads, seal certificates): never 個人番号.
MASTER_COLUMNS = ("atena_number", "name", "name_kana", "birth_date", "sex", "address", "postal_code",
                  "household_id", "relationship", "is_head", "status")
_SEAL_COLUMNS = ("seal_number", "registered_at", *MASTER_COLUMNS)


def _problem_ja(problem: ItemProblem) -> str:
    return f"項目「{problem.field}」: {problem.rule_ja}"


class Registry(Component):
    """既存住基. Message contracts (body is never personal; ``sealed`` is JWE to the recipient):

    - out IDENTITY_UPDATE to CS: body {"change_id"}; sealed = the 8 IDENTITY_ITEMS.
    - out MY_NUMBER_REQUEST to CS: body {"request_id"}; sealed {"resident_code"}.
    - in  MY_NUMBER_ISSUED from CS: body {"request_id"}; sealed {"resident_code", "my_number"} (JUKI-008).
    - out ATENA_REGISTER to 宛名: body {"business": "resident_register", "business_atena_number", "change_type"};
      sealed {"my_number", "name", "name_kana", "birth_date", "sex", "address", "postal_code", "household_id", "status"}.
    - out REPLICA_UPDATE to 宛名: body {"business": "resident_register", "business_atena_number",
      "item": "resident_info"}; sealed {"record": REPLICA_ITEMS} (no 個人番号, no 住民票コード).
    - in  CODE_ACQUISITION_NOTIFY from 宛名: body {"processing_serial", "business_atena_number"};
      out CODE_ACQUISITION_NOTIFY to CS: body {}; sealed {"processing_serial", "resident_code"}.
    - in  ATENA_REGISTERED / REPLICA_ACK from 宛名: recorded as receipts.
    """

    name_ja = "既存住民基本台帳システム"
    name_en = "resident registry"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        municipality: str,
        cs_party: str,
        atena_party: str,
        staff: StaffDirectory,
        boundary_party: str | None = None,
        business_systems: frozenset[str] = frozenset(),
        office_link_party: str | None = None,
        replica_party: str | None = None,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.municipality = municipality
        self.cs_party = cs_party
        # With a 住基GW, cs_party is the gateway and boundary_party the CS behind it, which may never talk to us
        # directly (GW-001).
        self.boundary_party = boundary_party
        self.business_systems = business_systems
        self.atena_party = atena_party
        # 庁内連携 hub that receives every committed change (RENKEI-006), and where the 副本 record goes first
        # (札幌: 個人基本 → 宛名, RENKEI-007); both default to the direct path.
        self.office_link_party = office_link_party
        self.replica_party = replica_party or atena_party
        self.staff = staff
        ensure_schema(conn, _DDL)
        self._handlers[MessageType.MY_NUMBER_ISSUED] = self._on_my_number_issued
        self._handlers[MessageType.CODE_ACQUISITION_NOTIFY] = self._on_code_acquisition
        self._handlers[MessageType.ATENA_REGISTERED] = self._on_receipt
        self._handlers[MessageType.REPLICA_ACK] = self._on_receipt
        self._handlers[MessageType.RESIDENT_MASTER_QUERY] = self._on_master_query

    # -- reads -------------------------------------------------------------------------------------------

    def resident(self, resident_code: str) -> dict[str, Any] | None:
        """One 住民票 (single-person view: it includes the 個人番号), or None."""
        return self._resident_where("resident_code = ?", resident_code)

    def resident_by_atena_number(self, business_atena_number: str) -> dict[str, Any] | None:
        return self._resident_where("business_atena_number = ?", business_atena_number)

    def residents(self, status: str | None = None) -> Iterator[dict[str, Any]]:
        sql = f"SELECT {', '.join(_RESIDENT_COLUMNS)} FROM registry_residents"
        params: tuple[str, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (status,)
        for row in self.conn.execute(sql + " ORDER BY resident_code", params).fetchall():
            yield self._as_resident(row)

    def change(self, change_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT change_id, change_type, resident_code, entered_by, entered_at, status, decided_by, decided_at"
            " FROM registry_pending_changes WHERE change_id = ?",
            (change_id,),
        ).fetchone()
        if row is None:
            return None
        keys = ("change_id", "change_type", "resident_code", "entered_by", "entered_at", "status", "decided_by",
                "decided_at")
        return dict(zip(keys, row, strict=True))

    def history(self, resident_code: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT change_id, change_type, change_date, before, after, entered_by, confirmed_by, committed_at"
            " FROM registry_change_history WHERE resident_code = ? ORDER BY seq",
            (resident_code,),
        ).fetchall()
        return [
            {
                "change_id": r[0], "change_type": r[1], "change_date": r[2],
                "before": json.loads(r[3]) if r[3] else None, "after": json.loads(r[4]),
                "entered_by": r[5], "confirmed_by": r[6], "committed_at": r[7],
            }
            for r in rows
        ]

    def identity_snapshot(self) -> list[dict[str, str]]:
        """The 8 本人確認情報 items of every resident with a 個人番号, to load CS and the J-LIS servers at start."""
        return [self._identity_items(r) for r in self.residents() if r["my_number"] is not None]

    def _resident_where(self, clause: str, value: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT {', '.join(_RESIDENT_COLUMNS)} FROM registry_residents WHERE {clause}", (value,)
        ).fetchone()
        return None if row is None else self._as_resident(row)

    @staticmethod
    def _as_resident(row: tuple[Any, ...]) -> dict[str, Any]:
        resident = dict(zip(_RESIDENT_COLUMNS, row, strict=True))
        resident["is_head"] = bool(resident["is_head"])
        resident["protective_measure"] = bool(resident["protective_measure"])
        return resident

    @staticmethod
    def _identity_items(resident: Mapping[str, Any]) -> dict[str, str]:
        return {
            "resident_code": resident["resident_code"],
            "name": resident["name"],
            "birth_date": resident["birth_date"],
            "sex": resident["sex"],
            "address": resident["address"],
            "my_number": resident["my_number"],
            "change_reason": resident["last_change_reason"],
            "change_date": resident["last_change_date"],
        }

    # -- initial migration -------------------------------------------------------------------------------

    def bulk_load(self, rows: Iterable[Mapping[str, Any]], now: datetime) -> Result:
        """Load existing residents (initial migration) in one transaction; audited once. Value: the count.

        Row keys: resident_code, my_number (optional), name, name_kana (全角カタカナ), birth_date (YYYY-MM-DD),
        sex ("1" 男 / "2" 女, the 住基 code; nothing else is accepted), address, postal_code (NNN-NNNN or 7 digits;
        stored as 7 digits), household_id, relationship (続柄), is_head (bool). Optional: status ("active" or
        "removed" for a 消除者), protective_measure (bool, 支援措置), moved_in_on, business_atena_number (else
        assigned), change_reason / change_date (the last 異動; default: move_in on moved_in_on, else birth on
        birth_date; for a removed row move_out on the day of loading). Nothing is sent: see ``publish``.
        Bad input raises InputError naming the row and field; nothing is written then.
        """
        count = 0
        today = now.date()
        with transaction(self.conn):
            for index, raw in enumerate(rows):
                prefix = f"rows[{index}]."
                try:
                    row = self._bulk_row(raw, today)
                except ItemProblem as problem:
                    raise problem.as_input_error(prefix) from None
                if self.resident(row["resident_code"]) is not None:
                    raise InputError(prefix + "resident_code", "duplicate 住民票コード")
                if row["my_number"] is not None and self._number_holder(row["my_number"]) is not None:
                    raise InputError(prefix + "my_number", "duplicate 個人番号")
                atena = row.pop("business_atena_number") or self._next_atena_number()
                if self.resident_by_atena_number(atena) is not None:
                    raise InputError(prefix + "business_atena_number", "duplicate 宛名番号")
                self._insert_resident({**row, "business_atena_number": atena}, now)
                self._upsert_household(row, now)
                count += 1
            self.audit.append(at=now.isoformat(), kind="bulk_load", data={"table": "registry_residents", "count": count})
        return Result(value=count)

    def _bulk_row(self, raw: Mapping[str, Any], today: date) -> dict[str, Any]:
        exact_keys(raw, _BULK_REQUIRED, _BULK_OPTIONAL)
        birth = check_date(raw["birth_date"], "birth_date", not_after=today)
        status = raw.get("status") or "active"
        if status not in ("active", "removed"):
            raise ItemProblem(RefusalCode.FIELD_INVALID, "status", "active または removed です",
                              "must be 'active' or 'removed'")
        moved_in = raw.get("moved_in_on")
        if moved_in is not None:
            check_date(moved_in, "moved_in_on", not_after=today, not_before=birth)
        if status == "removed":
            reason = raw.get("change_reason") or "move_out"
            change_date = raw.get("change_date") or today.isoformat()
            allowed: tuple[str, ...] = ("move_out", "death")
        else:
            reason = raw.get("change_reason") or ("move_in" if moved_in else "birth")
            change_date = raw.get("change_date") or (moved_in if moved_in else birth.isoformat())
            allowed = ("move_in", "move_within", "birth")
        if reason not in allowed:
            raise ItemProblem(RefusalCode.FIELD_INVALID, "change_reason",
                              f"{status} の住民の異動事由は {', '.join(allowed)} のいずれかです",
                              f"must be one of {', '.join(allowed)} for a {status} resident")
        check_date(change_date, "change_date", not_after=today, not_before=birth)
        for flag in ("is_head", "protective_measure"):
            if raw.get(flag, False) not in (True, False, 0, 1):
                raise ItemProblem(RefusalCode.FIELD_INVALID, flag, "真偽値が必要です", "must be a boolean")
        number = raw.get("my_number")
        atena = raw.get("business_atena_number")
        return {
            "resident_code": check_identifier(raw["resident_code"], "resident_code"),
            "my_number": None if number is None else check_identifier(number, "my_number"),
            "name": check_text(raw["name"], "name"),
            "name_kana": check_kana(raw["name_kana"]),
            "birth_date": birth.isoformat(),
            "sex": check_sex(raw["sex"]),
            "address": check_text(raw["address"], "address"),
            "postal_code": check_postal_code(raw["postal_code"]),
            "household_id": check_text(raw["household_id"], "household_id", 64),
            "relationship": check_text(raw["relationship"], "relationship", 32),
            "is_head": bool(raw["is_head"]),
            "status": status,
            "moved_in_on": moved_in,
            "last_change_reason": reason,
            "last_change_date": change_date,
            "business_atena_number": None if atena is None else check_text(atena, "business_atena_number", 32),
            "protective_measure": bool(raw.get("protective_measure", False)),
        }

    # -- storage helpers ---------------------------------------------------------------------------------

    def _next_atena_number(self) -> str:
        """The 住基 system's own 宛名番号: a 10-digit serial, never reused."""
        self.conn.execute(
            "INSERT INTO registry_counters (name, value) VALUES ('atena', 1)"
            " ON CONFLICT(name) DO UPDATE SET value = value + 1"
        )
        value = self.conn.execute("SELECT value FROM registry_counters WHERE name = 'atena'").fetchone()[0]
        return f"{int(value):010d}"

    def _number_holder(self, my_number: str) -> str | None:
        row = self.conn.execute(
            "SELECT resident_code FROM registry_residents WHERE my_number = ?", (my_number,)
        ).fetchone()
        return None if row is None else str(row[0])

    def _insert_resident(self, r: Mapping[str, Any], now: datetime) -> None:
        values = {
            "protective_measure": False,
            **r,
            "updated_at": now.isoformat(),
        }
        values["is_head"] = int(bool(values["is_head"]))
        values["protective_measure"] = int(bool(values["protective_measure"]))
        self.conn.execute(
            f"INSERT INTO registry_residents ({', '.join(_RESIDENT_COLUMNS)})"
            f" VALUES ({', '.join('?' for _ in _RESIDENT_COLUMNS)})",
            tuple(values[c] for c in _RESIDENT_COLUMNS),
        )

    def _update_resident(self, resident_code: str, changes: Mapping[str, Any], now: datetime) -> None:
        values = {**changes, "updated_at": now.isoformat()}
        if "is_head" in values:
            values["is_head"] = int(bool(values["is_head"]))
        assignments = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(
            f"UPDATE registry_residents SET {assignments} WHERE resident_code = ?", (*values.values(), resident_code)
        )

    def _upsert_household(self, r: Mapping[str, Any], now: datetime) -> None:
        existing = self._household(r["household_id"])
        heads = bool(r["is_head"]) and r.get("status", "active") == "active"  # a 消除者 heads no 世帯
        if existing is None:
            self.conn.execute(
                "INSERT INTO registry_households (household_id, head_resident_code, address, postal_code, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (r["household_id"], r["resident_code"] if heads else None, r["address"], r["postal_code"],
                 now.isoformat()),
            )
        elif heads:
            self.conn.execute(
                "UPDATE registry_households SET head_resident_code = ?, address = ?, postal_code = ?, updated_at = ?"
                " WHERE household_id = ?",
                (r["resident_code"], r["address"], r["postal_code"], now.isoformat(), r["household_id"]),
            )

    def _household(self, household_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT household_id, head_resident_code, address, postal_code FROM registry_households"
            " WHERE household_id = ?",
            (household_id,),
        ).fetchone()
        if row is None:
            return None
        return dict(zip(("household_id", "head_resident_code", "address", "postal_code"), row, strict=True))

    # -- 異動の入力 (JUKI-001) ----------------------------------------------------------------------------------

    def enter_change(self, session: StaffSession, form: Mapping[str, Any], now: datetime) -> Result:
        """Enter one 異動 from its 届出 form. Value: the change id; the change is PENDING until confirmed."""

        def action(result: Result) -> None:
            self.staff.require(session, "registry_clerk", "AUTH-005", "異動の入力", "enter a change")
            self.allow(result, "AUTH-005", now, "異動入力の権限を確認しました", "role registry_clerk checked",
                       operator=session.user_id)
            change_type = form.get("change_type")
            spec = CHANGE_FORMS.get(change_type) if isinstance(change_type, str) else None
            if spec is None:
                raise self.refuse(
                    RefusalCode.FIELD_INVALID, "JUKI-001",
                    f"異動の種類は {', '.join(CHANGE_FORMS)} のいずれかです",
                    f"change_type must be one of {', '.join(CHANGE_FORMS)}", "change_type",
                )
            try:
                normalised = self._validate_form(spec, form, now.date())
            except ItemProblem as problem:
                raise self.refuse(problem.code, "JUKI-001", f"{spec.title_ja}: {_problem_ja(problem)}",
                                  problem.rule_en, problem.field) from None
            target = self._check_entry_state(str(change_type), normalised)
            change_id = uuid.uuid4().hex
            self.conn.execute(
                "INSERT INTO registry_pending_changes (change_id, change_type, form, resident_code, entered_by,"
                " entered_at, status) VALUES (?, ?, ?, ?, ?, ?, 'PENDING')",
                (change_id, change_type, json.dumps(normalised, ensure_ascii=False), target, session.user_id,
                 now.isoformat()),
            )
            self.allow(result, "JUKI-001", now, f"{spec.title_ja}の項目のみが入力されました",
                       f"only the fields of the {change_type} form were entered", change_id,
                       change_type=change_type, fields=sorted(normalised))
            result.value = change_id

        return run_staff_command(self, session, "enter_change", now, None, action)

    def _validate_form(self, spec: FormSpec, form: Mapping[str, Any], today: date) -> dict[str, Any]:
        exact_keys(form, spec.required, spec.optional)
        out: dict[str, Any] = {"change_type": form["change_type"]}
        birth: date | None = None
        for key in sorted(set(form) - {"change_type"}):
            value = form[key]
            if key in ("resident_code", "my_number"):
                out[key] = check_identifier(value, key)
            elif key == "birth_date":
                birth = check_date(value, key, not_after=today)
                out[key] = birth.isoformat()
            elif key == "change_date":
                out[key] = check_date(value, key, not_after=today).isoformat()
            elif key == "sex":
                out[key] = check_sex(value)
            elif key == "name_kana":
                out[key] = check_kana(value)
            elif key == "postal_code":
                out[key] = check_postal_code(value)
            elif key == "is_head":
                if not isinstance(value, bool):
                    raise ItemProblem(RefusalCode.FIELD_INVALID, key, "真偽値が必要です", "must be true or false")
                out[key] = value
            elif key in ("household_id",):
                out[key] = check_text(value, key, 64)
            elif key == "relationship":
                out[key] = check_text(value, key, 32)
            else:
                out[key] = check_text(value, key)
        if birth is not None and "change_date" in out:
            check_date(out["change_date"], "change_date", not_before=birth)
            if out["change_type"] == "birth" and out["change_date"] != out["birth_date"]:
                raise ItemProblem(RefusalCode.FIELD_INVALID, "change_date", "出生の異動日は出生日と同じです",
                                  "for a birth the change date is the date of birth")
        if "my_number" in out and "resident_code" not in out:
            raise ItemProblem(RefusalCode.FIELD_MISSING, "resident_code",
                              "個人番号を記載する場合は住民票コードも必要です（転出証明書の記載事項）",
                              "a 個人番号 needs the 住民票コード from the same 転出証明書")
        return out

    def _check_entry_state(self, change_type: str, form: Mapping[str, Any]) -> str | None:
        """Checks against the current 住民票 at entry time; returns the target 住民票コード where there is one."""
        code = form.get("resident_code")
        if change_type in ("move_within", "move_out", "death"):
            resident = self.resident(str(code))
            if resident is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "JUKI-001", "この住民票コードの住民票はありません",
                                  "no 住民票 has this 住民票コード", "resident_code")
            if resident["status"] != "active":
                raise self.refuse(RefusalCode.STATE_CONFLICT, "JUKI-001", "消除済みの住民票です",
                                  "this 住民票 has been removed", "resident_code")
            if resident["my_number"] is None:
                raise self.refuse(RefusalCode.STATE_CONFLICT, "JUKI-001",
                                  "個人番号の指定を待っている住民票です（指定後に入力してください）",
                                  "this resident is still waiting for a 個人番号", "resident_code")
            since = resident["moved_in_on"] or resident["birth_date"]
            if str(form["change_date"]) < since:
                raise self.refuse(RefusalCode.FIELD_INVALID, "JUKI-001", "異動日が住民となった日より前です",
                                  "the change date is earlier than the day the person became a resident",
                                  "change_date")
            return str(code)
        household = self._household(str(form["household_id"]))
        if change_type == "birth" and household is None:
            raise self.refuse(RefusalCode.NOT_FOUND, "JUKI-001", "出生子が入る世帯がありません",
                              "the household the child joins does not exist", "household_id")
        if change_type == "move_in":
            if household is not None and household["address"] != form["address"]:
                raise self.refuse(RefusalCode.FIELD_INVALID, "JUKI-001", "既存の世帯の住所と異なります",
                                  "the address differs from that of the existing household", "address")
            if code is not None:
                resident = self.resident(str(code))
                if resident is not None and resident["status"] == "active":
                    raise self.refuse(RefusalCode.STATE_CONFLICT, "JUKI-001", "既に住民として記録されています",
                                      "this 住民票コード is already an active resident", "resident_code")
            return None if code is None else str(code)
        return None

    # -- 入力内容の確認と確定 (JUKI-002) ----------------------------------------------------------------------------

    def confirm_change(self, session: StaffSession, change_id: str, matches: bool, now: datetime) -> Result:
        """A second clerk checks the entry against the 届出書. Value: {"change_id", "status", "resident_code"}."""

        def action(result: Result) -> None:
            self.staff.require(session, "registry_clerk", "AUTH-005", "異動の確認", "confirm a change")
            row = self.conn.execute(
                "SELECT change_type, form, resident_code, entered_by, status FROM registry_pending_changes"
                " WHERE change_id = ?",
                (change_id,),
            ).fetchone()
            if row is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "JUKI-002", "該当する異動入力がありません",
                                  "no such change entry", "change_id")
            change_type, form_json, target, entered_by, status = row
            if status != "PENDING":
                raise self.refuse(RefusalCode.STATE_CONFLICT, "JUKI-002", f"この異動入力は確認待ちではありません（{status}）",
                                  f"this change is not pending confirmation (it is {status})", "change_id")
            if session.user_id == entered_by:
                raise self.refuse(RefusalCode.SAME_PERSON_CONFIRMATION, "JUKI-002",
                                  "入力者本人は確認できません。入力者以外の職員が確認してください",
                                  "the clerk who entered a change cannot confirm it; another clerk must", "session")
            if not matches:
                self.conn.execute(
                    "UPDATE registry_pending_changes SET status = 'RETURNED', decided_by = ?, decided_at = ?"
                    " WHERE change_id = ?",
                    (session.user_id, now.isoformat(), change_id),
                )
                result.decisions.append(self.decide(
                    "JUKI-002", Outcome.DENY, now,
                    reason_ja="確認者が届出書と一致しないとしたため、入力者に差し戻しました（確定していません）",
                    reason_en="the confirming clerk found a mismatch with the form; returned to the entering clerk",
                    correlation_id=change_id,
                    evidence={"entered_by": entered_by, "confirmed_by": session.user_id},
                ))
                result.value = {"change_id": change_id, "status": "RETURNED", "resident_code": target}
                return
            self.allow(result, "JUKI-002", now, "入力者以外の職員が届出書との一致を確認しました",
                       "a clerk other than the one who entered it confirmed the change", change_id,
                       entered_by=entered_by, confirmed_by=session.user_id)
            form = json.loads(form_json)
            code = self._commit(result, change_id, str(change_type), form, entered_by, session.user_id, now)
            self.conn.execute(
                "UPDATE registry_pending_changes SET status = 'COMMITTED', decided_by = ?, decided_at = ?,"
                " resident_code = ? WHERE change_id = ?",
                (session.user_id, now.isoformat(), code, change_id),
            )
            result.value = {"change_id": change_id, "status": "COMMITTED", "resident_code": code}

        return run_staff_command(self, session, "confirm_change", now, change_id, action)

    def _commit(
        self,
        result: Result,
        change_id: str,
        change_type: str,
        form: Mapping[str, Any],
        entered_by: str,
        confirmed_by: str,
        now: datetime,
    ) -> str:
        # Re-check against the register as it is now: another change may have been committed since entry.
        target = self._check_entry_state(change_type, form)
        if change_type in ("move_in", "birth"):
            code, before = self._commit_entry(change_type, form, target, now)
        else:
            assert target is not None
            code, before = target, self.resident(target)
            self._commit_existing(change_type, form, target, now)
        after = self.resident(code)
        assert after is not None
        extra = {k: form[k] for k in ("previous_address", "destination_address") if k in form}
        self.conn.execute(
            "INSERT INTO registry_change_history (change_id, resident_code, change_type, change_date, before, after,"
            " entered_by, confirmed_by, committed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (change_id, code, change_type, after["last_change_date"],
             None if before is None else json.dumps(before, ensure_ascii=False),
             json.dumps({**after, **extra}, ensure_ascii=False), entered_by, confirmed_by, now.isoformat()),
        )
        if after["my_number"] is None:
            self._request_my_number(result, change_id, code, now)
        else:
            self._emit_committed(result, change_id, change_type, after, now)
        return code

    def _commit_entry(
        self, change_type: str, form: Mapping[str, Any], target: str | None, now: datetime
    ) -> tuple[str, dict[str, Any] | None]:
        household = self._household(str(form["household_id"]))
        if change_type == "birth":
            assert household is not None
            address, postal, change_date, is_head = household["address"], household["postal_code"], form["birth_date"], False
        else:
            address, postal, change_date = form["address"], form["postal_code"], form["change_date"]
            is_head = bool(form.get("is_head", False))
        if is_head and household is not None and household["head_resident_code"] not in (None, target):
            head = self.resident(str(household["head_resident_code"]))
            if head is not None and head["status"] == "active":
                raise self.refuse(RefusalCode.STATE_CONFLICT, "JUKI-001", "この世帯には既に世帯主がいます",
                                  "this household already has a head", "is_head")
        number = form.get("my_number")
        code = target
        if code is None:
            code = new_resident_code()
            while self.resident(code) is not None:
                code = new_resident_code()
        holder = None if number is None else self._number_holder(str(number))
        if holder is not None and holder != code:
            raise self.refuse(RefusalCode.STATE_CONFLICT, "JUKI-001", "この個人番号は別の住民票に記録されています",
                              "this 個人番号 is recorded on another 住民票", "my_number")
        record = {
            "resident_code": code,
            "my_number": number,
            "name": form["name"],
            "name_kana": form["name_kana"],
            "birth_date": form["birth_date"],
            "sex": form["sex"],
            "address": address,
            "postal_code": postal,
            "household_id": form["household_id"],
            "relationship": form["relationship"],
            "is_head": is_head,
            "status": "active",
            "moved_in_on": change_date,
            "last_change_reason": change_type,
            "last_change_date": change_date,
        }
        before = self.resident(code)
        if before is None:
            self._insert_resident({**record, "business_atena_number": self._next_atena_number()}, now)
        else:
            # A former resident (消除者) moving back keeps the 住民票コード and the 宛名番号.
            if before["my_number"] is not None and number is not None and before["my_number"] != number:
                raise self.refuse(RefusalCode.FIELD_INVALID, "JUKI-001",
                                  "以前の住民票の個人番号と一致しません", "the 個人番号 differs from the earlier 住民票",
                                  "my_number")
            record["my_number"] = number or before["my_number"]
            self._update_resident(code, {k: v for k, v in record.items() if k != "resident_code"}, now)
        self._upsert_household(record, now)
        return code, before

    def _commit_existing(self, change_type: str, form: Mapping[str, Any], code: str, now: datetime) -> None:
        resident = self.resident(code)
        assert resident is not None
        if change_type == "move_within":
            changes: dict[str, Any] = {"address": form["address"], "postal_code": form["postal_code"]}
            if resident["is_head"]:
                self.conn.execute(
                    "UPDATE registry_households SET address = ?, postal_code = ?, updated_at = ? WHERE household_id = ?",
                    (form["address"], form["postal_code"], now.isoformat(), resident["household_id"]),
                )
        else:  # move_out, death: the person becomes a 消除者; the 住民票 is kept (DATA-004)
            changes = {"status": "removed"}
            if resident["is_head"]:
                self.conn.execute(
                    "UPDATE registry_households SET head_resident_code = NULL, updated_at = ? WHERE household_id = ?",
                    (now.isoformat(), resident["household_id"]),
                )
        changes.update(last_change_reason=change_type, last_change_date=form["change_date"])
        self._update_resident(code, changes, now)

    # -- what a commit sends -----------------------------------------------------------------------------

    def _request_my_number(self, result: Result, change_id: str, code: str, now: datetime) -> None:
        request_id = uuid.uuid4().hex
        self.conn.execute(
            "INSERT INTO registry_number_requests (request_id, change_id, resident_code, requested_at)"
            " VALUES (?, ?, ?, ?)",
            (request_id, change_id, code, now.isoformat()),
        )
        self.send(result, MessageType.MY_NUMBER_REQUEST, self.cs_party, now, body={"request_id": request_id},
                  personal={"resident_code": code}, correlation_id=change_id)

    def _emit_committed(
        self,
        result: Result,
        change_id: str,
        change_type: str,
        resident: Mapping[str, Any],
        now: datetime,
        *,
        identity: bool = True,
        initial_load: bool = False,
    ) -> None:
        """本人確認情報 to CS, 異動データ to 宛名, 住民票関係情報 to the 副本 — only for committed 住民票."""
        if identity:
            self._emit_identity(result, change_id, resident, now, initial_load=initial_load)
        atena_number = resident["business_atena_number"]
        self.send(
            result, MessageType.ATENA_REGISTER, self.atena_party, now,
            body={"business": "resident_register", "business_atena_number": atena_number, "change_type": change_type},
            personal={k: resident[k] for k in _ATENA_ITEMS}, correlation_id=change_id,
        )
        self.send(
            result, MessageType.REPLICA_UPDATE, self.replica_party, now,
            body={
                "business": "resident_register",
                "business_atena_number": atena_number,
                "item": "resident_info",
                # 支援措置 (DV等): the 中間サーバー must hold requests for this record for a person (CHUKAN-011).
                "auto_reply_disabled": bool(resident["protective_measure"]),
            },
            personal={"record": {k: resident[k] for k in REPLICA_ITEMS}}, correlation_id=change_id,
        )
        if self.office_link_party is not None:
            self._emit_office_change(result, change_id, change_type, resident, now, initial_load=initial_load)

    def _emit_office_change(
        self, result: Result, change_id: str, change_type: str, resident: Mapping[str, Any], now: datetime, *,
        initial_load: bool,
    ) -> None:
        """異動データ to the 庁内連携 hub, numbered so the hub can see a gap or a reordering (RENKEI-006)."""
        self.conn.execute(
            "INSERT INTO registry_counters (name, value) VALUES ('office_link', 1)"
            " ON CONFLICT(name) DO UPDATE SET value = value + 1"
        )
        seq = int(self.conn.execute("SELECT value FROM registry_counters WHERE name = 'office_link'").fetchone()[0])
        record = {k: resident[k] for k in (*_ATENA_ITEMS, "relationship")}
        record.update(change_type=change_type, change_date=resident["last_change_date"])
        assert self.office_link_party is not None
        self.send(
            result, MessageType.OFFICE_CHANGE, self.office_link_party, now,
            body={"seq": seq, "business_atena_number": resident["business_atena_number"], "change_type": change_type,
                  "committed_at": now.isoformat(), "initial_load": initial_load},
            personal={"record": record}, correlation_id=change_id,
        )

    def _emit_identity(
        self, result: Result, change_id: str, resident: Mapping[str, Any], now: datetime, *, initial_load: bool
    ) -> None:
        items = self._identity_items(resident)
        try:
            # JUKI-006: what leaves is checked against the statutory format before it is produced.
            check_identity_format(items)
        except ItemProblem as problem:
            raise self.refuse(problem.code, "JUKI-006", f"送信前チェック: {_problem_ja(problem)}", problem.rule_en,
                              problem.field) from None
        self.allow(result, "JUKI-006", now, "送信する本人確認情報の形式を確認しました",
                   "outgoing 本人確認情報 checked before sending", change_id)
        self.conn.execute(
            "INSERT OR IGNORE INTO registry_identity_outbox (change_id, resident_code, sent_at) VALUES (?, ?, ?)",
            (change_id, items["resident_code"], now.isoformat()),
        )
        body: dict[str, Any] = {"change_id": change_id}
        if initial_load:
            body["initial_load"] = True
        self.send(result, MessageType.IDENTITY_UPDATE, self.cs_party, now, body=body,
                  personal={k: items[k] for k in IDENTITY_ITEMS}, correlation_id=change_id)

    # -- initial linkage of loaded residents -------------------------------------------------------------

    def publish(self, resident_code: str, now: datetime, *, identity: bool = True) -> Result:
        """Bring one loaded resident into the linkage path: 宛名 registration and the 副本 record, and (unless
        ``identity`` is False, for worlds whose CS and J-LIS servers were bulk-loaded) the person's 本人確認情報
        to CS marked ``initial_load`` (住基ネット 初期データ移行). Value: the correlation id of the messages.
        """

        def action(result: Result) -> None:
            resident = self.resident(resident_code)
            if resident is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "JUKI-006", "この住民票コードの住民票はありません",
                                  "no 住民票 has this 住民票コード", "resident_code")
            if resident["my_number"] is None:
                raise self.refuse(RefusalCode.STATE_CONFLICT, "JUKI-006", "個人番号が指定されていない住民票です",
                                  "this resident has no 個人番号 yet", "resident_code")
            correlation = uuid.uuid4().hex
            self._emit_committed(result, correlation, str(resident["last_change_reason"]), resident, now,
                                 identity=identity, initial_load=True)
            result.value = correlation

        return self.command(now, None, action)

    # -- handlers ----------------------------------------------------------------------------------------

    def _require_peer(self, envelope: Envelope, link: Link, expected: str, what_ja: str) -> None:
        if self.boundary_party is not None and self.boundary_party in (envelope.sender, link.source):
            raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "GW-001",
                              f"市町村CSとの直接の通信は禁止されています（住基GW {self.cs_party} 経由のみ）",
                              f"no direct session with the CS; only through the gateway {self.cs_party}", "sender")
        self.require_sender(envelope, {expected}, "NET-001", what_ja)
        if link.source != envelope.sender:
            raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "NET-001",
                              f"接続元（{link.source}）と電文の送信者（{envelope.sender}）が一致しません",
                              f"the connection source {link.source!r} is not the signed sender", "sender")

    def _keys(self, data: Mapping[str, Any], required: Iterable[str], control_id: str, what_ja: str) -> None:
        try:
            exact_keys(data, required)
        except ItemProblem as problem:
            raise self.refuse(problem.code, control_id, f"{what_ja}: {_problem_ja(problem)}", problem.rule_en,
                              problem.field) from None

    def _on_my_number_issued(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_peer(envelope, link, self.cs_party, "個人番号の通知")
        self._keys(envelope.body, ["request_id"], "JUKI-008", "個人番号の通知")
        sealed = self.unseal(envelope)
        self._keys(sealed, ["resident_code", "my_number"], "JUKI-008", "個人番号の通知")
        request = self.conn.execute(
            "SELECT change_id, resident_code, answered_at FROM registry_number_requests WHERE request_id = ?",
            (envelope.body["request_id"],),
        ).fetchone()
        if request is None or request[2] is not None:
            raise self.refuse(RefusalCode.STATE_CONFLICT, "JUKI-008", "対応する未回答の個人番号要求がありません",
                              "no open 個人番号 request has this id", "request_id")
        change_id, requested_code, _ = request
        if sealed["resident_code"] != requested_code:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT, "JUKI-008",
                "返された住民票コードが個人番号要求時に送付した住民票コードと一致しません（記録しません）",
                "the 住民票コード in the reply is not the one sent with the request; nothing is recorded",
                "resident_code",
            )
        try:
            number = check_identifier(sealed["my_number"], "my_number")
        except ItemProblem as problem:
            raise self.refuse(problem.code, "JUKI-008", _problem_ja(problem), problem.rule_en, problem.field) from None
        holder = self._number_holder(number)
        if holder is not None and holder != requested_code:
            raise self.refuse(RefusalCode.STATE_CONFLICT, "JUKI-008", "この個人番号は別の住民票に記録されています",
                              "this 個人番号 is already recorded on another 住民票", "my_number")
        self._update_resident(requested_code, {"my_number": number}, now)
        self.conn.execute(
            "UPDATE registry_number_requests SET answered_at = ? WHERE request_id = ?",
            (now.isoformat(), envelope.body["request_id"]),
        )
        self.allow(result, "JUKI-008", now, "要求時の住民票コードと突合し、個人番号を記録しました",
                   "the reply matched the 住民票コード sent; 個人番号 recorded", change_id)
        resident = self.resident(requested_code)
        assert resident is not None
        self._emit_committed(result, change_id, str(resident["last_change_reason"]), resident, now)
        return result

    def _on_code_acquisition(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_peer(envelope, link, self.atena_party, "符号取得のための通知")
        self._keys(envelope.body, ["processing_serial", "business_atena_number"], "NWS-005", "符号取得のための通知")
        serial = envelope.body["processing_serial"]
        if not isinstance(serial, str) or not 1 <= len(serial) <= 64:
            raise self.refuse(RefusalCode.FIELD_INVALID, "NWS-005", "処理通番の形式が正しくありません",
                              "processing_serial must be 1 to 64 characters", "processing_serial")
        resident = self.resident_by_atena_number(str(envelope.body["business_atena_number"]))
        if resident is None:
            raise self.refuse(RefusalCode.NOT_FOUND, "NWS-005", "この宛名番号の住民票はありません",
                              "no 住民票 has this 宛名番号", "business_atena_number")
        if resident["my_number"] is None:
            raise self.refuse(RefusalCode.STATE_CONFLICT, "NWS-005", "個人番号が指定されていない住民票です",
                              "this resident has no 個人番号 yet", "business_atena_number")
        self.allow(result, "NWS-005", now, "処理通番と住民票コードを住基ネット経由で機構へ通知します",
                   "processing serial and 住民票コード sent to 機構 through 住基ネット", envelope.correlation_id)
        self.send(result, MessageType.CODE_ACQUISITION_NOTIFY, self.cs_party, now, body={},
                  personal={"processing_serial": serial, "resident_code": resident["resident_code"]},
                  correlation_id=envelope.correlation_id)
        return result

    def _on_receipt(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self._require_peer(envelope, link, self.atena_party, "受領通知")
        self.conn.execute(
            "INSERT OR IGNORE INTO registry_receipts (envelope_id, type, body, received_at) VALUES (?, ?, ?, ?)",
            (envelope.id, str(envelope.type), json.dumps(envelope.body, ensure_ascii=False), now.isoformat()),
        )
        return Result()

    # -- 中継突合 (GW-003) ------------------------------------------------------------------------------------

    def send_relay_manifest(self, now: datetime) -> Result:
        """Send the 住基GW the list of every 本人確認情報 update this registry produced, to reconcile. Value: count."""

        def action(result: Result) -> None:
            if self.boundary_party is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "GW-003", "この団体には住基GWがありません",
                                  "this municipality has no gateway to reconcile with", "gateway")
            rows = self.conn.execute(
                "SELECT change_id, resident_code FROM registry_identity_outbox ORDER BY sent_at, change_id"
            ).fetchall()
            manifest_id = uuid.uuid4().hex
            self.send(result, MessageType.RELAY_MANIFEST, self.cs_party, now, body={"manifest_id": manifest_id},
                      personal={"entries": [[r[0], r[1]] for r in rows]}, correlation_id=manifest_id)
            result.value = len(rows)

        return self.command(now, None, action)

    # -- 本人確認情報の訂正 (JUKI-003) -------------------------------------------------------------------------

    def request_correction(
        self, session: StaffSession, resident_code: str, changes: Mapping[str, Any], reason: str, now: datetime
    ) -> Result:
        """A clerk asks to correct 本人確認情報 items; nothing changes until a 所属長 approves. Value: correction id."""

        def action(result: Result) -> None:
            self.staff.require(session, "registry_clerk", "AUTH-005", "本人確認情報の訂正入力", "enter a correction")
            resident = self.resident(resident_code)
            if resident is None or resident["status"] != "active":
                raise self.refuse(RefusalCode.NOT_FOUND, "JUKI-003", "訂正の対象となる住民票がありません",
                                  "no active 住民票 has this 住民票コード", "resident_code")
            try:
                exact_keys(changes, [], CORRECTABLE_ITEMS)
                if not changes:
                    raise ItemProblem(RefusalCode.FIELD_MISSING, "changes", "訂正する項目がありません",
                                      "no item to correct")
                normalised = self._validate_form(FormSpec("訂正", frozenset({"change_type"}),
                                                          frozenset(CORRECTABLE_ITEMS)),
                                                 {"change_type": "correction", **changes}, now.date())
                check_text(reason, "reason")
            except ItemProblem as problem:
                raise self.refuse(problem.code, "JUKI-003", f"本人確認情報の訂正: {_problem_ja(problem)}",
                                  problem.rule_en, problem.field) from None
            normalised.pop("change_type")
            correction_id = uuid.uuid4().hex
            self.conn.execute(
                "INSERT INTO registry_corrections_pending (correction_id, resident_code, changes, reason,"
                " requested_by, requested_at, status) VALUES (?, ?, ?, ?, ?, ?, 'PENDING')",
                (correction_id, resident_code, json.dumps(normalised, ensure_ascii=False), reason, session.user_id,
                 now.isoformat()),
            )
            result.value = correction_id

        return run_staff_command(self, session, "request_correction", now, None, action)

    def decide_correction(self, session: StaffSession, correction_id: str, approve: bool, now: datetime) -> Result:
        """The 所属長 approves (applied, recorded, sent to CS) or declines a correction. Value: the status."""

        def action(result: Result) -> None:
            self.staff.require(session, "department_head", "JUKI-003", "本人確認情報の訂正の許可",
                               "approve a correction of 本人確認情報")
            row = self.conn.execute(
                "SELECT resident_code, changes, reason, requested_by, status FROM registry_corrections_pending"
                " WHERE correction_id = ?",
                (correction_id,),
            ).fetchone()
            if row is None or row[4] != "PENDING":
                raise self.refuse(RefusalCode.STATE_CONFLICT, "JUKI-003", "許可待ちの訂正がありません",
                                  "no correction with this id is waiting for approval", "correction_id")
            code, changes_json, reason, requested_by, _ = row
            if requested_by == session.user_id:
                raise self.refuse(RefusalCode.SAME_PERSON_CONFIRMATION, "JUKI-003",
                                  "訂正を入力した本人は許可できません", "the person who entered a correction cannot approve it",
                                  "session")
            status = "APPROVED" if approve else "DECLINED"
            self.conn.execute(
                "UPDATE registry_corrections_pending SET status = ?, decided_by = ?, decided_at = ?"
                " WHERE correction_id = ?",
                (status, session.user_id, now.isoformat(), correction_id),
            )
            result.value = status
            if not approve:
                result.decisions.append(self.decide(
                    "JUKI-003", Outcome.DENY, now,
                    reason_ja="所属長が訂正を許可しなかったため、訂正は行いません",
                    reason_en="the department head did not approve the correction; nothing is changed",
                    correlation_id=correction_id, code=str(RefusalCode.RELEASE_REFUSED),
                    evidence={"requested_by": requested_by, "decided_by": session.user_id},
                ))
                return
            before = self.resident(code)
            assert before is not None
            changes = json.loads(changes_json)
            self._update_resident(code, {**changes, "last_change_reason": "correction",
                                         "last_change_date": now.date().isoformat()}, now)
            after = self.resident(code)
            assert after is not None
            self.conn.execute(
                "INSERT INTO registry_correction_records (correction_id, resident_code, before, after, operator,"
                " approver, reason, corrected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (correction_id, code, json.dumps({k: before[k] for k in changes}, ensure_ascii=False),
                 json.dumps(changes, ensure_ascii=False), requested_by, session.user_id, reason, now.isoformat()),
            )
            self.allow(result, "JUKI-003", now, "所属長の許可を得て本人確認情報を訂正し、訂正記録を保存しました",
                       "correction approved by the department head, applied and recorded", correction_id,
                       operator=requested_by, approver=session.user_id, items=sorted(changes))
            self._emit_committed(result, correction_id, "correction", after, now)

        return run_staff_command(self, session, "decide_correction", now, correction_id, action)

    def correction_records(self, resident_code: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT correction_id, before, after, operator, approver, reason, corrected_at"
            " FROM registry_correction_records WHERE resident_code = ? ORDER BY seq",
            (resident_code,),
        ).fetchall()
        keys = ("correction_id", "before", "after", "operator", "approver", "reason", "corrected_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # -- 画面・帳票 (JUKI-004) ---------------------------------------------------------------------------------

    def resident_detail(
        self, session: StaffSession, resident_code: str, now: datetime, *, purpose: str | None = None
    ) -> Result:
        """The single-person detail screen: the only view that shows the 個人番号. Value: the 住民票."""

        def action(result: Result) -> None:
            self.staff.require(session, "registry_clerk", "AUTH-005", "住民票詳細画面の表示", "open the detail view")
            self.allow(result, "AUTH-005", now, "詳細画面の利用権限を確認しました", "role registry_clerk checked", None,
                       operator=session.user_id, function="resident_detail")
            resident = self.resident(resident_code)
            if resident is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "JUKI-004", "この住民票コードの住民票はありません",
                                  "no 住民票 has this 住民票コード", "resident_code")
            # The entry is written before anything is shown (LOG-001/002/007); no entry, no view.
            log_operation(self, self.staff, result, session, now, function="resident_detail",
                          target=resident_code, purpose=purpose)
            self.allow(result, "JUKI-004", now, "1人分の詳細画面のため個人番号を表示します",
                       "single-person detail view: the 個人番号 is shown", None, operator=session.user_id, persons=1)
            result.value = mask_my_number(self, self.staff, result, session, resident, now)

        return run_staff_command(self, session, "resident_detail", now, None, action)

    def resident_list(
        self, session: StaffSession, columns: list[str], now: datetime, *, household_id: str | None = None,
        name: str | None = None,
    ) -> Result:
        """A list screen or report (世帯一覧, 検索結果一覧, 異動一覧): columns of the 住民マスタ only. Value: rows."""

        def action(result: Result) -> None:
            self.staff.require(session, "registry_clerk", "AUTH-005", "一覧の表示", "open a list")
            banned = [c for c in columns if c not in MASTER_COLUMNS]
            if banned:
                raise self.refuse(RefusalCode.FIELD_NOT_ALLOWED, "JUKI-004",
                                  f"複数人を表示する一覧・帳票には「{banned[0]}」を表示できません（個人番号は詳細画面のみ）",
                                  f"a multi-person list or report cannot show {banned[0]!r}", banned[0])
            where, params = [], []
            if household_id is not None:
                where.append("household_id = ?")
                params.append(household_id)
            if name is not None:
                where.append("name = ?")
                params.append(name)
            sql = f"SELECT {', '.join(columns)} FROM registry_resident_master"
            if where:
                sql += " WHERE " + " AND ".join(where)
            rows = [dict(zip(columns, r, strict=True)) for r in self.conn.execute(sql + " ORDER BY atena_number",
                                                                                 params)]
            self.allow(result, "JUKI-004", now, "一覧を個人番号なしで表示しました",
                       "list shown without the 個人番号", None, operator=session.user_id, persons=len(rows),
                       columns=columns)
            result.value = rows

        return run_staff_command(self, session, "resident_list", now, None, action)

    # -- 住民マスタ for other business units (JUKI-005) ----------------------------------------------------------

    def _on_master_query(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        """A business system reads 4情報 and the 世帯 from the 住民マスタ; the 個人番号 database has no route from it."""
        result = Result()
        if envelope.sender not in self.business_systems or link.source != envelope.sender:
            raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "JUKI-005",
                              f"住民マスタを参照できる業務システムではありません（{envelope.sender}）",
                              f"{envelope.sender} is not a business system allowed to read the 住民マスタ", "sender")
        database = envelope.body.get("database")
        if database != "resident_master":
            raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "JUKI-005",
                              "他業務からの接続は住民マスタのみ参照できます（特定個人情報DBへの経路はありません）",
                              "connections from other business units reach only the 住民マスタ; the 特定個人情報 "
                              "database has no route from them", "database")
        atena = envelope.body.get("atena_number")
        row = self.conn.execute(
            f"SELECT {', '.join(MASTER_COLUMNS)} FROM registry_resident_master WHERE atena_number = ?", (atena,)
        ).fetchone()
        if row is None:
            raise self.refuse(RefusalCode.NOT_FOUND, "JUKI-005", "この宛名番号の住民はありません",
                              "no resident has this 宛名番号", "atena_number")
        household = self.conn.execute(
            "SELECT atena_number, name, relationship FROM registry_resident_master WHERE household_id = ?"
            " AND status = 'active' ORDER BY atena_number",
            (row[MASTER_COLUMNS.index("household_id")],),
        ).fetchall()
        self.allow(result, "JUKI-005", now, "住民マスタ（個人番号なし）から4情報と世帯を応答しました",
                   "4情報 and household answered from the 住民マスタ, which holds no 個人番号", envelope.correlation_id,
                   client=envelope.sender, columns=list(MASTER_COLUMNS))
        result.value = {"resident": dict(zip(MASTER_COLUMNS, row, strict=True)),
                        "household": [dict(zip(("atena_number", "name", "relationship"), h, strict=True))
                                      for h in household]}
        return result

    # -- 印鑑登録 (JUKI-007) -------------------------------------------------------------------------------------

    def register_seal(self, session: StaffSession, resident_code: str, seal_image: str, now: datetime) -> Result:
        """Register a 印鑑: kept against the 住基 宛名番号, never the 個人番号. Value: the 印鑑登録番号."""

        def action(result: Result) -> None:
            self.staff.require(session, "registry_clerk", "AUTH-005", "印鑑登録", "register a seal")
            resident = self.resident(resident_code)
            if resident is None or resident["status"] != "active":
                raise self.refuse(RefusalCode.NOT_FOUND, "JUKI-007", "印鑑登録できる住民ではありません",
                                  "only an active resident may register a seal", "resident_code")
            count = self.conn.execute("SELECT count(*) FROM registry_seal_registrations").fetchone()[0]
            number = f"IN{int(count) + 1:08d}"
            digest = hashlib.sha256(seal_image.encode()).hexdigest()
            self.conn.execute(
                "INSERT INTO registry_seal_registrations VALUES (?, ?, ?, ?, ?)",
                (number, resident["business_atena_number"], digest, session.user_id, now.isoformat()),
            )
            result.value = number

        return run_staff_command(self, session, "register_seal", now, None, action)

    def seal_report(self, session: StaffSession, columns: list[str], now: datetime,
                    seal_number: str | None = None) -> Result:
        """An 印鑑登録証明書 (one seal_number) or a seal report: joined only to the 住民マスタ. Value: rows."""

        def action(result: Result) -> None:
            self.staff.require(session, "registry_clerk", "AUTH-005", "印鑑登録証明書の発行", "issue a seal certificate")
            banned = [c for c in columns if c not in _SEAL_COLUMNS]
            if banned:
                raise self.refuse(RefusalCode.FIELD_NOT_ALLOWED, "JUKI-007",
                                  f"印鑑登録情報は「{banned[0]}」と紐付けられません（個人番号とは連結しません）",
                                  f"seal records cannot be joined to {banned[0]!r}; they are not linked to the 個人番号",
                                  banned[0])
            select = ", ".join(f"s.{c}" if c in ("seal_number", "registered_at") else f"m.{c}" for c in columns)
            sql = (f"SELECT {select} FROM registry_seal_registrations s"
                   " JOIN registry_resident_master m ON m.atena_number = s.atena_number")
            params: tuple[str, ...] = ()
            if seal_number is not None:
                sql += " WHERE s.seal_number = ?"
                params = (seal_number,)
            rows = [dict(zip(columns, r, strict=True)) for r in self.conn.execute(sql, params)]
            if seal_number is not None and not rows:
                raise self.refuse(RefusalCode.NOT_FOUND, "JUKI-007", "この印鑑登録番号の登録はありません",
                                  "no seal registration has this number", "seal_number")
            self.audit.append(at=now.isoformat(), kind="registry.seal_read",
                              data={"operator": session.user_id, "columns": columns, "rows": len(rows)})
            self.allow(result, "JUKI-007", now, "印鑑登録情報を個人番号を読まずに出力しました",
                       "seal data produced without reading any 個人番号", None, columns_read=columns,
                       rows=len(rows))
            result.value = rows

        return run_staff_command(self, session, "seal_report", now, None, action)
