"""scenarios/data/gyomu.yaml: loads, cites seeds, and bad input names file:line, the field and the rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from simulator.components.gyomu_data import DATA_FILE, load_business_data
from simulator.errors import InputError


def test_the_file_loads_with_the_230_beppyo_items_and_every_channel() -> None:
    data = load_business_data()
    ltc = data["kurashiki"].ltc
    assert ltc is not None
    assert sum(len(s.items) for s in ltc.beppyo_1.values()) == 230
    tax = data["tsukuba"].resident_tax
    assert tax is not None
    assert set(tax.channels) == {"counter", "mail", "national_tax_link", "eltax", "data_link_system", "other_body"}
    assert {k for k, v in tax.record_kinds.items() if v.payer_report} == {"salary_payment_report",
                                                                          "pension_payment_report"}


def test_every_cited_line_exists_in_its_seed() -> None:
    raw = DATA_FILE.read_text(encoding="utf-8")
    seeds = Path("/work/shared/seeds")
    if not seeds.exists():
        pytest.skip("seeds not present")
    for entry in yaml.safe_load(raw).values():
        for found in _sources(entry):
            lines = (seeds / found["seed"]).read_text(encoding="utf-8").splitlines()
            assert found["lines"][1] <= len(lines), found


def _sources(node: object) -> list[dict[str, object]]:
    if isinstance(node, dict):
        here = [node] if {"seed", "lines"} <= set(node) else []
        return here + [s for v in node.values() for s in _sources(v)]
    if isinstance(node, list):
        return [s for v in node for s in _sources(v)]
    return []


def _write(tmp_path: Path, mutate: object) -> Path:
    data = yaml.safe_load(DATA_FILE.read_text(encoding="utf-8"))
    assert callable(mutate)
    mutate(data)
    path = tmp_path / "gyomu.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["tsukuba"]["resident_tax"].update({"colour": "blue"}))
    with pytest.raises(InputError) as exc:
        load_business_data(path)
    assert re.fullmatch(r"gyomu\.yaml:\d+ tsukuba\.resident_tax\.colour", exc.value.field), exc.value.field
    assert "extra" in exc.value.rule.lower()


def test_a_window_form_field_outside_beppyo_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["kurashiki"]["ltc"]["window_forms"]["qualification_acquisition"][
        "fields"].append("趣味"))
    with pytest.raises(InputError) as exc:
        load_business_data(path)
    assert "趣味" in exc.value.rule and "window_forms.qualification_acquisition.fields" in exc.value.rule


def test_a_record_kind_on_an_undeclared_channel_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["tsukuba"]["resident_tax"]["record_kinds"]["salary_payment_report"][
        "channels"].append("email"))
    with pytest.raises(InputError) as exc:
        load_business_data(path)
    assert "email" in exc.value.rule
