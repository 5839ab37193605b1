"""住民票コード and 個人番号 of generated residents: valid check digits, unique, derived by simulator.identifiers."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

import synthetic_data as sd
from simulator.identifiers import (
    IdentifierError,
    is_valid_my_number,
    is_valid_resident_code,
    my_number_from_resident_code,
    validate_my_number,
)


def test_every_identifier_has_a_valid_check_digit(sample_db: sqlite3.Connection) -> None:
    rows = sample_db.execute("SELECT resident_code, my_number FROM residents").fetchall()
    assert rows
    assert all(is_valid_resident_code(code) for code, _n in rows)
    assert all(is_valid_my_number(number) for _c, number in rows)


def test_identifiers_are_unique(sample_db: sqlite3.Connection) -> None:
    codes, numbers, total = sample_db.execute(
        "SELECT count(DISTINCT resident_code), count(DISTINCT my_number), count(*) FROM residents"
    ).fetchone()
    assert codes == numbers == total


def test_my_number_is_derived_from_the_resident_code_with_the_seed_key(sample_db: sqlite3.Connection) -> None:
    key = sd.jlis_key(20240101)  # SAMPLE_SEED in conftest.py
    for code, number in sample_db.execute("SELECT resident_code, my_number FROM residents LIMIT 200"):
        assert my_number_from_resident_code(code, key) == number


def test_identifiers_in_events_are_valid_and_unseen(sample_population: sd.Population) -> None:
    snapshot = {r.resident_code for r in sample_population.residents}
    seen: set[str] = set()
    for ev in sample_population.events:
        for person in ev.data.get("persons", []):
            assert is_valid_resident_code(person["resident_code"])
            assert is_valid_my_number(person["my_number"])
            assert person["resident_code"] not in snapshot
            assert person["resident_code"] not in seen
            seen.add(person["resident_code"])
    assert seen, "births and move-ins bring new people"


def test_a_known_bad_number_is_rejected() -> None:
    assert is_valid_my_number("123456789018")  # 検査用数字 of 12345678901 is 8
    assert not is_valid_my_number("123456789010")
    with pytest.raises(IdentifierError):
        validate_my_number("123456789010")
    assert is_valid_resident_code("12345678903")
    assert not is_valid_resident_code("12345678900")


def test_validation_catches_a_corrupted_number(sample_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "corrupt.sqlite"
    shutil.copyfile(sample_path, copy)
    with sqlite3.connect(copy) as conn:
        (number,) = conn.execute("SELECT my_number FROM residents LIMIT 1").fetchone()
        broken = number[:-1] + str((int(number[-1]) + 1) % 10)
        conn.execute("UPDATE residents SET my_number = ? WHERE my_number = ?", (broken, number))
    conn.close()
    checks = sd.validate_path(copy)
    failed = {f"{c.group}/{c.name}" for c in checks if not c.ok}
    assert "invariants/invalid_my_numbers" in failed
    with pytest.raises(sd.ValidationFailed, match="invalid_my_numbers"):
        sd.ensure_valid(checks)
