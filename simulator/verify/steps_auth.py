"""Step kinds for staff authentication, rights and logs (AUTH, LOG): logins at a terminal, account and rights
administration, log analysis, review and tamper checks.

Each step drives a component's staff directory and operation log through one command; the checks and decisions
live in simulator.components.staff and simulator.components.oplog. Two steps are deliberately out-of-band, as an
insider with database access would act: `inject_orphan` (an account created past the rights process) and
`tamper_log` (an edited audit row). They must never be used to make a control pass.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from simulator.components import oplog
from simulator.components.base import Component, Result
from simulator.components.staff import StaffDirectory, StaffSession, biometric_sample, sign_in
from simulator.controls.decision import Outcome
from simulator.verify.steps import ScenarioContext, StepError, StepRecord, _drive, step
from simulator.world import DEMO_PASSWORD


def _system(ctx: ScenarioContext, p: dict[str, Any]) -> tuple[Component, StaffDirectory]:
    """`municipality` (profile | provider | requester | key; default profile) and `system` (default registry)."""
    raw = str(p.get("municipality", "profile"))
    m = ctx.placeholders["profile"] if raw == "profile" else ctx.municipality(raw, ctx.provider)
    component = ctx.component(f"{m}.{p.get('system', 'registry')}")
    staff: StaffDirectory | None = getattr(component, "staff", None)
    if staff is None:
        raise StepError("system", f"{component.party} has no staff accounts")
    return component, staff


def _sample(staff: StaffDirectory, user: str, p: dict[str, Any]) -> str | None:
    """The finger or face at the sensor: `biometric_of` another user's person, or `none`; default the user's own."""
    modality = staff.policy.biometric
    whose = str(p.get("biometric_of", user))
    if modality is None or whose == "none":
        return None
    person = staff.person(whose) or whose
    return biometric_sample(modality, person)


@step("sign_in")
def _sign_in(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Staff login at a terminal (AUTH-002/003/004/007/008/009/012, LOG-006)."""
    component, staff = _system(ctx, p)
    user = str(p["user"])
    password = str(p.get("password", DEMO_PASSWORD))
    terminal = str(p.get("terminal", f"{user}-pc"))
    sample = _sample(staff, user, p)
    _drive(
        ctx,
        record,
        lambda now: sign_in(component, staff, user, password, now, terminal=terminal, biometric=sample),
    )


def _admin(ctx: ScenarioContext, staff: StaffDirectory, user: str) -> StaffSession:
    return ctx.session(staff, user)


def _command(ctx: ScenarioContext, record: StepRecord, component: Component, act: Any) -> None:
    _drive(ctx, record, lambda now: component.command(now, None, lambda result: act(result, now)))


