"""端末管理 (the terminal fleet) of one municipality: which terminal a member of staff logs in on, whether it is
registered, on which segment and to whom it belongs, its screen lock, camera, virtual desktop, external media,
個人番号 binding, software installs and the counter SaaS (TERM-001..007, with NET-001/003/007 at login).

The fleet decides and records; the login itself is the system's own staff check (simulator.components.staff).
It never stores screen content or business data on a terminal, and never reads the wall clock.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from simulator.components.base import Component, Directory, Result
from simulator.components.kept_refusal import deny_kept
from simulator.components.network import Network, TerminalSpec
from simulator.components.staff import StaffDirectory, StaffSession, sign_in
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import InputError, Refusal, RefusalCode
from simulator.store.db import transaction

__all__ = ["TerminalFleet"]

_DDL = """
CREATE TABLE IF NOT EXISTS term_sessions (
    session_id TEXT PRIMARY KEY, municipality TEXT NOT NULL, terminal TEXT NOT NULL, system TEXT NOT NULL,
    user_id TEXT NOT NULL, opened_at TEXT NOT NULL, last_activity TEXT NOT NULL, locked_at TEXT, closed_at TEXT);
CREATE TABLE IF NOT EXISTS term_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, municipality TEXT NOT NULL, at TEXT NOT NULL, terminal TEXT NOT NULL,
    user_id TEXT, event TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS term_media (
    municipality TEXT NOT NULL, media_id TEXT NOT NULL, approved_by TEXT NOT NULL, approved_at TEXT NOT NULL,
    PRIMARY KEY (municipality, media_id));
CREATE TABLE IF NOT EXISTS term_copy_permissions (
    permission_id TEXT PRIMARY KEY, municipality TEXT NOT NULL, media_id TEXT NOT NULL, user_id TEXT NOT NULL,
    granted_by TEXT NOT NULL, granted_at TEXT NOT NULL, used_at TEXT);
CREATE TABLE IF NOT EXISTS term_install_requests (
    request_id TEXT PRIMARY KEY, municipality TEXT NOT NULL, terminal TEXT NOT NULL, package TEXT NOT NULL,
    applicant TEXT NOT NULL, applied_at TEXT NOT NULL, approved_by TEXT, approved_at TEXT, installed_at TEXT);
CREATE TABLE IF NOT EXISTS term_local_files (
    municipality TEXT NOT NULL, terminal TEXT NOT NULL, name TEXT NOT NULL, written_at TEXT NOT NULL);
