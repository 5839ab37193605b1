"""The world a set of services runs: which profile, built fresh on the wall clock or reopened from disk.

Services read the real clock, so a world they serve must start now (its certificates and CRL cover today),
unlike the demo's fixed start. This module builds and loads residents the way ``simulator.demo.setup_world``
does, through the in-process driver; it must never write a store directly or skip a component.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from simulator.components.base import Result
from simulator.components.business import BusinessSystem
from simulator.components.registry import Registry
from simulator.drivers.inproc import InProcessDriver
from simulator.errors import InputError
from simulator.population import DemoPopulation, demo_population
from simulator.simulation.calendar import is_open_day
from simulator.world import MunicipalitySpec, World, WorldSpec

__all__ = ["JST", "PROFILES", "build_world", "municipalities_of", "now_jst", "open_world"]

JST = ZoneInfo("Asia/Tokyo")
POPULATION_FILE = "population.json"


def now_jst() -> datetime:
    return datetime.now(JST)


def _demo() -> tuple[MunicipalitySpec, ...]:
    from simulator.demo import DEMO_MUNICIPALITIES

    return DEMO_MUNICIPALITIES


def _profile(key: str) -> tuple[MunicipalitySpec, ...]:
    from simulator.profile_world import municipality_spec, world_pair

    return tuple(municipality_spec(m) for m in world_pair(key))


#: Worlds the services can run: the demo world (桑名市 provides, 倉敷市 requests under 別表第二 94), and each
#: municipality profile's verification world (its municipality and its peer, provider first; simulator.profile_world).
PROFILES: dict[str, Callable[[], tuple[MunicipalitySpec, ...]]] = {
    "demo": _demo,
    **{key: partial(_profile, key) for key in ("kuwana", "tsukuba", "sapporo", "iizuka", "kurashiki")},
}


def municipalities_of(profile: str) -> tuple[MunicipalitySpec, ...]:
    try:
        return PROFILES[profile]()
    except KeyError:
        raise InputError("profile", f"unknown profile {profile!r}; known: {', '.join(sorted(PROFILES))}") from None


def last_open_morning(moment: datetime) -> datetime:
    """10:00 JST of the latest 開庁日 (weekday, not a 祝日, not 12/29–1/3) that is not after ``moment``."""
    local = moment.astimezone(JST)
    day = local.date() if local.time() >= time(10) else local.date() - timedelta(days=1)
    while not is_open_day(day):
        day -= timedelta(days=1)
    return datetime.combine(day, time(10), tzinfo=JST)


def build_world(data_dir: Path, profile: str, size: int, seed: int, start: datetime) -> tuple[World, DemoPopulation]:
    """A fresh world starting at ``start`` with ``size`` synthetic residents in the linkage path (宛名, 符号, 副本)."""
    municipalities = municipalities_of(profile)
    # The residents enter the linkage path on the last 開庁日 morning, as a 住基GW (札幌, 飯塚) only passes 符号
    # requests to 住基ネット in opening hours: a world built at night would serve persons without 符号 for hours.
    loaded_at = last_open_morning(start)
    world = World.create(data_dir, WorldSpec(municipalities=municipalities, start=loaded_at))
    driver = InProcessDriver(world, loaded_at)
    population = demo_population(size, seed, [m.key for m in municipalities])
    population.save(Path(data_dir) / POPULATION_FILE)
    for m in municipalities:
        registry = world.registry(m.key)
        driver.step(partial(registry.bulk_load, population.residents[m.key]))
        for resident in population.residents[m.key]:
            driver.step(partial(_publish, registry, resident["resident_code"]))
        for business, records in (("tax", population.tax[m.key]), ("ltc", population.ltc[m.key])):
            system = world.business(m.key, business)
            for person in records:
                driver.step(
                    partial(_register, system, person["business_atena_number"], person["my_number"], person["record"])
                )
    world.now = start
    return world, population


def open_world(data_dir: Path, profile: str, now: datetime) -> World:
    """Attach to a world built earlier by ``build_world`` (a restart, or another process of the same run)."""
    world = World.open(data_dir, WorldSpec(municipalities=municipalities_of(profile), start=now))
    world.now = now
    return world


def load_population(data_dir: Path) -> DemoPopulation:
    return DemoPopulation.load(Path(data_dir) / POPULATION_FILE)


def _publish(registry: Registry, resident_code: str, now: datetime) -> Result:
    return registry.publish(resident_code, now)


def _register(system: BusinessSystem, number: str, my_number: str, record: dict[str, Any], now: datetime) -> Result:
    return system.register(number, my_number, record, now)
