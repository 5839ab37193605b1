"""The cost-model engine against hand-computed queueing: M/D/1 mean wait, backlog and recovery after an outage."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from simulator.simulation.calendar import JST
from simulator.simulation.costmodel import CostTable
from simulator.simulation.engine import Arrival, CostModelEngine, Municipality
from simulator.simulation.faults import Fault, FaultPlan
from simulator.simulation.flows import Step
from simulator.simulation.metrics import LogHistogram, recovery_after
from simulator.simulation.params import SimParams

START = datetime(2024, 4, 1, tzinfo=JST)
SERVICE = 1.0  # μ = 1 per second
RATE = 0.5  # λ: ρ = 0.5


def _engine(horizon: float, *, faults: FaultPlan | None = None, policy: str = "hold", seed: int = 7,
            two_hops: bool = False) -> CostModelEngine:
    """One station (c = 1, deterministic service 1 s), Poisson arrivals at 0.5/s: an M/D/1 queue."""
    params = SimParams(windows={}, capacity={"nws": 1, "national_server": 1}, policy={"nws": policy})
    costs = CostTable({("nws", "job"): SERVICE, ("national_server", "next"): 0.01})
    flow = Step("nws", "job", None, "terminal",
                (Step("national", "next", "nws", "lgwan"),) if two_hops else ())
    engine = CostModelEngine(start=START, horizon=horizon, municipalities=[Municipality("x", "x", 1, "p")],
                             costs=costs, params=params, faults=faults, flows={"job": flow}, bin_seconds=60.0)
    rng = random.Random(seed)
    t = 0.0
    while True:
        t += rng.expovariate(RATE)
        if t >= horizon:
            break
        engine.schedule(Arrival(t, "job", 0))
    return engine


def test_md1_mean_wait_matches_pollaczek_khinchine() -> None:
    engine = _engine(100_000.0)
    engine.run()
    wait = engine.hop_stats[0].wait
    rho = RATE * SERVICE
    expected = rho * SERVICE / (2 * (1 - rho))  # M/D/1: Wq = ρ / (2μ(1 − ρ)) = 0.5 s
    assert wait.n > 45_000
    assert wait.mean == pytest.approx(expected, rel=0.10)
    assert engine.sent == engine.delivered and engine.pending_hops() == 0


def test_outage_backlog_and_recovery_match_the_fluid_calculation() -> None:
    outage = 3600.0
    fault_start = START + timedelta(hours=5)
    plan = FaultPlan([Fault("outage", "nws.core", fault_start, outage)])
    engine = _engine(8 * 3600.0, faults=plan)
    engine.run()
    a, b = plan.faults[0].interval(engine.clock)
    info = recovery_after(engine.series["nws.core"].backlog(), 60.0, a, b)
    # Held arrivals pile up at λ for D seconds, then drain at μ − λ: backlog λD, recovery λD / (μ − λ).
    assert info["backlog_at_fault_end"] == pytest.approx(RATE * outage, rel=0.10)
    assert info["backlog_peak"] == pytest.approx(RATE * outage, rel=0.10)
    expected_recovery = RATE * outage / (1 / SERVICE - RATE)
    assert info["recovery_s"] == pytest.approx(expected_recovery, rel=0.15, abs=120)
    assert engine.held > 0
    assert engine.sent == engine.delivered  # nothing lost across the outage


@pytest.mark.parametrize("policy", ["retry", "hold"])
def test_no_message_lost_across_outages_and_crashes(policy: str) -> None:
    plan = FaultPlan([
        Fault("outage", "nws.core", START + timedelta(hours=1), 1800.0),
        Fault("crash", "nws.core", START + timedelta(hours=2), 600.0),
        Fault("outage", "link:nws->national_server", START + timedelta(hours=3), 900.0),
    ])
    engine = _engine(4 * 3600.0, faults=plan, policy=policy, two_hops=True)
    engine.run()
    assert engine.sent == engine.delivered
    assert engine.pending_hops() == 0
    assert engine.completed[0] == engine.started[0]
    if policy == "retry":
        assert engine.retries > 0
    assert engine.reexecuted >= 1  # the job in service when the station crashed ran again after the restart


def test_histogram_percentiles_are_close() -> None:
    hist = LogHistogram()
    for i in range(1, 10_001):
        hist.add(i / 1000)
    assert hist.mean == pytest.approx(5.0005)
    assert hist.percentile(50) == pytest.approx(5.0, rel=0.04)
    assert hist.percentile(99) == pytest.approx(9.9, rel=0.04)
    assert hist.maximum == 10.0
