"""Chaos run: every service of a world as its own process on loopback, a bounded 情報照会 workload, and SIGKILLs.

Each kill picks a service at random, kills it with SIGKILL at a random moment and starts it again on the same
store. Afterwards it waits until every outbox is empty, stops the services, and checks what a crash must not
break: every query reached its right final state, every provision is recorded by requester, NWS and provider,
nothing was provided twice, and the hash chains verify (``jukisim audit verify``'s rules). It only runs on
127.0.0.1 with bounded counts and deadlines, and it never touches a store except read-only.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from simulator.audit import AuditReport, verify_directory
from simulator.services.admission import AdmissionLimits
from simulator.services.tls import TlsMaterial, client_context
from simulator.services.topology import Topology

__all__ = ["ChaosReport", "ChaosSettings", "KillEvent", "run_chaos"]

PROVIDED_ITEMS = ["local_tax_info", "resident_info"]
NOT_LISTED_ITEMS = ["health_insurance_info"]  # not on 別表第二 row 94: refused by NWS
NOT_LISTED_CODE = "Permission.NotOnPermissionList"


@dataclass
class ChaosSettings:
    data_dir: Path
    profile: str = "demo"
    queries: int = 200
    kills: int = 5
    workers: int = 8
    size: int = 60
    seed: int = 11
    port_base: int = 21600
    kill_gap: tuple[float, float] = (1.0, 4.0)  # seconds between kills, drawn uniformly
    targets: list[str] = field(default_factory=list)  # services that may be killed; empty: every service
    rng_seed: int = 20261124
    deadline_s: float = 900.0  # the whole run, then it gives up and reports what is unfinished
    reuse: bool = False  # True: the world in data_dir already exists (built by an earlier run or a fixture)
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)  # each service's limits (backpressure)


@dataclass
class KillEvent:
    service: str
    at_s: float  # seconds since the workload started
    queries_in_flight: int  # queries started and not yet answered, as the clients see them
    messages_staged: int  # messages in all outboxes (read from the stores) just before the kill
    restart_s: float  # from the kill until the restarted service was ready again
    start_attempts: int = 1  # more than one: a start failed (its log says why) and was tried again


@dataclass
class ChaosReport:
    queries: int = 0
    provided: int = 0
    refused_as_expected: int = 0
    wrong: list[str] = field(default_factory=list)  # a query whose final state is not the right one
    unfinished: list[str] = field(default_factory=list)  # a query still open (or never started) at the deadline
    kills: list[KillEvent] = field(default_factory=list)
    records_lost: int = 0  # provided queries missing a 情報提供等記録 at requester, NWS or provider
    lost_detail: list[str] = field(default_factory=list)
    duplicate_provisions: list[str] = field(default_factory=list)
    client_retries: int = 0  # business API calls repeated after a lost connection
    busy_answers: int = 0  # 429/503 busy answers the clients got (and honoured by waiting Retry-After)
    services_busy: dict[str, int] = field(default_factory=dict)  # busy answers each service gave (since its start)
    senders_busy: int = 0  # busy answers the services' senders honoured (since each one's last start)
    redelivered_messages: int = 0  # messages delivered again after a crash and answered from the inbox
    staged_at_end: int = 0
    audit_ok: bool = False
    audit_problems: list[str] = field(default_factory=list)
    complete_provisions: int = 0
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return (not self.wrong and not self.unfinished and self.records_lost == 0 and not self.duplicate_provisions
                and self.audit_ok and self.staged_at_end == 0)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def markdown(self) -> str:
        lines = [
            f"- queries: {self.queries} (provided {self.provided}, refused as expected {self.refused_as_expected},"
            f" wrong {len(self.wrong)}, unfinished {len(self.unfinished)})",
            f"- kills survived: {len(self.kills)}",
        ]
        for k in self.kills:
            lines.append(f"  - SIGKILL {k.service} at {k.at_s:.1f} s: {k.queries_in_flight} queries in flight,"
                         f" {k.messages_staged} messages staged; ready again after {k.restart_s:.1f} s")
        lines += [
            f"- records lost: {self.records_lost}; duplicate provisions: {len(self.duplicate_provisions)}",
            f"- provisions recorded by all three parties: {self.complete_provisions}",
            f"- busy answers honoured by the clients: {self.busy_answers}; by the senders: {self.senders_busy};"
            f" given per service (since its last start): {self.services_busy}",
            f"- client retries after a lost connection: {self.client_retries}; messages redelivered and answered from the inbox:"
            f" {self.redelivered_messages}; staged at the end: {self.staged_at_end}",
            f"- audit verify: {'OK' if self.audit_ok else 'FAILED'} {'; '.join(self.audit_problems[:5])}",
            f"- duration: {self.duration_s:.1f} s",
            f"- restarts that needed another attempt: {sum(1 for k in self.kills if k.start_attempts > 1)}",
        ]
        return "\n".join(lines)


# -- the service processes ---------------------------------------------------------------------------------


class ServiceProcess:
    """One service in its own OS process (``python -m simulator.services.chaos serve-one``)."""

    def __init__(self, data_dir: Path, profile: str, name: str, admission: AdmissionLimits) -> None:
        self.admission = admission
        self.data_dir = data_dir
        self.profile = profile
        self.name = name
        self.ready_file = data_dir / f".chaos-ready.{name}.json"
        self.log = data_dir / f"chaos-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.ready_file.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "simulator.services.chaos", "serve-one", str(self.data_dir), self.profile,
                 self.name, str(self.ready_file), json.dumps(asdict(self.admission))],
                stdout=log, stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited while starting (see {self.log})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready within {timeout:.0f} s")
            time.sleep(0.05)

    def restart(self, attempts: int = 3) -> int:
        """Start again after a kill; a start that fails (e.g. the world's code changed under it) is retried."""
        for attempt in range(1, attempts + 1):
            self.start()
            try:
                self.wait_ready()
                return attempt
            except (RuntimeError, TimeoutError):
                self.kill()
                if attempt == attempts:
                    raise
                time.sleep(1.0)
        return attempts

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(30)
        return self.proc.returncode


def serve_one(data_dir: Path, profile: str, name: str, ready_file: Path, admission: AdmissionLimits) -> None:
    """The body of one service process: the placement from ``services.json``, the runtime's own host."""
    from simulator.services.runtime import RunSettings, child_main

    topology = Topology.from_dict(json.loads((data_dir / "services.json").read_text(encoding="utf-8")))
    child_main(RunSettings(data_dir, profile, topology, [name], drain_timeout=10, admission=admission),
               str(ready_file))


# -- reading the stores (read-only) ------------------------------------------------------------------------


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def _scalar_sum(data_dir: Path, table: str, expression: str) -> int:
    total = 0
    for path in sorted(data_dir.glob("*.sqlite")):
        conn = _read_only(path)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone():
                total += int(conn.execute(f"SELECT COALESCE({expression}, 0) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:
            continue  # a store being created or recovered this instant: counted on the next look
        finally:
            conn.close()
    return total


def staged_messages(data_dir: Path) -> int:
    return _scalar_sum(data_dir, "service_outbox", "COUNT(*)")


def provision_rows(data_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(data_dir.glob("*.sqlite")):
        conn = _read_only(path)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='provision_records'").fetchone():
                rows.extend((k, json.loads(d)) for k, d in conn.execute("SELECT kind, data FROM provision_records"))
        finally:
            conn.close()
    return rows


# -- the workload ------------------------------------------------------------------------------------------


@dataclass
class _Query:
    n: int
    person: str
    items: list[str]
    expect: str  # "provided" or the refusal code
    provider: str
    query_id: str | None = None
    status: str = "unstarted"
    code: str | None = None


class _Workload:
    def __init__(self, base_url: str, verify: Any, queries: list[_Query], deadline: float) -> None:
        self.base_url = base_url
        self.verify = verify
        self.queries = queries
        self.deadline = deadline
        self.lock = threading.Lock()
        self.started = 0
        self.finished = 0
        self.retries = 0
        self.busy = 0

    def in_flight(self) -> int:
        with self.lock:
            return self.started - self.finished

    def _retry(self, wait: float) -> None:
        with self.lock:
            self.retries += 1
        time.sleep(wait)

    def run_one(self, query: _Query) -> None:
        body = {"operator": "chaos-clerk", "business_atena_number": query.person, "row": "94",
                "items": query.items, "provider": query.provider}
        with httpx.Client(base_url=self.base_url, verify=self.verify, timeout=40) as client:
            while query.query_id is None and time.monotonic() < self.deadline:
                try:
                    response = client.post("/ltc/queries", json=body,
                                           headers={"idempotency-key": f"chaos-{query.n}"})
                except httpx.TransportError:
                    self._retry(0.3)
                    continue
                if response.status_code in (429, 503):
                    with self.lock:
                        self.busy += 1
                    time.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                if response.status_code != 201:
                    query.status, query.code = "rejected", f"HTTP {response.status_code}: {response.text[:200]}"
                    return
                query.query_id = str(response.json()["query_id"])
                with self.lock:
                    self.started += 1
            while query.query_id is not None and time.monotonic() < self.deadline:
                try:
                    answer = client.get(f"/ltc/queries/{query.query_id}", params={"wait": 10}).json()
                except (httpx.TransportError, ValueError):
                    self._retry(0.3)
                    continue
                query.status = str(answer.get("status"))
                query.code = answer.get("code")
                if query.status != "open":
                    with self.lock:
                        self.finished += 1
                    return


# -- the run -----------------------------------------------------------------------------------------------


def run_chaos(settings: ChaosSettings, log: Callable[[str], None] = print) -> ChaosReport:
    from simulator.services.runtime import prepare
    from simulator.services.world import load_population, municipalities_of

    data = Path(settings.data_dir)
    rng = random.Random(settings.rng_seed)
    if not settings.reuse:
        log(f"building the world in {data} …")
        prepare(data, settings.profile, size=settings.size, seed=settings.seed, reuse=False,
                port_base=settings.port_base)
    topology = Topology.from_dict(json.loads((data / "services.json").read_text(encoding="utf-8")))
    provider, requester = (m.key for m in municipalities_of(settings.profile)[:2])  # provider first
    population = load_population(data)
    movers = [m["ltc_atena_number"] for m in population.movers]
    queries = []
    for n in range(settings.queries):
        refused = n % 6 == 5
        queries.append(_Query(n, movers[n % len(movers)], NOT_LISTED_ITEMS if refused else PROVIDED_ITEMS,
                              NOT_LISTED_CODE if refused else "provided", provider))
    targets = settings.targets or topology.names()
    services = {name: ServiceProcess(data, settings.profile, name, settings.admission) for name in topology.names()}
    report = ChaosReport(queries=len(queries))
    began = time.monotonic()
    deadline = began + settings.deadline_s
    try:
        for proc in services.values():
            proc.start()
        for proc in services.values():
            proc.wait_ready()
        log(f"{len(services)} service processes ready in {time.monotonic() - began:.1f} s")
        workload = _Workload(topology.service(requester).url, client_context(TlsMaterial(data), None), queries,
                             deadline)
        started = time.monotonic()
        with ThreadPoolExecutor(settings.workers, thread_name_prefix="chaos-clerk") as pool:
            futures = [pool.submit(workload.run_one, q) for q in queries]
            for _ in range(settings.kills):
                time.sleep(rng.uniform(*settings.kill_gap))
                if all(f.done() for f in futures):
                    log("the workload finished before every kill was made")
                    break
                victim = services[rng.choice(targets)]
                in_flight, staged = workload.in_flight(), staged_messages(data)
                killed_at = time.monotonic()
                victim.kill()
                attempts = victim.restart()
                event = KillEvent(victim.name, killed_at - started, in_flight, staged, time.monotonic() - killed_at,
                                  attempts)
                report.kills.append(event)
                log(f"SIGKILL {event.service} at {event.at_s:.1f} s ({in_flight} queries in flight, {staged} staged);"
                    f" ready again after {event.restart_s:.1f} s")
            for future in futures:
                future.result()
        report.client_retries = workload.retries
        report.busy_answers = workload.busy
        while staged_messages(data) and time.monotonic() < deadline:
            time.sleep(0.2)
        _collect_ready(report, topology, data)
    finally:
        for proc in services.values():
            proc.stop()
        report.duration_s = time.monotonic() - began
    _judge(report, data, queries)
    return report


def _collect_ready(report: ChaosReport, topology: Topology, data: Path) -> None:
    verify = client_context(TlsMaterial(data), None)
    for spec in topology.services:
        try:
            body = httpx.get(f"{spec.url}/ready", verify=verify, timeout=10).json()
        except (httpx.TransportError, ValueError):
            continue
        report.services_busy[spec.name] = int(body.get("admission", {}).get("busy_answers", 0))
        report.senders_busy += int(body.get("sender", {}).get("busy", 0))


def _judge(report: ChaosReport, data: Path, queries: list[_Query]) -> None:
    for q in queries:
        if q.status in ("open", "unstarted"):
            report.unfinished.append(f"query #{q.n} ({q.query_id}): {q.status}")
        elif q.expect == "provided" and q.status == "provided":
            report.provided += 1
        elif q.expect != "provided" and q.status == "refused" and q.code == q.expect:
            report.refused_as_expected += 1
        else:
            report.wrong.append(f"query #{q.n} ({q.query_id}): {q.status} {q.code}, expected {q.expect}")
    rows = provision_rows(data)
    sent = Counter(str(d.get("permit_id")) for k, d in rows if k == "provision.sent")
    relayed = Counter(str(d.get("permit_id")) for k, d in rows if k == "provision.relayed"
                      and d.get("status") == "provided")
    answered: dict[str, list[str]] = {}
    for kind, d in rows:
        if kind == "query.answered":
            answered.setdefault(str(d.get("query_id")), []).append(str(d.get("permit_id")))
    for q in queries:
        if q.status != "provided" or q.query_id is None:
            continue
        permits = answered.get(q.query_id, [])
        if len(permits) != 1:
            report.duplicate_provisions.append(f"query {q.query_id}: {len(permits)} answers recorded")
        permit = permits[0] if permits else None
        missing = [who for who, ok in (("requester", bool(permits)), ("NWS", permit is not None and relayed[permit]),
                                       ("provider", permit is not None and sent[permit])) if not ok]
        if missing:
            report.records_lost += 1
            report.lost_detail.append(f"query {q.query_id}: no record at {', '.join(missing)}")
    report.staged_at_end = staged_messages(data)
    report.redelivered_messages = _scalar_sum(data, "service_inbox", "SUM(deliveries - 1)")
    audit: AuditReport = verify_directory(data)
    report.audit_ok = audit.ok
    report.complete_provisions = audit.complete_provisions
    report.audit_problems = ([f"{f}: {b.describe()}" for f, b in audit.breaks] + audit.missing_records
                             + audit.duplicates)
    report.duplicate_provisions += audit.duplicates


def main(argv: list[str]) -> int:
    if len(argv) == 6 and argv[0] == "serve-one":
        serve_one(Path(argv[1]), argv[2], argv[3], Path(argv[4]), AdmissionLimits(**json.loads(argv[5])))
        return 0
    print("usage: python -m simulator.services.chaos serve-one DATA PROFILE SERVICE READY_FILE LIMITS_JSON",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main(sys.argv[1:]))
