"""A simulated LGPKI-style PKI (地方公共団体組織認証基盤を模した認証局): root → issuing CA → parties.

Real EC P-256 keys and real X.509 certificates and CRLs, saved as PEM so a world's PKI survives a restart.
This module must never interpret messages or decide what a party may do; it only says who holds a key and
whether that certificate is genuine, in its validity period and not revoked (NET-003).
"""

from __future__ import annotations

import base64
import itertools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey

from simulator.crypto.counters import COUNTERS
from simulator.errors import InputError, Refusal, RefusalCode

__all__ = [
    "PARTY_URN_PREFIX",
    "CertificateAuthority",
    "Credential",
    "TrustStore",
    "fingerprint",
    "party_id_of",
    "utc",
]

#: SAN URI prefix naming the party a certificate belongs to.
PARTY_URN_PREFIX = "urn:jukisim:party:"
#: Control that every certificate refusal cites: 相互認証 (mutual authentication).
CERTIFICATE_CONTROL = "NET-003"

# A party id is the certificate CN (X.509 caps CN at 64 characters) and a URN segment, so keep it URN-safe.
_PARTY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_MAX_CHAIN = 4
# What decoding a certificate's key, names or extensions can raise when its DER loaded but its contents are bad;
# several of cryptography's x509 errors derive from Exception only, so they are named one by one.
_UNDECODABLE = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.InvalidVersion,
    x509.UnsupportedGeneralNameType,
)
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
_PARTY_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=True,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def utc(now: datetime, field_name: str = "now") -> datetime:
    """``now`` in UTC; a naive datetime is refused because certificate times are absolute instants."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise InputError(field_name, "must be timezone-aware (JST or UTC), not a naive datetime")
    return now.astimezone(UTC)


_FINGERPRINTS: dict[x509.Certificate, str] = {}


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint of the DER certificate, lowercase hex: the ``kid`` of JWS and JWE headers."""
    # Memoised: computing it re-encodes the DER (several µs), and every message asks for a few.
    known = _FINGERPRINTS.get(certificate)
    if known is None:
        known = certificate.fingerprint(hashes.SHA256()).hex()
        if len(_FINGERPRINTS) >= 4096:
            _FINGERPRINTS.clear()
        _FINGERPRINTS[certificate] = known
    return known


def party_id_of(certificate: x509.Certificate) -> str:
    """The party id a certificate names (its CN), or ``""`` when it names none."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str):
        return ""
    return names[0].value


def _organisation_of(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else ""


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ski(certificate: x509.Certificate) -> x509.SubjectKeyIdentifier:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _write_atomically(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Write via a temporary file and rename, so a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError(str(path), "must hold an EC P-256 private key (PKCS#8 PEM)")
    return key


def _same_key(key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> bool:
    return key.public_key() == certificate.public_key()


@dataclass(frozen=True)
class Credential:
    """One party's signing and key-agreement identity: private key, certificate chain (leaf, issuing CA)."""

    party_id: str
    organisation: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the leaf certificate (hex)."""
        return fingerprint(self.certificate)

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK (RFC 7517) with ``kid`` and ``x5c``, e.g. to publish in a directory."""
        jwk: dict[str, Any] = dict(ECKey.import_key(self.private_key.public_key()).as_dict(private=False))
        jwk["kid"] = self.fingerprint
        jwk["x5c"] = [_b64_der(c) for c in self.chain]
        return jwk

    def save(self, directory: Path | str) -> None:
        """Write ``key.pem`` (PKCS#8, unencrypted, mode 0600) and ``chain.pem`` (leaf, then issuing CA).

        The key is not password-protected: this is a simulator and the world directory is its key store.
        """
        target = Path(directory)
        _write_atomically(target / "key.pem", _key_pem(self.private_key), secret=True)
        _write_atomically(target / "chain.pem", b"".join(_cert_pem(c) for c in self.chain))

    @classmethod
    def load(cls, directory: Path | str) -> Credential:
        """Read what ``save`` wrote; the key must match the leaf certificate."""
        source = Path(directory)
        key = _load_key(source / "key.pem")
        chain = tuple(x509.load_pem_x509_certificates((source / "chain.pem").read_bytes()))
        if not chain or not _same_key(key, chain[0]):
            raise InputError(str(source / "chain.pem"), "leaf certificate must match key.pem")
        leaf = chain[0]
        return cls(party_id_of(leaf), _organisation_of(leaf), key, leaf, chain)


