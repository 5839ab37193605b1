"""Real mode: the real components under the SimPy driver — same decisions as the in-process driver, nothing lost
across an NWS outage, and the cost-model flows match what the real components do."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from simulator.drivers.des import DesDriver
from simulator.simulation.costmodel import CostTable, kind_of
from simulator.simulation.engine import ROLE_KIND
from simulator.simulation.faults import Fault, FaultPlan
from simulator.simulation.flows import FLOWS, steps_of
from simulator.simulation.params import SimParams
from simulator.simulation.realrun import (
    Action,
    build_script,
    decision_multiset,
    new_world_for_real_mode,
    run_des,
    run_inproc,
)
from simulator.simulation.runner import SimulationConfig, simulate


def test_same_script_same_decisions_under_both_drivers(tmp_path: Path) -> None:
    params = SimParams()
    left, start_a = new_world_for_real_mode(tmp_path / "inproc", 60, 5)
    right, start_b = new_world_for_real_mode(tmp_path / "des", 60, 5)
    start = max(start_a, start_b)
    script = build_script(left.run, start, 2, 9, changes_per_day=5, queries_per_day=6, params=params)
    assert script == build_script(right.run, start, 2, 9, changes_per_day=5, queries_per_day=6, params=params)
    assert {a.kind for a in script} >= {"query", "move_within"}
    try:
        inproc_hops = run_inproc(left, script, start, params)
        driver = DesDriver(right.run.world, start, params=params, costs=CostTable.default(), horizon=3 * 86_400.0)
        run_des(right, driver, script, params)
        driver.run()
        assert driver.lost_messages == 0 and driver.in_flight == 0
        assert decision_multiset(inproc_hops) == decision_multiset(driver.hops)
        assert sum(decision_multiset(driver.hops).values()) > 50
    finally:
        left.run.world.close()
        right.run.world.close()


def test_no_message_or_record_lost_across_an_nws_outage(tmp_path: Path) -> None:
    # The demo world's clock starts at 2026-11-24 09:00 JST (a Tuesday): NWS is down 10:00–11:00.
    plan = FaultPlan([Fault("outage", "nws.core", datetime.fromisoformat("2026-11-24T10:00+09:00"), 3600.0)])
    result = simulate(SimulationConfig(days=1, mode="real", size=60, seed=6, faults=plan, queries_per_day=14,
                                       changes_per_day=3, data_dir=tmp_path / "run"))
    assert result["run"]["start"].startswith("2026-11-24T09:")
    assert result["lost_messages"] == 0
    assert result["messages"]["retries"] > 0  # senders retried while NWS was down
    assert result["messages"]["restamped"] > 0  # …and re-stamped what waited past half the freshness window
    assert result["audit"]["ok"], result["audit"]  # hash chains intact, every mediated exchange recorded 3 ways
    denied = {k for k in result["decisions"] if k.endswith(":deny")}
    assert denied <= {"NWS-001:deny"}  # only the list refusals the script asked for: no stale or expired message
    fault = result["faults"][0]
    assert fault["backlog_peak"] > 0 and fault["recovery_s"] is not None


def _real_hops(label: str, driver: DesDriver) -> Counter[tuple[str, str, str]]:
    out: Counter[tuple[str, str, str]] = Counter()
    for track in driver.tracks:
        if track.label == label:
            for hop in track.hops:
                if hop.sender != "staff":
                    out[(kind_of(hop.sender), kind_of(hop.recipient), hop.message_type)] += 1
    return out


def _flow_hops(flow: str) -> Counter[tuple[str, str, str]]:
    return Counter((ROLE_KIND[s.sender], ROLE_KIND[s.role], s.message) for s in steps_of(FLOWS[flow])
                   if s.sender is not None)


def test_cost_model_flows_are_the_real_flows(tmp_path: Path) -> None:
    ctx, start = new_world_for_real_mode(tmp_path / "w", 60, 8)
    try:
        params = SimParams(windows={})
        driver = DesDriver(ctx.run.world, start, params=params, costs=CostTable.default(), horizon=86_400.0)
        pop = ctx.run.population
        person = next(r for r in pop.residents["kuwana"] if r["status"] == "active" and not r["protective_measure"])
        head = next(r for r in pop.residents["kurashiki"] if r["status"] == "active" and r["is_head"])
        mover = pop.movers[0]["ltc_atena_number"]
        t = 10 * 3600.0
        script = [
            Action(t, "move_within", "kuwana", person["resident_code"],
                   (("address", person["address"]), ("postal_code", person["postal_code"]))),
            Action(t + 600, "birth", "kurashiki", head["household_id"],
                   (("family", head["name"].split()[0]), ("family_kana", head["name_kana"].split()[0]))),
            Action(t + 1200, "query", "kurashiki", mover),
            Action(t + 1800, "query_refused", "kurashiki", mover),
            Action(t + 2400, "query_held", "kurashiki", pop.protected_movers[0]["ltc_atena_number"]),
        ]
        run_des(ctx, driver, script, params)
        driver.run()
        assert _real_hops("move_within", driver) == _flow_hops("change")
        assert _real_hops("birth", driver) == _flow_hops("birth")
        assert _real_hops("query", driver) == _flow_hops("query")
        assert _real_hops("query_refused", driver) == _flow_hops("query_refused")
        held = _real_hops("query_held", driver) + _real_hops("query_held.release", driver)
        assert held == _flow_hops("query_held")
    finally:
        ctx.run.world.close()


@pytest.mark.slow
def test_real_mode_is_reproducible_from_a_seed(tmp_path: Path) -> None:
    runs = [simulate(SimulationConfig(days=1, mode="real", size=60, seed=4, data_dir=tmp_path / f"r{i}",
                                      start=datetime.fromisoformat("2026-11-25T00:00+09:00"))) for i in range(2)]
    a, b = runs
    assert a["decisions"] == b["decisions"]
    assert a["latency"]["end_to_end"] == b["latency"]["end_to_end"]
    assert a["throughput"] == b["throughput"]
