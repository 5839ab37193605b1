"""介護保険システム (倉敷): the 別添1 file, window forms, configured links, the 国保連 interface, the 照会 gate."""

from __future__ import annotations

import json
from typing import Any

import pytest

from simulator.components.ltc_insurance import LtcInsuranceSystem, premium_stage
from simulator.model.envelope import MessageType
from tests.gyomu.conftest import Bench, refused_at


def _system(bench: Bench) -> LtcInsuranceSystem:
    c = bench.world.component("kurashiki.ltc_insurance")
    assert isinstance(c, LtcInsuranceSystem)
    return c


def _insured(bench: Bench, index: int = 0) -> str:
    return str(bench.population.movers[index]["ltc_atena_number"])


_FORM = {"被保険者番号": "", "資格取得日": "2026-04-01", "資格届出日": "2026-04-03", "被保険者区分": "1"}


def _decisions(result: Any, control: str) -> list[str]:
    return [str(d.outcome) for d in result.decisions if d.control_id == control]


def test_a_conformant_form_is_written_to_its_beppyo_section(kurashiki: Bench) -> None:
    system = _system(kurashiki)
    number = _insured(kurashiki)
    session = kurashiki.session(system.staff, "kaigo-sys-a")
    result, _ = kurashiki.step(lambda now: system.submit_form(
        session, "qualification_acquisition", number, _FORM | {"被保険者番号": number}, now))
    assert result.refusal is None and _decisions(result, "GYOMU-002") == ["allow"]
    assert system.file(number)["qualification"]["資格取得日"] == "2026-04-01"


@pytest.mark.parametrize(("fields", "field", "code"), [
    (_FORM | {"備考": "自由記載"}, "備考", "Input.FieldNotAllowed"),
    ({k: v for k, v in _FORM.items() if k != "資格取得日"}, "資格取得日", "Input.FieldMissing"),
])
def test_a_form_off_its_field_set_is_refused_and_nothing_is_written(
    kurashiki: Bench, fields: dict[str, str], field: str, code: str
) -> None:
    system = _system(kurashiki)
    number = _insured(kurashiki, 1)
    session = kurashiki.session(system.staff, "kaigo-sys-a")
    result, _ = kurashiki.step(lambda now: system.submit_form(session, "qualification_acquisition", number, fields,
                                                              now))
    assert result.refusal is not None
    assert (result.refusal.control_id, result.refusal.field, str(result.refusal.code)) == ("GYOMU-002", field, code)
    assert system.file(number) == {}


def test_an_attribute_outside_beppyo_is_never_written(kurashiki: Bench) -> None:
    system = _system(kurashiki)
    number = _insured(kurashiki)
    session = kurashiki.session(system.staff, "kaigo-sys-a")
    before = system.file(number)
    result, _ = kurashiki.step(lambda now: system.write(
        session, number, "certification", {"認定有効開始日": "2026-05-01", "趣味": "園芸"}, now))
    assert refused_at(result) == ("GYOMU-002", "趣味")
    assert system.file(number) == before
    unknown, _ = kurashiki.step(lambda now: system.write(session, number, "hobbies", {"x": 1}, now))
    assert unknown.refusal is not None and unknown.refusal.field == "section"


def test_a_join_with_the_tax_feed_sets_the_premium_stage_and_republishes(kurashiki: Bench) -> None:
    system = _system(kurashiki)
    number = _insured(kurashiki)
    session = kurashiki.session(system.staff, "kaigo-sys-a")
    result, hops = kurashiki.step(lambda now: system.link(session, number, "local_tax", "保険料段階の算定", now))
    assert result.refusal is None and _decisions(result, "GYOMU-012") == ["allow"]
    stage = result.value["premium_stage"]
    assert system.file(number)["assessment"]["所得段階"] == stage
    record = system.conn.execute("SELECT record FROM business_ltc_records WHERE business_atena_number = ?",
                                 (number,)).fetchone()[0]
    assert json.loads(record)["premium_stage"] == stage
    assert any(h.message_type == MessageType.REPLICA_UPDATE and h.sender == "kurashiki.ltc" for h in hops)


def test_a_join_with_a_dataset_not_configured_is_refused(kurashiki: Bench) -> None:
    system = _system(kurashiki)
    session = kurashiki.session(system.staff, "kaigo-sys-a")
    links = "SELECT COUNT(*) FROM ltc_links"
    before = system.conn.execute(links).fetchone()[0]
    result, _ = kurashiki.step(lambda now: system.link(session, _insured(kurashiki), "sewer", "突合", now))
    assert refused_at(result) == ("GYOMU-012", "dataset")
    assert system.conn.execute(links).fetchone()[0] == before


def test_the_kokuhoren_interface_carries_only_its_items(kurashiki: Bench) -> None:
    system = _system(kurashiki)
    session = kurashiki.session(system.staff, "kaigo-sys-a")
    number = _insured(kurashiki)
    outbox = "SELECT items FROM ltc_kokuhoren_outbox ORDER BY seq"
    before = system.conn.execute(outbox).fetchall()
    refused, _ = kurashiki.step(lambda now: system.send_to_kokuhoren(
        session, number, {"受給者異動情報": "取得", "住民税情報": "課税"}, now))
    assert refused.refusal is not None and refused.refusal.field == "住民税情報"
    assert system.conn.execute(outbox).fetchall() == before
    ok, _ = kurashiki.step(lambda now: system.send_to_kokuhoren(session, number, {"受給者異動情報": "取得"}, now))
    assert ok.refusal is None and _decisions(ok, "GYOMU-012") == ["allow"]
    assert json.loads(system.conn.execute(outbox).fetchall()[-1][0]) == {"受給者異動情報": "取得"}


def test_queries_under_rows_93_and_94_only_with_the_permission(kurashiki: Bench) -> None:
    system = _system(kurashiki)
    assert system.desk.query_rows == frozenset({"93", "94"}) and len(system.desk.provision_rows) == 33
    number = _insured(kurashiki)
    b = kurashiki.session(system.staff, "kaigo-sys-b")
    refused, _ = kurashiki.step(lambda now: system.query(b, number, "94", ["resident_info"], "iizuka", now))
    assert refused.refusal is not None and refused.refusal.control_id == "GYOMU-011"
    a = kurashiki.session(system.staff, "kaigo-sys-a")
    ok, _ = kurashiki.step(lambda now: system.query(a, number, "94", ["resident_info"], "iizuka", now))
    assert ok.refusal is None
    assert kurashiki.world.business("kurashiki", "ltc").answer(str(ok.value))["status"] == "provided"  # type: ignore[index]


def test_premium_stage_bands() -> None:
    assert [premium_stage(i) for i in (0, 1, 1_199_999, 1_200_000, 2_100_000, 3_200_000)] == [4, 6, 6, 7, 8, 9]
