"""職員認証・権限管理 (staff authentication and roles) for any component that staff operate.

One account per natural person (AUTH-001), ID and password checked against a scrypt hash (AUTH-002),
function-level roles (AUTH-005 / CHUKAN-016), and accounts that stop working the day they are disabled
(AUTH-007). This module must never let a caller act without a session it issued, and never stores a
password in a recoverable form.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from simulator.errors import Refusal, RefusalCode

__all__ = ["StaffDirectory", "StaffSession"]

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


@dataclass(frozen=True)
class StaffSession:
    user_id: str
    name: str
    roles: frozenset[str]
    component: str
    session_id: str


class StaffDirectory:
    def __init__(self, conn: sqlite3.Connection, component: str) -> None:
        self.conn = conn
        self.component = component
        conn.execute(
            """CREATE TABLE IF NOT EXISTS staff (
                component TEXT NOT NULL, user_id TEXT NOT NULL, person_name TEXT NOT NULL,
                roles TEXT NOT NULL, salt BLOB NOT NULL, password_hash BLOB NOT NULL,
                active INTEGER NOT NULL DEFAULT 1, disabled_at TEXT,
                PRIMARY KEY (component, user_id))"""
        )

    def add(self, user_id: str, person_name: str, roles: set[str], password: str) -> None:
        if not person_name.strip():
            # A shared or generic account has no natural person behind it (AUTH-001).
            raise Refusal(
                RefusalCode.FIELD_MISSING,
                component=self.component,
                control_id="AUTH-001",
                reason_ja="ユーザIDは個人ごとに発行します（氏名のない共用IDは作成できません）",
                reason_en="user IDs are issued per natural person; an account without a person's name is refused",
                field="person_name",
            )
        salt = secrets.token_bytes(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
        self.conn.execute(
            "INSERT INTO staff (component, user_id, person_name, roles, salt, password_hash) VALUES (?,?,?,?,?,?)",
            (self.component, user_id, person_name, json.dumps(sorted(roles)), salt, digest),
        )

    def disable(self, user_id: str, now: datetime) -> None:
        self.conn.execute(
            "UPDATE staff SET active = 0, disabled_at = ? WHERE component = ? AND user_id = ?",
            (now.isoformat(), self.component, user_id),
        )

    def authenticate(self, user_id: str, password: str) -> StaffSession:
        row = self.conn.execute(
            "SELECT person_name, roles, salt, password_hash, active FROM staff WHERE component = ? AND user_id = ?",
            (self.component, user_id),
        ).fetchone()
        supplied = hashlib.scrypt(password.encode(), salt=row[2] if row else b"0" * 16, **_SCRYPT)
        if row is None or not hmac.compare_digest(supplied, row[3]):
            raise Refusal(
                RefusalCode.NOT_AUTHENTICATED,
                component=self.component,
                control_id="AUTH-002",
                reason_ja="ユーザIDまたはパスワードが正しくありません",
                reason_en="unknown user ID or wrong password",
                field="user_id",
            )
        if not row[4]:
            raise Refusal(
                RefusalCode.ACCOUNT_DISABLED,
                component=self.component,
                control_id="AUTH-007",
                reason_ja="このアカウントは人事異動・退職等により使用停止されています",
                reason_en="this account was disabled (transfer, leave or retirement)",
                field="user_id",
            )
        return StaffSession(user_id, row[0], frozenset(json.loads(row[1])), self.component, secrets.token_hex(8))

    def require(self, session: StaffSession, role: str, control_id: str, what_ja: str, what_en: str) -> None:
        row = self.conn.execute(
            "SELECT roles, active FROM staff WHERE component = ? AND user_id = ?", (self.component, session.user_id)
        ).fetchone()
        if row is None or session.component != self.component:
            raise Refusal(
                RefusalCode.NOT_AUTHENTICATED,
                component=self.component,
                control_id=control_id,
                reason_ja="この端末で認証されたセッションではありません",
                reason_en="the session was not issued by this component",
                field="session",
            )
        if not row[1]:
            raise Refusal(
                RefusalCode.ACCOUNT_DISABLED,
                component=self.component,
                control_id="AUTH-007",
                reason_ja="このアカウントは使用停止されています",
                reason_en="this account has been disabled",
                field="session",
            )
        # Roles are read from the store, not the session, so a role removed mid-session stops working at once.
        if role not in json.loads(row[0]):
            raise Refusal(
                RefusalCode.ROLE_MISSING,
                component=self.component,
                control_id=control_id,
                reason_ja=f"{what_ja}を行う権限（{role}）がありません",
                reason_en=f"the user lacks the role {role!r} needed to {what_en}",
                field="role",
            )
