"""Real mode: the demo world's real components (signatures, encryption, SQLite) driven by a script in virtual time.

A script is built once, from the world's population and the seed: which clerk enters which 異動 for whom, which
介護保険 query asks about whom, when. The same script runs under the SimPy driver (with capacity, queues, windows and
faults) or under the in-process driver, so the two can be compared decision by decision. ``calibrate`` runs a short
script with measured CPU times and turns them into the cost table the cost-model engine uses. This module must
never decide a control: every decision comes from a component.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from simulator.components.base import Result
from simulator.demo import PROVIDER, REQUESTER, DemoRun, setup_world
from simulator.drivers.des import DesDriver
from simulator.drivers.inproc import Hop
from simulator.simulation.calendar import JST, Availability, SimClock, is_open_day
from simulator.simulation.costmodel import CostTable, kind_of, measurement_source
from simulator.simulation.params import SimParams
from simulator.world import DEMO_PASSWORD

__all__ = ["Action", "RealContext", "build_script", "calibrate", "run_des", "run_inproc"]

CHANGE_KINDS = ("move_within", "birth", "death", "move_out")


@dataclass(frozen=True)
class Action:
    at: float  # seconds from the script's start
    kind: str  # move_within | birth | death | move_out | query | query_held | query_refused | consistency
    municipality: str
    subject: str = ""  # 住民票コード, 世帯番号 or 介護保険 被保険者番号 chosen when the script was built
    extra: tuple[tuple[str, str], ...] = ()


@dataclass
class RealContext:
    """What a clerk holds: the world, signed-in sessions, the population's rows."""

    run: DemoRun
    sessions: dict[str, Any] = field(default_factory=dict)

    def session(self, key: str) -> Any:
        if key not in self.sessions:
            world = self.run.world
            m, user = key.split(":")
            if user in ("clerk-a", "clerk-b"):
                self.sessions[key] = world.registry(m).staff.authenticate(user, DEMO_PASSWORD)
            else:
                self.sessions[key] = world.intermediate(m).staff.authenticate(user, DEMO_PASSWORD)
        return self.sessions[key]


