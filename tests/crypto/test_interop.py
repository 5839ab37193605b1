"""Interoperability: an independent JOSE implementation (jwcrypto) and openssl accept what jukisim produces,
and jukisim accepts what jwcrypto produces with a jukisim-issued key (ARCHITECTURE §5).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from simulator.crypto import CertificateAuthority
from simulator.store.chain import canonical_json

from .conftest import T0, PartyFactory, make_envelope, x5c_of

LATER = T0


def _leaf_from_x5c(wire: str) -> x509.Certificate:
    header = json.loads(base64.urlsafe_b64decode(wire.split(".")[0] + "=="))
    return x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))


def test_jwcrypto_verifies_a_jukisim_signature(party: PartyFactory) -> None:
    city = party("city-a")
    envelope = make_envelope("city-a", "nws")
    wire = city.sign(envelope)
    key = jwcrypto_jwk.JWK.from_pyca(_leaf_from_x5c(wire).public_key())
    token = jwcrypto_jws.JWS()
    token.deserialize(wire)
    token.verify(key, alg="ES256")
    assert token.payload == canonical_json(envelope.model_dump(mode="json")).encode()
    assert token.jose_header["typ"] == "jukisim+jws"


def test_jwcrypto_decrypts_a_jukisim_jwe(party: PartyFactory) -> None:
    provider, requester = party("city-b.ms"), party("city-a.ms")
    secret = {"氏名": "山田 花子", "続柄": "子"}
    sealed = provider.seal(secret, requester.credential.certificate)
    key = jwcrypto_jwk.JWK.from_pyca(requester.credential.private_key)
    token = jwcrypto_jwe.JWE()
    token.deserialize(sealed, key=key)
    assert json.loads(token.payload) == secret
    assert token.jose_header["alg"] == "ECDH-ES+A256KW" and token.jose_header["enc"] == "A256GCM"


def test_jukisim_accepts_a_jwcrypto_signature(party: PartyFactory) -> None:
    city, nws = party("city-a"), party("nws")
    envelope = make_envelope("city-a", "nws")
    protected = {
        "alg": "ES256",
        "typ": "jukisim+jws",
        "kid": city.credential.fingerprint,
        "x5c": x5c_of(city.credential),
    }
    token = jwcrypto_jws.JWS(json.dumps(envelope.model_dump(mode="json")).encode())
    token.add_signature(
        jwcrypto_jwk.JWK.from_pyca(city.credential.private_key), alg="ES256", protected=json.dumps(protected)
    )
    wire = token.serialize(compact=True)
    assert nws.verify(wire, LATER) == envelope


def test_jukisim_unseals_a_jwcrypto_jwe(party: PartyFactory) -> None:
    requester = party("city-a.ms")
    secret = {"世帯": ["山田 太郎", "山田 花子"], "件数": 2}
    protected = {
        "alg": "ECDH-ES+A256KW",
        "enc": "A256GCM",
        "kid": requester.credential.fingerprint,
        "cty": "json",
    }
    token = jwcrypto_jwe.JWE(json.dumps(secret, ensure_ascii=False).encode(), protected=json.dumps(protected))
    token.add_recipient(jwcrypto_jwk.JWK.from_pyca(requester.credential.certificate.public_key()))
    assert requester.unseal(token.serialize(compact=True)) == secret


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl binary not installed")
def test_openssl_verifies_the_chain_and_the_crl(ca: CertificateAuthority, tmp_path: Path) -> None:
    kept, gone = ca.issue("city-a", "A市", T0), ca.issue("city-b", "B市", T0)
    ca.revoke(gone.certificate.serial_number, T0, x509.ReasonFlags.key_compromise)
    ca.save(tmp_path / "pki")
    kept.save(tmp_path / "kept")
    gone.save(tmp_path / "gone")
    pki = tmp_path / "pki"

    def leaf(directory: Path) -> Path:
        path = directory / "leaf.pem"
        path.write_bytes(
            x509.load_pem_x509_certificates((directory / "chain.pem").read_bytes())[0].public_bytes(
                serialization.Encoding.PEM
            )
        )
        return path

    def openssl_verify(target: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        # -attime: the certificates are dated in the simulated world, not the machine's clock.
        command = ["openssl", "verify", "-attime", str(int(T0.timestamp()) + 60), "-CAfile", str(pki / "root.crt.pem")]
        command += ["-untrusted", str(pki / "issuing.crt.pem"), *extra, str(target)]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    ok = openssl_verify(leaf(tmp_path / "kept"), "-crl_check", "-CRLfile", str(pki / "crl.pem"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    revoked = openssl_verify(leaf(tmp_path / "gone"), "-crl_check", "-CRLfile", str(pki / "crl.pem"))
    assert revoked.returncode != 0 and "revoked" in (revoked.stdout + revoked.stderr)
    rogue = CertificateAuthority.create("rogue", T0).issue("city-a", "A市", T0)
    rogue.save(tmp_path / "rogue")
    assert openssl_verify(leaf(tmp_path / "rogue")).returncode != 0
