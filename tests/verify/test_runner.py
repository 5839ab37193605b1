"""The verification runner and its report: a passing and a deliberately failing scenario, bad files, and the
three report formats checked against their schemas (JSON Schema, the JUnit XSD, an HTML5 parser in strict mode)."""

from __future__ import annotations

import json
from pathlib import Path

import html5lib
import jsonschema
import pytest
import xmlschema
from typer.testing import CliRunner

from simulator.cli import app
from simulator.controls.catalogue import project_root
from simulator.verify.runner import TemplateCache, run_scenario
from simulator.verify.scenario import ScenarioError, load_scenario

EXAMPLE = project_root() / "scenarios" / "verify" / "nws" / "nws-001-list.yaml"
runner = CliRunner()

FAILING = """\
id: deliberately-failing
title_ja: 許可されるはずの照会を拒否と期待する（わざと不合格）
title_en: expects a refusal for a query that is allowed (fails on purpose)
profile: kurashiki
controls: [NWS-001]
steps:
  - do: query
    name: listed
    person: mover
expect:
  decisions:
    - {control: NWS-001, outcome: deny, step: listed}
  answers:
    - {step: listed, status: refused}
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> TemplateCache:
    return TemplateCache(tmp_path_factory.mktemp("verify"))


def test_passing_scenario_proves_both_outcomes(cache: TemplateCache) -> None:
    result = run_scenario(load_scenario(EXAMPLE), cache, "kurashiki")
    assert result.passed, result.failures
    assert result.verified() >= {("NWS-001", "allow"), ("NWS-001", "deny")}
    deny = next(e for e in result.evidence if e["outcome"] == "deny")
    assert deny["decision"]["component"] == "nws.core"
    assert deny["decision"]["code"] == "Permission.NotOnPermissionList"


def test_deliberately_failing_scenario_fails_and_says_why(cache: TemplateCache, tmp_path: Path) -> None:
    path = tmp_path / "failing.yaml"
    path.write_text(FAILING, encoding="utf-8")
    result = run_scenario(load_scenario(path), cache, "kurashiki")
    assert not result.passed
    assert any("expected decision NWS-001 deny in step listed" in f and "NWS-001:allow" in f for f in result.failures)
    assert any("answer provided" in f and "expected refused" in f for f in result.failures)
    assert result.verified() == set()  # a failing scenario proves nothing


def test_each_scenario_starts_from_the_same_world(cache: TemplateCache) -> None:
    first = run_scenario(load_scenario(EXAMPLE), cache, "kurashiki")
    second = run_scenario(load_scenario(EXAMPLE), cache, "kurashiki")
    assert first.passed and second.passed
    assert [d.control_id for d in first.decisions] == [d.control_id for d in second.decisions]


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        (
            "id: x-bad\ntitle_ja: a\ntitle_en: a\nprofile: kuwana\ncontrols: [NWS-001]\nsteps:\n  - do: query\nexpect:\n"
            "  decisions:\n    - {control: NWS-001, outcome: maybe}\n",
            10,
            "expect.decisions.0.outcome",
        ),
        (
            "id: x-bad2\ntitle_ja: a\ntitle_en: a\nprofile: kuwana\ncontrols: []\nsteps:\n  - do: query\nexpect: {}\n",
            5,
            "controls",
        ),
        (
            "id: x-bad3\ntitle_ja: a\ntitle_en: a\nprofile: kuwana\ncontrols: [NWS-001]\nsteps:\n  - do: query\n"
            "expect:\n  decision: []\n",
            9,
            "expect.decision",
        ),
    ],
)
def test_bad_scenario_file_names_file_line_and_field(tmp_path: Path, text: str, line: int, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as excinfo:
        load_scenario(path)
    assert excinfo.value.line == line and excinfo.value.field == field
    assert str(path) in str(excinfo.value)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: a\nsteps: [\n  - do: x\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as excinfo:
        load_scenario(path)
    assert excinfo.value.field == "yaml" and excinfo.value.line is not None


def test_unknown_control_id_always_fails(tmp_path: Path) -> None:
    path = tmp_path / "unknown.yaml"
    path.write_text(
        FAILING.replace("id: deliberately-failing", "id: unknown-control").replace(
            "controls: [NWS-001]", "controls: [NWS-999]"
        ),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["verify", str(path), "--out", str(tmp_path / "out"), "--lang", "en"])
    assert result.exit_code == 1, result.output
    assert "unknown control id(s) NWS-999" in result.output


def test_cli_writes_reports_that_parse_against_their_schemas(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(app, ["verify", str(EXAMPLE), "--out", str(out), "--work", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    schema = json.loads((project_root() / "simulator" / "verify" / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, schema)
    nws = next(c for c in data["controls"] if c["id"] == "NWS-001")
    assert nws["allowed_verified"] and nws["refused_verified"] and nws["verdict"] == "verified"
    assert all(c["verdict"] == "checklist" for c in data["controls"] if c["kind"] != "technical")
    assert not any(c["verdict"] == "verified" for c in data["controls"] if c["kind"] != "technical")
    xmlschema.XMLSchema(str(Path(__file__).parent / "junit.xsd")).validate(str(out / "junit.xml"))
    html5lib.HTMLParser(strict=True).parse((out / "report.html").read_text(encoding="utf-8"))
    assert "トレーサビリティ" in (out / "report.html").read_text(encoding="utf-8")


def test_strict_fails_when_controls_lack_proof(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["verify", str(EXAMPLE), "--strict", "--out", str(tmp_path / "o"), "--work", str(tmp_path / "w")]
    )
    assert result.exit_code == 1
    assert "--strict" in result.output
    junit = (tmp_path / "o" / "junit.xml").read_text(encoding="utf-8")
    assert "StrictCoverage" in junit
    xmlschema.XMLSchema(str(Path(__file__).parent / "junit.xsd")).validate(str(tmp_path / "o" / "junit.xml"))


def test_unknown_profile_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["verify", "--profile", "tokyo", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--profile" in result.output
