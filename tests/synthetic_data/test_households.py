"""世帯 consistency: exactly one 世帯主, parents plausibly older than their children, shared surnames."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from datetime import date

import synthetic_data as sd

REFERENCE = date(2024, 1, 1)


def _age(birth: str) -> int:
    b = date.fromisoformat(birth)
    return REFERENCE.year - b.year - ((b.month, b.day) > (REFERENCE.month, REFERENCE.day))


def _households(conn: sqlite3.Connection) -> dict[int, list[tuple[str, int, str, str, str | None]]]:
    out: dict[int, list[tuple[str, int, str, str, str | None]]] = defaultdict(list)
    for hid, rel, birth, sex, family, nationality in conn.execute(
        "SELECT household_id, relationship, birth_date, sex, family_name, nationality FROM residents "
        "WHERE status = 'active'"
    ):
        out[hid].append((rel, _age(birth), sex, family, nationality))
    return out


def test_exactly_one_head_per_household(sample_db: sqlite3.Connection) -> None:
    for hid, members in _households(sample_db).items():
        heads = [m for m in members if m[0] == "世帯主"]
        assert len(heads) == 1, hid
    (stored,) = sample_db.execute(
        "SELECT count(*) FROM households h WHERE h.status = 'active' AND h.head_person_id NOT IN "
        "(SELECT person_id FROM residents r WHERE r.household_id = h.household_id AND r.relationship = '世帯主')"
    ).fetchone()
    assert stored == 0


def test_children_are_plausibly_younger_than_their_parents(sample_db: sqlite3.Connection) -> None:
    checked = 0
    for hid, members in _households(sample_db).items():
        by_rel: dict[str, list[int]] = defaultdict(list)
        for rel, age, *_ in members:
            by_rel[rel].append(age)
        head_age = by_rel["世帯主"][0]
        parents_of_children = by_rel["世帯主"] + by_rel["妻"] + by_rel["夫"]
        pairs = [(p, c) for c in by_rel["子"] for p in parents_of_children]
        pairs += [(p, c) for c in by_rel["孫"] for p in by_rel["子"] + by_rel["子の妻"]]
        pairs += [(p, head_age) for p in by_rel["父"] + by_rel["母"]]
        pairs += [(p, w) for p in by_rel["妻の父"] + by_rel["妻の母"] for w in by_rel["妻"]]
        for parent, child in pairs:
            assert 16 <= parent - child <= 65, (hid, parent, child, members)
            checked += 1
    assert checked > 5000


def test_spouses_are_adults_of_similar_age(sample_db: sqlite3.Connection) -> None:
    for hid, members in _households(sample_db).items():
        head = next(m for m in members if m[0] == "世帯主")
        for rel, age, sex, *_ in members:
            if rel in ("妻", "夫"):
                assert age >= 18 and abs(age - head[1]) <= 20, hid
                assert sex != head[2], hid


def test_families_share_a_surname(sample_db: sqlite3.Connection) -> None:
    shared = total = 0
    for members in _households(sample_db).values():
        head = next(m for m in members if m[0] == "世帯主")
        if head[4] is not None:
            continue
        for rel, _age, _sex, family, nationality in members:
            if rel in ("妻", "夫", "子", "孫", "子の妻") and nationality is None:
                total += 1
                shared += family == head[3]
    assert total > 5000 and shared == total


def test_newborns_have_a_mother_of_childbearing_age(sample_population: sd.Population) -> None:
    by_id = {r.person_id: r for r in sample_population.residents}
    births = [e for e in sample_population.events if e.event_type == "birth"]
    assert births
    for ev in births:
        mother = by_id[ev.data["mother_id"]]
        age_at_birth = (date.fromisoformat(ev.effective_date) - date.fromisoformat(mother.birth_date)).days / 365.25
        assert 15 <= age_at_birth < 51
        assert ev.data["persons"][0]["birth_date"] == ev.effective_date


def test_residence_starts_after_birth_and_before_the_snapshot(sample_db: sqlite3.Connection) -> None:
    (bad,) = sample_db.execute(
        "SELECT count(*) FROM residents WHERE resident_since < birth_date OR resident_since > '2024-01-01' "
        "OR (status = 'removed' AND removal_date < resident_since)"
    ).fetchone()
    assert bad == 0
