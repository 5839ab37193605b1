"""Business-system data for the seed 事務: 個人住民税 (tax) and 介護保険 (ltc) records of the synthetic residents.

Incomes are drawn from log-normal distributions around the cited medians; the tax itself is computed by the
rules of 地方税法 (給与所得控除, 公的年金等控除, 所得控除, 非課税限度額, 所得割10%, 調整控除, 均等割, 定額減税), so
a record is internally consistent and a staff member can recompute it. Records are keyed the way each business
system keys them (税務 宛名番号, 介護保険 被保険者番号). This module must never read or store a 個人番号.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from .model import LtcRecord, Resident, TaxRecord
from .profiles import Profile
from .tables import (
    BASIC_DEDUCTION,
    CARE_LEVEL_SHARES,
    CERTIFICATION_RATE_BY_AGE,
    EMPLOYMENT_BY_AGE,
    FLAT_REDUCTION_PER_PERSON,
    FOREST_ENVIRONMENT_TAX,
    INCOME_LEVY_RATE,
    PENSION_MEDIAN,
    PER_CAPITA_LEVY_MUNICIPAL,
    PER_CAPITA_LEVY_PREFECTURAL,
)

__all__ = ["Income", "assess_resident_tax", "build_ltc", "build_tax", "draw_income"]


@dataclass(slots=True)
class Income:
    salary: int
    pension: int
    other: int


def _row(table: tuple[tuple[int, float, float, int, int], ...], age: int) -> tuple[int, float, float, int, int]:
    row = table[0]
    for candidate in table:
        if age >= candidate[0]:
            row = candidate
    return row


def draw_income(rng: random.Random, sex: str, age: int) -> Income:
    """令和5年分 income of one person (the year a 令和6年度 assessment is based on)."""
    salary = pension = other = 0
    if age >= 16:
        _lower, emp_m, emp_f, med_m, med_f = _row(EMPLOYMENT_BY_AGE, age)
        employed = rng.random() < (emp_m if sex == "M" else emp_f)
        if employed:
            median = med_m if sex == "M" else med_f
            sigma = 0.45 if sex == "M" and 25 <= age < 60 else 0.6
            salary = int(min(median * math.exp(rng.gauss(0, sigma)), 60_000_000) // 1000 * 1000)
    if age >= 65:
        pension = int(PENSION_MEDIAN[sex] * math.exp(rng.gauss(0, 0.45)) // 1000 * 1000)
    if age >= 25 and rng.random() < 0.05:  # 事業所得・不動産所得 and the like
        other = int(1_500_000 * math.exp(rng.gauss(0, 0.9)) // 1000 * 1000)
    return Income(salary, pension, other)


def salary_deduction(salary: int) -> int:
    """給与所得控除額 (令和2年分以降)."""
    if salary <= 1_625_000:
        return min(salary, 550_000)
    if salary <= 1_800_000:
        return int(salary * 0.4) - 100_000
    if salary <= 3_600_000:
        return int(salary * 0.3) + 80_000
    if salary <= 6_600_000:
        return int(salary * 0.2) + 440_000
    if salary <= 8_500_000:
        return int(salary * 0.1) + 1_100_000
    return 1_950_000


def pension_deduction(pension: int, age: int) -> int:
    """公的年金等控除額 (公的年金等以外の合計所得金額1,000万円以下; 令和2年分以降)."""
    if age >= 65:
        if pension <= 3_300_000:
            return min(pension, 1_100_000)
    elif pension <= 1_300_000:
        return min(pension, 600_000)
    if pension <= 4_100_000:
        return int(pension * 0.25) + 275_000
    if pension <= 7_700_000:
        return int(pension * 0.15) + 685_000
    if pension <= 10_000_000:
        return int(pension * 0.05) + 1_455_000
    return 1_955_000


def total_income(income: Income, age: int) -> int:
    """合計所得金額."""
    return (
        income.salary
        - salary_deduction(income.salary)
        + income.pension
        - pension_deduction(income.pension, age)
        + income.other
    )


def assess_resident_tax(
    income: Income,
    age: int,
    spouse_deduction: bool,
    spouse_elderly: bool,
    dependants: list[int],
    profile: Profile,
    fiscal_year: int,
) -> tuple[int, int, int, int, int, int, int, str]:
    """(合計所得, 所得控除, 課税総所得, 所得割, 均等割, 定額減税, 税額, status) for one person (1級地 limits)."""
    total = total_income(income, age)
    people = (1 if spouse_deduction else 0) + len(dependants)
    per_capita = (
        PER_CAPITA_LEVY_MUNICIPAL + PER_CAPITA_LEVY_PREFECTURAL + profile.prefectural_forest_levy + FOREST_ENVIRONMENT_TAX
    )
    # 非課税: 未成年者 (18歳未満) with 合計所得 ≤ 135万円; 均等割・所得割の非課税限度額 (1級地, 地方税法施行令).
    if age < 18 and total <= 1_350_000:
        return total, 0, 0, 0, 0, 0, 0, "exempt"
    per_capita_limit = 450_000 if people == 0 else 350_000 * (people + 1) + 100_000 + 210_000
    income_levy_limit = 450_000 if people == 0 else 350_000 * (people + 1) + 100_000 + 320_000
    if total <= per_capita_limit:
        return total, 0, 0, 0, 0, 0, 0, "exempt"

    social_insurance = int(income.salary * 0.15) + int(income.pension * 0.06)
    deductions = BASIC_DEDUCTION + social_insurance
    personal_gap = 50_000  # 人的控除額の差 (基礎控除)
    if spouse_deduction:
        deductions += 380_000 if spouse_elderly else 330_000
        personal_gap += 100_000 if spouse_elderly else 50_000
    for dep_age in dependants:
        if 19 <= dep_age < 23:
            deductions += 450_000  # 特定扶養親族
            personal_gap += 180_000
        elif dep_age >= 70:
            deductions += 380_000  # 老人扶養親族
            personal_gap += 100_000
        else:
            deductions += 330_000
            personal_gap += 50_000
    taxable = max(0, total - deductions) // 1000 * 1000
    if total <= income_levy_limit or taxable == 0:
        return total, deductions, taxable, 0, per_capita, 0, per_capita, "per_capita_only"
    levy = int(taxable * INCOME_LEVY_RATE)
    if taxable <= 2_000_000:
        adjustment = int(min(personal_gap, taxable) * 0.05)
    else:
        adjustment = max(int((personal_gap - (taxable - 2_000_000)) * 0.05), 2_500)
    levy = max(0, levy - adjustment)
    reduction = 0
    if fiscal_year == 2024 and total <= 18_050_000:  # 令和6年度 定額減税 (合計所得1,805万円以下)
        reduction = min(levy, FLAT_REDUCTION_PER_PERSON * (1 + people))
    levy = (levy - reduction) // 100 * 100
    return total, deductions, taxable, levy, per_capita, reduction, levy + per_capita, "taxable"


def build_tax(
    rng: random.Random,
    households: list[list[Resident]],
    ages: Sequence[int],
    profile: Profile,
    fiscal_year: int,
) -> tuple[list[TaxRecord], dict[int, tuple[int, str, int, bool]]]:
    """Tax records for every active resident aged 16 or more, 世帯 by 世帯.

    Also returns, for residents aged 65 or more, (合計所得, status, 段階所得, 世帯課税) for the 介護保険 premium stage.
    """
    eligible = sum(1 for members in households for r in members if ages[r.person_id] >= 16)
    numbers = iter(sorted(rng.sample(range(1, 10**9), eligible)))
    records: list[TaxRecord] = []
    elderly: dict[int, tuple[int, str, int, bool]] = {}
    for members in households:
        earners = [r for r in members if ages[r.person_id] >= 16]
        if not earners:
            continue
        incomes = {r.person_id: draw_income(rng, r.sex, ages[r.person_id]) for r in earners}
        totals = {pid: total_income(inc, ages[pid]) for pid, inc in incomes.items()}
        # The highest earner claims the spouse and the dependants whose 合計所得 is 48万円 or less.
        main = max(earners, key=lambda r: (totals[r.person_id], -r.person_id))
        spouse = spouse_elderly = False
        deps: list[int] = []
        for r in members:
            if r is main or totals.get(r.person_id, 0) > 480_000:
                continue
            is_spouse = (main.relationship == "世帯主" and r.relationship in ("妻", "夫")) or (
                r.relationship == "世帯主" and main.relationship in ("妻", "夫")
            )
            if is_spouse and totals[main.person_id] <= 10_000_000:
                spouse, spouse_elderly = True, ages[r.person_id] >= 70
            elif ages[r.person_id] >= 16:
                deps.append(ages[r.person_id])
        assessed: list[tuple[Resident, Income, tuple[int, int, int, int, int, int, int, str], int]] = []
        for r in earners:
            pid = r.person_id
            claim = r is main
            result = assess_resident_tax(
                incomes[pid], ages[pid], claim and spouse, claim and spouse_elderly, deps if claim else [],
                profile, fiscal_year,
            )
            assessed.append((r, incomes[pid], result, (1 if claim and spouse else 0) + (len(deps) if claim else 0)))
        household_taxed = any(result[7] != "exempt" for _r, _i, result, _d in assessed)
        for r, inc, result, dependants in assessed:
            total, deductions, taxable, levy, per_capita, reduction, amount, status = result
            pid = r.person_id
            if ages[pid] >= 65:
                pension_part = inc.pension - pension_deduction(inc.pension, ages[pid])
                elderly[pid] = (total, status, total - pension_part + inc.pension, household_taxed)
            records.append(
                TaxRecord(
                    business_atena_number=f"{next(numbers):010d}",
                    person_id=pid,
                    fiscal_year=fiscal_year,
                    salary_income=inc.salary,
                    pension_income=inc.pension,
                    other_income=inc.other,
                    total_income=total,
                    deductions=deductions,
                    taxable_income=taxable,
                    income_levy=levy,
                    per_capita_levy=per_capita,
                    flat_reduction=reduction,
                    tax_amount=amount,
                    tax_status=status,
                    dependants=dependants,
                )
            )
    return records, elderly


def _premium_stage(own_status: str, household_taxed: bool, total: int, income_for_stage: int) -> int:
    """保険料段階 (国の標準13段階, 令和6〜8年度) from the 住民税 status of the person and the 世帯.

    ``income_for_stage`` is 課税年金収入額 + 合計所得金額 − 年金所得, the measure stages 1–5 use.
    """
    if own_status == "exempt":
        if not household_taxed:
            if income_for_stage <= 809_000:
                return 1
            return 2 if income_for_stage <= 1_200_000 else 3
        return 4 if income_for_stage <= 809_000 else 5
    for stage, limit in ((6, 1_200_000), (7, 2_100_000), (8, 3_200_000), (9, 4_200_000), (10, 5_200_000),
                         (11, 6_200_000), (12, 7_200_000)):
        if total < limit:
            return stage
    return 13


def build_ltc(
    rng: random.Random,
    households: list[list[Resident]],
    ages: Sequence[int],
    tax_status: dict[int, tuple[int, str, int, bool]],
    reference_ordinal: int,
    birth_ordinal: Sequence[int],
    since_ordinal: Sequence[int],
) -> list[LtcRecord]:
    """第1号被保険者 (65歳以上の住民) with 要介護認定 levels drawn by age, keyed by 被保険者番号."""
    levels = list(CARE_LEVEL_SHARES)
    level_weights = list(CARE_LEVEL_SHARES.values())
    insured = sorted(r.person_id for members in households for r in members if ages[r.person_id] >= 65)
    numbers = sorted(rng.sample(range(1, 10**7), len(insured)))
    ref = date.fromordinal(reference_ordinal)
    records: list[LtcRecord] = []
    for pid, number in zip(insured, numbers, strict=True):
        age = ages[pid]
        rate = 0.0
        for lower, value in CERTIFICATION_RATE_BY_AGE:
            if age >= lower:
                rate = value
        birth = date.fromordinal(birth_ordinal[pid])
        # 資格取得日: the day before the 65th birthday (年齢到達日), or the 転入 date if later.
        try:
            turned = date(birth.year + 65, birth.month, birth.day) - timedelta(days=1)
        except ValueError:  # born on 29 February
            turned = date(birth.year + 65, 2, 28)
        turned = max(turned, date.fromordinal(since_ordinal[pid]))
        if rng.random() < rate:
            level = rng.choices(levels, level_weights)[0]
            start = ref - timedelta(days=rng.randint(0, 700))
            months = 12 if level.startswith("要支援") else 24
            end = date(start.year + (start.month - 1 + months) // 12, (start.month - 1 + months) % 12 + 1, 1) - timedelta(
                days=1
            )
            certified_from: str | None = start.isoformat()
            certified_to: str | None = end.isoformat()
        else:
            level, certified_from, certified_to = "非該当", None, None
        total, status, stage_income, household_taxed = tax_status[pid]
        records.append(
            LtcRecord(
                insured_number=f"{number:010d}",
                person_id=pid,
                insured_category=1,
                acquired_date=turned.isoformat(),
                care_level=level,
                certified_from=certified_from,
                certified_to=certified_to,
                premium_stage=_premium_stage(status, household_taxed, total, stage_income),
            )
        )
    return records
