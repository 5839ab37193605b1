"""送付先情報ファイルの保管期間 (CS-016): the 000 profile's "1 business day" counts only municipal business days."""

from __future__ import annotations

from datetime import date

from simulator.components.card_system import CARD_EVENTS
from simulator.components.sofusaki import business_days_after


def test_one_business_day_after_a_weekday_is_the_next_weekday() -> None:
    assert business_days_after(date(2026, 11, 24), 1) == date(2026, 11, 25)  # 火 → 水


def test_weekends_and_holidays_are_skipped() -> None:
    assert business_days_after(date(2026, 11, 20), 1) == date(2026, 11, 24)  # 金 → 火 (11/23 勤労感謝の日)


def test_the_year_end_closure_is_skipped() -> None:
    assert business_days_after(date(2026, 12, 28), 1) == date(2027, 1, 4)


def test_resume_follows_only_a_suspension() -> None:
    _, allowed_from, _ = CARD_EVENTS["resume"]
    assert allowed_from == frozenset({"suspended"})
