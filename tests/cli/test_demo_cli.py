"""`jukisim demo` and `jukisim audit verify` as a person runs them: real world, real files, real exit codes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.controls.catalogue import enforcement_sites, load_catalogue, project_root

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo") / "world"
    result = runner.invoke(app, ["demo", "--data", str(data), "--size", "80"])
    assert result.exit_code == 0, result.output
    assert "情報照会" in result.output and "NWS-001" in result.output
    return data


def test_demo_leaves_one_store_per_organisation(demo_dir: Path) -> None:
    names = {p.name for p in demo_dir.glob("*.sqlite")}
    assert {"kuwana.sqlite", "kurashiki.sqlite", "jlis.sqlite", "nws.sqlite", "portal.sqlite"} <= names
    assert {"platform.kuwana.sqlite", "platform.kurashiki.sqlite"} <= names


def test_demo_in_english(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--data", str(tmp_path / "en"), "--size", "80", "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "Query answered automatically" in result.output and "refused" in result.output


def test_demo_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me", encoding="utf-8")
    result = runner.invoke(app, ["demo", "--data", str(tmp_path), "--size", "80"])
    assert result.exit_code != 0
    assert (tmp_path / "precious.txt").read_text(encoding="utf-8") == "keep me"


def test_audit_verify_passes_then_finds_an_edit(demo_dir: Path, tmp_path: Path) -> None:
    ok = runner.invoke(app, ["audit", "verify", str(demo_dir)])
    assert ok.exit_code == 0, ok.output
    assert "改ざん・欠落なし" in ok.output
    copy = tmp_path / "tampered"
    copy.mkdir()
    for store in demo_dir.glob("*.sqlite"):
        src = sqlite3.connect(store)
        dst = sqlite3.connect(copy / store.name)
        src.backup(dst)
        src.close()
        dst.close()
    conn = sqlite3.connect(copy / "nws.sqlite")
    conn.execute("DROP TRIGGER provision_records_no_update")  # an insider with file access
    conn.execute("UPDATE provision_records SET data = replace(data, 'kurashiki', 'kuwana') WHERE seq = 1")
    conn.commit()
    conn.close()
    bad = runner.invoke(app, ["audit", "verify", str(copy), "--lang", "en"])
    assert bad.exit_code == 1
    assert "nws.sqlite: provision_records #1: edited" in bad.output


def test_audit_verify_finds_a_cut_tail(demo_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cut"
    copy.mkdir()
    for store in demo_dir.glob("*.sqlite"):
        src, dst = sqlite3.connect(store), sqlite3.connect(copy / store.name)
        src.backup(dst)
        src.close()
        dst.close()
    conn = sqlite3.connect(copy / "platform.kuwana.sqlite")
    conn.execute("DROP TRIGGER provision_records_no_delete")
    conn.execute("DELETE FROM provision_records WHERE seq = (SELECT MAX(seq) FROM provision_records)")
    conn.commit()
    conn.close()
    bad = runner.invoke(app, ["audit", "verify", str(copy)])
    assert bad.exit_code == 1 and "tail cut" in bad.output


def test_audit_verify_names_a_missing_directory(tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "data:" in result.output


def test_every_control_id_named_in_code_is_in_the_catalogue() -> None:
    catalogue = load_catalogue()
    sites = enforcement_sites(project_root())
    assert sites
    assert sorted(i for i in sites if i not in catalogue) == []
