"""`jukisim audit verify`: prove a world's evidence is intact and complete.

For every organisation's SQLite file it recomputes the hash chains of the audit trail and the 情報提供等記録
(LOG-005), and across organisations it checks that every exchange NWS mediated is recorded by the requester
and the provider too, that every provision is recorded by all three (provider sent, NWS relayed, requester
answered), and that no permit was provided or answered twice (CHUKAN-022, NWS-003). Messages still staged in
an outbox are reported, since a gap with messages in flight may only be unfinished. It opens the files
read-only and must never repair, rewrite or delete anything it finds.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from simulator.store.chain import CHAINED_TABLES, ChainBreak, verify_chain

__all__ = ["AuditReport", "verify_directory"]


@dataclass
class AuditReport:
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # file → table → rows checked
    breaks: list[tuple[str, ChainBreak]] = field(default_factory=list)
    missing_records: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # a permit provided, relayed or answered more than once
    staged: dict[str, int] = field(default_factory=dict)  # file → messages still in its outbox (in flight)
    # Queries a requester sent that NWS recorded neither as mediated nor as refused: still in flight, or refused by
    # NWS before its permission check (e.g. a bad signature). Reported, not a failure: such a refusal is legitimate.
    unrecorded_at_nws: list[str] = field(default_factory=list)
    provisions: int = 0  # provisions recorded by the provider (provision.sent)
    complete_provisions: int = 0  # … of which NWS relayed and the requester recorded the answer

    @property
    def ok(self) -> bool:
        return not self.breaks and not self.missing_records and not self.duplicates

    @property
    def in_flight(self) -> int:
        return sum(self.staged.values())

    def problems(self) -> list[str]:
        """Every finding, one line each: chain breaks, records missing at a party, duplicate provisions."""
        return [f"{f}: {b.describe()}" for f, b in self.breaks] + self.missing_records + self.duplicates

    def summary(self) -> str:
        """The cross-party figures in one line (what `jukisim audit verify` prints beside the per-file counts)."""
        staged = f"; {self.in_flight} messages still staged in outboxes (gaps may be in flight)" if self.in_flight else ""
        return (f"provisions: {self.provisions}, recorded by provider, NWS and requester: {self.complete_provisions};"
                f" missing records: {len(self.missing_records)}; duplicates: {len(self.duplicates)};"
                f" queries NWS has no record of: {len(self.unrecorded_at_nws)}{staged}")


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
    nws_queries: set[tuple[str, str]] = set()
    sent: Counter[str] = Counter()  # permit → provider's provision.sent rows
    relayed: Counter[str] = Counter()  # permit → NWS provision.relayed rows with status provided
    answered: Counter[str] = Counter()  # permit → requester's query.answered rows with status provided
    answered_queries: Counter[tuple[str, str]] = Counter()
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
                        if kind in ("query.mediated", "query.refused") and "requester_linkage_code" in record:
                            nws_queries.add((str(record.get("requester")), str(record.get("query_id"))))
                        if kind == "provision.sent":
                            sent[str(record.get("permit_id"))] += 1
                        elif kind == "provision.relayed" and record.get("status") == "provided":
                            relayed[str(record.get("permit_id"))] += 1
                        elif kind == "query.answered":
                            answered_queries[(str(record.get("requester")), str(record.get("query_id")))] += 1
                            if record.get("status") == "provided":
                                answered[str(record.get("permit_id"))] += 1
            outbox = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='service_outbox'").fetchone()
            if outbox:
                report.staged[path.name] = conn.execute("SELECT COUNT(*) FROM service_outbox").fetchone()[0]
            report.files[path.name] = counts
        finally:
            conn.close()
    for permit_id, (requester, query_id) in sorted(nws_permits.items()):
        if permit_id not in provider_permits:
            report.missing_records.append(f"permit {permit_id}: NWS mediated it but the provider has no record")
        if (requester, query_id) not in requester_queries:
            report.missing_records.append(f"query {query_id}: NWS mediated it but {requester} has no record")
    for permit_id in sorted(set(sent) | set(relayed) | set(answered)):
        if not sent[permit_id]:
            report.missing_records.append(f"permit {permit_id}: provided to the requester but the provider has no"
                                          " provision.sent record")
        if not relayed[permit_id]:
            report.missing_records.append(f"permit {permit_id}: provided but NWS has no provision.relayed record")
        if not answered[permit_id]:
            report.missing_records.append(f"permit {permit_id}: provided but the requester has no query.answered"
                                          " record")
        if sent[permit_id] and relayed[permit_id] and answered[permit_id]:
            report.complete_provisions += 1
        for who, counter in (("provider", sent), ("NWS", relayed), ("requester", answered)):
            if counter[permit_id] > 1:
                report.duplicates.append(f"permit {permit_id}: recorded as provided {counter[permit_id]} times by the"
                                         f" {who}")
    for (requester, query_id), count in sorted(answered_queries.items()):
        if count > 1:
            report.duplicates.append(f"query {query_id}: {requester} recorded {count} answers")
    report.unrecorded_at_nws = [f"query {q} of {r}" for r, q in sorted(requester_queries - nws_queries)]
    report.provisions = sum(1 for n in sent.values() if n)
    return report
