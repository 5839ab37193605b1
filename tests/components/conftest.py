"""A tiny 住基ネット world for the jukinet component tests: one municipality (桑名市), 三重県's server, 全国サーバ.

Real PKI, real signatures and encryption, real SQLite files (one per organisation), and a delivery loop that
hands each message to the component named as its recipient. Messages for parties outside this world (宛名,
NWS) are kept in ``outside`` so the tests can inspect exactly what crossed the boundary.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from simulator.components.base import Component, Directory, Link, Outgoing, Result
from simulator.components.jlis import NationalServer, PrefecturalServer
from simulator.components.municipal_cs import MunicipalCS
from simulator.components.registry import Registry
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.crypto import CertificateAuthority, MessageSecurity, ReplayGuard, TrustStore
from simulator.identifiers import my_number_from_resident_code, new_resident_code
from simulator.store.db import connect

JUKINET_JST = timezone(timedelta(hours=9), "JST")
JUKINET_T0 = datetime(2026, 4, 1, 9, 0, tzinfo=JUKINET_JST)
JUKINET_PASSWORD = "correct horse battery staple"

M = "kuwana"
REGISTRY, CS, ATENA, TAX = f"{M}.registry", f"{M}.municipal_cs", f"{M}.atena", f"{M}.tax"
PS, NS, NWS = "jlis.prefectural_server.mie", "jlis.national_server", "nws.core"


@dataclass
class Delivered:
    outgoing: Outgoing
    result: Result | None  # None: the recipient is outside this world


@dataclass
class JukinetWorld:
    now: datetime
    directory: Directory
    securities: dict[str, MessageSecurity]
    registry: Registry
    cs: MunicipalCS
    ps: PrefecturalServer
    ns: NationalServer
    senders: dict[str, Component]  # parties without a component here, able to sign and send (宛名, 税務, NWS)
    residents: list[dict[str, Any]]
    stores: dict[str, Any]
    outside: list[Outgoing] = field(default_factory=list)
    delivered: list[Delivered] = field(default_factory=list)

    def components(self) -> dict[str, Component]:
        return {c.party: c for c in (self.registry, self.cs, self.ps, self.ns)}

    def tick(self) -> datetime:
        self.now += timedelta(milliseconds=5)
        return self.now

    def deliver(self, result: Result, limit: int | None = None) -> list[Delivered]:
        """Deliver what ``result`` sends and everything that causes, breadth first (at most ``limit`` hops)."""
        queue: deque[Outgoing] = deque(result.outgoing)
        hops: list[Delivered] = []
        components = self.components()
        while queue and (limit is None or len(hops) < limit):
            outgoing = queue.popleft()
            receiver = components.get(outgoing.recipient)
            if receiver is None:
                self.outside.append(outgoing)
                hops.append(Delivered(outgoing, None))
                continue
            step = receiver.handle(outgoing.wire, Link(source=outgoing.envelope.sender, network=outgoing.network),
                                   self.tick())
            hops.append(Delivered(outgoing, step))
            queue.extend(step.outgoing)
        self.delivered.extend(hops)
        return hops

    def step(self, action: Callable[[datetime], Result]) -> tuple[Result, list[Delivered]]:
        result = action(self.tick())
        return result, self.deliver(result)

    def clerk(self, user_id: str) -> StaffSession:
        return self.registry.staff.authenticate(user_id, JUKINET_PASSWORD)

    def operator(self, user_id: str) -> StaffSession:
        return self.cs.staff.authenticate(user_id, JUKINET_PASSWORD)


def _residents() -> list[dict[str, Any]]:
    key = bytes(range(32))  # the generator's own key: any valid 個人番号 will do for loaded residents
    people = [
        ("桑名 太郎", "クワナ タロウ", "1970-05-01", "1", "H0001", "世帯主", True),
        ("桑名 花子", "クワナ ハナコ", "1972-08-15", "2", "H0001", "妻", False),
        ("桑名 一郎", "クワナ イチロウ", "2001-02-03", "1", "H0001", "子", False),
        ("多度 次郎", "タド ジロウ", "1970-05-01", "1", "H0002", "世帯主", True),
        ("長島 三郎", "ナガシマ サブロウ", "1985-12-24", "1", "H0003", "世帯主", True),
    ]
    addresses = {
        "H0001": ("三重県桑名市中央町二丁目37番地", "511-8601"),
        "H0002": ("三重県桑名市多度町多度1番地", "511-0106"),
        "H0003": ("三重県桑名市長島町松ケ島10番地", "511-1131"),
    }
    rows = []
    for name, kana, birth, sex, household, relationship, head in people:
        code = new_resident_code()
        rows.append(
            {
                "resident_code": code,
                "my_number": my_number_from_resident_code(code, key),
                "name": name,
                "name_kana": kana,
                "birth_date": birth,
                "sex": sex,
                "address": addresses[household][0],
                "postal_code": addresses[household][1],
                "household_id": household,
                "relationship": relationship,
                "is_head": head,
                "moved_in_on": "2010-04-01",
            }
        )
    return rows


def build_jukinet_world(tmp_path: Path, *, publish: bool = True) -> JukinetWorld:
    now = JUKINET_T0
    ca = CertificateAuthority.create("jukinet test", now - timedelta(days=1))
    trust = TrustStore(ca.root_certificate, ca.current_crl)
    directory = Directory()
    stores = {org: connect(tmp_path / f"{org}.sqlite") for org in (M, "jlis", "nws")}
    org_of = {REGISTRY: M, CS: M, ATENA: M, TAX: M, PS: "jlis", NS: "jlis", NWS: "nws"}
    securities: dict[str, MessageSecurity] = {}
    for party, org in org_of.items():
        credential = ca.issue(party, org, now - timedelta(days=1))
        directory.publish(party, credential.certificate)
        securities[party] = MessageSecurity(credential, trust, ReplayGuard(stores[org], timedelta(minutes=10)))
    for a, b, network in (
        (REGISTRY, CS, "office_lan"),
        (REGISTRY, ATENA, "office_lan"),
        (CS, PS, "jukinet"),
        (CS, NS, "jukinet"),
        (PS, NS, "jukinet"),
        (NS, NWS, "lgwan"),
        (TAX, CS, "office_lan"),  # a mis-cabled LAN: the business system can reach CS, and CS must refuse it
    ):
        directory.connect(a, b, network)
    registry_staff = StaffDirectory(stores[M], REGISTRY)
    registry_staff.add("clerk-a", "窓口 花子", {"registry_clerk"}, JUKINET_PASSWORD)
    registry_staff.add("clerk-b", "確認 太郎", {"registry_clerk"}, JUKINET_PASSWORD)
    registry_staff.add("viewer", "閲覧 次郎", {"registry_viewer"}, JUKINET_PASSWORD)
    cs_staff = StaffDirectory(stores[M], CS)
    cs_staff.add("cs-op", "住基 端末操作者", {"cs_operator"}, JUKINET_PASSWORD)
    cs_staff.add("no-priv", "一般 職員", {"registry_clerk"}, JUKINET_PASSWORD)
    registry = Registry(REGISTRY, stores[M], securities[REGISTRY], directory, municipality=M, cs_party=CS,
                        atena_party=ATENA, staff=registry_staff)
    cs = MunicipalCS(CS, stores[M], securities[CS], directory, registry_party=REGISTRY, prefectural_party=PS,
                     national_party=NS, staff=cs_staff)
    ps = PrefecturalServer(PS, stores["jlis"], securities[PS], directory, national_party=NS)
    ns = NationalServer(NS, stores["jlis"], securities[NS], directory, nws_party=NWS)
    senders = {
        party: Component(party, stores[org_of[party]], securities[party], directory) for party in (ATENA, TAX, NWS)
    }
    world = JukinetWorld(now, directory, securities, registry, cs, ps, ns, senders, _residents(), stores)
    world.step(lambda at: world.registry.bulk_load(world.residents, at))
    if publish:
        for row in world.residents:
            world.step(lambda at, code=row["resident_code"]: world.registry.publish(code, at))
        world.outside.clear()
    return world


@pytest.fixture
def jukinet_world(tmp_path: Path) -> Iterator[JukinetWorld]:
    world = build_jukinet_world(tmp_path)
    yield world
    for conn in world.stores.values():
        conn.close()
