"""StaffDirectory: accounts per person, policy checks at login, rights register, central authentication."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta, timezone

import pytest

from simulator.components.staff import StaffDirectory, StaffPolicy, biometric_sample, fiscal_year_end
from simulator.errors import Refusal

JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=JST)
PW = "correct-horse"


def directory(policy: StaffPolicy, component: str = "town.registry") -> StaffDirectory:
    conn = sqlite3.connect(":memory:")
    policy.save(conn, component.split(".")[0])
    return StaffDirectory(conn, component)


def refused(fn: object, control: str) -> Refusal:
    with pytest.raises(Refusal) as info:
        fn()  # type: ignore[operator]
    assert info.value.control_id == control, info.value.reason_en
    return info.value


def test_one_account_per_person() -> None:
    staff = directory(StaffPolicy())
    staff.add("a", "窓口 花子", {"registry_clerk"}, PW, employee_id="E1", now=NOW)
    refused(lambda: staff.add("a2", "窓口 花子", set(), PW, employee_id="E1", now=NOW), "AUTH-001")
    refused(lambda: staff.add("shared", " ", set(), PW, now=NOW), "AUTH-001")
    refused(lambda: staff.add("pair", "甲、乙", set(), PW, now=NOW), "AUTH-001")


def test_password_and_biometric() -> None:
    staff = directory(StaffPolicy(biometric="face"))
    staff.add("a", "甲", {"r"}, PW, now=NOW)
    staff.add("b", "乙", {"r"}, PW, now=NOW)
    refused(lambda: staff.authenticate("a", "wrong", biometric=biometric_sample("face", "甲")), "AUTH-002")
    refused(lambda: staff.authenticate("a", PW, biometric=biometric_sample("face", "乙")), "AUTH-003")
    refused(lambda: staff.authenticate("a", PW), "AUTH-003")
    assert staff.authenticate("a", PW, biometric=biometric_sample("face", "甲")).user_id == "a"
    template = staff.conn.execute("SELECT template FROM staff_biometrics WHERE user_id = 'a'").fetchone()[0]
    assert b"face:" not in template  # only a keyed digest is kept


def test_password_age_forces_change() -> None:
    staff = directory(StaffPolicy(password_max_age_months=2))
    staff.add("a", "甲", {"r"}, PW, now=NOW)
    staff.authenticate("a", PW, now=NOW + timedelta(days=30))
    later = datetime(2027, 1, 25, 9, tzinfo=JST)
    refused(lambda: staff.authenticate("a", PW, now=later), "AUTH-004")
    staff.change_password("a", PW, "new-password-1", later)
    staff.authenticate("a", "new-password-1", now=later)
    with pytest.raises(ValueError):
        staff.authenticate("a", "new-password-1")


def test_rights_register_rollover_temporary_and_applications() -> None:
    staff = directory(StaffPolicy(rights_register=True, fy_rollover_revoke=True))
    staff.add("head", "所属長", {"department_head"}, PW, now=NOW)
    staff.add("cio", "情報主管課長", {"info_director"}, PW, now=NOW)
    staff.add("a", "甲", {"registry_clerk"}, PW, now=NOW)
    staff.add("b", "乙", {"registry_clerk"}, PW, now=NOW)
    head, cio = staff.authenticate("head", PW, now=NOW), staff.authenticate("cio", PW, now=NOW)
    refused(lambda: staff.apply(head, "head", "registry_clerk", "自分", NOW), "AUTH-010")
    refused(lambda: staff.approve(cio, "no-such-application", NOW), "AUTH-010")
    march = datetime(2027, 3, 25, 9, tzinfo=JST)
    app = staff.apply(head, "a", "registry_clerk", "新年度", march, valid_from=date(2027, 4, 1))
    granted = staff.approve(cio, app, march)
    assert granted["valid_to"] == "2028-03-31"
    april = datetime(2027, 4, 1, 9, tzinfo=JST)
    staff.authenticate("a", PW, now=april)
    refused(lambda: staff.authenticate("b", PW, now=april), "AUTH-008")
    staff.add("t", "臨時", set(), PW, now=NOW)
    refused(lambda: staff.authenticate("t", PW, now=NOW), "AUTH-010")  # no application yet
    temp = staff.apply(head, "t", "registry_clerk", "臨時", NOW, kind="temporary", valid_to=date(2026, 12, 24))
    staff.approve(cio, temp, NOW)
    staff.authenticate("t", PW, now=NOW + timedelta(days=10))
    refused(lambda: staff.authenticate("t", PW, now=NOW + timedelta(days=31)), "AUTH-009")
    assert fiscal_year_end(date(2027, 4, 1)) == date(2028, 3, 31)


def test_reconciliation_disables_orphans() -> None:
    staff = directory(StaffPolicy(rights_register=True))
    staff.add("cio", "情報主管課長", {"info_director"}, PW, now=NOW)
    cio = staff.authenticate("cio", PW, now=NOW)
    assert staff.reconcile(cio, NOW) == []
    staff.conn.execute("UPDATE staff SET roles = '[\"info_director\", \"registry_clerk\"]' WHERE user_id = 'cio'")
    assert staff.reconcile(cio, NOW) == [{"user_id": "cio", "unregistered_roles": ["registry_clerk"]}]
    refused(lambda: staff.authenticate("cio", PW, now=NOW), "AUTH-007")


def test_central_authentication() -> None:
    conn = sqlite3.connect(":memory:")
    StaffPolicy(central_authority="city.atena").save(conn, "city")
    registry, atena = StaffDirectory(conn, "city.registry"), StaffDirectory(conn, "city.atena")
    registry.add("a", "甲", {"registry_clerk"}, PW, now=NOW)
    assert conn.execute("SELECT password_hash FROM staff WHERE user_id = 'a'").fetchone()[0] == b""
    registry.authenticate("a", PW)
    refused(lambda: registry.change_password("a", PW, "local-secret", NOW), "AUTH-012")
    atena.disable("a", NOW)
    refused(lambda: registry.authenticate("a", PW), "AUTH-012")


def test_template_store_limited() -> None:
    staff = directory(StaffPolicy(biometric="face"))
    staff.add("admin", "管理", {"biometric_admin"}, PW, now=NOW)
    staff.add("a", "甲", {"registry_clerk"}, PW, now=NOW)
    admin = staff.authenticate("admin", PW, biometric=biometric_sample("face", "管理"))
    user = staff.authenticate("a", PW, biometric=biometric_sample("face", "甲"))
    assert [t["user_id"] for t in staff.read_templates(admin)] == ["a", "admin"]
    refused(lambda: staff.read_templates(user), "AUTH-013")
