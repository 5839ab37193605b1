"""業務システムの諸元: the per-profile facts of the business systems (scenarios/data/gyomu.yaml), checked on load.

つくば市's 住民税システム (001) and 倉敷市's 介護保険システム (004): channels, fixed record schemas, the restricted
environment, legal bases, linked datasets, window forms and the 別添1 item list. This module only reads and checks
data; it must never decide a control (the components do) and never invent a value the file does not hold.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.model.area_data import DATA_DIR, Cited, load_area_file

__all__ = [
    "DATA_FILE",
    "BusinessData",
    "LtcData",
    "RegistryLinkageData",
    "ResidentTaxData",
    "business_data",
    "load_business_data",
]

DATA_FILE = DATA_DIR / "gyomu.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Channel(_Strict):
    name_ja: str
    source: Cited
    restricted: bool = False  # only from the restricted environment (GYOMU-010)


class RecordKind(_Strict):
    name_ja: str
    channels: tuple[str, ...] = Field(min_length=1)
    payer_report: bool = False  # a 支払報告書 from an employer or 年金保険者 (GYOMU-004)
    fields: tuple[str, ...] = Field(min_length=1)
    source: Cited
    inferred: bool = False
    basis: str | None = None


class Environment(_Strict):
    terminals: tuple[str, ...] = Field(min_length=1)
    segment: str
    source: Cited
    inferred: bool = False
    basis: str | None = None


class LegalBasis(_Strict):
    id: str
    name_ja: str
    # requires / presupposes: disclosure answered (GYOMU-009); general: a general clause, refused.
    discloses: Literal["requires", "presupposes", "general"]
    inferred: bool = False
    basis: str | None = None


class Staff(_Strict):
    user: str
    name: str
    roles: tuple[str, ...]


class ResidentTaxData(_Strict):
    name_ja: str
    source: Cited
    channels: dict[str, Channel]
    record_kinds: dict[str, RecordKind]
    restricted_environment: Environment
    disclosure_bases: tuple[LegalBasis, ...]
    disclosure_source: Cited
    staff: tuple[Staff, ...]
    staff_source: Cited

    @model_validator(mode="after")
    def _channels_known(self) -> ResidentTaxData:
        for key, kind in self.record_kinds.items():
            unknown = set(kind.channels) - set(self.channels)
            if unknown:
                raise ValueError(f"record_kinds.{key}.channels: unknown channel(s) {sorted(unknown)}")
        return self


class Dataset(_Strict):
    name_ja: str
    source: Cited


class WindowForm(_Strict):
    name_ja: str
    section: str
    fields: tuple[str, ...] = Field(min_length=1)
    source: Cited
    inferred: bool = False
    basis: str | None = None


class Section(_Strict):
    name_ja: str
    source: Cited
    items: tuple[str, ...] = Field(min_length=1)


class Kokuhoren(_Strict):
    name_ja: str
    section: str
    source: Cited


class LtcData(_Strict):
    name_ja: str
    source: Cited
    linked_datasets: dict[str, Dataset]
    window_forms: dict[str, WindowForm]
    kokuhoren: Kokuhoren
    staff: tuple[Staff, ...]
    staff_source: Cited
    beppyo_1: dict[str, Section]

    @model_validator(mode="after")
    def _forms_within_beppyo(self) -> LtcData:
        for key, form in self.window_forms.items():
            section = self.beppyo_1.get(form.section)
            if section is None:
                raise ValueError(f"window_forms.{key}.section: no 別添1 section {form.section!r}")
            outside = set(form.fields) - set(section.items)
            if outside:
                raise ValueError(f"window_forms.{key}.fields: not 別添1 <{section.name_ja}> items: {sorted(outside)}")
        if self.kokuhoren.section not in self.beppyo_1:
            raise ValueError(f"kokuhoren.section: no 別添1 section {self.kokuhoren.section!r}")
        return self

    def items(self, section: str) -> frozenset[str]:
        return frozenset(self.beppyo_1[section].items) if section in self.beppyo_1 else frozenset()


class RegistryLinkageData(_Strict):
    """既存住基's 情報照会・提供 function: who may start it, and that each action is recorded (GYOMU-011)."""

    name_ja: str
    sources: tuple[Cited, ...] = Field(min_length=1)
    staff: tuple[Staff, ...] = Field(min_length=1)


class BusinessData(_Strict):
    resident_tax: ResidentTaxData | None = None
    ltc: LtcData | None = None
    registry_linkage: RegistryLinkageData | None = None


def load_business_data(path: Path = DATA_FILE) -> dict[str, BusinessData]:
    """Every profile's business-system data; a bad file raises InputError naming file:line, the field and the rule."""
    return load_area_file(path, BusinessData)


@cache
def business_data(profile: str) -> BusinessData:
    """The data of one profile (empty when its seed describes no business system in depth)."""
    return load_business_data().get(profile, BusinessData())
