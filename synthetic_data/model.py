"""Records of a synthetic population: residents, households, tax and 介護保険 records, life events.

Plain slotted dataclasses, because a city of 1.9 million people must fit in memory and be built fast; the
simulator's pydantic models validate at its own boundary. Dates are ISO strings (YYYY-MM-DD). This module must
never generate anything; it only describes the shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "HistoryEntry", "Household", "LtcRecord", "Population", "Resident", "TaxRecord"]


@dataclass(slots=True)
class Resident:
    """One 住民票 (active) or 除票 (status ``removed``: moved out or deceased)."""

    person_id: int
    household_id: int
    resident_code: str  # 住民票コード
    my_number: str  # 個人番号
    family_name: str
    given_name: str
    family_name_kana: str
    given_name_kana: str
    sex: str  # "M" / "F"
    birth_date: str
    relationship: str  # 続柄 as written on the 住民票 (世帯主, 妻, 子, 孫, 同居人 …)
    nationality: str | None = None  # None for Japanese nationals
    residence_status: str | None = None  # 在留資格
    residence_card_number: str | None = None  # 在留カード / 特別永住者証明書 番号
    alias_name: str | None = None  # 通称
    alias_kana: str | None = None
    protective_measure: str | None = None  # 支援措置の事由 (DV …); set means 自動応答不可フラグ
    has_my_number_card: bool = False
    status: str = "active"
    removal_reason: str | None = None  # "moved_out" / "deceased"
    removal_date: str | None = None
    resident_since: str = ""  # 住民となった年月日
    resident_since_reason: str = ""  # "birth" / "move_in"

    @property
    def is_head(self) -> bool:
        return self.relationship == "世帯主"

    @property
    def name(self) -> str:
        return f"{self.family_name} {self.given_name}".strip()

    @property
    def name_kana(self) -> str:
        return f"{self.family_name_kana} {self.given_name_kana}".strip()


@dataclass(slots=True)
class Household:
    """One 世帯 and its address (住所 = 町域 + 番地, with 方書 for a room in a building)."""

    household_id: int
    household_type: str  # single, couple, couple_children, single_parent, extended, non_relative
    head_person_id: int
    members: list[int]
    postal_code: str
    jis_code: str
    prefecture: str
    city: str
    town: str
    town_kana: str
    banchi: str
    katagaki: str
    status: str = "active"

    @property
    def address(self) -> str:
        return f"{self.prefecture}{self.city}{self.town}{self.banchi}"


@dataclass(slots=True)
class TaxRecord:
    """個人住民税 for one person, keyed by the tax system's own 宛名番号 (``business_atena_number``)."""

    business_atena_number: str
    person_id: int
    fiscal_year: int
    salary_income: int  # 給与収入
    pension_income: int  # 公的年金等収入
    other_income: int
    total_income: int  # 合計所得金額
    deductions: int  # 所得控除の合計
    taxable_income: int  # 課税総所得金額 (1,000円未満切捨て)
    income_levy: int  # 所得割 (after 調整控除 and 定額減税)
    per_capita_levy: int  # 均等割 (+ 森林環境税 and any prefectural levy)
    flat_reduction: int  # 定額減税 applied
    tax_amount: int
    tax_status: str  # "taxable", "per_capita_only", "exempt"
    dependants: int  # 控除対象配偶者 + 扶養親族


@dataclass(slots=True)
class LtcRecord:
    """介護保険 第1号被保険者, keyed by 被保険者番号 (``insured_number``)."""

    insured_number: str
    person_id: int
    insured_category: int  # 1 = 第1号被保険者
    acquired_date: str  # 資格取得日
    care_level: str  # 非該当 (none) or 要支援1 … 要介護5
    certified_from: str | None
    certified_to: str | None
    premium_stage: int  # 保険料段階 (国の標準13段階, 令和6〜8年度)


@dataclass(slots=True)
class HistoryEntry:
    """A past 異動 on a 除票 (or the registration of a current resident), oldest first per person."""

    person_id: int
    date: str
    change_type: str  # birth, move_in, move_within, move_out, death, household_change
    detail: dict[str, Any]


@dataclass(slots=True)
class Event:
    """One 届出 for the simulator to replay, in 届出日 order."""

    event_id: int
    event_date: str  # 届出日
    effective_date: str  # 異動日 (birth date, date of death, date of the move)
    event_type: str  # move_in, move_within, move_out, birth, death, household_change
    household_id: int
    person_ids: list[int]
    data: dict[str, Any]


@dataclass(slots=True)
class Population:
    """Everything one run produces, plus ``meta`` (profile, seed, size, reference date, sources)."""

    residents: list[Resident]
    households: list[Household]
    tax: list[TaxRecord]
    ltc: list[LtcRecord]
    history: list[HistoryEntry]
    events: list[Event]
    meta: dict[str, Any] = field(default_factory=dict)
