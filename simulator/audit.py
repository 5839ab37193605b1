"""`jukisim audit verify`: prove a world's evidence is intact and complete.

For every organisation's SQLite file it recomputes the hash chains of the audit trail and the 情報提供等記録
(LOG-005), and across organisations it checks that every exchange NWS mediated is recorded by the
requester and the provider too (CHUKAN-022, NWS-003). It opens the files read-only and must never repair,
rewrite or delete anything it finds.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from simulator.store.chain import CHAINED_TABLES, ChainBreak, verify_chain

__all__ = ["AuditReport", "verify_directory"]


@dataclass
class AuditReport:
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # file → table → rows checked
    breaks: list[tuple[str, ChainBreak]] = field(default_factory=list)
    missing_records: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks and not self.missing_records


def _open_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def verify_directory(data_dir: Path) -> AuditReport:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data: {data_dir} is not a directory")
    report = AuditReport()
    nws_permits: dict[str, tuple[str, str]] = {}
    provider_permits: set[str] = set()
    requester_queries: set[tuple[str, str]] = set()
    files = sorted(data_dir.glob("*.sqlite"))
    if not files:
        raise FileNotFoundError(f"data: no *.sqlite stores in {data_dir}")
    for path in files:
        conn = _open_read_only(path)
        try:
            counts: dict[str, int] = {}
            for table in CHAINED_TABLES:
                present = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
                if not present:
                    continue
                counts[table] = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                report.breaks.extend((path.name, b) for b in verify_chain(conn, table))
                if table == "provision_records":
                    for kind, data in conn.execute("SELECT kind, data FROM provision_records"):
                        record = json.loads(data)
                        if kind == "query.mediated":
                            nws_permits[record["permit_id"]] = (record["requester"], str(record["query_id"]))
                        elif kind in ("provision.sent", "provision.held", "provision.refused", "provision.declined"):
                            provider_permits.add(str(record.get("permit_id")))
                        elif kind == "query.sent":
                            requester_queries.add((str(record["requester"]), str(record["query_id"])))
            report.files[path.name] = counts
        finally:
            conn.close()
    for permit_id, (requester, query_id) in sorted(nws_permits.items()):
        if permit_id not in provider_permits:
            report.missing_records.append(f"permit {permit_id}: NWS mediated it but the provider has no record")
        if (requester, query_id) not in requester_queries:
            report.missing_records.append(f"query {query_id}: NWS mediated it but {requester} has no record")
    return report
