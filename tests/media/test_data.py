"""The per-profile data of the MEDIA and ITAKU areas (every profile loads; bad data names its field and rule), and
the packages a medium holds (really encrypted)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from simulator.components.contractors import ContractorRules, contractor_rules
from simulator.components.media import MediaRules, load_area_data, media_rules, open_package, seal_package
from simulator.controls.catalogue import PROFILES
from simulator.errors import InputError

SEEDS = Path("/work/shared/seeds")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_has_rules(profile: str) -> None:
    assert isinstance(media_rules(profile), MediaRules)
    assert isinstance(contractor_rules(profile), ContractorRules)


def test_claims_follow_the_catalogue() -> None:
    # MEDIA-002/003/005 are 桑名市's, MEDIA-004/006 and ITAKU-003/004 つくば市's, MEDIA-007 飯塚市's.
    assert media_rules("kuwana").witness and media_rules("kuwana").bulk_output
    assert media_rules("tsukuba").usage_register and not media_rules("tsukuba").witness
    assert media_rules("iizuka").cs_media_encryption and not media_rules("iizuka").bulk_output
    kurashiki = media_rules("kurashiki").copy_rule
    assert kurashiki is not None and kurashiki.contractors_forbidden and not kurashiki.staff_admin_only
    assert contractor_rules("tsukuba").shared_file_server and contractor_rules("tsukuba").handover_encryption
    assert contractor_rules("kurashiki").work_log is None  # ITAKU-002 is not claimed by 004
    assert media_rules("sapporo") == MediaRules() and contractor_rules("sapporo") == ContractorRules()


@pytest.mark.skipif(not SEEDS.exists(), reason="seed corpus not present")
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_cited_lines_exist(profile: str) -> None:
    for rules in (media_rules(profile), contractor_rules(profile)):
        for name in type(rules).model_fields:
            fact = getattr(rules, name)
            if fact is None:
                continue
            lines = (SEEDS / fact.seed).read_text(encoding="utf-8").splitlines()
            assert fact.lines[1] <= len(lines), f"{profile}.{name}: {fact.seed} has {len(lines)} lines"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "media.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_field_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "kuwana:\n  witnes: {seed: 000_b81c60476033af2d.txt, lines: [329, 329]}\n")
    with pytest.raises(InputError) as info:
        load_area_data("media", MediaRules, "kuwana", path)
    assert info.value.field == "media.yaml:2 kuwana.witnes"


def test_inferred_needs_a_reason(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "kuwana:\n  bulk_output: {threshold: 10, window_hours: 24, seed: 000_b81c60476033af2d.txt,"
        " lines: [313, 313], inferred: true}\n",
    )
    with pytest.raises(InputError) as info:
        load_area_data("media", MediaRules, "kuwana", path)
    assert info.value.field == "media.yaml:2 kuwana.bulk_output"
    assert "reason" in info.value.rule


def test_bad_lines_and_missing_profile(tmp_path: Path) -> None:
    path = _write(tmp_path, "kuwana:\n  witness: {seed: 000_b81c60476033af2d.txt, lines: [9, 3]}\n")
    with pytest.raises(InputError, match="lines"):
        load_area_data("media", MediaRules, "kuwana", path)
    good = _write(tmp_path, "kuwana:\n  witness: {seed: 000_b81c60476033af2d.txt, lines: [3, 9]}\n")
    with pytest.raises(InputError, match="no entry for profile"):
        load_area_data("media", MediaRules, "tsukuba", good)


def test_package_is_ciphertext_and_opens_only_with_its_key() -> None:
    rows = [{"resident_code": "12345678901", "name": "山田 太郎"}]
    key = bytes(32)
    sealed = seal_package(rows, key=key)
    assert "山田".encode() not in sealed and b"12345678901" not in sealed
    assert open_package(sealed, key=key) == rows
    with pytest.raises(InvalidTag):
        open_package(sealed, key=b"\x01" * 32)
    by_phrase = seal_package(rows, passphrase="hand-over-2026")
    assert open_package(by_phrase, passphrase="hand-over-2026") == rows
    with pytest.raises(InvalidTag):
        open_package(by_phrase, passphrase="wrong")
