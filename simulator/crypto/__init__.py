"""Message security: a simulated LGPKI, signed envelopes (JWS), sealed payloads (JWE) and a replay guard.

Everything here is real cryptography through maintained libraries (``cryptography``, ``joserfc``).
This package must never decide business permissions; it only proves who sent what to whom, and hides it.
"""

from simulator.crypto.counters import COUNTERS, CryptoCounters
from simulator.crypto.envelope import MessageSecurity
from simulator.crypto.pki import CertificateAuthority, Credential, TrustStore, fingerprint, party_id_of
from simulator.crypto.replay import ReplayGuard

__all__ = [
    "COUNTERS",
    "CertificateAuthority",
    "Credential",
    "CryptoCounters",
    "MessageSecurity",
    "ReplayGuard",
    "TrustStore",
    "fingerprint",
    "party_id_of",
]
