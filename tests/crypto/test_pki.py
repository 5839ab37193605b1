"""The simulated LGPKI: certificate profiles, chain validation (NET-003), revocation, caching, persistence."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.crypto import COUNTERS, CertificateAuthority, Credential, TrustStore, party_id_of
from simulator.errors import InputError, Refusal, RefusalCode

from .conftest import T0, Clock


def _refused(trust: TrustStore, chain: list[x509.Certificate] | tuple[x509.Certificate, ...], now: datetime) -> Refusal:
    with pytest.raises(Refusal) as caught:
        trust.validate(chain, now, component="nws")
    assert caught.value.control_id == "NET-003"
    assert caught.value.component == "nws"
    assert caught.value.reason_ja and caught.value.reason_en
    return caught.value


def _usage(cert: x509.Certificate) -> x509.KeyUsage:
    return cert.extensions.get_extension_for_class(x509.KeyUsage).value


def _constraints(cert: x509.Certificate) -> x509.BasicConstraints:
    return cert.extensions.get_extension_for_class(x509.BasicConstraints).value


class TestProfiles:
    def test_root_and_issuing_ca(self, ca: CertificateAuthority) -> None:
        root, issuing = ca.root_certificate, ca.issuing_certificate
        assert root.subject == root.issuer
        root.verify_directly_issued_by(root)
        issuing.verify_directly_issued_by(root)
        for cert in (root, issuing):
            assert _constraints(cert).ca
            assert _usage(cert).key_cert_sign and _usage(cert).crl_sign
            assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert _constraints(issuing).path_length == 0
        assert root.not_valid_after_utc - root.not_valid_before_utc == timedelta(days=20 * 365)
        assert issuing.not_valid_after_utc - issuing.not_valid_before_utc == timedelta(days=10 * 365)
        assert ca.name == "jukisim test"

    def test_party_certificate(self, ca: CertificateAuthority) -> None:
        cred = ca.issue("city-13101.ms", "千代田区", T0)
        cert = cred.certificate
        assert party_id_of(cert) == cred.party_id == "city-13101.ms"
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "千代田区"
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:jukisim:party:city-13101.ms"]
        usage = _usage(cert)
        assert usage.digital_signature and usage.key_agreement and not usage.key_cert_sign
        assert not _constraints(cert).ca
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert isinstance(cert.public_key().curve, ec.SECP256R1)  # type: ignore[union-attr]
        assert cred.chain == (cert, ca.issuing_certificate)
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=825)
        assert ca.issue("nws", "NWS", T0).certificate.serial_number != cert.serial_number
        assert "private_key" not in repr(cred)
        jwk = cred.public_jwk()
        assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and "d" not in jwk and jwk["kid"] == cred.fingerprint

    def test_party_certificate_never_outlives_issuing_ca(self, ca: CertificateAuthority) -> None:
        late = T0 + timedelta(days=10 * 365 - 10)
        cred = ca.issue("late", "遅い", late)
        assert cred.certificate.not_valid_after_utc == ca.issuing_certificate.not_valid_after_utc

    @pytest.mark.parametrize("party_id", ["", "-leading-dash", "has space", "x" * 65, "スラッシュ/"])
    def test_bad_party_id_refused(self, ca: CertificateAuthority, party_id: str) -> None:
        with pytest.raises(InputError) as caught:
            ca.issue(party_id, "組織", T0)
        assert caught.value.field == "party_id"

    def test_naive_time_refused(self, ca: CertificateAuthority) -> None:
        with pytest.raises(InputError) as caught:
            ca.issue("a", "組織", datetime(2026, 4, 1, 9, 0))
        assert caught.value.field == "now"


class TestChainValidation:
    def test_valid_chain_returns_leaf(self, ca: CertificateAuthority, trust: TrustStore) -> None:
        cred = ca.issue("city-a", "A市", T0)
        assert trust.validate(cred.chain, T0 + timedelta(hours=1), component="nws") == cred.certificate
        with_root = [*cred.chain, ca.root_certificate]
        assert trust.validate(with_root, T0 + timedelta(hours=1), component="nws") == cred.certificate

    def test_other_ca_unknown(self, trust: TrustStore) -> None:
        rogue = CertificateAuthority.create("rogue", T0).issue("city-a", "A市", T0)
        assert _refused(trust, rogue.chain, T0).code is RefusalCode.UNKNOWN_CERTIFICATE

    def test_same_named_impostor_ca_unknown(self, trust: TrustStore) -> None:
        impostor = CertificateAuthority.create("jukisim test", T0)
        cred = impostor.issue("city-a", "A市", T0)
        assert _refused(trust, cred.chain, T0).code is RefusalCode.UNKNOWN_CERTIFICATE
        presenting_root = [*cred.chain, impostor.root_certificate]
        assert _refused(trust, presenting_root, T0).code is RefusalCode.UNKNOWN_CERTIFICATE

    def test_leaf_with_someone_elses_intermediate_unknown(self, ca: CertificateAuthority, trust: TrustStore) -> None:
        rogue = CertificateAuthority.create("rogue", T0).issue("city-a", "A市", T0)
        assert _refused(trust, [rogue.certificate, ca.issuing_certificate], T0).code is RefusalCode.UNKNOWN_CERTIFICATE

    def test_certificate_signed_by_a_party_key_unknown(self, ca: CertificateAuthority, trust: TrustStore) -> None:
        attacker = ca.issue("attacker", "攻撃者", T0)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nws")])
        fake = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(attacker.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(T0)
            .not_valid_after(T0 + timedelta(days=30))
            .sign(attacker.private_key, hashes.SHA256())
        )
        chain = [fake, attacker.certificate, ca.issuing_certificate]
        assert _refused(trust, chain, T0).code is RefusalCode.UNKNOWN_CERTIFICATE

    def test_ca_certificate_is_not_a_party(self, ca: CertificateAuthority, trust: TrustStore) -> None:
        assert _refused(trust, [ca.issuing_certificate], T0).code is RefusalCode.UNKNOWN_CERTIFICATE
        assert _refused(trust, [ca.root_certificate], T0).code is RefusalCode.UNKNOWN_CERTIFICATE
        assert _refused(trust, [], T0).code is RefusalCode.UNKNOWN_CERTIFICATE

    def test_expired_and_not_yet_valid(self, ca: CertificateAuthority, trust: TrustStore) -> None:
        cred = ca.issue("city-a", "A市", T0, days=1)
        assert trust.validate(cred.chain, T0 + timedelta(hours=23), component="nws") == cred.certificate
        assert _refused(trust, cred.chain, T0 + timedelta(days=1, minutes=1)).code is RefusalCode.EXPIRED_CERTIFICATE
        assert _refused(trust, cred.chain, T0 - timedelta(minutes=1)).code is RefusalCode.EXPIRED_CERTIFICATE

    def test_revoked(self, ca: CertificateAuthority, trust: TrustStore, clock: Clock) -> None:
        cred, other = ca.issue("city-a", "A市", T0), ca.issue("city-b", "B市", T0)
        assert trust.validate(cred.chain, T0, component="nws") == cred.certificate
        clock.now = T0 + timedelta(minutes=1)
        crl = ca.revoke(cred.certificate.serial_number, clock.now, x509.ReasonFlags.key_compromise)
        assert crl.is_signature_valid(ca.issuing_certificate.public_key())  # type: ignore[arg-type]
        assert crl.issuer == ca.issuing_certificate.subject
        refusal = _refused(trust, cred.chain, clock.now)
        assert refusal.code is RefusalCode.REVOKED_CERTIFICATE
        assert "city-a" in refusal.reason_en
        assert trust.validate(other.chain, clock.now, component="nws") == other.certificate
        assert ca.is_revoked(cred.certificate.serial_number)
        assert ca.revoke(cred.certificate.serial_number, clock.now) == ca.current_crl()  # repeat: no new CRL

    def test_revoke_unknown_serial_refused(self, ca: CertificateAuthority) -> None:
        with pytest.raises(InputError):
            ca.revoke(12345, T0)

    def test_forged_crl_unknown(self, ca: CertificateAuthority) -> None:
        cred = ca.issue("city-a", "A市", T0)
        forged = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.issuing_certificate.subject)
            .last_update(T0)
            .next_update(T0 + timedelta(days=1))
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        )
        trust = TrustStore(ca.root_certificate, lambda: forged)
        assert "CRL" in _refused(trust, cred.chain, T0).reason_en

    def test_stale_crl_fails_closed_unless_republished(self, ca: CertificateAuthority) -> None:
        cred = ca.issue("city-a", "A市", T0)
        later = T0 + timedelta(days=8)
        frozen = TrustStore(ca.root_certificate, ca.current_crl)
        assert _refused(frozen, cred.chain, later).code is RefusalCode.UNKNOWN_CERTIFICATE
        republishing = TrustStore(ca.root_certificate, lambda: ca.crl(later))
        assert republishing.validate(cred.chain, later, component="nws") == cred.certificate

    def test_signatures_cached_but_time_and_revocation_rechecked(
        self, ca: CertificateAuthority, trust: TrustStore, clock: Clock
    ) -> None:
        cred = ca.issue("city-a", "A市", T0, days=2)
        before = COUNTERS.snapshot()
        trust.validate(cred.chain, T0, component="nws")
        first = COUNTERS.snapshot() - before
        assert first.chain_verifies == 2 and first.crl_verifies == 1
        trust.validate(cred.chain, T0 + timedelta(hours=1), component="nws")
        assert (COUNTERS.snapshot() - before).chain_verifies == 2  # cached
        assert _refused(trust, cred.chain, T0 + timedelta(days=3)).code is RefusalCode.EXPIRED_CERTIFICATE
        clock.now = T0 + timedelta(hours=2)
        ca.revoke(cred.certificate.serial_number, clock.now)
        assert _refused(trust, cred.chain, clock.now).code is RefusalCode.REVOKED_CERTIFICATE


class TestPersistence:
    def test_ca_round_trip(self, ca: CertificateAuthority, tmp_path: Path) -> None:
        kept, gone = ca.issue("city-a", "A市", T0), ca.issue("city-b", "B市", T0)
        ca.revoke(gone.certificate.serial_number, T0 + timedelta(minutes=5), x509.ReasonFlags.superseded)
        ca.save(tmp_path / "pki")
        assert stat.S_IMODE((tmp_path / "pki" / "root.key.pem").stat().st_mode) == 0o600

        loaded = CertificateAuthority.load(tmp_path / "pki")
        assert loaded.root_certificate == ca.root_certificate
        assert loaded.issuing_certificate == ca.issuing_certificate
        assert loaded.name == "jukisim test"
        assert {c.serial_number for c in loaded.issued()} == {c.serial_number for c in ca.issued()}
        assert loaded.is_revoked(gone.certificate.serial_number) and not loaded.is_revoked(
            kept.certificate.serial_number
        )

        now = T0 + timedelta(minutes=10)
        trust = TrustStore(loaded.root_certificate, lambda: loaded.crl(now))
        assert trust.validate(kept.chain, now, component="nws") == kept.certificate
        assert _refused(trust, gone.chain, now).code is RefusalCode.REVOKED_CERTIFICATE
        newcomer = loaded.issue("city-c", "C市", now)
        assert trust.validate(newcomer.chain, now, component="nws") == newcomer.certificate

        number = x509.CRLNumber
        before = ca.current_crl().extensions.get_extension_for_class(number).value.crl_number
        loaded.revoke(newcomer.certificate.serial_number, now)
        after = loaded.current_crl().extensions.get_extension_for_class(number).value.crl_number
        assert after == before + 1

    def test_credential_round_trip(self, ca: CertificateAuthority, tmp_path: Path) -> None:
        cred = ca.issue("city-a", "A市", T0)
        cred.save(tmp_path / "city-a")
        assert stat.S_IMODE((tmp_path / "city-a" / "key.pem").stat().st_mode) == 0o600
        loaded = Credential.load(tmp_path / "city-a")
        assert loaded.party_id == "city-a" and loaded.organisation == "A市"
        assert loaded.chain == cred.chain
        assert loaded.private_key.private_numbers() == cred.private_key.private_numbers()

    def test_mismatched_files_refused(self, ca: CertificateAuthority, tmp_path: Path) -> None:
        cred, other = ca.issue("city-a", "A市", T0), ca.issue("city-b", "B市", T0)
        cred.save(tmp_path / "a")
        other.save(tmp_path / "b")
        (tmp_path / "a" / "key.pem").write_bytes((tmp_path / "b" / "key.pem").read_bytes())
        with pytest.raises(InputError):
            Credential.load(tmp_path / "a")
        ca.save(tmp_path / "pki")
        rogue = CertificateAuthority.create("rogue", T0)
        rogue.save(tmp_path / "rogue")
        (tmp_path / "pki" / "issuing.crt.pem").write_bytes((tmp_path / "rogue" / "issuing.crt.pem").read_bytes())
        with pytest.raises(InputError):
            CertificateAuthority.load(tmp_path / "pki")
