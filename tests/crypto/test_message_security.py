"""Signed envelopes and sealed payloads: each control has an allowed case and refused cases.

CHUKAN-013 (signature, tampering, replay, staleness), NET-003 (certificates, sender identity), NWS-004
(recipient), CHUKAN-012 (sealed payloads).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from simulator.crypto import COUNTERS, CertificateAuthority, MessageSecurity, ReplayGuard, TrustStore
from simulator.errors import InputError, Refusal, RefusalCode
from simulator.model.envelope import Envelope
from simulator.store.db import connect

from .conftest import T0, Clock, PartyFactory, b64url, forge, make_envelope, x5c_of

LATER = T0 + timedelta(seconds=2)


def refused(receiver: MessageSecurity, wire: Any, code: RefusalCode, control: str) -> Refusal:
    with pytest.raises(Refusal) as caught:
        receiver.verify(wire, LATER)
    refusal = caught.value
    assert refusal.code is code, refusal
    assert refusal.control_id == control
    assert refusal.component == receiver.party_id
    assert refusal.reason_ja and refusal.reason_en
    return refusal


def payload_of(envelope: Envelope) -> dict[str, Any]:
    return envelope.model_dump(mode="json")


class TestSignature:
    def test_round_trip(self, party: PartyFactory) -> None:
        city, nws = party("city-a"), party("nws")
        envelope = make_envelope("city-a", "nws")
        wire = city.sign(envelope)
        header = json.loads(base64.urlsafe_b64decode(wire.split(".")[0] + "=="))
        assert header["alg"] == "ES256" and header["typ"] == "jukisim+jws"
        assert header["kid"] == city.credential.fingerprint and len(header["x5c"]) == 2
        received, certificate = nws.verify_with_sender(wire, LATER)
        assert received == envelope
        assert certificate == city.credential.certificate

    def test_tampered_payload_byte(self, party: PartyFactory) -> None:
        city, nws = party("city-a"), party("nws")
        envelope = make_envelope("city-a", "nws")
        wire = city.sign(envelope)
        head, body, signature = wire.split(".")
        payload = base64.urlsafe_b64decode(body + "==")
        tampered = payload.replace("児童手当".encode(), "生活保護".encode())
        assert tampered != payload
        refused(nws, f"{head}.{b64url(tampered)}.{signature}", RefusalCode.BAD_SIGNATURE, "CHUKAN-013")
        flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
        refused(nws, f"{head}.{body}.{flipped}", RefusalCode.BAD_SIGNATURE, "CHUKAN-013")
        # A forgery does no replay bookkeeping: the genuine message with the same id is still accepted.
        assert nws.verify(wire, LATER) == envelope

    def test_signature_by_another_key_for_the_same_certificate(
        self, party: PartyFactory, ca: CertificateAuthority
    ) -> None:
        city, nws = party("city-a"), party("nws")
        thief_key = ca.issue("thief", "盗人", T0).private_key
        wire = forge(city.credential, payload_of(make_envelope("city-a", "nws")), signing_key=thief_key)
        refused(nws, wire, RefusalCode.BAD_SIGNATURE, "CHUKAN-013")

    def test_unsigned_or_wrong_algorithm_refused(self, party: PartyFactory) -> None:
        city, nws = party("city-a"), party("nws")
        payload = b64url(json.dumps(payload_of(make_envelope("city-a", "nws"))).encode())
        header = {"typ": "jukisim+jws", "kid": city.credential.fingerprint, "x5c": x5c_of(city.credential)}
        none_header = b64url(json.dumps({"alg": "none", **header}).encode())
        refused(nws, f"{none_header}.{payload}.", RefusalCode.BAD_SIGNATURE, "CHUKAN-013")
        # HS256 keyed with the sender's public key: the classic algorithm-confusion forgery.
        hs_header = b64url(json.dumps({"alg": "HS256", **header}).encode())
        public_pem = city.credential.certificate.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        mac = hmac.new(public_pem, f"{hs_header}.{payload}".encode(), hashlib.sha256).digest()
        refusal = refused(nws, f"{hs_header}.{payload}.{b64url(mac)}", RefusalCode.BAD_SIGNATURE, "CHUKAN-013")
        assert refusal.field == "alg"

    def test_sign_refuses_a_foreign_sender(self, party: PartyFactory) -> None:
        with pytest.raises(InputError) as caught:
            party("city-a").sign(make_envelope("city-b", "nws"))
        assert caught.value.field == "sender"


class TestMalformed:
    @pytest.mark.parametrize(
        "wire",
        [
            "",
            "garbage",
            "a.b",
            "a.b.c.d",
            "!!!.###.$$$",
            b64url(b"not json") + ".e30.c2ln",
            b64url(b"[1, 2]") + ".e30.c2ln",
            "日本語.テキスト.です",
            None,
            12345,
        ],
    )
    def test_garbage(self, party: PartyFactory, wire: Any) -> None:
        refused(party("nws"), wire, RefusalCode.MALFORMED_MESSAGE, "CHUKAN-013")

    def test_truncated(self, party: PartyFactory) -> None:
        city, nws = party("city-a"), party("nws")
        wire = city.sign(make_envelope("city-a", "nws"))
        refused(nws, wire.rsplit(".", 1)[0], RefusalCode.MALFORMED_MESSAGE, "CHUKAN-013")
        refused(nws, wire[: len(wire) // 3], RefusalCode.MALFORMED_MESSAGE, "CHUKAN-013")

    def test_oversized(self, party: PartyFactory) -> None:
        nws = party("nws")
        refused(nws, "a" * (1024 * 1024 + 1), RefusalCode.MALFORMED_MESSAGE, "CHUKAN-013")

    def test_validly_signed_but_not_an_envelope(self, party: PartyFactory) -> None:
        city, nws = party("city-a"), party("nws")
        refused(nws, forge(city.credential, b"not json at all"), RefusalCode.MALFORMED_MESSAGE, "CHUKAN-013")
        extra = {**payload_of(make_envelope("city-a", "nws")), "admin": True}
        assert refused(nws, forge(city.credential, extra), RefusalCode.MALFORMED_MESSAGE, "CHUKAN-013").field == "admin"
        naive = {**payload_of(make_envelope("city-a", "nws")), "issued_at": "2026-04-01T00:00:02"}
        refused(nws, forge(city.credential, naive), RefusalCode.MALFORMED_MESSAGE, "CHUKAN-013")

    @pytest.mark.parametrize(
        "change",
        [
            {"crit": ["exp"]},
            {"b64": False},
            {"jku": "https://attacker.example/keys"},
            {"typ": "JWT"},
            {"x5c": ["not base64 DER!"]},
            {"x5c": []},
            {"kid": "0" * 64},
        ],
    )
    def test_header_outside_the_profile(self, party: PartyFactory, change: dict[str, Any]) -> None:
        city, nws = party("city-a"), party("nws")
        header = {"alg": "ES256", "typ": "jukisim+jws", "kid": city.credential.fingerprint}
        header["x5c"] = x5c_of(city.credential)  # type: ignore[assignment]
        header.update(change)
        wire = forge(city.credential, payload_of(make_envelope("city-a", "nws")), header=header)
        refused(nws, wire, RefusalCode.MALFORMED_MESSAGE, "CHUKAN-013")


class TestCertificates:
    def test_untrusted_ca(self, party: PartyFactory) -> None:
        rogue_ca = CertificateAuthority.create("rogue", T0)
        impostor = party("city-a", credential=rogue_ca.issue("city-a", "A市", T0))
        refused(party("nws"), impostor.sign(make_envelope("city-a", "nws")), RefusalCode.UNKNOWN_CERTIFICATE, "NET-003")

    def test_revoked_even_for_messages_signed_before_revocation(
        self, party: PartyFactory, ca: CertificateAuthority, clock: Clock
    ) -> None:
        """Without a trusted timestamp a verifier cannot tell when a message was signed, so once the CRL lists the
        certificate every message under it is refused, including one signed before the revocation."""
        city, nws = party("city-a"), party("nws")
        before = city.sign(make_envelope("city-a", "nws"))
        early = city.sign(make_envelope("city-a", "nws"))
        assert nws.verify(early, LATER).sender == "city-a"
        clock.now = T0 + timedelta(minutes=1)
        ca.revoke(city.credential.certificate.serial_number, clock.now, x509.ReasonFlags.key_compromise)
        with pytest.raises(Refusal) as caught:
            nws.verify(before, T0 + timedelta(minutes=2))
        assert caught.value.code is RefusalCode.REVOKED_CERTIFICATE and caught.value.control_id == "NET-003"

    def test_expired(self, party: PartyFactory, ca: CertificateAuthority, clock: Clock) -> None:
        short = party("city-a", credential=ca.issue("city-a", "A市", T0, days=1))
        nws = party("nws")
        late = T0 + timedelta(days=1, minutes=1)
        clock.now = late
        wire = short.sign(make_envelope("city-a", "nws", issued_at=late))
        with pytest.raises(Refusal) as caught:
            nws.verify(wire, late)
        assert caught.value.code is RefusalCode.EXPIRED_CERTIFICATE and caught.value.control_id == "NET-003"

    def test_sender_mismatch(self, party: PartyFactory) -> None:
        attacker, nws = party("city-b"), party("nws")
        claim = payload_of(make_envelope("city-a", "nws"))
        wire = forge(attacker.credential, claim)  # a valid signature by city-b, claiming to be city-a
        refusal = refused(nws, wire, RefusalCode.SENDER_MISMATCH, "NET-003")
        assert refusal.field == "sender" and "city-b" in refusal.reason_en


class TestRouting:
    def test_wrong_recipient(self, party: PartyFactory) -> None:
        city, other = party("city-a"), party("city-c")
        wire = city.sign(make_envelope("city-a", "nws"))
        assert refused(other, wire, RefusalCode.WRONG_RECIPIENT, "NWS-004").field == "recipient"


class TestFreshnessAndReplay:
    def test_within_skew_accepted_outside_refused(self, party: PartyFactory) -> None:
        city, nws = party("city-a"), party("nws")
        for offset in (timedelta(minutes=-4, seconds=-58), timedelta(minutes=4, seconds=58)):
            nws.verify(city.sign(make_envelope("city-a", "nws", issued_at=LATER + offset)), LATER)
        for offset in (timedelta(minutes=-6), timedelta(minutes=6)):
            wire = city.sign(make_envelope("city-a", "nws", issued_at=LATER + offset))
            assert refused(nws, wire, RefusalCode.STALE_MESSAGE, "CHUKAN-013").field == "issued_at"

    def test_replay_same_id_and_same_nonce(self, party: PartyFactory) -> None:
        city, nws = party("city-a"), party("nws")
        first = make_envelope("city-a", "nws")
        wire = city.sign(first)
        nws.verify(wire, LATER)
        assert refused(nws, wire, RefusalCode.REPLAYED_MESSAGE, "CHUKAN-013").field == "id"
        same_nonce = city.sign(make_envelope("city-a", "nws", nonce=first.nonce))
        assert refused(nws, same_nonce, RefusalCode.REPLAYED_MESSAGE, "CHUKAN-013").field == "nonce"

    def test_replay_refused_after_restart(self, party: PartyFactory, tmp_path: Path, trust: TrustStore) -> None:
        city = party("city-a")
        db = tmp_path / "nws-world.sqlite"
        nws = party("nws", db=db)
        wire = city.sign(make_envelope("city-a", "nws"))
        nws.verify(wire, LATER)
        restarted = MessageSecurity(nws.credential, trust, ReplayGuard(connect(db), timedelta(minutes=10)))
        refused(restarted, wire, RefusalCode.REPLAYED_MESSAGE, "CHUKAN-013")

    def test_skew_cannot_exceed_replay_window(self, party: PartyFactory, trust: TrustStore, tmp_path: Path) -> None:
        nws = party("nws")
        guard = ReplayGuard(connect(tmp_path / "g.sqlite"), timedelta(minutes=1))
        with pytest.raises(InputError):
            MessageSecurity(nws.credential, trust, guard, max_skew=timedelta(minutes=5))


class TestSealing:
    def test_round_trip_to_the_sender_of_a_query(self, party: PartyFactory) -> None:
        requester, provider = party("city-a.ms"), party("city-b.ms")
        query = requester.sign(make_envelope("city-a.ms", "city-b.ms"))
        _, requester_certificate = provider.verify_with_sender(query, LATER)
        secret = {"氏名": "山田 太郎", "個人番号": "123456789018", "items": [1, 2.5, None, True]}
        sealed = provider.seal(secret, requester_certificate)
        header = json.loads(base64.urlsafe_b64decode(sealed.split(".")[0] + "=="))
        assert header["alg"] == "ECDH-ES+A256KW" and header["enc"] == "A256GCM" and header["cty"] == "json"
        assert header["kid"] == requester.credential.fingerprint
        assert "山田".encode() not in sealed.encode()
        assert requester.unseal(sealed) == secret
        reply = provider.sign(make_envelope("city-b.ms", "city-a.ms", sealed=sealed, body={}))
        assert requester.unseal(requester.verify(reply, LATER).sealed or "") == secret

    def test_other_party_cannot_unseal(self, party: PartyFactory) -> None:
        a, b, nws = party("city-a"), party("city-b"), party("nws")
        sealed = a.seal({"x": "秘密"}, b.credential.certificate)
        with pytest.raises(Refusal) as caught:
            nws.unseal(sealed)
        assert caught.value.code is RefusalCode.DECRYPTION_FAILED and caught.value.control_id == "CHUKAN-012"
        assert caught.value.component == "nws"
        # Relabelling the kid to the eavesdropper's own key does not help: the key agreement itself fails.
        head, *rest = sealed.split(".")
        header = json.loads(base64.urlsafe_b64decode(head + "=="))
        header["kid"] = nws.credential.fingerprint
        relabelled = ".".join([b64url(json.dumps(header).encode()), *rest])
        with pytest.raises(Refusal) as caught:
            nws.unseal(relabelled)
        assert caught.value.code is RefusalCode.DECRYPTION_FAILED

    @pytest.mark.parametrize("segment", [1, 2, 3, 4])
    def test_tampered_ciphertext(self, party: PartyFactory, segment: int) -> None:
        a, b = party("city-a"), party("city-b")
        parts = a.seal({"x": "秘密" * 20}, b.credential.certificate).split(".")
        raw = bytearray(base64.urlsafe_b64decode(parts[segment] + "=="))
        raw[len(raw) // 2] ^= 0x01
        parts[segment] = b64url(bytes(raw))
        with pytest.raises(Refusal) as caught:
            b.unseal(".".join(parts))
        assert caught.value.code is RefusalCode.DECRYPTION_FAILED

    @pytest.mark.parametrize(
        "change",
        [{"alg": "ECDH-ES"}, {"alg": "RSA-OAEP"}, {"enc": "A128CBC-HS256"}, {"zip": "DEF"}, {"crit": ["x"]}],
    )
    def test_algorithms_outside_the_profile(self, party: PartyFactory, change: dict[str, str]) -> None:
        a, b = party("city-a"), party("city-b")
        head, *rest = a.seal({"x": 1}, b.credential.certificate).split(".")
        header = {**json.loads(base64.urlsafe_b64decode(head + "==")), **change}
        with pytest.raises(Refusal) as caught:
            b.unseal(".".join([b64url(json.dumps(header).encode()), *rest]))
        assert caught.value.code is RefusalCode.DECRYPTION_FAILED

    @pytest.mark.parametrize("sealed", ["", "a.b.c.d.e", "x" * 10, None, "a" * (1024 * 1024 + 1)])
    def test_garbage(self, party: PartyFactory, sealed: Any) -> None:
        with pytest.raises(Refusal) as caught:
            party("city-b").unseal(sealed)
        assert caught.value.code is RefusalCode.DECRYPTION_FAILED

    def test_seal_input_errors(self, party: PartyFactory, ca: CertificateAuthority) -> None:
        a, b = party("city-a"), party("city-b")
        with pytest.raises(InputError):
            a.seal({"when": T0}, b.credential.certificate)
        with pytest.raises(InputError):
            a.seal(["not", "a", "dict"], b.credential.certificate)  # type: ignore[arg-type]
        with pytest.raises(InputError):
            a.seal({"x": 1}, ca.issuing_certificate)  # a CA certificate has no keyAgreement usage


def test_counts_of_one_round_trip(party: PartyFactory) -> None:
    requester, provider = party("city-a.ms"), party("city-b.ms")
    provider.verify(requester.sign(make_envelope("city-a.ms", "city-b.ms")), LATER)  # warm the chain cache
    requester.verify(provider.sign(make_envelope("city-b.ms", "city-a.ms")), LATER)
    before = COUNTERS.snapshot()
    query = requester.sign(make_envelope("city-a.ms", "city-b.ms"))
    _, requester_certificate = provider.verify_with_sender(query, LATER)
    sealed = provider.seal({"answer": "住民票関係情報"}, requester_certificate)
    reply = provider.sign(make_envelope("city-b.ms", "city-a.ms", sealed=sealed))
    requester.unseal(requester.verify(reply, LATER).sealed or "")
    spent = (COUNTERS.snapshot() - before).as_dict()
    assert spent == {
        "signs": 2,
        "verifies": 2,
        "chain_verifies": 0,
        "crl_verifies": 0,
        "key_generations": 1,
        "key_agreements": 2,
        "key_wraps": 2,
        "aead_ops": 2,
    }
