"""Validation of a population file against its targets: the distributions it was drawn from, and hard invariants.

Each check compares a generated share or rate with its published target. The tolerance is a fixed allowance for
modelling error plus four standard errors for the sample size, so a small file is judged as fairly as a large
one. Identifiers and addresses are hard checks (no tolerance). This module must never repair a file; it reports
and, through `ensure_valid`, fails loudly.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from simulator.identifiers import is_valid_my_number, is_valid_resident_code

from . import tables
from .profiles import Profile, get_profile

PARALLEL_VALIDATION_ROWS = 200_000  # below this a forked process costs more than it saves

__all__ = ["Check", "ValidationFailed", "ensure_valid", "validate_connection", "validate_path"]


@dataclass(frozen=True, slots=True)
class Check:
    group: str  # age_pyramid, household_size, household_type, foreign, card, protective, ltc, events, invariants
    name: str
    target: float
    actual: float
    tolerance: float
    n: int

    @property
    def ok(self) -> bool:
        return abs(self.actual - self.target) <= self.tolerance + 1e-12

    def as_dict(self) -> dict[str, Any]:
        return dict(asdict(self), ok=self.ok)


class ValidationFailed(Exception):
    """One or more checks drifted past their tolerance; ``failures`` lists them."""

    def __init__(self, failures: list[Check]) -> None:
        self.failures = failures
        lines = [
            f"{c.group}/{c.name}: actual {c.actual:.4f}, target {c.target:.4f} ± {c.tolerance:.4f} (n={c.n})"
            for c in failures
        ]
        super().__init__("population drifted from its targets:\n  " + "\n  ".join(lines))


def _share_checks(
    group: str, counts: Counter[Any], targets: Mapping[Any, float], allowance: float, n: int | None = None
) -> list[Check]:
    total = n if n is not None else sum(counts.values())
    target_total = sum(targets.values())
    checks = []
    for key, weight in targets.items():
        p = weight / target_total
        actual = counts.get(key, 0) / total if total else 0.0
        se = math.sqrt(p * (1 - p) / total) if total else 1.0
        checks.append(Check(group, str(key), p, actual, allowance + 4 * se, total))
    return checks


def _rate_check(group: str, name: str, observed: int, expected: float, allowance: float, n: int) -> Check:
    """A count compared with its expectation, as rates per person; Poisson error plus a relative allowance."""
    tolerance = (allowance * expected + 4 * math.sqrt(max(expected, 1.0))) / n
    return Check(group, name, expected / n, observed / n, tolerance, n)


def validate_connection(conn: sqlite3.Connection) -> list[Check]:
    """Every check for the population in ``conn``."""
    meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    profile = get_profile(meta["profile"])
    year = int(meta["event_year"])
    reference = date.fromisoformat(meta["reference_date"])
    checks: list[Check] = []
    # The identifier checks re-derive every check digit; on a big file they run in a forked process while
    # the distributions are computed here.
    (total_rows,) = conn.execute("SELECT count(*) FROM residents").fetchone()
    db_file = conn.execute("PRAGMA database_list").fetchone()[2]
    pool: Any = None
    pending: Any = None
    if total_rows >= PARALLEL_VALIDATION_ROWS and db_file and (os.cpu_count() or 1) >= 2:
        pool = multiprocessing.get_context("fork").Pool(1)
        pending = pool.apply_async(_invariants_in_file, (db_file, sorted(profile.wards)))
    try:
        checks += _distribution_checks(conn, meta, profile, year, reference)
        checks += pending.get() if pending is not None else invariant_checks(conn, set(profile.wards))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return checks


def _invariants_in_file(path: str, jis_codes: list[str]) -> list[Check]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return invariant_checks(conn, jis_codes)


def _distribution_checks(
    conn: sqlite3.Connection, meta: dict[str, Any], profile: Profile, year: int, reference: date
) -> list[Check]:
    checks: list[Check] = []

    from .generator import death_rate

    pyramid: Counter[str] = Counter()
    ages: Counter[int] = Counter()
    n = foreign = cards = protected = 0
    expected_deaths = 0.0
    ref_md = reference.isoformat()[5:]
    for sex, birth, nationality, card, measure in conn.execute(
        "SELECT sex, birth_date, nationality, has_my_number_card, protective_measure "
        "FROM residents WHERE status = 'active'"
    ):
        age = reference.year - int(birth[:4]) - (1 if birth[5:] > ref_md else 0)
        n += 1
        ages[age] += 1
        pyramid[f"{sex}{min(age // 5 * 5, 100):03d}"] += 1
        foreign += nationality is not None
        cards += bool(card)
        protected += measure is not None
        expected_deaths += death_rate(sex, age)

    # Age pyramid by 5-year group and sex.
    pyramid_targets = {f"{s}{lower:03d}": (m if s == "M" else f) for lower, m, f in tables.POPULATION_BY_AGE_SEX
                       for s in "MF"}
    checks += _share_checks("age_pyramid", pyramid, pyramid_targets, 0.002, n)

    # Households: size and type among active households (active members only).
    hh = conn.execute("SELECT household_type, size FROM households WHERE status = 'active' AND size > 0").fetchall()
    sizes: Counter[int] = Counter(min(size, 7) for _t, size in hh)
    checks += _share_checks("household_size", sizes, tables.HOUSEHOLD_SIZE_SHARES, 0.035)
    types: Counter[str] = Counter(t for t, _s in hh)
    checks += _share_checks("household_type", types, tables.HOUSEHOLD_TYPE_SHARES, 0.035)

    checks += _share_checks("foreign", Counter({"foreign": foreign}), {"foreign": profile.foreign_share,
                            "japanese": 1 - profile.foreign_share}, 0.003, n)[:1]
    foreign_rows = conn.execute(
        "SELECT nationality, residence_status FROM residents WHERE status = 'active' AND nationality IS NOT NULL"
    ).fetchall()
    if len(foreign_rows) >= 200:
        nationalities = Counter(nat if nat in tables.NATIONALITY_COUNTS else "その他" for nat, _s in foreign_rows)
        checks += _share_checks("nationality", nationalities, tables.NATIONALITY_COUNTS, 0.05)
        statuses = Counter(st for _n, st in foreign_rows if st in tables.RESIDENCE_STATUS_COUNTS)
        checks += _share_checks("residence_status", statuses, tables.RESIDENCE_STATUS_COUNTS, 0.05,
                                len(foreign_rows))
    checks += _share_checks("card", Counter({"holding_rate": cards}), {"holding_rate": tables.CARD_HOLDING_RATE,
                            "none": 1 - tables.CARD_HOLDING_RATE}, 0.02, n)[:1]
    checks += _share_checks("protective", Counter({"share": protected}), {"share": tables.PROTECTIVE_MEASURE_SHARE,
                            "none": 1 - tables.PROTECTIVE_MEASURE_SHARE}, 0.0005, n)[:1]

    # 介護保険: every active 65+ is insured; certification rate and level mix.
    elderly = sum(k for a, k in ages.items() if a >= 65)
    ltc = conn.execute("SELECT care_level FROM ltc").fetchall()
    checks.append(Check("ltc", "insured_are_65_plus", float(elderly), float(len(ltc)), 0.0, elderly))
    certified = Counter(level for (level,) in ltc if level != "非該当")
    checks += _share_checks("ltc", Counter({"certification_rate": sum(certified.values())}),
                            {"certification_rate": tables.LTC_OVERALL_CERTIFICATION_RATE,
                             "none": 1 - tables.LTC_OVERALL_CERTIFICATION_RATE}, 0.03, max(len(ltc), 1))[:1]
    if certified:
        checks += _share_checks("care_level", certified, tables.CARE_LEVEL_SHARES, 0.03)

    # Events: yearly rates per type and the monthly shape.
    event_rows = conn.execute("SELECT event_type, effective_date, person_ids FROM events").fetchall()
    if event_rows:
        persons: Counter[str] = Counter()
        months: dict[str, Counter[int]] = {"moves": Counter(), "death": Counter(), "birth": Counter()}
        for kind, effective, ids in event_rows:
            k = len(json.loads(ids))
            persons[kind] += k
            month = int(effective[5:7])
            if kind in ("move_in", "move_out", "move_within"):
                months["moves"][month] += k
            elif kind in ("death", "birth"):
                months[kind][month] += 1
        checks.append(_rate_check("events", "death", persons["death"], expected_deaths, 0.15, n))
        checks.append(_rate_check("events", "birth", persons["birth"], tables.CRUDE_BIRTH_RATE * n, 0.25, n))
        checks.append(_rate_check("events", "move_in", persons["move_in"], profile.move_in_rate * n, 0.05, n))
        checks.append(_rate_check("events", "move_out", persons["move_out"], profile.move_out_rate * n, 0.2, n))
        checks.append(
            _rate_check("events", "move_within", persons["move_within"], profile.move_within_rate * n, 0.2, n)
        )
        moves = dict(enumerate(tables.MOVE_MONTH_SHARES, start=1))
        checks += _share_checks("events_by_month", months["moves"], moves, 0.012)
        deaths = dict(enumerate(tables.DEATH_MONTH_SHARES, start=1))
        if sum(months["death"].values()) >= 200:
            checks += [
                Check("deaths_by_month", c.name, c.target, c.actual, c.tolerance, c.n)
                for c in _share_checks("deaths_by_month", months["death"], deaths, 0.01)
            ]
        first = min(e for _k, e, _i in event_rows)
        last = max(e for _k, e, _i in event_rows)
        inside = first >= f"{year}-01-01" and last <= f"{year}-12-31"
        checks.append(Check("events", "effective_dates_in_year", 1.0, float(inside), 0.0, len(event_rows)))

    return checks


def invariant_checks(conn: sqlite3.Connection, jis_codes: Iterable[str]) -> list[Check]:
    """Hard checks: identifiers valid and unique, addresses in the municipality, one 世帯主 per active 世帯."""
    codes = set(jis_codes)
    n = bad_codes = bad_numbers = outside = 0
    seen_codes: set[str] = set()
    seen_numbers: set[str] = set()
    for code, number, jis in conn.execute("SELECT resident_code, my_number, jis_code FROM residents"):
        n += 1
        bad_codes += not is_valid_resident_code(code)
        bad_numbers += not is_valid_my_number(number)
        seen_codes.add(code)
        seen_numbers.add(number)
        outside += jis not in codes
    dup_codes = n - len(seen_codes)
    dup_numbers = n - len(seen_numbers)
    outside += conn.execute(
        f"SELECT count(*) FROM households WHERE jis_code NOT IN ({','.join('?' * len(codes))})", tuple(sorted(codes))
    ).fetchone()[0]
    heads = conn.execute(
        "SELECT count(*) FROM (SELECT h.household_id, sum(r.is_head AND r.status = 'active') AS heads "
        "FROM households h JOIN residents r USING (household_id) WHERE h.status = 'active' AND h.size > 0 "
        "GROUP BY h.household_id HAVING heads != 1)"
    ).fetchone()[0]
    return [
        Check("invariants", "invalid_resident_codes", 0, bad_codes, 0, n),
        Check("invariants", "invalid_my_numbers", 0, bad_numbers, 0, n),
        Check("invariants", "duplicate_resident_codes", 0, dup_codes, 0, n),
        Check("invariants", "duplicate_my_numbers", 0, dup_numbers, 0, n),
        Check("invariants", "addresses_outside_municipality", 0, outside, 0, n),
        Check("invariants", "households_without_exactly_one_head", 0, heads, 0, n),
    ]


def validate_path(path: Path | str) -> list[Check]:
    from .storage import _open_readonly

    with closing(_open_readonly(path)) as conn:
        return validate_connection(conn)


def ensure_valid(checks: list[Check]) -> None:
    failures = [c for c in checks if not c.ok]
    if failures:
        raise ValidationFailed(failures)
