"""Building a world: organisations, their SQLite stores, the PKI, every component, and who is linked to whom.

A world lives in one data directory an auditor can open afterwards: one SQLite file per organisation
(``kuwana.sqlite``, ``jlis.sqlite``, ``nws.sqlite``, ``platform.kuwana.sqlite`` …) and ``keys/`` with the PKI
and the keys each organisation holds. This module wires components together and must never implement a
control itself: every check lives in the component that enforces it.
"""

from __future__ import annotations

import importlib
import pkgutil
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from simulator.components.atena import Atena
from simulator.components.base import Component, Directory
from simulator.components.business import BusinessSystem
from simulator.components.card_system import CardManagementSystem
from simulator.components.gateway import Gateway
from simulator.components.hsm import KeyModule
from simulator.components.intermediate_server import IntermediateServer
from simulator.components.jlis import NationalServer, PrefecturalServer
from simulator.components.municipal_cs import MunicipalCS
from simulator.components.nws import NwsCore, Organisation
from simulator.components.office_link import HUBS, LinkedSystem, OfficeLink
from simulator.components.portal import ResidentPortal
from simulator.components.registry import Registry
from simulator.components.relay import RELAY_PROFILES, Relay
from simulator.components.staff import StaffDirectory, StaffPolicy
from simulator.components.tenshutsu import install as install_jukinet_services
from simulator.crypto.envelope import MessageSecurity
from simulator.crypto.pki import CertificateAuthority, Credential, TrustStore
from simulator.crypto.replay import ReplayGuard
from simulator.errors import InputError
from simulator.model.permissions import PermissionList, load_permission_list
from simulator.store.db import connect

__all__ = ["DEMO_PASSWORD", "MunicipalitySpec", "World", "WorldSpec", "extensions"]

#: Password of the demo world's staff accounts (synthetic world, shown in the README).
DEMO_PASSWORD = "jukisim-demo"
MARKER = ".jukisim-world"
C = TypeVar("C", bound=Component)
MAX_SKEW = timedelta(minutes=5)


def extensions() -> list[Callable[[World], object]]:
    """``install(world)`` of every module in simulator/extensions/, in name order (found, never listed by hand)."""
    import simulator.extensions as package

    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        install = getattr(module, "install", None)
        if callable(install):
            found.append(install)
    return found


@dataclass(frozen=True)
class MunicipalitySpec:
    key: str  # "kuwana"
    name_ja: str  # "桑名市"
    name_en: str
    prefecture: str  # "mie"
    query_rows: tuple[tuple[str, str], ...] = ()  # (business, row) pairs this municipality may query under
    # Which table its rows are numbered in: "shumu_2" (主務省令第2条の表) or "beppyo_2" (番号法別表第二); the two
    # numberings are unrelated, so a query names its table and every list check uses it.
    table: str = "shumu_2"
    # City-side relay in front of the 中間サーバー: a key of RELAY_PROFILES ("shi_chukan" 札幌, "dc_relay" つくば).
    relay: str | None = None
    # 庁内連携 hub and its route table: a key of office_link.HUBS (e.g. "kurashiki_kyotsu_kiban").
    office_link_hub: str | None = None
    # 住基ネット中間サーバ / 住基GW between 既存住基 and CS (札幌, 飯塚): the two are then never linked directly (GW-001).
    juki_gateway: bool = False
    # How long CS keeps a 送付先情報ファイル after the CMS acknowledged it (CS-016): 000 = 1 business day.
    delivery_file_retention_days: int = 1
    # What the profile requires of staff authentication and logs (AUTH-003/004/008–012, LOG-002); saved in the store.
    staff_policy: StaffPolicy = field(default_factory=StaffPolicy)


@dataclass(frozen=True)
class WorldSpec:
    municipalities: tuple[MunicipalitySpec, ...]
    start: datetime
    permission_list: PermissionList = field(default_factory=load_permission_list)


