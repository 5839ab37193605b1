"""Workloads for the cost-model engine: a city's year from its synthetic population, or the whole country by rates.

City mode replays the synthetic population's own event stream (every 届出 on the day it was filed, one arrival per
person, at a time of day inside office hours) plus 情報照会 at the published national rate per resident, plus
the night batches and the monthly 整合性確認. National mode has no individual residents: each municipality of a
configurable size list files 異動 at the generator's rates and seasonality and queries at the FY2022 national
volume. Randomness comes only from the run's seed. This module must never schedule anything itself.
"""

from __future__ import annotations

import csv
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

from simulator.errors import InputError
from simulator.simulation.calendar import SimClock, is_open_day
from simulator.simulation.engine import Arrival, Municipality
from simulator.simulation.params import NATIONAL_POPULATION, SimParams

__all__ = [
    "PROFILES",
    "CityProfile",
    "Workload",
    "city_workload",
    "default_municipalities",
    "load_municipalities",
    "national_workload",
]


@dataclass(frozen=True)
class CityProfile:
    """What the simulator needs of a seed municipality until the lead's profile loader lands (see docs)."""

    key: str
    name_ja: str
    name_en: str
    prefecture: str
    size: int  # F-32 synthetic size inside the PIA's bracket
    consistency: str  # "monthly" (P-060, F-16) or "yearly" (P-059)
    policy: tuple[tuple[str, str], ...] = ()  # receiver kind → "hold" where a gateway queues (GW-002, RELAY-002)
    seed_file: str = ""


PROFILES: dict[str, CityProfile] = {
    "kuwana": CityProfile("kuwana", "桑名市", "Kuwana", "mie", 140_000, "yearly", (), "000_b81c60476033af2d.txt"),
    "tsukuba": CityProfile("tsukuba", "つくば市", "Tsukuba", "ibaraki", 250_000, "monthly", (),
                           "001_cc86eefa057d2f96.txt"),
    "sapporo": CityProfile("sapporo", "札幌市", "Sapporo", "hokkaido", 300_000, "monthly",
                           (("municipal_cs", "hold"), ("intermediate_server", "hold")), "002_eb38df5b06157c45.txt"),
    "iizuka": CityProfile("iizuka", "飯塚市", "Iizuka", "fukuoka", 125_000, "monthly", (), "003_c3e3e36f1128990f.txt"),
    "kurashiki": CityProfile("kurashiki", "倉敷市", "Kurashiki", "okayama", 120_000, "monthly", (),
                             "004_c609ceaeef7ce1bb.txt"),
}


def get_profile(name: str) -> CityProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InputError("--profile", f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}") from None


@dataclass
class Workload:
    municipalities: list[Municipality]
    feeder: Callable[[date], Iterable[Arrival]]
    summary: dict[str, Any] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)  # messages started, by flow (filled as days are fed)


class _Day:
    """Random times inside a day's office hours, and Poisson counts, from one seeded stream."""

    def __init__(self, rng: random.Random, clock: SimClock, params: SimParams) -> None:
        self.rng = rng
        self.clock = clock
        hours = params.office.hours or (time(0, 0), time(23, 59))
        self.open_s = hours[0].hour * 3600 + hours[0].minute * 60
        self.close_s = hours[1].hour * 3600 + hours[1].minute * 60

    def office_time(self, day: date, margin: float = 900.0) -> float:
        base = self.clock.midnight(day)
        return base + self.rng.uniform(self.open_s, max(self.close_s - margin, self.open_s + 1))

    def at(self, day: date, moment: time) -> float:
        return self.clock.midnight(day) + moment.hour * 3600 + moment.minute * 60

    def poisson(self, mean: float) -> int:
        if mean <= 0:
            return 0
        if mean > 60:
            return max(round(self.rng.gauss(mean, math.sqrt(mean))), 0)
        # Knuth's method: exact for small means.
        limit, k, p = math.exp(-mean), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1


def _open_days_in_year(year: int) -> int:
    day, count = date(year, 1, 1), 0
    while day.year == year:
        count += is_open_day(day)
        day += timedelta(days=1)
    return count


