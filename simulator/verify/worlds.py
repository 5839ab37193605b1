"""Which world a scenario runs in: the profile's municipality, its peer across NWS, and the population.

Every verification world pairs the profile's own municipality with its profile's `peer`, so that both directions
of the linkage path exist: the provider side (whose residents moved) and the requester side (who asks about them).
Both members and the pair come from the profiles (simulator.profile_world). This module must never build a world
itself; it only plans one (the runner builds and caches it).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.controls.catalogue import PROFILES
from simulator.profile_world import municipality_spec, requester_query, world_pair
from simulator.verify.scenario import Scenario
from simulator.world import MunicipalitySpec

__all__ = ["WorldPlan", "plan_for"]


@dataclass(frozen=True)
class WorldPlan:
    profile: str
    provider: str
    requester: str
    size: int
    seed: int

    def placeholders(self) -> dict[str, str]:
        """Values scenario steps may name as "@world.<key>", so one scenario fits every profile's world."""
        business, row, item = requester_query(self.provider, self.requester)
        return {
            "profile": self.profile,
            "provider": self.provider,
            "requester": self.requester,
            "query_business": business,
            "query_row": row,
            "query_item": item,
            # Who may send 既存住基's messages to the provider's CS: its 住基GW where it has one (GW-001).
            "cs_client": (
                f"{self.provider}.juki_gateway"
                if municipality_spec(self.provider).juki_gateway
                else f"{self.provider}.registry"
            ),
        }

    @property
    def municipalities(self) -> tuple[MunicipalitySpec, ...]:
        return (municipality_spec(self.provider), municipality_spec(self.requester))

    @property
    def key(self) -> str:
        return f"{self.provider}-{self.requester}-{self.size}-{self.seed}"


def plan_for(scenario: Scenario, profile: str) -> WorldPlan:
    if profile not in PROFILES:
        raise ValueError(f"profile: unknown profile {profile!r}; known: {', '.join(sorted(PROFILES))}")
    provider, requester = world_pair(profile)
    return WorldPlan(
        profile,
        provider,
        requester,
        int(scenario.population.get("size", 80)),
        int(scenario.population.get("seed", 20261124)),
    )
