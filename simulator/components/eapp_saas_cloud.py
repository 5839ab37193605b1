"""電子申請・外部SaaS・ガバメントクラウド: each profile's facts (scenarios/data/eapp_saas_cloud.yaml) and the installer.

The data says, per profile and with its seed citation, which of these parts the municipality runs and with which
parameters (forms, networks, retention days, sites); `install(world)` adds exactly those parts for every
municipality of the world. It must never invent a part the profile does not claim, nor seed a reopened world.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulator.components.staff import StaffDirectory
from simulator.model.area_data import DATA_DIR, Cited, load_area_file

if TYPE_CHECKING:
    from simulator.components.base import Component
    from simulator.world import World

__all__ = [
    "STARTING_STAFF",
    "AiOcrRules",
    "AreaRules",
    "BackupCenterRules",
    "CounterSaasRules",
    "EApplicationRules",
    "FileServerRules",
    "GovCloudRules",
    "Procedure",
    "area_rules",
    "data_path",
    "install",
]

C = TypeVar("C", bound="Component")

#: The synthetic staff accounts a part starts with (user, name, roles), where a part keeps its own staff directory.
STARTING_STAFF: dict[str, tuple[tuple[str, str, frozenset[str]], ...]] = {
    "e_application": (
        ("eapp-dl", "電子申請 受付担当", frozenset({"eapp_download"})),
        ("eapp-admin", "電子申請 管理者", frozenset({"eapp_download", "eapp_admin"})),
        ("eapp-clerk", "電子申請 閲覧者", frozenset({"eapp_viewer"})),
    ),
    "file_server": (
        ("net-op", "ネットワーク 運用者", frozenset({"network_operator"})),
        ("fs-clerk", "基幹 担当者", frozenset({"specific_personal_info"})),
    ),
}


class Procedure(Cited):
    """One 申請フォーム: a single procedure with a fixed field set and the attachments it defines (EAPP-003)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name_ja: str = Field(min_length=1)
    business: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # the business system that pulls it (EAPP-004)
    fields: tuple[str, ...] = Field(min_length=1)
    attachments: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _identity_fields(self) -> Procedure:
        # The city compares the claimed applicant with the signer's 4情報 (EAPP-001): the form must ask for them.
        missing = {"name", "birth_date"} - set(self.fields)
        if missing:
            raise ValueError(f"fields must include {sorted(missing)} (the applicant's identity is checked)")
        return self


class NetworkFact(Cited):
    network: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


class EApplicationRules(BaseModel):
    """マイナポータル申請管理 (サービス検索・電子申請機能 → 申請管理システム) as the profile describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: NetworkFact  # EAPP-005: the only segment between the service and the city
    procedures: tuple[Procedure, ...] = Field(min_length=1)  # EAPP-003
    signature: Cited  # EAPP-001
    conversion: Cited  # EAPP-004: serial number → 宛名番号, the only join
    card_autofill: Cited | None = None  # EAPP-002
    terminal_erasure: Cited | None = None  # EAPP-006
    versioning: Cited | None = None  # EAPP-007

    @field_validator("procedures")
    @classmethod
    def _unique(cls, v: tuple[Procedure, ...]) -> tuple[Procedure, ...]:
        ids = [p.id for p in v]
        if len(ids) != len(set(ids)):
            raise ValueError(f"procedure ids must be unique: {ids}")
        return v


class SegmentsFact(Cited):
    terminal_segments: tuple[str, ...] = Field(min_length=1)


class AiOcrRules(Cited):
    """AI-OCR (LGWAN-ASP型): retention, training use and where it may be used from (SAAS-001, SAAS-002)."""

    retention_days: int = Field(ge=1)
    training_use: bool
    terminal_segments: tuple[str, ...] = Field(min_length=1)
    server_network: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    my_number_content: SegmentsFact | None = None  # where a form carrying a 個人番号 may be sent from (by content)

    @model_validator(mode="after")
    def _content_segments_known(self) -> AiOcrRules:
        if self.my_number_content is not None:
            unknown = sorted(set(self.my_number_content.terminal_segments) - set(self.terminal_segments))
            if unknown:
                raise ValueError(f"my_number_content segments {unknown} must be among terminal_segments")
        return self


class CounterSaasRules(Cited):
    """窓口DXSaaS: 基幹 rights (SAAS-003), registered external endpoints (SAAS-004), staging erasure (SAAS-005)."""

    core_roles: tuple[str, ...] = Field(min_length=1)  # roles of the 基幹業務システム that open the DXSaaS
    endpoints: tuple[str, ...] = Field(min_length=1)
    staging_erasure: Cited


class GovCloudRules(Cited):
    """ガバメントクラウド: residency, certification, sites (CLOUD-001); isolation and monitoring (CLOUD-002)."""

    residency: str = Field(pattern=r"^[A-Z]{2}$")
    certifications: tuple[str, ...] = Field(min_length=1)
    production_site: str = Field(min_length=1)
    sites: dict[str, str] = Field(min_length=2)  # data centre → country code
    isolation: Cited | None = None  # CLOUD-002
    alert_after_denials: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _production_known(self) -> GovCloudRules:
        if self.production_site not in self.sites:
            raise ValueError(f"production_site {self.production_site!r} must be one of sites {sorted(self.sites)}")
        return self


class FileServerRules(Cited):
    """基幹系ファイルサーバ: the 特定個人情報 area is out of the network operator's reach (CLOUD-003)."""

    protected_shares: tuple[str, ...] = Field(min_length=1)
    operator_shares: tuple[str, ...] = Field(min_length=1)


