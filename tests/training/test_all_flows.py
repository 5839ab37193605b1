"""Every flow the registry carries runs end to end, and the local flows run in every seed municipality."""

from __future__ import annotations

import re

import pytest

from simulator.controls.catalogue import PROFILES
from simulator.training.flows import FLOWS, run_flow
from simulator.training.trace import load_trace, who_saw_what

pytestmark = pytest.mark.slow


def _check(records: list[dict[str, object]], flow: str) -> None:
    trace = load_trace(records)
    assert trace.hops, flow
    assert all(h["flow"] == flow for h in trace.hops)
    assert all(h["sealed_opened"] is not False for h in trace.hops)
    seen = who_saw_what(trace.hops)
    if "nws.core" in seen:
        assert seen["nws.core"]["my_number"] == "never" and seen["nws.core"]["resident_code"] == "never"


@pytest.mark.parametrize("name", list(FLOWS))
def test_every_flow_runs(name: str) -> None:
    with run_flow(name) as run:
        _check(run.records, name)
        if FLOWS[name].focus is not None:
            assert any(r.get("message_type") in FLOWS[name].focus for r in run.records)  # type: ignore[operator]


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "kuwana"])
@pytest.mark.parametrize("name", ["move_within", "query", "move_in"])
def test_flows_run_in_every_profile(profile: str, name: str) -> None:
    with run_flow(name, profile=profile) as run:
        _check(run.records, name)
        assert run.context.home in (profile, "kurashiki")
        text = " ".join(str(r) for r in run.records)
        assert not re.search(rf"\b{run.context.person['my_number']}\b", text)