@step("create_account")
def _create_account(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The 情報主管課 issues a user ID for one person (AUTH-001): `user`, `person_name`, `employee_id`, `roles`."""
    component, staff = _system(ctx, p)
    admin = _admin(ctx, staff, str(p.get("as", "joho-kacho")))
    user = str(p["user"])

    def act(result: Result, now: Any) -> None:
        staff.require(admin, "info_director", "AUTH-001", "ユーザIDの発行", "issue user IDs")
        # Where rights come only from applications, a new account starts with none (AUTH-010).
        roles = set() if staff.policy.rights_register else {str(r) for r in p.get("roles", [])}
        staff.add(
            user,
            str(p.get("person_name", "")),
            roles,
            str(p.get("password", DEMO_PASSWORD)),
            employee_id=str(p["employee_id"]) if p.get("employee_id") else None,
            now=now,
        )
        component.allow(
            result,
            "AUTH-001",
            now,
            "個人に1つのユーザIDを発行しました",
            "one user ID issued to one person",
            None,
            user=user,
            person=p.get("person_name"),
            employee_id=p.get("employee_id"),
        )

    _command(ctx, record, component, act)


@step("apply_right")
def _apply_right(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """所属長 applies for a right (`user`, `role`, `reason`, `kind`, `valid_days`, `from_days`); value: id."""
    component, staff = _system(ctx, p)
    applicant = _admin(ctx, staff, str(p.get("as", "dept-head")))

    def act(result: Result, now: Any) -> None:
        valid_to = (now + timedelta(days=float(p["valid_days"]))).date() if "valid_days" in p else None
        valid_from = (now + timedelta(days=float(p["from_days"]))).date() if "from_days" in p else None
        result.value = staff.apply(
            applicant,
            str(p["user"]),
            str(p.get("role", "registry_clerk")),
            str(p.get("reason", "")),
            now,
            kind=str(p.get("kind", "regular")),
            valid_from=valid_from,
            valid_to=valid_to,
        )

    _command(ctx, record, component, act)


@step("approve_right")
def _approve_right(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """情報主管課長 approves the application made in step `application` (or a literal id) (AUTH-010)."""
    component, staff = _system(ctx, p)
    approver = _admin(ctx, staff, str(p.get("as", "joho-kacho")))
    ref = str(p.get("application", ""))
    app_id = str(ctx.records[ref].value) if ref in ctx.records else (ref or uuid.uuid4().hex[:12])

    def act(result: Result, now: Any) -> None:
        granted = staff.approve(approver, app_id, now)
        component.allow(
            result,
            "AUTH-010",
            now,
            "所属長の申請を情報主管課長が承認し、権限を付与しました",
            "the 所属長's application was approved by the 情報主管課長; the right is granted",
            None,
            application_id=app_id,
            approver=approver.user_id,
            **granted,
        )
        result.value = granted

    _command(ctx, record, component, act)


@step("reconcile")
def _reconcile(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Reconcile the user-ID list with the rights register (AUTH-011): orphans are reported and disabled."""
    component, staff = _system(ctx, p)
    auditor = _admin(ctx, staff, str(p.get("as", "joho-kacho")))

    def act(result: Result, now: Any) -> None:
        orphans = staff.reconcile(auditor, now)
        if orphans:
            result.decisions.append(
                component.decide(
                    "AUTH-011",
                    Outcome.DENY,
                    now,
                    reason_ja=f"権限管理台帳にないユーザID・権限を{len(orphans)}件検出し、使用停止しました",
                    reason_en=f"{len(orphans)} ID(s) or right(s) not in the rights register: reported and disabled",
                    evidence={"orphans": orphans},
                    code="Auth.NoApprovedApplication",
                )
            )
        else:
            component.allow(
                result,
                "AUTH-011",
                now,
                "ユーザID一覧と権限管理台帳に差異はありません",
                "the user-ID list matches the rights register",
                None,
            )
        result.value = orphans

    _command(ctx, record, component, act)


@step("inject_orphan")
def _inject_orphan(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Out of band: an insider inserts an account with a role straight into the store, past any application."""
    component, staff = _system(ctx, p)
    user = str(p.get("user", "ghost"))
    staff.conn.execute(
        "INSERT INTO staff (component, user_id, person_name, employee_id, roles, salt, password_hash, active)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
        (component.party, user, "不明", f"emp:{user}", '["registry_clerk"]', secrets.token_bytes(16), b""),
    )
    staff.conn.commit()


@step("enrol_biometric")
def _enrol(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Enrol `user`'s face or finger, by `as` (AUTH-013)."""
    component, staff = _system(ctx, p)
    admin = _admin(ctx, staff, str(p.get("as", "joho-kacho")))
    user = str(p["user"])

    def act(result: Result, now: Any) -> None:
        sample = _sample(staff, user, p) or str(p.get("sample", ""))
        staff.enrol_biometric(admin, user, sample, now)
        component.allow(
            result,
            "AUTH-013",
            now,
            "情報主管課の管理者が生体情報を登録しました",
            "a 情報主管課 administrator enrolled the template",
            None,
            user=user,
            by=admin.user_id,
        )

    _command(ctx, record, component, act)


@step("read_templates")
def _read_templates(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Read or export the biometric template store, as `as` (AUTH-013)."""
    component, staff = _system(ctx, p)
    session = _admin(ctx, staff, str(p.get("as", "joho-kacho")))

    def act(result: Result, now: Any) -> None:
        result.value = staff.read_templates(session)
        component.allow(
            result,
            "AUTH-013",
            now,
            "生体情報の管理者が登録状況を参照しました",
            "the template administrator read the store",
            None,
            by=session.user_id,
            templates=len(result.value),
        )

    _command(ctx, record, component, act)


@step("change_password")
def _change_password(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A user changes their password at a system (AUTH-004; refused at a centrally authenticated one, AUTH-012)."""
    component, staff = _system(ctx, p)
    user = str(p["user"])

    def act(result: Result, now: Any) -> None:
        staff.change_password(user, str(p.get("old", DEMO_PASSWORD)), str(p["new"]), now)
        component.allow(
            result,
            "AUTH-004",
            now,
            "パスワードを変更しました（有効期間を更新）",
            "password changed; its age starts again",
            None,
            user=user,
        )

    _command(ctx, record, component, act)


@step("view_record")
def _view_record(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Open the single-person 住民票 detail (`user`, `person`, `purpose`; `terminal: none` for an unknown one)."""
    component, staff = _system(ctx, p)
    registry = ctx.world.registry(component.party.split(".")[0])
    session = ctx.session(staff, str(p.get("user", "clerk-a")))
    if str(p.get("terminal", "")) == "none":
        session = StaffSession(session.user_id, session.name, session.roles, session.component, session.session_id)
    person = p["_person"] or ctx.person(f"resident:{component.party.split('.')[0]}")
    purpose = p.get("purpose")
    _drive(
        ctx,
        record,
        lambda now: registry.resident_detail(
            session, str(person["resident_code"]), now, purpose=str(purpose) if purpose else None
        ),
    )


@step("view_many")
def _view_many(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """One user opens `count` different residents' detail views (normal work or a fishing expedition)."""
    component, staff = _system(ctx, p)
    m = component.party.split(".")[0]
    registry = ctx.world.registry(m)
    session = ctx.session(staff, str(p.get("user", "clerk-a")))
    active = [r for r in ctx.population.residents.get(m, []) if r["status"] == "active"]
    count = int(p.get("count", 1))
    if count > len(active):
        raise StepError("count", f"{m} has only {len(active)} active residents")
    purpose = str(p["purpose"]) if p.get("purpose") else None

    def view(code: str) -> Callable[[datetime], Result]:
        return lambda now: registry.resident_detail(session, code, now, purpose=purpose)

    for person in active[:count]:
        _drive(ctx, record, view(str(person["resident_code"])))


@step("batch_read")
def _batch_read(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A batch job reads residents' records under a responsible user (`responsible`, or `none`) (LOG-007)."""
    component, staff = _system(ctx, p)
    m = component.party.split(".")[0]
    registry = ctx.world.registry(m)
    who = str(p.get("responsible", "clerk-a"))
    session = None if who == "none" else ctx.session(staff, who)
    codes = [str(r["resident_code"]) for r in ctx.population.residents.get(m, [])[: int(p.get("count", 3))]]

    def act(result: Result, now: Any) -> None:
        rows = []
        for code in codes:
            oplog.log_operation(
                component,
                staff,
                result,
                session,
                now,
                function="batch_extract",
                target=code,
                purpose=str(p.get("purpose", "定期照合")),
            )
            rows.append(registry.resident(code))
        result.value = len(rows)

    _command(ctx, record, component, act)


@step("log_trace")
def _log_trace(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Analyse the access log by `person` (record) and/or `by_user` (LOG-003)."""
    component, staff = _system(ctx, p)
    session = _admin(ctx, staff, str(p.get("as", "joho-kacho")))
    person = p["_person"]
    target = str(person["resident_code"]) if person is not None else None
    by_user = str(p["by_user"]) if p.get("by_user") else None
    _drive(ctx, record, lambda now: oplog.trace(component, staff, session, now, record=target, user=by_user))


@step("log_review")
def _log_review(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The periodic review of the operation log over `days` (LOG-004)."""
    component, staff = _system(ctx, p)
    session = _admin(ctx, staff, str(p.get("as", "joho-kacho")))
    days = int(p.get("days", 7))
    _drive(ctx, record, lambda now: oplog.review_operations(component, staff, session, now, days=days))


@step("tamper_log")
def _tamper_log(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Out of band: someone with file access rewrites one access-log row (triggers dropped and restored)."""
    component, _ = _system(ctx, p)
    conn = component.conn
    row = conn.execute("SELECT seq FROM audit_trail WHERE kind = 'access' ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        raise StepError("tamper_log", "there is no access-log row to edit yet")
    sql = {
        name: text
        for name, text in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_trail'"
        )
    }
    for name in sql:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(
        "UPDATE audit_trail SET data = json_set(data, '$.user', ?) WHERE seq = ?",
        (str(p.get("user", "someone")), row[0]),
    )
    for text in sql.values():
        conn.execute(text)
    conn.commit()
    record.value = row[0]


@step("verify_log")
def _verify_log(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Recompute the audit trail's hash chain at a system (LOG-005)."""
    component, staff = _system(ctx, p)
    session = _admin(ctx, staff, str(p.get("as", "joho-kacho")))
    _drive(ctx, record, lambda now: oplog.verify_logs(component, staff, session, now))


@step("purge_server_log")
def _purge(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The retention batch over the purposed server log (LOG-002)."""
    component, staff = _system(ctx, p)
    _drive(ctx, record, lambda now: oplog.purge_server_log(component, staff, now))


@step("hr_disable")
def _hr_disable(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The HR feed disables `user` at a system the day of the event (AUTH-007; at 札幌's central service, AUTH-012)."""
    component, staff = _system(ctx, p)
    user = str(p["user"])

    def act(result: Result, now: Any) -> None:
        if staff.person(user) is None and staff.policy.central_authority != component.party:
            raise StepError("user", f"{component.party} has no user {user!r}")
        staff.disable(user, now)
        central = staff.policy.central_authority == component.party
        component.allow(
            result,
            "AUTH-012" if central else "AUTH-007",
            now,
            "統合認証基盤で使用停止しました（全業務システムに及びます）"
            if central
            else "人事異動によりアカウントを即日使用停止しました",
            "disabled at the central service (every business system)"
            if central
            else "the account was disabled on the day of the HR event",
            None,
            user=user,
        )

    _command(ctx, record, component, act)
