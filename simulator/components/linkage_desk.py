"""The business-side 情報照会・提供 desk (GYOMU-011): who may start an NWS 照会 or 提供, and its record.

A business system holding one checks the user's permission against its own staff directory, refuses a row the
municipality does not query, and appends {terminal, staff, resident, time, 操作内容} to a table SQLite triggers keep
append-only. It must never send anything itself: the business system it belongs to does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from simulator.components.base import Component, Result
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.errors import RefusalCode

__all__ = ["LinkageDesk"]


class LinkageDesk:
    """Permission and record for staff-started 照会 and other linkage actions of one business system."""

    def __init__(
        self,
        owner: Component,
        conn: sqlite3.Connection,
        staff: StaffDirectory,
        *,
        table: str,
        query_role: str,
        query_rows: frozenset[str],
        provision_rows: frozenset[str] = frozenset(),
        provide_role: str = "nws_provide",
    ) -> None:
        self.owner = owner
        self.conn = conn
        self.staff = staff
        self.table = table
        self.query_role = query_role
        self.query_rows = query_rows
        self.provision_rows = provision_rows  # the rows this 事務 provides under (the profile's), beside those it queries
        self.provide_role = provide_role
        conn.executescript(
            f"""
            CREATE TABLE IF NOT EXISTS {table} (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, terminal TEXT NOT NULL, staff TEXT NOT NULL,
                resident TEXT NOT NULL, at TEXT NOT NULL, operation TEXT NOT NULL, detail TEXT NOT NULL);
            CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
                BEGIN SELECT RAISE(ABORT, '{table}: operation records cannot be edited'); END;
            CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
                BEGIN SELECT RAISE(ABORT, '{table}: operation records cannot be deleted'); END;
            """
        )

    def record(
        self, session: StaffSession, resident: str, operation: str, now: datetime, detail: Mapping[str, Any]
    ) -> int:
        """Append one attributable operation record; returns its sequence number."""
        cur = self.conn.execute(
            f"INSERT INTO {self.table} (terminal, staff, resident, at, operation, detail) VALUES (?,?,?,?,?,?)",
            (
                session.terminal,
                session.user_id,
                resident,
                now.isoformat(),
                operation,
                json.dumps(dict(detail), ensure_ascii=False, sort_keys=True),
            ),
        )
        return int(cur.lastrowid or 0)

    def authorise_query(
        self, result: Result, session: StaffSession, resident: str, row: str, items: list[str], now: datetime
    ) -> int:
        """GYOMU-011: only a user with the 照会 permission of this 事務, under a row the municipality queries."""
        self.staff.require(session, self.query_role, "GYOMU-011", "情報照会の開始", "start an NWS query")
        if row not in self.query_rows:
            raise self.owner.refuse(
                RefusalCode.NOT_ON_PERMISSION_LIST,
                "GYOMU-011",
                f"この事務は第{row}項による情報照会を行いません（照会する項: {', '.join(sorted(self.query_rows)) or 'なし'}）",
                f"this business does not query under row {row}; it queries {sorted(self.query_rows)}",
                field="row",
            )
        return self._started(
            result, session, resident, "query.start", now, {"row": row, "items": items},
            "照会権限のある職員が情報照会を開始し、端末・職員・対象者・日時・操作内容を記録しました",
            "a user holding the query permission started the 照会; terminal, user, person, time and operation recorded",
        )

    def authorise_provision(self, result: Result, session: StaffSession, resident: str, now: datetime) -> int:
        """GYOMU-011: only a user with the 提供 permission of this 事務 starts a 情報提供 action, and it is recorded."""
        self.staff.require(session, self.provide_role, "GYOMU-011", "情報提供処理", "start a provision")
        return self._started(
            result, session, resident, "provide.start", now, {},
            "提供権限のある職員が情報提供処理を行い、端末・職員・対象者・日時・操作内容を記録しました",
            "a user holding the provision permission started it; terminal, user, person, time and operation recorded",
        )

    def _started(
        self, result: Result, session: StaffSession, resident: str, operation: str, now: datetime,
        detail: Mapping[str, Any], reason_ja: str, reason_en: str,
    ) -> int:
        """GYOMU-011 allowed: the operation is recorded first, and the decision names the record."""
        seq = self.record(session, resident, operation, now, detail)
        self.owner.allow(result, "GYOMU-011", now, reason_ja, reason_en, None, user=session.user_id,
                         terminal=session.terminal, resident=resident, record=seq)
        return seq

    def records(self, resident: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT seq, terminal, staff, resident, at, operation, detail FROM {self.table}"
        rows = self.conn.execute(sql + (" WHERE resident = ?" if resident else "") + " ORDER BY seq",
                                 (resident,) if resident else ()).fetchall()
        keys = ("seq", "terminal", "staff", "resident", "at", "operation", "detail")
        return [dict(zip(keys, r, strict=True)) | {"detail": json.loads(r[6])} for r in rows]
