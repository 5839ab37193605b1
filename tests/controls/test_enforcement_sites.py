"""Finding where code names a control id: string literals only, file and line."""

from __future__ import annotations

from pathlib import Path

from simulator.controls.catalogue import Catalogue, enforcement_sites, project_root

CODE = '''"""Checks the permission list (CHUKAN-009 in prose is not an enforcement site)."""

CONTROL = "CHUKAN-009"


def check(x: str) -> str:
    # CHUKAN-010 in a comment is not one either
    return "CHUKAN-010" if x else f"{x}CHUKAN-011"
'''


def test_literals_are_found_with_their_lines(tmp_path: Path) -> None:
    (tmp_path / "simulator" / "components").mkdir(parents=True)
    (tmp_path / "simulator" / "components" / "mid.py").write_text(CODE, encoding="utf-8")
    (tmp_path / "simulator" / "broken.py").write_text("def (:\n 'CS-001'\n", encoding="utf-8")
    sites = enforcement_sites(tmp_path)
    assert sites == {
        "CHUKAN-009": [("simulator/components/mid.py", 3)],
        "CHUKAN-010": [("simulator/components/mid.py", 8)],
    }


def test_every_id_the_code_names_is_in_the_catalogue(catalogue: Catalogue) -> None:
    sites = enforcement_sites(project_root())
    unknown = {cid: where for cid, where in sites.items() if cid not in catalogue}
    assert not unknown, f"code names control ids the catalogue does not have: {unknown}"
