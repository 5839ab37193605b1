"""Key lifecycle mid-run: renewing a party's signing certificate and publishing it (鍵・証明書の更新).

The world's CA issues a new key and certificate for the party, the world keeps it on disk (so a reopened world
signs with it), the directory publishes it and the party's message security signs with it from then on.
Revocation is ``World.revoke``; verifying what arrived before a revocation is ``MessageSecurity.verify_logged``.
This module must never decide what a party may do, nor drop a certificate other than by the CA's revocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509

from simulator.crypto.envelope import MessageSecurity
from simulator.crypto.pki import CertificateAuthority, Credential

__all__ = ["renew_party"]


class _Directory(Protocol):
    def publish(self, party: str, certificate: x509.Certificate) -> None: ...


class _Party(Protocol):
    security: MessageSecurity


class _World(Protocol):
    ca: CertificateAuthority
    data_dir: Path

    @property
    def directory(self) -> _Directory: ...

    @property
    def components(self) -> Mapping[str, _Party]: ...


def renew_party(world: _World, party: str, now: datetime, *, days: int = 825) -> Credential:
    """Renew ``party``'s signing certificate at ``now`` and publish it; returns the new credential.

    The old certificate is not revoked: it stays valid until it expires, so messages already in flight still
    verify. Revoke it with ``World.revoke`` first if the old key is compromised.
    """
    security = world.components[party].security
    renewed = world.ca.renew(security.credential, now, days)
    # Keys and CA on disk first: a world reopened after a crash must sign with the certificate the directory shows.
    renewed.save(world.data_dir / "keys" / "parties" / party)
    world.ca.save(world.data_dir / "keys" / "ca")
    world.directory.publish(party, renewed.certificate)
    security.renew(renewed)
    return renewed
