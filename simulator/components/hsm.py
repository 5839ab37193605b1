"""耐タンパー装置 (tamper-resistant key module) of a 市町村CS: keys that sign inside it and never leave it.

Each key object is generated inside the module and stored only wrapped under the device's own secret, which lives
in the device (the world's keys directory plays the device), never in the CS store; objects are created
non-extractable (PKCS#11 CKA_EXTRACTABLE = false) and the attribute cannot be changed. It must never return a
private key, in any form, to a caller.
"""

from __future__ import annotations

import os
import sqlite3

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KeyModule", "KeyModuleError"]

_DDL = """
CREATE TABLE IF NOT EXISTS hsm_objects (
    module TEXT NOT NULL, label TEXT NOT NULL, public_pem TEXT NOT NULL,
    nonce BLOB NOT NULL, wrapped BLOB NOT NULL,
    extractable INTEGER NOT NULL CHECK (extractable = 0),
    PRIMARY KEY (module, label)
);
CREATE TRIGGER IF NOT EXISTS hsm_objects_no_update BEFORE UPDATE ON hsm_objects
    BEGIN SELECT RAISE(ABORT, 'hsm_objects attributes are fixed at generation'); END;
"""


class KeyModuleError(Exception):
    """The module refused an operation: names the rule (not exportable, not this device, unknown key)."""

    def __init__(self, rule: str, rule_ja: str) -> None:
        self.rule = rule
        self.rule_ja = rule_ja
        super().__init__(rule)


class KeyModule:
    """One tamper-resistant module bound to ``device_secret`` (32 bytes). Wrapped objects persist in ``conn``."""

    def __init__(self, conn: sqlite3.Connection, module_id: str, device_secret: bytes) -> None:
        self.conn = conn
        self.module_id = module_id
        self._device = AESGCM(device_secret)
        conn.executescript(_DDL)

    def _aad(self, label: str) -> bytes:
        return f"{self.module_id}|{label}".encode()

    def generate(self, label: str) -> str:
        """Create a P-256 key inside the module (if not there yet). Returns its public key (PEM)."""
        row = self.conn.execute(
            "SELECT public_pem FROM hsm_objects WHERE module = ? AND label = ?", (self.module_id, label)
        ).fetchone()
        if row is not None:
            return str(row[0])
        key = ec.generate_private_key(ec.SECP256R1())
        raw = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        nonce = os.urandom(12)
        public = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        self.conn.execute(
            "INSERT INTO hsm_objects (module, label, public_pem, nonce, wrapped, extractable) VALUES (?, ?, ?, ?, ?, 0)",
            (self.module_id, label, public, nonce, self._device.encrypt(nonce, raw, self._aad(label))),
        )
        return public

    def _unwrap(self, label: str) -> ec.EllipticCurvePrivateKey:
        row = self.conn.execute(
            "SELECT nonce, wrapped FROM hsm_objects WHERE module = ? AND label = ?", (self.module_id, label)
        ).fetchone()
        if row is None:
            raise KeyModuleError(f"no key object {label!r} in this module", f"鍵オブジェクト「{label}」はありません")
        try:
            raw = self._device.decrypt(bytes(row[0]), bytes(row[1]), self._aad(label))
        except InvalidTag:
            raise KeyModuleError(
                "the key object does not open on this device (a copied disk image yields no usable key)",
                "この装置では鍵を復元できません（ディスクを複製しても鍵は使えません）",
            ) from None
        key = serialization.load_der_private_key(raw, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def sign(self, label: str, data: bytes) -> bytes:
        """ECDSA-SHA256 inside the module; only the signature comes out."""
        return self._unwrap(label).sign(data, ec.ECDSA(hashes.SHA256()))

    def public_key(self, label: str) -> ec.EllipticCurvePublicKey:
        row = self.conn.execute(
            "SELECT public_pem FROM hsm_objects WHERE module = ? AND label = ?", (self.module_id, label)
        ).fetchone()
        if row is None:
            raise KeyModuleError(f"no key object {label!r} in this module", f"鍵オブジェクト「{label}」はありません")
        key = serialization.load_pem_public_key(str(row[0]).encode())
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key

    def verify(self, label: str, data: bytes, signature: bytes) -> bool:
        try:
            self.public_key(label).verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def export(self, label: str) -> bytes:
        """C_WrapKey / export of a private key: refused for every object (all are non-extractable)."""
        row = self.conn.execute(
            "SELECT extractable FROM hsm_objects WHERE module = ? AND label = ?", (self.module_id, label)
        ).fetchone()
        if row is None:
            raise KeyModuleError(f"no key object {label!r} in this module", f"鍵オブジェクト「{label}」はありません")
        raise KeyModuleError(
            "the key object is non-extractable; export is refused",
            "この鍵は取り出し不可属性のため、エクスポートできません",
        )
