"""Shared fixtures: the packaged catalogue, and the seed texts and CATALOGUE.md when this machine has them."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.controls.catalogue import Catalogue, load_catalogue, project_root, seeds_dir


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="session")
def seeds() -> Path:
    where = seeds_dir()
    if where is None:
        pytest.skip("seed texts not available (set JUKISIM_SEEDS)")
    return where


@pytest.fixture(scope="session")
def catalogue_md() -> str:
    path = project_root().parent / "shared" / "research" / "CATALOGUE.md"
    if not path.is_file():
        pytest.skip("research/CATALOGUE.md not available")
    return path.read_text(encoding="utf-8")