def _month_weight(weights: Sequence[float], month: int) -> float:
    return 12 * weights[month - 1] / sum(weights)


def _first_open_day(year: int, month: int, not_before: int = 1) -> date:
    day = date(year, month, not_before)
    while not is_open_day(day):
        day += timedelta(days=1)
    return day


def _batches(day: date, d: _Day, params: SimParams, m: int, population: int, changes: int, new_targets: int,
             yesterday_targets: int, queries_30_days_ago: int, consistency: str) -> list[Arrival]:
    """The night batches of one open day for municipality ``m``."""
    out: list[Arrival] = []
    if not params.batch_runs:
        return out
    replica = round(changes * params.replica_per_change)
    june = _first_open_day(day.year, 6, 8)  # the second week of June: 当初賦課決定 (P-064)
    if day == june:
        replica += int(population * params.taxpayer_share)
    if replica:
        out.append(Arrival(d.at(day, params.replica_batch_at), "replica_batch", m, count=replica))
    if new_targets:
        out.append(Arrival(d.at(day, params.sofusaki_at), "sofusaki_batch", m, count=1, rows=new_targets))
    deleted = yesterday_targets + queries_30_days_ago
    if deleted:
        out.append(Arrival(d.at(day, params.retention_at), "retention_batch", m, count=1, rows=deleted))
    monthly = day == _first_open_day(day.year, day.month)
    yearly = day == _first_open_day(day.year, 4)
    if (consistency == "monthly" and monthly) or (consistency == "yearly" and yearly):
        out.append(Arrival(d.at(day, params.consistency_at), "consistency_batch", m, count=1, rows=population))
    return out


def _query_arrivals(day: date, d: _Day, params: SimParams, m: int, n: int, unit: int,
                    pick_provider: Callable[[], int]) -> list[Arrival]:
    out: list[Arrival] = []
    # Binomial splits by Poisson thinning (the shares are small): one draw each instead of one per query.
    held = min(d.poisson(n * params.query_held_share), n)
    refused = min(d.poisson(n * params.query_refused_share), n - held)
    auto = n - held - refused
    for flow, count in (("query", auto), ("query_held", held), ("query_refused", refused)):
        while count > 0:
            k = min(unit, count)
            out.append(Arrival(d.office_time(day), flow, m, count=k, provider=pick_provider()))
            count -= k
    return out


# -- city mode ----------------------------------------------------------------------------------------------------

_EVENT_FLOW = {"move_within": "change", "move_out": "change", "death": "change", "move_in": "move_in",
               "birth": "birth"}


def city_workload(profile: CityProfile, size: int, seed: int, clock: SimClock, params: SimParams,
                  progress: Callable[[str, float], None] | None = None) -> Workload:
    """A seed city's year: its synthetic population's 届出, its queries, its batches."""
    from synthetic_data import generate

    year = clock.at(0).year
    population = generate(profile.key, size, seed, year=year,
                          progress=(lambda stage, f: progress(stage, f)) if progress else None)
    by_day: dict[date, list[tuple[str, int, bool]]] = defaultdict(list)
    skipped: Counter[str] = Counter()
    for event in population.events:
        flow = _EVENT_FLOW.get(event.event_type)
        if flow is None:
            skipped[event.event_type] += 1  # 世帯変更: the real 既存住基 has no form for it yet
            continue
        abroad = event.event_type == "move_in" and not (event.data.get("previous_address") or {}).get("jis_code")
        new_target = event.event_type == "birth" or abroad
        by_day[date.fromisoformat(event.event_date)].append((flow, len(event.person_ids), new_target))
    residents = sum(1 for r in population.residents if r.status == "active")
    on_file = len(population.residents)
    del population
    rng = random.Random(f"jukisim.simulate.city.{profile.key}.{seed}")
    d = _Day(rng, clock, params)
    open_days = _open_days_in_year(year)
    municipality = Municipality(profile.key, profile.name_ja, residents, profile.prefecture)
    targets: dict[date, int] = {}
    queries: dict[date, int] = {}
    workload = Workload([municipality], lambda day: [])

    def feed(day: date) -> list[Arrival]:
        out: list[Arrival] = []
        changes = new_targets = 0
        for flow, persons, new_target in by_day.get(day, []):
            t = d.office_time(day)
            for j in range(persons):  # one 住民票 per person; the clerk enters them one after another
                out.append(Arrival(t + 60.0 * j, flow, 0))
                workload.counts[flow] += 1
            changes += persons
            new_targets += persons if new_target else 0
        if is_open_day(day):
            mean = residents * params.queries_per_resident_year / open_days \
                * _month_weight(params.query_month_weights, day.month)
            n = d.poisson(mean)
            queries[day] = n
            qs = _query_arrivals(day, d, params, 0, n, 1, lambda: -1)
            for a in qs:
                workload.counts[a.flow] += a.count
            out += qs
            targets[day] = new_targets
            previous = max((k for k in targets if k < day), default=None)
            out += _batches(day, d, params, 0, on_file, changes, new_targets,
                            targets.get(previous, 0) if previous else 0,
                            queries.get(day - timedelta(days=30), 0), profile.consistency)
        out.sort(key=lambda a: a.at)
        return out

    workload.feeder = feed
    workload.summary = {
        "mode": "city",
        "profile": profile.key,
        "municipality": profile.name_ja,
        "synthetic_size": size,
        "active_residents": residents,
        "events_in_year": sum(p for day in by_day.values() for _, p, _ in day),
        "events_not_modelled": dict(skipped),
        "queries_per_resident_year": params.queries_per_resident_year,
    }
    return workload


