"""The catalogue data: ids, counts against CATALOGUE.md, kinds, citations inside their seeds, lookups."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from simulator.controls.catalogue import (
    AREAS,
    CHANGELOG_LINES,
    QUOTE_MAX,
    Catalogue,
    Kind,
    UnknownControlError,
    default_catalogue_path,
)
from simulator.errors import InputError

# Section A counts as CATALOGUE.md states them ("Count of Section A entries"), kept here so the test still
# means something on a machine without the research folder.
EXPECTED_TECHNICAL = {
    "JUKI": 8, "GW": 4, "CS": 24, "JLIS": 3, "ATENA": 6, "RENKEI": 8, "RELAY": 4, "CHUKAN": 23, "PF": 8,
    "NWS": 5, "GYOMU": 13, "EAPP": 7, "SAAS": 5, "CLOUD": 4, "MADO": 1, "NET": 7, "TERM": 7, "MEDIA": 7,
    "AUTH": 13, "ITAKU": 5, "LOG": 9, "DATA": 5,
}  # fmt: skip


def _raw_ids() -> list[str]:
    ids = []
    for f in sorted(default_catalogue_path().glob("*.yaml")):
        ids += [c["id"] for c in yaml.safe_load(f.read_text(encoding="utf-8"))["controls"]]
    return ids


def test_every_id_is_unique_across_files() -> None:
    ids = _raw_ids()
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"ids given more than once: {dupes}"
    assert len(ids) == 226


def test_technical_counts_per_area(catalogue: Catalogue) -> None:
    counts = Counter(c.area for c in catalogue.filter(kind="technical"))
    assert dict(counts) == EXPECTED_TECHNICAL
    assert sum(counts.values()) == 176


def test_counts_match_catalogue_md(catalogue: Catalogue, catalogue_md: str) -> None:
    stated = re.search(r"\*\*Count of Section A entries:\*\*(.+?)\*\*Total: (\d+)", catalogue_md, re.S)
    assert stated, "CATALOGUE.md no longer states its Section A counts"
    declared = {a: int(n) for a, n in re.findall(r"([A-Z]+) (\d+)", stated.group(1))}
    headings = Counter(m.split("-")[0] for m in re.findall(r"^#### ([A-Z]+-\d{3}) ·", catalogue_md, re.M))
    ours = Counter(c.area for c in catalogue.filter(kind="technical"))
    assert declared == dict(headings) == dict(ours)
    assert int(stated.group(2)) == sum(ours.values())
    org = set(re.findall(r"^\| (ORG-\d{3}) \|", catalogue_md, re.M))
    phy = set(re.findall(r"^\| (PHY-\d{3}) \|", catalogue_md, re.M))
    assert {c.id for c in catalogue.by_kind("organisational")} == org
    assert {c.id for c in catalogue.by_kind("physical")} == phy


def test_ids_follow_their_area(catalogue: Catalogue) -> None:
    for c in catalogue:
        assert re.fullmatch(rf"{c.area}-\d{{3}}", c.id)
        assert c.area in AREAS


def test_org_and_phy_are_checklist_items(catalogue: Catalogue) -> None:
    org, phy = catalogue.by_area("ORG"), catalogue.by_area("PHY")
    assert (len(org), len(phy)) == (35, 15)
    for c in org + phy:
        assert c.kind is (Kind.ORGANISATIONAL if c.area == "ORG" else Kind.PHYSICAL)
        assert c.evidence_to_examine and all(e.strip() for e in c.evidence_to_examine)
        assert c.assert_ is None and not c.refused_cases


def test_technical_controls_are_testable(catalogue: Catalogue) -> None:
    for c in catalogue.by_kind("technical"):
        assert c.assert_ and c.allowed_case and c.refused_cases, c.id
        assert c.enforced_by, c.id


def test_every_entry_has_both_languages_and_a_claim(catalogue: Catalogue) -> None:
    jp = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
    for c in catalogue:
        assert c.title_ja and c.title_en and c.claim_ja and c.claim_en, c.id
        assert jp.search(c.claim_ja), f"{c.id}: claim_ja is not Japanese"
        assert not jp.search(c.claim_en.replace("My Number", "")), f"{c.id}: claim_en should be plain English"


def test_claims_are_not_copied_from_the_seed(catalogue: Catalogue) -> None:
    # claim_ja is our own wording: it must not contain any long run of a quoted seed phrase.
    for c in catalogue:
        for s in c.sources:
            if s.quote and len(s.quote) >= 20:
                assert s.quote not in c.claim_ja, f"{c.id}: claim_ja copies the seed"


def test_every_source_line_is_inside_its_seed(catalogue: Catalogue, seeds: Path) -> None:
    lengths = {}
    for c in catalogue:
        for s in c.sources:
            if s.seed not in lengths:
                lengths[s.seed] = len((seeds / s.seed).read_text(encoding="utf-8").splitlines())
            assert 1 <= s.lines[0] <= s.lines[1] <= lengths[s.seed], f"{c.id} {s.cite()}"
            if s.changelog:
                lo, hi = CHANGELOG_LINES[s.seed]
                assert lo <= s.lines[0] and s.lines[1] <= hi, f"{c.id} {s.cite()}: not in the change log"


def test_quotes_are_short_and_present(catalogue: Catalogue) -> None:
    for c in catalogue:
        for s in c.sources:
            assert s.quote, f"{c.id} {s.cite()}: no quote"
            assert len(s.quote) <= QUOTE_MAX


def test_profiles_are_the_cited_municipalities(catalogue: Catalogue) -> None:
    for c in catalogue:
        assert set(c.profiles) == {s.profile for s in c.sources}
        if c.scope.value == "profile-specific" and c.kind is Kind.TECHNICAL:
            assert c.scope_note and c.scope_note.startswith("profile-specific")


def test_related_ids_exist(catalogue: Catalogue) -> None:
    for c in catalogue:
        for r in c.related:
            assert r in catalogue


def test_lookup_by_id(catalogue: Catalogue) -> None:
    c = catalogue.get("CHUKAN-009")
    assert c.title_ja.startswith("照会許可用照合リスト")
    assert "kurashiki" in c.profiles


def test_unknown_id_is_a_clear_error(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownControlError) as err:
        catalogue.get("CHUKAN-099")
    assert isinstance(err.value, KeyError)
    assert err.value.control_id == "CHUKAN-099"
    assert "unknown control id 'CHUKAN-099'" in str(err.value)
    assert "CHUKAN-009" in err.value.suggestions


def test_filters(catalogue: Catalogue) -> None:
    assert len(catalogue.filter(area="chukan")) == 23
    assert all(c.kind is Kind.PHYSICAL for c in catalogue.filter(kind="physical"))
    sapporo = catalogue.filter(profile="sapporo", area="GW")
    assert [c.id for c in sapporo] == ["GW-001", "GW-002", "GW-003", "GW-004"]
    assert catalogue.filter(profile="kuwana", area="GW") == []
    with pytest.raises(InputError) as err:
        catalogue.filter(area="NOPE")
    assert err.value.field == "area"
    with pytest.raises(InputError):
        catalogue.filter(profile="osaka")
    with pytest.raises(InputError):
        catalogue.filter(kind="legal")