def _b64_der(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


class CertificateAuthority:
    """Root CA and issuing CA of one simulated world, the certificates it issued, and its revocations.

    Revocations live in the CRL itself: ``revoke`` publishes a new CRL at once, ``crl(now)`` republishes
    when the current one has reached its ``nextUpdate``. Private keys are saved as unencrypted PKCS#8 PEM
    (this is a simulator; the world directory plays the HSM).
    """

    def __init__(
        self,
        *,
        root_key: ec.EllipticCurvePrivateKey,
        root_certificate: x509.Certificate,
        issuing_key: ec.EllipticCurvePrivateKey,
        issuing_certificate: x509.Certificate,
        issued: dict[int, x509.Certificate],
        revoked: dict[int, tuple[datetime, x509.ReasonFlags]],
        crl: x509.CertificateRevocationList | None,
        crl_number: int,
        crl_validity: timedelta,
    ) -> None:
        self.root_key = root_key
        self.root_certificate = root_certificate
        self.issuing_key = issuing_key
        self.issuing_certificate = issuing_certificate
        self._issued = issued
        self._revoked = revoked
        self._crl = crl
        self._crl_number = crl_number
        self._crl_validity = crl_validity

    @property
    def name(self) -> str:
        """The CA's organisation name (O of the root certificate)."""
        return _organisation_of(self.root_certificate)

    @classmethod
    def create(
        cls,
        name: str,
        now: datetime,
        *,
        root_validity: timedelta = timedelta(days=20 * 365),
        issuing_validity: timedelta = timedelta(days=10 * 365),
        crl_validity: timedelta = timedelta(days=7),
    ) -> CertificateAuthority:
        """A new root CA (self-signed) and issuing CA (signed by the root), valid from ``now``, and a CRL.

        Validity defaults: root 20 years, issuing CA 10 years, each CRL 7 days.
        """
        start = utc(now)
        if not 1 <= len(name) <= 56:
            raise InputError("name", "must be 1 to 56 characters (it becomes the CA's O and CN)")
        if not timedelta(0) < issuing_validity <= root_validity:
            raise InputError("issuing_validity", "must be positive and no longer than root_validity")
        if crl_validity <= timedelta(0):
            raise InputError("crl_validity", "must be positive")
        root_key, issuing_key = _new_key(), _new_key()
        root_name = _name(f"{name} Root CA", name)
        root_certificate = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + root_validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_CA_KEY_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        issuing_certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} Issuing CA", name))
            .issuer_name(root_name)
            .public_key(issuing_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + issuing_validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_KEY_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuing_key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(root_certificate)),
                critical=False,
            )
            .sign(root_key, hashes.SHA256())
        )
        authority = cls(
            root_key=root_key,
            root_certificate=root_certificate,
            issuing_key=issuing_key,
            issuing_certificate=issuing_certificate,
            issued={},
            revoked={},
            crl=None,
            crl_number=0,
            crl_validity=crl_validity,
        )
        authority._publish(start)
        return authority

    def issue(self, party_id: str, organisation: str, now: datetime, days: int = 825) -> Credential:
        """A fresh EC P-256 key and certificate for one party (CN=party_id, O=organisation, SAN URN).

        The certificate never outlives the issuing CA: ``notAfter`` is capped at the issuing CA's.
        """
        start = utc(now)
        if not _PARTY_ID.fullmatch(party_id):
            raise InputError(
                "party_id", "must be 1–64 characters of A–Z a–z 0–9 . _ : - starting with a letter or digit"
            )
        if not 1 <= len(organisation) <= 64:
            raise InputError("organisation", "must be 1 to 64 characters")
        if days < 1:
            raise InputError("days", "must be at least 1")
        issuer = self.issuing_certificate
        if not issuer.not_valid_before_utc <= start < issuer.not_valid_after_utc:
            raise InputError("now", "the issuing CA is not valid at this time")
        key = _new_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(party_id, organisation))
            .issuer_name(issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(min(start + timedelta(days=days), issuer.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_PARTY_KEY_USAGE, critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(PARTY_URN_PREFIX + party_id)]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(issuer)), critical=False)
            .sign(self.issuing_key, hashes.SHA256())
        )
        self._issued[certificate.serial_number] = certificate
        return Credential(party_id, organisation, key, certificate, (certificate, issuer))

    def issue_tls(
        self,
        name: str,
        organisation: str,
        now: datetime,
        *,
        server: bool,
        client: bool,
        parties: Sequence[str] = (),
        hosts: Sequence[str] = (),
        days: int = 825,
    ) -> Credential:
        """A TLS certificate for mutual TLS between services (separate key from the party's signing key).

        ``client``/``server`` set the extended key usage (clientAuth, serverAuth); ``parties`` become SAN URNs
        (the party a client certificate authenticates, the parties a server hosts); ``hosts`` become SAN DNS
        names or IP addresses. No keyAgreement: this key cannot be a JWE recipient.
        """
        import ipaddress

        from cryptography.x509.oid import ExtendedKeyUsageOID

        start = utc(now)
        if not _PARTY_ID.fullmatch(name):
            raise InputError("name", "must be 1–64 characters of A–Z a–z 0–9 . _ : - starting with a letter or digit")
        if not (server or client):
            raise InputError("server", "a TLS certificate must allow serverAuth, clientAuth or both")
        usages = [oid for flag, oid in ((server, ExtendedKeyUsageOID.SERVER_AUTH),
                                        (client, ExtendedKeyUsageOID.CLIENT_AUTH)) if flag]
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(PARTY_URN_PREFIX + p) for p in parties]
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        if not names:
            raise InputError("hosts", "a TLS certificate needs at least one party or host name")
        issuer = self.issuing_certificate
        key = _new_key()
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name, organisation))
            .issuer_name(issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(min(start + timedelta(days=days), issuer.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(issuer)), critical=False)
            .sign(self.issuing_key, hashes.SHA256())
        )
        self._issued[certificate.serial_number] = certificate
        return Credential(name, organisation, key, certificate, (certificate, issuer))

    def renew(self, credential: Credential, now: datetime, days: int = 825) -> Credential:
        """A new key and certificate for the holder of ``credential`` (same party and organisation), from ``now``.

        The old certificate stays valid until it expires or is revoked: messages signed with it before then
        remain verifiable (``TrustStore.validate(..., signed_at=...)``). Publishing the new one is the caller's.
        """
        if credential.certificate.serial_number not in self._issued:
            raise InputError("credential", "was not issued by this CA, so it cannot be renewed here")
        return self.issue(credential.party_id, credential.organisation, now, days)

    def revocation(self, serial: int) -> datetime | None:
        """When ``serial`` was revoked (UTC), or None if it is not on the revocation list."""
        found = self._revoked.get(serial)
        return found[0] if found else None

    def issued(self) -> list[x509.Certificate]:
        """Every certificate this CA has issued, oldest first."""
        return sorted(self._issued.values(), key=lambda c: (c.not_valid_before_utc, c.serial_number))

    def is_revoked(self, serial: int) -> bool:
        """Whether ``serial`` is on this CA's revocation list."""
        return serial in self._revoked

    def revoke(
        self, serial: int, now: datetime, reason: x509.ReasonFlags = x509.ReasonFlags.unspecified
    ) -> x509.CertificateRevocationList:
        """Revoke a certificate this CA issued and publish a new CRL at once; a repeat changes nothing."""
        when = utc(now)
        if serial not in self._issued:
            raise InputError("serial", f"{serial:x} was not issued by this CA")
        if serial in self._revoked:
            return self.current_crl()
        self._revoked[serial] = (when, reason)
        return self._publish(when)

    def crl(self, now: datetime) -> x509.CertificateRevocationList:
        """The CRL in force at ``now``: the current one, or a new one if the current has reached nextUpdate.

        Use ``lambda: ca.crl(clock())`` as a ``TrustStore`` CRL source so the list never goes stale.
        """
        when = utc(now)
        current = self.current_crl()
        next_update = current.next_update_utc
        if next_update is not None and when >= next_update:
            return self._publish(when)
        return current

    def current_crl(self) -> x509.CertificateRevocationList:
        """The last CRL published, without republishing."""
        if self._crl is None:
            raise InputError("crl", "no CRL has been published yet")
        return self._crl

    def _publish(self, now: datetime) -> x509.CertificateRevocationList:
        # A CRL never moves backwards in time, even if a caller's clock lags the last publication.
        if self._crl is not None and now < self._crl.last_update_utc:
            now = self._crl.last_update_utc
        self._crl_number += 1
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.issuing_certificate.subject)
            .last_update(now)
            .next_update(now + self._crl_validity)
            .add_extension(x509.CRLNumber(self._crl_number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(self.issuing_certificate)),
                critical=False,
            )
        )
        for serial, (when, reason) in sorted(self._revoked.items()):
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            if reason is not x509.ReasonFlags.unspecified:  # RFC 5280 §5.3.1: omit rather than "unspecified"
                entry = entry.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        self._crl = builder.sign(self.issuing_key, hashes.SHA256())
        return self._crl

    def save(self, directory: Path | str) -> None:
        """Write the CA as PEM: ``root.key.pem``, ``root.crt.pem``, ``issuing.key.pem``, ``issuing.crt.pem``,
        ``crl.pem`` and ``issued/<serial>.crt.pem``. Keys are unencrypted PKCS#8 (mode 0600): no password,
        because this is a simulator and the world directory is its key store.

        Each file is replaced atomically; revocations are carried by ``crl.pem``.
        """
        target = Path(directory)
        _write_atomically(target / "root.key.pem", _key_pem(self.root_key), secret=True)
        _write_atomically(target / "root.crt.pem", _cert_pem(self.root_certificate))
        _write_atomically(target / "issuing.key.pem", _key_pem(self.issuing_key), secret=True)
        _write_atomically(target / "issuing.crt.pem", _cert_pem(self.issuing_certificate))
        for serial, certificate in self._issued.items():
            _write_atomically(target / "issued" / f"{serial:040x}.crt.pem", _cert_pem(certificate))
        _write_atomically(target / "crl.pem", self.current_crl().public_bytes(serialization.Encoding.PEM))

    @classmethod
    def load(cls, directory: Path | str) -> CertificateAuthority:
        """Read what ``save`` wrote, checking that keys match certificates and the CRL is the issuing CA's."""
        source = Path(directory)
        root_key = _load_key(source / "root.key.pem")
        root_certificate = x509.load_pem_x509_certificate((source / "root.crt.pem").read_bytes())
        issuing_key = _load_key(source / "issuing.key.pem")
        issuing_certificate = x509.load_pem_x509_certificate((source / "issuing.crt.pem").read_bytes())
        crl = x509.load_pem_x509_crl((source / "crl.pem").read_bytes())
        if not _same_key(root_key, root_certificate) or not _same_key(issuing_key, issuing_certificate):
            raise InputError(str(source), "a CA private key does not match its certificate")
        try:
            issuing_certificate.verify_directly_issued_by(root_certificate)
        except (ValueError, TypeError, InvalidSignature) as err:
            raise InputError(str(source / "issuing.crt.pem"), "must be signed by root.crt.pem") from err
        if crl.issuer != issuing_certificate.subject or not crl.is_signature_valid(issuing_key.public_key()):
            raise InputError(str(source / "crl.pem"), "must be signed by the issuing CA")
        issued: dict[int, x509.Certificate] = {}
        for path in sorted((source / "issued").glob("*.crt.pem")):
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
            issued[certificate.serial_number] = certificate
        revoked: dict[int, tuple[datetime, x509.ReasonFlags]] = {}
        for entry in crl:
            try:
                reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            except x509.ExtensionNotFound:
                reason = x509.ReasonFlags.unspecified
            revoked[entry.serial_number] = (entry.revocation_date_utc, reason)
        next_update = crl.next_update_utc
        if next_update is None:
            raise InputError(str(source / "crl.pem"), "must carry nextUpdate")
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        return cls(
            root_key=root_key,
            root_certificate=root_certificate,
            issuing_key=issuing_key,
            issuing_certificate=issuing_certificate,
            issued=issued,
            revoked=revoked,
            crl=crl,
            crl_number=number,
            crl_validity=next_update - crl.last_update_utc,
        )


