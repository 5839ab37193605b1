"""住基ネット side of the pipeline: 既存住基, 市町村CS, 都道府県サーバ and 全国サーバ, control by control.

Each control gets an allowed and a refused case, asserting the decision (control id, outcome, code) and the
state left behind. Messages are real (signed, sealed, replay-checked) and travel through a small delivery loop.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from simulator.components.base import Link, Result
from simulator.components.jlis import Difference, NationalServer
from simulator.controls.decision import ControlDecision, Outcome
from simulator.errors import InputError, RefusalCode
from simulator.identifiers import is_valid_my_number, my_number_from_resident_code, new_resident_code
from simulator.model.envelope import Envelope, MessageType
from simulator.store.db import connect

from .conftest import (
    ATENA,
    CS,
    NS,
    NWS,
    PS,
    REGISTRY,
    TAX,
    Delivered,
    JukinetWorld,
    build_jukinet_world,
)

# -- helpers ---------------------------------------------------------------------------------------------


def only(result: Result, control_id: str) -> ControlDecision:
    found = [d for d in result.decisions if d.control_id == control_id]
    assert len(found) == 1, (control_id, result.decisions)
    return found[0]


def refused(result: Result, control_id: str, code: RefusalCode, field: str | None = None) -> None:
    assert result.refusal is not None, result.decisions
    assert result.refusal.control_id == control_id, result.refusal
    assert result.refusal.code == code, result.refusal
    if field is not None:
        assert result.refusal.field == field
    decision = only(result, control_id)
    assert decision.outcome == Outcome.DENY and decision.code == str(code)
    assert result.outgoing == []


def allowed(hops: list[Delivered], control_id: str, component: str) -> list[ControlDecision]:
    found = [
        d for h in hops if h.result is not None for d in h.result.decisions
        if d.control_id == control_id and d.component == component
    ]
    assert found and all(d.outcome == Outcome.ALLOW for d in found), (control_id, component, found)
    return found


def no_refusals(hops: list[Delivered]) -> None:
    assert [h.result.refusal for h in hops if h.result is not None and h.result.refusal] == []


def sent(hops: list[Delivered], type_: MessageType, recipient: str | None = None) -> list[Delivered]:
    return [h for h in hops if h.outgoing.envelope.type == type_ and recipient in (None, h.outgoing.recipient)]


def four_eyes(world: JukinetWorld, form: dict[str, Any]) -> tuple[str, list[Delivered]]:
    entered = world.registry.enter_change(world.clerk("clerk-a"), form, world.tick())
    assert entered.refusal is None, entered.refusal
    assert entered.outgoing == []  # a PENDING change is never sent anywhere
    confirmed, hops = world.step(lambda at: world.registry.confirm_change(world.clerk("clerk-b"), entered.value, True, at))
    assert confirmed.refusal is None, confirmed.refusal
    return str(entered.value), hops


def resident(world: JukinetWorld, index: int) -> dict[str, Any]:
    return world.residents[index]


def identity_of(row: dict[str, Any], **changes: str) -> dict[str, str]:
    items = {k: row[k] for k in ("resident_code", "name", "birth_date", "sex", "address", "my_number")}
    return {**items, **changes}


def craft(world: JukinetWorld, sender: str, type_: MessageType, recipient: str, *, body: dict[str, Any],
          personal: dict[str, Any] | None = None) -> Result:
    """A message signed by ``sender`` through that party's own component (or bare sender)."""
    component = {**world.components(), **world.senders}[sender]
    result = Result()
    component.send(result, type_, recipient, world.tick(), body=body, personal=personal)
    return result


def hand(world: JukinetWorld, result: Result) -> Result:
    """Deliver the one message ``result`` holds, and only that one; return what the recipient did."""
    (outgoing,) = result.outgoing
    receiver = world.components()[outgoing.recipient]
    return receiver.handle(outgoing.wire, Link(outgoing.envelope.sender, outgoing.network), world.tick())


