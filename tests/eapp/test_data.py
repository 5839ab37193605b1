"""scenarios/data/eapp_saas_cloud.yaml: each part is claimed exactly where the catalogue says, cited, and bad
entries name the field and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.components.eapp_saas_cloud import AreaRules, area_rules, data_path
from simulator.controls.catalogue import PROFILES, SEED_FILES, load_catalogue
from simulator.errors import InputError

CATALOGUE = load_catalogue()

# Which data entry makes a profile's world enforce each control.
CLAIMED_BY = {
    "EAPP-001": lambda r: r.e_application is not None,
    "EAPP-002": lambda r: r.e_application is not None and r.e_application.card_autofill is not None,
    "EAPP-003": lambda r: r.e_application is not None,
    "EAPP-004": lambda r: r.e_application is not None,
    "EAPP-005": lambda r: r.e_application is not None,
    "EAPP-006": lambda r: r.e_application is not None and r.e_application.terminal_erasure is not None,
    "EAPP-007": lambda r: r.e_application is not None and r.e_application.versioning is not None,
    "SAAS-001": lambda r: r.ai_ocr is not None,
    "SAAS-002": lambda r: r.ai_ocr is not None,
    "SAAS-003": lambda r: r.counter_saas is not None,
    "SAAS-004": lambda r: r.counter_saas is not None,
    "SAAS-005": lambda r: r.counter_saas is not None,
    "CLOUD-001": lambda r: r.gov_cloud is not None,
    "CLOUD-002": lambda r: r.gov_cloud is not None and r.gov_cloud.isolation is not None,
    "CLOUD-003": lambda r: r.file_server is not None,
    "CLOUD-004": lambda r: r.backup_center is not None,
}


@pytest.mark.parametrize("control_id", sorted(CLAIMED_BY))
def test_the_data_claims_each_control_in_exactly_the_catalogues_profiles(control_id: str) -> None:
    claimed = {p for p in PROFILES if CLAIMED_BY[control_id](area_rules(p))}
    assert claimed == set(CATALOGUE.get(control_id).profiles)


def _citations(rules: AreaRules) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if "seed" in value:
                found.append((str(value["seed"]), str(value.get("reason") or "")))
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(rules.model_dump())
    return found


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_fact_cites_the_profiles_own_seed(profile: str) -> None:
    for seed, _ in _citations(area_rules(profile)):
        assert seed == SEED_FILES[profile]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = data_path().read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("retention_days: 5", "retention_days: 0"), "ai_ocr.retention_days"),
        (("    server_network: lgwan_asp", "    server_network: lgwan_asp\n    colour: blue"), "ai_ocr.colour"),
        (
            (
                "production_site: dc-east\n    sites: {dc-east: JP, dc-west: JP, dc-overseas: US}\n    seed: 001",
                "production_site: dc-north\n    sites: {dc-east: JP, dc-west: JP, dc-overseas: US}\n    seed: 001",
            ),
            "gov_cloud",
        ),
        (
            ("fields: [name, birth_date, address, my_number, income", "fields: [address, my_number, income"),
            "e_application.procedures[0]",
        ),
    ],
)
def test_bad_entries_name_the_field_and_the_rule(tmp_path: Path, change: tuple[str, str], field: str) -> None:
    old, new = change
    assert old in BASE
    path = _write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(InputError) as err:
        area_rules("tsukuba", path)
    where, _, dotted = err.value.field.partition(" ")
    assert where.startswith("data.yaml:") and where.removeprefix("data.yaml:").isdigit()
    assert dotted.startswith(f"tsukuba.{field}")
    assert err.value.rule


def test_an_inferred_value_needs_a_reason(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "kuwana:\n  file_server:\n    protected_shares: [a]\n    operator_shares: [b]\n"
        "    seed: 000_b81c60476033af2d.txt\n    lines: [1, 1]\n    inferred: true\n",
    )
    with pytest.raises(InputError, match="reason"):
        area_rules("kuwana", path)


def test_a_profile_without_an_entry_claims_nothing(tmp_path: Path) -> None:
    rules = area_rules("sapporo", _write(tmp_path, "tsukuba: {}\n"))
    assert rules == AreaRules()
