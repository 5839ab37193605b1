"""From municipality profiles to the worlds they build: each profile's world member, and each profile's pair.

A profile (scenarios/profiles/<key>.yaml) says which hops the municipality has (住基GW, relay, 庁内連携 hub), which
table its rows are numbered in, which rows it queries, how long it keeps a 送付先情報ファイル and what it asks of staff
authentication; this module turns that into the MunicipalitySpec simulator.world builds, and picks the world a
profile runs in: its municipality and its `peer`, ordered provider → requester. It must never build a world or
decide a control; it only reads profile data.
"""

from __future__ import annotations

import re
from functools import cache

from simulator.components.office_link import HUBS
from simulator.components.relay import RELAY_PROFILES
from simulator.components.staff import StaffPolicy
from simulator.controls.catalogue import PROFILES
from simulator.errors import InputError
from simulator.profiles import Profile, load_profile
from simulator.world import MunicipalitySpec

__all__ = ["WorldQuery", "municipality_spec", "requester_query", "world_pair"]

# Topology kinds of the profile schema → the component profiles that implement them.
_RELAYS = {"dc_relay_two_vpn_legs": "dc_relay", "shi_chukan": "shi_chukan"}
_HUB_SUFFIX = {"renkei_system": "renkei", "kojin_kihon": "kojin_kihon", "kyotsu_kiban": "kyotsu_kiban"}
_PERIOD = re.compile(r"^P(?P<n>\d+)(?P<unit>[YMD])(?P<business> business)?$")
_DAYS = {"Y": 365, "M": 30, "D": 1}


def _days(period: str, field: str) -> int:
    """A retention period of the profile as days (business days count as days: CS-016 counts them itself)."""
    m = _PERIOD.match(period)
    if m is None:
        raise InputError(field, f"retention {period!r} must be PnY, PnM or PnD (optionally 'business')")
    return int(m.group("n")) * _DAYS[m.group("unit")]


def _staff_policy(profile: Profile) -> StaffPolicy:
    """Staff authentication and log rules from the profile (auth.*, retention.server_log)."""
    auth = profile.auth
    months = re.fullmatch(r"P(\d+)M", auth.password_max_age or "")
    years = re.fullmatch(r"P(\d+)Y", profile.retention.get("server_log", ""))
    return StaffPolicy(
        biometric=None if auth.biometric == "none" else auth.biometric,
        password_max_age_months=int(months.group(1)) if months else None,
        fy_rollover_revoke=auth.fy_rollover_revoke,
        same_day_revoke=auth.same_day_revoke,
        rights_register=auth.rights_register,
        central_authority=f"{profile.key}.atena" if auth.central_authority else None,
        # LOG-002: a purposed server log wherever the profile states how long server logs are kept.
        purpose_required=years is not None,
        server_log_years=int(years.group(1)) if years else None,
    )


@cache
def municipality_spec(key: str) -> MunicipalitySpec:
    """The world member a profile describes."""
    profile = load_profile(key)
    topology = profile.topology
    hub = f"{key}_{_HUB_SUFFIX[topology.office_link_hub]}" if topology.office_link_hub else None
    if hub is not None and hub not in HUBS:
        raise InputError("topology.office_link_hub", f"{key}: no 庁内連携 route table {hub!r} in office_link.HUBS")
    relay = _RELAYS[topology.relay] if topology.relay else None
    if relay is not None and relay not in RELAY_PROFILES:
        raise InputError("topology.relay", f"{key}: no relay profile {relay!r}")
    mailing = profile.retention.get("mailing_info")
    return MunicipalitySpec(
        key,
        profile.name_ja,
        profile.name_en,
        profile.prefecture,
        profile.query_pairs(),
        table=profile.nws.provide.table,
        relay=relay,
        office_link_hub=hub,
        juki_gateway=topology.gateway is not None,
        delivery_file_retention_days=_days(mailing, "retention.mailing_info") if mailing else 1,
        staff_policy=_staff_policy(profile),
    )


def _queries(requester: Profile, provider: Profile) -> bool:
    q, p = requester.nws.query, provider.nws.provide
    return q.table == p.table and bool(set(q.rows) & set(p.rows)) and p.item in q.items


@cache
def world_pair(key: str) -> tuple[str, str]:
    """(provider, requester): the profile's municipality and its peer, the one that queries the other second."""
    if key not in PROFILES:
        raise InputError("profile", f"unknown profile {key!r}; known: {', '.join(PROFILES)}")
    me, peer = load_profile(key), load_profile(load_profile(key).peer)
    if _queries(peer, me):
        return me.key, peer.key
    if _queries(me, peer):
        return peer.key, me.key
    raise InputError("peer", f"{key}: neither {key} nor its peer {peer.key} queries a row the other provides")


class WorldQuery(tuple[str, str, str]):
    """(business, row, item): what a world's requester asks its provider for."""

    @property
    def business(self) -> str:
        return self[0]

    @property
    def row(self) -> str:
        return self[1]

    @property
    def item(self) -> str:
        return self[2]


@cache
def requester_query(provider: str, requester: str) -> WorldQuery:
    """The requester's business, the lowest row both sides name, and the item the provider provides."""
    p, r = load_profile(provider), load_profile(requester)
    rows = sorted(set(r.nws.query.rows) & set(p.nws.provide.rows), key=lambda x: (len(x), x))
    if not rows:
        raise InputError("nws.query.rows", f"{requester} queries no row that {provider} provides")
    return WorldQuery((r.business, rows[0], p.nws.provide.item))
