"""本人確認情報照会, 4情報検索の経路, card check and 特例転入 (simulator.components.tenshutsu): the key rule on its own,
and what the scenarios' answers actually carried (who answered, and only the person keyed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulator.components.base import Component
from simulator.components.tenshutsu import JukinetServices
from simulator.controls.catalogue import project_root
from simulator.errors import Refusal
from simulator.verify import runner as verify_runner
from simulator.verify.runner import TemplateCache, run_scenario
from simulator.verify.scenario import load_scenario
from simulator.verify.steps import StepRecord

SCENARIOS = project_root() / "scenarios" / "verify"
CODE = "12345678901"  # a two-kinds key is refused before its digits are checked


def _component() -> Component:
    component = Component.__new__(Component)
    component.party = "test.municipal_cs"
    return component


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ({"name": "山田 太郎", "birth_date": "1980-01-02"}, "basic4"),
        ({"name": "山田 太郎", "address": "三重県桑名市", "sex": "1"}, "basic4"),
    ],
)
def test_one_kind_of_key_is_accepted(key: dict[str, Any], kind: str) -> None:
    assert JukinetServices.key_kind(_component(), key, 2, True) == kind


@pytest.mark.parametrize(
    ("key", "code", "field"),
    [
        ({}, "Input.FieldInvalid", "key"),
        ({"keyword": "山田"}, "Input.FieldNotAllowed", "keyword"),
        ({"resident_code": CODE, "name": "山田 太郎", "birth_date": "1980-01-02"}, "Input.FieldInvalid", "key"),
        ({"name": "山田 太郎"}, "Input.SearchTooBroad", "key"),
        ({"name": "山田 太郎", "birth_date": "1980-02-30"}, "Input.FieldInvalid", "birth_date"),
    ],
)
def test_no_key_free_text_two_kinds_or_too_broad_is_refused(key: dict[str, Any], code: str, field: str) -> None:
    with pytest.raises(Refusal) as caught:
        JukinetServices.key_kind(_component(), key, 2, True)
    assert (str(caught.value.code), caught.value.control_id, caught.value.field) == (code, "CS-021", field)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> TemplateCache:
    return TemplateCache(tmp_path_factory.mktemp("verify-tenshutsu"))


def _run(cache: TemplateCache, monkeypatch: pytest.MonkeyPatch, path: Path, profile: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    original = verify_runner.run_step

    def spy(ctx: Any, kind: str, name: str, params: dict[str, Any]) -> StepRecord:
        record = original(ctx, kind, name, params)
        values[name] = record.value
        return record

    monkeypatch.setattr(verify_runner, "run_step", spy)
    result = run_scenario(load_scenario(path), cache, profile)
    assert result.passed, result.failures
    return values


@pytest.mark.slow  # builds a verification world (~10 s)
def test_queries_are_answered_by_the_national_server_with_the_keyed_person_only(
    cache: TemplateCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _run(cache, monkeypatch, SCENARIOS / "cs" / "cs-021-query-keys.yaml", "kuwana")
    for step in ("by_my_number", "by_resident_code", "by_basic4"):
        answer = values[step]["answer"]
        assert answer["answered_by"] == "jlis.national_server"
        assert len(answer["records"]) == 1
    assert values["no_key"] is None


@pytest.mark.slow  # builds a verification world (~10 s)
def test_searches_are_answered_where_the_person_lives(cache: TemplateCache, monkeypatch: pytest.MonkeyPatch) -> None:
    values = _run(cache, monkeypatch, SCENARIOS / "jlis" / "jlis-003-search-routing.yaml", "iizuka")
    assert values["local_resident"]["route"] == "cs" and len(values["local_resident"]["records"]) == 1
    assert values["same_prefecture"]["answer"]["answered_by"] == "jlis.prefectural_server.fukuoka"
    assert values["other_prefecture"]["answer"]["answered_by"] == "jlis.national_server"
    assert len(values["other_prefecture"]["answer"]["records"]) == 1


@pytest.mark.slow  # builds a verification world (~10 s)
def test_card_check_marks_only_a_known_card_verified(cache: TemplateCache, monkeypatch: pytest.MonkeyPatch) -> None:
    values = _run(cache, monkeypatch, SCENARIOS / "cs" / "cs-018-card-check.yaml", "sapporo")
    assert values["valid_card"]["answer"]["verified"] == 1
    assert values["unknown_code"]["answer"] == {"answered_by": "jlis.national_server", "records": [], "verified": 0}


@pytest.mark.slow  # builds a verification world (~10 s)
def test_special_move_in_returns_the_held_data_once(cache: TemplateCache, monkeypatch: pytest.MonkeyPatch) -> None:
    values = _run(cache, monkeypatch, SCENARIOS / "cs" / "cs-017-tenshutsu-hold.yaml", "sapporo")
    assert set(values["move_in_day5"]) == {"resident_code", "name", "birth_date", "sex", "address"}
    assert values["daily_purge"] == 1
