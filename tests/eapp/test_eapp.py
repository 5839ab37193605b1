"""電子申請: card signatures checked at the city (EAPP-001/002), forms fixed (EAPP-003), LGWAN only (EAPP-005),
宛名番号 the only link and pull only (EAPP-004), the terminal emptied (EAPP-006), versions (EAPP-007)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from simulator.components.base import Link, Outgoing, Result
from simulator.components.eapp import CardHolder, sign_application
from simulator.controls.decision import ControlDecision
from simulator.model.envelope import MessageType
from tests.eapp.conftest import EappWorld


def _card(world: EappWorld, person: dict[str, Any]) -> CardHolder:
    return world.jpki.card(person["resident_code"], person["my_number"], world.now)


def _form(world: EappWorld, person: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    form = world.e_app.rules.procedures[0]
    fields = {name: person.get(name, f"{name}-value") for name in form.fields}
    fields.update(overrides.pop("fields", {}))
    return {
        "serial": uuid.uuid4().hex[:16],
        "municipality": "tsukuba",
        "procedure": form.id,
        "fields": fields,
        "attachments": [],
        "my_number_source": "card_chip",
        **overrides,
    }


def _submit(world: EappWorld, signed: dict[str, Any]) -> Result:
    return world.step(lambda now: world.service.submit(signed, now))[0]


def _fetch(world: EappWorld) -> list[ControlDecision]:
    session = world.staff(world.e_app.staff, "eapp-dl")
    result, results = world.step(lambda now: world.e_app.fetch(session, now))
    assert result.refusal is None
    return [d for r in results for d in r.decisions]


def _ids(decisions: list[ControlDecision]) -> list[tuple[str, str, str | None]]:
    return [(d.control_id, str(d.outcome), d.code) for d in decisions]


def test_a_signed_application_reaches_the_terminal_and_bad_ones_are_dropped(eapp_world: EappWorld) -> None:
    w = eapp_world
    good, altered, victim, signer, lost = w.residents
    _submit(w, sign_application(_card(w, good), _form(w, good)))
    signed = sign_application(_card(w, altered), _form(w, altered))
    signed["application"] = {**signed["application"], "fields": {**signed["application"]["fields"], "income": "0"}}
    _submit(w, signed)
    _submit(w, sign_application(_card(w, signer), _form(w, victim, fields={"my_number": signer["my_number"]})))
    card = _card(w, lost)
    w.step(lambda now: w.jpki.revoke_card(card, now))
    _submit(w, sign_application(card, _form(w, lost)))
    seen = _ids(_fetch(w))
    assert ("EAPP-001", "allow", None) in seen
    assert ("EAPP-001", "deny", "Security.BadSignature") in seen
    assert ("EAPP-001", "deny", "Security.SenderMismatch") in seen
    assert ("EAPP-001", "deny", "Security.RevokedCertificate") in seen
    assert len(w.e_app.terminal_files()) == 1
    dropped = w.stores["tsukuba"].execute("SELECT COUNT(*) FROM eapp_dropped").fetchone()[0]
    assert dropped == 3


def test_the_number_comes_from_the_chip_and_must_be_the_signers(eapp_world: EappWorld) -> None:
    w = eapp_world
    typed = _submit(w, sign_application(_card(w, w.residents[0]), _form(w, w.residents[0], my_number_source="typed")))
    assert typed.refusal is not None and typed.refusal.control_id == "EAPP-002"
    other = _form(w, w.residents[1], fields={"my_number": w.residents[2]["my_number"]})
    assert _submit(w, sign_application(_card(w, w.residents[1]), other)).refusal is None
    assert ("EAPP-002", "deny", "Security.SenderMismatch") in _ids(_fetch(w))


def test_forms_take_only_their_own_fields_and_attachments(eapp_world: EappWorld) -> None:
    w = eapp_world
    person = w.residents[0]
    for bad in (
        _form(w, person, fields={"care_needs": "要介護2"}),
        _form(w, person, attachments=["photo"]),
        _form(w, person, procedure="child_allowance"),
    ):
        refused = _submit(w, sign_application(_card(w, person), bad))
        assert refused.refusal is not None and refused.refusal.control_id == "EAPP-003"
    assert w.stores["eapp_service"].execute("SELECT COUNT(*) FROM eapp_outbox").fetchone()[0] == 0


def test_fetch_only_over_lgwan_and_sealed_to_the_city(eapp_world: EappWorld) -> None:
    w = eapp_world
    person = w.residents[0]
    _submit(w, sign_application(_card(w, person), _form(w, person)))
    _fetch(w)
    delivery = next(m for m, _ in w.delivered if m.envelope.type == MessageType.EAPP_DELIVERY)
    assert delivery.network == "lgwan" and delivery.sealed_for == w.e_app.party
    assert person["my_number"] not in delivery.wire
    # The same signed request sent by a misconfigured terminal over the internet is refused by the service.
    result = Result()
    w.e_app.send(result, MessageType.EAPP_FETCH, w.service.party, w.tick(), body={"municipality": "tsukuba"})
    message: Outgoing = result.outgoing[0]
    refused = w.service.handle(message.wire, Link(w.e_app.party, "internet"), w.tick())
    assert refused.refusal is not None and refused.refusal.control_id == "EAPP-005"
    viewer = w.staff(w.e_app.staff, "eapp-clerk")
    assert w.step(lambda now: w.e_app.fetch(viewer, now))[0].refusal is not None


def test_import_links_by_atena_number_erases_the_terminal_and_pull_is_the_only_way_out(eapp_world: EappWorld) -> None:
    w = eapp_world
    person = w.residents[0]
    _submit(w, sign_application(_card(w, person), _form(w, person)))
    _fetch(w)
    session = w.staff(w.e_app.staff, "eapp-dl")
    imported, _ = w.step(lambda now: w.e_app.import_to_core(session, now))
    assert ("EAPP-004", "allow", None) in _ids(imported.decisions)
    assert ("EAPP-006", "allow", None) in _ids(imported.decisions)
    assert w.e_app.terminal_files() == []
    serial = imported.value[0]
    pulled, _ = w.step(lambda now: w.e_app.pull("tax", now))
    atena = w.registry.resident(person["resident_code"])["business_atena_number"]  # type: ignore[index]
    assert [(a["serial"], a["atena_number"]) for a in pulled.value] == [(serial, atena)]
    assert "my_number" in pulled.value[0]["fields"] and "resident_code" not in pulled.value[0]["fields"]
    for refused in (
        w.step(lambda now: w.e_app.push(serial, "tax", now))[0],
        w.step(lambda now: w.e_app.enrich(serial, "tax", now))[0],
    ):
        assert refused.refusal is not None and refused.refusal.control_id == "EAPP-004"


def test_leftovers_fail_the_day_end_check_and_media_disposal_needs_approval(eapp_world: EappWorld) -> None:
    w = eapp_world
    person = w.residents[0]
    _submit(w, sign_application(_card(w, person), _form(w, person)))
    _fetch(w)
    assert w.step(lambda now: w.e_app.terminal_check(now))[0].refusal is None  # same day: still being handled
    w.tick(timedelta(days=1))
    late = w.step(lambda now: w.e_app.terminal_check(now))[0]
    assert late.refusal is not None and late.refusal.control_id == "EAPP-006"
    clerk, admin = w.staff(w.e_app.staff, "eapp-dl"), w.staff(w.e_app.staff, "eapp-admin")
    assert w.step(lambda now: w.e_app.dispose_media(clerk, "usb-1", None, now))[0].refusal is not None
    assert w.step(lambda now: w.e_app.dispose_media(admin, "usb-1", admin, now))[0].refusal is not None  # self
    assert w.step(lambda now: w.e_app.dispose_media(clerk, "usb-1", admin, now))[0].refusal is None


def test_a_resubmission_is_a_new_version_and_only_the_latest_is_decided(eapp_world: EappWorld) -> None:
    w = eapp_world
    person = w.residents[0]
    session = w.staff(w.e_app.staff, "eapp-dl")
    serials = []
    for income in ("100", "120"):
        _submit(w, sign_application(_card(w, person), _form(w, person, fields={"income": income})))
        _fetch(w)
        serials += w.step(lambda now: w.e_app.import_to_core(session, now))[0].value
    assert [q["version"] for q in w.e_app.review_queue()] == [2]
    reviewer = w.staff(w.e_app.staff, "eapp-admin")
    old = w.step(lambda now: w.e_app.review(reviewer, serials[0], "approved", now))[0]
    assert old.refusal is not None and old.refusal.control_id == "EAPP-007"
    assert w.step(lambda now: w.e_app.review(reviewer, serials[1], "approved", now))[0].refusal is None
    pulled = w.step(lambda now: w.e_app.pull("tax", now))[0].value
    assert [(a["serial"], a["fields"]["income"]) for a in pulled] == [(serials[1], "120")]


def test_without_a_claimed_erasure_the_terminal_keeps_copies_but_nothing_is_moved_twice(
    eapp_world: EappWorld,
) -> None:
    w = eapp_world
    w.e_app.rules = w.e_app.rules.model_copy(update={"terminal_erasure": None})
    person = w.residents[0]
    _submit(w, sign_application(_card(w, person), _form(w, person)))
    _fetch(w)
    session = w.staff(w.e_app.staff, "eapp-dl")
    first = w.step(lambda now: w.e_app.import_to_core(session, now))[0]
    again = w.step(lambda now: w.e_app.import_to_core(session, now))[0]
    assert len(first.value) == 1 and again.value == [] and again.refusal is None
    assert len(w.e_app.terminal_files()) == 1
    assert "EAPP-006" not in {d.control_id for d in first.decisions}


def test_a_malformed_submission_is_refused_and_names_the_field(eapp_world: EappWorld) -> None:
    w = eapp_world
    person = w.residents[0]
    signed = sign_application(_card(w, person), _form(w, person))
    broken = {**signed, "application": {k: v for k, v in signed["application"].items() if k != "serial"}}
    refused = _submit(w, broken)
    assert refused.refusal is not None and refused.refusal.field == "serial"
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    assert _submit(w, unsigned).refusal is not None
    assert _submit(w, {}).refusal is not None


def test_a_signature_that_does_not_parse_is_dropped_not_raised(eapp_world: EappWorld) -> None:
    w = eapp_world
    person = w.residents[0]
    signed = sign_application(_card(w, person), _form(w, person))
    _submit(w, {**signed, "signature": "***not base64***", "chain": ["AAAA"]})
    seen = _ids(_fetch(w))
    assert ("EAPP-001", "deny", "Security.MalformedMessage") in seen
    assert w.e_app.terminal_files() == []
