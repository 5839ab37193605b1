"""`jukisim controls list/show/check` through typer's CliRunner, in Japanese and English."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from simulator.controls.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def test_list_japanese_by_default() -> None:
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0, res.output
    assert "名称" in res.output and "種別" in res.output
    assert "JUKI-001" in res.output and "PHY-015" in res.output
    assert "226 件" in res.output


def test_list_in_english_with_filters() -> None:
    res = runner.invoke(app, ["list", "--area", "CHUKAN", "--lang", "en"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "Title" in res.output and "23 controls" in res.output
    assert "intermediate_server" in res.output
    res = runner.invoke(app, ["list", "--kind", "physical", "--lang", "en"])
    assert "15 controls" in res.output and "PHY-001" in res.output and "JUKI-001" not in res.output
    res = runner.invoke(app, ["list", "--profile", "sapporo", "--area", "GW"])
    assert res.exit_code == 0 and "4 件" in res.output and "札幌市" in res.output


def test_list_rejects_an_unknown_area() -> None:
    res = runner.invoke(app, ["list", "--area", "NOPE"])
    assert res.exit_code == 2
    assert "unknown area 'NOPE'" in res.output


def test_show_japanese() -> None:
    res = runner.invoke(app, ["show", "CHUKAN-009"])
    assert res.exit_code == 0, res.output
    for expected in ("評価書の主張", "検証する振る舞い", "拒否される例", "出典", "コード上の実施箇所"):
        assert expected in res.output
    assert "000_b81c60476033af2d.txt III-(1)-6 リスク2 ① [C49] L272" in res.output


def test_show_english_lowercase_id() -> None:
    res = runner.invoke(app, ["show", "cs-001", "--lang", "en"])
    assert res.exit_code == 0, res.output
    for expected in ("What the PIA claims", "Behaviour to test", "Refused cases", "Sources", "Kuwana"):
        assert expected in res.output


def test_show_checklist_item() -> None:
    res = runner.invoke(app, ["show", "ORG-017"])
    assert res.exit_code == 0
    assert "確認すべき証跡" in res.output and "チェックリスト項目" in res.output
    res = runner.invoke(app, ["show", "PHY-001", "--lang", "en"])
    assert "Evidence to examine" in res.output and "checklist item" in res.output


def test_show_unknown_id() -> None:
    res = runner.invoke(app, ["show", "CS-999"])
    assert res.exit_code == 2
    assert "unknown control id 'CS-999'" in res.output


def test_check(seeds: Path) -> None:
    res = runner.invoke(app, ["check", "--seeds", str(seeds), "--lang", "en"])
    assert res.exit_code == 0, res.output
    assert "quotes verified against the seed texts: 743" in res.output
    assert res.output.rstrip().endswith("OK")
