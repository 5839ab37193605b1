"""`jukisim load --profile P` for each municipality profile: the profile's world (its municipality and its peer)
runs as services, the staff users of the requester work through it, and no outcome is wrong. Slow: one short
headless run per profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.services.load import LoadSettings, query_plan, run_load
from tests.services.conftest import free_port_base


def test_each_profile_asks_what_its_list_row_allows() -> None:
    assert query_plan("tsukuba", "kuwana", "tsukuba") == {
        "business": "tax", "row": "48", "items": ["local_tax_info", "resident_info"],
        "refused_items": ["health_insurance_info"],
    }
    assert query_plan("kurashiki", "iizuka", "kurashiki")["row"] == "94"
    assert query_plan("demo", "kuwana", "kurashiki")["business"] == "ltc"


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["kuwana", "sapporo", "iizuka"])  # tsukuba and kurashiki share these worlds
def test_short_run_per_profile(tmp_path: Path, profile: str) -> None:
    out = tmp_path / "load"
    summary = run_load(LoadSettings(profile=profile, users=3, spawn_rate=3, duration=8, out=out, size=60, seed=7,
                                    port_base=free_port_base(8), processes="one", think=(0.1, 0.4)),
                       log=lambda _msg: None)
    assert summary.requests > 0
    assert summary.wrong_outcomes == 0, (out / "locust_failures.csv").read_text()
    assert summary.evidence_ok, summary.evidence_problems[:5]
    names = {s.name for s in summary.steps}
    assert {"auto: query→answer", "refused: query→refusal"} <= names, names
    plan = json.loads((out / "plan.json").read_text())
    assert plan["profile"] == profile and plan["movers"]