def build_script(run: DemoRun, start: datetime, days: int, seed: int, *, changes_per_day: float = 12,
                 queries_per_day: float = 12, params: SimParams | None = None,
                 consistency: bool = True) -> list[Action]:
    """A reproducible script over ``days`` from ``start``: 異動 and 情報照会 on open days, inside office hours."""
    params = params or SimParams()
    rng = random.Random(f"jukisim.real.{seed}")
    clock = SimClock(start)
    hours = params.office.hours
    assert hours is not None
    open_s = hours[0].hour * 3600 + hours[0].minute * 60
    close_s = hours[1].hour * 3600 + hours[1].minute * 60 - 1800  # leave time for the confirming clerk
    pop = run.population
    movers = {r["resident_code"] for r in pop.movers + pop.protected_movers}
    pools = {
        m: [r for r in rows if r["status"] == "active" and not r["protective_measure"]
            and r["resident_code"] not in movers]
        for m, rows in pop.residents.items()
    }
    for rows in pools.values():
        rng.shuffle(rows)
    heads = {m: [r for r in rows if r["status"] == "active" and r["is_head"]] for m, rows in pop.residents.items()}
    municipalities = sorted(pop.residents)
    out: list[Action] = []
    for offset in range(days):
        day = (start + timedelta(days=offset)).date()
        base = clock.midnight(day)
        if not is_open_day(day):
            continue
        if consistency and day.day <= 7 and not any(
                is_open_day(day - timedelta(days=k)) and (day - timedelta(days=k)).month == day.month
                for k in range(1, day.day)):
            for m in municipalities:  # 整合性確認 on the first open day of the month (F-16), after hours
                out.append(Action(base + 18 * 3600, "consistency", m))
        for _ in range(_poisson(rng, changes_per_day)):
            m = rng.choice(municipalities)
            kind = rng.choices(CHANGE_KINDS, weights=(0.55, 0.1, 0.15, 0.2))[0]
            at = base + rng.uniform(open_s, close_s)
            if kind == "birth":
                parent = rng.choice(heads[m])
                out.append(Action(at, kind, m, parent["household_id"],
                                  (("family", parent["name"].split()[0]),
                                   ("family_kana", parent["name_kana"].split()[0]))))
            elif pools[m]:
                person = pools[m].pop()
                out.append(Action(at, kind, m, person["resident_code"],
                                  (("address", person["address"]), ("postal_code", person["postal_code"]))))
        for _ in range(_poisson(rng, queries_per_day)):
            at = base + rng.uniform(open_s, close_s)
            r = rng.random()
            if r < 0.05 and pop.protected_movers:
                out.append(Action(at, "query_held", REQUESTER, rng.choice(pop.protected_movers)["ltc_atena_number"]))
            elif r < 0.08:
                out.append(Action(at, "query_refused", REQUESTER, rng.choice(pop.movers)["ltc_atena_number"]))
            else:
                out.append(Action(at, "query", REQUESTER, rng.choice(pop.movers)["ltc_atena_number"]))
    out.sort(key=lambda a: (a.at, a.kind, a.subject))
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _form(action: Action, now: datetime) -> dict[str, Any]:
    extra = dict(action.extra)
    yesterday = (now.date() - timedelta(days=1)).isoformat()
    if action.kind == "move_within":
        return {"change_type": "move_within", "resident_code": action.subject,
                "address": extra["address"].rsplit("丁目", 1)[0] + "丁目99番地", "postal_code": extra["postal_code"],
                "change_date": yesterday}
    if action.kind == "death":
        return {"change_type": "death", "resident_code": action.subject, "change_date": yesterday}
    if action.kind == "move_out":
        return {"change_type": "move_out", "resident_code": action.subject, "change_date": yesterday,
                "destination_address": "東京都千代田区千代田1番1号"}
    return {"change_type": "birth", "name": f"{extra['family']} 太郎", "name_kana": f"{extra['family_kana']} タロウ",
            "birth_date": yesterday, "sex": "1", "household_id": action.subject, "relationship": "子",
            "change_date": yesterday}


_ITEMS = {"query": ["local_tax_info", "resident_info"], "query_held": ["resident_info"],
          "query_refused": ["health_insurance_info"]}


# -- SimPy ---------------------------------------------------------------------------------------------------------

def run_des(ctx: RealContext, driver: DesDriver, script: list[Action], params: SimParams) -> None:
    """Start one process per action; ``driver.run()`` then carries them."""
    for action in script:
        driver.env.process(_des_action(ctx, driver, action, params))


def _office_next(driver: DesDriver, params: SimParams, t: float) -> float:
    closed = params.office.closed(driver.clock, t + 10 * 86_400)
    return Availability(closed).next_up(t)


def _des_action(ctx: RealContext, driver: DesDriver, action: Action,
                params: SimParams) -> Generator[Any, Any, None]:
    env = driver.env
    if action.at > env.now:
        yield env.timeout(action.at - env.now)
    world, m = ctx.run.world, action.municipality
    if action.kind in CHANGE_KINDS:
        registry = world.registry(m)
        clerk_a, clerk_b = ctx.session(f"{m}:clerk-a"), ctx.session(f"{m}:clerk-b")
        entered = driver.step(registry.party, lambda now: registry.enter_change(clerk_a, _form(action, now), now),
                              command="enter_change", label=f"{action.kind}.entry")
        yield entered.done
        change_id = entered.result.value if entered.result is not None else None
        if not isinstance(change_id, str):
            return
        confirm_at = _office_next(driver, params, env.now + params.confirm_delay)
        yield env.timeout(confirm_at - env.now)
        driver.step(registry.party, lambda now: registry.confirm_change(clerk_b, change_id, True, now),
                    command="confirm_change", label=action.kind)
    elif action.kind.startswith("query"):
        ltc = world.business(m, "ltc")
        query = driver.step(ltc.party, lambda now: ltc.query("ltc-staff-01", action.subject, "94",
                                                             _ITEMS[action.kind], PROVIDER, now),
                            command="query", label=action.kind)
        yield query.done
        if action.kind == "query_held":
            release_at = _office_next(driver, params, env.now + params.review_delay)
            yield env.timeout(release_at - env.now)
            chukan = world.intermediate(PROVIDER)
            reviewer = ctx.session(f"{PROVIDER}:reviewer")

            def release(now: datetime) -> Result:
                held = chukan.held_requests()
                if not held:
                    return Result()
                return chukan.release_held(reviewer, held[0], True, now)

            driver.step(chukan.party, release, command="release_held", label="query_held.release")
    elif action.kind == "consistency":
        cs = world.cs(m)
        pref_party = f"jlis.prefectural_server.{_prefecture(ctx, m)}"
        pref = world.component(pref_party)
        driver.step(pref_party, lambda now: pref.consistency_check(cs.party, cs.consistency_rows(), now),  # type: ignore[attr-defined]
                    command="consistency_check", label="consistency")


