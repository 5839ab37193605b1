"""A small verification world per pair (桑名市→つくば市, 飯塚市→倉敷市) built once, copied for each test.

The worlds are real: every extension installed, real PKI, real SQLite stores, a synthetic population. Tests act
through the media control's and the contractor desk's own commands and read the decisions they return.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from simulator.components.base import Result
from simulator.components.contractors import ContractorDesk
from simulator.components.media import MediaControl
from simulator.components.staff import StaffDirectory, StaffSession, biometric_sample
from simulator.demo import DEMO_START
from simulator.population import demo_population
from simulator.profile_world import municipality_spec
from simulator.world import DEMO_PASSWORD, World, WorldSpec

PAIRS = {"kuwana": ("kuwana", "tsukuba"), "iizuka": ("iizuka", "kurashiki")}


class Bench:
    """One copied world, a clock, and sign-in helpers."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.now = DEMO_START + timedelta(hours=1)

    def tick(self, delta: timedelta = timedelta(seconds=1)) -> datetime:
        self.now += delta
        return self.now

    def media(self, m: str) -> MediaControl:
        c = self.world.component(f"{m}.media_control")
        assert isinstance(c, MediaControl)
        return c

    def desk(self, m: str) -> ContractorDesk:
        c = self.world.component(f"{m}.contractors")
        assert isinstance(c, ContractorDesk)
        return c

    def session(self, staff: StaffDirectory, user: str) -> StaffSession:
        return staff.authenticate(user, DEMO_PASSWORD, now=self.tick(), biometric=self.sample(staff, user))

    def sample(self, staff: StaffDirectory, user: str) -> str | None:
        modality, person = staff.policy.biometric, staff.person(user)
        return biometric_sample(modality, person) if modality and person else None

    def run(self, action: Callable[[datetime], Result]) -> Result:
        return action(self.tick())


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media-worlds")
    built: dict[str, Path] = {}
    for key, pair in PAIRS.items():
        # The register rows are all these components read; the linkage path (宛名, 符号, 副本) is not needed here.
        world = World.create(root / key, WorldSpec(tuple(municipality_spec(k) for k in pair), start=DEMO_START))
        population = demo_population(40, 7, list(pair))
        for m in pair:
            world.registry(m).bulk_load(population.residents[m], DEMO_START)
        world.close()
        built[key] = root / key
    return built


def _bench(templates: dict[str, Path], tmp_path: Path, key: str) -> Iterator[Bench]:
    target = tmp_path / key
    shutil.copytree(templates[key], target)
    spec = WorldSpec(municipalities=tuple(municipality_spec(k) for k in PAIRS[key]), start=DEMO_START)
    world = World.open(target, spec)
    try:
        yield Bench(world)
    finally:
        world.close()


@pytest.fixture
def east(templates: dict[str, Path], tmp_path: Path) -> Iterator[Bench]:
    """桑名市 and つくば市."""
    yield from _bench(templates, tmp_path, "kuwana")


@pytest.fixture
def west(templates: dict[str, Path], tmp_path: Path) -> Iterator[Bench]:
    """飯塚市 and 倉敷市."""
    yield from _bench(templates, tmp_path, "iizuka")
