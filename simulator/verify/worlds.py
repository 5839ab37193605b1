"""Which world a scenario runs in: the profile's municipality, its peer across NWS, and the population.

Every verification world pairs the profile's own municipality with a peer, so that both directions of the
linkage path exist: the provider side (whose residents moved) and the requester side (who asks about them).
This module must never build a world itself; it only plans one (the runner builds and caches it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from simulator.components.staff import StaffPolicy
from simulator.profiles import load_profile
from simulator.verify.scenario import Scenario
from simulator.world import MunicipalitySpec

__all__ = ["MUNICIPALITIES", "PAIRS", "WorldPlan", "plan_for"]

#: The five seed municipalities as world members: prefecture and the (business, row) pairs each may query.
MUNICIPALITIES: dict[str, MunicipalitySpec] = {
    "kuwana": MunicipalitySpec("kuwana", "桑名市", "Kuwana", "mie", (("tax", "48"),)),
    "tsukuba": MunicipalitySpec("tsukuba", "つくば市", "Tsukuba", "ibaraki", (("tax", "48"),)),
    # 札幌 (住基ネット中間サーバ) and 飯塚 (MICJET 住基GW) relay between 既存住基 and CS; 飯塚 keeps a 送付先情報ファイル
    # under a year (003), 桑名 one business day (000).
    "sapporo": MunicipalitySpec("sapporo", "札幌市", "Sapporo", "hokkaido", (("tax", "48"),), juki_gateway=True),
    # 飯塚 and 倉敷 number their rows in 番号法別表第二 (their documents predate the 主務省令 table); the others use
    # 主務省令第2条の表. A world pairs municipalities of the same table, so a row number means one thing in it.
    "iizuka": MunicipalitySpec(
        "iizuka",
        "飯塚市",
        "Iizuka",
        "fukuoka",
        (("tax", "48"),),
        juki_gateway=True,
        delivery_file_retention_days=364,
        table="beppyo_2",
    ),
    "kurashiki": MunicipalitySpec(
        "kurashiki", "倉敷市", "Kurashiki", "okayama", (("ltc", "93"), ("ltc", "94")), table="beppyo_2"
    ),
}

#: 庁内連携 hubs (catalogue §D: route tables in simulator.components.office_link.HUBS) and the city-side relays in
#: front of the 中間サーバー (札幌's システム基盤(市中間サーバ), つくば's DC relay with two VPN legs).
_LINKAGE_TOPOLOGY: dict[str, tuple[str, str | None]] = {
    "kuwana": ("kuwana_renkei", None),
    "tsukuba": ("tsukuba_renkei", "dc_relay"),
    "sapporo": ("sapporo_kojin_kihon", "shi_chukan"),
    "iizuka": ("iizuka_renkei", None),
    "kurashiki": ("kurashiki_kyotsu_kiban", None),
}
for _key, (_hub, _relay) in _LINKAGE_TOPOLOGY.items():
    MUNICIPALITIES[_key] = replace(MUNICIPALITIES[_key], office_link_hub=_hub, relay=_relay)


def _staff_policy(key: str) -> StaffPolicy:
    """Staff authentication and log rules from the profile (auth.*, retention.server_log) and its claims."""
    profile = load_profile(key)
    auth = profile.auth
    months = re.fullmatch(r"P(\d+)M", auth.password_max_age or "")
    years = re.fullmatch(r"P(\d+)Y", profile.retention.get("server_log", ""))
    return StaffPolicy(
        biometric=None if auth.biometric == "none" else auth.biometric,
        password_max_age_months=int(months.group(1)) if months else None,
        fy_rollover_revoke=auth.fy_rollover_revoke,
        same_day_revoke=auth.same_day_revoke,
        # AUTH-009/010/011 (つくば): rights come only from approved applications, with windows.
        rights_register=key in _RIGHTS_REGISTER,
        # AUTH-012 (札幌): システム基盤(団体内統合宛名) authenticates staff for every business system.
        central_authority=f"{key}.atena" if key in _CENTRAL_AUTH else None,
        # LOG-002 (つくば): a purposed server log, kept for retention.server_log.
        purpose_required=years is not None,
        server_log_years=int(years.group(1)) if years else None,
    )


_RIGHTS_REGISTER = {"tsukuba"}
_CENTRAL_AUTH = {"sapporo"}
for _key in list(MUNICIPALITIES):
    MUNICIPALITIES[_key] = replace(MUNICIPALITIES[_key], staff_policy=_staff_policy(_key))

#: profile → (provider municipality, requester municipality). A 住基 profile provides 住民票関係情報 to a
#: requester that queries it; Tsukuba (住民税) and Kurashiki (介護保険) are requesters of their own rows.
#: Pairs stay within one table: つくば queries 住民票関係情報 under 主務省令 48, which 桑名 and 札幌 provide; 倉敷
#: queries it under 別表第二 94, which 飯塚 provides (docs/profiles.md).
PAIRS: dict[str, tuple[str, str]] = {
    "kuwana": ("kuwana", "tsukuba"),
    "tsukuba": ("kuwana", "tsukuba"),
    "sapporo": ("sapporo", "tsukuba"),
    "iizuka": ("iizuka", "kurashiki"),
    "kurashiki": ("iizuka", "kurashiki"),
}


#: What the requester side of each world may ask the provider for: (business, row, item).
QUERIES: dict[str, tuple[str, str, str]] = {
    "kurashiki": ("ltc", "94", "resident_info"),
    "tsukuba": ("tax", "48", "resident_info"),
}


@dataclass(frozen=True)
class WorldPlan:
    profile: str
    provider: str
    requester: str
    size: int
    seed: int

    def placeholders(self) -> dict[str, str]:
        """Values scenario steps may name as "@world.<key>", so one scenario fits every profile's world."""
        business, row, item = QUERIES[self.requester]
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
                if MUNICIPALITIES[self.provider].juki_gateway
                else f"{self.provider}.registry"
            ),
        }

    @property
    def municipalities(self) -> tuple[MunicipalitySpec, ...]:
        return (MUNICIPALITIES[self.provider], MUNICIPALITIES[self.requester])

    @property
    def key(self) -> str:
        return f"{self.provider}-{self.requester}-{self.size}-{self.seed}"


def plan_for(scenario: Scenario, profile: str) -> WorldPlan:
    if profile not in PAIRS:
        raise ValueError(f"profile: unknown profile {profile!r}; known: {', '.join(sorted(PAIRS))}")
    provider, requester = PAIRS[profile]
    return WorldPlan(
        profile,
        provider,
        requester,
        int(scenario.population.get("size", 80)),
        int(scenario.population.get("seed", 20261124)),
    )
