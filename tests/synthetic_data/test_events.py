"""The event stream: time-ordered 届出 on open days, no event after a person's own 死亡 or 転出, seasonality."""

from __future__ import annotations

from collections import Counter
from datetime import date

import jpholiday
import pytest

import synthetic_data as sd
from synthetic_data.events import EVENT_TYPES


def test_events_are_ordered_and_filed_on_open_days(sample_population: sd.Population) -> None:
    events = sample_population.events
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    assert [e.event_date for e in events] == sorted(e.event_date for e in events)
    for ev in events:
        d = date.fromisoformat(ev.event_date)
        assert d.weekday() < 5 and not jpholiday.is_holiday(d), ev
        assert ev.effective_date.startswith("2024-")
    assert set(Counter(e.event_type for e in events)) == set(EVENT_TYPES)


def test_nobody_acts_after_death_or_moving_out(sample_population: sd.Population) -> None:
    ended: dict[int, str] = {}
    for ev in sample_population.events:
        for pid in ev.person_ids:
            assert pid not in ended, (ev, ended.get(pid))
        if ev.event_type in ("death", "move_out"):
            for pid in ev.person_ids:
                ended[pid] = ev.event_date


def test_each_notification_carries_what_the_form_carries(sample_population: sd.Population) -> None:
    seen = set()
    for ev in sample_population.events:
        if ev.event_type == "move_in":
            assert {"persons", "previous_address", "address", "card_move_in"} <= set(ev.data)
            assert ev.data["address"]["jis_code"] == "24205"
        elif ev.event_type == "move_within":
            assert ev.data["from"]["address"] != ev.data["to"]["address"]
            assert ev.data["to"]["jis_code"] == "24205"
        elif ev.event_type == "move_out":
            assert ev.data["destination"]["address"]
        elif ev.event_type == "birth":
            assert ev.data["persons"][0]["resident_code"] and ev.data["mother_id"]
        elif ev.event_type == "death":
            assert ev.data["death_date"] == ev.effective_date
        elif ev.event_type == "household_change":
            assert ev.data["kind"] in ("head_change", "split")
        seen.add(ev.event_type)
    assert seen == set(EVENT_TYPES)


def test_moves_peak_in_march_and_april(sample_population: sd.Population) -> None:
    months: Counter[int] = Counter()
    for ev in sample_population.events:
        if ev.event_type in ("move_in", "move_out", "move_within"):
            months[int(ev.effective_date[5:7])] += len(ev.person_ids)
    quiet = sum(months[m] for m in (1, 2, 5, 6, 7, 8, 9, 10, 11, 12)) / 10
    assert months[3] > 1.5 * quiet and months[4] > 1.3 * quiet


def test_removed_residents_have_history(sample_db: object) -> None:
    import sqlite3

    assert isinstance(sample_db, sqlite3.Connection)
    removed = sample_db.execute(
        "SELECT removal_reason, count(*) FROM residents WHERE status = 'removed' GROUP BY removal_reason"
    ).fetchall()
    assert dict(removed).keys() == {"moved_out", "deceased"}
    without = sample_db.execute(
        "SELECT count(*) FROM residents r WHERE status = 'removed' AND NOT EXISTS "
        "(SELECT 1 FROM history h WHERE h.person_id = r.person_id AND h.change_type IN ('death', 'move_out'))"
    ).fetchone()[0]
    assert without == 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 9))
def test_event_order_holds_across_seeds(seed: int) -> None:
    pop = sd.generate("tsukuba", 40_000, seed)
    ended: set[int] = set()
    for ev in pop.events:
        assert not ended.intersection(ev.person_ids), ev
        if ev.event_type in ("death", "move_out"):
            ended.update(ev.person_ids)
