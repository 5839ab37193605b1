"""Calendar (開庁日, windows, availability) and fault files: the facts the simulation's clock rests on."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import pytest

from simulator.errors import InputError
from simulator.simulation.calendar import JST, Availability, SimClock, Window, is_open_day, parse_duration
from simulator.simulation.faults import load_faults, parse_faults


def test_open_days_follow_weekends_holidays_and_new_year() -> None:
    assert is_open_day(date(2024, 1, 4))  # Thursday after 三が日
    assert not is_open_day(date(2024, 1, 2))  # 年末年始
    assert not is_open_day(date(2024, 12, 30))
    assert not is_open_day(date(2024, 1, 8))  # 成人の日 (jpholiday)
    assert not is_open_day(date(2024, 3, 20))  # 春分の日
    assert not is_open_day(date(2024, 1, 6))  # Saturday
    assert is_open_day(date(2024, 3, 21))


def test_clock_gives_jst_datetimes_from_env_now() -> None:
    clock = SimClock(datetime(2024, 4, 1, tzinfo=JST))
    moment = clock.at(3600 * 9.5)
    assert moment == datetime(2024, 4, 1, 9, 30, tzinfo=JST)
    assert moment.utcoffset().total_seconds() == 9 * 3600  # type: ignore[union-attr]
    assert clock.seconds(moment) == 3600 * 9.5
    with pytest.raises(InputError):
        SimClock(datetime(2024, 4, 1))


def test_window_closes_nights_and_closed_days() -> None:
    clock = SimClock(datetime(2024, 4, 5, tzinfo=JST))  # Friday
    window = Window("住基ネット", hours=(time(8, 30), time(21, 30)), open_days_only=True)
    avail = Availability(window.closed(clock, 4 * 86_400))
    assert not avail.is_up(8 * 3600)
    assert avail.is_up(9 * 3600)
    assert avail.next_up(22 * 3600) == 3 * 86_400 + 8.5 * 3600  # Saturday and Sunday closed: Monday 08:30
    # A job that would run past closing waits for the next opening (non-preemptive).
    assert avail.fit(21.5 * 3600 - 10, 20) == 3 * 86_400 + 8.5 * 3600
    assert avail.fit(10 * 3600, 20) == 10 * 3600


def test_availability_merges_overlaps() -> None:
    avail = Availability([(10, 20), (15, 30), (40, 50)])
    assert avail.intervals() == [(10, 30), (40, 50)]
    assert avail.fit(5, 10) == 30
    assert avail.fit(30, 10) == 30
    assert avail.fit(31, 10) == 50
    assert avail.closed_within(0, 45) == 25


def test_durations() -> None:
    assert parse_duration("2h", "d") == 7200
    assert parse_duration("500ms", "d") == 0.5
    assert parse_duration(90, "d") == 90
    with pytest.raises(InputError, match=r"faults\.duration"):
        parse_duration("two hours", "faults.duration")


def test_fault_file(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(
        "faults:\n"
        "  - {kind: outage, target: nws.core, start: '2024-04-01T10:00', duration: 2h}\n"
        "  - {kind: crash, target: 'kind:municipal_cs', at: '2024-04-01T14:00', restart_after: 15m}\n"
        "  - {kind: slow_link, target: 'network:jukinet', start: '2024-04-02T09:00', duration: 1h,"
        " extra_latency: 2s}\n",
        encoding="utf-8",
    )
    plan = load_faults(path)
    outage, crash, slow = plan.faults
    assert outage.start == datetime(2024, 4, 1, 10, tzinfo=JST) and outage.duration == 7200
    assert crash.duration == 900 and crash.matches_party("sapporo.municipal_cs", "municipal_cs")
    assert slow.is_link and slow.extra_latency == 2
    assert plan.station_faults("nws.core", "nws") == [outage]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([{"kind": "meltdown", "target": "x", "start": "2024-01-01T00:00", "duration": "1h"}], "faults[0].kind"),
        ([{"kind": "outage", "start": "2024-01-01T00:00", "duration": "1h"}], "faults[0].target"),
        ([{"kind": "outage", "target": "x", "start": "yesterday", "duration": "1h"}], "faults[0].start"),
        ([{"kind": "outage", "target": "x", "start": "2024-01-01T00:00"}], "faults[0].duration"),
        ([{"kind": "slow_link", "target": "nws.core", "start": "2024-01-01T00:00", "duration": "1h"}],
         "faults[0].target"),
        ([{"kind": "outage", "target": "x", "start": "2024-01-01T00:00", "duration": "1h", "colour": 1}],
         "faults[0].colour"),
    ],
)
def test_bad_faults_name_the_field(raw: object, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_faults({"faults": raw})
    assert caught.value.field == field
