"""職員認証・権限管理 (staff authentication and rights) for any component that staff operate.

One account per natural person (AUTH-001), ID and password against a scrypt hash (AUTH-002), a biometric factor
bound to the user ID (AUTH-003), password age (AUTH-004), function-level roles (AUTH-005), same-day disabling
(AUTH-007), rights that lapse at the fiscal-year end or the employment window (AUTH-008/009) and are granted only
on an approved application (AUTH-010), reconciliation (AUTH-011), central authentication (AUTH-012), a guarded
template store (AUTH-013) and the biometric history (LOG-006). It must never let a caller act without a session it
issued, and never stores a password or a biometric sample in a recoverable form.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from simulator.errors import Refusal, RefusalCode
from simulator.store.db import transaction

if TYPE_CHECKING:
    from simulator.components.base import Component, Result

__all__ = ["StaffDirectory", "StaffPolicy", "StaffSession", "biometric_sample", "fiscal_year_end", "sign_in"]

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_FOREVER = "9999-12-31"
#: Consecutive biometric failures at which an alert is raised and the account held (LOG-006).
BIOMETRIC_ALERT_AFTER = 3
_MODALITY_JA = {"fingerprint": "指紋", "face": "顔"}

_DDL = """
CREATE TABLE IF NOT EXISTS staff (
    component TEXT NOT NULL, user_id TEXT NOT NULL, person_name TEXT NOT NULL, employee_id TEXT NOT NULL,
    roles TEXT NOT NULL, salt BLOB NOT NULL, password_hash BLOB NOT NULL, password_set_at TEXT,
    active INTEGER NOT NULL DEFAULT 1, disabled_at TEXT, added_at TEXT,
    PRIMARY KEY (component, user_id));
