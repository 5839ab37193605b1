"""Hostile input: real signed envelopes, permits and sealed payloads of one 情報照会, mutated by hypothesis (bit flips,
truncation, field swaps, re-signing with another organisation's key, downgraded algorithms, ``alg: none``, oversized
bodies, deep nesting, invalid UTF-8, wrong content types) and handed to the recipient component in-process and to
its service's ``POST /messages``. Every one must be refused with a stable code (HTTP 4xx, never 5xx, never an
uncaught exception) and leave no row in any business table; the decision log records the refusal.

Counts of what was tried and refused are printed at the end of the module (``-s``) and written as JSON to
``$JUKISIM_RELIABILITY_OUT`` when set. The long run is ``-m slow``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.components.base import Link
from simulator.controls.decision import Outcome
from simulator.errors import Refusal, RefusalCode
from simulator.services.sender import JOSE
from tests.reliability.conftest_hostile import (
    Captured,
    Hostile,
    audit_size,
    b64u,
    business_changes,
    es256,
    forge,
    header_for,
    hostile,
    unb64u,
)
from tests.services.conftest import query_body, template

__all__ = ["hostile", "template"]  # fixtures, imported so pytest finds them

CODES = {str(code) for code in RefusalCode}


@dataclass(frozen=True)
class Mutant:
    kind: str
    wire: bytes
    target: Captured
    content_type: str = JOSE
    http_only: bool = False


Draw = Callable[[st.SearchStrategy[Any]], Any]


def _segments(target: Captured) -> list[str]:
    return target.wire.split(".")


def _fresh(h: Hostile, envelope: dict[str, Any]) -> dict[str, Any]:
    """The same envelope with a new id, nonce and time, so the replay guard does not stop it before deeper checks."""
    return {**envelope, "id": uuid.uuid4().hex, "nonce": secrets.token_hex(16), "issued_at": h.clock.now.isoformat()}


def _payload(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _resign_as_sender(h: Hostile, target: Captured, envelope: dict[str, Any]) -> bytes:
    credential = h.credential(target.sender)
    return forge(header_for(credential), _payload(envelope), credential.private_key).encode()


def _other_party(h: Hostile, draw: Draw, target: Captured) -> str:
    organisation = h.credential(target.sender).organisation
    return str(draw(st.sampled_from([p for p in h.parties() if h.credential(p).organisation != organisation])))


def _deep(depth: int, kind: str) -> str:
    return '{"a":' * depth + "1" + "}" * depth if kind == "object" else "[" * depth + "]" * depth


# -- the kinds of mutation --------------------------------------------------------------------------------


def bit_flip(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    data = bytearray(target.wire.encode("ascii"))
    # Distinct positions: two flips of the same bit would give back the original wire.
    for at in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=3, unique=True)):
        data[at] ^= 1 << draw(st.integers(0, 7))
    return Mutant("bit_flip", bytes(data), target)


def certificate_flip(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    """Bits flipped inside the DER of an x5c certificate, with ``kid`` recomputed so the chain is parsed and checked."""
    header = target.header
    index = draw(st.integers(0, len(header["x5c"]) - 1))
    der = bytearray(base64.b64decode(header["x5c"][index]))
    for at in draw(st.lists(st.integers(0, len(der) - 1), min_size=1, max_size=3, unique=True)):
        der[at] ^= 1 << draw(st.integers(0, 7))
    x5c = list(header["x5c"])
    x5c[index] = base64.b64encode(bytes(der)).decode("ascii")
    leaf = base64.b64decode(x5c[0])
    header = {**header, "x5c": x5c, "kid": hashlib.sha256(leaf).hexdigest()}
    signing_input = f"{b64u(json.dumps(header).encode())}.{_segments(target)[1]}".encode("ascii")
    signature = es256(signing_input, h.credential(target.sender).private_key)
    return Mutant("certificate_flip", f"{signing_input.decode()}.{b64u(signature)}".encode(), target)


def truncation(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    wire = target.wire
    how = draw(st.sampled_from(["prefix", "drop_segment", "empty_signature", "segment_cut"]))
    if how == "prefix":
        return Mutant("truncation", wire[: draw(st.integers(0, len(wire) - 1))].encode(), target)
    parts = _segments(target)
    if how == "drop_segment":
        parts.pop(draw(st.integers(0, 2)))
    elif how == "empty_signature":
        parts[2] = ""
    else:
        index = draw(st.integers(0, 2))
        parts[index] = parts[index][: draw(st.integers(0, max(0, len(parts[index]) - 1)))]
    return Mutant("truncation", ".".join(parts).encode(), target)


_SWAPPABLE = ["id", "sender", "recipient", "nonce", "correlation_id", "type", "issued_at", "sealed"]


def field_swap(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    parts = _segments(target)
    how = draw(st.sampled_from(["swap_fields", "retarget", "swap_segments", "splice"]))
    if how == "swap_segments":
        i, j = draw(st.sampled_from([(0, 1), (1, 2), (0, 2)]))
        parts[i], parts[j] = parts[j], parts[i]
        return Mutant("field_swap", ".".join(parts).encode(), target)
    if how == "splice":  # header and signature of one real message, payload of another
        other = draw(st.sampled_from([c for c in h.captured if c is not target]))
        parts[1] = _segments(other)[1]
        return Mutant("field_swap", ".".join(parts).encode(), target)
    envelope = target.envelope
    if how == "swap_fields":
        a, b = draw(st.lists(st.sampled_from(_SWAPPABLE), min_size=2, max_size=2, unique=True))
        envelope[a], envelope[b] = envelope.get(b), envelope.get(a)
    else:
        envelope[draw(st.sampled_from(["recipient", "sender"]))] = draw(st.sampled_from(h.parties()))
        if envelope == target.envelope:
            envelope["body"] = {**envelope["body"], "x": 1}
    parts[1] = b64u(_payload(envelope))
    return Mutant("field_swap", ".".join(parts).encode(), target)


def resign_other(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    """Signed with a genuine key of another organisation, or with a key from a CA nobody here trusts."""
    envelope = _fresh(h, target.envelope)
    how = draw(st.sampled_from(["claims_sender", "as_itself", "rogue_ca"]))
    if how == "rogue_ca":
        credential = h.rogue.issue(target.sender, h.credential(target.sender).organisation,
                                   h.clock.now - timedelta(hours=1))
    else:
        credential = h.credential(_other_party(h, draw, target))
        if how == "as_itself":
            envelope["sender"] = credential.party_id
    wire = forge(header_for(credential), _payload(envelope), credential.private_key).encode()
    return Mutant("resign_other", wire, target)


_ALGORITHMS = ["HS256", "HS384", "HS512", "RS256", "PS256", "ES384", "ES512", "ES256K", "EdDSA", "es256", "ES256 "]


def alg_downgrade(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    header = {**target.header, "alg": draw(st.sampled_from(_ALGORITHMS))}
    signing_input = f"{b64u(json.dumps(header).encode())}.{_segments(target)[1]}".encode("ascii")
    if header["alg"].startswith("HS"):
        # Key confusion: an HMAC keyed with what every verifier knows, the sender's certificate.
        secret = base64.b64decode(header["x5c"][0])
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[header["alg"]]
        signature = hmac.new(secret, signing_input, digest).digest()
    elif draw(st.booleans()):
        signature = es256(signing_input, h.credential(target.sender).private_key)  # a genuine ES256 signature
    else:
        signature = draw(st.binary(min_size=0, max_size=128))
    return Mutant("alg_downgrade", f"{signing_input.decode()}.{b64u(signature)}".encode(), target)


def alg_none(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    header = {**target.header, "alg": draw(st.sampled_from(["none", "None", "NONE", "nOnE", ""]))}
    if draw(st.booleans()):
        header.pop("x5c")
        header.pop("kid")
    signature = draw(st.sampled_from(["", _segments(target)[2]]))
    envelope = _fresh(h, target.envelope) if draw(st.booleans()) else target.envelope
    wire = f"{b64u(json.dumps(header).encode())}.{b64u(_payload(envelope))}.{signature}"
    return Mutant("alg_none", wire.encode(), target)


def oversized(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    how = draw(st.sampled_from(["body", "header", "x5c_chain", "wire"]))
    credential = h.credential(_other_party(h, draw, target))
    if how == "body":
        envelope = _fresh(h, target.envelope)
        envelope["body"] = {**envelope["body"], "pad": "x" * draw(st.integers(800_000, 1_200_000))}
        return Mutant("oversized", forge(header_for(credential), _payload(envelope), credential.private_key).encode(),
                      target)
    if how == "header":
        header = {**target.header, "x5c": target.header["x5c"] + ["A" * draw(st.integers(20_000, 200_000))]}
        return Mutant("oversized", forge(header, unb64u(_segments(target)[1]), credential.private_key).encode(), target)
    if how == "x5c_chain":
        header = {**target.header, "x5c": target.header["x5c"] * draw(st.integers(3, 40))}
        return Mutant("oversized", forge(header, unb64u(_segments(target)[1]), credential.private_key).encode(), target)
    padding = b"A" * draw(st.integers(1024 * 1024 - len(target.wire) + 1, 2 * 1024 * 1024))
    return Mutant("oversized", target.wire.encode() + padding, target)


def deep_nesting(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    depth = draw(st.sampled_from([64, 500, 1000, 5000, 50_000]))
    shape = draw(st.sampled_from(["object", "array"]))
    where = draw(st.sampled_from(["header", "header_x5c", "payload", "body"]))
    credential = h.credential(_other_party(h, draw, target))
    if where == "header":
        return Mutant("deep_nesting", forge(_deep(depth, shape).encode(), unb64u(_segments(target)[1]),
                                            credential.private_key).encode(), target)
    if where == "header_x5c":
        raw = json.dumps({**target.header, "x5c": "@"}).replace('"@"', _deep(depth, shape)).encode()
        return Mutant("deep_nesting", forge(raw, unb64u(_segments(target)[1]), credential.private_key).encode(), target)
    if where == "payload":
        payload = _deep(depth, shape).encode()
    else:
        envelope = _fresh(h, target.envelope)
        payload = _payload({**envelope, "body": "@"}).replace(b'"@"', _deep(depth, shape).encode())
    return Mutant("deep_nesting", forge(header_for(credential), payload, credential.private_key).encode(), target)


_BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf", b"\xe2\x82", b"\x80"]


def invalid_utf8(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    bad = draw(st.sampled_from(_BAD_UTF8))
    where = draw(st.sampled_from(["wire", "header", "payload"]))
    if where == "wire":
        data = target.wire.encode()
        at = draw(st.integers(0, len(data)))
        return Mutant("invalid_utf8", data[:at] + bad + data[at:], target)
    credential = h.credential(_other_party(h, draw, target))
    envelope = _fresh(h, target.envelope)
    if where == "header":
        raw = json.dumps({**header_for(credential), "typ": "@"}).encode().replace(b"@", bad)
        return Mutant("invalid_utf8", forge(raw, _payload(envelope), credential.private_key).encode(), target)
    payload = _payload({**envelope, "correlation_id": "@"}).replace(b"@", bad)
    return Mutant("invalid_utf8", forge(header_for(credential), payload, credential.private_key).encode(), target)


_CONTENT_TYPES = ["application/json", "text/plain", "application/jwt", "application/jose+json",
                  "multipart/form-data; boundary=x", "", "application/x-www-form-urlencoded", "application/josex"]


def wrong_content_type(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    content_type = draw(st.sampled_from(_CONTENT_TYPES) | st.text(min_size=1, max_size=40).filter(
        lambda t: t.isascii() and t.isprintable() and t.split(";")[0].strip() != JOSE))
    return Mutant("wrong_content_type", target.wire.encode(), target, content_type=content_type, http_only=True)


def _mutate_inner(draw: Draw, inner: str) -> str:
    parts = inner.split(".")
    how = draw(st.sampled_from(["bit_flip", "truncate", "alg", "segment"]))
    if how == "bit_flip":
        data = bytearray(inner.encode("ascii"))
        data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 6))
        return data.decode("ascii")
    if how == "truncate":
        return inner[: draw(st.integers(0, len(inner) - 1))]
    if how == "alg":
        header = json.loads(unb64u(parts[0]))
        header[draw(st.sampled_from(["alg", "enc"]))] = draw(st.sampled_from(["none", "HS256", "dir", "A128GCM"]))
        parts[0] = b64u(json.dumps(header).encode())
        return ".".join(parts)
    index = draw(st.integers(0, len(parts) - 1))
    parts[index] = b64u(draw(st.binary(min_size=0, max_size=64)))
    return ".".join(parts)


def permit(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    """The 提供許可証 inside a provision request altered; the request itself re-signed by NWS (its real key)."""
    target = next(c for c in h.captured if c.message_type == "nws.provision_request")
    envelope = _fresh(h, target.envelope)
    inner = str(envelope["body"]["permit"])
    if draw(st.booleans()):
        inner = _mutate_inner(draw, inner)
    else:  # a permit "issued" by another party: genuine signature, wrong signer
        forger = h.credential(_other_party(h, draw, target))
        permit_envelope = {**_fresh(h, json.loads(unb64u(inner.split(".")[1]))), "sender": forger.party_id}
        inner = forge(header_for(forger), _payload(permit_envelope), forger.private_key)
    envelope["body"] = {**envelope["body"], "permit": inner}
    return Mutant("permit", _resign_as_sender(h, target, envelope), target)


def sealed_payload(h: Hostile, draw: Draw, target: Captured) -> Mutant:
    """The JWE carrying personal data altered; the envelope re-signed by its real sender. The target is the
    provider's answer to a query still open at the requester, so the requester gets as far as opening it."""
    target = h.held_back
    envelope = _fresh(h, target.envelope)
    envelope["sealed"] = _mutate_inner(draw, str(envelope["sealed"]))
    return Mutant("sealed_payload", _resign_as_sender(h, target, envelope), target)


