"""A small world for the EAPP/SAAS/CLOUD component tests: つくば市's parts as its profile data claims them.

Real PKI (the world's CA and a separate JPKI CA for card certificates), real signatures and sealing, real SQLite
files, a real 既存住基 with five residents, and a delivery loop that hands each message to its recipient.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from simulator.components.base import Component, Directory, Link, Outgoing, Result
from simulator.components.cloud import BACKUP_CENTER, BackupCenter, BackupClient, FileServer, GovCloud
from simulator.components.eapp import JPKI_PARTY, SERVICE_PARTY, EApplication, EApplicationService, JpkiAuthority
from simulator.components.eapp_saas_cloud import STARTING_STAFF, area_rules
from simulator.components.registry import Registry
from simulator.components.saas import AiOcr, CounterSaas
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.crypto import CertificateAuthority, MessageSecurity, ReplayGuard, TrustStore
from simulator.identifiers import my_number_from_resident_code, new_resident_code
from simulator.store.db import connect

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=timezone(timedelta(hours=9), "JST"))
PASSWORD = "correct horse battery staple"
M = "tsukuba"
C = TypeVar("C", bound=Component)


@dataclass
class EappWorld:
    now: datetime
    directory: Directory
    registry: Registry
    jpki: JpkiAuthority
    service: EApplicationService
    e_app: EApplication
    ocr: AiOcr
    dx: CounterSaas
    cloud: GovCloud
    files: FileServer
    backup_client: BackupClient
    backup_center: BackupCenter
    residents: list[dict[str, Any]]
    stores: dict[str, Any]
    delivered: list[tuple[Outgoing, Result]] = field(default_factory=list)

    def components(self) -> dict[str, Component]:
        parts: list[Component] = [self.registry, self.jpki, self.service, self.e_app, self.backup_center]
        return {c.party: c for c in parts}

    def tick(self, delta: timedelta = timedelta(milliseconds=5)) -> datetime:
        self.now += delta
        return self.now

    def deliver(self, outgoing: list[Outgoing]) -> list[Result]:
        queue: deque[Outgoing] = deque(outgoing)
        results: list[Result] = []
        while queue:
            message = queue.popleft()
            receiver = self.components().get(message.recipient)
            if receiver is None:
                continue
            result = receiver.handle(message.wire, Link(message.envelope.sender, message.network), self.tick())
            self.delivered.append((message, result))
            results.append(result)
            queue.extend(result.outgoing)
        return results

    def step(self, action: Callable[[datetime], Result]) -> tuple[Result, list[Result]]:
        result = action(self.tick())
        return result, self.deliver(result.outgoing)

    def staff(self, directory: StaffDirectory, user: str) -> StaffSession:
        return directory.authenticate(user, PASSWORD)


def _residents() -> list[dict[str, Any]]:
    key = bytes(range(32))
    rows = []
    for i, (name, birth) in enumerate(
        [
            ("筑波 太郎", "1970-05-01"),
            ("筑波 花子", "1972-08-15"),
            ("研究 一郎", "1985-02-03"),
            ("学園 次郎", "1990-11-30"),
            ("桜 三子", "2001-07-07"),
        ]
    ):
        code = new_resident_code()
        rows.append(
            {
                "resident_code": code,
                "my_number": my_number_from_resident_code(code, key),
                "name": name,
                "name_kana": "ツクバ",
                "birth_date": birth,
                "sex": "1",
                "address": f"茨城県つくば市研究学園{i + 1}番地",
                "postal_code": "305-0817",
                "household_id": f"H{i:04d}",
                "relationship": "世帯主",
                "is_head": True,
                "moved_in_on": "2010-04-01",
            }
        )
    return rows


def _starting_staff(conn: Any, suffix: str) -> StaffDirectory:
    """The part's staff directory with the accounts the installer gives it (all with PASSWORD)."""
    staff = StaffDirectory(conn, f"{M}.{suffix}")
    for user, name, roles in STARTING_STAFF[suffix]:
        staff.add(user, name, set(roles), PASSWORD)
    return staff


def build_eapp_world(tmp_path: Path) -> EappWorld:
    now = T0
    rules = area_rules(M)
    assert rules.e_application and rules.ai_ocr and rules.counter_saas and rules.gov_cloud
    assert rules.file_server and rules.backup_center
    ca = CertificateAuthority.create("eapp test", now - timedelta(days=1))
    trust = TrustStore(ca.root_certificate, ca.current_crl)
    directory = Directory()
    orgs = (M, "jlis", "eapp_service", "asp", "cloud", "jlis_backup")
    stores = {org: connect(tmp_path / f"{org}.sqlite") for org in orgs}

    def security(party: str, org: str) -> MessageSecurity:
        credential = ca.issue(party, org, now - timedelta(days=1))
        directory.publish(party, credential.certificate)
        return MessageSecurity(credential, trust, ReplayGuard(stores[org], timedelta(minutes=10)))

    def part(build: Callable[..., C], party: str, org: str, **parts: Any) -> C:
        return build(party, stores[org], security(party, org), directory, **parts)

    registry_staff = StaffDirectory(stores[M], f"{M}.registry")
    registry_staff.add("clerk-a", "窓口 花子", {"registry_clerk"}, PASSWORD)
    registry_staff.add("dept-head", "市民課長 四郎", {"department_head"}, PASSWORD)
    registry = part(
        Registry,
        f"{M}.registry",
        M,
        municipality=M,
        cs_party=f"{M}.municipal_cs",
        atena_party=f"{M}.atena",
        staff=registry_staff,
    )
    jpki = part(JpkiAuthority, JPKI_PARTY, "jlis", folder=tmp_path / "jpki", fresh=True, start=now - timedelta(days=1))
    service = part(EApplicationService, SERVICE_PARTY, "eapp_service")
    service.add_city(M, rules.e_application)
    eapp_staff = _starting_staff(stores[M], "e_application")
    e_app = part(
        EApplication, f"{M}.e_application", M, rules=rules.e_application, registry=registry, jpki=jpki, staff=eapp_staff
    )
    directory.connect(e_app.party, SERVICE_PARTY, rules.e_application.network.network)
    ocr = part(AiOcr, f"{M}.ai_ocr", "asp", rules=rules.ai_ocr)
    dx = part(CounterSaas, f"{M}.counter_saas", M, rules=rules.counter_saas, core_staff=registry_staff)
    cloud = part(GovCloud, f"{M}.gov_cloud", "cloud", rules=rules.gov_cloud)
    fs_staff = _starting_staff(stores[M], "file_server")
    files = part(FileServer, f"{M}.file_server", M, rules=rules.file_server, staff=fs_staff)
    client = part(BackupClient, f"{M}.backup_client", M)
    center = part(BackupCenter, BACKUP_CENTER, "jlis_backup", storage_key=bytes(range(32)))
    center.add_city(M, rules.backup_center)
    directory.connect(client.party, BACKUP_CENTER, rules.backup_center.network)
    world = EappWorld(
        now, directory, registry, jpki, service, e_app, ocr, dx, cloud, files, client, center, _residents(), stores
    )
    world.step(lambda at: registry.bulk_load(world.residents, at))
    return world


@pytest.fixture
def eapp_world(tmp_path: Path) -> Iterator[EappWorld]:
    world = build_eapp_world(tmp_path)
    yield world
    for conn in world.stores.values():
        conn.close()
