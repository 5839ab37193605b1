"""Worlds for the GYOMU component tests: 桑名→つくば (住民税システム) and 飯塚→倉敷 (介護保険システム), built once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from simulator.components.base import Result
from simulator.components.staff import StaffDirectory, StaffSession, biometric_sample
from simulator.demo import DemoRun, setup_world
from simulator.drivers.inproc import Hop
from simulator.profile_world import municipality_spec
from simulator.world import DEMO_PASSWORD


class Bench:
    """A built world and helpers to act in it as staff."""

    def __init__(self, run: DemoRun) -> None:
        self.run = run
        self.world = run.world
        self.population = run.population

    def step(self, action: Callable[[datetime], Result]) -> tuple[Result, list[Hop]]:
        return self.run.driver.step(action)

    def session(self, staff: StaffDirectory, user: str, terminal: str | None = None) -> StaffSession:
        modality, person = staff.policy.biometric, staff.person(user)
        sample = biometric_sample(modality, person) if modality and person else None
        return staff.authenticate(user, DEMO_PASSWORD, now=self.run.driver.now, biometric=sample,
                                  terminal=terminal or f"{user}-pc")

    def registered(self, m: str, person: dict[str, object]) -> dict[str, object]:
        rows = [r for r in self.population.residents[m] if r["my_number"] == person["my_number"]]
        return {**rows[0], **person}


def _bench(path: Path, provider: str, requester: str) -> Bench:
    run = setup_world(path, size=80, seed=20261124,
                      municipalities=(municipality_spec(provider), municipality_spec(requester)))
    return Bench(run)


@pytest.fixture(scope="session")
def tsukuba(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    bench = _bench(tmp_path_factory.mktemp("gyomu-tsukuba"), "kuwana", "tsukuba")
    yield bench  # type: ignore[misc]
    bench.world.close()


@pytest.fixture(scope="session")
def kurashiki(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    bench = _bench(tmp_path_factory.mktemp("gyomu-kurashiki"), "iizuka", "kurashiki")
    yield bench  # type: ignore[misc]
    bench.world.close()


def refused_at(outcome: Result | Hop) -> tuple[str, str | None] | None:
    """(control id, field) of the refusal a result or hop carries; None when it carries none."""
    refusal = outcome.refusal
    return None if refusal is None else (refusal.control_id, refusal.field)