# -- national mode ------------------------------------------------------------------------------------------------

PREFECTURES = (
    "hokkaido", "aomori", "iwate", "miyagi", "akita", "yamagata", "fukushima", "ibaraki", "tochigi", "gunma",
    "saitama", "chiba", "tokyo", "kanagawa", "niigata", "toyama", "ishikawa", "fukui", "yamanashi", "nagano",
    "gifu", "shizuoka", "aichi", "mie", "shiga", "kyoto", "osaka", "hyogo", "nara", "wakayama", "tottori",
    "shimane", "okayama", "hiroshima", "yamaguchi", "tokushima", "kagawa", "ehime", "kochi", "fukuoka", "saga",
    "nagasaki", "kumamoto", "oita", "miyazaki", "kagoshima", "okinawa",
)


def default_municipalities(count: int = 1741, total: int = NATIONAL_POPULATION) -> list[Municipality]:
    """1,741 市区町村 (1,718 市町村 + 23 特別区) with log-normal sizes at evenly spaced quantiles (σ = 1.55, so the
    largest is near 3.7 million and the smallest near 150), scaled to ``total``. An approximation of the real
    size distribution [assumption]; give ``--municipalities FILE`` for real figures."""
    sigma = 1.55
    raw = [math.exp(sigma * _normal_quantile((i + 0.5) / count)) for i in range(count)]
    scale = total / sum(raw)
    sizes = sorted((max(round(x * scale), 100) for x in raw), reverse=True)
    return [Municipality(f"m{i:04d}", f"市区町村{i + 1}", n, PREFECTURES[i % len(PREFECTURES)])
            for i, n in enumerate(sizes)]


def _normal_quantile(p: float) -> float:
    # Acklam's rational approximation (relative error < 1.2e-9): no numpy needed for a default list.
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    if p > 1 - 0.02425:
        return -_normal_quantile(1 - p)
    q = p - 0.5
    r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


def load_municipalities(path: Path) -> list[Municipality]:
    """A CSV with columns ``name,population`` (optional ``prefecture``, ``key``); one municipality per row."""
    path = Path(path)
    if not path.is_file():
        raise InputError("--municipalities", f"{path} does not exist or is not a file")
    out: list[Municipality] = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"name", "population"} <= set(reader.fieldnames):
            raise InputError("--municipalities", "the CSV needs a header with at least name,population")
        for i, row in enumerate(reader, start=2):
            try:
                population = int(str(row["population"]).replace(",", ""))
            except ValueError:
                raise InputError(f"--municipalities line {i}.population", "must be a whole number") from None
            if population <= 0:
                raise InputError(f"--municipalities line {i}.population", "must be greater than 0")
            name = (row.get("name") or "").strip()
            if not name:
                raise InputError(f"--municipalities line {i}.name", "must not be empty")
            prefecture = (row.get("prefecture") or PREFECTURES[(i - 2) % len(PREFECTURES)]).strip()
            key = (row.get("key") or f"m{i - 2:04d}").strip()
            out.append(Municipality(key, name, population, prefecture))
    if not out:
        raise InputError("--municipalities", f"{path} has no rows")
    return out