def _prefecture(ctx: RealContext, m: str) -> str:
    for spec in ctx.run.world.spec.municipalities:
        if spec.key == m:
            return spec.prefecture
    raise KeyError(f"municipality: {m!r} is not in this world")


# -- in-process ----------------------------------------------------------------------------------------------------

def run_inproc(ctx: RealContext, script: list[Action], start: datetime, params: SimParams) -> list[Hop]:
    """The same script through the in-process driver: each action at its time, delays as clock advances."""
    driver = ctx.run.driver
    hops: list[Hop] = []

    def at(t: float) -> None:
        target = start + timedelta(seconds=t)
        if target > driver.now:
            driver.advance(target - driver.now)

    for action in script:
        at(action.at)
        hops += _inproc_action(ctx, action, params)
    return hops


def _inproc_action(ctx: RealContext, action: Action, params: SimParams) -> list[Hop]:
    driver, world, m = ctx.run.driver, ctx.run.world, action.municipality
    hops: list[Hop] = []
    if action.kind in CHANGE_KINDS:
        registry = world.registry(m)
        clerk_a, clerk_b = ctx.session(f"{m}:clerk-a"), ctx.session(f"{m}:clerk-b")
        entered, more = driver.step(lambda now: registry.enter_change(clerk_a, _form(action, now), now))
        hops += more
        if isinstance(entered.value, str):
            driver.advance(timedelta(seconds=params.confirm_delay))
            change_id = entered.value
            hops += driver.step(lambda now: registry.confirm_change(clerk_b, change_id, True, now))[1]
    elif action.kind.startswith("query"):
        ltc = world.business(m, "ltc")
        hops += driver.step(lambda now: ltc.query("ltc-staff-01", action.subject, "94", _ITEMS[action.kind],
                                                  PROVIDER, now))[1]
        if action.kind == "query_held":
            driver.advance(timedelta(seconds=params.review_delay))
            chukan = world.intermediate(PROVIDER)
            held = chukan.held_requests()
            if held:
                reviewer = ctx.session(f"{PROVIDER}:reviewer")
                hops += driver.step(lambda now: chukan.release_held(reviewer, held[0], True, now))[1]
    elif action.kind == "consistency":
        cs = world.cs(m)
        pref = world.component(f"jlis.prefectural_server.{_prefecture(ctx, m)}")
        hops += driver.step(lambda now: pref.consistency_check(cs.party, cs.consistency_rows(), now))[1]  # type: ignore[attr-defined]
    return hops


def decision_multiset(hops: list[Hop]) -> Counter[tuple[str, str, str, str]]:
    """(component kind, message type, control, outcome) of every decision: what two drivers must agree on."""
    out: Counter[tuple[str, str, str, str]] = Counter()
    for hop in hops:
        for d in hop.decisions:
            out[(kind_of(d.component), hop.message_type, d.control_id, str(d.outcome))] += 1
    return out


# -- calibration ---------------------------------------------------------------------------------------------------

