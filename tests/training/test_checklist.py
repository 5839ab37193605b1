"""`jukisim explain checklist`: every ORG/PHY item of a profile is listed to be examined, placed by its related
technical controls, with that profile's citation and the evidence, and nothing is ever shown as passed."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from simulator.controls.catalogue import PROFILES, SEED_FILES, Kind, load_catalogue
from simulator.errors import InputError
from simulator.training.checklist import GENERAL, STAGES, build_checklist, evidence_text, print_checklist
from simulator.training.cli import app
from simulator.training.flows import available_flows

CATALOGUE = load_catalogue()
CHECKLIST_KINDS = (Kind.ORGANISATIONAL, Kind.PHYSICAL)
PASS_WORDS = re.compile(r"検証済|合格|適合|\bverified\b|\bpassed\b|\bPASS\b|✔")


def _framing(text: str) -> str:
    """The checklist's own words: catalogue text (titles, claims, quotes, evidence) removed."""
    for control in CATALOGUE:
        for lang in ("ja", "en"):
            text = text.replace(control.claim(lang), "").replace(control.title(lang), "")
        for evidence in control.evidence_to_examine:
            for lang in ("ja", "en"):
                text = text.replace(evidence_text(evidence, lang), "")  # type: ignore[arg-type]
        for source in control.sources:
            text = text.replace(source.quote or "\0", "")
    return text


def _expected(profile: str) -> set[str]:
    return {c.id for c in CATALOGUE.filter(profile=profile) if c.kind in CHECKLIST_KINDS}


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_org_and_phy_item_of_the_profile_is_listed_once(profile: str) -> None:
    listed = [item.control.id for _, items in build_checklist(profile, CATALOGUE) for item in items]
    assert sorted(listed) == sorted(_expected(profile))
    assert len(listed) == len(set(listed))


@pytest.mark.parametrize("profile", list(PROFILES))
def test_items_sit_at_the_stage_of_their_related_technical_controls(profile: str) -> None:
    order = [s.id for s in (*STAGES, GENERAL)]
    for stage, items in build_checklist(profile, CATALOGUE):
        for item in items:
            technical = [CATALOGUE.get(r) for r in item.control.related]
            technical = [r for r in technical if r.kind is Kind.TECHNICAL]
            assert [r.id for r in item.related] == [r.id for r in technical]
            if not technical:
                assert stage is GENERAL
                continue
            stages = [next((s for s in STAGES if r.area in s.areas), GENERAL) for r in technical]
            assert stage.id == min((s.id for s in stages), key=order.index)
            assert any(r.area in stage.areas for r in item.related)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_citations_are_the_profiles_own_seed(profile: str) -> None:
    for _, items in build_checklist(profile, CATALOGUE):
        for item in items:
            assert item.citations, item.control.id
            assert {s.seed for s in item.citations} == {SEED_FILES[profile]}


def test_stage_flows_are_runnable_flows() -> None:
    runnable = {f.id for f in available_flows()}
    for stage in STAGES:
        assert set(stage.flows) <= runnable, stage.id


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_printed_items_carry_claim_citation_and_evidence_and_no_pass(lang: str) -> None:
    buffer = io.StringIO()
    count = print_checklist(Console(file=buffer, width=400), lang, "tsukuba")  # type: ignore[arg-type]
    text = buffer.getvalue()
    assert count == len(_expected("tsukuba"))
    for control_id in _expected("tsukuba"):
        control = CATALOGUE.get(control_id)
        assert f"☐ {control_id}" in text
        assert control.claim(lang) in text
        for evidence in control.evidence_to_examine:
            assert evidence_text(evidence, lang) in text
    assert SEED_FILES["tsukuba"] in text
    results = [line.strip() for line in text.splitlines() if line.strip().startswith(("確認結果", "result"))]
    assert len(results) == count
    assert all(("未確認" if lang == "ja" else "not yet examined") in line for line in results)
    assert not PASS_WORDS.search(_framing(text))


def test_evidence_is_shown_in_the_readers_language() -> None:
    assert evidence_text("様式 / the form", "ja") == "様式"
    assert evidence_text("様式 / the form", "en") == "the form"
    assert evidence_text("様式のみ", "en") == "様式のみ"


def test_unknown_profile_names_the_field() -> None:
    with pytest.raises(InputError, match="profile"):
        build_checklist("nowhere", CATALOGUE)


def test_cli_checklist_and_explain_checklist(tmp_path: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["checklist", "--profile", "iizuka", "--lang", "en"])
    assert shown.exit_code == 0, shown.output
    assert all(i in shown.output for i in _expected("iizuka"))
    via_explain = runner.invoke(app, ["explain", "checklist", "--profile", "kurashiki"])
    assert via_explain.exit_code == 0, via_explain.output
    assert all(i in via_explain.output for i in _expected("kurashiki"))
    out = tmp_path / "checklist.md"
    written = runner.invoke(app, ["checklist", "--out", str(out)])
    assert written.exit_code == 0, written.output
    page = out.read_text(encoding="utf-8")
    boxes = sum(len(CATALOGUE.get(i).evidence_to_examine) for p in PROFILES for i in _expected(p))
    assert page.count("- [ ] ") == boxes
    assert not PASS_WORDS.search(_framing(page))
    bad = runner.invoke(app, ["checklist", "--profile", "nowhere"])
    assert bad.exit_code == 2
    assert "profile" in bad.output


def test_explain_checklist_html_is_one_offline_page_of_tick_boxes(tmp_path: Path) -> None:
    page = tmp_path / "checklist.html"
    result = CliRunner().invoke(
        app, ["explain", "checklist", "--profile", "sapporo", "--lang", "en", "--html", str(page)]
    )
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    expected = _expected("sapporo")
    assert text.count("<input type=checkbox>") == sum(len(CATALOGUE.get(i).evidence_to_examine) for i in expected)
    assert all(f"id='sapporo-{i}'" in text for i in expected)
    assert "<script" not in text and "http" not in text
    assert text.count("not yet examined") == len(expected)
    assert not PASS_WORDS.search(_framing(text))
