"""The data lifecycle batch (simulator.components.lifecycle): it deletes exactly the rows past retention and nothing
else, records every run and deletion in the hash chain without personal data, refuses early deletion and deletion
on death, and accepts a restore only when the backup decrypts, is intact and equals its snapshot."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.components.lifecycle import (
    DataLifecycle,
    MunicipalityLifecycle,
    RetentionRule,
    cutoff_date,
    load_lifecycle_data,
    period_after,
    store_snapshot,
)
from simulator.demo import DEMO_START
from simulator.errors import InputError
from simulator.profile_world import municipality_spec, world_pair
from simulator.profiles import load_profile
from simulator.store.chain import verify_chain
from simulator.world import World, WorldSpec

CITE = {"seed": "001_cc86eefa057d2f96.txt", "lines": [931, 931], "quote": "test"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    provider, requester = world_pair("tsukuba")
    w = World.create(
        tmp_path_factory.mktemp("lifecycle") / "world",
        WorldSpec(municipalities=(municipality_spec(provider), municipality_spec(requester)), start=DEMO_START),
    )
    yield w
    w.close()


def _batch(world: World, tmp_path: Path, rules: list[dict[str, object]]) -> DataLifecycle:
    """A lifecycle batch over a store of its own, with the given rules (the world lends the PKI)."""
    conn = sqlite3.connect(tmp_path / "org.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    plan = MunicipalityLifecycle.model_validate(
        {"backup": {"schedule": "P1D", "sites": ["data_centre"], "dc_only": True, "source": CITE},
         "retention": [{"source": CITE, **r} for r in rules]}
    )
    party = f"test{secrets.token_hex(3)}.lifecycle"
    return DataLifecycle(
        party, conn, world.security(party, "tsukuba"), world.directory, municipality="test", plan=plan,
        backup_root=tmp_path / "backups", backup_key=secrets.token_bytes(32),
    )


def _rows_table(lc: DataLifecycle, days: list[date]) -> None:
    lc.conn.execute("CREATE TABLE IF NOT EXISTS kept_rows (id INTEGER PRIMARY KEY, name TEXT, made_on TEXT)")
    lc.conn.executemany("INSERT INTO kept_rows (name, made_on) VALUES (?, ?)",
                        [(f"山田 {i}号", d.isoformat()) for i, d in enumerate(days)])


NOW = datetime(2026, 11, 24, 9, 0, tzinfo=DEMO_START.tzinfo)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=6000), min_size=1, max_size=40),
    period=st.sampled_from(["P4Y", "P8Y", "P1M", "P30D"]),
    fiscal=st.booleans(),
)
def test_batch_deletes_exactly_the_rows_past_retention(
    world: World, tmp_path_factory: pytest.TempPathFactory, offsets: list[int], period: str, fiscal: bool
) -> None:
    fiscal = fiscal and period.endswith("Y")
    lc = _batch(world, tmp_path_factory.mktemp("prop"), [
        {"kind": "kept_rows", "table": "kept_rows", "date_column": "made_on", "period": period, "fiscal_year": fiscal}
    ])
    days = [NOW.date() - timedelta(days=o) for o in offsets]
    _rows_table(lc, days)
    cutoff = cutoff_date(lc.plan.retention[0], NOW)
    result = lc.run_batch(NOW)
    assert result.refusal is None
    left = sorted(date.fromisoformat(r[0]) for r in lc.conn.execute("SELECT made_on FROM kept_rows"))
    assert left == sorted(d for d in days if d >= cutoff)  # every row younger than the period survives
    assert result.value["deleted"] == sum(1 for d in days if d < cutoff)
    runs = list(lc.audit.rows(kind="retention.run"))
    assert len(runs) == 1 and runs[0]["data"]["deleted"] == result.value["deleted"]
    deletion = next(lc.audit.rows(kind="retention.deletion"))["data"]
    assert deletion["count"] == result.value["deleted"] and deletion["cutoff"] == cutoff.isoformat()
    assert "山田" not in json.dumps([r["data"] for r in lc.audit.rows()], ensure_ascii=False)
    assert verify_chain(lc.conn, "audit_trail") == []


def test_every_run_leaves_a_record_and_a_second_run_deletes_nothing(world: World, tmp_path: Path) -> None:
    lc = _batch(world, tmp_path, [{"kind": "kept_rows", "table": "kept_rows", "date_column": "made_on", "period": "P4Y"}])
    _rows_table(lc, [date(2020, 1, 1), date(2026, 1, 1)])
    first, second = lc.run_batch(NOW), lc.run_batch(NOW + timedelta(days=1))
    assert (first.value["deleted"], second.value["deleted"]) == (1, 0)
    assert len(list(lc.audit.rows(kind="retention.run"))) == 2
    assert [d.control_id for d in first.decisions] == ["DATA-004"]


def test_fiscal_year_keeps_the_current_year_and_seven_before() -> None:
    rule = RetentionRule.model_validate({"kind": "tax", "table": "t", "date_column": "d", "period": "P8Y",
                                         "fiscal_year": True, "source": CITE})
    tz = DEMO_START.tzinfo
    assert cutoff_date(rule, datetime(2026, 11, 24, tzinfo=tz)) == date(2019, 4, 1)
    assert cutoff_date(rule, datetime(2027, 3, 31, tzinfo=tz)) == date(2019, 4, 1)
    assert cutoff_date(rule, datetime(2027, 4, 1, tzinfo=tz)) == date(2020, 4, 1)


def test_append_only_history_is_purged_by_the_batch_only(world: World, tmp_path: Path) -> None:
    lc = _batch(world, tmp_path, [{"kind": "hist", "table": "hist", "date_column": "at", "period": "P150Y"}])
    lc.conn.executescript(
        "CREATE TABLE hist (seq INTEGER PRIMARY KEY, resident_code TEXT, at TEXT);"
        "CREATE TRIGGER hist_no_delete BEFORE DELETE ON hist BEGIN SELECT RAISE(ABORT, 'append-only'); END;"
        "INSERT INTO hist (resident_code, at) VALUES ('1', '1870-01-01'), ('2', '1877-01-01');"
    )
    assert lc.run_batch(NOW).value["deleted"] == 1
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        lc.conn.execute("DELETE FROM hist")


def test_early_never_and_death_deletions_are_refused(world: World, tmp_path: Path) -> None:
    lc = _batch(world, tmp_path, [
        {"kind": "register", "table": "registry_residents", "never": True},
        {"kind": "hist", "table": "hist", "date_column": "at", "period": "P150Y", "person_column": "resident_code"},
    ])
    lc.conn.executescript(
        "CREATE TABLE registry_residents (resident_code TEXT PRIMARY KEY, my_number TEXT, status TEXT,"
        " last_change_reason TEXT);"
        "INSERT INTO registry_residents VALUES ('1', '123456789012', 'removed', 'death'), ('2', NULL, 'active', 'x');"
        "CREATE TABLE hist (seq INTEGER PRIMARY KEY, resident_code TEXT, at TEXT);"
        "INSERT INTO hist (resident_code, at) VALUES ('1', '2026-01-01'), ('2', '2026-01-01'), ('2', '1860-01-01');"
    )
    never = lc.purge_record("register", "1", "request", NOW)
    assert never.refusal is not None and (never.refusal.control_id, str(never.refusal.code)) == (
        "DATA-004", "Data.RetentionNotEnded")
    dead = lc.purge_record("hist", "1", "death", NOW)
    assert dead.refusal is not None and dead.refusal.control_id == "DATA-005"
    early = lc.purge_record("hist", "2", "request", NOW)
    assert early.refusal is not None and early.refusal.control_id == "DATA-004"
    assert lc.conn.execute("SELECT COUNT(*) FROM hist").fetchone()[0] == 3
    batch = lc.run_batch(NOW)
    assert batch.value["deleted"] == 1
    assert {d.control_id for d in batch.decisions} == {"DATA-004", "DATA-005"}
    assert lc.conn.execute("SELECT COUNT(*) FROM registry_residents").fetchone()[0] == 2


def test_restore_equals_the_snapshot_and_refuses_a_wrong_key_or_a_tampered_file(world: World, tmp_path: Path) -> None:
    lc = _batch(world, tmp_path, [])
    _rows_table(lc, [date(2025, 5, 5)] * 3)
    taken = lc.backup("data_centre", "dc-nas", NOW)
    assert taken.refusal is None and [d.control_id for d in taken.decisions] == ["DATA-001", "DATA-003"]
    ok = lc.restore(taken.value, NOW)
    assert ok.refusal is None
    restored = sqlite3.connect(ok.value["restored_to"])
    assert restored.execute("SELECT COUNT(*) FROM kept_rows").fetchone()[0] == 3
    restored.close()
    wrong = lc.restore(taken.value, NOW, key=secrets.token_bytes(32))
    assert wrong.refusal is not None and str(wrong.refusal.code) == "Security.DecryptionFailed"
    path = Path(lc.conn.execute("SELECT path FROM lifecycle_backups").fetchone()[0])
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    path.write_bytes(bytes(data))
    tampered = lc.restore(taken.value, NOW)
    assert tampered.refusal is not None and str(tampered.refusal.code) == "Data.BackupInvalid"


def test_a_backup_whose_chain_was_edited_is_refused_even_when_re_encrypted(world: World, tmp_path: Path) -> None:
    """An insider with the key edits an audit row in the copy, re-encrypts it and fixes the recorded digest."""
    lc = _batch(world, tmp_path, [])
    lc.audit.append(at=NOW.isoformat(), kind="test", data={"n": 1})
    taken = lc.backup("data_centre", "dc-nas", NOW)
    path = Path(lc.conn.execute("SELECT path FROM lifecycle_backups").fetchone()[0])
    sealed = path.read_bytes()
    aad = f"test|backup|{taken.value}".encode()
    image = AESGCM(lc._backup_key).decrypt(sealed[:12], sealed[12:], aad)
    copy = sqlite3.connect(":memory:")
    copy.deserialize(image)
    copy.execute("DROP TRIGGER audit_trail_no_update")
    edited_rows = copy.execute("UPDATE audit_trail SET data = ? WHERE kind = ?", ('{"n":2}', "test")).rowcount
    assert edited_rows == 1
    copy.commit()
    edited = copy.serialize()
    copy.close()
    nonce = secrets.token_bytes(12)
    resealed = nonce + AESGCM(lc._backup_key).encrypt(nonce, edited, aad)
    path.write_bytes(resealed)
    lc.conn.execute("UPDATE lifecycle_backups SET sha256 = ?", (hashlib.sha256(resealed).hexdigest(),))
    refused = lc.restore(taken.value, NOW)
    assert refused.refusal is not None and str(refused.refusal.code) == "Data.BackupInvalid"
    assert "edited" in refused.refusal.reason_en


def test_backup_outside_the_dc_is_refused_and_a_missed_window_alerts(world: World, tmp_path: Path) -> None:
    lc = _batch(world, tmp_path, [])
    desk = lc.backup("office_desktop", "desktop-share", NOW)
    assert desk.refusal is not None and desk.refusal.control_id == "DATA-003"
    assert not list((tmp_path / "backups").rglob("*.enc"))
    assert lc.check_schedule(NOW).value["alert"] is True
    lc.backup("data_centre", "dc-nas", NOW)
    assert lc.check_schedule(NOW + timedelta(hours=20)).value["alert"] is False
    assert lc.check_schedule(NOW + timedelta(days=2)).value["alert"] is True


def test_power_cut_beyond_the_ups_keeps_every_committed_row(world: World) -> None:
    lc = world.components.get("kuwana.lifecycle")
    assert isinstance(lc, DataLifecycle)
    ups = DataLifecycle.__new__(DataLifecycle)
    ups.__dict__.update(lc.__dict__)
    ups.plan = MunicipalityLifecycle.model_validate(
        {**lc.plan.model_dump(), "ups": {"autonomy_minutes": 10, "source": CITE}}
    )
    before = store_snapshot(lc.conn)
    short, long = ups.power_cut(5, NOW), ups.power_cut(60, NOW)
    assert [d.outcome.value for d in short.decisions] == ["allow"]
    assert [d.outcome.value for d in long.decisions] == ["deny", "allow"] and long.refusal is None
    after = store_snapshot(lc.conn)
    assert all(after[t]["rows"] >= before[t]["rows"] for t in before)


def test_profile_data_matches_the_profiles_and_bad_input_names_the_field(tmp_path: Path) -> None:
    data = load_lifecycle_data()
    assert set(data.profiles) == {"kuwana", "tsukuba", "sapporo", "iizuka", "kurashiki"}
    for key, plan in data.profiles.items():
        stated = load_profile(key).retention
        for rule in plan.retention:
            if rule.kind in stated and rule.period is not None:
                assert stated[rule.kind].split()[0] == rule.period, (key, rule.kind)
            if rule.never:
                assert stated.get(rule.kind) == "never"
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles:\n  x:\n    backup: null\n    retention:\n      - {kind: Tax, source: "
                   "{seed: 001_cc86eefa057d2f96.txt, lines: [1, 1], quote: q}, never: true, table: t}\n")
    with pytest.raises(InputError) as caught:
        load_lifecycle_data(bad)
    assert "bad.yaml:5 profiles.x.retention[0].kind" in str(caught.value) and "snake_case" in str(caught.value)


@given(day=st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)),
       period=st.sampled_from(["P150Y", "P8Y", "P4Y", "P1M", "P1D"]))
def test_a_row_is_kept_until_its_period_ends_and_gone_the_day_after(day: date, period: str) -> None:
    rule = RetentionRule.model_validate({"kind": "k", "table": "t", "date_column": "d", "period": period,
                                         "source": CITE})
    first_gone = period_after(day, period)
    at = datetime(first_gone.year, first_gone.month, first_gone.day, tzinfo=DEMO_START.tzinfo)
    assert day < cutoff_date(rule, at)  # past retention on that day
    assert day >= cutoff_date(rule, at - timedelta(days=1))  # still kept the day before


def test_the_nightly_check_finds_a_corrupted_backup(world: World, tmp_path: Path) -> None:
    lc = _batch(world, tmp_path, [])
    first = lc.backup("data_centre", "dc-nas", NOW).value
    second = lc.backup("data_centre", "dc-nas", NOW + timedelta(days=1)).value
    assert lc.nightly_check(NOW + timedelta(days=1)).value == {"backups": 2, "bad": []}
    path = Path(lc.conn.execute("SELECT path FROM lifecycle_backups WHERE backup_id = ?", (second,)).fetchone()[0])
    path.write_bytes(path.read_bytes()[:-1])
    found = lc.nightly_check(NOW + timedelta(days=2))
    assert found.value["bad"] == [f"{second} (digest)"] and first not in str(found.value["bad"])
    assert [(d.control_id, d.outcome.value) for d in found.decisions] == [("DATA-001", "deny")]


def test_at_the_fiscal_year_rollover_fy_minus_8_goes_and_fy_minus_7_stays(world: World, tmp_path: Path) -> None:
    lc = _batch(world, tmp_path, [{"kind": "tax", "table": "kept_rows", "date_column": "made_on", "period": "P8Y",
                                   "fiscal_year": True}])
    # 年度 2017, 2018, 2018, 2019
    _rows_table(lc, [date(2018, 3, 31), date(2018, 4, 1), date(2019, 3, 31), date(2019, 4, 1)])
    tz = DEMO_START.tzinfo
    assert lc.run_batch(datetime(2026, 3, 31, tzinfo=tz)).value["deleted"] == 1  # 年度 2025: 2017 is FY−8
    assert lc.run_batch(datetime(2026, 4, 1, tzinfo=tz)).value["deleted"] == 2  # 年度 2026: 2018 is FY−8
    left = [r[0] for r in lc.conn.execute("SELECT made_on FROM kept_rows")]
    assert left == ["2019-04-01"]  # 2019 is FY−7 and survives


def test_a_reopened_world_keeps_its_backups_restorable(world: World) -> None:
    lc = world.components["tsukuba.lifecycle"]
    assert isinstance(lc, DataLifecycle)
    backup_id = lc.backup("data_centre", "dc-nas", NOW).value
    reopened = World.open(world.data_dir, world.spec)
    try:
        again = reopened.components["tsukuba.lifecycle"]
        assert isinstance(again, DataLifecycle)
        assert again.restore(backup_id, NOW).refusal is None
    finally:
        reopened.close()