def national_workload(municipalities: Sequence[Municipality], seed: int, clock: SimClock, params: SimParams,
                      unit: int) -> Workload:
    """Every municipality files 異動 at the generator's national rates and queries at the FY2022 volume."""
    from synthetic_data.tables import (
        BIRTH_MONTH_SHARES,
        CRUDE_BIRTH_RATE,
        CRUDE_DEATH_RATE,
        DEATH_MONTH_SHARES,
        MOVE_MONTH_SHARES,
        NATIONAL_MIGRATION_RATE,
    )

    if unit < 1:
        raise InputError("--unit", "must be at least 1")
    rng = random.Random(f"jukisim.simulate.national.{seed}")
    d = _Day(rng, clock, params)
    cumulative: list[int] = []
    running = 0
    for m in municipalities:
        running += m.population
        cumulative.append(running)
    total = running
    within_rate = 0.04  # 転居 about 4% a year (synthetic_data profiles)
    rates = (
        ("change", NATIONAL_MIGRATION_RATE + within_rate + CRUDE_DEATH_RATE, MOVE_MONTH_SHARES),
        ("move_in", NATIONAL_MIGRATION_RATE, MOVE_MONTH_SHARES),
        ("birth", CRUDE_BIRTH_RATE, BIRTH_MONTH_SHARES),
    )
    _ = DEATH_MONTH_SHARES  # deaths ride with the 異動 of known residents (change flow) at the move shares
    last_targets: dict[int, int] = {}
    queries: dict[int, dict[date, int]] = defaultdict(dict)
    open_days: dict[int, int] = {}
    workload = Workload(list(municipalities), lambda day: [])

    def provider() -> int:
        from bisect import bisect_right

        return bisect_right(cumulative, rng.random() * total - 1e-9)

    def feed(day: date) -> list[Arrival]:
        if not is_open_day(day):
            return []
        year_days = open_days.setdefault(day.year, _open_days_in_year(day.year))
        out: list[Arrival] = []
        query_factor = params.queries_per_resident_year / year_days \
            * _month_weight(params.query_month_weights, day.month)
        for i, m in enumerate(municipalities):
            changes = new_targets = 0
            for flow, rate, shares in rates:
                n = d.poisson(m.population * rate / year_days * _month_weight(shares, day.month))
                changes += n
                if flow == "birth":
                    new_targets += n
                workload.counts[flow] += n
                while n > 0:
                    k = min(unit, n)
                    out.append(Arrival(d.office_time(day), flow, i, count=k))
                    n -= k
            nq = d.poisson(m.population * query_factor)
            qs = _query_arrivals(day, d, params, i, nq, unit, provider)
            for a in qs:
                workload.counts[a.flow] += a.count
            out += qs
            yesterday = last_targets.get(i, 0)
            last_targets[i] = new_targets
            q30 = queries[i].pop(day - timedelta(days=30), 0)
            queries[i][day] = nq
            out += _batches(day, d, params, i, m.population, changes, new_targets, yesterday, q30, "monthly")
        out.sort(key=lambda a: a.at)
        return out

    workload.feeder = feed
    workload.summary = {
        "mode": "national",
        "municipalities": len(municipalities),
        "population": total,
        "unit": unit,
        "queries_per_resident_year": params.queries_per_resident_year,
        "expected_queries_per_year": round(total * params.queries_per_resident_year),
    }
    return workload


def estimate_national_events(population: int, params: SimParams, days: float) -> float:
    """Rough hop events of a national run at unit 1 (for choosing ``--unit auto``)."""
    year = days / 365.0
    queries = population * params.queries_per_resident_year * year
    changes = population * 0.15 * year
    return queries * 9 + changes * 14
