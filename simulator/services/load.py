"""`jukisim load`: start the services, run Locust headless against them, stop both, and summarise.

Writes Locust's CSV and HTML reports, the plan the Locust users read (services, CA, staff accounts, persons from
the synthetic population), and a one-page summary: requests per second, p50/p95/p99 per step, the wrong-outcome
count, CPU per service, and whether the evidence survived (hash chains, 情報提供等記録 at all three parties).
Bounded in time (the run's duration plus fixed margins) and loopback only. It must never judge an outcome
itself: the locustfile decides what is right, the audit decides whether evidence is intact.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from simulator.audit import verify_directory
from simulator.components.staff import StaffDirectory, biometric_sample
from simulator.errors import InputError
from simulator.model.permissions import load_permission_list
from simulator.profile_world import municipality_spec, requester_query
from simulator.services.runtime import prepare
from simulator.services.topology import Topology
from simulator.services.world import load_population, municipalities_of
from simulator.world import DEMO_PASSWORD

__all__ = ["LoadSettings", "LoadSummary", "run_load", "write_plan"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = PROJECT_ROOT / "load" / "locustfile.py"
READY_TIMEOUT = 300.0


@dataclass
class LoadSettings:
    profile: str = "demo"
    users: int = 10
    spawn_rate: float = 2.0
    duration: int = 60
    out: Path = PROJECT_ROOT / "var" / "load"
    size: int = 400
    seed: int = 20261124
    port_base: int = 8700
    processes: str = "several"
    workers: int = 0
    think: tuple[float, float] = (2.0, 8.0)
    locustfile: Path = LOCUSTFILE


@dataclass
class StepFigures:
    name: str
    kind: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float


@dataclass
class LoadSummary:
    settings: dict[str, Any]
    steps: list[StepFigures] = field(default_factory=list)
    requests: int = 0
    wrong_outcomes: int = 0
    rps: float = 0.0
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    wall_seconds: float = 0.0
    evidence_ok: bool = False
    evidence_problems: list[str] = field(default_factory=list)
    locust_exit: int | None = None

    @property
    def error_rate(self) -> float:
        return self.wrong_outcomes / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings, "requests": self.requests, "wrong_outcomes": self.wrong_outcomes,
            "error_rate": self.error_rate, "rps": self.rps, "wall_seconds": self.wall_seconds, "cpu": self.cpu,
            "evidence_ok": self.evidence_ok, "evidence_problems": self.evidence_problems[:20],
            "locust_exit": self.locust_exit, "steps": [vars(s) for s in self.steps],
        }

    def markdown(self) -> str:
        s = self.settings
        lines = [
            f"# jukisim load — {s['profile']}, {s['users']} users, {s['duration']} s",
            "",
            f"- requests: {self.requests}  ({self.rps:.1f} /s)",
            f"- wrong outcomes (Locust failures): {self.wrong_outcomes}  (error rate {self.error_rate:.2%})",
            f"- evidence after shutdown: {'intact' if self.evidence_ok else 'PROBLEMS'}"
            + (f" ({len(self.evidence_problems)} problems)" if self.evidence_problems else ""),
            "",
            "| step | kind | requests | wrong | req/s | p50 ms | p95 ms | p99 ms |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for step in self.steps:
            lines.append(f"| {step.name} | {step.kind} | {step.requests} | {step.failures} | {step.rps:.2f} |"
                         f" {step.p50:.0f} | {step.p95:.0f} | {step.p99:.0f} |")
        lines += ["", "| service | CPU s | CPU % of one core |", "|---|---:|---:|"]
        for name, figures in self.cpu.items():
            lines.append(f"| {name} | {figures['cpu_seconds']:.2f} | {figures['cpu_percent']:.1f} |")
        return "\n".join(lines) + "\n"


def sensor_readings(data_dir: Path, municipality: str) -> dict[str, str]:
    """What the biometric sensor reads for each staff user at a municipality that requires it (AUTH-003), keyed
    ``system/user``; empty where the profile asks for none. The staff are synthetic, and so are their faces."""
    out: dict[str, str] = {}
    conn = sqlite3.connect(Path(data_dir) / f"{municipality}.sqlite")
    try:
        for system in ("registry", "municipal_cs"):
            staff = StaffDirectory(conn, f"{municipality}.{system}")
            modality = staff.policy.biometric
            if not modality:
                continue
            for (user,) in conn.execute("SELECT user_id FROM staff WHERE component = ?", (staff.component,)):
                out[f"{system}/{user}"] = biometric_sample(modality, staff.person(user) or "")
    finally:
        conn.close()
    return out


def query_plan(profile: str, provider: str, requester: str) -> dict[str, Any]:
    """What the staff users ask: their business, the row, the items the list allows there, and items it refuses."""
    if profile == "demo":  # 倉敷 (介護保険) asks 桑名 under 別表第二 94, as in `jukisim demo`
        business, row, table = "ltc", "94", "beppyo_2"
    else:
        business, row, _item = requester_query(provider, requester)
        table = municipality_spec(requester).table
    allowed = sorted(
        {i for e in load_permission_list().entries(row, table) if e.requester_business == business for i in e.items}
    )
    # Every provider keeps 住民票関係情報 and 地方税関係情報 副本 for the movers, so it can answer both.
    items = [i for i in ("local_tax_info", "resident_info") if i in allowed]
    refused = [i for i in ("health_insurance_info", "pension_info", "ltc_info") if i not in allowed][:1]
    return {"business": business, "row": row, "items": items, "refused_items": refused}


def write_plan(data_dir: Path, topology: Topology, profile: str, path: Path, think: tuple[float, float]) -> dict[str, Any]:
    """What the Locust users need: where the services are, the CA, staff accounts, and persons to work on."""
    municipalities = municipalities_of(profile)
    provider, requester = municipalities[0].key, municipalities[1].key
    population = load_population(data_dir)
    query = query_plan(profile, provider, requester)
    business = query["business"]
    residents = [
        {"resident_code": r["resident_code"], "address": r["address"], "postal_code": r["postal_code"]}
        for r in population.residents[requester]
        if r.get("status") == "active" and r.get("my_number")
    ]
    plan = {
        "profile": profile,
        "ca_file": str(Path(data_dir) / "keys" / "ca" / "root.crt.pem"),
        "think": list(think),
        "services": {s.name: s.url for s in topology.services},
        "requester": requester,
        "provider": provider,
        "password": DEMO_PASSWORD,
        "biometrics": sensor_readings(data_dir, requester),
        "query": query,
        "movers": [m[f"{business}_atena_number"] for m in population.movers],
        "protected_movers": [m[f"{business}_atena_number"] for m in population.protected_movers],
        "residents": residents,
        "records": population.tax[requester] if business == "tax" else population.ltc[requester],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
    return plan


def run_load(settings: LoadSettings, log: Callable[[str], None] = print) -> LoadSummary:
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "world"
    if not settings.locustfile.exists():
        raise InputError("locustfile", f"{settings.locustfile} not found")
    log(f"世界を準備しています（住民 {settings.size} 人）… / preparing the world")
    topology = prepare(data_dir, settings.profile, size=settings.size, seed=settings.seed, reuse=False,
                       port_base=settings.port_base)
    plan_path = out / "plan.json"
    write_plan(data_dir, topology, settings.profile, plan_path, settings.think)
    ready_file = out / "ready.json"
    ready_file.unlink(missing_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "simulator.services", "serve", "--reuse", "--data", str(data_dir), "--profile",
         settings.profile, "--port-base", str(settings.port_base), "--processes", settings.processes,
         "--ready-file", str(ready_file)],
        stdout=(out / "services.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    summary = LoadSummary(settings={"profile": settings.profile, "users": settings.users,
                                    "spawn_rate": settings.spawn_rate, "duration": settings.duration,
                                    "processes": settings.processes, "workers": settings.workers,
                                    "size": settings.size, "think": list(settings.think)})
    try:
        pids = _wait_ready(ready_file, server)
        log(f"サービス起動 / services ready: {', '.join(pids)}")
        processes = _processes(pids)
        before = {name: _cpu(p) for name, p in processes.items()}
        started = time.monotonic()
        summary.locust_exit = _run_locust(settings, topology, plan_path, out, log)
        summary.wall_seconds = time.monotonic() - started
        for name, proc in processes.items():
            used = _cpu(proc) - before[name]
            summary.cpu[name] = {"cpu_seconds": used, "cpu_percent": 100 * used / max(summary.wall_seconds, 1e-9)}
    finally:
        _stop(server)
    _read_stats(out / "locust_stats.csv", summary)
    report = verify_directory(data_dir)
    summary.evidence_ok = report.ok
    summary.evidence_problems = report.problems()
    (out / "summary.json").write_text(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    (out / "summary.md").write_text(summary.markdown(), encoding="utf-8")
    return summary


def _wait_ready(ready_file: Path, server: subprocess.Popen[bytes]) -> dict[str, int]:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if ready_file.exists():
            pids: dict[str, int] = json.loads(ready_file.read_text(encoding="utf-8"))["pids"]
            return pids
        if server.poll() is not None:
            raise RuntimeError(f"the services exited early (code {server.returncode}); see services.log")
        time.sleep(0.1)
    raise RuntimeError(f"the services were not ready within {READY_TIMEOUT:.0f} s")


def _processes(pids: dict[str, int]) -> dict[str, psutil.Process]:
    # In one process, every service shares one pid: report it once, under all the names it serves.
    by_pid: dict[int, list[str]] = {}
    for name, pid in pids.items():
        by_pid.setdefault(pid, []).append(name)
    return {"+".join(names): psutil.Process(pid) for pid, names in by_pid.items()}


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _run_locust(settings: LoadSettings, topology: Topology, plan: Path, out: Path, log: Callable[[str], None]) -> int:
    host = topology.service(json.loads(plan.read_text(encoding="utf-8"))["requester"]).url
    env = {**os.environ, "JUKISIM_LOAD_PLAN": str(plan)}
    common = ["-f", str(settings.locustfile), "--host", host]
    headless = [
        "--headless", "-u", str(settings.users), "-r", str(settings.spawn_rate), "-t", f"{settings.duration}s",
        "--csv", str(out / "locust"), "--html", str(out / "locust.html"), "--stop-timeout", "30",
        "--only-summary", "--loglevel", "WARNING",
    ]
    timeout = settings.duration + 120
    log(f"Locust: {settings.users} users, {settings.duration} s" + (f", {settings.workers} workers" if settings.workers
                                                                    else ""))
    if settings.workers == 0:
        done = subprocess.run([sys.executable, "-m", "locust", *common, *headless], env=env, timeout=timeout,
                              stdout=(out / "locust.log").open("w"), stderr=subprocess.STDOUT, check=False)
        return done.returncode
    port = settings.port_base + 90
    master = subprocess.Popen(
        [sys.executable, "-m", "locust", *common, *headless, "--master", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", str(port), "--expect-workers", str(settings.workers)],
        env=env, stdout=(out / "locust.log").open("w"), stderr=subprocess.STDOUT,
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "locust", *common, "--worker", "--master-host", "127.0.0.1", "--master-port",
             str(port), "--loglevel", "WARNING"],
            env=env, stdout=(out / f"locust-worker-{i}.log").open("w"), stderr=subprocess.STDOUT,
        )
        for i in range(settings.workers)
    ]
    try:
        return master.wait(timeout=timeout)
    finally:
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if master.poll() is None:
            master.kill()


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _read_stats(path: Path, summary: LoadSummary) -> None:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            def num(key: str, r: dict[str, str] = row) -> float:
                value = r.get(key, "") or "0"
                return float(value) if value != "N/A" else 0.0

            figures = StepFigures(
                name=row["Name"], kind=row["Type"], requests=int(num("Request Count")),
                failures=int(num("Failure Count")), rps=num("Requests/s"), p50=num("50%"), p95=num("95%"),
                p99=num("99%"),
            )
            if row["Name"] == "Aggregated":
                summary.wrong_outcomes = figures.failures  # HTTP steps and whole flows alike
            else:
                summary.steps.append(figures)
    http = [s for s in summary.steps if s.kind != "FLOW"]
    summary.requests = sum(s.requests for s in http)
    summary.rps = sum(s.rps for s in http)
