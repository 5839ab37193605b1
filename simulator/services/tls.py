"""Mutual TLS between organisations' services, with certificates from the world's own PKI.

Each service serves with a certificate naming it (``{service}.jukisim.test``, plus the hosts it is reached on)
and each party connects with its own client certificate (CN and SAN URN = party id), so the receiving service
learns who connected from the TLS handshake, never from the message (団体ごとに通信回線を分離し、通信を暗号化).
TLS keys are separate from the parties' message-signing keys. This module must never decide what a party may
send; it only says who is on the other end of a connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulator.crypto.pki import CertificateAuthority, Credential, party_id_of
from simulator.services.topology import Topology
from simulator.services.world import now_jst
from simulator.world import World

__all__ = [
    "TlsMaterial",
    "client_context",
    "issue_tls",
    "peer_aware",
    "peer_party",
    "server_context",
]

TLS_DIR = ("keys", "tls")


class TlsMaterial:
    """Paths of one world's TLS files: the root CA, one server credential per service, one client per party."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir).joinpath(*TLS_DIR)
        self.ca_file = Path(data_dir) / "keys" / "ca" / "root.crt.pem"

    def server(self, service: str) -> Path:
        return self.root / "servers" / service

    def client(self, party: str) -> Path:
        return self.root / "clients" / party

    def exists_for(self, topology: Topology) -> bool:
        """Every certificate is there, and each server's names the host it is now reached on."""
        if not all((self.client(p) / "chain.pem").exists() for s in topology.services for p in s.parties):
            return False
        for service in topology.services:
            path = self.server(service.name) / "chain.pem"
            if not path.exists():
                return False
            names = x509.load_pem_x509_certificates(path.read_bytes())[0].extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value
            hosts = {str(v) for v in names.get_values_for_type(x509.IPAddress)}
            hosts |= set(names.get_values_for_type(x509.DNSName))
            if service.host not in hosts or service.sni not in hosts:
                return False
        return True


def issue_tls(world: World, topology: Topology) -> TlsMaterial:
    """Issue and save a server certificate per service and a client certificate per party; save the CA."""
    material = TlsMaterial(world.data_dir)
    ca: CertificateAuthority = world.ca
    when = now_jst() - timedelta(hours=1)
    for service in topology.services:
        hosts = sorted({service.sni, "localhost", "127.0.0.1", service.host})
        cred = ca.issue_tls(
            f"service.{service.name}", service.organisation, when, server=True, client=False,
            parties=service.parties, hosts=hosts,
        )
        cred.save(material.server(service.name))
        for party in service.parties:
            ca.issue_tls(party, service.organisation, when, server=False, client=True, parties=[party]).save(
                material.client(party)
            )
    ca.save(world.data_dir / "keys" / "ca")
    return material


def server_context(material: TlsMaterial, service: str) -> ssl.SSLContext:
    """TLS 1.2+ server context; client certificates are optional at the handshake (the business API's terminals
    present none) and required by ``/messages``, which refuses a connection without one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    folder = material.server(service)
    context.load_cert_chain(folder / "chain.pem", folder / "key.pem")
    context.load_verify_locations(material.ca_file)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(material: TlsMaterial, party: str | None) -> ssl.SSLContext:
    """A client context trusting only the world's root; with ``party``, it presents that party's certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(material.ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if party is not None:
        folder = material.client(party)
        context.load_cert_chain(folder / "chain.pem", folder / "key.pem")
    return context


_PEERS: dict[str, str | None] = {}


def peer_party(pem: str) -> str | None:
    """The party a verified TLS client certificate authenticates: its CN, if it is a clientAuth certificate."""
    known = _PEERS.get(pem, "")
    if known != "":
        return known
    certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        party: str | None = party_id_of(certificate) if ExtendedKeyUsageOID.CLIENT_AUTH in usages else None
    except x509.ExtensionNotFound:
        party = None  # a message-signing certificate is not a TLS client identity
    if len(_PEERS) > 4096:
        _PEERS.clear()
    _PEERS[pem] = party
    return party


def load_credential(folder: Path) -> Credential:
    return Credential.load(folder)


ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


def peer_aware(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class that puts the verified client certificate into each request's scope, as the
    ASGI TLS extension does (``scope["extensions"]["tls"]["client_cert_chain"]``): uvicorn does not, yet."""

    class PeerAwareProtocol(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is None:
                return  # plain HTTP: the extension is absent, as the ASGI TLS spec says
            der = ssl_object.getpeercert(binary_form=True)
            tls: dict[str, Any] = {
                "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
                "tls_version": ssl_object.version(),
            }
            inner: ASGIApp = getattr(self, "app")  # noqa: B009 (set by uvicorn's __init__; untyped here)

            async def with_tls(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
                extensions = dict(scope.get("extensions") or {})
                extensions["tls"] = tls
                scope["extensions"] = extensions
                await inner(scope, receive, send)

            self.app = with_tls

    PeerAwareProtocol.__name__ = f"PeerAware{base.__name__}"
    return PeerAwareProtocol
