"""Loading: bad catalogue files fail with the file, line and field named; missing seeds are a note."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.controls.catalogue import CatalogueError, load_catalogue

GOOD = """\
area: JUKI
title_ja: 既存住民基本台帳システム
title_en: Existing resident-registry system
controls:
- id: JUKI-004
  title_ja: 一覧系画面・帳票に個人番号を表示しない
  title_en: No 個人番号 on multi-person screens and reports
  area: JUKI
  kind: technical
  claim_ja: 多数の住民を並べる一覧画面には個人番号を出さない。
  claim_en: List screens never show the Individual Number.
  assert: A screen that lists more than one person never renders 個人番号.
  allowed_case: An authorised user sees the number in the single-person view.
  refused_cases:
  - The household list has no 個人番号 column.
  scope: profile-specific
  profiles: [kuwana]
  enforced_by: [registry]
  sources:
  - seed: 000_b81c60476033af2d.txt
    section: III-(1)-2
    item: C05
    lines: [230, 230]
    quote: 対象者が多数表示される一覧系の画面および帳票には個人番号は表示しない
"""


def _write(tmp_path: Path, text: str, name: str = "juki.yaml") -> Path:
    d = tmp_path / "controls"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text, encoding="utf-8")
    return d


def _error(tmp_path: Path, text: str, seeds: Path | None = None) -> CatalogueError:
    with pytest.raises(CatalogueError) as err:
        load_catalogue(_write(tmp_path, text), seeds=seeds)
    return err.value


def test_a_good_file_loads(tmp_path: Path) -> None:
    cat = load_catalogue(_write(tmp_path, GOOD), seeds=tmp_path / "no-seeds")
    assert [c.id for c in cat] == ["JUKI-004"]


def test_missing_seeds_are_a_note_not_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUKISIM_SEEDS", str(tmp_path / "nowhere"))
    cat = load_catalogue(_write(tmp_path, GOOD))
    assert len(cat) == 1
    assert cat.notes and "not checked" in cat.notes[0]


def test_wrong_kind_names_file_line_and_field(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("kind: technical", "kind: legal"))
    p = err.problems[0]
    assert (p.file, p.line) == ("juki.yaml", 9)
    assert p.field == "JUKI-004.kind"
    assert "juki.yaml:9: JUKI-004.kind" in str(err)


def test_kind_must_fit_the_area(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("kind: technical", "kind: physical"))
    assert "must be kind technical" in str(err)


def test_bad_lines_name_the_source(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("lines: [230, 230]", "lines: [230, 12]"))
    p = err.problems[0]
    assert p.field == "JUKI-004.sources[0].lines" and p.line == 23


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("  scope: profile-specific", "  scope: profile-specific\n  owner: me"))
    assert err.problems[0].field == "JUKI-004.owner"
    assert err.problems[0].line == 17


def test_id_pattern_and_area(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("- id: JUKI-004", "- id: JUKI-04"))
    assert "AREA-nnn" in str(err)
    err = _error(tmp_path, GOOD.replace("- id: JUKI-004", "- id: CS-004"))
    assert "not in this file's area JUKI" in str(err)


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    d = _write(tmp_path, GOOD)
    (d / "juki2.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(CatalogueError) as err:
        load_catalogue(d, seeds=tmp_path / "none")
    assert "duplicate id; first at juki.yaml:5" in str(err.value)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("  enforced_by: [registry]", "  enforced_by: [registry"))
    assert err.problems[0].field == "(YAML syntax)"
    assert err.problems[0].line is not None


def test_key_given_twice(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("  area: JUKI\n", "  area: JUKI\n  area: JUKI\n", 1))
    assert err.problems[0].rule == "key given twice" and err.problems[0].line == 9


def test_profiles_must_match_the_citations(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("profiles: [kuwana]", "profiles: [kuwana, iizuka]"))
    assert "exactly the municipalities whose seeds are cited" in str(err)


def test_unknown_component(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("enforced_by: [registry]", "enforced_by: [mainframe]"))
    assert err.problems[0].field == "JUKI-004.enforced_by"


def test_seed_line_past_the_end(tmp_path: Path, seeds: Path) -> None:
    err = _error(tmp_path, GOOD.replace("lines: [230, 230]", "lines: [230, 9999]"), seeds=seeds)
    assert "line 9999 is past the end of 000_b81c60476033af2d.txt" in str(err)
    assert err.problems[0].line == 23  # the `lines:` of that source


def test_changelog_outside_the_change_log(tmp_path: Path, seeds: Path) -> None:
    err = _error(tmp_path, GOOD.replace("    lines: [230, 230]", "    lines: [230, 230]\n    changelog: true"), seeds)
    assert "outside the change log" in str(err)


def test_missing_seed_file(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    err = _error(tmp_path, GOOD, seeds=seeds)
    assert err.problems[0].field == "JUKI-004.sources[0].seed"
