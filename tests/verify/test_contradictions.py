"""Every self-contradiction a profile records has its scenario, and every contradiction scenario answers one.

A profile's `contradictions:` entry names `contradiction-<key>-<n>`; the scenario lives in
scenarios/verify/contradictions/<key>/, runs in that profile, and says which reading jukisim implements.
Running the scenarios is `jukisim verify scenarios/verify/contradictions`; this test checks only the links.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.controls.catalogue import PROFILES, load_catalogue, project_root
from simulator.profiles import Contradiction, load_profile
from simulator.verify.scenario import Scenario, load_scenario

FOLDER = project_root() / "scenarios" / "verify" / "contradictions"


def _scenarios() -> dict[str, tuple[Path, Scenario]]:
    found: dict[str, tuple[Path, Scenario]] = {}
    for path in sorted(FOLDER.rglob("*.yaml")):
        scenario = load_scenario(path)
        assert scenario.id not in found, f"{path}: id {scenario.id} is used twice"
        found[scenario.id] = (path, scenario)
    return found


SCENARIOS = _scenarios()
CONTRADICTIONS = [(key, c) for key in PROFILES for c in load_profile(key).contradictions]


def test_every_profile_records_contradictions() -> None:
    assert CONTRADICTIONS, "no profile records a contradiction"
    assert {key for key, _ in CONTRADICTIONS} == set(PROFILES)


@pytest.mark.parametrize(("key", "contradiction"), CONTRADICTIONS, ids=[c.id for _, c in CONTRADICTIONS])
def test_contradiction_names_a_scenario_in_its_profile(key: str, contradiction: Contradiction) -> None:
    scenario_id = contradiction.scenario
    assert scenario_id in SCENARIOS, f"{contradiction.id}: no scenario {scenario_id} under {FOLDER}"
    path, scenario = SCENARIOS[scenario_id]
    assert path == FOLDER / key / f"{scenario_id}.yaml", f"{scenario_id} should be at contradictions/{key}/"
    assert scenario.profiles == [key], f"{path}: profile must be {key!r}, got {scenario.profiles}"
    assert scenario.title_ja and scenario.title_en
    missing = sorted(set(contradiction.controls) - set(scenario.controls))
    assert not missing, f"{path}: controls should name the contradiction's related controls {missing}"


def test_every_contradiction_scenario_is_named_by_a_profile() -> None:
    named = {c.scenario for _, c in CONTRADICTIONS}
    orphans = sorted(set(SCENARIOS) - named)
    assert not orphans, f"scenarios no profile's contradictions name: {orphans}"


def test_scenario_controls_exist() -> None:
    catalogue = load_catalogue()
    for path, scenario in SCENARIOS.values():
        unknown = sorted(c for c in scenario.controls if c not in catalogue)
        assert not unknown, f"{path}: unknown controls {unknown}"
