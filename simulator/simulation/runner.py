"""One simulation run from a configuration to a results dictionary (what `jukisim simulate` writes as JSON).

It picks the mode, builds the workload, the cost table and the faults, runs the engine or the SimPy driver, and
gathers throughput, latency percentiles per hop and end to end, queue lengths and utilisation over time, backlog
and recovery per fault, record counts and the lost-message check. It must never alter a measurement to make a
check pass: a non-zero ``lost_messages`` is reported as it is.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from simulator.simulation.calendar import JST, Availability, SimClock
from simulator.simulation.costmodel import CostTable, kind_of
from simulator.simulation.engine import CostModelEngine
from simulator.simulation.faults import Fault, FaultPlan
from simulator.simulation.flows import FLOW_LABELS
from simulator.simulation.metrics import StationSeries, recovery_after
from simulator.simulation.params import SimParams
from simulator.simulation.workload import (
    city_workload,
    default_municipalities,
    estimate_national_events,
    get_profile,
    load_municipalities,
    national_workload,
)

__all__ = ["SimulationConfig", "simulate"]

Progress = Callable[[str, float], None]


@dataclass
class SimulationConfig:
    days: int
    profile: str | None = None  # a seed city (city mode, or the real world's provider in real mode)
    national: bool = False
    mode: str = "model"  # "model" (cost model) or "real" (real components)
    timing: str = "model"  # real mode: "model" (cost table) or "measured" (CPU time of each call)
    seed: int = 1
    size: int | None = None
    start: datetime | None = None
    faults: FaultPlan = field(default_factory=FaultPlan)
    costs: CostTable | None = None
    unit: int | None = None  # national: messages per simulated unit (None: chosen from an event budget)
    municipalities: Path | None = None
    params: SimParams | None = None
    data_dir: Path | None = None  # real mode: where the world's stores go
    changes_per_day: float = 12.0  # real mode
    queries_per_day: float = 12.0  # real mode
    event_budget: float = 80e6  # national: target hop events for unit auto


def _bin_seconds(days: float) -> float:
    if days <= 2:
        return 60.0
    if days <= 14:
        return 300.0
    if days <= 92:
        return 900.0
    return 3600.0


def simulate(config: SimulationConfig, progress: Progress | None = None) -> dict[str, Any]:
    if config.days < 1:
        from simulator.errors import InputError

        raise InputError("--days", "must be at least 1")
    if config.mode == "real":
        return _simulate_real(config, progress)
    return _simulate_model(config, progress)


# -- cost-model mode ------------------------------------------------------------------------------------------------

def _simulate_model(config: SimulationConfig, progress: Progress | None) -> dict[str, Any]:
    wall = time.perf_counter()
    costs = config.costs or CostTable.default()
    params = config.params or SimParams()
    if config.national:
        start = config.start or datetime(2022, 4, 1, tzinfo=JST)  # FY2022, the 会計検査院 report's year
    else:
        profile = get_profile(config.profile or "kuwana")
        start = config.start or datetime(2024, 1, 1, tzinfo=JST)  # the synthetic population's event year
        if profile.policy:
            params = params.with_(policy={**dict(profile.policy), **params.policy})
    clock = SimClock(start)
    horizon = config.days * 86_400.0
    if config.national:
        municipalities = (load_municipalities(config.municipalities) if config.municipalities
                          else default_municipalities())
        population = sum(m.population for m in municipalities)
        unit = config.unit or max(1, math.ceil(estimate_national_events(population, params, config.days)
                                                / config.event_budget))
        workload = national_workload(municipalities, config.seed, clock, params, unit)
        tracked: set[str] = set()
    else:
        size = config.size or profile.size
        workload = city_workload(profile, size, config.seed, clock, params,
                                 progress=(lambda stage, f: progress(f"population:{stage}", f)) if progress else None)
        m = workload.municipalities[0]
        tracked = {f"{m.key}.registry", f"{m.key}.municipal_cs", f"{m.key}.atena", f"{m.key}.business",
                   f"jlis.prefectural_server.{m.prefecture}"}
    engine = CostModelEngine(start=start, horizon=horizon, municipalities=workload.municipalities, costs=costs,
                             params=params, faults=config.faults, bin_seconds=_bin_seconds(config.days),
                             tracked=tracked)
    engine.feeder = workload.feeder
    if progress:
        engine.progress = lambda f: progress("simulate", f)
    built = time.perf_counter()
    engine.run()
    ran = time.perf_counter() - built
    result = _engine_results(engine, config, clock, params, costs)
    result["run"].update(workload.summary)
    result["workload"] = {"messages_started": dict(workload.counts)}
    result["performance"] = {
        "events": engine.events,
        "simulate_wall_s": round(ran, 3),
        "total_wall_s": round(time.perf_counter() - wall, 3),
        "events_per_s": round(engine.events / ran, 1) if ran > 0 else None,
    }
    return result


def _engine_results(engine: CostModelEngine, config: SimulationConfig, clock: SimClock, params: SimParams,
                    costs: CostTable) -> dict[str, Any]:
    pending = engine.pending_hops()
    lost = engine.sent - engine.delivered - pending
    flows = engine.flow_names
    latency_hops = {}
    for label, stats in zip(engine.hop_labels(), engine.hop_stats, strict=True):
        if stats.total.n:
            latency_hops[label] = {**stats.total.summary(), "wait_mean_s": stats.wait.mean,
                                   "wait_p95_s": stats.wait.percentile(95)}
    e2e = {f: engine.e2e[i].summary() for i, f in enumerate(flows) if engine.e2e[i].n}
    milestones = {f"{f}:{m}": h.summary() for (f, m), h in sorted(engine.milestones.items())}
    queues = _queue_section(engine.series, engine.bin_seconds, engine.stations.values())
    records = dict(sorted(engine.records.items()))
    checks = _record_checks(records)
    return {
        "run": {
            "mode": "model",
            "profile": config.profile,
            "national": config.national,
            "seed": config.seed,
            "start": clock.start.isoformat(),
            "days": config.days,
            "horizon_s": engine.horizon,
            "last_completion_at": clock.at(engine.last_completion).isoformat(),
            "drained": pending == 0,
            "bin_s": engine.bin_seconds,
            "costs": costs.source,
            "params": params.as_dict(),
            "faults": [f.as_dict() for f in engine.faults.faults],
        },
        "throughput": {
            "started": {f: engine.started[i] for i, f in enumerate(flows) if engine.started[i]},
            "completed": {f: engine.completed[i] for i, f in enumerate(flows) if engine.started[i]},
            "completed_by_day": {f: engine.completed_by_day[i][: config.days + 15]
                                 for i, f in enumerate(flows) if engine.completed[i]},
            "hops_delivered": engine.delivered,
            "per_day_mean": {f: engine.completed[i] / config.days for i, f in enumerate(flows) if engine.completed[i]},
        },
        "latency": {"hops": latency_hops, "end_to_end": e2e, "milestones": milestones},
        "queues": queues,
        "utilisation": engine.station_utilisation(),
        "faults": _fault_section(engine.faults.faults, engine.series, engine.stations.values(), engine.bin_seconds,
                                 clock, params, engine.end),
        "records": records,
        "messages": {
            "sent": engine.sent,
            "delivered": engine.delivered,
            "in_flight_at_end": pending,
            "retries": engine.retries,
            "held_by_gateway": engine.held,
            "reexecuted_after_crash": engine.reexecuted,
            "lost_messages": lost,
        },
        "checks": {"lost_messages": lost, "records_lost": checks["lost"], "record_balance": checks["balance"],
                   "ok": lost == 0 and checks["lost"] == 0},
        "lost_messages": lost,
    }


def _record_checks(records: dict[str, int]) -> dict[str, Any]:
    """Every 情報提供等記録 a query causes must exist at the requester, NWS and the provider (CHUKAN-022, NWS-003)."""
    sent = records.get("query.sent", 0)
    mediated = records.get("query.mediated", 0)
    refused = records.get("query.refused", 0)
    provided = records.get("provision.sent", 0)
    relayed = records.get("provision.relayed", 0)
    answered = records.get("query.answered", 0)
    # NWS's refusal record and the requester's are both counted under query.refused: half each.
    balance = {
        "requester_sent_vs_nws": sent - mediated - refused // 2,
        "provider_sent_vs_nws_relayed": provided - relayed,
        "nws_relayed_vs_requester_answered": relayed - answered,
    }
    return {"balance": balance, "lost": sum(abs(v) for v in balance.values())}


def _queue_section(series: dict[str, StationSeries], bin_seconds: float, stations: Any) -> dict[str, Any]:
    capacity: Counter[str] = Counter()
    for st in stations:
        key = st.name if st.name in series else f"{st.kind}.*"
        capacity[key] += st.capacity
    out: dict[str, Any] = {"bin_s": bin_seconds, "stations": {}}
    for name, s in sorted(series.items()):
        backlog = s.backlog()
        last = max((i for i, v in enumerate(s.starts) if v), default=0)
        keep = min(len(backlog), last + 2)
        workers = max(capacity.get(name, 1), 1)
        util = [b / (workers * bin_seconds) for b in s.busy[:keep]]
        out["stations"][name] = {
            "kind": kind_of(name) if not name.endswith(".*") else name[:-2],
            "workers": workers,
            "backlog": backlog[:keep],
            "backlog_max": max(backlog[:keep], default=0),
            "backlog_mean": (sum(backlog[:keep]) / keep) if keep else 0.0,
            "utilisation": [round(u, 6) for u in util],
            "utilisation_peak": max(util, default=0.0),
            "started": sum(s.starts),
        }
    return out


def _fault_section(faults: list[Fault], series: dict[str, StationSeries], stations: Any, bin_seconds: float,
                   clock: SimClock, params: SimParams, end: float) -> list[dict[str, Any]]:
    office = Availability(params.office.closed(clock, end + 10 * 86_400))
    out = []
    for fault in faults:
        a, b = fault.interval(clock)
        if fault.is_link:
            targets = [name for name in series if _link_receiver(fault, name)]
        else:
            targets = sorted({st.name if st.name in series else f"{st.kind}.*" for st in stations
                              if fault.matches_party(st.name, st.kind)})
        best: dict[str, Any] | None = None
        for name in targets:
            info = recovery_after(series[name].backlog(), bin_seconds, a, b)
            info["station"] = name
            if best is None or info["backlog_peak"] > best["backlog_peak"]:
                best = info
        # Backlog and recovery are read at the queue series' bin edges: recovery is exact to one bin.
        entry: dict[str, Any] = {**fault.as_dict(), "stations": targets, "resolution_s": bin_seconds}
        if best is not None:
            entry.update(best)
            recovered = best["recovered_at_s"]
            next_open = _next_opening(office, b)
            entry["next_office_opening"] = clock.at(next_open).isoformat()
            entry["drained_before_next_opening"] = recovered is not None and recovered <= next_open
            if recovered is not None:
                entry["recovered_at"] = clock.at(recovered).isoformat()
        out.append(entry)
    return out


def _next_opening(office: Availability, t: float) -> float:
    """The next time the office opens after ``t`` (the next morning, if ``t`` is inside office hours)."""
    if not office.is_up(t):
        return office.next_up(t)
    for start, end in office.intervals():
        if start > t:
            return end
    return t


def _link_receiver(fault: Fault, station: str) -> bool:
    if fault.target.startswith("network:"):
        return False
    receiver = fault.target[5:].split("->")[-1]
    return station == receiver or station.startswith(receiver) or kind_of(station.rstrip(".*")) == receiver \
        or station == f"{receiver}.*"


# -- real mode ------------------------------------------------------------------------------------------------------

def _simulate_real(config: SimulationConfig, progress: Progress | None) -> dict[str, Any]:
    import tempfile

    from simulator.audit import verify_directory
    from simulator.drivers.des import DesDriver
    from simulator.simulation.realrun import build_script, new_world_for_real_mode, run_des

    wall = time.perf_counter()
    params = config.params or SimParams()
    costs = config.costs or (CostTable.default() if config.timing == "model" else None)
    holder = None
    data_dir = config.data_dir
    if data_dir is None:
        holder = tempfile.TemporaryDirectory(prefix="jukisim-real-")
        data_dir = Path(holder.name) / "world"
    try:
        if progress:
            progress("world", 0.0)
        ctx, earliest = new_world_for_real_mode(data_dir, config.size or 200, config.seed)
        start = max(config.start or earliest, earliest)
        clock = SimClock(start)
        horizon = config.days * 86_400.0
        driver = DesDriver(ctx.run.world, start, params=params, timing=config.timing, costs=costs,
                           faults=config.faults, horizon=horizon + 14 * 86_400, bin_seconds=_bin_seconds(config.days))
        script = build_script(ctx.run, start, config.days, config.seed, changes_per_day=config.changes_per_day,
                              queries_per_day=config.queries_per_day, params=params)
        run_des(ctx, driver, script, params)
        if progress:
            total = max(horizon, 1.0)
            step = total / 100

            def ticker() -> Any:
                while driver.env.now < total:
                    yield driver.env.timeout(step)
                    progress("simulate", min(driver.env.now / total, 1.0))

            driver.env.process(ticker())
        built = time.perf_counter()
        driver.run()
        ran = time.perf_counter() - built
        audit = verify_directory(ctx.run.world.data_dir)
        result = _driver_results(driver, config, clock, params, costs, script)
        result["audit"] = {"ok": audit.ok, "chain_breaks": len(audit.breaks), "missing_records": audit.missing_records,
                           "files": audit.files}
        result["records"] = _store_records(ctx)
        result["checks"]["audit_ok"] = audit.ok
        result["checks"]["ok"] = result["checks"]["ok"] and audit.ok
        result["performance"] = {"events": len(driver.hops), "simulate_wall_s": round(ran, 3),
                                 "total_wall_s": round(time.perf_counter() - wall, 3)}
        ctx.run.world.close()
        return result
    finally:
        if holder is not None:
            holder.cleanup()


def _store_records(ctx: Any) -> dict[str, int]:
    """情報提供等記録 rows by kind, read from the stores after the run (as `jukisim audit verify` reads them)."""
    counts: Counter[str] = Counter()
    world = ctx.run.world
    for spec in world.spec.municipalities:
        for row in world.intermediate(spec.key).records.rows():
            counts[row["kind"]] += 1
    for row in world.nws.records.rows():
        counts[row["kind"]] += 1
    return dict(sorted(counts.items()))


def _driver_results(driver: Any, config: SimulationConfig, clock: SimClock, params: SimParams,
                    costs: CostTable | None, script: list[Any]) -> dict[str, Any]:
    hops = {label: {**driver.hop_total[label].summary(), "wait_mean_s": driver.hop_wait[label].mean,
                    "wait_p95_s": driver.hop_wait[label].percentile(95)}
            for label in sorted(driver.hop_total)}
    e2e = {label: h.summary() for label, h in sorted(driver.e2e.items())}
    series = {name: st.series for name, st in driver.stations().items()}
    stations = [_StationView(name, st.kind, st.resource.capacity) for name, st in driver.stations().items()]
    horizon = max(config.days * 86_400.0, driver.env.now)
    utilisation = {name: {"kind": st.kind, "workers": st.resource.capacity, "busy_s": st.busy, "served": st.served,
                          "utilisation": st.busy / (st.resource.capacity * horizon)}
                   for name, st in sorted(driver.stations().items())}
    decisions: Counter[str] = Counter()
    for hop in driver.hops:
        for d in hop.decisions:
            decisions[f"{d.control_id}:{d.outcome}"] += 1
    lost = driver.lost_messages
    started = Counter(a.kind for a in script)
    completed = Counter(t.label for t in driver.tracks if t.finished is not None)
    return {
        "run": {"mode": "real", "timing": config.timing, "profile": config.profile, "seed": config.seed,
                "start": clock.start.isoformat(), "days": config.days, "size": config.size or 200,
                "world": "桑名市 (提供) + 倉敷市 (照会), real components", "costs": costs.source if costs else None,
                "params": params.as_dict(), "faults": [f.as_dict() for f in driver.faults.faults],
                "bin_s": driver.bin_seconds, "last_event_at": clock.at(driver.env.now).isoformat()},
        "throughput": {"started": dict(started), "completed": dict(completed), "hops_delivered": driver.delivered},
        "latency": {"hops": hops, "end_to_end": e2e, "milestones": {}},
        "queues": _queue_section(series, driver.bin_seconds, stations),
        "utilisation": utilisation,
        "faults": _fault_section(driver.faults.faults, series, stations, driver.bin_seconds, clock, params,
                                 driver.env.now),
        "decisions": dict(sorted(decisions.items())),
        "messages": {"sent": driver.sent, "delivered": driver.delivered, "in_flight_at_end": driver.in_flight,
                     "retries": driver.retries, "held_by_gateway": driver.held, "restamped": driver.restamped,
                     "outbox_held_after_crash": driver.outbox_held, "lost_messages": lost},
        "checks": {"lost_messages": lost, "ok": lost == 0},
        "lost_messages": lost,
    }


@dataclass
class _StationView:
    name: str
    kind: str
    capacity: int



def flow_label(flow: str, lang: str) -> str:
    pair = FLOW_LABELS.get(flow)
    if pair is None:
        return flow
    return pair[0] if lang == "ja" else pair[1]
