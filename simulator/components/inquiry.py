"""問合せ対応の記録 (LOG-009): the inquiry desk of the municipality's 住民記録 section.

Each inquiry received by phone, at the counter or in writing is recorded {received at, channel, subject,
response, responder}, in the registry's store and hash-chained audit trail. It must never close an inquiry
without the response given, and never let someone without a registry role answer one.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from simulator.components.base import Result
from simulator.components.registry import Registry
from simulator.components.staff import StaffSession
from simulator.errors import RefusalCode

__all__ = ["CHANNELS", "InquiryDesk"]

CHANNELS = frozenset({"phone", "counter", "letter", "email"})


class InquiryDesk:
    """Registry function: receive and close inquiries. Decisions are the registry's."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.conn = registry.conn
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS inquiries (inquiry_id TEXT PRIMARY KEY, municipality TEXT NOT NULL,"
            " received_at TEXT NOT NULL, channel TEXT NOT NULL, subject TEXT NOT NULL, received_by TEXT NOT NULL,"
            " response TEXT, responder TEXT, closed_at TEXT)"
        )

    def receive(self, session: StaffSession, channel: str, subject: str, now: datetime) -> Result:
        reg = self.registry

        def act(result: Result) -> None:
            reg.staff.require(session, "registry_clerk", "LOG-009", "問合せの受付", "receive an inquiry")
            if channel not in CHANNELS or not subject.strip():
                raise reg.refuse(
                    RefusalCode.FIELD_MISSING,
                    "LOG-009",
                    f"問合せの記録には受付経路（{', '.join(sorted(CHANNELS))}）と件名が必要です",
                    f"an inquiry record needs a channel ({', '.join(sorted(CHANNELS))}) and a subject",
                    field="channel" if channel not in CHANNELS else "subject",
                )
            inquiry_id = uuid.uuid4().hex[:12]
            self.conn.execute(
                "INSERT INTO inquiries (inquiry_id, municipality, received_at, channel, subject, received_by)"
                " VALUES (?,?,?,?,?,?)",
                (inquiry_id, reg.municipality, now.isoformat(), channel, subject, session.user_id),
            )
            reg.audit.append(
                at=now.isoformat(),
                kind="inquiry.received",
                correlation_id=inquiry_id,
                data={"inquiry": inquiry_id, "channel": channel, "subject": subject, "by": session.user_id},
            )
            reg.allow(
                result,
                "LOG-009",
                now,
                f"問合せを受け付け、受付日時・経路（{channel}）・件名を記録しました",
                f"recorded the inquiry's receipt time, channel ({channel}) and subject",
                inquiry_id,
                inquiry=inquiry_id,
                channel=channel,
            )
            result.value = inquiry_id

        return reg.command(now, None, act)

    def close(self, session: StaffSession, inquiry_id: str, response: str, now: datetime) -> Result:
        reg = self.registry

        def act(result: Result) -> None:
            reg.staff.require(session, "registry_clerk", "LOG-009", "問合せの対応記録", "close an inquiry")
            row = self.conn.execute(
                "SELECT received_at, channel, subject, closed_at FROM inquiries WHERE inquiry_id = ?", (inquiry_id,)
            ).fetchone()
            if row is None or row[3] is not None:
                raise reg.refuse(
                    RefusalCode.NOT_FOUND if row is None else RefusalCode.STATE_CONFLICT,
                    "LOG-009",
                    "対応中の問合せではありません",
                    "no open inquiry with this id",
                    field="inquiry_id",
                )
            if not response.strip():
                raise reg.refuse(
                    RefusalCode.LOG_INCOMPLETE,
                    "LOG-009",
                    "対応内容の記録がない問合せは完了にできません",
                    "an inquiry cannot be closed without the response given",
                    field="response",
                )
            self.conn.execute(
                "UPDATE inquiries SET response = ?, responder = ?, closed_at = ? WHERE inquiry_id = ?",
                (response, session.user_id, now.isoformat(), inquiry_id),
            )
            reg.audit.append(
                at=now.isoformat(),
                kind="inquiry.closed",
                correlation_id=inquiry_id,
                data={"inquiry": inquiry_id, "response": response, "responder": session.user_id},
            )
            reg.allow(
                result,
                "LOG-009",
                now,
                "問合せの対応内容と対応者を記録して完了しました",
                "recorded the response and the responder, and closed the inquiry",
                inquiry_id,
                inquiry=inquiry_id,
                received_at=row[0],
                channel=row[1],
                subject=row[2],
                responder=session.user_id,
            )

        return reg.command(now, None, act)
