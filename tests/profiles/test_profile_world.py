"""A profile is data and loading one builds its world member: topology, rows, retention and staff rules come
from the profile file, and the pair of a profile's world from its `peer`."""

from __future__ import annotations

import pytest

from simulator.controls.catalogue import PROFILES
from simulator.errors import InputError
from simulator.profile_world import _days, municipality_spec, requester_query, world_pair
from simulator.profiles import load_profile


@pytest.mark.parametrize("key", list(PROFILES))
def test_every_profile_gives_a_member_and_a_pair(key: str) -> None:
    spec = municipality_spec(key)
    profile = load_profile(key)
    assert spec.key == key and spec.name_ja == profile.name_ja and spec.table == profile.nws.provide.table
    assert spec.juki_gateway == (profile.topology.gateway is not None)
    assert (spec.relay is None) == (profile.topology.relay is None)
    provider, requester = world_pair(key)
    assert key in (provider, requester) and profile.peer in (provider, requester)
    business, row, item = requester_query(provider, requester)
    assert (business, row) in municipality_spec(requester).query_rows
    assert row in load_profile(provider).nws.provide.rows and item == load_profile(provider).nws.provide.item


def test_the_seed_topologies_arrive_in_the_world() -> None:
    assert municipality_spec("sapporo").juki_gateway and municipality_spec("sapporo").relay == "shi_chukan"
    assert municipality_spec("tsukuba").relay == "dc_relay"
    assert municipality_spec("kurashiki").office_link_hub == "kurashiki_kyotsu_kiban"
    assert municipality_spec("iizuka").delivery_file_retention_days == 365  # 1年未満 → purged at a year at most
    assert municipality_spec("kuwana").delivery_file_retention_days == 1  # 1 business day
    assert municipality_spec("tsukuba").staff_policy.rights_register
    assert municipality_spec("sapporo").staff_policy.central_authority == "sapporo.atena"
    assert not municipality_spec("kuwana").staff_policy.rights_register


def test_pairs_are_provider_then_requester() -> None:
    assert world_pair("kuwana") == world_pair("tsukuba") == ("kuwana", "tsukuba")
    assert world_pair("sapporo") == ("sapporo", "tsukuba")
    assert world_pair("iizuka") == world_pair("kurashiki") == ("iizuka", "kurashiki")


def test_bad_retention_and_unknown_profile_name_the_field() -> None:
    with pytest.raises(InputError) as e:
        _days("one year", "retention.mailing_info")
    assert e.value.field == "retention.mailing_info"
    with pytest.raises(InputError) as e2:
        world_pair("osaka")
    assert e2.value.field == "profile"