KINDS: dict[str, Callable[[Hostile, Draw, Captured], Mutant]] = {
    f.__name__: f
    for f in (bit_flip, certificate_flip, truncation, field_swap, resign_other, alg_downgrade, alg_none, oversized,
              deep_nesting, invalid_utf8, wrong_content_type, permit, sealed_payload)
}
INPROC_KINDS = [k for k in KINDS if k != "wrong_content_type"]


def _mutant(h: Hostile, data: st.DataObject, kinds: list[str]) -> Mutant:
    kind = data.draw(st.sampled_from(kinds), label="kind")
    target = data.draw(st.sampled_from(h.captured), label="target")
    mutant = KINDS[kind](h, data.draw, target)
    return mutant


# -- the two paths ---------------------------------------------------------------------------------------


def check_inproc(h: Hostile, mutant: Mutant) -> None:
    target = mutant.target
    component = h.harness.world.component(target.recipient)
    network = component.directory.network_between(target.sender, target.recipient) or "lgwan"
    before = h.row_counts()
    h.clock.now = h.clock.now + timedelta(milliseconds=1)
    h.tally.tried[(mutant.kind, "inproc")] += 1
    # The service reads the body as ASCII with replacement characters; in-process gets the same text.
    result = component.handle(mutant.wire.decode("ascii", errors="replace"), Link(target.sender, network),
                              h.clock.now)
    assert result.refusal is not None, f"{mutant.kind} accepted by {target.recipient}"
    code = str(result.refusal.code)
    assert code in CODES and result.refusal.reason_en and result.refusal.reason_ja
    assert not result.outgoing, "a refused message must not cause any message"
    assert any(d.outcome is Outcome.DENY and d.code == code for d in result.decisions), "the refusal was not logged"
    assert business_changes(before, h.row_counts()) == {}
    h.tally.refused[(mutant.kind, "inproc")] += 1
    h.tally.codes[(mutant.kind, code)] += 1


