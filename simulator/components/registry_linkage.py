"""既存住基's 情報照会・提供 function (桑名市 000, 飯塚市 003): a staff-started 提供 with permission and a record.

The 提供 action modelled is registering a resident's 副本 for 提供: the operator needs the permission, and
{terminal, staff, resident, time, 操作内容} is appended to a table no user can edit (GYOMU-011). It must never
publish without the permission check, nor write the registry's own tables.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from simulator.components.base import Component, Directory, Result
from simulator.components.linkage_desk import LinkageDesk
from simulator.components.registry import Registry
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode

__all__ = ["RegistryLinkage"]


class RegistryLinkage(Component):
    name_ja = "既存住基（情報照会・提供処理）"
    name_en = "existing registry: query and provision function"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        registry: Registry,
        staff: StaffDirectory,
        query_rows: frozenset[str],
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.registry = registry
        self.staff = staff
        self.desk = LinkageDesk(self, conn, staff, table="registry_linkage_operations", query_role="nws_query",
                                query_rows=query_rows)

    def provide(self, session: StaffSession, resident_code: str, now: datetime) -> Result:
        """Register one resident's 副本 for 提供, as the permitted operator at their terminal."""

        def act(result: Result) -> None:
            if self.registry.resident(resident_code) is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "GYOMU-011", "該当する住民がいません",
                                  "no such resident in the 既存住基", field="resident_code")
            self.desk.authorise_provision(result, session, resident_code, now)
            # The 副本 only: the person's 本人確認情報 are already on 住基ネット (no second initial load to CS).
            published = self.registry.publish(resident_code, now, identity=False)
            if published.refusal is not None:
                raise published.refusal
            result.extend(published)

        return self.command(now, None, act)
