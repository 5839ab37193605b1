"""Counts of the bare cryptographic operations this process has performed (署名・検証・鍵共有・暗号化の回数).

The round-trip benchmark reads these to learn exactly how many ECDSA, ECDH, key-wrap and AES-GCM operations
one message exchange costs, so it can compare the whole exchange against the floor of those operations alone.
This module must never perform or skip cryptography; it only counts what ``simulator.crypto`` did.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields

__all__ = ["COUNTERS", "CryptoCounters", "reset", "snapshot"]


@dataclass
class CryptoCounters:
    """Operation counts. Every count is one attempted operation, whatever its outcome.

    ``chain_verifies`` and ``crl_verifies`` are ECDSA verifications of certificate and CRL signatures
    (``TrustStore`` caches the former per chain and the latter per CRL, so they are rare after warm-up);
    ``verifies`` are JWS signature verifications. ``key_generations`` are ephemeral EC key pairs (ECDH-ES),
    ``key_agreements`` are ECDH exchanges, ``key_wraps`` are AES key wraps or unwraps, ``aead_ops`` are
    AES-GCM encryptions or decryptions.
    """

    signs: int = 0
    verifies: int = 0
    chain_verifies: int = 0
    crl_verifies: int = 0
    key_generations: int = 0
    key_agreements: int = 0
    key_wraps: int = 0
    aead_ops: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def add(
        self,
        *,
        signs: int = 0,
        verifies: int = 0,
        chain_verifies: int = 0,
        crl_verifies: int = 0,
        key_generations: int = 0,
        key_agreements: int = 0,
        key_wraps: int = 0,
        aead_ops: int = 0,
    ) -> None:
        """Add to the counts under a lock, so threaded drivers do not lose increments."""
        with self._lock:
            self.signs += signs
            self.verifies += verifies
            self.chain_verifies += chain_verifies
            self.crl_verifies += crl_verifies
            self.key_generations += key_generations
            self.key_agreements += key_agreements
            self.key_wraps += key_wraps
            self.aead_ops += aead_ops

    def snapshot(self) -> CryptoCounters:
        """A detached copy of the current counts."""
        with self._lock:
            return CryptoCounters(**self.as_dict())

    def reset(self) -> None:
        """Set every count back to zero."""
        with self._lock:
            for name in self.as_dict():
                setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        """The counts by name (no lock: callers wanting a consistent view use ``snapshot()``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def __sub__(self, other: CryptoCounters) -> CryptoCounters:
        """Counts performed between two snapshots: ``after - before``."""
        mine, theirs = self.as_dict(), other.as_dict()
        return CryptoCounters(**{name: mine[name] - theirs[name] for name in mine})


#: The process-wide counts that ``simulator.crypto`` increments.
COUNTERS = CryptoCounters()


def snapshot() -> CryptoCounters:
    """A detached copy of the process-wide counts."""
    return COUNTERS.snapshot()


def reset() -> None:
    """Zero the process-wide counts."""
    COUNTERS.reset()
