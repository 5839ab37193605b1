"""既存住基's 提供 desk (桑名): only the permitted operator starts a 提供, and the record is attributable."""

from __future__ import annotations

from simulator.components.registry_linkage import RegistryLinkage
from simulator.components.resident_tax import ResidentTaxSystem
from tests.gyomu.conftest import Bench


def test_only_a_permitted_operator_starts_a_provision(tsukuba: Bench) -> None:
    desk = tsukuba.world.component("kuwana.juki_linkage")
    assert isinstance(desk, RegistryLinkage)
    resident = next(r for r in tsukuba.population.residents["kuwana"] if r["status"] == "active")
    code = str(resident["resident_code"])
    b = tsukuba.session(desk.staff, "juki-renkei-b")
    refused, _ = tsukuba.step(lambda now: desk.provide(b, code, now))
    assert refused.refusal is not None and (refused.refusal.control_id, str(refused.refusal.code)) == (
        "GYOMU-011", "Auth.RoleMissing")
    assert desk.desk.records(code) == []
    a = tsukuba.session(desk.staff, "juki-renkei-a")
    ok, hops = tsukuba.step(lambda now: desk.provide(a, code, now))
    assert ok.refusal is None and all(h.refusal is None for h in hops)
    [record] = desk.desk.records(code)
    assert (record["staff"], record["terminal"], record["operation"]) == ("juki-renkei-a", "juki-renkei-a-pc",
                                                                         "provide.start")


def test_only_municipalities_with_data_get_systems(tsukuba: Bench) -> None:
    parties = set(tsukuba.world.components)
    assert {"kuwana.juki_linkage", "tsukuba.resident_tax"} <= parties
    assert "kuwana.resident_tax" not in parties and "tsukuba.juki_linkage" not in parties
    tax = tsukuba.world.component("tsukuba.resident_tax")
    assert isinstance(tax, ResidentTaxSystem)
    assert len(tax.desk.provision_rows) == 72 and tax.desk.query_rows == frozenset({"48"})
