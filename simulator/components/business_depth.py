"""Installs the business systems in depth (GYOMU): つくば's 住民税システム, 倉敷's 介護保険システム, 既存住基's 提供.

What is installed comes from each municipality's entry in scenarios/data/gyomu.yaml and its profile (the rows it
provides and queries); a municipality with no entry gets nothing. A reopened world re-attaches to its existing
stores and staff (never re-seeds). This module wires parts together; it must never decide a control itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.components.gyomu_data import Staff, business_data
from simulator.components.ltc_insurance import LtcInsuranceSystem
from simulator.components.registry_linkage import RegistryLinkage
from simulator.components.resident_tax import ResidentTaxSystem
from simulator.components.staff import StaffDirectory
from simulator.components.tax_inquiry import TaxInquiryDesk
from simulator.profiles import load_profile

if TYPE_CHECKING:
    import sqlite3

    from simulator.world import World

__all__ = ["install"]


def install(world: World) -> None:
    _install_systems(world)
    # Every municipality assesses 住民税 and so answers other cities' 扶養照会 from its 税務 records (GYOMU-003);
    # the cities whose 住民税システム sends them are the askers.
    askers = frozenset(p for p, c in world.components.items() if isinstance(c, ResidentTaxSystem))
    if not askers:
        return
    for m in world.spec.municipalities:
        others = askers - {f"{m.key}.resident_tax"}
        if not others:
            continue
        party = f"{m.key}.tax_inquiry"
        tax = world.business(m.key, "tax")
        world.add(
            TaxInquiryDesk,
            party,
            m.key,
            tax_business=tax.business,
            tax_table=tax.table,
            askers=others,
        )
        for asker in others:
            world.directory.connect(asker, party, "lgwan")


def _install_systems(world: World) -> None:
    for m in world.spec.municipalities:
        data = business_data(m.key)
        if data.resident_tax is None and data.ltc is None and data.registry_linkage is None:
            continue
        profile = load_profile(m.key)
        db = world.store(m.key)
        nws, own = profile.nws, profile.business
        if data.registry_linkage is not None:
            party = f"{m.key}.juki_linkage"
            world.add(
                RegistryLinkage,
                party,
                m.key,
                registry=world.registry(m.key),
                staff=_staffed(world, db, party, data.registry_linkage.staff),
                query_rows=_rows(own, "resident_register", nws.query.rows),
            )
        if data.resident_tax is not None:
            party = f"{m.key}.resident_tax"
            world.add(
                ResidentTaxSystem,
                party,
                m.key,
                data=data.resident_tax,
                tax=world.business(m.key, "tax"),
                staff=_staffed(world, db, party, data.resident_tax.staff),
                provision_rows=_rows(own, "tax", nws.provide.rows),
                query_rows=_rows(own, "tax", nws.query.rows),
            )
        if data.ltc is not None:
            party = f"{m.key}.ltc_insurance"
            world.add(
                LtcInsuranceSystem,
                party,
                m.key,
                data=data.ltc,
                ltc=world.business(m.key, "ltc"),
                tax=world.business(m.key, "tax"),
                staff=_staffed(world, db, party, data.ltc.staff),
                provision_rows=_rows(own, "ltc", nws.provide.rows),
                query_rows=_rows(own, "ltc", nws.query.rows),
            )


def _rows(own: str, business: str, listed: tuple[str, ...]) -> frozenset[str]:
    """The profile's NWS rows go to the one system that runs the profile's own 事務 (``own``); the others get none."""
    return frozenset(listed) if own == business else frozenset()


def _staffed(world: World, db: sqlite3.Connection, party: str, people: tuple[Staff, ...]) -> StaffDirectory:
    """The system's staff directory, with the file's staff accounts on a fresh build."""
    staff = StaffDirectory(db, party)
    for s in people:
        world.add_staff(staff, s.user, s.name, set(s.roles))
    return staff
