"""Municipality profiles: each loads, its rows are on the 照会許可用照合リスト, its citations are inside its seed,
its contradictions name scenarios, its peer exercises its own rows, and mistakes in the YAML are located."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from simulator.controls.catalogue import PROFILES, SEED_FILES, Catalogue, load_catalogue, seeds_dir
from simulator.model.permissions import PermissionList
from simulator.profiles import (
    ORGANISATION_KIND,
    Profile,
    ProfileError,
    claimed_controls,
    list_profiles,
    load_profile,
    load_profile_file,
    permission_list,
    profiles_dir,
)

KEYS = list(PROFILES)


@pytest.fixture(scope="module")
def plist() -> PermissionList:
    return permission_list()


@pytest.fixture(scope="module")
def profiles(plist: PermissionList) -> dict[str, Profile]:
    return {k: load_profile(k, plist=plist) for k in KEYS}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def seed_lines() -> dict[str, int]:
    d = seeds_dir()
    if d is None:
        pytest.skip("seed texts not found: set JUKISIM_SEEDS or place them in ../shared/seeds; line checks skipped")
    counts = {}
    for name in SEED_FILES.values():
        text = (d / name).read_text(encoding="utf-8")
        counts[name] = len(text.split("\n")) - (1 if text.endswith("\n") else 0)
    return counts


def test_every_seed_municipality_has_a_profile() -> None:
    assert list_profiles() == KEYS


@pytest.mark.parametrize("key", KEYS)
def test_profile_loads_and_matches_its_seed(key: str, profiles: dict[str, Profile]) -> None:
    p = profiles[key]
    assert p.key == key
    assert p.seed == SEED_FILES[key]
    assert (p.name_ja, p.name_en) == PROFILES[key]
    assert p.kind == ORGANISATION_KIND
    lo, hi = p.population.bracket
    assert lo < (hi or lo + 1)
    assert p.population.synthetic_size <= 200  # a verification world is a small scale model


@pytest.mark.parametrize("key", KEYS)
def test_every_provide_row_is_on_the_list_with_this_profile_as_provider(
    key: str, profiles: dict[str, Profile], plist: PermissionList
) -> None:
    p = profiles[key].nws.provide
    for row in p.rows:
        entries = [e for e in plist.rows if e.row == row and e.table == p.table]
        assert entries, f"{key}: 提供 row {row} ({p.table}) is not on the list"
        assert any(e.provider_kind == ORGANISATION_KIND and p.item in e.items for e in entries), (
            f"{key}: row {row} ({p.table}) has no entry with provider {ORGANISATION_KIND} and item {p.item}"
        )
        for e in entries:
            assert e.sources, f"row {row}: every entry cites the seed"
            if e.inferred:
                assert e.basis, f"row {row}: an inferred entry says why"


@pytest.mark.parametrize("key", KEYS)
def test_every_query_row_is_on_the_list_with_this_profile_as_requester(
    key: str, profiles: dict[str, Profile], plist: PermissionList
) -> None:
    prof = profiles[key]
    q = prof.nws.query
    for row in q.rows:
        mine = [
            e
            for e in plist.rows
            if e.row == row
            and e.table == q.table
            and e.requester_kind == ORGANISATION_KIND
            and e.requester_business == prof.business
        ]
        assert mine, f"{key}: 照会 row {row} ({q.table}) has no entry for {ORGANISATION_KIND}/{prof.business}"
    for item in q.items:
        assert any(
            plist.allows(
                row=row,
                table=q.table,
                requester_kind=ORGANISATION_KIND,
                requester_business=prof.business,
                provider_kind=e.provider_kind,
                item=item,
            )
            for row in q.rows
            for e in plist.entries(row, q.table)
        ), f"{key}: query item {item} is allowed under none of its rows"


def test_declared_row_counts_as_the_seeds_print_them(profiles: dict[str, Profile]) -> None:
    counts = {k: (len(p.nws.provide.rows), len(p.nws.query.rows)) for k, p in profiles.items()}
    assert counts == {
        "kuwana": (60, 0),
        "tsukuba": (72, 1),
        "sapporo": (60, 0),
        "iizuka": (58, 0),
        "kurashiki": (33, 2),
    }
    assert profiles["kuwana"].nws.provide.rows == profiles["sapporo"].nws.provide.rows  # identical lists (P-047)
    assert profiles["iizuka"].nws.provide.declared_count == 59  # 59 declared, 58 listed (contradiction iizuka-1)
    assert profiles["tsukuba"].nws.provide.declared_count == 65
    assert "56の2" in profiles["kurashiki"].nws.provide.rows and "85の2" in profiles["iizuka"].nws.provide.rows


def test_tables_follow_the_seeds(profiles: dict[str, Profile]) -> None:
    tables = {k: p.nws.provide.table for k, p in profiles.items()}
    assert tables == {
        "kuwana": "shumu_2", "tsukuba": "shumu_2", "sapporo": "shumu_2", "iizuka": "beppyo_2", "kurashiki": "beppyo_2",
    }  # fmt: skip


@pytest.mark.parametrize("key", KEYS)
def test_peer_exercises_this_profiles_own_rows(key: str, profiles: dict[str, Profile], plist: PermissionList) -> None:
    me, peer = profiles[key], profiles[profiles[key].peer]
    pairs = [(a, b) for a, b in ((me, peer), (peer, me)) if a.nws.query.rows]
    exercised = []
    for requester, provider in pairs:
        q, p = requester.nws.query, provider.nws.provide
        if q.table != p.table:
            continue  # row numbers of the two tables are not comparable
        for row in set(q.rows) & set(p.rows):
            if p.item in q.items and plist.allows(
                row=row,
                table=q.table,
                requester_kind=ORGANISATION_KIND,
                requester_business=requester.business,
                provider_kind=ORGANISATION_KIND,
                item=p.item,
            ):
                exercised.append((requester.key, row, provider.key, p.item))
    assert exercised, f"{key} ↔ {peer.key}: no query of one is answered under the other's 提供 rows"
    if me.business == "resident_register":
        assert any(item == "resident_info" and prov == key for _, _, prov, item in exercised)


def test_pairs_chosen(profiles: dict[str, Profile]) -> None:
    peers = {k: p.peer for k, p in profiles.items()}
    assert peers == {
        "kuwana": "tsukuba",
        "tsukuba": "kuwana",
        "sapporo": "tsukuba",
        "iizuka": "kurashiki",
        "kurashiki": "iizuka",
    }


@pytest.mark.parametrize("key", KEYS)
def test_contradictions_name_a_scenario_and_real_controls(
    key: str, profiles: dict[str, Profile], catalogue: Catalogue
) -> None:
    p = profiles[key]
    assert p.contradictions, f"{key}: the extractions list self-contradictions for every seed"
    for n, c in enumerate(p.contradictions, start=1):
        assert c.scenario == f"contradiction-{key}-{n}"
        assert c.description_ja and c.description_en
        assert all(s.seed == p.seed for s in c.seeds)
        for cid in c.controls:
            assert cid in catalogue, f"{c.id}: unknown control {cid}"


def test_contradiction_counts_follow_the_catalogue(profiles: dict[str, Profile]) -> None:
    counts = {k: len(p.contradictions) for k, p in profiles.items()}
    assert counts == {"kuwana": 15, "tsukuba": 8, "sapporo": 7, "iizuka": 11, "kurashiki": 8}


@pytest.mark.parametrize("key", KEYS)
def test_source_lines_are_inside_the_seed(key: str, profiles: dict[str, Profile], seed_lines: dict[str, int]) -> None:
    p = profiles[key]
    cited = [*p.sources, *(s for c in p.contradictions for s in c.seeds)]
    for s in cited:
        assert s.lines[1] <= seed_lines[s.seed], f"{key}: {s.seed} L{s.lines} is past the end ({seed_lines[s.seed]})"


def test_permission_list_sources_are_inside_the_seeds(plist: PermissionList, seed_lines: dict[str, int]) -> None:
    for e in plist.rows:
        for s in e.sources:
            end = s["lines"][1]
            assert 1 <= s["lines"][0] <= end <= seed_lines[s["seed"]], f"row {e.row} ({e.table}): {s}"


def test_claimed_controls_come_from_the_catalogue(profiles: dict[str, Profile], catalogue: Catalogue) -> None:
    for key, p in profiles.items():
        ids = claimed_controls(p, catalogue)
        assert ids == [c.id for c in catalogue.controls if key in c.profiles]
        assert claimed_controls(key, catalogue) == ids
    assert "GW-002" in claimed_controls("sapporo", catalogue)  # queue and forward while 住基ネット is down
    assert "RELAY-001" in claimed_controls("tsukuba", catalogue)
    assert "CS-003" not in claimed_controls("kurashiki", catalogue)  # no 住基ネット in 介護保険
    with pytest.raises(ProfileError, match="unknown profile"):
        claimed_controls("osaka", catalogue)


def test_topology_specifics(profiles: dict[str, Profile]) -> None:
    assert profiles["iizuka"].topology.gateway == "micjet_gw"
    assert profiles["sapporo"].topology.gateway == "jukinet_chukan_server"
    assert profiles["sapporo"].topology.relay == "shi_chukan"
    assert profiles["tsukuba"].topology.relay == "dc_relay_two_vpn_legs"
    assert profiles["kurashiki"].topology.office_link_hub == "kyotsu_kiban"
    assert "ltc--kokuhoren" in profiles["kurashiki"].topology.extra_edges
    assert profiles["kurashiki"].topology.juki_net is False
    assert profiles["kuwana"].topology.convenience_store is True
    assert profiles["sapporo"].cs.search_min_keys == 0


def test_query_pairs_for_the_world_builder(profiles: dict[str, Profile]) -> None:
    assert profiles["tsukuba"].query_pairs() == (("tax", "48"),)
    assert profiles["kurashiki"].query_pairs() == (("ltc", "93"), ("ltc", "94"))
    assert profiles["kuwana"].query_pairs() == ()


# ------------------------------------------------------------------------------------------ errors


def _copy(tmp_path: Path, key: str = "kuwana") -> Path:
    target = tmp_path / f"{key}.yaml"
    shutil.copy(profiles_dir() / f"{key}.yaml", target)
    return target


def _line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return n
    raise AssertionError(needle)


def test_unknown_key_in_yaml_names_file_line_and_field(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace("  convenience_store: true", "  convenience_stor: true"))
    with pytest.raises(ProfileError) as err:
        load_profile_file(path)
    line = _line_of(path, "convenience_stor:")
    text = str(err.value)
    assert f"kuwana.yaml:{line}" in text
    assert "topology.convenience_stor" in text
    assert "unknown field" in text and "convenience_store" in text  # says what was meant


def test_unknown_top_level_key_and_wrong_value(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    text = path.read_text(encoding="utf-8")
    text = text.replace("consistency_check_interval: P1Y", "consistency_check_interval: yearly")
    path.write_text(text + "colour: blue\n", encoding="utf-8")
    with pytest.raises(ProfileError) as err:
        load_profile_file(path)
    fields = {p.field for p in err.value.problems}
    assert {"colour", "consistency_check_interval"} <= fields
    bad = next(p for p in err.value.problems if p.field == "consistency_check_interval")
    assert bad.line == _line_of(path, "consistency_check_interval:")
    assert "ISO 8601" in bad.rule


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    n = _line_of(path, "jis_code:")
    lines[n - 1] = "jis_code: [242055"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ProfileError) as err:
        load_profile_file(path)
    assert err.value.problems[0].field == "(YAML syntax)"
    assert err.value.problems[0].line is not None and err.value.problems[0].line >= n


def test_row_not_on_the_list_is_refused_at_its_line(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace('rows: ["1", "2",', 'rows: ["1", "999", "2",', 1))
    with pytest.raises(ProfileError) as err:
        load_profile_file(path)
    problem = err.value.problems[0]
    assert problem.field == "nws.provide.rows[1]"
    assert "'999'" in problem.rule and "shumu_2" in problem.rule
    assert problem.line == _line_of(path, '"999"')


def test_wrong_table_is_refused(tmp_path: Path) -> None:
    """Kuwana's rows moved to the old table: '110' and '112' … are no 別表第二 rows a 住基 provider declares."""
    path = _copy(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace("table: shumu_2", "table: beppyo_2", 1))
    with pytest.raises(ProfileError) as err:
        load_profile_file(path)
    assert any("beppyo_2" in p.rule for p in err.value.problems)