def rows(world: JukinetWorld, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return list(world.registry.conn.execute(sql, params).fetchall())


def jws_payload(wire: str) -> str:
    segment = wire.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()


# -- JUKI-001: only the fields of the 届出 form; AUTH-005: role ---------------------------------------------


def test_move_within_form_with_only_its_fields_is_entered_pending(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = resident(w, 0)
    result = w.registry.enter_change(
        w.clerk("clerk-a"),
        {"change_type": "move_within", "resident_code": person["resident_code"],
         "address": "三重県桑名市中央町三丁目1番地", "postal_code": "511-8601", "change_date": "2026-03-30"},
        w.tick(),
    )
    assert result.refusal is None
    assert only(result, "JUKI-001").outcome == Outcome.ALLOW
    assert only(result, "AUTH-005").outcome == Outcome.ALLOW
    change = w.registry.change(result.value)
    assert change is not None and change["status"] == "PENDING" and change["entered_by"] == "clerk-a"
    assert result.outgoing == []
    assert w.registry.resident(person["resident_code"])["address"] == person["address"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"relationship": "妻"}, RefusalCode.FIELD_NOT_ALLOWED, "relationship"),  # 転居届 has no 続柄
        ({"honseki": "三重県"}, RefusalCode.FIELD_NOT_ALLOWED, "honseki"),
        ({"postal_code": None}, RefusalCode.FIELD_MISSING, "postal_code"),
        ({"change_date": "2026-13-01"}, RefusalCode.FIELD_INVALID, "change_date"),
        ({"change_date": "2026-04-02"}, RefusalCode.FIELD_INVALID, "change_date"),  # future
        ({"change_date": "2009-01-01"}, RefusalCode.FIELD_INVALID, "change_date"),  # before 住民となった日
        ({"postal_code": "51186"}, RefusalCode.FIELD_INVALID, "postal_code"),
    ],
)
def test_move_within_form_outside_its_schema_is_refused_and_nothing_written(
    jukinet_world: JukinetWorld, changes: dict[str, Any], code: RefusalCode, field: str
) -> None:
    w = jukinet_world
    form: dict[str, Any] = {
        "change_type": "move_within", "resident_code": resident(w, 0)["resident_code"],
        "address": "三重県桑名市中央町三丁目1番地", "postal_code": "511-8601", "change_date": "2026-03-30",
    }
    form.update(changes)
    form = {k: v for k, v in form.items() if v is not None}
    before = rows(w, "SELECT count(*) FROM registry_pending_changes")
    result = w.registry.enter_change(w.clerk("clerk-a"), form, w.tick())
    refused(result, "JUKI-001", code, field)
    assert rows(w, "SELECT count(*) FROM registry_pending_changes") == before
    assert result.decisions[0].evidence["operator"] == "clerk-a"


