"""Shared fixtures: one 20,000-person population per test session (generated, validated and written once)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import synthetic_data as sd

SAMPLE_SIZE = 20_000
SAMPLE_SEED = 20240101


@pytest.fixture(scope="session")
def sample_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("population") / "kuwana.sqlite"
    sd.write("kuwana", SAMPLE_SIZE, SAMPLE_SEED, path)
    return path


@pytest.fixture(scope="session")
def sample_population() -> sd.Population:
    return sd.generate("kuwana", SAMPLE_SIZE, SAMPLE_SEED)


@pytest.fixture()
def sample_db(sample_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{sample_path}?mode=ro", uri=True)
    yield conn
    conn.close()
