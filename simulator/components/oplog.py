"""操作ログ・アクセスログ (operation and access logs) on 特定個人情報, their analysis and review.

Every staff operation on a person's record writes an entry {user, terminal, time, function, target, purpose} into
the component's hash-chained audit trail (LOG-001, LOG-007), and where the profile asks, a purposed server log
kept for a fixed number of years (LOG-002). Logs can be queried by record and by user (LOG-003), reviewed for
suspicious searches (LOG-004) and checked for tampering (LOG-005). Hubs (住基GW, 個人基本) write a 情報連携記録
for every message they carry and reconcile it with what their peers received (LOG-008). This module must never
let an operation go ahead without its entry, and never edits the chained trail.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from simulator.components.base import Component, Result
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.controls.decision import Outcome
from simulator.errors import Refusal, RefusalCode
from simulator.model.envelope import Envelope
from simulator.store.chain import verify_chain

__all__ = [
    "EXCHANGE_RECORD",
    "access_entries",
    "log_operation",
    "purge_server_log",
    "reconcile_exchanges",
    "record_exchange",
    "review_operations",
    "verify_logs",
]


#: LOG-004 rule: distinct persons one user opened in the review window that flag the user for investigation.
DISTINCT_PERSONS_FLAG = 20
#: LOG-004 rule: operations outside 7:00–21:00 are suspicious.
OFFICE_HOURS = (7, 21)
#: LOG-008: the audit-trail kind of a hub's 情報連携記録.
EXCHANGE_RECORD = "linkage.exchange"


def _refuse(component: Component, code: RefusalCode, control: str, ja: str, en: str, field: str) -> Refusal:
    return component.refuse(code, control, ja, en, field)


def log_operation(
    component: Component,
    staff: StaffDirectory,
    result: Result,
    session: StaffSession | None,
    now: datetime,
    *,
    function: str,
    target: str | None,
    purpose: str | None = None,
) -> None:
    """Write the entry for one operation on 特定個人情報 before it is done, or refuse the operation."""
    if session is None or not session.user_id:
        raise _refuse(
            component,
            RefusalCode.LOG_INCOMPLETE,
            "LOG-007",
            "操作者を特定できない操作（責任者のないバッチ等）は実行できません",
            "an operation with no identifiable operator (e.g. a batch with no responsible user) is refused",
            "operator",
        )
    if not session.terminal:
        raise _refuse(
            component,
            RefusalCode.LOG_INCOMPLETE,
            "LOG-001",
            "端末を特定できないため操作ログを記録できず、操作を実行しません",
            "the terminal is unknown, so the operation cannot be logged and is refused",
            "terminal",
        )
    policy = staff.policy
    if policy.purpose_required and not (purpose or "").strip():
        raise _refuse(
            component,
            RefusalCode.FIELD_MISSING,
            "LOG-002",
            "利用目的の入力は必須です（サーバーログに「何の目的で」を記録します）",
            "a purpose is mandatory: the server log records what each operation was for",
            "purpose",
        )
    entry = {
        "user": session.user_id,
        "terminal": session.terminal,
        "function": function,
        "target": target,
        "purpose": purpose,
    }
    component.audit.append(at=now.isoformat(), kind="access", data=entry)
    component.allow(
        result,
        "LOG-001",
        now,
        "操作ログを記録しました（利用者・端末・日時・機能・対象）",
        "operation logged (user, terminal, time, function, target)",
        None,
        **entry,
    )
    component.allow(
        result,
        "LOG-007",
        now,
        "ログに操作者の個人IDを記録しました",
        "the log entry names the operator's personal ID",
        None,
        user=session.user_id,
    )
    if policy.server_log_years:
        component.conn.execute(
            "INSERT INTO staff_server_log (component, at, user_id, terminal, function, target, purpose)"
            " VALUES (?,?,?,?,?,?,?)",
            (component.party, now.isoformat(), session.user_id, session.terminal, function, target, purpose or ""),
        )
        component.allow(
            result,
            "LOG-002",
            now,
            f"サーバーログに「いつ・誰が・何の目的で」を記録しました（目的: {purpose}）",
            f"server log records when, who and for what purpose (purpose: {purpose})",
            None,
            user=session.user_id,
            purpose=purpose,
            keep_years=policy.server_log_years,
        )


def access_entries(component: Component, *, record: str | None = None, user: str | None = None) -> list[dict[str, Any]]:
    """Access-log entries touching a record, or made by a user (LOG-003)."""
    sql = "SELECT seq, at, data FROM audit_trail WHERE kind = 'access'"
    params: list[Any] = []
    if record is not None:
        sql += " AND json_extract(data, '$.target') = ?"
        params.append(record)
    if user is not None:
        sql += " AND json_extract(data, '$.user') = ?"
        params.append(user)
    return [{"seq": s, "at": at, **json.loads(d)} for s, at, d in component.conn.execute(sql + " ORDER BY seq", params)]


def trace(
    component: Component,
    staff: StaffDirectory,
    session: StaffSession,
    now: datetime,
    *,
    record: str | None = None,
    user: str | None = None,
) -> Result:
    """Log analysis by an auditor: who touched a record, or what a user touched (LOG-003). Value: the entries."""

    def act(result: Result) -> None:
        staff.require(session, "log_auditor", "LOG-003", "ログの解析", "analyse logs")
        if record is None and user is None:
            raise _refuse(
                component,
                RefusalCode.SEARCH_TOO_BROAD,
                "LOG-003",
                "ログの解析は記録（対象者）または利用者を指定して行います",
                "a log analysis names a record or a user",
                "record",
            )
        entries = access_entries(component, record=record, user=user)
        users = sorted({e["user"] for e in entries})
        records = sorted({str(e["target"]) for e in entries if e.get("target")})
        component.allow(
            result,
            "LOG-003",
            now,
            f"ログを解析しました（{len(entries)}件、利用者{len(users)}名）",
            f"logs analysed: {len(entries)} entries, {len(users)} users",
            None,
            record=record,
            user=user,
            users=users,
            records=records[:50],
        )
        result.value = {"entries": entries, "users": users, "records": records}

    return component.command(now, None, act)


def review_operations(
    component: Component,
    staff: StaffDirectory,
    session: StaffSession,
    now: datetime,
    *,
    days: int = 7,
) -> Result:
    """Periodic review of the operation log (LOG-004): flag bulk or out-of-hours person lookups, open cases."""

    def act(result: Result) -> None:
        staff.require(session, "log_auditor", "LOG-004", "操作ログの点検", "review operation logs")
        since = (now - timedelta(days=days)).isoformat()
        persons: dict[str, set[str]] = {}
        late: dict[str, int] = {}
        for _, at, data in component.conn.execute(
            "SELECT seq, at, data FROM audit_trail WHERE kind = 'access' AND at >= ?", (since,)
        ):
            entry = json.loads(data)
            if not entry.get("target"):
                continue
            persons.setdefault(entry["user"], set()).add(str(entry["target"]))
            hour = datetime.fromisoformat(at).hour
            if not OFFICE_HOURS[0] <= hour < OFFICE_HOURS[1]:
                late[entry["user"]] = late.get(entry["user"], 0) + 1
        flagged = []
        for user_id, targets in sorted(persons.items()):
            if len(targets) >= DISTINCT_PERSONS_FLAG:
                flagged.append((user_id, "bulk", f"{len(targets)} persons in {days} days"))
        for user_id, count in sorted(late.items()):
            flagged.append((user_id, "out_of_hours", f"{count} operations outside office hours"))
        for user_id, rule, detail in flagged:
            component.conn.execute(
                "INSERT INTO staff_review_cases (component, opened_at, user_id, rule, detail, status)"
                " VALUES (?,?,?,?,?,'open')",
                (component.party, now.isoformat(), user_id, rule, detail),
            )
        if flagged:
            result.decisions.append(
                component.decide(
                    "LOG-004",
                    Outcome.HOLD,
                    now,
                    reason_ja=f"不審な操作を検出し調査案件を{len(flagged)}件起票しました（申請書との突合が必要）",
                    reason_en=f"{len(flagged)} suspicious operation pattern(s) flagged; cases opened for reconciliation "
                    "with the application forms",
                    evidence={"cases": [{"user": u, "rule": r, "detail": d} for u, r, d in flagged], "days": days},
                )
            )
        else:
            component.allow(
                result,
                "LOG-004",
                now,
                f"過去{days}日の操作ログに不審な操作はありません",
                f"no suspicious operations in the last {days} days",
                None,
                users=len(persons),
            )
        result.value = flagged

    return component.command(now, None, act)


def verify_logs(component: Component, staff: StaffDirectory, session: StaffSession, now: datetime) -> Result:
    """Recompute the audit trail's hash chain (LOG-005). A break is reported as a deny naming the row."""

    def act(result: Result) -> None:
        staff.require(session, "log_auditor", "LOG-005", "ログの改ざん検査", "verify the logs")
        breaks = verify_chain(component.conn, "audit_trail")
        if breaks:
            raise _refuse(
                component,
                RefusalCode.LOG_TAMPERED,
                "LOG-005",
                f"ログの改ざんを検出しました（{breaks[0].describe()}）",
                f"the log was tampered with: {'; '.join(b.describe() for b in breaks[:3])}",
                "audit_trail",
            )
        rows = component.conn.execute("SELECT COUNT(*) FROM audit_trail").fetchone()[0]
        component.allow(
            result,
            "LOG-005",
            now,
            f"ログのハッシュ連鎖を検証しました（{rows}件、改ざんなし）",
            f"the log's hash chain verified ({rows} rows, intact)",
            None,
            rows=rows,
        )

    return component.command(now, None, act)


