"""`explain` and `trace view` from the command line: flows by name, errors that name what exists, the walk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from simulator.training.cli import app
from simulator.training.flows import FLOWS, PLANNED, find_flow

runner = CliRunner()


def test_without_a_flow_it_lists_the_flows() -> None:
    result = runner.invoke(app, ["explain"])
    assert result.exit_code == 0, result.output
    for flow in FLOWS.values():
        assert flow.id in result.output


def test_unknown_flow_names_the_flows_that_exist() -> None:
    result = runner.invoke(app, ["explain", "no_such_flow"])
    assert result.exit_code == 2
    assert "no_such_flow" in result.output
    for flow_id in (
        "move_in",
        "move_within",
        "birth",
        "code_acquisition",
        "replica_update",
        "query",
        "held_query",
        "refused_query",
        "portal",
    ):
        assert flow_id in result.output


def test_planned_flow_says_it_is_not_available_yet() -> None:
    # 世帯変更 has no 届出 form in 既存住基 yet, so it is the one flow still planned.
    result = runner.invoke(app, ["explain", "世帯変更", "--lang", "ja"])
    assert result.exit_code == 2
    assert "世帯変更" in result.output and "今後追加予定" in result.output
    english = runner.invoke(app, ["explain", "household_change", "--lang", "en"])
    assert english.exit_code == 2 and "cannot be run yet" in english.output


def test_flows_are_found_by_japanese_name_and_alias() -> None:
    assert find_flow("情報照会").id == "query"
    assert find_flow("自動応答不可").id == "held_query"
    assert find_flow("転居").id == "move_within"
    assert find_flow("ＱＵＥＲＹ").id == "query"  # full-width input from a Japanese keyboard
    assert find_flow("code-acquisition").id == "code_acquisition"
    assert find_flow("庁内連携").id == "transfer" and find_flow("特例転入").id == "card_move_in"
    assert find_flow("死亡").id == "death" and find_flow("転出").id == "move_out"
    assert find_flow("送付先情報").id == "mailing_info"
    assert "household_change" in PLANNED and "transfer" not in PLANNED and "death" not in PLANNED


def test_explain_walks_the_query_in_english_and_writes_trace_and_page(tmp_path: Path) -> None:
    trace, page = tmp_path / "q.jsonl", tmp_path / "q.html"
    result = runner.invoke(
        app, ["explain", "情報照会", "--lang", "en", "--no-pause", "--trace", str(trace), "--html", str(page)]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "1 / 8" in out and "8 / 8" in out
    assert "Kurashiki intermediate server" in out and "NWS-001" in out
    assert "NWS never saw a My Number." in out
    assert "Query result: the answer arrived (provided)" in out
    lines = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["kind"] == "header" and sum(1 for r in lines if r["kind"] == "hop") == 8
    assert 'data-party="nws.core" data-item="my_number" data-exposure="never"' in page.read_text(encoding="utf-8")


def test_explain_waits_for_enter_and_stops_on_q() -> None:
    result = runner.invoke(app, ["explain", "refused_query", "--pause"], input="\nq\n")
    assert result.exit_code == 0, result.output
    assert "1 / 6" in result.output and "2 / 6" in result.output and "3 / 6" not in result.output
    assert "Enter で次へ" in result.output


def test_unknown_person_and_profile_are_named(tmp_path: Path) -> None:
    person = runner.invoke(app, ["explain", "query", "--person", "12345678901", "--no-pause"])
    assert person.exit_code == 2 and "--person" in person.output and "12345678901" in person.output
    profile = runner.invoke(app, ["explain", "query", "--profile", "nowhere", "--no-pause"])
    assert profile.exit_code == 2 and "--profile" in profile.output and "kuwana" in profile.output


def test_trace_view_writes_the_page(query_run: Any, tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    result = runner.invoke(app, ["trace", "view", str(query_run.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "(8 hops)" in result.output
    missing = runner.invoke(app, ["trace", "view", str(tmp_path / "none.jsonl"), "--out", str(out)])
    assert missing.exit_code == 2 and "no such file" in missing.output