@dataclass(frozen=True)
class _VerifiedPath:
    presented: tuple[x509.Certificate, ...]  # the chain as presented (certificates compare by DER)
    certificates: tuple[x509.Certificate, ...]  # leaf … root, every signature on it verified


def _refuse(code: RefusalCode, component: str, reason_ja: str, reason_en: str) -> Refusal:
    return Refusal(code, component=component, control_id=CERTIFICATE_CONTROL, reason_ja=reason_ja, reason_en=reason_en)


def _unknown(component: str, detail_ja: str, detail_en: str) -> Refusal:
    return _refuse(
        RefusalCode.UNKNOWN_CERTIFICATE,
        component,
        f"証明書を信頼できる認証局まで検証できません（{detail_ja}）。",
        f"The certificate could not be validated up to the trusted root CA ({detail_en}).",
    )


def _basic_constraints(certificate: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


class TrustStore:
    """Validates certificate chains against one trusted root and the current CRL.

    Chain signatures (the expensive ECDSA verifications) are cached per leaf fingerprint and presented chain;
    validity periods and revocation are checked on every call. A CRL whose ``nextUpdate`` has passed means
    revocation status is unknown, and the chain is refused (fail closed): give a source that republishes,
    such as ``lambda: ca.crl(clock())``, not a frozen ``ca.current_crl``, for runs longer than a CRL lives.
    A revoked certificate is refused for every message, also one signed before the revocation: without a
    trusted timestamp nobody can prove when a message was signed. Only a message taken from a log that fixes
    when it arrived (``signed_at``) is judged at that time (see ``simulator.crypto.lifecycle.verify_logged``).
    """

    def __init__(self, root_cert: x509.Certificate, crl_source: Callable[[], x509.CertificateRevocationList]) -> None:
        self.root_certificate = root_cert
        self._crl_source = crl_source
        # Keyed by the leaf certificate, which hashes and compares by its DER: the same as by its fingerprint.
        self._paths: dict[x509.Certificate, _VerifiedPath] = {}
        self._verified_crls: set[tuple[str, str]] = set()
        self._last_crl: tuple[x509.CertificateRevocationList, x509.Certificate, datetime | None] | None = None

    def validate(
        self,
        chain: Sequence[x509.Certificate],
        now: datetime,
        *,
        component: str,
        signed_at: datetime | None = None,
    ) -> x509.Certificate:
        """Return the leaf of ``chain`` (leaf first) if it is trusted at ``now``; otherwise raise ``Refusal``.

        ``component`` is the party doing the verifying; refusals name it (control NET-003). ``signed_at`` is for
        a message taken from a log that fixes when it was received (a trusted time): the certificates must have
        been valid then and the certificate not revoked by then, judged on the CRL in force at ``now``.
        """
        checked = utc(now)
        logged = utc(signed_at, "signed_at") if signed_at is not None else None
        when = logged or checked
        if when > checked:
            raise InputError("signed_at", "must not be later than now")
        if not chain or len(chain) > _MAX_CHAIN:
            raise _unknown(
                component, f"証明書チェーンは1〜{_MAX_CHAIN}枚", f"a chain has 1 to {_MAX_CHAIN} certificates"
            )
        presented = tuple(chain)
        path = self._paths.get(presented[0])
        if path is None or path.presented != presented:
            try:
                path = self._verify_path(presented, component)
            except _UNDECODABLE as err:
                # DER that loads but whose key, names or extensions do not decode (found by flipping bits in x5c).
                raise _unknown(
                    component, "証明書の内容を解釈できない", f"a certificate does not decode ({type(err).__name__})"
                ) from None
            if len(self._paths) >= 65536:
                self._paths.clear()
            self._paths[presented[0]] = path
        for certificate in path.certificates:
            if not certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc:
                raise _refuse(
                    RefusalCode.EXPIRED_CERTIFICATE,
                    component,
                    f"証明書「{certificate.subject.rfc4514_string()}」は有効期間外です"
                    f"（有効期間 {certificate.not_valid_before_utc:%Y-%m-%d %H:%M}〜"
                    f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC、"
                    f"検証時刻 {when:%Y-%m-%d %H:%M} UTC）。",
                    f"Certificate '{certificate.subject.rfc4514_string()}' is outside its validity period "
                    f"({certificate.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                    f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; "
                    f"checked at {when:%Y-%m-%d %H:%M} UTC).",
                )
        self._check_revocation(path.certificates[0], path.certificates[1], checked, component, signed_at=logged)
        return path.certificates[0]

    def _verify_path(self, presented: tuple[x509.Certificate, ...], component: str) -> _VerifiedPath:
        certificates = list(presented)
        # The root may be presented too; only our own copy of it is trusted.
        if presented[-1] == self.root_certificate:
            certificates.pop()
        if not certificates:
            raise _unknown(component, "ルート証明書は当事者の証明書ではない", "the root is not a party certificate")
        path = (*certificates, self.root_certificate)
        for depth, (child, parent) in enumerate(itertools.pairwise(path)):
            constraints, usage = _basic_constraints(parent), _key_usage(parent)
            if constraints is None or not constraints.ca or usage is None or not usage.key_cert_sign:
                raise _unknown(
                    component,
                    f"「{parent.subject.rfc4514_string()}」は認証局の証明書ではない",
                    f"'{parent.subject.rfc4514_string()}' is not a CA certificate",
                )
            if constraints.path_length is not None and depth > constraints.path_length:
                raise _unknown(component, "パス長制約違反", "path length constraint exceeded")
            COUNTERS.add(chain_verifies=1)
            try:
                child.verify_directly_issued_by(parent)
            except (ValueError, TypeError, InvalidSignature):
                raise _unknown(
                    component,
                    f"「{child.subject.rfc4514_string()}」の署名を発行者で検証できない",
                    f"the signature on '{child.subject.rfc4514_string()}' does not verify with its issuer",
                ) from None
        leaf = path[0]
        constraints, usage = _basic_constraints(leaf), _key_usage(leaf)
        if (constraints is not None and constraints.ca) or usage is None or not usage.digital_signature:
            raise _unknown(
                component,
                "当事者の署名用証明書ではない（CA証明書、またはdigitalSignatureなし）",
                "not a party signing certificate (a CA certificate, or no digitalSignature key usage)",
            )
        return _VerifiedPath(presented, path)

    def _check_crl_signature(
        self, crl: x509.CertificateRevocationList, issuer: x509.Certificate, component: str
    ) -> None:
        # The same CRL object twice in a row is the common case and costs nothing (see _check_revocation);
        # otherwise a CRL already verified is recognised by its fingerprint, and only a new one costs an ECDSA.
        key = (crl.fingerprint(hashes.SHA256()).hex(), fingerprint(issuer))
        if key in self._verified_crls:
            return
        COUNTERS.add(crl_verifies=1)
        issuer_key = issuer.public_key()
        genuine = isinstance(issuer_key, ec.EllipticCurvePublicKey) and crl.is_signature_valid(issuer_key)
        if not genuine:
            raise _unknown(component, "失効情報（CRL）の署名が不正", "the CRL signature does not verify")
        if len(self._verified_crls) >= 1024:
            self._verified_crls.clear()
        self._verified_crls.add(key)

    def _check_revocation(
        self,
        leaf: x509.Certificate,
        issuer: x509.Certificate,
        when: datetime,
        component: str,
        *,
        signed_at: datetime | None = None,
    ) -> None:
        crl = self._crl_source()
        # The same CRL for the same issuer as last time is the common case: its issuer name and signature were
        # checked then. (Decoding the CRL's issuer name alone costs more than the rest of this method.)
        last = self._last_crl
        if last is None or last[0] is not crl or (last[1] is not issuer and last[1] != issuer):
            if crl.issuer != issuer.subject:
                raise _unknown(component, "失効情報（CRL）の発行者が異なる", "the CRL is from a different issuer")
            self._check_crl_signature(crl, issuer, component)
            last = self._last_crl = (crl, issuer, crl.next_update_utc)
        next_update = last[2]
        if next_update is None or when >= next_update:
            raise _unknown(
                component,
                "失効情報（CRL）の有効期限切れにより失効状態を確認できない",
                "revocation status is unknown because the CRL has passed its nextUpdate",
            )
        # A CRL whose thisUpdate is after ``when`` is still used: revocation only accumulates, so a newer
        # list is at least as strict, and refusing it would turn small clock differences into outages.
        entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
        # A live message is refused by any entry; a logged one received before the revocation date stays valid.
        # The CRL keeps whole seconds, so a message logged in the second of the revocation counts as after it.
        if entry is not None and (signed_at is None or entry.revocation_date_utc <= signed_at):
            raise _refuse(
                RefusalCode.REVOKED_CERTIFICATE,
                component,
                f"証明書（{party_id_of(leaf)}、シリアル番号 {leaf.serial_number:x}）は"
                f"{entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC に失効しています。",
                f"Certificate of '{party_id_of(leaf)}' (serial {leaf.serial_number:x}) was revoked at "
                f"{entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC.",
            )
