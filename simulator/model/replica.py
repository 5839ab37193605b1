"""副本 (replica) record formats: the schema each 情報提供データベース item must match on import (CHUKAN-004).

One model per item kind. A record that does not validate is refused whole, with the field and the rule.
This module must never store or send anything; it only says what a well-formed record is.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.errors import InputError

__all__ = ["REPLICA_MODELS", "LocalTaxInfo", "LtcInfo", "ResidentInfo", "validate_replica"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResidentInfo(_Record):
    """住民票関係情報: what a 住基 provider answers with. Never a 個人番号 or 住民票コード."""

    name: str = Field(min_length=1, max_length=64)
    name_kana: str = Field(min_length=1, max_length=128)
    birth_date: date
    sex: Literal["1", "2"]
    address: str = Field(min_length=1, max_length=256)
    postal_code: str = Field(pattern=r"^\d{3}-?\d{4}$")
    household_id: str = Field(min_length=1, max_length=32)
    relationship: str = Field(min_length=1, max_length=16)
    status: Literal["active", "removed"]


class LocalTaxInfo(_Record):
    """地方税関係情報: one fiscal year's assessment."""

    fiscal_year: int = Field(ge=2000, le=2100)
    taxable_income: int = Field(ge=0)
    income_levy: int = Field(ge=0)
    per_capita_levy: int = Field(ge=0)


class LtcInfo(_Record):
    """介護保険給付等関係情報."""

    insured_number: str = Field(pattern=r"^\d{10}$")
    insured_category: Literal["1", "2"]
    care_level: Literal["none", "support1", "support2", "care1", "care2", "care3", "care4", "care5"]
    premium_stage: int = Field(ge=1, le=20)


REPLICA_MODELS: dict[str, type[_Record]] = {
    "resident_info": ResidentInfo,
    "local_tax_info": LocalTaxInfo,
    "ltc_info": LtcInfo,
}


def validate_replica(item: str, record: Any) -> dict[str, Any]:
    """Return the normalised record, or raise InputError naming the first bad field and the rule."""
    model = REPLICA_MODELS.get(item)
    if model is None:
        raise InputError("item", f"unknown 副本 item {item!r}; expected one of {sorted(REPLICA_MODELS)}")
    try:
        return model.model_validate(record).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise InputError(f"record.{where}", first["msg"]) from None