def test_bad_check_digit_and_contradiction_numbering(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    text = path.read_text(encoding="utf-8").replace('jis_code: "242055"', 'jis_code: "242056"')
    text = text.replace("scenario: contradiction-kuwana-2", "scenario: kuwana-two")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as err:
        load_profile_file(path)
    rules = " ".join(p.rule for p in err.value.problems)
    assert "check digit should be 5" in rules
    assert "contradiction-kuwana-2" in rules


def test_unknown_profile_key_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError) as err:
        load_profile("kuwanna")
    text = str(err.value)
    assert "'kuwanna'" in text and "did you mean 'kuwana'" in text
    for key in KEYS:
        assert key in text


def test_file_name_and_key_must_agree(tmp_path: Path) -> None:
    path = _copy(tmp_path, "kuwana")
    target = tmp_path / "other" / "tsukuba.yaml"
    target.parent.mkdir()
    shutil.copy(path, target)
    with pytest.raises(ProfileError, match="must be 'tsukuba'"):
        load_profile("tsukuba", directory=target.parent)


def test_profiles_are_frozen(profiles: dict[str, Profile]) -> None:
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError for assignment to a frozen model
        profiles["kuwana"].peer = "iizuka"  # type: ignore[misc]


def test_every_sources_field_names_a_profile_field(profiles: dict[str, Profile]) -> None:
    for p in profiles.values():
        for s in p.sources:
            assert s.field is None or re.match(r"^[a-z_]+(\.[a-z_]+)*$", s.field)