def purge_server_log(component: Component, staff: StaffDirectory, now: datetime) -> Result:
    """Retention batch for the purposed server log (LOG-002): rows older than the kept years are removed."""

    def act(result: Result) -> None:
        years = staff.policy.server_log_years
        if not years:
            return
        cutoff = now.replace(year=now.year - years).isoformat()
        gone = component.conn.execute(
            "DELETE FROM staff_server_log WHERE component = ? AND at < ?", (component.party, cutoff)
        ).rowcount
        kept = component.conn.execute(
            "SELECT COUNT(*) FROM staff_server_log WHERE component = ?", (component.party,)
        ).fetchone()[0]
        component.allow(
            result,
            "LOG-002",
            now,
            f"保存期間{years}年を過ぎたサーバーログ{gone}件を削除しました",
            f"purged {gone} server-log rows older than {years} years; {kept} kept",
            None,
            purged=gone,
            kept=kept,
            cutoff=cutoff,
        )
        result.value = {"purged": gone, "kept": kept}

    return component.command(now, None, act)


def mask_my_number(
    component: Component,
    staff: StaffDirectory,
    result: Result,
    session: StaffSession,
    record: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """個人番号 only for holders of the distinct 個人番号利用権限; everyone else sees it masked (AUTH-006)."""
    if "my_number" not in record:
        return record
    if staff.has_role(session, "my_number_access"):
        component.allow(
            result,
            "AUTH-006",
            now,
            "個人番号利用権限を確認し、個人番号を表示しました",
            "the 個人番号 permission was checked; the number is shown",
            None,
            user=session.user_id,
        )
        return record
    result.decisions.append(
        component.decide(
            "AUTH-006",
            Outcome.DENY,
            now,
            reason_ja="個人番号利用権限がないため、個人番号を「************」でマスクして表示しました",
            reason_en="no 個人番号 permission: the number is masked as ************",
            evidence={"user": session.user_id, "field": "my_number", "masked": True},
            code=str(RefusalCode.ROLE_MISSING),
        )
    )
    return {**record, "my_number": "************"}


def record_exchange(
    component: Component,
    sent: Envelope,
    now: datetime,
    *,
    source: str,
    person_key: str | None,
    outcome: str,
) -> None:
    """情報連携記録 (LOG-008): what a hub writes for each message it carries on, beside the send itself:
    {hub, source, destination, message type, person key, time, result, message id}."""
    component.audit.append(
        at=now.isoformat(),
        kind=EXCHANGE_RECORD,
        correlation_id=sent.correlation_id,
        data={
            "hub": component.party,
            "source": source,
            "destination": sent.recipient,
            "message_type": str(sent.type),
            "person_key": person_key,
            "result": outcome,
            "message_id": sent.id,
        },
    )


def reconcile_exchanges(component: Component, now: datetime) -> Result:
    """The count reconciliation of a hub's 情報連携記録 (LOG-008, as GW-003 does for the relay): every message
    the hub's peers received from it must have its record at the hub, and every record a receipt. A hub's
    peers are in its own organisation, so their receipts (``message.in``) are in the same store."""

    def act(result: Result) -> None:
        recorded: dict[str, dict[str, Any]] = {}
        for (data,) in component.conn.execute(
            "SELECT data FROM audit_trail WHERE kind = ? AND json_extract(data, '$.hub') = ?",
            (EXCHANGE_RECORD, component.party),
        ):
            entry = json.loads(data)
            recorded[str(entry["message_id"])] = entry
        received: dict[str, str] = {
            str(message_id): str(message_type)
            for message_id, message_type in component.conn.execute(
                "SELECT json_extract(data, '$.id'), json_extract(data, '$.type') FROM audit_trail"
                " WHERE kind = 'message.in' AND json_extract(data, '$.from') = ?",
                (component.party,),
            )
        }
        unrecorded = sorted(f"{received[m]}:{m}" for m in received.keys() - recorded.keys())
        undelivered = sorted(f"{recorded[m]['message_type']}:{m}" for m in recorded.keys() - received.keys())
        evidence = {
            "records": len(recorded),
            "received": len(received),
            "unrecorded": unrecorded,
            "undelivered": undelivered,
        }
        component.audit.append(at=now.isoformat(), kind="linkage.reconciliation", data=evidence)
        result.value = evidence
        if unrecorded:
            raise _refuse(
                component,
                RefusalCode.LOG_INCOMPLETE,
                "LOG-008",
                f"情報連携記録のない連携が {len(unrecorded)} 件あります（連携先の受信 {len(received)} 件、"
                f"記録 {len(recorded)} 件）: {', '.join(unrecorded[:3])}",
                f"{len(unrecorded)} exchange(s) passed the hub without a linkage record ({len(received)} received, "
                f"{len(recorded)} recorded): {', '.join(unrecorded[:3])}",
                "audit_trail",
            )
        component.allow(
            result,
            "LOG-008",
            now,
            f"情報連携記録と連携先の受信を突合しました（記録 {len(recorded)} 件、受信 {len(received)} 件、"
            f"記録のない連携 0 件、未着 {len(undelivered)} 件）",
            f"linkage records reconciled with what the peers received ({len(recorded)} records, {len(received)} "
            f"received, none unrecorded, {len(undelivered)} not delivered)",
            None,
            **evidence,
        )

    return component.command(now, None, act)
