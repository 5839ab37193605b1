"""The 20,000-person sample matches its published targets within tolerance, and drift fails loudly."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

import synthetic_data as sd


def test_every_check_passes_on_the_sample(sample_path: Path) -> None:
    checks = sd.validate_path(sample_path)
    groups = {c.group for c in checks}
    assert {"age_pyramid", "household_size", "household_type", "foreign", "events_by_month", "invariants"} <= groups
    assert [c for c in checks if not c.ok] == []


def test_foreign_residents_stress_the_controls(sample_db: sqlite3.Connection) -> None:
    statuses = dict(sample_db.execute(
        "SELECT residence_status, count(*) FROM residents WHERE nationality IS NOT NULL GROUP BY residence_status"
    ).fetchall())
    assert {"永住者", "特別永住者", "技能実習", "留学", "技術・人文知識・国際業務"} <= set(statuses)
    (aliases,) = sample_db.execute("SELECT count(*) FROM residents WHERE alias_name IS NOT NULL").fetchone()
    assert aliases > 0
    (flags,) = sample_db.execute(
        "SELECT count(*) FROM residents WHERE protective_measure IS NOT NULL AND auto_reply_disabled = 1"
    ).fetchone()
    assert flags >= 10
    (cards,) = sample_db.execute("SELECT avg(has_my_number_card) FROM residents WHERE status = 'active'").fetchone()
    assert 0.73 < cards < 0.79


def test_drift_fails_loudly(sample_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "drifted.sqlite"
    shutil.copyfile(sample_path, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE residents SET nationality = '中国' WHERE person_id % 10 = 0")
    conn.close()
    with pytest.raises(sd.ValidationFailed, match="foreign/foreign"):
        sd.ensure_valid(sd.validate_path(copy))


@pytest.mark.slow
@pytest.mark.parametrize("profile", sorted(sd.PROFILES))
def test_every_profile_validates_at_100k(profile: str, tmp_path: Path) -> None:
    checks = sd.write(profile, 100_000, 11, tmp_path / f"{profile}.sqlite")
    assert all(c.ok for c in checks)


def test_parallel_identifier_checks_agree_with_serial(
    sample_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import synthetic_data.validation as validation

    serial = sd.validate_path(sample_path)
    monkeypatch.setattr(validation, "PARALLEL_VALIDATION_ROWS", 1)
    assert sd.validate_path(sample_path) == serial