def check_http(h: Hostile, mutant: Mutant) -> None:
    target = mutant.target
    before = h.row_counts()
    logged = audit_size(h)
    outbox = h.harness.contexts[target.service].driver.pending()
    h.clock.now = h.clock.now + timedelta(milliseconds=1)
    h.tally.tried[(mutant.kind, "http")] += 1
    client = h.harness.client(target.service)
    headers = {"x-test-client-cert": target.sender}
    if mutant.content_type:
        headers["content-type"] = mutant.content_type
    response = client.post("/messages", content=mutant.wire, headers=headers)
    h.tally.statuses[(mutant.kind, response.status_code)] += 1
    assert 400 <= response.status_code < 500, (mutant.kind, response.status_code, response.text[:500])
    body = response.json()
    assert body["status"] == "refused" and body["refusal"]["code"] in CODES, body
    # Refused by a component (not by HTTP framing) and not the kept verdict of the very same bytes: it is logged.
    if body["refusal"].get("component") and not body.get("duplicate"):
        assert audit_size(h) > logged, "the refusal was not logged"
    assert business_changes(before, h.row_counts()) == {}
    assert h.harness.contexts[target.service].driver.pending() == outbox, "a refused message caused a message"
    h.tally.refused[(mutant.kind, "http")] += 1
    h.tally.http_codes[(mutant.kind, body["refusal"]["code"])] += 1


