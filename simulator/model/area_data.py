"""Per-area facts of the municipality profiles (scenarios/data/<area>.yaml): the cited fact, and the one loader.

Each area beyond the linkage spine (business systems, networks, media, contractors, retention, e-application …)
keeps its per-profile parameters in a YAML file keyed by profile, every fact with the seed lines it comes from
and, where the seed is silent, ``inferred: true`` with the reason. This module validates such files and reports a
mistake as ``file:line: field: rule``; it must never decide what a fact means (each area's model does).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.errors import InputError
from simulator.yamlmarks import YamlProblems, dotted, line_for, load_marked

__all__ = ["DATA_DIR", "Cited", "load_area_file"]

#: scenarios/data/, beside the profiles.
DATA_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "data"
_SEED = r"^\d{3}_[0-9a-f]{16}\.txt$"

M = TypeVar("M", bound=BaseModel)


class Cited(BaseModel):
    """A fact of a profile with the seed lines it comes from; an inferred value says why it had to be inferred."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: str = Field(pattern=_SEED)
    lines: tuple[int, int]
    inferred: bool = False
    reason: str | None = None

    @field_validator("lines")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 1 or v[1] < v[0]:
            raise ValueError(f"lines {list(v)} must be [first, last] with 1 <= first <= last")
        return v

    @model_validator(mode="after")
    def _reasoned(self) -> Cited:
        if self.inferred and not (self.reason or "").strip():
            raise ValueError("an inferred value needs a reason (why the seed is silent and where the value comes from)")
        return self


def load_area_file(source: str | Path, model: type[M]) -> dict[str, M]:
    """Every profile's entry of an area file (a name under scenarios/data/, or a path), validated by ``model``.

    Top-level keys starting with ``_`` are YAML anchors shared by the entries and are skipped. The first problem
    raises InputError naming ``file:line`` and the dotted field, with pydantic's rule.
    """
    path = source if isinstance(source, Path) else DATA_DIR / f"{source}.yaml"
    return dict(_load(path, model))


@cache
def _load(path: Path, model: type[M]) -> tuple[tuple[str, M], ...]:
    try:
        raw, marks = load_marked(path.read_text(encoding="utf-8"), path.name)
    except YamlProblems as problems:
        problem = problems.problems[0]
        raise InputError(f"{path.name}:{problem.line or '?'}", problem.rule) from None
    except FileNotFoundError:
        raise InputError(str(path), "no such area data file") from None
    if not isinstance(raw, dict):
        raise InputError(path.name, "must be a mapping of profile key to that profile's facts")
    out: list[tuple[str, M]] = []
    for key, value in raw.items():
        if str(key).startswith("_"):
            continue
        try:
            out.append((str(key), model.model_validate(value or {})))
        except ValidationError as error:
            first = error.errors()[0]
            loc = (key, *first["loc"])
            line = line_for(marks, loc)
            raise InputError(f"{path.name}:{line or '?'} {dotted(loc)}", first["msg"]) from None
    return tuple(out)