class BackupCenterRules(Cited):
    """J-LIS クラウド型バックアップセンター: the only path and encryption at rest (CLOUD-004)."""

    network: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


class AreaRules(BaseModel):
    """What one profile claims of these parts; a part left out is not installed for that municipality."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    e_application: EApplicationRules | None = None
    ai_ocr: AiOcrRules | None = None
    counter_saas: CounterSaasRules | None = None
    gov_cloud: GovCloudRules | None = None
    file_server: FileServerRules | None = None
    backup_center: BackupCenterRules | None = None


def data_path() -> Path:
    return DATA_DIR / "eapp_saas_cloud.yaml"


def area_rules(profile: str, path: Path | None = None) -> AreaRules:
    """One profile's entry, validated; a profile without an entry claims none of these parts."""
    return load_area_file(path or data_path(), AreaRules).get(profile, AreaRules())


def _add_part(world: World, party: str, org: str, build: Callable[..., C], signs_for: str = "", **parts: Any) -> C:
    """Add ``party``, keeping its state in ``org``'s store and signing as a party of ``signs_for`` (default ``org``)."""
    component = build(party, world.store(org), world.security(party, signs_for or org), world.directory, **parts)
    world.components[party] = component
    return component


def _staff(world: World, db: Any, municipality: str, suffix: str) -> StaffDirectory:
    """The staff directory of the municipality's part ``suffix``, with its starting accounts."""
    staff = StaffDirectory(db, f"{municipality}.{suffix}")
    for user, name, roles in STARTING_STAFF[suffix]:
        world.add_staff(staff, user, name, set(roles))
    return staff


def install(world: World) -> None:
    """Add, for every municipality of the world, the parts its profile claims (and the shared national parts)."""
    from simulator.components.cloud import BACKUP_CENTER, BackupCenter, BackupClient, FileServer, GovCloud
    from simulator.components.eapp import JPKI_PARTY, SERVICE_PARTY, EApplication, EApplicationService, JpkiAuthority
    from simulator.components.saas import AiOcr, CounterSaas

    claims = {m.key: area_rules(m.key) for m in world.spec.municipalities}
    service: EApplicationService | None = None
    jpki: JpkiAuthority | None = None
    center: BackupCenter | None = None
    if any(r.e_application for r in claims.values()):
        jpki = _add_part(
            world,
            JPKI_PARTY,
            "jlis",
            JpkiAuthority,
            folder=world.data_dir / "keys" / "jpki",
            fresh=world.fresh,
            start=world.spec.start,
        )
        service = _add_part(world, SERVICE_PARTY, "eapp_service", EApplicationService)
    if any(r.backup_center for r in claims.values()):
        storage_key = world.key("jlis.backup_center.storage")
        center = _add_part(world, BACKUP_CENTER, "jlis_backup", BackupCenter, "jlis", storage_key=storage_key)
    for key, rules in claims.items():
        db = world.store(key)
        if rules.e_application is not None and service is not None and jpki is not None:
            staff = _staff(world, db, key, "e_application")
            e_app = _add_part(
                world,
                f"{key}.e_application",
                key,
                EApplication,
                rules=rules.e_application,
                registry=world.registry(key),
                jpki=jpki,
                staff=staff,
            )
            service.add_city(key, rules.e_application)
            world.directory.connect(e_app.party, SERVICE_PARTY, rules.e_application.network.network)
        if rules.ai_ocr is not None:
            _add_part(world, f"{key}.ai_ocr", f"asp_{key}", AiOcr, rules=rules.ai_ocr)
        if rules.counter_saas is not None:
            _add_part(
                world,
                f"{key}.counter_saas",
                key,
                CounterSaas,
                rules=rules.counter_saas,
                core_staff=world.registry(key).staff,
            )
        if rules.gov_cloud is not None:
            _add_part(world, f"{key}.gov_cloud", f"gov_cloud_{key}", GovCloud, rules=rules.gov_cloud)
        if rules.file_server is not None:
            staff = _staff(world, db, key, "file_server")
            _add_part(world, f"{key}.file_server", key, FileServer, rules=rules.file_server, staff=staff)
        if rules.backup_center is not None and center is not None:
            client = _add_part(world, f"{key}.backup_client", key, BackupClient)
            center.add_city(key, rules.backup_center)
            world.directory.connect(client.party, BACKUP_CENTER, rules.backup_center.network)
