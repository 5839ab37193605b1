"""個人住民税 and 介護保険 records: keyed by their own business numbers, internally consistent, rules applied."""

from __future__ import annotations

import sqlite3
from datetime import date

import synthetic_data as sd
from synthetic_data.business import Income, assess_resident_tax, pension_deduction, salary_deduction


def test_a_salary_earner_is_assessed_by_the_rules() -> None:
    # 給与収入 500万円, single, 40歳, 桑名市 (みえ森と緑の県民税 1,000円):
    # 給与所得控除 144万 → 合計所得 356万; 控除 43万 + 社会保険料 75万 → 課税総所得 238万;
    # 所得割 238,000 − 調整控除 2,500 − 定額減税 10,000 = 225,500; 均等割 3,000 + 1,000 + 1,000 + 1,000.
    kuwana = sd.get_profile("kuwana")
    result = assess_resident_tax(Income(5_000_000, 0, 0), 40, False, False, [], kuwana, 2024)
    assert result == (3_560_000, 1_180_000, 2_380_000, 225_500, 6_000, 10_000, 231_500, "taxable")


def test_low_income_is_exempt_and_deductions_follow_the_tables() -> None:
    sapporo = sd.get_profile("sapporo")
    assert assess_resident_tax(Income(1_000_000, 0, 0), 30, False, False, [], sapporo, 2024)[-1] == "exempt"
    assert salary_deduction(1_000_000) == 550_000
    assert salary_deduction(10_000_000) == 1_950_000
    assert pension_deduction(2_000_000, 70) == 1_100_000


def test_every_adult_has_one_tax_record_and_amounts_add_up(sample_db: sqlite3.Connection) -> None:
    missing = sample_db.execute(
        "SELECT count(*) FROM residents r LEFT JOIN tax t USING (person_id) WHERE r.status = 'active' "
        "AND r.birth_date <= '2007-01-01' AND t.person_id IS NULL"
    ).fetchone()[0]
    assert missing == 0
    for atena, amount, levy, per_capita, status in sample_db.execute(
        "SELECT business_atena_number, tax_amount, income_levy, per_capita_levy, tax_status FROM tax"
    ):
        assert len(atena) == 10 and atena.isdigit()
        assert amount == levy + per_capita
        assert (status == "exempt") == (amount == 0)
    shares = dict(sample_db.execute("SELECT tax_status, count(*) FROM tax GROUP BY tax_status").fetchall())
    assert shares["taxable"] > shares["exempt"] > shares["per_capita_only"] > 0


def test_tax_records_hold_no_my_number(sample_db: sqlite3.Connection) -> None:
    columns = [row[1] for row in sample_db.execute("PRAGMA table_info(tax)")]
    assert "my_number" not in columns and "resident_code" not in columns
    columns = [row[1] for row in sample_db.execute("PRAGMA table_info(ltc)")]
    assert "my_number" not in columns and "resident_code" not in columns


def test_every_resident_aged_65_is_a_first_category_insured(sample_db: sqlite3.Connection) -> None:
    elderly = {
        pid for pid, birth in sample_db.execute("SELECT person_id, birth_date FROM residents WHERE status = 'active'")
        if (date(2024, 1, 1) - date.fromisoformat(birth)).days >= 65 * 365.25
    }
    insured = dict(sample_db.execute("SELECT person_id, insured_number FROM ltc").fetchall())
    assert abs(len(insured) - len(elderly)) <= len(elderly) * 0.002  # leap-day rounding at the 65th birthday
    assert len(set(insured.values())) == len(insured)
    assert all(len(n) == 10 and n.isdigit() for n in insured.values())
    levels = dict(sample_db.execute("SELECT care_level, count(*) FROM ltc GROUP BY care_level").fetchall())
    assert set(levels) == {"非該当", "要支援1", "要支援2", "要介護1", "要介護2", "要介護3", "要介護4", "要介護5"}
    stages = {s for (s,) in sample_db.execute("SELECT DISTINCT premium_stage FROM ltc")}
    assert stages <= set(range(1, 14)) and {1, 5, 9} <= stages
