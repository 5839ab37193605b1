"""マイナポータル申請管理: 署名用電子証明書 (JPKI), サービス検索・電子申請機能, and the city's 申請管理システム.

Forms are card-signed (EAPP-001) with the 個人番号 from the chip (EAPP-002) and fixed fields (EAPP-003); the city
fetches them over LGWAN sealed to it (EAPP-005), links them only by the 宛名番号 (EAPP-004), empties the terminal
(EAPP-006) and keeps versions (EAPP-007). It must never accept an unverified application, join, or push unasked.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.city_service import CityService, require_network, sealed_payload
from simulator.components.eapp_saas_cloud import EApplicationRules, Procedure
from simulator.components.registry import Registry
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.crypto.pki import CertificateAuthority, Credential, TrustStore
from simulator.errors import Refusal, RefusalCode
from simulator.model.envelope import Envelope, MessageType
from simulator.store.chain import canonical_json

__all__ = ["CardHolder", "EApplication", "EApplicationService", "JpkiAuthority", "sign_application"]

SERVICE_PARTY = "eapp.service"
JPKI_PARTY = "jlis.jpki"
DOWNLOAD_ROLE = "eapp_download"  # LGWAN接続端末 staff who may download applications
ADMIN_ROLE = "eapp_admin"  # approves disposal of external media (EAPP-006)


@dataclass(frozen=True)
class CardHolder:
    """What the applicant holds: the card's 署名用電子証明書 and key, and the 個人番号 in the chip's storage area."""

    resident_code: str
    my_number: str
    credential: Credential


def sign_application(card: CardHolder, application: dict[str, Any]) -> dict[str, Any]:
    """The applicant's client signs the canonical form data with the card's key (ECDSA P-256, SHA-256)."""
    signature = card.credential.private_key.sign(canonical_json(application).encode(), ec.ECDSA(hashes.SHA256()))
    return {
        "application": application,
        "signature": base64.b64encode(signature).decode("ascii"),
        "chain": [base64.b64encode(c.public_bytes(Encoding.DER)).decode("ascii") for c in card.credential.chain],
    }


class JpkiAuthority(Component):
    """地方公共団体情報システム機構 (JPKI): issues and revokes 署名用電子証明書, publishes its CRL."""

    name_ja = "公的個人認証サービス（署名用電子証明書）"
    name_en = "JPKI signing certificates"

    def __init__(
        self,
        party: str,
        conn: Any,
        security: MessageSecurity,
        directory: Directory,
        *,
        folder: Path,
        fresh: bool,
        start: datetime,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.folder = folder
        if fresh or not (folder / "ca").exists():
            self.ca = CertificateAuthority.create("JPKI signing (simulated)", start)
            self.ca.save(folder / "ca")
        else:
            self.ca = CertificateAuthority.load(folder / "ca")

    def trust(self, now: datetime) -> TrustStore:
        """What a verifier holds: the JPKI root and the CRL current at ``now``."""
        return TrustStore(self.ca.root_certificate, lambda: self.ca.crl(now))

    def card(self, resident_code: str, my_number: str, now: datetime) -> CardHolder:
        """The card of a resident (issued at first use, as at the card's 交付): its certificate lives in the card."""
        folder = self.folder / "cards" / resident_code
        if (folder / "chain.pem").exists():
            credential = Credential.load(folder)
        else:
            credential = self.ca.issue(f"card-{resident_code}", "JPKI", now, days=5 * 365)
            credential.save(folder)
            self.ca.save(self.folder / "ca")
        return CardHolder(resident_code, my_number, credential)

    def revoke_card(self, card: CardHolder, now: datetime) -> Result:
        def act(result: Result) -> None:
            self.ca.revoke(card.credential.certificate.serial_number, now)
            self.ca.save(self.folder / "ca")
            self.audit.append(
                at=now.isoformat(),
                kind="jpki.revoked",
                correlation_id=None,
                data={"serial": str(card.credential.certificate.serial_number)},
            )

        return self.command(now, None, act)


class EApplicationService(CityService[EApplicationRules]):
    """サービス検索・電子申請機能 (マイナポータル): forms per city, intake, and the download over LGWAN."""

    name_ja = "サービス検索・電子申請機能"
    name_en = "online application service"
    caller_part = "e_application"

    def __init__(self, party: str, conn: Any, security: MessageSecurity, directory: Directory) -> None:
        super().__init__(party, conn, security, directory)
        conn.executescript(
            """CREATE TABLE IF NOT EXISTS eapp_outbox (
                serial TEXT PRIMARY KEY, municipality TEXT NOT NULL, procedure TEXT NOT NULL,
                signed TEXT NOT NULL, received_at TEXT NOT NULL);"""
        )
        self._handlers[MessageType.EAPP_FETCH] = self._on_fetch

    def _form(self, municipality: str, procedure: str) -> tuple[EApplicationRules, Procedure]:
        rules = self.cities.get(municipality)
        form = next((p for p in rules.procedures if p.id == procedure), None) if rules else None
        if rules is None or form is None:
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED,
                "EAPP-003",
                f"{municipality} にはこの手続（{procedure}）の申請フォームがありません",
                f"{municipality} offers no form for procedure {procedure!r}",
                field="procedure",
            )
        return rules, form

    def submit(self, signed: dict[str, Any], now: datetime) -> Result:
        """The applicant sends a signed form: it must be one procedure's fixed fields, the number from the chip."""
        raw = signed.get("application")
        application: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
        municipality, procedure = str(application.get("municipality", "")), str(application.get("procedure", ""))

        def act(result: Result) -> None:
            missing = [k for k in ("serial", "municipality", "procedure", "fields") if k not in application]
            if missing or not isinstance(application.get("fields"), dict) or not {"signature", "chain"} <= set(signed):
                raise self.refuse(
                    RefusalCode.FIELD_MISSING,
                    "EAPP-003",
                    f"申請データの形式が正しくありません（不足: {', '.join(missing) or 'fields/signature'}）",
                    f"the submission is malformed (missing: {missing or ['fields or signature']})",
                    field=(missing or ["fields"])[0],
                )
            rules, form = self._form(municipality, procedure)
            extra = sorted(set(application["fields"]) - set(form.fields))
            if extra:
                raise self.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED,
                    "EAPP-003",
                    f"申請フォーム「{form.name_ja}」にない項目は送信できません: {', '.join(extra)}",
                    f"the form {form.id!r} has no fields {extra} (another procedure's or unneeded data)",
                    field="fields",
                )
            stray = sorted(set(application.get("attachments", [])) - set(form.attachments))
            if stray:
                raise self.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED,
                    "EAPP-003",
                    f"申請フォーム「{form.name_ja}」で定めていない添付は保存できません: {', '.join(stray)}",
                    f"the form {form.id!r} defines no attachment {stray}",
                    field="attachments",
                )
            self.allow(
                result,
                "EAPP-003",
                now,
                f"申請フォーム「{form.name_ja}」の項目だけを受け付けました",
                f"accepted only the fields of form {form.id!r}",
                None,
                procedure=procedure,
            )
            if rules.card_autofill is not None and "my_number" in application["fields"]:
                if application.get("my_number_source") != "card_chip":
                    raise self.refuse(
                        RefusalCode.FIELD_INVALID,
                        "EAPP-002",
                        "個人番号欄は個人番号カードから自動転記されます（手入力はできません）",
                        "the 個人番号 field is filled from the card chip; typing it is not possible",
                        field="my_number",
                    )
                self.allow(
                    result,
                    "EAPP-002",
                    now,
                    "個人番号はカードの記憶領域から自動転記されました",
                    "the 個人番号 was filled from the card's storage area",
                    None,
                )
            serial = str(application["serial"])
            self.conn.execute(
                "INSERT INTO eapp_outbox (serial, municipality, procedure, signed, received_at) VALUES (?,?,?,?,?)",
                (serial, municipality, procedure, json.dumps(signed, ensure_ascii=False), now.isoformat()),
            )
            result.value = serial

        return self.command(now, None, act)

    def _on_fetch(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        municipality, rules = self.subscriber(env, "EAPP-005")
        require_network(self, link, rules.network.network, "EAPP-005", "申請データの取得", "a download of applications")
        rows = self.conn.execute(
            "SELECT serial, signed FROM eapp_outbox WHERE municipality = ? ORDER BY received_at, serial",
            (municipality,),
        ).fetchall()
        result = Result()
        self.send(
            result,
            MessageType.EAPP_DELIVERY,
            env.sender,
            now,
            body={"count": len(rows)},
            personal={"applications": [json.loads(r[1]) for r in rows]},
            correlation_id=env.correlation_id,
        )
        self.conn.execute("DELETE FROM eapp_outbox WHERE municipality = ?", (municipality,))
        self.allow(
            result,
            "EAPP-005",
            now,
            "LGWAN回線で、暗号化した申請データを送りました",
            "sent the applications over LGWAN, encrypted to the city",
            env.correlation_id,
            network=link.network,
            sealed_for=env.sender,
            count=len(rows),
        )
        return result


class EApplication(Component):
    """申請管理システム of one city: the LGWAN terminal's temporary store and the 基幹 side's applications."""

    name_ja = "申請管理システム"
    name_en = "application management system"

    def __init__(
        self,
        party: str,
        conn: Any,
        security: MessageSecurity,
        directory: Directory,
        *,
        rules: EApplicationRules,
        registry: Registry,
        jpki: JpkiAuthority,
        staff: StaffDirectory,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.municipality = party.split(".")[0]
        self.rules = rules
        self.registry = registry  # 住基: the serial number → 宛名番号 conversion reads it (EAPP-004)
        self.jpki = jpki
        self.staff = staff
        conn.executescript(
            """CREATE TABLE IF NOT EXISTS eapp_terminal_files (
                serial TEXT PRIMARY KEY, stored_at TEXT NOT NULL, application TEXT NOT NULL, resident_code TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS eapp_applications (
                serial TEXT PRIMARY KEY, case_id TEXT NOT NULL, version INTEGER NOT NULL, procedure TEXT NOT NULL,
                business TEXT NOT NULL, atena_number TEXT NOT NULL, fields TEXT NOT NULL, imported_at TEXT NOT NULL,
                pulled_at TEXT, decision TEXT);
            CREATE TABLE IF NOT EXISTS eapp_dropped (
                serial TEXT PRIMARY KEY, at TEXT NOT NULL, code TEXT NOT NULL, control TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS eapp_media_disposals (
                media TEXT PRIMARY KEY, at TEXT NOT NULL, by_user TEXT NOT NULL, approved_by TEXT NOT NULL);"""
        )
        self._handlers[MessageType.EAPP_DELIVERY] = self._on_delivery

    # -- download on the LGWAN terminal --------------------------------------------------------------------

    def fetch(self, session: StaffSession, now: datetime) -> Result:
        """Authorised LGWAN-side staff download the city's applications from the service."""

        def act(result: Result) -> None:
            self.staff.require(
                session, DOWNLOAD_ROLE, "AUTH-005", "電子申請データのダウンロード", "download applications"
            )
            self.send(
                result,
                MessageType.EAPP_FETCH,
                SERVICE_PARTY,
                now,
                body={"municipality": self.municipality},
                correlation_id=uuid.uuid4().hex,
            )

        return self.command(now, None, act)

    def _on_delivery(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self.require_sender(env, {SERVICE_PARTY}, "EAPP-005", "申請データ")
        require_network(self, link, self.rules.network.network, "EAPP-005", "申請データ", "applications")
        delivered = sealed_payload(self, env, "EAPP-005", "申請データ", "the applications")
        result = Result()
        trust = self.jpki.trust(now)
        for signed in delivered.get("applications") or []:
            self._receive(result, trust, signed, now, env.correlation_id)
        return result

    def _receive(
        self, result: Result, trust: TrustStore, signed: dict[str, Any], now: datetime, correlation: str | None
    ) -> None:
        application = dict(signed.get("application") or {})
        serial = str(application.get("serial") or uuid.uuid4().hex[:16])
        try:
            try:
                resident_code = self._verify(result, trust, signed, now, correlation)
            except (KeyError, TypeError, ValueError) as err:
                # A signature, chain or form that does not even parse is no valid signature either.
                raise self.refuse(
                    RefusalCode.MALFORMED_MESSAGE,
                    "EAPP-001",
                    f"署名付き申請データを解釈できません（{type(err).__name__}）",
                    f"the signed application does not parse ({type(err).__name__})",
                    field="signature",
                ) from None
        except Refusal as refusal:
            # The payload is dropped; only the serial and the reason are kept, to tell the applicant to reapply.
            self.conn.execute(
                "INSERT OR REPLACE INTO eapp_dropped (serial, at, code, control) VALUES (?,?,?,?)",
                (serial, now.isoformat(), str(refusal.code), refusal.control_id),
            )
            result.decisions.append(
                self.decide(
                    refusal.control_id,
                    Outcome.DENY,
                    now,
                    reason_ja=refusal.reason_ja + "（再申請を案内します）",
                    reason_en=refusal.reason_en + " (the applicant is asked to reapply)",
                    correlation_id=correlation,
                    evidence={"serial": serial, "field": refusal.field},
                    code=str(refusal.code),
                )
            )
            return
        self.conn.execute(
            "INSERT OR IGNORE INTO eapp_terminal_files (serial, stored_at, application, resident_code)"
            " VALUES (?,?,?,?)",
            (serial, now.isoformat(), json.dumps(application, ensure_ascii=False), resident_code),
        )

    def _verify(
        self, result: Result, trust: TrustStore, signed: dict[str, Any], now: datetime, correlation: str | None
    ) -> str:
        """EAPP-001 (validity, revocation, tampering, impersonation) and EAPP-002; returns the signer's 住民票コード."""
        application = signed["application"]
        serial = str(application["serial"])
        chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in signed["chain"]]
        try:
            leaf = trust.validate(chain, now, component=self.party)
        except Refusal as refusal:
            raise self.refuse(
                refusal.code,
                "EAPP-001",
                "署名用電子証明書の有効性確認に失敗しました: " + refusal.reason_ja,
                "the signing certificate failed validation: " + refusal.reason_en,
                field="certificate",
            ) from None
        public_key = leaf.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        try:
            public_key.verify(
                base64.b64decode(signed["signature"]), canonical_json(application).encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            raise self.refuse(
                RefusalCode.BAD_SIGNATURE,
                "EAPP-001",
                "署名後に申請データが改ざんされています（改ざん検知）",
                "the application was altered after it was signed",
                field="signature",
            ) from None
        common_name = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        resident_code = str(common_name).removeprefix("card-")
        signer = self.registry.resident(resident_code)
        fields = application["fields"]
        if signer is None or (signer["name"], signer["birth_date"]) != (fields.get("name"), fields.get("birth_date")):
            raise self.refuse(
                RefusalCode.SENDER_MISMATCH,
                "EAPP-001",
                "署名者と申請者が一致しません（なりすまし）",
                "the signer is not the person the application names (impersonation)",
                field="name",
            )
        self.allow(
            result,
            "EAPP-001",
            now,
            "署名用電子証明書で署名を検証しました（有効性確認・改ざん検知・本人）",
            "verified the card signature (validity, revocation, integrity, signer)",
            correlation,
            serial=serial,
        )
        if self.rules.card_autofill is not None and "my_number" in fields:
            if fields["my_number"] != signer["my_number"]:
                raise self.refuse(
                    RefusalCode.SENDER_MISMATCH,
                    "EAPP-002",
                    "申請の個人番号が署名者の個人番号と一致しません",
                    "the 個人番号 on the form is not the signer's",
                    field="my_number",
                )
            self.allow(
                result,
                "EAPP-002",
                now,
                "申請の個人番号は署名者のカードの個人番号と一致します",
                "the 個人番号 on the form is the signer's",
                correlation,
                serial=serial,
            )
        return resident_code

    # -- into the 基幹 side ----------------------------------------------------------------------------------

    def import_to_core(self, session: StaffSession, now: datetime) -> Result:
        """Move the terminal's applications into the 基幹 side (serial → 宛名番号), then erase the terminal copy."""

        def act(result: Result) -> None:
            self.staff.require(session, DOWNLOAD_ROLE, "AUTH-005", "電子申請データの取込", "import applications")
            # Where the profile claims no erasure the terminal keeps its copies: take only those not yet moved.
            rows = self.conn.execute(
                "SELECT serial, application, resident_code FROM eapp_terminal_files"
                " WHERE serial NOT IN (SELECT serial FROM eapp_applications) ORDER BY stored_at, serial"
            ).fetchall()
            for serial, text, resident_code in rows:
                self._import(result, str(serial), json.loads(text), str(resident_code), now)
            if self.rules.terminal_erasure is not None:
                self.conn.execute("DELETE FROM eapp_terminal_files")
                left = self.conn.execute("SELECT COUNT(*) FROM eapp_terminal_files").fetchone()[0]
                self.allow(
                    result,
                    "EAPP-006",
                    now,
                    "自治体システムへ移行した後、LGWAN端末の申請データを完全消去しました",
                    "erased the applications from the LGWAN terminal once moved",
                    None,
                    moved=len(rows),
                    left_on_terminal=left,
                )
            result.value = [str(r[0]) for r in rows]

        return self.command(now, None, act)

    def _import(
        self, result: Result, serial: str, application: dict[str, Any], resident_code: str, now: datetime
    ) -> None:
        form = next(p for p in self.rules.procedures if p.id == application["procedure"])
        resident = self.registry.resident(resident_code)
        atena = str((resident or {}).get("business_atena_number") or "")
        if not atena:
            raise self.refuse(
                RefusalCode.NOT_FOUND,
                "EAPP-004",
                "住基に宛名番号がありません",
                "住基 has no 宛名番号 for the applicant",
                field="serial",
            )
        self.allow(
            result,
            "EAPP-004",
            now,
            "申請データのシリアル番号を住基の情報で宛名番号に変換しました",
            "converted the application's serial number to a 宛名番号 from 住基 data",
            None,
            serial=serial,
        )
        case_id, version = f"{form.id}:{atena}", 1
        if self.rules.versioning is not None:
            latest = self.conn.execute(
                "SELECT MAX(version) FROM eapp_applications WHERE case_id = ?", (case_id,)
            ).fetchone()[0]
            version = int(latest or 0) + 1
            self.allow(
                result,
                "EAPP-007",
                now,
                f"申請を第{version}版として履歴管理します",
                f"the application is version {version} of its case",
                None,
                case=case_id,
                version=version,
            )
        else:
            case_id = f"{case_id}:{serial}"
        self.conn.execute(
            "INSERT INTO eapp_applications (serial, case_id, version, procedure, business, atena_number, fields,"
            " imported_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                serial,
                case_id,
                version,
                form.id,
                form.business,
                atena,
                json.dumps({k: v for k, v in application["fields"].items() if k in form.fields}, ensure_ascii=False),
                now.isoformat(),
            ),
        )

    def terminal_check(self, now: datetime) -> Result:
        """業務終了後の確認: nothing may be left on the LGWAN terminal from an earlier day (EAPP-006)."""

        def act(result: Result) -> None:
            left = [
                str(r[0])
                for r in self.conn.execute(
                    "SELECT serial FROM eapp_terminal_files WHERE substr(stored_at, 1, 10) < ?",
                    (now.date().isoformat(),),
                )
            ]
            if left:
                raise self.refuse(
                    RefusalCode.NOT_ERASED,
                    "EAPP-006",
                    f"業務終了後もLGWAN端末に申請データが残っています（{len(left)}件）",
                    f"{len(left)} applications were left on the LGWAN terminal after the day's work",
                    field="terminal",
                )
            self.allow(
                result,
                "EAPP-006",
                now,
                "LGWAN端末に申請データは残っていません",
                "nothing is left on the LGWAN terminal",
                None,
            )

        return self.command(now, None, act)

    def dispose_media(self, session: StaffSession, media: str, approver: StaffSession | None, now: datetime) -> Result:
        """Disposal of an external medium that held application data needs an administrator's approval."""

        def act(result: Result) -> None:
            if approver is None or not self.staff.has_role(approver, ADMIN_ROLE) or approver.user_id == session.user_id:
                raise self.refuse(
                    RefusalCode.ROLE_MISSING,
                    "EAPP-006",
                    "外部記憶媒体の廃棄には管理者の承認が必要です",
                    "disposing of an external medium needs an administrator's approval",
                    field="approver",
                )
            self.conn.execute(
                "INSERT INTO eapp_media_disposals (media, at, by_user, approved_by) VALUES (?,?,?,?)",
                (media, now.isoformat(), session.user_id, approver.user_id),
            )
            self.allow(
                result,
                "EAPP-006",
                now,
                "管理者の承認を得て外部記憶媒体を廃棄しました",
                "disposed of the medium with an administrator's approval",
                None,
                media=media,
                approved_by=approver.user_id,
            )

        return self.command(now, None, act)

    # -- business systems pull; nothing else is joined ------------------------------------------------------

    def pull(self, business: str, now: datetime) -> Result:
        """A business system asks for its applications (latest version of each case, with the 宛名番号 only)."""

        def act(result: Result) -> None:
            rows = self.conn.execute(
                "SELECT a.serial, a.procedure, a.atena_number, a.version, a.fields FROM eapp_applications a"
                " WHERE a.business = ? AND a.version = (SELECT MAX(version) FROM eapp_applications b"
                " WHERE b.case_id = a.case_id) ORDER BY a.imported_at, a.serial",
                (business,),
            ).fetchall()
            self.conn.execute(
                "UPDATE eapp_applications SET pulled_at = ? WHERE business = ? AND pulled_at IS NULL",
                (now.isoformat(), business),
            )
            self.allow(
                result,
                "EAPP-004",
                now,
                f"{business}システムの要求に基づき申請データを渡しました",
                f"handed the applications to the {business} system on its request",
                None,
                business=business,
                count=len(rows),
            )
            result.value = [
                {"serial": r[0], "procedure": r[1], "atena_number": r[2], "version": r[3], "fields": json.loads(r[4])}
                for r in rows
            ]

        return self.command(now, None, act)

    def push(self, serial: str, business: str, now: datetime) -> Result:
        """Sending an application to a business system that did not ask: never done (EAPP-004)."""
        return self._never_done(
            now,
            RefusalCode.QUERY_NOT_OPEN,
            f"{business}システムからの要求がないため申請データを送りません",
            f"the {business} system did not request it; applications are only pulled",
            "business",
        )

    def enrich(self, serial: str, source: str, now: datetime) -> Result:
        """Joining another system's data to an application: never done; only the 宛名番号 conversion links it."""
        return self._never_done(
            now,
            RefusalCode.SOURCE_NOT_ALLOWED,
            f"申請データに{source}の情報を紐付けることはできません（宛名番号の設定のみ）",
            f"applications are never joined with {source} data; only the 宛名番号 is set",
            "source",
        )

    def _never_done(self, now: datetime, code: RefusalCode, reason_ja: str, reason_en: str, field: str) -> Result:
        """What the 申請管理システム never does with an application (EAPP-004): refused, logged, nothing written."""
        return self.refused(self.refuse(code, "EAPP-004", reason_ja, reason_en, field), now, correlation_id=None)

    def review(self, session: StaffSession, serial: str, outcome: str, now: datetime) -> Result:
        """A reviewer records a decision on one version; only the latest version of a case may be decided."""

        def act(result: Result) -> None:
            row = self.conn.execute(
                "SELECT case_id, version FROM eapp_applications WHERE serial = ?", (serial,)
            ).fetchone()
            if row is None:
                raise self.refuse(
                    RefusalCode.NOT_FOUND, "EAPP-007", "その申請はありません", "no such application", field="serial"
                )
            latest = self.conn.execute(
                "SELECT MAX(version) FROM eapp_applications WHERE case_id = ?", (row[0],)
            ).fetchone()[0]
            if self.rules.versioning is not None and int(row[1]) < int(latest):
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "EAPP-007",
                    f"第{row[1]}版には審査結果を記録できません（最新は第{latest}版）",
                    f"version {row[1]} is outdated (latest is {latest}); decide the latest version",
                    field="version",
                )
            self.conn.execute("UPDATE eapp_applications SET decision = ? WHERE serial = ?", (outcome, serial))
            if self.rules.versioning is not None:
                self.allow(
                    result,
                    "EAPP-007",
                    now,
                    f"最新の第{row[1]}版で審査結果を記録しました",
                    f"recorded the decision on the latest version {row[1]}",
                    None,
                    serial=serial,
                )

        return self.command(now, None, act)

    def review_queue(self) -> list[dict[str, Any]]:
        """The latest version of each case (what a reviewer sees)."""
        rows = self.conn.execute(
            "SELECT a.serial, a.case_id, a.version FROM eapp_applications a WHERE a.version = (SELECT MAX(version)"
            " FROM eapp_applications b WHERE b.case_id = a.case_id) ORDER BY a.case_id"
        ).fetchall()
        return [{"serial": r[0], "case": r[1], "version": r[2]} for r in rows]

    def terminal_files(self) -> list[str]:
        return [str(r[0]) for r in self.conn.execute("SELECT serial FROM eapp_terminal_files")]