FAST = settings(max_examples=50, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
SLOW = settings(FAST, max_examples=200, derandomize=False)


@FAST
@given(data=st.data())
def test_mutated_messages_are_refused_in_process(hostile: Hostile, data: st.DataObject) -> None:
    check_inproc(hostile, _mutant(hostile, data, INPROC_KINDS))


@FAST
@given(data=st.data())
def test_mutated_messages_are_refused_over_http(hostile: Hostile, data: st.DataObject) -> None:
    check_http(hostile, _mutant(hostile, data, list(KINDS)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", INPROC_KINDS)
@SLOW
@given(data=st.data())
def test_every_kind_is_refused_in_process(hostile: Hostile, kind: str, data: st.DataObject) -> None:
    check_inproc(hostile, _mutant(hostile, data, [kind]))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
@SLOW
@given(data=st.data())
def test_every_kind_is_refused_over_http(hostile: Hostile, kind: str, data: st.DataObject) -> None:
    check_http(hostile, _mutant(hostile, data, [kind]))


def test_the_captured_flow_is_complete(hostile: Hostile) -> None:
    """The mutations start from every hop of a real exchange, including a permit and sealed personal data."""
    types = [c.message_type for c in hostile.captured]
    assert "nws.provision_request" in types and any(c.envelope.get("sealed") for c in hostile.captured)


def test_a_forgery_does_not_take_the_inbox_verdict_of_the_genuine_message(hostile: Hostile) -> None:
    h = hostile
    api = h.harness.client("kurashiki")
    api.post("/ltc/queries", json=query_body(h.harness.population.movers[3]["ltc_atena_number"]))
    item = next(i for i in h.harness.contexts["kurashiki"].driver.pending() if i.recipient.startswith("platform."))
    service = h.harness.topology.service_of(item.recipient)
    assert service is not None
    parts = item.wire.split(".")
    envelope = {**json.loads(unb64u(parts[1])), "body": {"forged": True}}
    forged = ".".join([parts[0], b64u(_payload(envelope)), parts[2]])  # same id, someone else's body
    h.clock.now += timedelta(milliseconds=50)
    assert h.harness.post_message(service.name, forged, item.sender).status_code == 403
    h.harness.contexts["kurashiki"].driver.delivered([item.seq])
    assert h.harness.post_message(service.name, item.wire, item.sender).status_code == 202
    again = h.harness.post_message(service.name, item.wire, item.sender)  # its answer was lost: sent again
    assert again.status_code == 202 and again.json()["duplicate"], again.text


def test_the_world_still_works_after_the_mutations(hostile: Hostile) -> None:
    """Nothing the mutations did (they ran first, in this module's world) stopped the next real exchange."""
    h = hostile
    api = h.harness.client("kurashiki")
    person = h.harness.population.movers[2]["ltc_atena_number"]
    query_id = api.post("/ltc/queries", json=query_body(person)).json()["query_id"]
    held = h.held_back.message_id
    contexts = h.harness.contexts
    while batch := [(n, i) for n, ctx in contexts.items() for i in ctx.driver.pending() if i.message_id != held]:
        for name, item in batch:
            h.clock.now += timedelta(milliseconds=50)
            destination = h.harness.topology.service_of(item.recipient)
            assert destination is not None
            assert h.harness.post_message(destination.name, item.wire, item.sender).status_code == 202
            h.harness.contexts[name].driver.delivered([item.seq])
    assert api.get(f"/ltc/queries/{query_id}").json()["status"] == "provided"


def _der_flip(h: Hostile, data: st.DataObject) -> None:
    """Bits flipped in a presented certificate's DER, checked by message security alone (thousands per second)."""
    target = data.draw(st.sampled_from(h.captured), label="target")
    mutant = certificate_flip(h, data.draw, target)
    receiver = h.harness.world.component(target.recipient).security
    h.tally.tried[("certificate_der", "verify")] += 1
    with pytest.raises(Refusal) as refused:
        receiver.verify(mutant.wire.decode("ascii"), h.clock.now)
    assert str(refused.value.code) in CODES
    h.tally.refused[("certificate_der", "verify")] += 1
    h.tally.codes[("certificate_der", str(refused.value.code))] += 1


@settings(FAST, max_examples=300)
@given(data=st.data())
def test_certificate_der_flips_are_refused_by_message_security(hostile: Hostile, data: st.DataObject) -> None:
    _der_flip(hostile, data)


@pytest.mark.slow
@settings(SLOW, max_examples=5000)
@given(data=st.data())
def test_many_certificate_der_flips_are_refused_by_message_security(hostile: Hostile, data: st.DataObject) -> None:
    _der_flip(hostile, data)
