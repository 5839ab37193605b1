"""Shared fixtures for the message-security tests: one simulated PKI, parties, envelopes and a forger.

The forger builds JWS strings by hand, the way an attacker would, so that the tests can present what the
project's own ``sign`` refuses to make (foreign senders, other algorithms, odd headers).
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from simulator.crypto import CertificateAuthority, Credential, MessageSecurity, ReplayGuard, TrustStore
from simulator.model.envelope import Envelope, MessageType
from simulator.store.chain import canonical_json
from simulator.store.db import connect

JST = timezone(timedelta(hours=9), "JST")
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=JST)


class Clock:
    """A settable clock, so CRL publication follows the test's notion of now."""

    def __init__(self, now: datetime) -> None:
        self.now = now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("jukisim test", T0)


@pytest.fixture
def trust(ca: CertificateAuthority, clock: Clock) -> TrustStore:
    return TrustStore(ca.root_certificate, lambda: ca.crl(clock.now))


PartyFactory = Callable[..., MessageSecurity]


@pytest.fixture
def party(ca: CertificateAuthority, trust: TrustStore, tmp_path: Path) -> PartyFactory:
    """Make a party: a credential from ``ca`` (or the one given), its own SQLite replay table, trust."""

    def make(
        party_id: str,
        *,
        credential: Credential | None = None,
        db: Path | None = None,
        trust_store: TrustStore | None = None,
    ) -> MessageSecurity:
        cred = credential or ca.issue(party_id, f"{party_id} 組織", T0)
        conn = connect(db or tmp_path / f"{party_id}.sqlite")
        guard = ReplayGuard(conn, timedelta(minutes=10))
        return MessageSecurity(cred, trust_store or trust, guard)

    return make


def make_envelope(sender: str, recipient: str, issued_at: datetime = T0, **fields: Any) -> Envelope:
    data: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "type": MessageType.QUERY,
        "sender": sender,
        "recipient": recipient,
        "issued_at": issued_at,
        "nonce": secrets.token_hex(16),
        "body": {"事務": "児童手当", "items": ["住民票関係情報"]},
    }
    data.update(fields)
    return Envelope(**data)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def x5c_of(credential: Credential) -> list[str]:
    return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in credential.chain]


def forge(
    credential: Credential,
    payload: dict[str, Any] | bytes,
    *,
    header: dict[str, Any] | None = None,
    signing_key: ec.EllipticCurvePrivateKey | None = None,
) -> str:
    """An ES256 JWS compact built by hand (RFC 7515 §5.1 and RFC 7518 §3.4), with any header and payload."""
    protected = header or {
        "alg": "ES256",
        "typ": "jukisim+jws",
        "kid": credential.fingerprint,
        "x5c": x5c_of(credential),
    }
    body = payload if isinstance(payload, bytes) else canonical_json(payload).encode()
    signing_input = f"{b64url(json.dumps(protected).encode())}.{b64url(body)}".encode()
    der = (signing_key or credential.private_key).sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input.decode()}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
