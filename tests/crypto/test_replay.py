"""The persistent replay guard: ids and nonces refused once seen, across restarts, and the table stays bounded."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from simulator.crypto import ReplayGuard
from simulator.errors import InputError, Refusal, RefusalCode
from simulator.store.db import connect, transaction

from .conftest import T0, make_envelope

WINDOW = timedelta(minutes=10)


def _replayed(guard: ReplayGuard, envelope: object, field: str) -> None:
    with pytest.raises(Refusal) as caught:
        guard.check_and_record(envelope, T0)  # type: ignore[arg-type]
    assert caught.value.code is RefusalCode.REPLAYED_MESSAGE
    assert caught.value.control_id == "CHUKAN-013"
    assert caught.value.component == "nws"
    assert caught.value.field == field


def test_new_message_accepted_then_same_id_refused(tmp_path: Path) -> None:
    guard = ReplayGuard(connect(tmp_path / "nws.sqlite"), WINDOW)
    first = make_envelope("city-a", "nws")
    guard.check_and_record(first, T0)
    guard.check_and_record(make_envelope("city-a", "nws"), T0)
    _replayed(guard, first, "id")
    _replayed(guard, make_envelope("city-a", "nws", id=first.id), "id")


def test_same_nonce_with_new_id_refused(tmp_path: Path) -> None:
    guard = ReplayGuard(connect(tmp_path / "nws.sqlite"), WINDOW)
    first = make_envelope("city-a", "nws")
    guard.check_and_record(first, T0)
    _replayed(guard, make_envelope("city-b", "nws", nonce=first.nonce), "nonce")


def test_refused_after_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "nws.sqlite"
    conn = connect(path)
    first = make_envelope("city-a", "nws")
    ReplayGuard(conn, WINDOW).check_and_record(first, T0)
    conn.close()
    reopened = ReplayGuard(connect(path), WINDOW)
    _replayed(reopened, first, "id")
    _replayed(reopened, make_envelope("city-a", "nws", nonce=first.nonce), "nonce")


def test_expired_rows_are_purged(tmp_path: Path) -> None:
    conn = connect(tmp_path / "nws.sqlite")
    guard = ReplayGuard(conn, WINDOW)
    for _ in range(5):
        guard.check_and_record(make_envelope("city-a", "nws"), T0)
    assert conn.execute("SELECT COUNT(*) FROM seen_messages").fetchone()[0] == 5
    assert guard.purge(T0 + WINDOW - timedelta(seconds=1)) == 0
    later = T0 + WINDOW + timedelta(seconds=1)
    guard.check_and_record(make_envelope("city-a", "nws", issued_at=later), later)
    assert conn.execute("SELECT COUNT(*) FROM seen_messages").fetchone()[0] == 1


def test_refusal_and_rollback_leave_nothing_behind(tmp_path: Path) -> None:
    conn = connect(tmp_path / "nws.sqlite")
    guard = ReplayGuard(conn, WINDOW)
    envelope = make_envelope("city-a", "nws")
    with pytest.raises(RuntimeError), transaction(conn):
        guard.check_and_record(envelope, T0)
        raise RuntimeError("the component failed after accepting the message")
    guard.check_and_record(envelope, T0)  # the rolled-back acceptance is forgotten, so delivery can be retried


def test_window_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        ReplayGuard(connect(tmp_path / "x.sqlite"), timedelta(0))