class World:
    """Every component of one world, addressable by party id."""

    def __init__(self, data_dir: Path, spec: WorldSpec) -> None:
        self.data_dir = data_dir
        self.spec = spec
        self.directory = Directory()
        self.components: dict[str, Component] = {}
        self.stores: dict[str, sqlite3.Connection] = {}
        self.now = spec.start
        self.fresh = False  # set by _build: True while a new world is being made

    # -- lookup ----------------------------------------------------------------------------------------------

    def component(self, party: str) -> Component:
        try:
            return self.components[party]
        except KeyError:
            raise KeyError(f"party: no component {party!r} in this world") from None

    def registry(self, m: str) -> Registry:
        c = self.component(f"{m}.registry")
        assert isinstance(c, Registry)
        return c

    def cs(self, m: str) -> MunicipalCS:
        c = self.component(f"{m}.municipal_cs")
        assert isinstance(c, MunicipalCS)
        return c

    def atena(self, m: str) -> Atena:
        c = self.component(f"{m}.atena")
        assert isinstance(c, Atena)
        return c

    def business(self, m: str, business: str) -> BusinessSystem:
        c = self.component(f"{m}.{business}")
        assert isinstance(c, BusinessSystem)
        return c

    def intermediate(self, m: str) -> IntermediateServer:
        c = self.component(f"platform.intermediate_server.{m}")
        assert isinstance(c, IntermediateServer)
        return c

    @property
    def nws(self) -> NwsCore:
        c = self.component("nws.core")
        assert isinstance(c, NwsCore)
        return c

    @property
    def portal(self) -> ResidentPortal:
        c = self.component("portal")
        assert isinstance(c, ResidentPortal)
        return c

    def close(self) -> None:
        for conn in self.stores.values():
            conn.close()

    # -- building ----------------------------------------------------------------------------------------------

    @classmethod
    def create(cls, data_dir: Path, spec: WorldSpec) -> World:
        """Build a fresh world in ``data_dir`` (which must be empty or a previous jukisim world)."""
        data_dir = Path(data_dir)
        if data_dir.exists() and any(data_dir.iterdir()) and not (data_dir / MARKER).exists():
            raise InputError("data", f"{data_dir} is not empty and is not a jukisim world; refusing to overwrite it")
        if data_dir.exists() and (data_dir / MARKER).exists():
            for path in sorted(data_dir.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / MARKER).write_text("jukisim world data directory\n", encoding="utf-8")
        world = cls(data_dir, spec)
        world._build(fresh=True)
        return world

    @classmethod
    def open(cls, data_dir: Path, spec: WorldSpec) -> World:
        """Attach to a world built earlier (a copy of a template, or a run an auditor reopens)."""
        data_dir = Path(data_dir)
        if not (data_dir / MARKER).exists():
            raise InputError("data", f"{data_dir} is not a jukisim world (no {MARKER} marker)")
        world = cls(data_dir, spec)
        world._build(fresh=False)
        return world

    def revoke(self, party: str, now: datetime) -> None:
        """Revoke a party's certificate and publish the CRL (kept on disk with the CA)."""
        self.ca.revoke(self.directory.certificate(party).serial_number, now)
        self.ca.save(self.data_dir / "keys" / "ca")

    def _store(self, org: str) -> sqlite3.Connection:
        if org not in self.stores:
            self.stores[org] = connect(self.data_dir / f"{org}.sqlite")
        return self.stores[org]

    def _key(self, name: str, size: int = 32) -> bytes:
        """A symmetric key an organisation holds (the world directory plays its HSM)."""
        path = self.data_dir / "keys" / f"{name}.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(secrets.token_bytes(size))
            path.chmod(0o600)
        return path.read_bytes()

    # -- what an extension needs to add a part of the world -----------------------------------------------

    def credential(self, party: str, org: str) -> Credential:
        """The party's certificate and key from the world's CA (issued on a fresh build, loaded otherwise)."""
        folder = self.data_dir / "keys" / "parties" / party
        if self.fresh:
            cred = self.ca.issue(party, org, self.spec.start - timedelta(days=1))
            cred.save(folder)
        else:
            cred = Credential.load(folder)
        self.directory.publish(party, cred.certificate)
        return cred

    def security(self, party: str, org: str) -> MessageSecurity:
        """Message security for a new party of organisation ``org`` (its replay guard lives in ``org``'s store)."""
        return MessageSecurity(
            self.credential(party, org),
            self.trust,
            ReplayGuard(self.store(org), MAX_SKEW * 2),
            max_skew=MAX_SKEW,
        )

    def add_staff(self, directory: StaffDirectory, user: str, name: str, roles: set[str]) -> None:
        """A synthetic staff account (only on a fresh build: a reopened world keeps its own accounts)."""
        if self.fresh:
            directory.add(user, name, roles, DEMO_PASSWORD, now=self.spec.start)

    def add(self, build: Callable[..., C], party: str, org: str, **options: Any) -> C:
        """A new component ``party`` of organisation ``org``: that organisation's store, the party's own
        credentials and the world's directory, then whatever else the component takes (``options``)."""
        component = build(party, self.store(org), self.security(party, org), self.directory, **options)
        self.components[party] = component
        return component

    def store(self, org: str) -> sqlite3.Connection:
        """The organisation's SQLite store (``<org>.sqlite`` in the world directory)."""
        return self._store(org)

    def key(self, name: str, size: int = 32) -> bytes:
        """A symmetric key an organisation holds (kept under keys/, never in a store)."""
        return self._key(name, size)

    def _build(self, *, fresh: bool) -> None:
        now = self.spec.start
        self.fresh = fresh
        if fresh:
            ca = CertificateAuthority.create("jukisim LGPKI (simulated)", now - timedelta(days=1))
            ca.save(self.data_dir / "keys" / "ca")
        else:
            ca = CertificateAuthority.load(self.data_dir / "keys" / "ca")
        self.ca = ca
        # The CA republishes its CRL when nextUpdate passes, by the world's clock (which the driver advances).
        self.trust = TrustStore(ca.root_certificate, lambda: ca.crl(self.now))
        add_staff = self.add_staff
        security = self.security

        link = self.directory.connect
        national = "jlis.national_server"
        jlis_db = self._store("jlis")
        self.components[national] = NationalServer(
            national,
            jlis_db,
            security(national, "jlis"),
            self.directory,
            nws_party="nws.core",
        )
        link(national, "nws.core", "lgwan")
        card_system = "jlis.card_system"  # 個人番号カード管理システム (CS-022/023)
        self.components[card_system] = CardManagementSystem(
            card_system, jlis_db, security(card_system, "jlis"), self.directory
        )

        organisations: list[Organisation] = []
        for m in self.spec.municipalities:
            db = self._store(m.key)
            if fresh:
                m.staff_policy.save(db, m.key)
            registry, cs, atena = f"{m.key}.registry", f"{m.key}.municipal_cs", f"{m.key}.atena"
            pref = f"jlis.prefectural_server.{m.prefecture}"
            chukan = f"platform.intermediate_server.{m.key}"
            if pref not in self.components:
                self.components[pref] = PrefecturalServer(
                    pref,
                    jlis_db,
                    security(pref, "jlis"),
                    self.directory,
                    national_party=national,
                )
                link(pref, national, "jukinet")
            registry_staff = StaffDirectory(db, registry)
            # clerk-a holds the distinct 個人番号利用権限; clerk-b sees the number masked (AUTH-006).
            add_staff(registry_staff, "clerk-a", "窓口 花子", {"registry_clerk", "my_number_access"})
            add_staff(registry_staff, "clerk-b", "確認 太郎", {"registry_clerk"})
            cs_staff = StaffDirectory(db, cs)
            add_staff(cs_staff, "cs-op", "住基 端末操作者", {"cs_operator"})
            add_staff(cs_staff, "cs-novice", "研修 三郎", {"terminal_user"})  # no CS privilege (CS-010)
            add_staff(registry_staff, "dept-head", "市民課長 四郎", {"department_head"})  # 所属長 (JUKI-003)
            # 情報主管課長: approves rights applications, enrols biometrics, audits logs (AUTH-010/011/013, LOG-003–005).
            add_staff(registry_staff, "joho-kacho", "情報 主管", {"info_director", "biometric_admin", "log_auditor"})
            gateway = f"{m.key}.juki_gateway" if m.juki_gateway else None
            hub_profile = HUBS[m.office_link_hub] if m.office_link_hub else None
            hub = f"{m.key}.office_link" if hub_profile else None
            relay = f"{m.key}.relay" if m.relay else None
            self.components[registry] = Registry(
                registry,
                db,
                security(registry, m.key),
                self.directory,
                municipality=m.key,
                cs_party=gateway or cs,
                atena_party=atena,
                staff=registry_staff,
                office_link_party=hub,
                replica_party=hub if hub_profile is not None and hub_profile.replica_via_hub else None,
                boundary_party=cs if gateway else None,
                business_systems=frozenset({f"{m.key}.tax", f"{m.key}.ltc"}),
            )
            self.components[cs] = MunicipalCS(
                cs,
                db,
                security(cs, m.key),
                self.directory,
                registry_party=gateway or registry,
                prefectural_party=pref,
                national_party=national,
                staff=cs_staff,
                bypassed_party=registry if gateway else None,
                delivery_retention_days=m.delivery_file_retention_days,
                # The device secret stays in the module (keys/), never in the CS store (CS-011).
                key_module=KeyModule(db, f"{cs}.hsm", self._key(f"{m.key}.cs.hsm_device")),
                card_system_party=card_system,
            )
            if gateway is not None:
                self.components[gateway] = Gateway(
                    gateway, db, security(gateway, m.key), self.directory, registry_party=registry, cs_party=cs
                )
                link(registry, gateway, "office_lan")
                link(gateway, cs, "cs_segment")
            else:
                link(registry, cs, "office_lan")
            link(cs, pref, "jukinet")
            link(cs, national, "jukinet")
            link(cs, card_system, "jukinet")
            businesses = {registry: "resident_register"}
            for business, item in (("tax", "local_tax_info"), ("ltc", "ltc_info")):
                party = f"{m.key}.{business}"
                self.components[party] = BusinessSystem(
                    party,
                    db,
                    security(party, m.key),
                    self.directory,
                    business=business,
                    atena_party=atena,
                    replica_item=item,
                    office_link_party=hub,
                    office_link_control="RENKEI-008" if hub_profile and hub_profile.standard_platform else "RENKEI-001",
                )
                businesses[party] = business
                link(party, atena, "office_lan")
            atena_staff = StaffDirectory(db, atena)
            add_staff(atena_staff, "kaigo-a", "介護 一子", {"atena_user", "dept:kaigo_hoken"})
            add_staff(atena_staff, "kaigo-b", "介護 二郎", {"dept:kaigo_hoken"})  # no 宛名 privilege (ATENA-002)
            add_staff(atena_staff, "gesui-a", "下水 三郎", {"atena_user", "dept:gesuido"})  # not a 番号法 department
            if hub is not None and hub_profile is not None and hub_profile.replica_via_hub:
                businesses[hub] = "resident_register"  # 札幌: the 副本 record reaches 宛名 through 個人基本
            self.components[atena] = Atena(
                atena,
                db,
                security(atena, m.key),
                self.directory,
                tenant=m.key,
                intermediate_server=relay or chukan,
                registry_party=registry,
                business_systems=businesses,
                staff=atena_staff,
            )
            link(registry, atena, "office_lan")
            if hub is not None and hub_profile is not None:
                office_staff = StaffDirectory(db, hub)
                add_staff(office_staff, "renkei-a", "連携 一郎", {"office_transfer"})
                add_staff(office_staff, "renkei-b", "連携 二郎", set())  # no transfer privilege (RENKEI-005)
                self.components[hub] = OfficeLink(
                    hub,
                    db,
                    security(hub, m.key),
                    self.directory,
                    profile=hub_profile,
                    municipality=m.key,
                    registry_party=registry,
                    atena_party=atena,
                    staff=office_staff,
                )
                link(registry, hub, "office_lan")
                if hub_profile.replica_via_hub:
                    link(hub, atena, "office_lan")
                for key in sorted({r.destination for r in hub_profile.routes} | {"sewer"}):
                    party = f"{m.key}.{key}"
                    if party not in self.components:
                        self.components[party] = LinkedSystem(
                            party,
                            db,
                            security(party, m.key),
                            self.directory,
                            key=key,
                            hub=hub,
                            bypass_control="RENKEI-008" if hub_profile.standard_platform else "RENKEI-001",
                        )
                    link(hub, party, "office_lan")
            platform_db = self._store(f"platform.{m.key}")
            chukan_staff = StaffDirectory(platform_db, chukan)
            add_staff(chukan_staff, "reviewer", "審査 一郎", {"auto_reply_reviewer", "replica_viewer"})
            add_staff(chukan_staff, "operator", "運用 次郎", {"platform_operator"})
            add_staff(chukan_staff, "clerk", "照会 三郎", {"query_operator"})
            add_staff(chukan_staff, "keyadmin", "鍵管理 四郎", {"key_manager"})
            self.components[chukan] = IntermediateServer(
                chukan,
                platform_db,
                security(chukan, f"platform.{m.key}"),
                self.directory,
                tenant=m.key,
                org_kind="municipality",
                # With a relay, the relay is the platform's only city-side peer (RELAY-001).
                atena_party=relay or atena,
                nws_party="nws.core",
                permission_list=self.spec.permission_list,
                query_rows={b: {r for b2, r in m.query_rows if b2 == b} for b, _ in m.query_rows},
                table=m.table,
                data_key=self._key(f"platform.{m.key}.replica"),
                staff=chukan_staff,
            )
            if relay is not None and m.relay is not None:
                relay_profile = RELAY_PROFILES[m.relay]
                self.components[relay] = Relay(
                    relay,
                    db,
                    security(relay, m.key),
                    self.directory,
                    profile=relay_profile,
                    city_party=atena,
                    platform_party=chukan,
                )
                link(atena, relay, relay_profile.city_network)
                link(relay, chukan, relay_profile.platform_network)
            else:
                link(atena, chukan, "lgwan")
            link(chukan, "nws.core", "lgwan")
            organisations.append(Organisation(m.key, "municipality", chukan, m.name_ja))
        organisations.append(Organisation("portal", "portal", "portal", "マイナポータル"))
        self.components["nws.core"] = NwsCore(
            "nws.core",
            self._store("nws"),
            security("nws.core", "nws"),
            self.directory,
            organisations=organisations,
            permission_list=self.spec.permission_list,
            national_server=national,
            code_key=self._key("nws.linkage_code"),
        )
        self.components["portal"] = ResidentPortal(
            "portal",
            self._store("portal"),
            security("portal", "portal"),
            self.directory,
            nws_party="nws.core",
            national_server=national,
        )
        link("portal", "nws.core", "lgwan")
        link("portal", national, "lgwan")
        # 照会, 4情報検索の経路, card check and 特例転入 on 住基ネット (CS-017/018/019/021, JLIS-003).
        install_jukinet_services(self)
        # Parts of the world beside the linkage spine (business systems in depth, terminals and networks,
        # media, contractors, e-application …), each in its own module under simulator/extensions/.
        for install in extensions():
            install(self)