def calibrate(size: int = 80, seed: int = 20261124, days: int = 2, per_day: float = 30,
              progress: Callable[[str], None] | None = None) -> CostTable:
    """Measure a cost table: a small real world under the SimPy driver with measured CPU times."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jukisim-calibrate-") as tmp:
        if progress:
            progress("world")
        run = setup_world(Path(tmp) / "world", size=size, seed=seed)
        try:
            start = _after(run.driver.now)
            params = SimParams(windows={})
            driver = DesDriver(run.world, start, params=params, timing="measured", horizon=days * 86_400.0)
            ctx = RealContext(run)
            script = build_script(run, start, days, seed, changes_per_day=per_day, queries_per_day=per_day,
                                  params=params, consistency=False)
            # At least a few of each query outcome, whatever the draw, so every hop type is measured.
            base = script[0].at if script else 0.0
            script += [Action(base + 60.0 * (i + 1), kind, REQUESTER, run.population.movers[0]["ltc_atena_number"])
                       for i, kind in enumerate(("query_refused", "query_refused", "query_refused"))]
            run_des(ctx, driver, script, params)
            if progress:
                progress("script")
            # The night 副本 batch re-registers business records: measure that command too.
            ltc = run.world.business(PROVIDER, "tax")
            for person in run.population.tax[PROVIDER][:10]:
                driver.step(ltc.party, lambda now, p=person: ltc.register(  # type: ignore[misc]
                    p["business_atena_number"], p["my_number"], p["record"], now), command="register")
            driver.run()
            samples: dict[tuple[str, str], list[float]] = defaultdict(list, {k: list(v) for k, v in driver.samples.items()})
            _batch_samples(run, driver.now, samples)
        finally:
            run.world.close()
    table = CostTable.from_samples(samples, measurement_source(
        world_size=size, seed=seed, script_days=days, per_day=per_day,
        wall_s=round(time.perf_counter() - started, 2),
        proxies={
            "card_management/jukinet.sofusaki": "national_server/jukinet.identity_notify (no 個人番号カード管理システム "
                                                "component yet: a signed, sealed 本人確認情報 notice of similar size)",
            "municipal_cs/batch.sofusaki_export": "municipal_cs/batch.consistency_export (per row)",
        },
    ))
    costs = dict(table.costs)
    costs[("card_management", "jukinet.sofusaki")] = table.cost("national_server", "jukinet.identity_notify")
    costs[("municipal_cs", "batch.sofusaki_export")] = table.cost("municipal_cs", "batch.consistency_export")
    return CostTable(costs, table.samples, table.fallback, table.source)


def _after(moment: datetime) -> datetime:
    """The next whole minute after ``moment`` (the world's clock after setup), in JST."""
    moment = moment.astimezone(JST)
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _batch_samples(run: DemoRun, now: datetime, samples: dict[tuple[str, str], list[float]]) -> None:
    """Per-row costs of the batch jobs, measured on the real stores of the throwaway world."""
    from simulator.crypto.replay import ReplayGuard

    world = run.world
    for m in sorted(run.population.residents):
        cs = world.cs(m)
        t0 = time.thread_time()
        rows = cs.consistency_rows()
        export = time.thread_time() - t0
        pref = world.component(f"jlis.prefectural_server.{_prefecture(RealContext(run), m)}")
        t0 = time.thread_time()
        pref.consistency_check(cs.party, rows, now)  # type: ignore[attr-defined]
        check = time.thread_time() - t0
        if rows:
            samples[("municipal_cs", "batch.consistency_export")].append(export / len(rows))
            samples[("prefectural_server", "batch.consistency_check")].append(check / len(rows))
        # Deletion past retention: the replay records of the run, all past their expiry a day later.
        for kind, conn in (("municipal_cs", cs.conn), ("intermediate_server", world.intermediate(m).conn)):
            guard = ReplayGuard(conn, timedelta(minutes=10))
            t0 = time.thread_time()
            deleted = guard.purge(now + timedelta(days=1))
            spent = time.thread_time() - t0
            if deleted:
                samples[(kind, "batch.retention_delete")].append(spent / deleted)


def new_world_for_real_mode(data_dir: Path, size: int, seed: int) -> tuple[RealContext, datetime]:
    """Build the demo pair world (桑名市 provider, 倉敷市 requester) and say when the simulation may start."""
    run = setup_world(Path(data_dir), size=size, seed=seed)
    return RealContext(run), _after(run.driver.now)