def test_birth_form_refuses_a_wrong_sex_code(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    result = w.registry.enter_change(
        w.clerk("clerk-a"),
        {"change_type": "birth", "name": "桑名 四郎", "name_kana": "クワナ シロウ", "birth_date": "2026-03-28",
         "sex": "M", "household_id": "H0001", "relationship": "子"},
        w.tick(),
    )
    refused(result, "JUKI-001", RefusalCode.FIELD_INVALID, "sex")


def test_entering_a_change_needs_the_registry_clerk_role(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    result = w.registry.enter_change(
        w.clerk("viewer"),
        {"change_type": "death", "resident_code": resident(w, 4)["resident_code"], "change_date": "2026-03-31"},
        w.tick(),
    )
    refused(result, "AUTH-005", RefusalCode.ROLE_MISSING, "role")
    assert rows(w, "SELECT count(*) FROM registry_pending_changes") == [(0,)]


# -- JUKI-002: second-person confirmation -----------------------------------------------------------------


def test_four_eyes_same_clerk_refused_second_clerk_commits(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = resident(w, 3)
    form = {"change_type": "move_within", "resident_code": person["resident_code"],
            "address": "三重県桑名市多度町小山2番地", "postal_code": "511-0106", "change_date": "2026-03-31"}
    entered = w.registry.enter_change(w.clerk("clerk-a"), form, w.tick())
    own = w.registry.confirm_change(w.clerk("clerk-a"), entered.value, True, w.tick())
    refused(own, "JUKI-002", RefusalCode.SAME_PERSON_CONFIRMATION, "session")
    assert w.registry.change(entered.value)["status"] == "PENDING"  # type: ignore[index]
    assert w.registry.resident(person["resident_code"])["address"] == person["address"]  # type: ignore[index]
    assert w.registry.history(person["resident_code"]) == []

    other = w.registry.confirm_change(w.clerk("clerk-b"), entered.value, True, w.tick())
    assert other.refusal is None
    decision = only(other, "JUKI-002")
    assert decision.outcome == Outcome.ALLOW
    assert decision.evidence == {"entered_by": "clerk-a", "confirmed_by": "clerk-b"}
    assert other.value == {"change_id": entered.value, "status": "COMMITTED", "resident_code": person["resident_code"]}
    assert w.registry.resident(person["resident_code"])["address"] == form["address"]  # type: ignore[index]
    (history,) = w.registry.history(person["resident_code"])
    assert history["confirmed_by"] == "clerk-b" and history["before"]["address"] == person["address"]
    assert {o.envelope.type for o in other.outgoing} == {
        MessageType.IDENTITY_UPDATE, MessageType.ATENA_REGISTER, MessageType.REPLICA_UPDATE,
    }


def test_mismatch_returns_the_entry_and_commits_nothing(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = resident(w, 4)
    entered = w.registry.enter_change(
        w.clerk("clerk-a"), {"change_type": "death", "resident_code": person["resident_code"], "change_date": "2026-03-31"},
        w.tick(),
    )
    returned = w.registry.confirm_change(w.clerk("clerk-b"), entered.value, False, w.tick())
    assert returned.refusal is None and returned.outgoing == []
    assert only(returned, "JUKI-002").outcome == Outcome.DENY
    assert returned.value["status"] == "RETURNED"
    assert w.registry.resident(person["resident_code"])["status"] == "active"  # type: ignore[index]
    again = w.registry.confirm_change(w.clerk("clerk-b"), entered.value, True, w.tick())
    refused(again, "JUKI-002", RefusalCode.STATE_CONFLICT, "change_id")


# -- FL-01: 転居 through CS (CS-001/002/012/020), 都道府県サーバ and 全国サーバ (JLIS-001) -------------------------------


def test_move_within_reaches_prefecture_and_nation_with_identical_items(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = resident(w, 1)
    new_address = "三重県桑名市中央町二丁目40番地"
    change_id, hops = four_eyes(w, {"change_type": "move_within", "resident_code": person["resident_code"],
                                    "address": new_address, "postal_code": "511-8601", "change_date": "2026-03-31"})
    no_refusals(hops)
    expected = identity_of(person, address=new_address, change_reason="move_within", change_date="2026-03-31")
    code = person["resident_code"]
    assert {k: v for k, v in w.cs.identity(code).items() if k != "status"} == expected  # type: ignore[union-attr]
    assert w.ps.identity(code) == expected
    assert w.ns.identity(code) == expected
    for control in ("CS-001", "CS-002", "CS-012", "CS-014", "CS-020"):
        allowed(hops, control, CS)
    allowed(hops, "JLIS-001", PS)
    allowed(hops, "JLIS-001", NS)
    (notify,) = sent(hops, MessageType.IDENTITY_NOTIFY, PS)  # exactly one notification per change (CS-020)
    assert notify.outgoing.envelope.body == {"change_id": change_id}
    assert w.securities[PS].unseal(notify.outgoing.envelope.sealed) == expected  # type: ignore[arg-type]
    assert w.cs.unacknowledged() == [] and w.ps.pending_propagation() == []


def test_personal_data_is_sealed_and_the_replica_has_no_numbers(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = resident(w, 1)
    _, hops = four_eyes(w, {"change_type": "move_within", "resident_code": person["resident_code"],
                            "address": "三重県桑名市中央町二丁目41番地", "postal_code": "511-8601",
                            "change_date": "2026-03-31"})
    for hop in hops:
        body = json.dumps(hop.outgoing.envelope.body, ensure_ascii=False)
        for secret in (person["resident_code"], person["my_number"], person["name"], "中央町"):
            assert secret not in body, (hop.outgoing.envelope.type, body)
    (register,) = sent(hops, MessageType.ATENA_REGISTER, ATENA)
    (replica,) = sent(hops, MessageType.REPLICA_UPDATE, ATENA)
    atena = w.securities[ATENA]
    assert atena.unseal(register.outgoing.envelope.sealed)["my_number"] == person["my_number"]  # type: ignore[arg-type]
    record = atena.unseal(replica.outgoing.envelope.sealed)["record"]  # type: ignore[arg-type]
    assert set(record) == {"name", "name_kana", "birth_date", "sex", "address", "postal_code", "household_id",
                           "relationship", "status"}
    flat = json.dumps(record, ensure_ascii=False)
    assert person["resident_code"] not in flat and person["my_number"] not in flat
    assert replica.outgoing.envelope.body == {
        "business": "resident_register", "item": "resident_info", "auto_reply_disabled": False,
        "business_atena_number": w.registry.resident(person["resident_code"])["business_atena_number"],  # type: ignore[index]
    }


# -- FL-04: 出生 → 個人番号 from the 全国サーバ (JUKI-008, CS-013) ------------------------------------------------------


BIRTH = {"change_type": "birth", "name": "桑名 四郎", "name_kana": "クワナ シロウ", "birth_date": "2026-03-28",
         "sex": "1", "household_id": "H0001", "relationship": "子"}


def test_birth_gets_a_valid_my_number_and_reaches_the_nation(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    change_id, hops = four_eyes(w, dict(BIRTH))
    no_refusals(hops)
    code = w.registry.change(change_id)["resident_code"]  # type: ignore[index]
    child = w.registry.resident(code)
    assert child is not None and child["address"] == resident(w, 0)["address"]
    assert is_valid_my_number(child["my_number"])
    assert w.ns.my_number_for(code, w.tick()) == child["my_number"]  # 機構 keeps the one it issued
    allowed(hops, "JUKI-008", REGISTRY)
    allowed(hops, "CS-013", CS)
    path = [(h.outgoing.envelope.sender, h.outgoing.recipient, h.outgoing.envelope.type) for h in hops]
    assert path[:4] == [
        (REGISTRY, CS, MessageType.MY_NUMBER_REQUEST),
        (CS, NS, MessageType.MY_NUMBER_REQUEST),
        (NS, CS, MessageType.MY_NUMBER_ISSUED),
        (CS, REGISTRY, MessageType.MY_NUMBER_ISSUED),
    ]
    assert w.ns.identity(code) == identity_of(child, change_reason="birth", change_date="2026-03-28")
    (request,) = sent(hops, MessageType.MY_NUMBER_REQUEST, CS)
    assert code not in json.dumps(request.outgoing.envelope.body)


def test_my_number_reply_for_another_resident_code_is_refused(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    entered = w.registry.enter_change(w.clerk("clerk-a"), dict(BIRTH), w.tick())
    confirmed = w.registry.confirm_change(w.clerk("clerk-b"), entered.value, True, w.tick())
    (request,) = confirmed.outgoing  # nothing but the 個人番号 request until the number is known
    assert request.envelope.type == MessageType.MY_NUMBER_REQUEST
    code = confirmed.value["resident_code"]
    other = new_resident_code()
    number = my_number_from_resident_code(other, bytes(32))
    wrong = craft(w, CS, MessageType.MY_NUMBER_ISSUED, REGISTRY, body=dict(request.envelope.body),
                  personal={"resident_code": other, "my_number": number})
    result = hand(w, wrong)
    refused(result, "JUKI-008", RefusalCode.STATE_CONFLICT, "resident_code")
    assert w.registry.resident(code)["my_number"] is None  # type: ignore[index]
    assert w.registry._number_holder(number) is None

    right = craft(w, CS, MessageType.MY_NUMBER_ISSUED, REGISTRY, body=dict(request.envelope.body),
                  personal={"resident_code": code, "my_number": my_number_from_resident_code(code, bytes(32))})
    accepted = hand(w, right)
    assert only(accepted, "JUKI-008").outcome == Outcome.ALLOW
    assert w.registry.resident(code)["my_number"] == my_number_from_resident_code(code, bytes(32))  # type: ignore[index]
    assert {o.envelope.type for o in accepted.outgoing} == {
        MessageType.IDENTITY_UPDATE, MessageType.ATENA_REGISTER, MessageType.REPLICA_UPDATE,
    }


def test_cs_refuses_a_national_reply_about_another_person(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    entered = w.registry.enter_change(w.clerk("clerk-a"), dict(BIRTH), w.tick())
    confirmed = w.registry.confirm_change(w.clerk("clerk-b"), entered.value, True, w.tick())
    relayed = hand(w, confirmed)  # registry → CS; CS relays to the 全国サーバ
    (to_national,) = relayed.outgoing
    other = new_resident_code()
    reply = craft(w, NS, MessageType.MY_NUMBER_ISSUED, CS, body=dict(to_national.envelope.body),
                  personal={"resident_code": other, "my_number": my_number_from_resident_code(other, bytes(32))})
    refused(hand(w, reply), "CS-013", RefusalCode.REPLY_MISMATCH, "resident_code")


def test_national_server_moves_to_the_next_generation_on_collision(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    code = new_resident_code()
    taken = my_number_from_resident_code(code, w.ns._key("my_number"), 0)
    squatter = new_resident_code()
    loaded = w.ns.bulk_load(CS, [{"resident_code": squatter, "name": "先 住人", "birth_date": "1990-01-01",
                                  "sex": "2", "address": "三重県桑名市1番地", "my_number": taken,
                                  "change_reason": "move_in", "change_date": "2020-01-01"}], w.tick())
    assert loaded.value == 1
    issued = w.ns.my_number_for(code, w.tick())
    assert issued == my_number_from_resident_code(code, w.ns._key("my_number"), 1) != taken
    assert is_valid_my_number(issued)


# -- CS-001 / CS-005: only 既存住基 may call CS ---------------------------------------------------------------------


def test_cs_refuses_identity_from_a_business_system(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = resident(w, 0)
    items = identity_of(person, address="三重県桑名市どこか1番地", change_reason="move_within",
                        change_date="2026-03-31")
    before = w.cs.identity(person["resident_code"])
    refused(hand(w, craft(w, TAX, MessageType.IDENTITY_UPDATE, CS, body={"change_id": "c" * 32}, personal=items)),
            "CS-001", RefusalCode.SOURCE_NOT_ALLOWED, "sender")
    assert w.cs.identity(person["resident_code"]) == before
    refused(hand(w, craft(w, TAX, MessageType.MY_NUMBER_REQUEST, CS, body={"request_id": "r" * 32},
                          personal={"resident_code": person["resident_code"]})),
            "CS-005", RefusalCode.SOURCE_NOT_ALLOWED, "sender")
    # the same update from 既存住基 is accepted
    accepted = hand(w, craft(w, REGISTRY, MessageType.IDENTITY_UPDATE, CS, body={"change_id": "c" * 32},
                             personal=items))
    assert accepted.refusal is None and only(accepted, "CS-001").outcome == Outcome.ALLOW


# -- CS-002: exactly the 8 items ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "drop", "code", "field"),
    [
        ({"phone": "0594-24-1111"}, None, RefusalCode.FIELD_NOT_ALLOWED, "phone"),
        ({"nhi_number": "123"}, None, RefusalCode.FIELD_NOT_ALLOWED, "nhi_number"),
        ({}, "sex", RefusalCode.FIELD_MISSING, "sex"),
    ],
)
def test_cs_refuses_anything_but_the_eight_items(
    jukinet_world: JukinetWorld, extra: dict[str, str], drop: str | None, code: RefusalCode, field: str
) -> None:
    w = jukinet_world
    person = resident(w, 0)
    items: dict[str, str] = {**identity_of(person, address="三重県桑名市中央町九丁目1番地",
                                           change_reason="move_within", change_date="2026-03-31"), **extra}
    if drop:
        del items[drop]
    result = hand(w, craft(w, REGISTRY, MessageType.IDENTITY_UPDATE, CS, body={"change_id": "d" * 32},
                           personal=items))
    refused(result, "CS-002", code, field)
    assert w.cs.identity(person["resident_code"])["address"] == person["address"]  # type: ignore[index]
    assert rows(w, "SELECT count(*) FROM cs_notifications WHERE change_id = ?", "d" * 32) == [(0,)]


def test_cs_refuses_a_malformed_my_number(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = resident(w, 0)
    items = identity_of(person, change_reason="move_within", change_date="2026-03-31")
    items["my_number"] = items["my_number"][:11]
    result = hand(w, craft(w, REGISTRY, MessageType.IDENTITY_UPDATE, CS, body={"change_id": "e" * 32},
                           personal=items))
    refused(result, "CS-012", RefusalCode.FIELD_INVALID, "my_number")


# -- CS-012: logic checks; CS-020: one update per change --------------------------------------------------


def test_move_in_for_an_active_code_is_refused(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = resident(w, 2)
    items = identity_of(person, change_reason="move_in", change_date="2026-03-31")
    result = hand(w, craft(w, REGISTRY, MessageType.IDENTITY_UPDATE, CS, body={"change_id": "f" * 32},
                           personal=items))
    refused(result, "CS-012", RefusalCode.STATE_CONFLICT, "change_reason")
    assert w.cs.identity(person["resident_code"])["change_date"] == "2010-04-01"  # type: ignore[index]


def test_move_within_that_changes_the_name_is_refused(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = resident(w, 2)
    items = identity_of(person, name="別名 一郎", change_reason="move_within", change_date="2026-03-31")
    result = hand(w, craft(w, REGISTRY, MessageType.IDENTITY_UPDATE, CS, body={"change_id": "a1" * 16},
                           personal=items))
    refused(result, "CS-012", RefusalCode.FIELD_INVALID, "name")


def test_a_second_update_for_the_same_change_is_detected(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = resident(w, 2)
    change_id, hops = four_eyes(w, {"change_type": "move_within", "resident_code": person["resident_code"],
                                    "address": "三重県桑名市中央町二丁目50番地", "postal_code": "511-8601",
                                    "change_date": "2026-03-31"})
    (update,) = sent(hops, MessageType.IDENTITY_UPDATE, CS)
    items = w.securities[CS].unseal(update.outgoing.envelope.sealed)  # type: ignore[arg-type]
    # re-signed (new id and nonce), so only CS-020's own bookkeeping can catch it, not the replay guard
    again = hand(w, craft(w, REGISTRY, MessageType.IDENTITY_UPDATE, CS, body={"change_id": change_id},
                          personal=items))
    refused(again, "CS-020", RefusalCode.STATE_CONFLICT, "change_id")
    assert len(sent(w.delivered, MessageType.IDENTITY_NOTIFY, PS)) == len(w.residents) + 1


# -- CS-003 / CS-010 / CS-013: 4情報 search ---------------------------------------------------------------------


def test_basic4_search_needs_two_keys_besides_sex(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    op = w.operator("cs-op")
    refused(w.cs.basic4_search(op, {"name": "桑名 太郎"}, w.tick()), "CS-003", RefusalCode.SEARCH_TOO_BROAD,
            "criteria")
    refused(w.cs.basic4_search(op, {"sex": "1", "birth_date": "1970-05-01"}, w.tick()), "CS-003",
            RefusalCode.SEARCH_TOO_BROAD)
    refused(w.cs.basic4_search(op, {"name": "桑名 太郎", "phone": "1"}, w.tick()), "CS-003",
            RefusalCode.FIELD_NOT_ALLOWED, "phone")

    found = w.cs.basic4_search(op, {"name": "桑名太郎", "birth_date": "1970-05-01"}, w.tick())
    assert found.refusal is None
    assert [m["resident_code"] for m in found.value] == [resident(w, 0)["resident_code"]]
    assert only(found, "CS-003").outcome == Outcome.ALLOW and only(found, "CS-013").outcome == Outcome.ALLOW
    # 多度 次郎 shares the birth date: the reply still names only the person the conditions match
    by_address = w.cs.basic4_search(op, {"name": "多度 次郎", "address": "三重県桑名市多度町"}, w.tick())
    assert [m["name"] for m in by_address.value] == ["多度 次郎"]
    trail = list(w.cs.audit.rows(kind="cs.operation"))
    assert [t["data"]["operator"] for t in trail] == ["cs-op", "cs-op"]
    assert trail[0]["data"]["targets"] == [resident(w, 0)["resident_code"]]


def test_strict_profile_refuses_address_and_birth_date_without_name(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    op = w.operator("cs-op")
    criteria = {"address": "三重県桑名市", "birth_date": "1970-05-01"}
    refused(w.cs.basic4_search(op, criteria, w.tick()), "CS-003", RefusalCode.SEARCH_TOO_BROAD)
    w.cs.search_require_name = False  # the literal reading of 000 (catalogue F-20)
    literal = w.cs.basic4_search(op, criteria, w.tick())
    assert sorted(m["name"] for m in literal.value) == ["多度 次郎", "桑名 太郎"]


def test_basic4_search_needs_the_cs_operator_privilege(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    result = w.cs.basic4_search(w.operator("no-priv"), {"name": "桑名 太郎", "birth_date": "1970-05-01"}, w.tick())
    refused(result, "CS-010", RefusalCode.ROLE_MISSING, "role")
    assert result.decisions[0].evidence["operator"] == "no-priv"
    assert list(w.cs.audit.rows(kind="cs.operation")) == []


# -- FL-17: 符号取得 (NWS-005) — NWS receives a link code, never the 住民票コード ------------------------------------------


def test_code_acquisition_reaches_nws_without_the_resident_code(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = w.registry.resident(resident(w, 0)["resident_code"])
    assert person is not None
    start = craft(w, ATENA, MessageType.CODE_ACQUISITION_NOTIFY, REGISTRY,
                  body={"processing_serial": "PS-000001", "business_atena_number": person["business_atena_number"]})
    hops = w.deliver(start)
    no_refusals(hops)
    allowed(hops, "NWS-005", REGISTRY)
    allowed(hops, "NWS-005", NS)
    (notice,) = sent(hops, MessageType.LINK_CODE_NOTIFY, NWS)
    envelope = notice.outgoing.envelope
    assert envelope.body == {"processing_serial": "PS-000001", "requesting_party": CS}
    assert notice.outgoing.sealed_for == NWS
    for text in (json.dumps(envelope.body), jws_payload(notice.outgoing.wire)):
        assert person["resident_code"] not in text and person["my_number"] not in text
    link_code = w.securities[NWS].unseal(envelope.sealed)["link_code"]  # type: ignore[arg-type]
    assert re.fullmatch(r"[0-9a-f]{64}", link_code) and link_code == w.ns.link_code(person["resident_code"])
    # the 宛名 system never talks to CS: the path is 宛名 → 既存住基 → CS → 全国サーバ → NWS
    assert [(h.outgoing.envelope.sender, h.outgoing.recipient) for h in hops] == [
        (ATENA, REGISTRY), (REGISTRY, CS), (CS, NS), (NS, NWS),
    ]


def test_a_processing_serial_is_used_once(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    first = w.registry.resident(resident(w, 0)["resident_code"])
    second = w.registry.resident(resident(w, 1)["resident_code"])
    assert first is not None and second is not None
    w.deliver(craft(w, ATENA, MessageType.CODE_ACQUISITION_NOTIFY, REGISTRY,
                    body={"processing_serial": "PS-7", "business_atena_number": first["business_atena_number"]}))
    hops = w.deliver(craft(w, ATENA, MessageType.CODE_ACQUISITION_NOTIFY, REGISTRY,
                           body={"processing_serial": "PS-7", "business_atena_number": second["business_atena_number"]}))
    (at_cs,) = [h for h in hops if h.outgoing.recipient == CS]
    assert at_cs.result is not None
    refused(at_cs.result, "NWS-005", RefusalCode.SERIAL_INVALID, "processing_serial")
    assert len(sent(w.delivered, MessageType.LINK_CODE_NOTIFY, NWS)) == 1


def test_registry_refuses_code_acquisition_for_an_unknown_atena_number(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    result = hand(w, craft(w, ATENA, MessageType.CODE_ACQUISITION_NOTIFY, REGISTRY,
                           body={"processing_serial": "PS-9", "business_atena_number": "9999999999"}))
    refused(result, "NWS-005", RefusalCode.NOT_FOUND, "business_atena_number")


# -- J-LIS membership (NET-001) and consistency (JLIS-002) --------------------------------------------------


def test_prefectural_server_refuses_a_cs_it_is_not_linked_to(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    person = resident(w, 0)
    envelope = Envelope(id="x" * 32, type=MessageType.IDENTITY_NOTIFY, sender=TAX, recipient=PS,
                        issued_at=w.tick(), nonce="n" * 32, body={"change_id": "z" * 32},
                        sealed=w.securities[TAX].seal(identity_of(person, change_reason="move_within",
                                                                   change_date="2026-03-31"),
                                                      w.directory.certificate(PS)))
    result = w.ps.handle(w.securities[TAX].sign(envelope), Link(TAX, "jukinet"), w.tick())
    refused(result, "NET-001", RefusalCode.SOURCE_NOT_ALLOWED, "sender")
    assert w.ps.identity(person["resident_code"])["change_reason"] != "move_within"  # type: ignore[index]


def test_consistency_check_reports_differences_by_resident_code(jukinet_world: JukinetWorld) -> None:
    w = jukinet_world
    upload = w.cs.consistency_rows()
    assert len(upload) == len(w.residents)
    for server in (w.ps, w.ns):
        clean = server.consistency_check(CS, upload, w.tick())
        assert clean.value == [] and only(clean, "JLIS-002").outcome == Outcome.ALLOW
    diverged = resident(w, 3)["resident_code"]
    w.ps.conn.execute("UPDATE ps_identity_info SET address = '三重県津市1番地' WHERE resident_code = ?", (diverged,))
    dropped = resident(w, 4)["resident_code"]
    partial = [r for r in upload if r["resident_code"] != dropped]
    found = w.ps.consistency_check(CS, partial, w.tick()).value
    assert found == sorted([Difference(diverged, "differs", ("address",)), Difference(dropped, "missing_at_cs")],
                           key=lambda d: d.resident_code)
    assert w.ns.consistency_check(CS, partial, w.tick()).value == [Difference(dropped, "missing_at_cs")]
    refused(w.ps.consistency_check("tsu.municipal_cs", upload, w.tick()), "NET-003", RefusalCode.SOURCE_NOT_ALLOWED)


# -- bulk load -----------------------------------------------------------------------------------------------


def test_bulk_load_rejects_a_bad_row_and_writes_nothing(tmp_path: Path) -> None:
    w = build_jukinet_world(tmp_path, publish=False)
    bad = dict(resident(w, 0), resident_code=new_resident_code())
    bad["my_number"] = bad["my_number"][:-1] + str((int(bad["my_number"][-1]) + 1) % 10)
    good = dict(resident(w, 1), resident_code=new_resident_code(), my_number=None)
    before = rows(w, "SELECT count(*) FROM registry_residents")
    with pytest.raises(InputError) as excinfo:
        w.registry.bulk_load([good, bad], w.tick())
    assert excinfo.value.field == "rows[1].my_number"
    assert rows(w, "SELECT count(*) FROM registry_residents") == before
    with pytest.raises(InputError, match=r"rows\[0\]\.sex"):
        w.registry.bulk_load([dict(good, sex="M")], w.tick())
    assert [r["data"]["count"] for r in w.registry.audit.rows(kind="bulk_load")] == [len(w.residents)]


def test_bulk_loaded_servers_agree_without_messages(tmp_path: Path) -> None:
    w = build_jukinet_world(tmp_path, publish=False)
    snapshot = w.registry.identity_snapshot()
    assert w.cs.bulk_load(snapshot, w.tick()).value == len(snapshot)
    assert w.ps.bulk_load(CS, snapshot, w.tick()).value == len(snapshot)
    assert w.ns.bulk_load(CS, snapshot, w.tick(), prefectural_party=PS).value == len(snapshot)
    assert w.ns.consistency_check(CS, w.cs.consistency_rows(), w.tick()).value == []
    # a 4情報-changing 転居 then flows as usual, and 機構 keeps the loaded 個人番号
    person = resident(w, 0)
    _, hops = four_eyes(w, {"change_type": "move_within", "resident_code": person["resident_code"],
                            "address": "三重県桑名市中央町五丁目1番地", "postal_code": "511-8601",
                            "change_date": "2026-03-31"})
    no_refusals(hops)
    assert w.ns.my_number_for(person["resident_code"], w.tick()) == person["my_number"]
    assert w.ns.identity(person["resident_code"])["address"] == "三重県桑名市中央町五丁目1番地"  # type: ignore[index]


def test_national_keys_and_records_survive_a_restart(tmp_path: Path) -> None:
    w = build_jukinet_world(tmp_path)
    key, link_key = w.ns._key("my_number"), w.ns._key("link_code")
    assert key != link_key  # one key per use
    again = NationalServer(NS, connect(tmp_path / "jlis.sqlite"), w.securities[NS], w.directory, nws_party=NWS)
    assert (again._key("my_number"), again._key("link_code")) == (key, link_key)
    assert again.identity(resident(w, 0)["resident_code"]) == w.ns.identity(resident(w, 0)["resident_code"])
    again.conn.close()
