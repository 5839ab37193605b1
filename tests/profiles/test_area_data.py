"""The one loader of per-area profile facts: every area file loads, and a bad fact names file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from simulator.errors import InputError
from simulator.model.area_data import Cited, load_area_file


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    copy_rule: Cited | None = None


def test_a_bad_fact_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "area.yaml"
    path.write_text("_shared: &s {seed: 000_b81c60476033af2d.txt, lines: [3, 4]}\nkuwana:\n  copy_rule:\n"
                    "    seed: 000_b81c60476033af2d.txt\n    lines: [9, 2]\n", encoding="utf-8")
    with pytest.raises(InputError) as error:
        load_area_file(path, _Rules)
    assert error.value.field == "area.yaml:5 kuwana.copy_rule.lines" and "first <= last" in error.value.rule


def test_inferred_needs_a_reason_and_anchors_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "area.yaml"
    path.write_text("_shared: &s {seed: 000_b81c60476033af2d.txt, lines: [3, 4]}\ntsukuba: {copy_rule: *s}\n"
                    "kuwana:\n  copy_rule: {seed: 000_b81c60476033af2d.txt, lines: [1, 1], inferred: true}\n",
                    encoding="utf-8")
    with pytest.raises(InputError) as error:
        load_area_file(path, _Rules)
    assert "needs a reason" in error.value.rule and "kuwana.copy_rule" in error.value.field
    path.write_text("_shared: &s {seed: 000_b81c60476033af2d.txt, lines: [3, 4]}\ntsukuba: {copy_rule: *s}\n",
                    encoding="utf-8")
    loaded = load_area_file(path, _Rules)
    assert list(loaded) == ["tsukuba"] and loaded["tsukuba"].copy_rule is not None


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError) as error:
        load_area_file(tmp_path / "nope.yaml", _Rules)
    assert "nope.yaml" in error.value.field
