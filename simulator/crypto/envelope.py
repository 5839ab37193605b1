"""Signed envelopes (JWS, RFC 7515) and sealed payloads (JWE, RFC 7516): 電文への署名・検証と暗号化・復号.

``MessageSecurity`` is one party's view: it signs what it sends, and accepts what it receives only if the
format, algorithm, certificate, signature, sender, recipient, freshness and uniqueness all hold.
This module must never judge whether a message is permitted by business rules, only whether it is authentic.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidKey, InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from pydantic import ValidationError

from simulator.crypto.counters import COUNTERS
from simulator.crypto.pki import CERTIFICATE_CONTROL, Credential, TrustStore, fingerprint, party_id_of, utc
from simulator.crypto.replay import REPLAY_CONTROL, ReplayGuard
from simulator.errors import InputError, Refusal, RefusalCode
from simulator.model.envelope import Envelope
from simulator.store.chain import canonical_json

__all__ = [
    "CONTENT_ENCRYPTION",
    "JWS_TYPE",
    "KEY_MANAGEMENT_ALGORITHM",
    "MAX_WIRE_BYTES",
    "SIGNATURE_ALGORITHM",
    "MessageSecurity",
]

#: Largest signed envelope or sealed payload accepted, in bytes of compact serialisation.
MAX_WIRE_BYTES = 1024 * 1024
JWS_TYPE = "jukisim+jws"
SIGNATURE_ALGORITHM = "ES256"
KEY_MANAGEMENT_ALGORITHM = "ECDH-ES+A256KW"
CONTENT_ENCRYPTION = "A256GCM"

SIGNATURE_CONTROL = "CHUKAN-013"  # 電文への署名付与・署名の検証
ENCRYPTION_CONTROL = "CHUKAN-012"  # 暗号化及び復号
ROUTE_CONTROL = "NWS-004"  # 経路情報による照会者への送達

_JWS_HEADER = frozenset({"alg", "typ", "kid", "x5c"})
# epk is the sender's ephemeral key (ECDH-ES); apu/apv are optional KDF inputs other libraries may add.
# zip (compression before encryption) and crit are deliberately absent, so they are refused.
_JWE_HEADER = frozenset({"alg", "enc", "epk", "kid", "cty", "typ", "apu", "apv"})
_MAX_CHAIN = 4


def _jws_registry() -> jws.JWSRegistry:
    registry = jws.JWSRegistry(algorithms=[SIGNATURE_ALGORITHM])
    # An x5c of two P-256 certificates makes a header of about 2 KiB, beyond the library's 512-byte default;
    # the overall size is bounded by MAX_WIRE_BYTES before the library sees the input.
    registry.max_header_length = 16 * 1024
    registry.max_payload_length = MAX_WIRE_BYTES
    return registry


def _jwe_registry() -> jwe.JWERegistry:
    registry = jwe.JWERegistry(algorithms=[KEY_MANAGEMENT_ALGORITHM, CONTENT_ENCRYPTION])
    registry.max_protected_header_length = 4 * 1024
    registry.max_ciphertext_length = MAX_WIRE_BYTES
    return registry


def _b64url_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _is_p256(key: object) -> bool:
    return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)


class MessageSecurity:
    """One party's message security: sign and verify envelopes, seal and unseal payloads.

    ``verify`` checks, in this order, and refuses at the first failure: size and format (MALFORMED_MESSAGE),
    algorithm allow-list (BAD_SIGNATURE), certificate chain (UNKNOWN/EXPIRED/REVOKED_CERTIFICATE),
    signature (BAD_SIGNATURE), envelope schema (MALFORMED_MESSAGE), sender = certificate (SENDER_MISMATCH),
    recipient = us (WRONG_RECIPIENT), freshness (STALE_MESSAGE), then id and nonce (REPLAYED_MESSAGE).
    Replay bookkeeping therefore happens only for authentic messages: a forger cannot burn others' ids.
    """

    def __init__(
        self,
        credential: Credential,
        trust: TrustStore,
        replay: ReplayGuard,
        max_skew: timedelta = timedelta(minutes=5),
    ) -> None:
        if max_skew <= timedelta(0):
            raise InputError("max_skew", "must be positive")
        if replay.window < max_skew:
            raise InputError("max_skew", "must not exceed the replay guard's window, or old replays could pass")
        self.credential = credential
        self.party_id = credential.party_id
        self.max_skew = max_skew
        self._trust = trust
        self._replay = replay
        self._own_key = ECKey.import_key(credential.private_key)
        self._x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode("ascii") for c in credential.chain]
        self._public_keys: dict[str, ECKey] = {}
        self._chains: dict[tuple[str, ...], tuple[x509.Certificate, ...]] = {}
        self._jws = _jws_registry()
        self._jwe = _jwe_registry()

    def renew(self, credential: Credential) -> None:
        """Sign from now on with a renewed credential of the same party (the old one is no longer used here)."""
        if credential.party_id != self.party_id:
            raise InputError("credential", f"must belong to this party '{self.party_id}'")
        self.credential = credential
        self._own_key = ECKey.import_key(credential.private_key)
        self._x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode("ascii") for c in credential.chain]

    # -- signing -------------------------------------------------------------------------------------------

    def sign(self, envelope: Envelope) -> str:
        """The envelope as JWS compact: ES256, ``x5c`` = our leaf + issuing CA, ``kid`` = leaf fingerprint."""
        if envelope.sender != self.party_id:
            raise InputError("sender", f"must be this party '{self.party_id}', the holder of the signing key")
        utc(envelope.issued_at, "issued_at")
        header: dict[str, Any] = {
            "alg": SIGNATURE_ALGORITHM,
            "typ": JWS_TYPE,
            "kid": self.credential.fingerprint,
            "x5c": self._x5c,
        }
        payload = canonical_json(envelope.model_dump(mode="json")).encode("utf-8")
        COUNTERS.add(signs=1)
        wire = jws.serialize_compact(header, payload, self._own_key, registry=self._jws)
        if len(wire) > MAX_WIRE_BYTES:
            raise InputError("envelope", f"signed envelope exceeds {MAX_WIRE_BYTES} bytes")
        return wire

    def verify(self, wire: str, now: datetime) -> Envelope:
        """The envelope in ``wire`` if it is authentic, addressed to us, fresh and new; else ``Refusal``."""
        return self.verify_with_sender(wire, now)[0]

    def verify_with_sender(self, wire: str, now: datetime) -> tuple[Envelope, x509.Certificate]:
        """Like ``verify``, also returning the sender's validated certificate (e.g. to seal a reply to it)."""
        when = utc(now)
        signed, header = self._parse(wire)
        chain = self._chain(header)
        leaf = self._trust.validate(chain, when, component=self.party_id)
        self._check_signature(signed, leaf)
        envelope = self._envelope(signed.payload)
        signer = party_id_of(leaf)
        if envelope.sender != signer:
            raise self._refuse(
                RefusalCode.SENDER_MISMATCH,
                CERTIFICATE_CONTROL,
                f"送信者「{envelope.sender}」と署名者の証明書「{signer}」が一致しません（なりすましの疑い）。",
                f"Sender '{envelope.sender}' does not match the signing certificate '{signer}' "
                "(possible impersonation).",
                field="sender",
            )
        if envelope.recipient != self.party_id:
            raise self._refuse(
                RefusalCode.WRONG_RECIPIENT,
                ROUTE_CONTROL,
                f"宛先「{envelope.recipient}」は当システム「{self.party_id}」ではありません。",
                f"The message is addressed to '{envelope.recipient}', not to '{self.party_id}'.",
                field="recipient",
            )
        issued_at = envelope.issued_at
        if abs(issued_at - when) > self.max_skew:
            minutes = self.max_skew.total_seconds() / 60
            raise self._refuse(
                RefusalCode.STALE_MESSAGE,
                REPLAY_CONTROL,
                f"発信時刻 {issued_at.isoformat()} が受信時刻 {when.isoformat()} から"
                f"許容範囲（±{minutes:g}分）を超えてずれています。",
                f"Issued at {issued_at.isoformat()}, more than ±{minutes:g} minutes from the time of receipt "
                f"{when.isoformat()}.",
                field="issued_at",
            )
        self._replay.check_and_record(envelope, when)
        return envelope, leaf

    def verify_logged(self, wire: str, at: datetime, now: datetime) -> Envelope:
        """Verify a message kept from earlier, at ``at``: the time a log that cannot be rewritten says it arrived.

        The certificate must have been valid at ``at`` and not revoked by then (on the CRL in force ``now``), the
        signature genuine, the sender its holder, and the message's own ``issued_at`` within the allowed skew of
        ``at``. Recipient, freshness against ``now`` and replay are not checked: this answers "was it authentic
        when it arrived?", so a key revoked later does not make an earlier message unverifiable.
        """
        arrived = utc(at, "at")
        signed, header = self._parse(wire)
        leaf = self._trust.validate(self._chain(header), utc(now), component=self.party_id, signed_at=arrived)
        self._check_signature(signed, leaf)
        envelope = self._envelope(signed.payload)
        if envelope.sender != party_id_of(leaf):
            raise self._refuse(
                RefusalCode.SENDER_MISMATCH,
                CERTIFICATE_CONTROL,
                f"送信者「{envelope.sender}」と署名者の証明書「{party_id_of(leaf)}」が一致しません。",
                f"Sender '{envelope.sender}' does not match the signing certificate '{party_id_of(leaf)}'.",
                field="sender",
            )
        if abs(envelope.issued_at - arrived) > self.max_skew:
            raise self._refuse(
                RefusalCode.STALE_MESSAGE,
                REPLAY_CONTROL,
                f"発信時刻 {envelope.issued_at.isoformat()} が記録上の受信時刻 {arrived.isoformat()} と合いません。",
                f"Issued at {envelope.issued_at.isoformat()}, not within the allowed skew of the logged time of "
                f"receipt {arrived.isoformat()}.",
                field="issued_at",
            )
        return envelope

    def _parse(self, wire: str) -> tuple[jws.CompactSignature, dict[str, Any]]:
        if not isinstance(wire, str):
            raise self._malformed("電文が文字列ではありません", "the message is not a string")
        if len(wire) > MAX_WIRE_BYTES:
            raise self._malformed(
                f"電文が上限 {MAX_WIRE_BYTES} バイトを超えています",
                f"the message exceeds {MAX_WIRE_BYTES} bytes",
            )
        try:
            signed = jws.extract_compact(wire.encode("ascii"), registry=self._jws)
            header = signed.headers()
        except (JoseError, ValueError, TypeError, UnicodeError, RecursionError):
            # RecursionError: JSON nested deeper than the parser's stack (a hostile header), not a crash.
            raise self._malformed(
                "JWSコンパクト形式として解析できません", "not a parseable JWS compact serialisation"
            ) from None
        if not isinstance(header, dict) or set(header) != _JWS_HEADER:
            keys = sorted(header) if isinstance(header, dict) else []
            raise self._malformed(
                f"保護ヘッダーは {sorted(_JWS_HEADER)} のみ（実際: {keys}）",
                f"the protected header must hold exactly {sorted(_JWS_HEADER)} (got {keys})",
            )
        if header["alg"] != SIGNATURE_ALGORITHM:
            raise self._refuse(
                RefusalCode.BAD_SIGNATURE,
                SIGNATURE_CONTROL,
                f"署名アルゴリズム「{header['alg']}」は許可されていません（{SIGNATURE_ALGORITHM}のみ）。",
                f"Signature algorithm '{header['alg']}' is not allowed (only {SIGNATURE_ALGORITHM}).",
                field="alg",
            )
        if header["typ"] != JWS_TYPE:
            raise self._malformed(f"typ は「{JWS_TYPE}」であること", f"typ must be '{JWS_TYPE}'")
        return signed, header

    def _chain(self, header: dict[str, Any]) -> tuple[x509.Certificate, ...]:
        encoded = header["x5c"]
        if (
            not isinstance(encoded, list)
            or not 1 <= len(encoded) <= _MAX_CHAIN
            or not all(isinstance(item, str) for item in encoded)
        ):
            raise self._malformed(f"x5c は証明書1〜{_MAX_CHAIN}枚", f"x5c must hold 1 to {_MAX_CHAIN} certificates")
        # Parsed chains are kept so that the same certificate objects reach the trust store and the key cache
        # each time, and a sender's DER is not decoded and fingerprinted again for every message.
        chain = self._chains.get(tuple(encoded))
        if chain is None:
            try:
                chain = tuple(x509.load_der_x509_certificate(base64.b64decode(item, validate=True)) for item in encoded)
            except (ValueError, TypeError, binascii.Error, x509.InvalidVersion, UnsupportedAlgorithm):
                # InvalidVersion is no ValueError: a flipped bit in the version field raised it out of verify.
                raise self._malformed(
                    "x5c の証明書をDERとして読めません", "an x5c entry is not a base64 DER certificate"
                ) from None
            if len(self._chains) >= 4096:
                self._chains.clear()
            self._chains[tuple(encoded)] = chain
        if header["kid"] != fingerprint(chain[0]):
            raise self._malformed(
                "kid が x5c 先頭証明書の指紋と一致しません",
                "kid is not the fingerprint of the first x5c certificate",
            )
        return chain

    def _check_signature(self, signed: jws.CompactSignature, leaf: x509.Certificate) -> None:
        key = self._public_key(leaf)
        COUNTERS.add(verifies=1)
        try:
            genuine = jws.validate_compact(signed, key, registry=self._jws)
        except (JoseError, ValueError, TypeError, InvalidSignature):
            genuine = False
        if not genuine:
            raise self._refuse(
                RefusalCode.BAD_SIGNATURE,
                SIGNATURE_CONTROL,
                "電文の署名を検証できません（改ざんの疑い）。",
                "The message signature does not verify (possible tampering).",
            )

    def _envelope(self, payload: bytes) -> Envelope:
        try:
            envelope = Envelope.model_validate_json(payload)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "envelope"
            raise self._malformed(
                f"エンベロープの項目「{where}」が不正です（{first['msg']}）",
                f"envelope field '{where}' is invalid ({first['msg']})",
                field=where,
            ) from None
        if envelope.issued_at.tzinfo is None:
            raise self._malformed(
                "issued_at にタイムゾーンがありません", "issued_at has no time zone", field="issued_at"
            )
        return envelope

    def _public_key(self, certificate: x509.Certificate) -> ECKey:
        kid = fingerprint(certificate)
        key = self._public_keys.get(kid)
        if key is None:
            public = certificate.public_key()
            p256 = isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1)
            if not p256 or not isinstance(public, ec.EllipticCurvePublicKey):
                raise self._refuse(
                    RefusalCode.UNKNOWN_CERTIFICATE,
                    CERTIFICATE_CONTROL,
                    "証明書の鍵が EC P-256 ではありません。",
                    "The certificate key is not EC P-256.",
                )
            key = ECKey.import_key(public)
            if len(self._public_keys) > 4096:
                self._public_keys.clear()
            self._public_keys[kid] = key
        return key

    # -- sealing -------------------------------------------------------------------------------------------

    def sealing_certificate(self, certificate: x509.Certificate, now: datetime) -> x509.Certificate:
        """``certificate`` (a reader's, as its directory publishes it) validated at ``now`` against the trust store:
        chain to the root through our issuing CA, validity and the CRL. Personal data is sealed only to a party that
        can be authenticated now (NET-003); a revoked or unknown reader raises the same Refusal a receiver would."""
        return self._trust.validate((certificate, *self.credential.chain[1:]), now, component=self.party_id)

    def seal(self, payload: dict[str, Any], to: x509.Certificate) -> str:
        """``payload`` as JWE compact (ECDH-ES+A256KW, A256GCM) that only the holder of ``to`` can open.

        Pass a certificate that was validated (e.g. the one ``verify_with_sender`` returned): sealing does not
        consult the trust store.
        """
        if not isinstance(payload, dict):
            raise InputError("payload", "must be a JSON object (dict)")
        try:
            agreement = to.extensions.get_extension_for_class(x509.KeyUsage).value.key_agreement
        except x509.ExtensionNotFound:
            agreement = False
        if not agreement:
            raise InputError("to", "the recipient certificate must allow keyAgreement")
        key = self._public_key_for_sealing(to)
        try:
            plaintext = json.dumps(
                payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
        except (TypeError, ValueError) as err:
            raise InputError("payload", "must be JSON-serialisable (use model_dump(mode='json'))") from err
        header = {
            "alg": KEY_MANAGEMENT_ALGORITHM,
            "enc": CONTENT_ENCRYPTION,
            "kid": fingerprint(to),
            "cty": "json",
        }
        COUNTERS.add(key_generations=1, key_agreements=1, key_wraps=1, aead_ops=1)
        sealed = jwe.encrypt_compact(header, plaintext, key, registry=self._jwe)
        if len(sealed) > MAX_WIRE_BYTES:
            raise InputError("payload", f"sealed payload exceeds {MAX_WIRE_BYTES} bytes")
        return sealed

    def unseal(self, sealed: str) -> dict[str, Any]:
        """Decrypt a JWE sealed to our certificate; anything else is refused with DECRYPTION_FAILED."""
        if not isinstance(sealed, str) or len(sealed) > MAX_WIRE_BYTES:
            raise self._undecryptable("JWE文字列でないか上限サイズを超えています", "not a JWE string or too large")
        segments = sealed.split(".")
        try:
            header = _b64url_json(segments[0]) if len(segments) == 5 else None
        except (ValueError, UnicodeError, binascii.Error, RecursionError):
            header = None
        if not isinstance(header, dict):
            raise self._undecryptable("JWEコンパクト形式ではありません", "not a JWE compact serialisation")
        unexpected = sorted(set(header) - _JWE_HEADER)
        if unexpected:
            raise self._undecryptable(
                f"許可されていないヘッダー {unexpected}", f"header parameters not allowed: {unexpected}"
            )
        if header.get("alg") != KEY_MANAGEMENT_ALGORITHM or header.get("enc") != CONTENT_ENCRYPTION:
            raise self._undecryptable(
                f"アルゴリズムは {KEY_MANAGEMENT_ALGORITHM} / {CONTENT_ENCRYPTION} のみ",
                f"only {KEY_MANAGEMENT_ALGORITHM} with {CONTENT_ENCRYPTION} is accepted "
                f"(got {header.get('alg')!r} / {header.get('enc')!r})",
            )
        if header.get("kid") != self.credential.fingerprint:
            raise self._undecryptable(
                "当システムの鍵宛てに暗号化されていません", "it was not sealed to this party's key"
            )
        epk = header.get("epk")
        # Checked here, not left to the library: a mangled curve name made it raise KeyError (a crash, not a no).
        if not (isinstance(epk, dict) and epk.get("kty") == "EC" and epk.get("crv") == "P-256"
                and isinstance(epk.get("x"), str) and isinstance(epk.get("y"), str)):
            raise self._undecryptable(
                "送信者の一時鍵（epk）が EC P-256 の公開鍵ではありません",
                "the ephemeral key (epk) is not an EC P-256 public key",
            )
        COUNTERS.add(key_agreements=1, key_wraps=1, aead_ops=1)
        try:
            plaintext = jwe.decrypt_compact(sealed, self._own_key, registry=self._jwe).plaintext
            content = json.loads(plaintext) if plaintext is not None else None
        except (JoseError, ValueError, TypeError, KeyError, InvalidTag, InvalidUnwrap, InvalidKey, RecursionError):
            raise self._undecryptable("復号または完全性検証に失敗", "decryption or integrity check failed") from None
        if not isinstance(content, dict):
            raise self._undecryptable("内容がJSONオブジェクトではありません", "the content is not a JSON object")
        return content

    def _public_key_for_sealing(self, certificate: x509.Certificate) -> ECKey:
        if not _is_p256(certificate.public_key()):
            raise InputError("to", "the recipient certificate key must be EC P-256")
        return self._public_key(certificate)

    # -- refusals ------------------------------------------------------------------------------------------

    def _refuse(
        self, code: RefusalCode, control_id: str, reason_ja: str, reason_en: str, field: str | None = None
    ) -> Refusal:
        return Refusal(
            code,
            component=self.party_id,
            control_id=control_id,
            reason_ja=reason_ja,
            reason_en=reason_en,
            field=field,
        )

    def _malformed(self, detail_ja: str, detail_en: str, field: str | None = None) -> Refusal:
        return self._refuse(
            RefusalCode.MALFORMED_MESSAGE,
            SIGNATURE_CONTROL,
            f"電文の形式が不正です（{detail_ja}）。",
            f"The message is malformed ({detail_en}).",
            field=field,
        )

    def _undecryptable(self, detail_ja: str, detail_en: str) -> Refusal:
        return self._refuse(
            RefusalCode.DECRYPTION_FAILED,
            ENCRYPTION_CONTROL,
            f"暗号文を復号できません（{detail_ja}）。",
            f"The sealed payload cannot be decrypted ({detail_en}).",
        )
