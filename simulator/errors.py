"""Refusals: the one exception every enforcement point raises when it says no.

A refusal carries a stable, hierarchical code (X-Road style: where it failed, then what), the component
that refused, the control id from the catalogue, and a sentence a clerk can read in Japanese and English.
This module must never decide anything itself; it only names and describes decisions made elsewhere.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["InputError", "Refusal", "RefusalCode"]


class RefusalCode(StrEnum):
    """Stable codes. Never renumber or rename one: reports, traces and load tests match on them."""

    # Message security (every hop)
    BAD_SIGNATURE = "Security.BadSignature"
    MALFORMED_MESSAGE = "Security.MalformedMessage"
    UNKNOWN_CERTIFICATE = "Security.UnknownCertificate"
    REVOKED_CERTIFICATE = "Security.RevokedCertificate"
    EXPIRED_CERTIFICATE = "Security.ExpiredCertificate"
    SENDER_MISMATCH = "Security.SenderMismatch"
    WRONG_RECIPIENT = "Security.WrongRecipient"
    REPLAYED_MESSAGE = "Security.ReplayedMessage"
    STALE_MESSAGE = "Security.StaleMessage"
    DECRYPTION_FAILED = "Security.DecryptionFailed"
    NOT_ENCRYPTED = "Security.NotEncrypted"
    # Connections and who may talk to whom
    SOURCE_NOT_ALLOWED = "Access.SourceNotAllowed"
    SYSTEM_NOT_REGISTERED = "Access.SystemNotRegistered"
    TENANT_MISMATCH = "Access.TenantMismatch"
    NO_ROUTE = "Access.NoRoute"  # no network path exists at all (NET-002: separated from the internet)
    # Staff authentication and roles
    NOT_AUTHENTICATED = "Auth.NotAuthenticated"
    ROLE_MISSING = "Auth.RoleMissing"
    ACCOUNT_DISABLED = "Auth.AccountDisabled"
    SAME_PERSON_CONFIRMATION = "Auth.SamePersonConfirmation"
    BIOMETRIC_MISMATCH = "Auth.BiometricMismatch"
    PASSWORD_EXPIRED = "Auth.PasswordExpired"
    RIGHT_EXPIRED = "Auth.RightExpired"
    NO_APPROVED_APPLICATION = "Auth.NoApprovedApplication"
    LOG_INCOMPLETE = "Log.EntryIncomplete"
    LOG_TAMPERED = "Log.ChainBroken"
    # Input validation
    FIELD_NOT_ALLOWED = "Input.FieldNotAllowed"
    FIELD_INVALID = "Input.FieldInvalid"
    FIELD_MISSING = "Input.FieldMissing"
    STATE_CONFLICT = "Input.StateConflict"
    NOT_FOUND = "Input.NotFound"
    SEARCH_TOO_BROAD = "Input.SearchTooBroad"
    # 番号制度 permissions
    NOT_ON_PERMISSION_LIST = "Permission.NotOnPermissionList"
    PERMIT_INVALID = "Permission.PermitInvalid"
    PERMIT_REUSED = "Permission.PermitReused"
    PERMIT_EXPIRED = "Permission.PermitExpired"
    ROUTE_MISMATCH = "Permission.RouteMismatch"
    LINKAGE_CODE_UNKNOWN = "Permission.LinkageCodeUnknown"
    LINKAGE_CODE_NOT_OBTAINED = "Permission.LinkageCodeNotObtained"
    SERIAL_INVALID = "Permission.ProcessingSerialInvalid"
    QUERY_NOT_OPEN = "Permission.QueryNotOpen"
    REPLY_MISMATCH = "Permission.ReplyMismatch"
    HELD_FOR_REVIEW = "Permission.HeldForReview"
    RELEASE_REFUSED = "Permission.ReleaseRefused"
    # Data lifecycle (backup, retention, deletion)
    RETENTION_NOT_ENDED = "Data.RetentionNotEnded"
    BACKUP_MISSED = "Data.BackupMissed"
    BACKUP_INVALID = "Data.BackupInvalid"
    NOT_ERASED = "Data.NotErased"  # data past its hand-off or retention is still held (EAPP-006, SAAS-001/005)
    # Contractors (委託先)
    NOT_ON_ROSTER = "Contract.NotOnRoster"
    CONTRACT_ENDED = "Contract.Ended"
    OFF_PREMISES = "Contract.OffPremises"
    SUBCONTRACT_NOT_APPROVED = "Contract.SubcontractNotApproved"
    WORK_RECORD_MISSING = "Contract.WorkRecordMissing"
    FILE_PASSWORD_WRONG = "Contract.FilePasswordWrong"


class Refusal(Exception):
    """An enforcement point said no. ``control_id`` is the catalogue id of the control that decided."""

    def __init__(
        self,
        code: RefusalCode,
        *,
        component: str,
        control_id: str,
        reason_ja: str,
        reason_en: str,
        field: str | None = None,
    ) -> None:
        self.code = code
        self.component = component
        self.control_id = control_id
        self.reason_ja = reason_ja
        self.reason_en = reason_en
        self.field = field
        super().__init__(f"[{code}] {component} ({control_id}): {reason_en}")

    def as_dict(self) -> dict[str, str | None]:
        return {
            "code": str(self.code),
            "component": self.component,
            "control_id": self.control_id,
            "reason_ja": self.reason_ja,
            "reason_en": self.reason_en,
            "field": self.field,
        }


class InputError(ValueError):
    """Bad input from a person or a file (not a protocol refusal): names the field and the rule broken."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")
