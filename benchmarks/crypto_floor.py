"""The floor under a message round trip: the bare primitives (ECDSA P-256, ECDH, AES key wrap, AES-GCM) timed
with ``cryptography`` alone, in the counts ``simulator.crypto.counters`` recorded for the same work.

Run ``python -m benchmarks.crypto_floor`` for per-operation rates and one measured round trip against its floor.
This module must never time jukisim code inside ``floor_seconds``: the floor is what the operations alone cost.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

__all__ = ["OPERATIONS", "floor_seconds", "per_operation_seconds"]

#: The counter names, in the order they are timed. Certificate and CRL signature checks are ECDSA verifies.
OPERATIONS = (
    "signs",
    "verifies",
    "chain_verifies",
    "crl_verifies",
    "key_generations",
    "key_agreements",
    "key_wraps",
    "aead_ops",
)


class _Material:
    """Keys and data prepared outside the timed region, sized like one jukisim message."""

    def __init__(self, payload_bytes: int) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public = self.key.public_key()
        self.peer = ec.generate_private_key(ec.SECP256R1()).public_key()
        self.message = os.urandom(payload_bytes)
        self.signature = self.key.sign(self.message, ec.ECDSA(hashes.SHA256()))
        self.kek = os.urandom(32)
        self.cek = os.urandom(32)
        self.wrapped = aes_key_wrap(self.kek, self.cek)
        self.nonce = os.urandom(12)
        self.aad = os.urandom(64)
        self.ciphertext = AESGCM(self.cek).encrypt(self.nonce, self.message, self.aad)


def _operations(m: _Material) -> dict[str, Callable[[int], object]]:
    """One callable per counter; the argument alternates the direction of symmetric operations."""

    def sign(_: int) -> object:
        return m.key.sign(m.message, ec.ECDSA(hashes.SHA256()))

    def verify(_: int) -> object:
        m.public.verify(m.signature, m.message, ec.ECDSA(hashes.SHA256()))
        return None

    def generate(_: int) -> object:
        return ec.generate_private_key(ec.SECP256R1())

    def agree(_: int) -> object:
        return m.key.exchange(ec.ECDH(), m.peer)

    def wrap(i: int) -> object:
        return aes_key_wrap(m.kek, m.cek) if i % 2 == 0 else aes_key_unwrap(m.kek, m.wrapped)

    def aead(i: int) -> object:
        cipher = AESGCM(m.cek)  # a fresh content key per message, so the key schedule is part of the cost
        if i % 2 == 0:
            return cipher.encrypt(m.nonce, m.message, m.aad)
        return cipher.decrypt(m.nonce, m.ciphertext, m.aad)

    return {
        "signs": sign,
        "verifies": verify,
        "chain_verifies": verify,
        "crl_verifies": verify,
        "key_generations": generate,
        "key_agreements": agree,
        "key_wraps": wrap,
        "aead_ops": aead,
    }


def _count(counts: object, name: str) -> int:
    if isinstance(counts, Mapping):
        return int(counts.get(name, 0))
    return int(getattr(counts, name, 0))


def floor_seconds(counts: object, repeat: int = 5, payload_bytes: int = 1024) -> float:
    """Seconds the bare operations in ``counts`` take: the best of ``repeat`` runs.

    ``counts`` is a ``CryptoCounters`` (or any object or mapping with the same names). ECDSA signs and verifies
    run over ``payload_bytes`` of data; AES-GCM encrypts or decrypts ``payload_bytes``. Key wraps and AEAD
    operations alternate between the two directions, as a round trip does.
    """
    if repeat < 1:
        raise ValueError("repeat: must be at least 1")
    material = _Material(payload_bytes)
    operations = _operations(material)
    plan = [(operations[name], _count(counts, name)) for name in OPERATIONS]
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        for operation, n in plan:
            for i in range(n):
                operation(i)
        best = min(best, time.perf_counter() - start)
    return best


def per_operation_seconds(iterations: int = 2000, repeat: int = 5, payload_bytes: int = 1024) -> dict[str, float]:
    """Best-of-``repeat`` seconds per single operation, for each counter name."""
    return {
        name: floor_seconds({name: iterations}, repeat, payload_bytes) / iterations
        for name in OPERATIONS
        if name not in ("chain_verifies", "crl_verifies")  # the same primitive as "verifies"
    }


def _round_trips(n: int) -> tuple[float, object]:
    """Time ``n`` full query/reply exchanges through ``simulator.crypto``; return seconds and the counts spent."""
    from simulator.crypto import COUNTERS, CertificateAuthority, MessageSecurity, ReplayGuard, TrustStore
    from simulator.model.envelope import Envelope, MessageType
    from simulator.store.db import connect

    start = datetime(2026, 4, 1, tzinfo=UTC)
    ca = CertificateAuthority.create("bench", start)
    trust = TrustStore(ca.root_certificate, lambda: ca.crl(start))

    def party(party_id: str) -> MessageSecurity:
        guard = ReplayGuard(connect(":memory:"), timedelta(minutes=10))
        return MessageSecurity(ca.issue(party_id, party_id, start), trust, guard)

    requester, provider = party("requester.ms"), party("provider.ms")
    secret = {"items": [{"氏名": "山田 太郎", "続柄": "世帯主", "pad": "x" * 900}]}

    def envelope(sender: str, recipient: str, sealed: str | None = None) -> Envelope:
        return Envelope(
            id=uuid.uuid4().hex,
            type=MessageType.PROVISION_REPLY if sealed else MessageType.QUERY,
            sender=sender,
            recipient=recipient,
            issued_at=start,
            nonce=secrets.token_hex(16),
            sealed=sealed,
        )

    def exchange() -> None:
        query = requester.sign(envelope("requester.ms", "provider.ms"))
        _, requester_certificate = provider.verify_with_sender(query, start)
        sealed = provider.seal(secret, requester_certificate)
        reply = provider.sign(envelope("provider.ms", "requester.ms", sealed))
        requester.unseal(requester.verify(reply, start).sealed or "")

    exchange()  # warm the chain and CRL caches, as a long-running server has them
    before = COUNTERS.snapshot()
    began = time.perf_counter()
    for _ in range(n):
        exchange()
    elapsed = time.perf_counter() - began
    return elapsed, COUNTERS.snapshot() - before


def main() -> None:
    """Print per-operation rates, then one measured batch of round trips against the floor of its counts."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=2000, help="operations per primitive")
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    parser.add_argument("--round-trips", type=int, default=500, help="query/reply exchanges to measure")
    args = parser.parse_args()

    print(f"bare primitives, 1 KiB payloads, best of {args.repeat} × {args.iterations}:")
    for name, seconds in per_operation_seconds(args.iterations, args.repeat).items():
        print(f"  {name:<16} {1 / seconds:>12,.0f} ops/s  {seconds * 1e6:>8.1f} µs/op")

    elapsed, counts = _round_trips(args.round_trips)
    floor = floor_seconds(counts, args.repeat)
    print(f"\n{args.round_trips} round trips (query signed+verified; reply sealed, signed, verified, unsealed):")
    print(f"  counts       {counts}")
    print(f"  measured     {elapsed:.3f} s  ({args.round_trips / elapsed:,.0f} round trips/s)")
    print(f"  floor        {floor:.3f} s  ({args.round_trips / floor:,.0f} round trips/s)")
    print(f"  overhead     ×{elapsed / floor:.2f} the bare operations")


if __name__ == "__main__":
    main()