"""


class TerminalFleet(Component):
    name_ja = "端末管理"
    name_en = "terminal fleet"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        municipality: str,
        network: Network,
        systems: Mapping[str, Component],
        approvers: StaffDirectory,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.municipality = municipality
        self.network = network
        self.systems = dict(systems)  # party id → component staff log in to from a terminal
        self.approvers = approvers  # where the 情報主管課長 and 所属長 hold their roles
        self.data = network.data
        conn.executescript(_DDL)

    # -- login ------------------------------------------------------------------------------------------

    def login(
        self,
        terminal: str,
        mac: str | None,
        system: str,
        user: str,
        password: str,
        now: datetime,
        *,
        biometric: str | None = None,
        port: int = 443,
    ) -> Result:
        """Staff login on a terminal: the terminal is registered, not cloned, not revoked, the user's, and on a
        segment with a route to the system; only then the system's own staff login. Every refusal is logged."""
        component = self.systems.get(system)
        staff: StaffDirectory | None = getattr(component, "staff", None)
        if component is None or staff is None:
            raise InputError("system", f"{system!r} is no system with staff accounts in {self.municipality}")

        def check(result: Result) -> None:
            spec = self._registered(terminal, mac)
            if user not in spec.users:
                raise self.refuse(
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "NET-003",
                    f"{user} は端末 {terminal} の利用者として登録されていません（端末の不正利用）",
                    f"{user} is not a registered user of terminal {terminal}",
                    field="user",
                )
            self.network.check_flow(
                result, self.network.endpoint(terminal), self.network.endpoint(system), port, now
            )
            self.allow(
                result,
                "NET-003",
                now,
                f"登録済み端末 {terminal}（{spec.department}）の識別情報を確認しました",
                f"terminal {terminal} is registered and presented its own identity",
                terminal=terminal,
                segment=spec.segment,
                user=user,
            )
            if spec.remote:
                self.allow(
                    result,
                    "NET-007",
                    now,
                    f"登録済み機器 {terminal} が暗号化閉域回線で接続しました",
                    f"the registered device {terminal} connected over the encrypted closed line",
                    terminal=terminal,
                )

        result = self.command(now, None, check)
        if result.refusal is not None:
            self._event(terminal, user, "login", "refused", f"{result.refusal.code}: {result.refusal.reason_en}", now)
            return result
        signed = sign_in(component, staff, user, password, now, terminal=terminal, biometric=biometric)
        result.extend(signed)
        if signed.refusal is not None:
            self._event(terminal, user, "login", "refused", f"{signed.refusal.code}: {signed.refusal.reason_en}", now)
            return result
        session_id = uuid.uuid4().hex[:12]
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO term_sessions (session_id, municipality, terminal, system, user_id, opened_at,"
                " last_activity) VALUES (?,?,?,?,?,?,?)",
                (session_id, self.municipality, terminal, system, user, now.isoformat(), now.isoformat()),
            )
        self._event(terminal, user, "login", "ok", system, now)
        result.value = session_id
        return result

    def _registered(self, terminal: str, mac: str | None) -> TerminalSpec:
        found = self.network.terminal(terminal)
        if found is None:
            raise self.refuse(
                RefusalCode.SYSTEM_NOT_REGISTERED,
                "NET-003",
                f"端末 {terminal} は登録されていません（なりすまし・持込端末）",
                f"terminal {terminal} is not registered",
                field="terminal",
            )
        spec, revoked_at = found
        self.network.require_not_revoked(terminal, revoked_at)
        if mac is not None and mac.lower() != spec.mac:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "NET-003",
                f"端末 {terminal} の登録MACアドレスと一致しません（識別情報の複製）",
                f"terminal {terminal} presented MAC {mac}, not its registered address (a cloned identity)",
                field="mac",
            )
        return spec

    # -- TERM-001: screen lock ---------------------------------------------------------------------------

    def view(self, session_id: str, what: str, now: datetime, *, my_number: bool = False) -> Result:
        """Show a record on the terminal's screen; an idle screen locks first and then shows nothing.
        With ``my_number`` it is a 個人番号 function, which the 個人番号 binding governs (TERM-006)."""

        def act(result: Result) -> None:
            row = self._session(session_id)
            terminal, system, user, last, locked = row
            lock = self.data.screen_lock
            if lock is not None and locked is None and now - datetime.fromisoformat(last) >= timedelta(
                minutes=lock.minutes
            ):
                locked = now.isoformat()
                self.conn.execute("UPDATE term_sessions SET locked_at = ? WHERE session_id = ?", (locked, session_id))
                result.decisions.append(
                    self.decide(
                        "TERM-001",
                        Outcome.HOLD,
                        now,
                        reason_ja=f"{lock.minutes}分間操作がなかったため画面をロックしました",
                        reason_en=f"no input for {lock.minutes} minutes: the screen locked",
                        evidence={"terminal": terminal, "user": user, "idle_since": last},
                    )
                )
            if locked is not None:
                deny_kept(
                    self,
                    result,
                    RefusalCode.NOT_AUTHENTICATED,
                    "TERM-001",
                    now,
                    "画面ロック中のため表示しません。解除には再認証が必要です",
                    "the screen is locked: nothing is shown until the user re-authenticates",
                    field="session",
                    terminal=terminal,
                )
                return
            if my_number and self.data.number_binding is not None:
                spec = self._spec(terminal)
                if user not in spec.number_users:
                    raise self.refuse(
                        RefusalCode.SOURCE_NOT_ALLOWED,
                        "TERM-006",
                        f"{user} はこの端末（{terminal}）では個人番号を取り扱えません",
                        f"{user} may not handle 個人番号 on terminal {terminal}",
                        field="terminal",
                    )
                self.allow(
                    result,
                    "TERM-006",
                    now,
                    f"{user} の個人番号利用端末（{terminal}）です",
                    f"{terminal} is a terminal where {user} may handle 個人番号",
                    terminal=terminal,
                    user=user,
                )
            self.conn.execute(
                "UPDATE term_sessions SET last_activity = ? WHERE session_id = ?", (now.isoformat(), session_id)
            )
            result.value = {"terminal": terminal, "system": system, "shown": what}

        return self.command(now, None, act)

    def unlock(self, session_id: str, user: str, password: str, now: datetime, *, biometric: str | None) -> Result:
        """Unlock a locked screen: only the session's own user, re-authenticated by the system's staff check."""

        def act(result: Result) -> None:
            terminal, system, owner, _, locked = self._session(session_id)
            staff = self._staff(system)
            lock = self.data.screen_lock
            if lock is not None and lock.unlock == "biometric" and biometric is None:
                raise self.refuse(
                    RefusalCode.BIOMETRIC_MISMATCH,
                    "TERM-001",
                    "画面ロックの解除には生体認証が必要です",
                    "unlocking the screen needs the biometric factor",
                    field="biometric",
                )
            try:
                session = staff.authenticate(user, password, now=now, biometric=biometric, terminal=terminal)
            except Refusal as refusal:
                raise self.refuse(
                    RefusalCode.NOT_AUTHENTICATED,
                    "TERM-001",
                    f"画面ロックの解除認証に失敗しました（{refusal.reason_ja}）",
                    f"unlock refused: {refusal.reason_en}",
                    field="credential",
                ) from None
            if session.user_id != owner:
                raise self.refuse(
                    RefusalCode.NOT_AUTHENTICATED,
                    "TERM-001",
                    f"画面ロックは利用中の職員（{owner}）本人しか解除できません（{user} による解除は拒否）",
                    f"only {owner}, whose session it is, can unlock it; {user} was refused",
                    field="user",
                )
            self.conn.execute(
                "UPDATE term_sessions SET locked_at = NULL, last_activity = ? WHERE session_id = ?",
                (now.isoformat(), session_id),
            )
            self.allow(
                result,
                "TERM-001",
                now,
                "本人の再認証により画面ロックを解除しました",
                "the user re-authenticated and the session resumed",
                terminal=terminal,
                user=user,
                was_locked=locked is not None,
            )

        return self.command(now, None, act)

    # -- TERM-002: shoulder-surfing camera --------------------------------------------------------------

    def camera(self, session_id: str, faces: int, now: datetime) -> Result:
        if self.data.camera is None:
            raise InputError("camera", f"{self.municipality} claims no peeping camera (TERM-002)")

        def act(result: Result) -> None:
            terminal, _, user, _, _ = self._session(session_id)
            if faces > 1:
                self.conn.execute(
                    "UPDATE term_sessions SET locked_at = ? WHERE session_id = ?", (now.isoformat(), session_id)
                )
                self.conn.execute(
                    "INSERT INTO term_events (municipality, at, terminal, user_id, event, outcome, detail)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (self.municipality, now.isoformat(), terminal, user, "peeping", "blanked", f"{faces} faces"),
                )
                deny_kept(
                    self,
                    result,
                    RefusalCode.STATE_CONFLICT,
                    "TERM-002",
                    now,
                    f"カメラが{faces}人の顔を検知しました。覗き込みとして画面を隠し、記録しました",
                    f"the camera saw {faces} faces: the screen was blanked and the event logged",
                    field="faces",
                    terminal=terminal,
                )
                return
            self.allow(
                result,
                "TERM-002",
                now,
                "操作者1名のみを検知しました",
                "one operator in view: normal operation",
                terminal=terminal,
            )

        return self.command(now, None, act)

    # -- TERM-003: virtual desktop only -----------------------------------------------------------------

    def save(self, session_id: str, name: str, target: str, now: datetime) -> Result:
        """Save a document: on the virtual desktop (the data centre), or to the terminal's own disk."""
        if target not in ("vdi", "local"):
            raise InputError("target", "must be vdi or local")

        def act(result: Result) -> None:
            terminal, _, user, _, _ = self._session(session_id)
            spec = self._spec(terminal)
            if target == "local" and spec.vdi:
                raise self.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED,
                    "TERM-003",
                    "業務システム用端末は本体にデータを保存できません（仮想端末）",
                    "a business terminal cannot store data locally: it shows a virtual desktop only",
                    field="target",
                )
            if target == "local":
                self.conn.execute(
                    "INSERT INTO term_local_files VALUES (?,?,?,?)", (self.municipality, terminal, name, now.isoformat())
                )
                return
            self.allow(
                result,
                "TERM-003",
                now,
                "仮想デスクトップ上に保存しました（端末本体には何も残りません）",
                "saved on the virtual desktop; nothing is written to the terminal",
                terminal=terminal,
                user=user,
            )

        return self.command(now, None, act)

    def local_files(self, terminal: str) -> list[str]:
        """What a forensic read of the terminal's own disk finds."""
        return [
            str(n)
            for (n,) in self.conn.execute(
                "SELECT name FROM term_local_files WHERE municipality = ? AND terminal = ?",
                (self.municipality, terminal),
            )
        ]

    # -- TERM-004: external media -----------------------------------------------------------------------

    def approve_media(self, approver: StaffSession, media_id: str, now: datetime) -> Result:
        media = self.data.media
        if media is None:
            raise InputError("media", f"{self.municipality} claims no media control (TERM-004)")

        def act(result: Result) -> None:
            self.approvers.require(approver, media.approver_role, "TERM-004", "外部媒体の許可", "approve a medium")
            self.conn.execute(
                "INSERT OR REPLACE INTO term_media VALUES (?,?,?,?)",
                (self.municipality, media_id, approver.user_id, now.isoformat()),
            )

        return self.command(now, None, act)

    def grant_copy(self, approver: StaffSession, media_id: str, user: str, now: datetime) -> Result:
        media = self.data.media
        if media is None:
            raise InputError("media", f"{self.municipality} claims no media control (TERM-004)")

        def act(result: Result) -> None:
            self.approvers.require(approver, media.approver_role, "TERM-004", "媒体への複製の許可", "permit a copy")
            permission = uuid.uuid4().hex[:12]
            self.conn.execute(
                "INSERT INTO term_copy_permissions VALUES (?,?,?,?,?,?,NULL)",
                (permission, self.municipality, media_id, user, approver.user_id, now.isoformat()),
            )
            result.value = permission

        return self.command(now, None, act)

    def mount(self, session_id: str, media_id: str, now: datetime) -> Result:
        """Connect an external medium: only one the 情報主管課長 approved; every attempt is logged."""

        def act(result: Result) -> None:
            terminal, _, user, _, _ = self._session(session_id)
            approved = self.conn.execute(
                "SELECT approved_by FROM term_media WHERE municipality = ? AND media_id = ?",
                (self.municipality, media_id),
            ).fetchone()
            self.conn.execute(
                "INSERT INTO term_events (municipality, at, terminal, user_id, event, outcome, detail)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    self.municipality,
                    now.isoformat(),
                    terminal,
                    user,
                    "media.mount",
                    "mounted" if approved else "blocked",
                    media_id,
                ),
            )
            if approved is None:
                deny_kept(
                    self,
                    result,
                    RefusalCode.SYSTEM_NOT_REGISTERED,
                    "TERM-004",
                    now,
                    f"許可されていない外部媒体（{media_id}）は接続できません。記録しました",
                    f"medium {media_id} is not approved: blocked and logged",
                    field="media",
                    terminal=terminal,
                    user=user,
                )
                return
            self.allow(
                result,
                "TERM-004",
                now,
                f"情報主管課長が許可した媒体 {media_id} を接続し、記録しました",
                f"approved medium {media_id} mounted and logged",
                terminal=terminal,
                user=user,
                approved_by=approved[0],
            )

        return self.command(now, None, act)

    def copy_to_media(self, session_id: str, media_id: str, what: str, now: datetime) -> Result:
        """Copy data to a mounted medium: each copy needs its own unused permission."""

        def act(result: Result) -> None:
            terminal, _, user, _, _ = self._session(session_id)
            permission = self.conn.execute(
                "SELECT permission_id FROM term_copy_permissions WHERE municipality = ? AND media_id = ?"
                " AND user_id = ? AND used_at IS NULL ORDER BY granted_at LIMIT 1",
                (self.municipality, media_id, user),
            ).fetchone()
            if permission is None:
                raise self.refuse(
                    RefusalCode.NO_APPROVED_APPLICATION,
                    "TERM-004",
                    f"外部媒体への複製（{what}）には都度の許可が必要です",
                    f"copying {what} to a medium needs a per-use permission",
                    field="permission",
                )
            self.conn.execute(
                "UPDATE term_copy_permissions SET used_at = ? WHERE permission_id = ?", (now.isoformat(), permission[0])
            )
            self.allow(
                result,
                "TERM-004",
                now,
                f"許可（{permission[0]}）に基づき {what} を媒体 {media_id} に複製し、記録しました",
                f"copied {what} to {media_id} under permission {permission[0]}",
                terminal=terminal,
                user=user,
            )

        return self.command(now, None, act)

    # -- TERM-005: the counter SaaS from registered terminals only ---------------------------------------

    def open_saas(self, terminal: str, service: str, now: datetime) -> Result:
        saas = self.data.saas
        if saas is None:
            raise InputError("saas", f"{self.municipality} claims no terminal-limited SaaS (TERM-005)")

        def act(result: Result) -> None:
            if service not in saas.services:
                raise InputError("service", f"unknown service {service!r}; known: {saas.services}")
            found = self.network.terminal(terminal)
            spec = found[0] if found else None
            if spec is None or not spec.city_issued or spec.segment != saas.segment or found[1] is not None:  # type: ignore[index]
                where = spec.segment if spec else "未登録"
                raise self.refuse(
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "TERM-005",
                    f"{service} は市が配布したマイナンバー系の端末からのみ利用できます（{terminal}: {where}）",
                    f"{service} opens only on a city-issued terminal in {saas.segment}; {terminal} is {where}",
                    field="terminal",
                )
            self.allow(
                result,
                "TERM-005",
                now,
                f"登録済みのマイナンバー系端末 {terminal} から {service} を開きました",
                f"{service} opened from the registered terminal {terminal}",
                terminal=terminal,
            )

        return self.command(now, None, act)

    # -- TERM-007: software only on an approved request -------------------------------------------------

    def request_install(self, terminal: str, package: str, applicant: str, now: datetime) -> Result:
        def act(result: Result) -> None:
            self._spec(terminal)
            request_id = uuid.uuid4().hex[:12]
            self.conn.execute(
                "INSERT INTO term_install_requests (request_id, municipality, terminal, package, applicant,"
                " applied_at) VALUES (?,?,?,?,?,?)",
                (request_id, self.municipality, terminal, package, applicant, now.isoformat()),
            )
            result.value = request_id

        return self.command(now, None, act)

    def approve_install(self, approver: StaffSession, request_id: str, now: datetime) -> Result:
        install = self.data.install_approval
        if install is None:
            raise InputError("install_approval", f"{self.municipality} claims no install approval (TERM-007)")

        def act(result: Result) -> None:
            self.approvers.require(approver, install.approver_role, "TERM-007", "ソフトウェア導入の承認", "approve")
            self.conn.execute(
                "UPDATE term_install_requests SET approved_by = ?, approved_at = ? WHERE request_id = ?",
                (approver.user_id, now.isoformat(), request_id),
            )

        return self.command(now, None, act)

    def install(self, terminal: str, package: str, now: datetime) -> Result:
        """Run an installer: the allow-list is the approved requests for this terminal and package."""

        def act(result: Result) -> None:
            self._spec(terminal)
            row = self.conn.execute(
                "SELECT request_id, approved_by FROM term_install_requests WHERE municipality = ? AND terminal = ?"
                " AND package = ? AND approved_by IS NOT NULL AND installed_at IS NULL",
                (self.municipality, terminal, package),
            ).fetchone()
            if row is None:
                raise self.refuse(
                    RefusalCode.NO_APPROVED_APPLICATION,
                    "TERM-007",
                    f"{package} の導入は承認された申請がないため拒否しました",
                    f"installing {package} on {terminal} was blocked: no approved request",
                    field="package",
                )
            self.conn.execute(
                "UPDATE term_install_requests SET installed_at = ? WHERE request_id = ?", (now.isoformat(), row[0])
            )
            self.allow(
                result,
                "TERM-007",
                now,
                f"承認済み申請（{row[0]}）に基づき {package} を導入しました",
                f"{package} installed under approved request {row[0]}",
                terminal=terminal,
                approved_by=row[1],
            )

        result = self.command(now, None, act)
        if result.refusal is not None:
            self._event(terminal, None, "install", "blocked", package, now)
        return result

    # -- helpers ----------------------------------------------------------------------------------------

    def _session(self, session_id: str) -> tuple[str, str, str, str, str | None]:
        row = self.conn.execute(
            "SELECT terminal, system, user_id, last_activity, locked_at FROM term_sessions"
            " WHERE session_id = ? AND municipality = ? AND closed_at IS NULL",
            (session_id, self.municipality),
        ).fetchone()
        if row is None:
            raise InputError("session", f"no open terminal session {session_id!r}")
        return str(row[0]), str(row[1]), str(row[2]), str(row[3]), row[4]

    def _spec(self, terminal: str) -> TerminalSpec:
        found = self.network.terminal(terminal)
        if found is None:
            raise self.refuse(
                RefusalCode.SYSTEM_NOT_REGISTERED,
                "NET-003",
                f"端末 {terminal} は登録されていません",
                f"terminal {terminal} is not registered",
                field="terminal",
            )
        return found[0]

    def _staff(self, system: str) -> StaffDirectory:
        staff: StaffDirectory | None = getattr(self.systems.get(system), "staff", None)
        if staff is None:
            raise InputError("system", f"{system!r} has no staff accounts")
        return staff

    def _event(self, terminal: str, user: str | None, event: str, outcome: str, detail: str, now: datetime) -> None:
        """One terminal event in ``term_events`` and, when something was refused, in the audit chain too."""
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO term_events (municipality, at, terminal, user_id, event, outcome, detail)"
                " VALUES (?,?,?,?,?,?,?)",
                (self.municipality, now.isoformat(), terminal, user, event, outcome, detail),
            )
            if outcome != "ok":
                self.audit.append(
                    at=now.isoformat(),
                    kind=f"terminal.{event}.{outcome}",
                    data={"terminal": terminal, "user": user, "detail": detail},
                )

    def events(self) -> list[dict[str, Any]]:
        keys = ("at", "terminal", "user_id", "event", "outcome", "detail")
        return [
            dict(zip(keys, r, strict=True))
            for r in self.conn.execute(
                "SELECT at, terminal, user_id, event, outcome, detail FROM term_events WHERE municipality = ?"
                " ORDER BY seq",
                (self.municipality,),
            )
        ]
