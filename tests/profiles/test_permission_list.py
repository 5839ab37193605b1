"""The 照会許可用照合リスト data: the demo's three rows keep their meaning, the two tables stay apart, and the strict
loader locates mistakes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from simulator.model.permissions import PermissionList, load_permission_list
from simulator.profiles import TABLES, ProfileError, permission_list, permission_list_path


@pytest.fixture(scope="module")
def plist() -> PermissionList:
    return permission_list()


def test_strict_and_plain_loaders_agree(plist: PermissionList) -> None:
    assert load_permission_list() == plist


def test_row_94_keeps_the_demo_semantics(plist: PermissionList) -> None:
    e = plist.row("94", "beppyo_2")
    assert e is not None and plist.row("94") == e  # the table-less lookup the components use finds the same entry
    assert (e.requester_kind, e.requester_business, e.provider_kind) == ("municipality", "ltc", "municipality")
    assert set(e.items) == {"resident_info", "local_tax_info", "ltc_info"}
    assert e.inferred  # 地方税関係情報 under row 94 is not in the seeds
    ask = {"row": "94", "requester_kind": "municipality", "requester_business": "ltc", "provider_kind": "municipality"}
    assert plist.allows(**ask, item="resident_info")
    assert plist.allows(**ask, item="local_tax_info")
    assert not plist.allows(**ask, item="health_insurance_info")  # the demo's refused query


def test_row_93_and_48(plist: PermissionList) -> None:
    r93 = plist.row("93", "beppyo_2")
    assert r93 is not None and r93.provider_kind == "health_insurer" and r93.items == ("health_insurance_info",)
    r48 = plist.row("48")
    assert r48 is not None and r48.table == "shumu_2"
    assert (r48.requester_kind, r48.requester_business, r48.provider_kind) == ("municipality", "tax", "municipality")
    assert "local_tax_info" in r48.items
    assert plist.allows(
        row="48", requester_kind="municipality", requester_business="tax", provider_kind="municipality",
        item="local_tax_info",
    )  # fmt: skip


def test_tables_are_kept_apart(plist: PermissionList) -> None:
    assert {e.table for e in plist.rows} == set(TABLES)
    old_48 = plist.row("48", "beppyo_2")
    assert old_48 is not None and old_48.requester_kind == "mhlw_minister"  # 別表第二 48 is 国民年金
    assert not plist.allows(
        row="48", table="beppyo_2", requester_kind="municipality", requester_business="tax",
        provider_kind="municipality", item="local_tax_info",
    )  # fmt: skip
    shumu = {e.row for e in plist.rows if e.table == "shumu_2"}
    beppyo = {e.row for e in plist.rows if e.table == "beppyo_2"}
    assert "173" in shumu and "173" not in beppyo
    assert "56の2" in beppyo and "56の2" not in shumu


def test_rows_that_name_several_bodies_have_one_entry_each(plist: PermissionList) -> None:
    kinds = {e.requester_kind for e in plist.entries("20", "shumu_2")}
    assert kinds == {"prefecture", "municipality"}  # 都道府県知事又は市町村長 (001 提供先9)
    assert all(e.requester_ja == "都道府県知事又は市町村長" for e in plist.entries("20", "shumu_2"))


def test_inferred_entries_say_why_and_unknown_requesters_are_marked(plist: PermissionList) -> None:
    for e in plist.rows:
        if e.inferred:
            assert e.basis
        if e.requester_kind == "unnamed_requester":
            assert e.inferred and e.requester_business == "unnamed_business"
    assert {e.row for e in plist.rows if e.requester_kind == "unnamed_requester"} == {
        "88", "89", "90", "98", "110", "112", "118", "136", "149", "150",
    }  # fmt: skip


def test_vocabularies_are_complete(plist: PermissionList) -> None:
    for e in plist.rows:
        assert e.requester_kind in plist.kinds and e.provider_kind in plist.kinds
        assert e.requester_business in plist.businesses
        assert set(e.items) <= set(plist.items)


def test_without_row_keeps_the_other_table(plist: PermissionList) -> None:
    smaller = plist.without_row("48", "test", table="shumu_2")
    assert smaller.row("48", "shumu_2") is None and smaller.row("48", "beppyo_2") is not None
    assert smaller.kinds == plist.kinds and smaller.version == "test"


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "permission_list.yaml"
    shutil.copy(permission_list_path(), target)
    return target


def test_typo_in_the_list_names_file_line_and_field(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("    requester_kind: mhlw_minister", "    requestor_kind: mhlw_minister", 1), encoding="utf-8"
    )
    with pytest.raises(ProfileError) as err:
        permission_list(path)
    problem = err.value.problems[0]
    assert problem.file == "permission_list.yaml"
    assert problem.field.endswith(".requestor_kind") and "did you mean 'requester_kind'" in problem.rule
    lines = path.read_text(encoding="utf-8").splitlines()
    assert problem.line is not None and "requestor_kind" in lines[problem.line - 1]


def test_undefined_item_and_missing_basis_are_refused(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    text = path.read_text(encoding="utf-8")
    text = text.replace("items: [health_insurance_info]", "items: [health_insurance_infos]", 1)
    text = text.replace("    basis: The counterpart of row 93", "    note: The counterpart of row 93", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as err:
        permission_list(path)
    rules = [p.rule for p in err.value.problems]
    assert any("health_insurance_infos" in r for r in rules)
    assert any("needs a basis" in r for r in rules)