CREATE TABLE IF NOT EXISTS staff_policy (municipality TEXT PRIMARY KEY, policy TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS staff_central (
    authority TEXT NOT NULL, user_id TEXT NOT NULL, person_name TEXT NOT NULL, salt BLOB NOT NULL,
    password_hash BLOB NOT NULL, password_set_at TEXT, active INTEGER NOT NULL DEFAULT 1, disabled_at TEXT,
    PRIMARY KEY (authority, user_id));
CREATE TABLE IF NOT EXISTS staff_biometrics (
    component TEXT NOT NULL, user_id TEXT NOT NULL, modality TEXT NOT NULL, salt BLOB NOT NULL,
    template BLOB NOT NULL, enrolled_at TEXT, enrolled_by TEXT NOT NULL, PRIMARY KEY (component, user_id));
CREATE TABLE IF NOT EXISTS staff_auth_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, component TEXT NOT NULL, user_id TEXT NOT NULL, terminal TEXT NOT NULL,
    at TEXT NOT NULL, factor TEXT NOT NULL, ok INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS staff_auth_events_no_update BEFORE UPDATE ON staff_auth_events
    BEGIN SELECT RAISE(ABORT, 'staff_auth_events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS staff_auth_events_no_delete BEFORE DELETE ON staff_auth_events
    BEGIN SELECT RAISE(ABORT, 'staff_auth_events is append-only'); END;
CREATE TABLE IF NOT EXISTS staff_alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, component TEXT NOT NULL, user_id TEXT NOT NULL, at TEXT NOT NULL,
    kind TEXT NOT NULL, detail TEXT NOT NULL, cleared_at TEXT);
CREATE TABLE IF NOT EXISTS staff_applications (
    application_id TEXT PRIMARY KEY, component TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL,
    applicant TEXT NOT NULL, reason TEXT NOT NULL, kind TEXT NOT NULL, valid_from TEXT, valid_to TEXT NOT NULL,
    status TEXT NOT NULL, approver TEXT, applied_at TEXT NOT NULL, decided_at TEXT);
CREATE TABLE IF NOT EXISTS staff_rights (
    component TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL, valid_from TEXT NOT NULL,
    valid_to TEXT NOT NULL, kind TEXT NOT NULL, application_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS staff_reconciliations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, component TEXT NOT NULL, at TEXT NOT NULL, by_user TEXT NOT NULL,
    accounts INTEGER NOT NULL, orphans TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS staff_server_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, component TEXT NOT NULL, at TEXT NOT NULL, user_id TEXT NOT NULL,
    terminal TEXT NOT NULL, function TEXT NOT NULL, target TEXT, purpose TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS staff_review_cases (
    case_id INTEGER PRIMARY KEY AUTOINCREMENT, component TEXT NOT NULL, opened_at TEXT NOT NULL,
    user_id TEXT NOT NULL, rule TEXT NOT NULL, detail TEXT NOT NULL, status TEXT NOT NULL);
"""


def fiscal_year_end(day: date) -> date:
    """The last day (31 March) of the 会計年度 that contains ``day``."""
    return date(day.year + (1 if day.month >= 4 else 0), 3, 31)


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def biometric_sample(modality: str, person_name: str) -> str:
    """The sample a sensor reads from a natural person's finger or face, in this simulation: their identity."""
    return f"{modality}:{person_name}"


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


@dataclass(frozen=True)
class StaffPolicy:
    """What a municipality's profile requires of staff authentication (persisted with its store)."""

    biometric: str | None = None  # "fingerprint" | "face" (AUTH-003)
    password_max_age_months: int | None = None  # AUTH-004
    fy_rollover_revoke: bool = False  # AUTH-008
    same_day_revoke: bool = False  # AUTH-007
    rights_register: bool = False  # AUTH-009/010/011/013: rights only from approved applications, with windows
    central_authority: str | None = None  # AUTH-012: the party whose credential store every system uses
    purpose_required: bool = False  # LOG-002
    server_log_years: int | None = None  # LOG-002 retention

    def save(self, conn: sqlite3.Connection, municipality: str) -> None:
        conn.executescript(_DDL)
        with transaction(conn):
            conn.execute(
                "INSERT INTO staff_policy (municipality, policy) VALUES (?, ?)"
                " ON CONFLICT(municipality) DO UPDATE SET policy = excluded.policy",
                (municipality, json.dumps(dataclasses.asdict(self))),
            )

    @classmethod
    def load(cls, conn: sqlite3.Connection, municipality: str) -> StaffPolicy:
        row = conn.execute("SELECT policy FROM staff_policy WHERE municipality = ?", (municipality,)).fetchone()
        return cls(**json.loads(row[0])) if row else cls()


@dataclass(frozen=True)
class StaffSession:
    user_id: str
    name: str
    roles: frozenset[str]
    component: str
    session_id: str
    terminal: str = ""


@dataclass(frozen=True)
class Passed:
    """A check a login passed: becomes an ``allow`` decision of ``control``."""

    control: str
    reason_ja: str
    reason_en: str
    evidence: dict[str, Any]


class StaffDirectory:
    def __init__(self, conn: sqlite3.Connection, component: str) -> None:
        self.conn = conn
        self.component = component
        conn.executescript(_DDL)

    @property
    def policy(self) -> StaffPolicy:
        # Read from the store each time: the policy is data of the municipality, not of this object.
        return StaffPolicy.load(self.conn, self.component.split(".")[0])

    def _refusal(self, code: RefusalCode, control: str, ja: str, en: str, field: str) -> Refusal:
        return Refusal(code, component=self.component, control_id=control, reason_ja=ja, reason_en=en, field=field)

    # -- accounts ----------------------------------------------------------------------------------------

    def add(
        self,
        user_id: str,
        person_name: str,
        roles: set[str],
        password: str,
        *,
        employee_id: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Provision an account for one natural person (initial provisioning: rights come with it)."""
        if not person_name.strip():
            # A shared or generic account has no natural person behind it (AUTH-001).
            raise self._refusal(
                RefusalCode.FIELD_MISSING,
                "AUTH-001",
                "ユーザIDは個人ごとに発行します（氏名のない共用IDは作成できません）",
                "user IDs are issued per natural person; an account without a person's name is refused",
                "person_name",
            )
        employee = employee_id or f"emp:{person_name}"
        if "," in employee or "," in person_name or "、" in person_name:
            raise self._refusal(
                RefusalCode.FIELD_INVALID,
                "AUTH-001",
                "1つのユーザIDに複数の職員を紐付けることはできません（共用ID）",
                "one user ID cannot belong to several persons (a shared ID)",
                "employee_id",
            )
        held = self.conn.execute(
            "SELECT user_id FROM staff WHERE component = ? AND employee_id = ? AND active = 1",
            (self.component, employee),
        ).fetchone()
        if held is not None:
            raise self._refusal(
                RefusalCode.STATE_CONFLICT,
                "AUTH-001",
                f"この職員には既にユーザID {held[0]} が発行されています（1人1ID）",
                f"this person already holds user ID {held[0]} in this system (one ID per person)",
                "employee_id",
            )
        policy = self.policy
        at = now.isoformat() if now else None
        if policy.central_authority:
            # The credential lives with the central service only; the system keeps roles, never a password.
            salt, digest = b"", b""
            exists = self.conn.execute(
                "SELECT 1 FROM staff_central WHERE authority = ? AND user_id = ?",
                (policy.central_authority, user_id),
            ).fetchone()
            if exists is None:
                central_salt = secrets.token_bytes(16)
                self.conn.execute(
                    "INSERT INTO staff_central (authority, user_id, person_name, salt, password_hash,"
                    " password_set_at) VALUES (?,?,?,?,?,?)",
                    (policy.central_authority, user_id, person_name, central_salt, _hash(password, central_salt), at),
                )
        else:
            salt = secrets.token_bytes(16)
            digest = _hash(password, salt)
        self.conn.execute(
            "INSERT INTO staff (component, user_id, person_name, employee_id, roles, salt, password_hash,"
            " password_set_at, added_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (self.component, user_id, person_name, employee, json.dumps(sorted(roles)), salt, digest, at, at),
        )
        if policy.biometric:
            self._enrol(user_id, biometric_sample(policy.biometric, person_name), "provisioning", now)
        if policy.rights_register and roles and now is not None:
            # Initial provisioning stands for last cycle's approved applications (recorded as such).
            valid_to = fiscal_year_end(now.date()).isoformat() if policy.fy_rollover_revoke else _FOREVER
            app_id = f"initial-{uuid.uuid4().hex[:8]}"
            self.conn.execute(
                "INSERT INTO staff_applications VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    app_id,
                    self.component,
                    user_id,
                    ",".join(sorted(roles)),
                    "initial",
                    "初期登録",
                    "regular",
                    now.date().isoformat(),
                    valid_to,
                    "approved",
                    "initial",
                    at,
                    at,
                ),
            )
            for role in sorted(roles):
                self.conn.execute(
                    "INSERT INTO staff_rights VALUES (?,?,?,?,?,?,?)",
                    (self.component, user_id, role, now.date().isoformat(), valid_to, "regular", app_id),
                )

    def person(self, user_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT person_name FROM staff WHERE component = ? AND user_id = ?", (self.component, user_id)
        ).fetchone()
        return str(row[0]) if row else None

    def disable(self, user_id: str, now: datetime) -> None:
        self.conn.execute(
            "UPDATE staff SET active = 0, disabled_at = ? WHERE component = ? AND user_id = ?",
            (now.isoformat(), self.component, user_id),
        )
        policy = self.policy
        if policy.central_authority == self.component:
            # Disabling at the central service disables the person in every system that relies on it (AUTH-012).
            self.conn.execute(
                "UPDATE staff_central SET active = 0, disabled_at = ? WHERE authority = ? AND user_id = ?",
                (now.isoformat(), self.component, user_id),
            )

    def change_password(self, user_id: str, old: str, new: str, now: datetime) -> None:
        policy = self.policy
        if policy.central_authority and policy.central_authority != self.component:
            raise self._refusal(
                RefusalCode.FIELD_NOT_ALLOWED,
                "AUTH-012",
                f"パスワードは統合認証基盤（{policy.central_authority}）で管理します。業務システムには保存できません",
                f"passwords are kept by the central service {policy.central_authority}; this system keeps none",
                "password",
            )
        if len(new) < 8 or new == old:
            raise self._refusal(
                RefusalCode.FIELD_INVALID,
                "AUTH-004",
                "新しいパスワードは8文字以上で、現在のものと異なる必要があります",
                "the new password must have at least 8 characters and differ from the current one",
                "password",
            )
        self._check_password(user_id, old)
        salt = secrets.token_bytes(16)
        if policy.central_authority == self.component:
            self.conn.execute(
                "UPDATE staff_central SET salt = ?, password_hash = ?, password_set_at = ?"
                " WHERE authority = ? AND user_id = ?",
                (salt, _hash(new, salt), now.isoformat(), self.component, user_id),
            )
        else:
            self.conn.execute(
                "UPDATE staff SET salt = ?, password_hash = ?, password_set_at = ? WHERE component = ? AND user_id = ?",
                (salt, _hash(new, salt), now.isoformat(), self.component, user_id),
            )

    # -- authentication ----------------------------------------------------------------------------------

    def _check_password(self, user_id: str, password: str) -> tuple[str, str | None]:
        """Return (person_name, password_set_at) or refuse; the hash is computed even for unknown IDs."""
        authority = self.policy.central_authority
        if authority:
            row = self.conn.execute(
                "SELECT person_name, salt, password_hash, password_set_at FROM staff_central"
                " WHERE authority = ? AND user_id = ?",
                (authority, user_id),
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT person_name, salt, password_hash, password_set_at FROM staff"
                " WHERE component = ? AND user_id = ?",
                (self.component, user_id),
            ).fetchone()
        supplied = _hash(password, row[1] if row else b"0" * 16)
        if row is None or not hmac.compare_digest(supplied, row[2]):
            raise self._refusal(
                RefusalCode.NOT_AUTHENTICATED,
                "AUTH-002",
                "ユーザIDまたはパスワードが正しくありません",
                "unknown user ID or wrong password",
                "user_id",
            )
        return str(row[0]), row[3]

    def authenticate(
        self,
        user_id: str,
        password: str,
        *,
        now: datetime | None = None,
        biometric: str | None = None,
        terminal: str = "",
    ) -> StaffSession:
        return self.verify_login(user_id, password, now=now, biometric=biometric, terminal=terminal)[0]

    def verify_login(
        self,
        user_id: str,
        password: str,
        *,
        now: datetime | None = None,
        biometric: str | None = None,
        terminal: str = "",
    ) -> tuple[StaffSession, list[Passed]]:
        """Every login check the policy asks for, in order; the first that fails refuses the login."""
        policy = self.policy
        timed = policy.password_max_age_months or policy.rights_register
        if timed and now is None:
            raise ValueError("now: this municipality's staff policy checks ages and windows; pass the time")
        person_name, password_set_at = self._check_password(user_id, password)
        passed = [Passed("AUTH-002", "ユーザIDとパスワードで認証しました", "authenticated by user ID and password", {})]
        if policy.central_authority:
            central = self.conn.execute(
                "SELECT active FROM staff_central WHERE authority = ? AND user_id = ?",
                (policy.central_authority, user_id),
            ).fetchone()
            if not central[0]:
                raise self._refusal(
                    RefusalCode.ACCOUNT_DISABLED,
                    "AUTH-012",
                    "統合認証基盤でこのユーザは停止されています（全業務システムで利用できません）",
                    "the user was disabled at the central service, so no business system accepts them",
                    "user_id",
                )
        row = self.conn.execute(
            "SELECT roles, active FROM staff WHERE component = ? AND user_id = ?", (self.component, user_id)
        ).fetchone()
        if row is None:
            raise self._refusal(
                RefusalCode.NOT_AUTHENTICATED,
                "AUTH-012" if policy.central_authority else "AUTH-002",
                "このシステムの利用者として登録されていません",
                "the user is not registered as a user of this system",
                "user_id",
            )
        if policy.central_authority:
            passed.append(
                Passed(
                    "AUTH-012",
                    "統合認証基盤の資格情報で認証しました",
                    "authenticated by the central service",
                    {"authority": policy.central_authority},
                )
            )
        if not row[1]:
            raise self._refusal(
                RefusalCode.ACCOUNT_DISABLED,
                "AUTH-007",
                "このアカウントは人事異動・退職等により使用停止されています",
                "this account was disabled (transfer, leave or retirement)",
                "user_id",
            )
        alert = self.conn.execute(
            "SELECT seq FROM staff_alerts WHERE component = ? AND user_id = ? AND kind = 'biometric' AND cleared_at"
            " IS NULL",
            (self.component, user_id),
        ).fetchone()
        if alert is not None:
            raise self._refusal(
                RefusalCode.ACCOUNT_DISABLED,
                "LOG-006",
                "生体認証の連続失敗による警告が解除されるまで、このアカウントは保留されています",
                "the account is held until the alert for repeated biometric failures is cleared",
                "user_id",
            )
        if policy.biometric:
            self._match_biometric(user_id, biometric, policy.biometric)
            passed.append(
                Passed(
                    "AUTH-003",
                    f"{_MODALITY_JA.get(policy.biometric, policy.biometric)}による生体認証が本人と一致しました",
                    f"the {policy.biometric} matched the template bound to this user ID",
                    {"modality": policy.biometric},
                )
            )
        if policy.password_max_age_months and now is not None:
            set_at = datetime.fromisoformat(password_set_at) if password_set_at else None
            limit = _add_months(set_at.date(), policy.password_max_age_months) if set_at else None
            if limit is None or now.date() > limit:
                raise self._refusal(
                    RefusalCode.PASSWORD_EXPIRED,
                    "AUTH-004",
                    f"パスワードの有効期間（{policy.password_max_age_months}か月）を過ぎています。変更するまで業務機能は使えません",
                    f"the password is older than {policy.password_max_age_months} months; change it before any "
                    "business function is available",
                    "password",
                )
            passed.append(
                Passed(
                    "AUTH-004",
                    f"パスワードは有効期間内です（{limit.isoformat()}まで）",
                    f"the password is within its maximum age (until {limit.isoformat()})",
                    {"password_set_at": password_set_at, "valid_until": limit.isoformat()},
                )
            )
        if policy.rights_register and now is not None:
            passed.extend(self._current_rights(user_id, now.date(), policy))
        session = StaffSession(
            user_id, person_name, frozenset(json.loads(row[0])), self.component, secrets.token_hex(8), terminal
        )
        return session, passed

    def _current_rights(self, user_id: str, today: date, policy: StaffPolicy) -> list[Passed]:
        rows = self.conn.execute(
            "SELECT role, valid_from, valid_to, kind, application_id FROM staff_rights"
            " WHERE component = ? AND user_id = ? ORDER BY valid_to DESC",
            (self.component, user_id),
        ).fetchall()
        iso = today.isoformat()
        current = [r for r in rows if r[1] <= iso <= r[2]]
        if not current:
            last = rows[0] if rows else None
            if last is not None and last[3] == "temporary" and last[2] < iso:
                raise self._refusal(
                    RefusalCode.RIGHT_EXPIRED,
                    "AUTH-009",
                    f"臨時職員の権限期間（{last[1]}〜{last[2]}）外のためアクセスできません",
                    f"outside the temporary staff member's window ({last[1]} to {last[2]})",
                    "valid_to",
                )
            if last is not None and policy.fy_rollover_revoke and last[2] < iso:
                raise self._refusal(
                    RefusalCode.RIGHT_EXPIRED,
                    "AUTH-008",
                    f"年度切替（{last[2]}）で権限が失効しました。新しい所属長からの再申請・承認が必要です",
                    f"all rights lapsed at the fiscal-year end ({last[2]}); the new 所属長 must apply again",
                    "valid_to",
                )
            raise self._refusal(
                RefusalCode.NO_APPROVED_APPLICATION,
                "AUTH-010",
                "承認された権限申請がないため、このシステムの権限がありません",
                "no approved application grants this user a right in this system",
                "user_id",
            )
        out: list[Passed] = []
        top = current[0]
        if top[3] == "temporary":
            out.append(
                Passed(
                    "AUTH-009",
                    f"臨時職員の権限期間内です（{top[2]}まで）",
                    f"inside the temporary window (until {top[2]})",
                    {"valid_to": top[2]},
                )
            )
        if policy.fy_rollover_revoke:
            out.append(
                Passed(
                    "AUTH-008",
                    f"今年度の権限です（{top[2]}まで、申請 {top[4]}）",
                    f"a right of the current fiscal year (until {top[2]}, application {top[4]})",
                    {"valid_to": top[2], "application_id": top[4]},
                )
            )
        return out

    def _match_biometric(self, user_id: str, sample: str | None, modality: str) -> None:
        row = self.conn.execute(
            "SELECT modality, salt, template FROM staff_biometrics WHERE component = ? AND user_id = ?",
            (self.component, user_id),
        ).fetchone()
        presented = hmac.new(row[1], (sample or "").encode(), "sha256").digest() if row else b""
        if row is None or sample is None or not hmac.compare_digest(presented, row[2]):
            what = _MODALITY_JA.get(modality, modality)
            raise self._refusal(
                RefusalCode.BIOMETRIC_MISMATCH,
                "AUTH-003",
                f"{what}認証がこのユーザIDに登録された本人と一致しません（なりすましの疑いとして記録）",
                f"the {modality} does not match the template bound to this user ID (logged as impersonation)",
                "biometric",
            )

    def _enrol(self, user_id: str, sample: str, by: str, now: datetime | None) -> None:
        policy = self.policy
        salt = secrets.token_bytes(16)
        self.conn.execute(
            "INSERT INTO staff_biometrics VALUES (?,?,?,?,?,?,?) ON CONFLICT(component, user_id) DO UPDATE SET"
            " modality = excluded.modality, salt = excluded.salt, template = excluded.template,"
            " enrolled_at = excluded.enrolled_at, enrolled_by = excluded.enrolled_by",
            (
                self.component,
                user_id,
                policy.biometric or "none",
                salt,
                hmac.new(salt, sample.encode(), "sha256").digest(),
                now.isoformat() if now else None,
                by,
            ),
        )

    def record_auth_event(self, user_id: str, terminal: str, now: datetime, factor: str, ok: bool) -> int:
        """Append one biometric attempt (LOG-006); return the consecutive failures for this user so far."""
        self.conn.execute(
            "INSERT INTO staff_auth_events (component, user_id, terminal, at, factor, ok) VALUES (?,?,?,?,?,?)",
            (self.component, user_id, terminal, now.isoformat(), factor, int(ok)),
        )
        last_ok = self.conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM staff_auth_events WHERE component = ? AND user_id = ? AND ok = 1",
            (self.component, user_id),
        ).fetchone()[0]
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM staff_auth_events WHERE component = ? AND user_id = ? AND ok = 0 AND seq > ?",
                (self.component, user_id, last_ok),
            ).fetchone()[0]
        )

    def auth_events(self, user_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT user_id, terminal, at, factor, ok FROM staff_auth_events WHERE component = ?"
        params: list[Any] = [self.component]
        if user_id is not None:
            sql += " AND user_id = ?"
            params.append(user_id)
        keys = ("user_id", "terminal", "at", "factor", "ok")
        return [dict(zip(keys, r, strict=True)) for r in self.conn.execute(sql + " ORDER BY seq", params)]

    # -- authorisation -----------------------------------------------------------------------------------

    def require(self, session: StaffSession, role: str, control_id: str, what_ja: str, what_en: str) -> None:
        row = self.conn.execute(
            "SELECT roles, active FROM staff WHERE component = ? AND user_id = ?", (self.component, session.user_id)
        ).fetchone()
        if row is None or session.component != self.component:
            raise self._refusal(
                RefusalCode.NOT_AUTHENTICATED,
                control_id,
                "この端末で認証されたセッションではありません",
                "the session was not issued by this component",
                "session",
            )
        if not row[1]:
            raise self._refusal(
                RefusalCode.ACCOUNT_DISABLED,
                "AUTH-007",
                "このアカウントは使用停止されています",
                "this account has been disabled",
                "session",
            )
        # Roles are read from the store, not the session, so a role removed mid-session stops working at once.
        if role not in json.loads(row[0]):
            raise self._refusal(
                RefusalCode.ROLE_MISSING,
                control_id,
                f"{what_ja}を行う権限（{role}）がありません",
                f"the user lacks the role {role!r} needed to {what_en}",
                "role",
            )

    def has_role(self, session: StaffSession, role: str) -> bool:
        row = self.conn.execute(
            "SELECT roles FROM staff WHERE component = ? AND user_id = ? AND active = 1",
            (self.component, session.user_id),
        ).fetchone()
        return row is not None and role in json.loads(row[0])

    # -- rights register (AUTH-009/010/011) ----------------------------------------------------------------

    def apply(
        self,
        applicant: StaffSession,
        user_id: str,
        role: str,
        reason: str,
        now: datetime,
        *,
        kind: str = "regular",
        valid_from: date | None = None,
        valid_to: date | None = None,
    ) -> str:
        """所属長 applies to the 情報主管課長 for a right of one user; returns the application id."""
        self.require(applicant, "department_head", "AUTH-010", "権限の申請", "apply for a right")
        if applicant.user_id == user_id:
            raise self._refusal(
                RefusalCode.SAME_PERSON_CONFIRMATION,
                "AUTH-010",
                "本人による自己申請はできません（所属長が申請します）",
                "a user cannot apply for their own right; the 所属長 applies",
                "user_id",
            )
        if self.person(user_id) is None:
            raise self._refusal(
                RefusalCode.NOT_FOUND,
                "AUTH-010",
                "申請対象のユーザIDがありません",
                "no such user ID in this system",
                "user_id",
            )
        if not reason.strip():
            raise self._refusal(
                RefusalCode.FIELD_MISSING, "AUTH-010", "申請理由がありません", "the application has no reason", "reason"
            )
        if kind == "temporary" and valid_to is None:
            raise self._refusal(
                RefusalCode.FIELD_MISSING,
                "AUTH-009",
                "臨時職員の申請には雇用通知書の雇用期間（終了日）が必要です",
                "a temporary staff application needs the employment end date",
                "valid_to",
            )
        app_id = uuid.uuid4().hex[:12]
        self.conn.execute(
            "INSERT INTO staff_applications VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                app_id,
                self.component,
                user_id,
                role,
                applicant.user_id,
                reason,
                kind,
                (valid_from or now.date()).isoformat(),
                (valid_to or date.max).isoformat(),
                "applied",
                None,
                now.isoformat(),
                None,
            ),
        )
        return app_id

    def approve(self, approver: StaffSession, application_id: str, now: datetime) -> dict[str, Any]:
        """The 情報主管課長 approves an application; only then is the right granted (AUTH-010)."""
        self.require(approver, "info_director", "AUTH-010", "権限申請の承認", "approve an application")
        row = self.conn.execute(
            "SELECT user_id, role, applicant, kind, valid_to, status, valid_from FROM staff_applications"
            " WHERE application_id = ? AND component = ?",
            (application_id, self.component),
        ).fetchone()
        if row is None or row[5] != "applied":
            raise self._refusal(
                RefusalCode.NO_APPROVED_APPLICATION,
                "AUTH-010",
                "所属長の申請がない（または処理済みの）権限は付与できません",
                "no open application from a 所属長 exists for this grant",
                "application_id",
            )
        user_id, role, applicant, kind, requested_to, _, requested_from = row
        # A right for next year may be applied for and approved before the rollover; it starts on its own date.
        starts = max(now.date().isoformat(), requested_from or "")
        if approver.user_id in (applicant, user_id):
            raise self._refusal(
                RefusalCode.SAME_PERSON_CONFIRMATION,
                "AUTH-010",
                "申請者・対象者本人は承認できません",
                "the applicant or the user cannot approve",
                "approver",
            )
        ends = [requested_to]
        if self.policy.fy_rollover_revoke:
            ends.append(fiscal_year_end(date.fromisoformat(starts)).isoformat())
        valid_to = min(ends)
        self.conn.execute(
            "UPDATE staff_applications SET status = 'approved', approver = ?, decided_at = ? WHERE application_id = ?",
            (approver.user_id, now.isoformat(), application_id),
        )
        self.conn.execute(
            "INSERT INTO staff_rights VALUES (?,?,?,?,?,?,?)",
            (self.component, user_id, role, starts, valid_to, kind, application_id),
        )
        roles = set(
            json.loads(
                self.conn.execute(
                    "SELECT roles FROM staff WHERE component = ? AND user_id = ?", (self.component, user_id)
                ).fetchone()[0]
            )
        )
        self.conn.execute(
            "UPDATE staff SET roles = ? WHERE component = ? AND user_id = ?",
            (json.dumps(sorted(roles | {role})), self.component, user_id),
        )
        return {"user_id": user_id, "role": role, "valid_to": valid_to, "applicant": applicant, "kind": kind}

    def reconcile(self, auditor: StaffSession, now: datetime) -> list[dict[str, Any]]:
        """Export the user-ID list and reconcile it with the rights register; disable what nothing justifies."""
        self.require(auditor, "info_director", "AUTH-011", "ユーザID一覧と権限管理台帳の突合", "reconcile user IDs")
        today = now.date().isoformat()
        orphans: list[dict[str, Any]] = []
        accounts = self.conn.execute(
            "SELECT user_id, roles FROM staff WHERE component = ? AND active = 1", (self.component,)
        ).fetchall()
        for user_id, roles_json in accounts:
            granted = {
                r
                for (r,) in self.conn.execute(
                    "SELECT role FROM staff_rights WHERE component = ? AND user_id = ? AND valid_from <= ?"
                    " AND valid_to >= ?",
                    (self.component, user_id, today, today),
                )
            }
            extra = sorted(set(json.loads(roles_json)) - granted)
            if extra:
                orphans.append({"user_id": user_id, "unregistered_roles": extra})
        for orphan in orphans:
            self.disable(orphan["user_id"], now)
        self.conn.execute(
            "INSERT INTO staff_reconciliations (component, at, by_user, accounts, orphans) VALUES (?,?,?,?,?)",
            (self.component, now.isoformat(), auditor.user_id, len(accounts), json.dumps(orphans, ensure_ascii=False)),
        )
        return orphans

    # -- biometric template store (AUTH-013) ------------------------------------------------------------

    def _require_template_admin(self, session: StaffSession, what_ja: str, what_en: str) -> None:
        row = self.conn.execute(
            "SELECT roles FROM staff WHERE component = ? AND user_id = ? AND active = 1",
            (self.component, session.user_id),
        ).fetchone()
        roles = set(json.loads(row[0])) if row else set()
        if not roles & {"biometric_admin", "system_operator"}:
            raise self._refusal(
                RefusalCode.ROLE_MISSING,
                "AUTH-013",
                f"{what_ja}は情報主管課とシステム運用委託業者のみが行えます",
                f"only the 情報主管課 and the operations contractor may {what_en}",
                "role",
            )

    def enrol_biometric(self, admin: StaffSession, user_id: str, sample: str, now: datetime) -> None:
        self._require_template_admin(admin, "生体情報の登録", "enrol biometric templates")
        if self.person(user_id) is None:
            raise self._refusal(
                RefusalCode.NOT_FOUND, "AUTH-013", "登録対象のユーザIDがありません", "no such user ID", "user_id"
            )
        self._enrol(user_id, sample, admin.user_id, now)

    def read_templates(self, session: StaffSession) -> list[dict[str, Any]]:
        self._require_template_admin(session, "生体情報の参照・出力", "read or export biometric templates")
        keys = ("user_id", "modality", "enrolled_at", "enrolled_by")
        return [
            dict(zip(keys, r, strict=True))
            for r in self.conn.execute(
                "SELECT user_id, modality, enrolled_at, enrolled_by FROM staff_biometrics WHERE component = ?"
                " ORDER BY user_id",
                (self.component,),
            )
        ]


def sign_in(
    component: Component,
    staff: StaffDirectory,
    user_id: str,
    password: str,
    now: datetime,
    *,
    terminal: str,
    biometric: str | None = None,
) -> Result:
    """A login at a terminal: every policy check as a decision, the login in the access log (LOG-001), and the
    biometric history with an alert after repeated failures (LOG-006). Value: the session."""
    policy = staff.policy

    def act(result: Result) -> None:
        session, passed = staff.verify_login(user_id, password, now=now, biometric=biometric, terminal=terminal)
        for check in passed:
            component.allow(
                result,
                check.control,
                now,
                check.reason_ja,
                check.reason_en,
                None,
                user=user_id,
                terminal=terminal,
                **check.evidence,
            )
        if policy.biometric:
            staff.record_auth_event(user_id, terminal, now, policy.biometric, ok=True)
            component.allow(
                result,
                "LOG-006",
                now,
                "生体認証の成功を履歴に記録しました",
                "the biometric success was recorded",
                None,
                user=user_id,
                terminal=terminal,
                at=now.isoformat(),
            )
        component.audit.append(
            at=now.isoformat(),
            kind="access",
            data={"user": user_id, "terminal": terminal, "function": "login", "target": None, "purpose": None},
        )
        result.value = session

    result = component.command(now, None, act)
    refusal = result.refusal
    if refusal is not None and refusal.code == RefusalCode.BIOMETRIC_MISMATCH and policy.biometric:
        # The failed attempt is history too: written after the refused step was rolled back.
        with transaction(staff.conn):
            failures = staff.record_auth_event(user_id, terminal, now, policy.biometric, ok=False)
            component.audit.append(
                at=now.isoformat(),
                kind="auth.impersonation",
                data={"user": user_id, "terminal": terminal, "modality": policy.biometric, "consecutive": failures},
            )
            if failures >= BIOMETRIC_ALERT_AFTER:
                staff.conn.execute(
                    "INSERT INTO staff_alerts (component, user_id, at, kind, detail) VALUES (?,?,?,?,?)",
                    (
                        staff.component,
                        user_id,
                        now.isoformat(),
                        "biometric",
                        f"{failures} consecutive failures at {terminal}",
                    ),
                )
        if failures >= BIOMETRIC_ALERT_AFTER:
            from simulator.controls.decision import Outcome

            result.decisions.append(
                component.decide(
                    "LOG-006",
                    Outcome.HOLD,
                    now,
                    reason_ja=f"生体認証に{failures}回連続で失敗したため警告を発し、解除までアカウントを保留します",
                    reason_en=f"{failures} consecutive biometric failures: alert raised, account held until cleared",
                    evidence={"user": user_id, "terminal": terminal, "consecutive_failures": failures},
                )
            )
    return result
