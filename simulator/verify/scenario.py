"""Scenario files: what an auditor's verification run does and what it must observe, as reviewable YAML.

A scenario names the profile whose world it runs in, the controls it verifies, the steps (ordinary and
adversarial), and the expectations (decisions by control id and outcome, answers, records that must exist,
data that must not appear). This module must never run anything: it only reads, checks and describes
scenarios, and points at the file, line and field of any mistake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulator.yamlmarks import YamlProblems, line_for, load_marked

__all__ = [
    "AbsentExpectation",
    "AnswerExpectation",
    "DecisionExpectation",
    "Expectations",
    "RecordExpectation",
    "RefusalExpectation",
    "Scenario",
    "ScenarioError",
    "Step",
    "load_scenario",
]


class ScenarioError(ValueError):
    """A scenario file that cannot be run: names the file, the line and the field."""

    def __init__(self, path: Path | str, line: int | None, field: str, rule: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.rule = rule
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {field}: {rule}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Model):
    """One action. ``do`` names a step kind from the step library; the other keys are its parameters."""

    do: str
    name: str | None = None  # a label later expectations refer to
    params: dict[str, Any] = Field(default_factory=dict)


class DecisionExpectation(_Model):
    control: str
    outcome: Literal["allow", "deny", "hold"]
    step: str | None = None  # only decisions taken during that step
    component: str | None = None  # party id, or a suffix such as "intermediate_server.kuwana"
    code: str | None = None  # RefusalCode value for a deny


class AnswerExpectation(_Model):
    step: str
    status: Literal["provided", "refused", "declined", "open"]
    code: str | None = None
    items: list[str] | None = None


class RefusalExpectation(_Model):
    step: str
    code: str
    control: str | None = None


class RecordExpectation(_Model):
    store: str  # organisation store name without .sqlite, e.g. "nws", "platform.kuwana"
    table: Literal["provision_records", "audit_trail"] = "provision_records"
    kind: str
    step: str | None = None
    at_least: int = 1


class AbsentExpectation(_Model):
    item: Literal["my_number", "resident_code", "linkage_code"]
    where: Literal["nws_traffic", "city_traffic", "nws_side_stores", "city_stores"]


class Expectations(_Model):
    decisions: list[DecisionExpectation] = Field(default_factory=list)
    no_decisions: list[DecisionExpectation] = Field(default_factory=list)
    answers: list[AnswerExpectation] = Field(default_factory=list)
    refusals: list[RefusalExpectation] = Field(default_factory=list)
    records: list[RecordExpectation] = Field(default_factory=list)
    absent: list[AbsentExpectation] = Field(default_factory=list)
    steps_succeed: list[str] = Field(default_factory=list)  # steps that must end without a refusal


class Scenario(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{2,80}$")
    title_ja: str
    title_en: str
    profile: str | list[str]  # one profile key, a list, or "all": the scenario runs in each profile's world
    controls: list[str] = Field(min_length=1)
    description_ja: str = ""
    description_en: str = ""
    population: dict[str, int] = Field(default_factory=dict)  # size, seed
    steps: list[Step] = Field(min_length=1)
    expect: Expectations
    source: str = ""  # the file it came from (filled by the loader)
    xfail_reason: str | None = None  # set only for deliberately failing examples in tests

    @property
    def profiles(self) -> list[str]:
        if self.profile == "all":
            return ["kuwana", "tsukuba", "sapporo", "iizuka", "kurashiki"]
        return [self.profile] if isinstance(self.profile, str) else list(self.profile)

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> Any:
        # In YAML a step is written flat: {do: query, name: q1, row: "94", …}; parameters sit beside `do`.
        if not isinstance(value, list):
            return value
        out = []
        for raw in value:
            if isinstance(raw, dict) and "params" not in raw:
                params = {k: v for k, v in raw.items() if k not in ("do", "name")}
                out.append({"do": raw.get("do"), "name": raw.get("name"), "params": params})
            else:
                out.append(raw)
        return out


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(path, None, "file", f"cannot be read ({exc.strerror})") from None
    try:
        data, marks = load_marked(text, str(path))
    except YamlProblems as exc:
        problem = exc.problems[0]
        field = "yaml" if problem.field == "(YAML syntax)" else problem.field
        raise ScenarioError(path, problem.line, field, problem.rule) from None
    if not isinstance(data, dict):
        raise ScenarioError(
            path, 1, "scenario", "the file must hold one mapping (id, title_ja, profile, steps, expect)"
        )
    try:
        return Scenario.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(p) for p in loc if p != "params") or "scenario"
        raise ScenarioError(
            path, line_for(marks, tuple(p for p in loc if p != "params")), field, first["msg"]
        ) from None
