"""Turning a synthetic population into what each component of a world loads.

The generator (``synthetic_data``) speaks in residents, households and business records; components
speak in their own keys (住民票 rows for 既存住基, 宛名番号-keyed records for 税務 and 介護保険). This module
maps one to the other and picks the people the demo flows need (someone who moved between the two
municipalities, and someone under 支援措置). It must never invent identifiers: the generator made them.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synthetic_data import generate
from synthetic_data.model import Household, Population, Resident

__all__ = ["DemoPopulation", "demo_population", "registry_row"]

_CARE_LEVEL = {
    "非該当": "none",
    "要支援1": "support1",
    "要支援2": "support2",
    "要介護1": "care1",
    "要介護2": "care2",
    "要介護3": "care3",
    "要介護4": "care4",
    "要介護5": "care5",
}


@dataclass
class DemoPopulation:
    residents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tax: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ltc: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    movers: list[dict[str, Any]] = field(default_factory=list)
    protected_movers: list[dict[str, Any]] = field(default_factory=list)

    def save(self, path: Path) -> None:
        """Keep the world's population beside its stores, so a reopened world knows who is who."""
        path.write_text(json.dumps(asdict(self), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> DemoPopulation:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def registry_row(
    person: Resident, household: Household, *, status: str | None = None, protective: bool | None = None
) -> dict[str, Any]:
    """A 住民票 row as 既存住基 loads it (住基 sex codes: 1 male, 2 female)."""
    return {
        "resident_code": person.resident_code,
        "my_number": person.my_number,
        "name": person.name,
        "name_kana": f"{person.family_name_kana} {person.given_name_kana}".strip(),
        "birth_date": person.birth_date,
        "sex": "1" if person.sex == "M" else "2",
        "address": household.address + (f" {household.katagaki}" if household.katagaki else ""),
        "postal_code": household.postal_code,
        "household_id": f"H{household.household_id:08d}",
        "relationship": person.relationship,
        "is_head": person.is_head,
        "status": status or person.status,
        "protective_measure": bool(person.protective_measure) if protective is None else protective,
    }


def _age(birth_date: str, on: str) -> int:
    by, bm, bd = (int(x) for x in birth_date.split("-"))
    y, m, d = (int(x) for x in on.split("-"))
    return y - by - ((m, d) < (bm, bd))


def demo_population(size: int, seed: int, municipalities: list[str], movers: int = 6) -> DemoPopulation:
    """``size`` residents split over the municipalities, plus ``movers`` who moved from the first to the second."""
    if size < 20 * len(municipalities):
        raise ValueError(f"size: at least {20 * len(municipalities)} residents are needed for the demo flows")
    out = DemoPopulation()
    generated: dict[str, Population] = {
        m: generate(m, size // len(municipalities), seed + i) for i, m in enumerate(municipalities)
    }
    for m, pop in generated.items():
        households = {h.household_id: h for h in pop.households}
        people = {p.person_id: p for p in pop.residents}
        out.residents[m] = [registry_row(p, households[p.household_id]) for p in pop.residents]
        out.tax[m] = [
            {
                "business_atena_number": t.business_atena_number,
                "my_number": people[t.person_id].my_number,
                "record": {
                    "fiscal_year": t.fiscal_year,
                    "taxable_income": t.taxable_income,
                    "income_levy": t.income_levy,
                    "per_capita_levy": t.per_capita_levy,
                },
            }
            for t in pop.tax
            if people[t.person_id].status == "active"
        ]
        out.ltc[m] = [
            {
                "business_atena_number": r.insured_number,
                "my_number": people[r.person_id].my_number,
                "record": {
                    "insured_number": r.insured_number,
                    "insured_category": str(r.insured_category),
                    "care_level": _CARE_LEVEL.get(r.care_level, "none"),
                    "premium_stage": r.premium_stage,
                },
            }
            for r in pop.ltc
            if people[r.person_id].status == "active"
        ]
    # Movers: elderly taxpayers of the first municipality who moved to the second this year. The first keeps
    # their 除票 and last year's tax record; the second registers them and insures them under 介護保険.
    source, target = municipalities[0], municipalities[1]
    pop = generated[source]
    reference = str(pop.meta.get("reference_date", "2026-01-01"))
    taxed = {t.person_id for t in pop.tax}
    households = {h.household_id: h for h in pop.households}
    target_households = generated[target].households
    rng = random.Random(seed)
    candidates = [
        p
        for p in pop.residents
        if p.status == "active"
        and p.person_id in taxed
        and _age(p.birth_date, reference) >= 66
        and not p.protective_measure
    ]
    chosen = rng.sample(candidates, min(movers, len(candidates)))
    codes = {p.resident_code for p in chosen}
    for i, person in enumerate(chosen):
        protected = i == len(chosen) - 1  # the last mover is under 支援措置 in both municipalities
        for row in out.residents[source]:
            if row["resident_code"] in codes and row["resident_code"] == person.resident_code:
                row["status"] = "removed"
                row["protective_measure"] = protected
        new_home = target_households[rng.randrange(len(target_households))]
        out.residents[target].append(
            registry_row(person, new_home, status="active", protective=protected)
            | {"relationship": "同居人", "is_head": False}
        )
        insured = f"{9_000_000_000 + person.person_id:010d}"[-10:]
        out.ltc[target].append(
            {
                "business_atena_number": insured,
                "my_number": person.my_number,
                "record": {
                    "insured_number": insured,
                    "insured_category": "1",
                    "care_level": "none",
                    "premium_stage": 5,
                },
            }
        )
        # The new municipality's tax system registers them too (they owe its 住民税 from next year).
        tax_number = f"TX{person.person_id:010d}"
        out.tax[target].append(
            {
                "business_atena_number": tax_number,
                "my_number": person.my_number,
                "record": {
                    "fiscal_year": int(reference[:4]) + 1,
                    "taxable_income": 0,
                    "income_levy": 0,
                    "per_capita_levy": 0,
                },
            }
        )
        entry = {
            "resident_code": person.resident_code,
            "my_number": person.my_number,
            "name": person.name,
            "ltc_atena_number": insured,
            "tax_atena_number": tax_number,
            "old_address": households[person.household_id].address,
        }
        (out.protected_movers if protected else out.movers).append(entry)
    return out
