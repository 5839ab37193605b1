"""ネットワーク境界 (network perimeter) of one municipality: segments, the firewall's allowed flows, mutual
authentication of inter-organisation links, anti-malware hygiene, off-site SIM sessions and lost-device revocation
(NET-001..007), with the per-profile data of scenarios/data/network.yaml.

It decides whether a connection may pass and records every attempt; it never carries the business message
itself (components still sign and verify what they exchange) and never reads the wall clock.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.components.base import Component, Directory, Result
from simulator.components.kept_refusal import deny_kept
from simulator.components.staff import StaffSession
from simulator.crypto.envelope import MessageSecurity
from simulator.crypto.pki import TrustStore, fingerprint, party_id_of
from simulator.errors import InputError, RefusalCode
from simulator.model.area_data import DATA_DIR, load_area_file
from simulator.store.db import transaction

if TYPE_CHECKING:
    from simulator.world import World

__all__ = ["DATA_PATH", "EICAR", "MunicipalityNetwork", "Network", "install", "load_network_data"]

DATA_PATH = DATA_DIR / "network.yaml"
#: The industry's anti-malware test string: every scanner detects it, and it harms nothing (NET-005).
EICAR = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"


# -- profile data ------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Source(_Model):
    seed: str
    line: int = Field(ge=1)
    inferred: bool = False
    reason: str | None = None

    @model_validator(mode="after")
    def _reason_when_inferred(self) -> Source:
        if self.inferred and not self.reason:
            raise ValueError("an inferred value needs a reason")
        return self


class SegmentSpec(_Model):
    id: str
    name_ja: str
    isolated: bool = False  # no route to or from any internet-capable segment (NET-002)
    internet: bool = False
    external: bool = False  # outside the city (LGWAN, 住基ネット, a data centre)
    designated_terminals: bool = False  # reached only from designated terminals and flows (NET-004)
    source: Source


class TerminalSpec(_Model):
    id: str
    segment: str
    mac: str = Field(pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
    department: str
    users: list[str]
    number_users: list[str] = []  # who may handle 個人番号 on this terminal (TERM-006)
    vdi: bool = False  # shows a virtual desktop only (TERM-003)
    city_issued: bool = False  # issued by the city (TERM-005)
    remote: bool = False  # an off-site SIM device (NET-006)
    source: Source


class FlowSpec(_Model):
    source_endpoint: str = Field(alias="from")
    to: str
    port: int = Field(ge=1, le=65535)
    service_ja: str
    source: Source


class ScreenLock(_Model):
    minutes: int = Field(ge=1)
    unlock: Literal["password", "biometric"]
    source: Source


class Hygiene(_Model):
    definitions_max_age_days: int = Field(ge=1)
    mail_filter: bool
    source: Source
    age_source: Source


class Claimed(_Model):
    source: Source


class Approval(_Model):
    approver_role: str
    source: Source


class Saas(_Model):
    services: list[str]
    segment: str
    source: Source


class Remote(_Model):
    session_minutes: int = Field(ge=1)
    pause_minutes: int = Field(ge=0)
    approver_role: str
    source: Source


class CounterSpec(_Model):
    documents: list[Literal["my_number_card", "notification_card_with_photo_id", "other_id"]]
    agent_letter_required: bool
    source: Source


class MunicipalityNetwork(_Model):
    segments: list[SegmentSpec]
    hosts: dict[str, str]
    hosts_source: Source  # where each host sits (mostly inferred: the seeds name the model, not the hosts)
    terminals: list[TerminalSpec]
    flows: list[FlowSpec]
    screen_lock: ScreenLock | None = None  # TERM-001
    hygiene: Hygiene | None = None  # NET-005
    camera: Claimed | None = None  # TERM-002
    virtual_desktop: Claimed | None = None  # TERM-003
    media: Approval | None = None  # TERM-004
    saas: Saas | None = None  # TERM-005
    number_binding: Claimed | None = None  # TERM-006
    install_approval: Approval | None = None  # TERM-007
    remote: Remote | None = None  # NET-006
    lost_device_revocation: Claimed | None = None  # NET-007
    counter: CounterSpec | None = None  # MADO-001

    @model_validator(mode="after")
    def _references(self) -> MunicipalityNetwork:
        segments = {s.id for s in self.segments}
        for host, segment in self.hosts.items():
            if segment not in segments:
                raise ValueError(f"hosts.{host}: unknown segment {segment!r}")
        terminals = {t.id for t in self.terminals}
        for t in self.terminals:
            if t.segment not in segments:
                raise ValueError(f"terminals.{t.id}.segment: unknown segment {t.segment!r}")
        known = set(self.hosts) | terminals | {"platform_path"} | {f"segment:{s}" for s in segments}
        for f in self.flows:
            for end in (f.source_endpoint, f.to):
                if end not in known:
                    raise ValueError(f"flows: unknown endpoint {end!r} (a host, a terminal or segment:<id>)")
        if self.saas is not None and self.saas.segment not in segments:
            raise ValueError(f"saas.segment: unknown segment {self.saas.segment!r}")
        return self


def load_network_data(path: Path | None = None) -> dict[str, MunicipalityNetwork]:
    """Every profile's network data, keyed by profile key; a bad file names ``file:line``, the profile's field and
    the rule (the shared area-data loader)."""
    return load_area_file(path or DATA_PATH, MunicipalityNetwork)


# -- the component ----------------------------------------------------------------------------------------

_DDL = """
CREATE TABLE IF NOT EXISTS net_terminals (
    municipality TEXT NOT NULL, terminal TEXT NOT NULL, spec TEXT NOT NULL, registered_at TEXT NOT NULL,
    revoked_at TEXT, revoked_reason TEXT, PRIMARY KEY (municipality, terminal));
CREATE TABLE IF NOT EXISTS net_connections (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, municipality TEXT NOT NULL, at TEXT NOT NULL, source TEXT NOT NULL,
    destination TEXT NOT NULL, port INTEGER NOT NULL, control TEXT NOT NULL, passed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS net_hygiene (
    municipality TEXT NOT NULL, host TEXT NOT NULL, definitions_on TEXT NOT NULL, PRIMARY KEY (municipality, host));
CREATE TABLE IF NOT EXISTS net_patches (
    municipality TEXT NOT NULL, patch TEXT NOT NULL, released_at TEXT NOT NULL, PRIMARY KEY (municipality, patch));
CREATE TABLE IF NOT EXISTS net_patches_applied (
    municipality TEXT NOT NULL, host TEXT NOT NULL, patch TEXT NOT NULL, applied_at TEXT NOT NULL,
    PRIMARY KEY (municipality, host, patch));
CREATE TABLE IF NOT EXISTS net_quarantine (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, municipality TEXT NOT NULL, at TEXT NOT NULL, host TEXT NOT NULL,
    kind TEXT NOT NULL, name TEXT NOT NULL, signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS net_links (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, municipality TEXT NOT NULL, at TEXT NOT NULL, local TEXT NOT NULL,
    peer TEXT NOT NULL, peer_fingerprint TEXT, authenticated INTEGER NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS net_device_loans (
    municipality TEXT NOT NULL, device TEXT NOT NULL, user_id TEXT NOT NULL, approved_by TEXT NOT NULL,
    approved_at TEXT NOT NULL, PRIMARY KEY (municipality, device, user_id));
CREATE TABLE IF NOT EXISTS net_remote_sessions (
    session_id TEXT PRIMARY KEY, municipality TEXT NOT NULL, device TEXT NOT NULL, user_id TEXT NOT NULL,
    started_at TEXT NOT NULL, ends_at TEXT NOT NULL, closed_at TEXT);
"""


class Endpoint:
    """One end of a connection as the firewall sees it: a name and the segment it sits on."""

    def __init__(self, name: str, segment: SegmentSpec) -> None:
        self.name = name
        self.segment = segment


class Network(Component):
    name_ja = "ネットワーク境界（ファイアウォール・端末接続）"
    name_en = "network perimeter"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        municipality: str,
        data: MunicipalityNetwork,
        trust: TrustStore,
        platform_path: str,
        parties: Mapping[str, str],
        chains: Path,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.municipality = municipality
        self.data = data
        self.trust = trust
        self.platform_path = platform_path  # the host the 宛名 system's platform traffic goes to first
        self.parties = dict(parties)  # host key → party id in this world
        self.chains = chains  # where each party's public certificate chain (leaf, issuing CA) is published
        self._segments = {s.id: s for s in data.segments}
        conn.executescript(_DDL)

    # -- setup --------------------------------------------------------------------------------------------

    def seed(self, now: datetime) -> None:
        """Register the profile's terminals and put every host's definitions at ``now`` (fresh world only)."""
        for t in self.data.terminals:
            self.conn.execute(
                "INSERT OR IGNORE INTO net_terminals (municipality, terminal, spec, registered_at) VALUES (?,?,?,?)",
                (self.municipality, t.id, t.model_dump_json(by_alias=True), now.isoformat()),
            )
        for host in [*self.data.hosts, *(t.id for t in self.data.terminals)]:
            self.conn.execute(
                "INSERT OR IGNORE INTO net_hygiene (municipality, host, definitions_on) VALUES (?,?,?)",
                (self.municipality, host, now.date().isoformat()),
            )

    def register_terminal(self, approver: StaffSession, roles: frozenset[str], spec: TerminalSpec, now: datetime) -> Result:
        """The 情報主管課 registers a terminal (id, segment, MAC address, department, users) in the fleet."""

        def act(result: Result) -> None:
            if "info_director" not in roles:
                raise self.refuse(
                    RefusalCode.ROLE_MISSING,
                    "NET-003",
                    "端末の登録は情報主管課長のみが行えます",
                    "only the 情報主管課長 registers terminals",
                    field="approver",
                )
            if spec.segment not in self._segments:
                raise InputError("segment", f"unknown segment {spec.segment!r}; known: {sorted(self._segments)}")
            if self.terminal(spec.id) is not None:
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "NET-003",
                    f"端末 {spec.id} は既に登録されています",
                    f"terminal {spec.id} is already registered",
                    field="terminal",
                )
            clash = [
                t
                for (t, raw) in self.conn.execute(
                    "SELECT terminal, spec FROM net_terminals WHERE municipality = ?", (self.municipality,)
                )
                if TerminalSpec.model_validate_json(raw).mac == spec.mac
            ]
            if clash:
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "NET-003",
                    f"MACアドレス {spec.mac} は端末 {clash[0]} に登録済みです",
                    f"MAC {spec.mac} already belongs to terminal {clash[0]}",
                    field="mac",
                )
            self.conn.execute(
                "INSERT INTO net_terminals (municipality, terminal, spec, registered_at) VALUES (?,?,?,?)",
                (self.municipality, spec.id, spec.model_dump_json(by_alias=True), now.isoformat()),
            )
            self.conn.execute(
                "INSERT OR IGNORE INTO net_hygiene (municipality, host, definitions_on) VALUES (?,?,?)",
                (self.municipality, spec.id, now.date().isoformat()),
            )
            self.audit.append(
                at=now.isoformat(),
                kind="terminal.registered",
                data={"terminal": spec.id, "segment": spec.segment, "by": approver.user_id},
            )

        return self.command(now, None, act)

    # -- lookups ------------------------------------------------------------------------------------------

    def terminal(self, terminal_id: str) -> tuple[TerminalSpec, str | None] | None:
        """The registered terminal and its revocation time, or None if it was never registered."""
        row = self.conn.execute(
            "SELECT spec, revoked_at FROM net_terminals WHERE municipality = ? AND terminal = ?",
            (self.municipality, terminal_id),
        ).fetchone()
        if row is None:
            return None
        return TerminalSpec.model_validate_json(row[0]), row[1]

    def host_key(self, name: str) -> str:
        """Accept a host key (``registry``), a party id (``kuwana.registry``) or ``platform_path``."""
        if name == "platform_path":
            return self.platform_path
        for key, party in self.parties.items():
            if name == party:
                return key
        return name

    def endpoint(self, name: str) -> Endpoint:
        if name.startswith("segment:"):
            segment = self._segments.get(name.removeprefix("segment:"))
            if segment is None:
                raise InputError("segment", f"unknown segment {name!r}; known: {sorted(self._segments)}")
            return Endpoint(name, segment)
        found = self.terminal(name)
        if found is not None:
            return Endpoint(name, self._segments[found[0].segment])
        key = self.host_key(name)
        if key in self.data.hosts:
            return Endpoint(key, self._segments[self.data.hosts[key]])
        raise InputError("endpoint", f"{name!r} is no host, terminal or segment:<id> of {self.municipality}")

    def _matches(self, pattern: str, end: Endpoint) -> bool:
        key = self.host_key(pattern)
        return key == end.name or pattern == f"segment:{end.segment.id}"

    # -- NET-001/002/004: the firewall --------------------------------------------------------------------

    def check_flow(self, result: Result, source: Endpoint, destination: Endpoint, port: int, now: datetime) -> None:
        """Raise a refusal unless the flow may pass; add the allow decisions it earns. The caller logs refusals."""
        src, dst = source.segment, destination.segment
        if (src.internet and dst.isolated) or (src.isolated and dst.internet):
            raise self.refuse(
                RefusalCode.NO_ROUTE,
                "NET-002",
                f"{src.name_ja}と{dst.name_ja}の間には経路がありません（インターネットから分離）",
                f"there is no route between {src.id} and {dst.id}: the 特定個人情報 network is cut off from the internet",
                field="destination",
            )
        if src.id == dst.id:
            if src.isolated:
                self.allow(
                    result,
                    "NET-002",
                    now,
                    f"インターネットから分離された{src.name_ja}の中での接続です",
                    f"a connection inside the internet-separated segment {src.id}",
                    source=source.name,
                    destination=destination.name,
                )
            return
        control = "NET-004" if src.designated_terminals or dst.designated_terminals else "NET-001"
        for flow in self.data.flows:
            if self._matches(flow.source_endpoint, source) and self._matches(flow.to, destination) and flow.port == port:
                # Between two parties the flow rides the link the directory declares (e.g. つくば's VPN leg).
                a, b = self.parties.get(source.name), self.parties.get(destination.name)
                link = self.directory.network_between(a, b) if a and b else None
                self.allow(
                    result,
                    control,
                    now,
                    f"許可された通信です: {flow.service_ja}",
                    f"a whitelisted flow: {source.name} → {destination.name}:{port}",
                    source=source.name,
                    destination=destination.name,
                    port=port,
                    link=link,
                    seed=flow.source.seed,
                    line=flow.source.line,
                )
                if src.isolated and not dst.internet:
                    self.allow(
                        result,
                        "NET-002",
                        now,
                        "インターネットに接続できない経路です",
                        "the route never touches an internet-capable segment",
                        source=source.name,
                        destination=destination.name,
                    )
                return
        what_ja = "指定された端末・通信以外" if control == "NET-004" else "許可リストにない通信"
        raise self.refuse(
            RefusalCode.SOURCE_NOT_ALLOWED,
            control,
            f"{what_ja}のため遮断しました: {source.name}（{src.name_ja}）→ {destination.name}（{dst.name_ja}）:{port}",
            f"dropped: {source.name} ({src.id}) → {destination.name} ({dst.id}):{port} is not an allowed flow",
            field="destination",
        )

    def connect(self, source: str, destination: str, port: int, now: datetime) -> Result:
        """A connection attempt through the city's firewalls; every attempt, passed or dropped, is recorded."""
        src, dst = self.endpoint(source), self.endpoint(destination)

        def act(result: Result) -> None:
            self.check_flow(result, src, dst, port, now)
            self._log_connection(src.name, dst.name, port, result, True, now)

        result = self.command(now, None, act)
        if result.refusal is not None:
            with transaction(self.conn):  # the dropped attempt is recorded after its step rolled back
                self._log_connection(src.name, dst.name, port, result, False, now)
                self.audit.append(
                    at=now.isoformat(),
                    kind="firewall.dropped",
                    data={"source": src.name, "destination": dst.name, "port": port, "code": str(result.refusal.code)},
                )
        return result

    def _log_connection(self, src: str, dst: str, port: int, result: Result, passed: bool, now: datetime) -> None:
        control = result.decisions[0].control_id if result.decisions else "NET-001"
        self.conn.execute(
            "INSERT INTO net_connections (municipality, at, source, destination, port, control, passed)"
            " VALUES (?,?,?,?,?,?,?)",
            (self.municipality, now.isoformat(), src, dst, port, control, int(passed)),
        )

    # -- NET-003: mutual authentication of a link -------------------------------------------------------

    def authenticate_link(
        self, local: str, peer: str, presented: list[x509.Certificate], now: datetime
    ) -> Result:
        """Both ends prove their certificates before anything moves; a peer that cannot be authenticated gets
        nothing, and the failure is recorded."""

        def act(result: Result) -> None:
            self.trust.validate(self.chain_of(local), now, component=self.party)  # what the peer checks of us
            leaf = self.trust.validate(presented, now, component=self.party)
            if party_id_of(leaf) != peer:
                raise self.refuse(
                    RefusalCode.SENDER_MISMATCH,
                    "NET-003",
                    f"相手先の証明書は {party_id_of(leaf)} のもので、{peer} ではありません",
                    f"the peer's certificate belongs to {party_id_of(leaf)}, not {peer}",
                    field="certificate",
                )
            self.conn.execute(
                "INSERT INTO net_links (municipality, at, local, peer, peer_fingerprint, authenticated, detail)"
                " VALUES (?,?,?,?,?,1,?)",
                (self.municipality, now.isoformat(), local, peer, fingerprint(leaf), "mutual authentication"),
            )
            self.allow(
                result,
                "NET-003",
                now,
                f"{local} と {peer} は相互に証明書を検証しました。通信を開始します",
                f"{local} and {peer} authenticated each other; the link may carry data",
                local=local,
                peer=peer,
                peer_fingerprint=fingerprint(leaf),
            )

        result = self.command(now, None, act)
        if result.refusal is not None:
            with transaction(self.conn):
                self.conn.execute(
                    "INSERT INTO net_links (municipality, at, local, peer, peer_fingerprint, authenticated, detail)"
                    " VALUES (?,?,?,?,NULL,0,?)",
                    (self.municipality, now.isoformat(), local, peer, f"{result.refusal.code}: nothing sent"),
                )
        return result

    def chain_of(self, party: str) -> list[x509.Certificate]:
        """The certificate chain ``party`` presents (leaf, issuing CA), as published with its credential."""
        path = self.chains / party / "chain.pem"
        if not path.exists():
            raise InputError("party", f"no certificate chain published for {party!r}")
        return list(x509.load_pem_x509_certificates(path.read_bytes()))

    # -- NET-005: anti-malware, patches, mail filter ---------------------------------------------------

    def update_definitions(self, host: str, now: datetime) -> Result:
        def act(result: Result) -> None:
            self.endpoint(host)
            self.conn.execute(
                "INSERT INTO net_hygiene (municipality, host, definitions_on) VALUES (?,?,?)"
                " ON CONFLICT(municipality, host) DO UPDATE SET definitions_on = excluded.definitions_on",
                (self.municipality, host, now.date().isoformat()),
            )

        return self.command(now, None, act)

    def release_patch(self, patch: str, now: datetime) -> Result:
        def act(result: Result) -> None:
            self.conn.execute(
                "INSERT OR IGNORE INTO net_patches (municipality, patch, released_at) VALUES (?,?,?)",
                (self.municipality, patch, now.isoformat()),
            )

        return self.command(now, None, act)

    def apply_patch(self, host: str, patch: str, now: datetime) -> Result:
        def act(result: Result) -> None:
            self.conn.execute(
                "INSERT OR IGNORE INTO net_patches_applied (municipality, host, patch, applied_at) VALUES (?,?,?,?)",
                (self.municipality, host, patch, now.isoformat()),
            )

        return self.command(now, None, act)

    def compliance(self, host: str, now: datetime) -> Result:
        """The compliance report of one host: current definitions and every released patch applied."""
        hygiene = self._hygiene()

        def act(result: Result) -> None:
            self.endpoint(host)
            row = self.conn.execute(
                "SELECT definitions_on FROM net_hygiene WHERE municipality = ? AND host = ?",
                (self.municipality, host),
            ).fetchone()
            age = (now.date() - datetime.fromisoformat(row[0]).date()).days if row else None
            if age is None or age > hygiene.definitions_max_age_days:
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "NET-005",
                    f"{host} のウイルス定義ファイルが古いため要対応としました（{age}日前、上限{hygiene.definitions_max_age_days}日）",
                    f"{host} is below policy: definitions are {age} days old (limit {hygiene.definitions_max_age_days})",
                    field="definitions",
                )
            missing = [
                p
                for (p,) in self.conn.execute(
                    "SELECT patch FROM net_patches WHERE municipality = ? AND patch NOT IN"
                    " (SELECT patch FROM net_patches_applied WHERE municipality = ? AND host = ?) ORDER BY patch",
                    (self.municipality, self.municipality, host),
                )
            ]
            if missing:
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "NET-005",
                    f"{host} に未適用のパッチがあります: {', '.join(missing)}",
                    f"{host} is below policy: patches not applied: {', '.join(missing)}",
                    field="patches",
                )
            self.allow(
                result,
                "NET-005",
                now,
                f"{host} はウイルス定義が最新で、公開済みのパッチはすべて適用済みです",
                f"{host} is compliant: current definitions, every released patch applied",
                host=host,
                definitions_age_days=age,
            )

        return self.command(now, None, act)

    def scan(self, host: str, name: str, content: str, now: datetime, *, kind: str = "file") -> Result:
        """Scan a file on a host (or a mail attachment, ``kind="mail"``); a detection is quarantined."""
        hygiene = self._hygiene()
        if kind == "mail" and not hygiene.mail_filter:
            raise InputError("kind", f"{self.municipality} claims no mail filter")

        def act(result: Result) -> None:
            self.endpoint(host)
            if EICAR in content:
                self.conn.execute(
                    "INSERT INTO net_quarantine (municipality, at, host, kind, name, signature) VALUES (?,?,?,?,?,?)",
                    (self.municipality, now.isoformat(), host, kind, name, "EICAR-Test-File"),
                )
                what_ja = "ウイルスメールを遮断" if kind == "mail" else "ファイルを検疫"
                deny_kept(
                    self,
                    result,
                    RefusalCode.FIELD_NOT_ALLOWED,
                    "NET-005",
                    now,
                    f"{host}: マルウェアを検出し{what_ja}しました（{name}）",
                    f"{host}: malware detected in {name}; {'the mail was blocked' if kind == 'mail' else 'quarantined'}",
                    field="content",
                )
                return
            self.allow(
                result,
                "NET-005",
                now,
                f"{host}: {name} にマルウェアは検出されませんでした",
                f"{host}: {name} is clean",
                host=host,
                kind=kind,
            )

        return self.command(now, None, act)

    def _hygiene(self) -> Hygiene:
        if self.data.hygiene is None:
            raise InputError("hygiene", f"{self.municipality} claims no anti-malware control (NET-005)")
        return self.data.hygiene

    # -- NET-006/007: off-site SIM devices and lost devices ----------------------------------------------

    def approve_loan(self, approver: StaffSession, roles: frozenset[str], device: str, user: str, now: datetime) -> Result:
        """The 所属長 approves lending a SIM device to a user (NET-006)."""
        remote = self._remote()

        def act(result: Result) -> None:
            if remote.approver_role not in roles:
                raise self.refuse(
                    RefusalCode.ROLE_MISSING,
                    "NET-006",
                    "専用機器の貸出は所属長の承認が必要です",
                    "lending an off-site device needs the 所属長's approval",
                    field="approver",
                )
            self._off_site_device(device)
            self.conn.execute(
                "INSERT OR REPLACE INTO net_device_loans VALUES (?,?,?,?,?)",
                (self.municipality, device, user, approver.user_id, now.isoformat()),
            )

        return self.command(now, None, act)

    def remote_connect(self, device: str, user: str, now: datetime) -> Result:
        """Open an off-site session on a lent, registered, unrevoked device; it ends at the designated time."""
        remote = self._remote()

        def act(result: Result) -> None:
            self.require_not_revoked(device, self._off_site_device(device))
            loan = self.conn.execute(
                "SELECT approved_by FROM net_device_loans WHERE municipality = ? AND device = ? AND user_id = ?",
                (self.municipality, device, user),
            ).fetchone()
            if loan is None:
                raise self.refuse(
                    RefusalCode.NO_APPROVED_APPLICATION,
                    "NET-006",
                    f"{user} への {device} の貸出は所属長に承認されていません",
                    f"lending {device} to {user} was not approved by the 所属長",
                    field="user",
                )
            last = self.conn.execute(
                "SELECT ends_at, closed_at FROM net_remote_sessions WHERE municipality = ? AND device = ?"
                " ORDER BY started_at DESC LIMIT 1",
                (self.municipality, device),
            ).fetchone()
            if last is not None:
                ended = datetime.fromisoformat(last[1] or last[0])
                if now < ended + timedelta(minutes=remote.pause_minutes):
                    raise self.refuse(
                        RefusalCode.STATE_CONFLICT,
                        "NET-006",
                        f"指定時間を超えて連続して接続することはできません（{remote.pause_minutes}分間は再接続不可）",
                        f"a session cannot be extended by reconnecting: wait {remote.pause_minutes} minutes",
                        field="device",
                    )
            session_id = uuid.uuid4().hex[:12]
            ends = now + timedelta(minutes=remote.session_minutes)
            self.conn.execute(
                "INSERT INTO net_remote_sessions VALUES (?,?,?,?,?,?,NULL)",
                (session_id, self.municipality, device, user, now.isoformat(), ends.isoformat()),
            )
            self.allow(
                result,
                "NET-006",
                now,
                f"所属長承認済みの専用機器 {device} で接続しました（{ends:%H:%M} にセッションアウト）",
                f"an approved device {device} connected; the session ends at {ends.isoformat()}",
                device=device,
                user=user,
                ends_at=ends.isoformat(),
            )
            self.allow(
                result,
                "NET-007",
                now,
                f"登録済み機器 {device} が暗号化閉域回線で接続しました",
                f"the registered device {device} connected over the encrypted closed line",
                device=device,
            )
            result.value = session_id

        return self.command(now, None, act)

    def remote_use(self, session_id: str, now: datetime) -> Result:
        """One request in an off-site session: past the designated time the session is cut."""

        def act(result: Result) -> None:
            row = self.conn.execute(
                "SELECT device, ends_at, closed_at FROM net_remote_sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is None:
                raise InputError("session", f"no off-site session {session_id!r}")
            if row[2] is not None or now >= datetime.fromisoformat(row[1]):
                if row[2] is None:
                    self.conn.execute(
                        "UPDATE net_remote_sessions SET closed_at = ? WHERE session_id = ?", (row[1], session_id)
                    )
                deny_kept(
                    self,
                    result,
                    RefusalCode.NOT_AUTHENTICATED,
                    "NET-006",
                    now,
                    f"指定時間（{row[1]}）を過ぎたためセッションアウトしました",
                    f"the session was cut at its designated time ({row[1]})",
                    field="session",
                )
                return
            self.allow(
                result,
                "NET-006",
                now,
                "指定時間内の接続です",
                "inside the designated session time",
                session=session_id,
                ends_at=row[1],
            )

        return self.command(now, None, act)

    def report_lost(self, device: str, now: datetime) -> Result:
        """A lost device goes on the revocation list: nothing it presents is accepted afterwards (NET-007)."""

        def act(result: Result) -> None:
            if self.terminal(device) is None:
                raise InputError("device", f"{device!r} is not registered in {self.municipality}")
            self.conn.execute(
                "UPDATE net_terminals SET revoked_at = ?, revoked_reason = 'lost' WHERE municipality = ? AND terminal = ?",
                (now.isoformat(), self.municipality, device),
            )
            self.conn.execute(
                "UPDATE net_remote_sessions SET closed_at = ? WHERE device = ? AND closed_at IS NULL",
                (now.isoformat(), device),
            )

        return self.command(now, None, act)

    def require_not_revoked(self, device: str, revoked_at: str | None) -> None:
        if revoked_at is not None:
            raise self.refuse(
                RefusalCode.REVOKED_CERTIFICATE,
                "NET-007",
                f"{device} は紛失により無効化されています（{revoked_at}）。正しい利用者の認証情報でも接続できません",
                f"{device} was revoked after loss at {revoked_at}; no credential makes it usable",
                field="device",
            )

    def _off_site_device(self, device: str) -> str | None:
        """A registered off-site SIM device (NET-006), or a refusal; returns when it was revoked, if it was."""
        found = self.terminal(device)
        if found is None or not found[0].remote:
            raise self.refuse(
                RefusalCode.SYSTEM_NOT_REGISTERED,
                "NET-006",
                f"{device} は登録された庁外用専用機器ではありません",
                f"{device} is not a registered off-site SIM device",
                field="device",
            )
        return found[1]

    def _remote(self) -> Remote:
        if self.data.remote is None:
            raise InputError("remote", f"{self.municipality} claims no off-site access (NET-006)")
        return self.data.remote

    # -- helpers ----------------------------------------------------------------------------------------

    def connections(self) -> list[dict[str, Any]]:
        keys = ("at", "source", "destination", "port", "control", "passed")
        return [
            dict(zip(keys, r, strict=True))
            for r in self.conn.execute(
                "SELECT at, source, destination, port, control, passed FROM net_connections WHERE municipality = ?"
                " ORDER BY seq",
                (self.municipality,),
            )
        ]

    def quarantine(self) -> list[dict[str, Any]]:
        keys = ("at", "host", "kind", "name", "signature")
        return [
            dict(zip(keys, r, strict=True))
            for r in self.conn.execute(
                "SELECT at, host, kind, name, signature FROM net_quarantine WHERE municipality = ? ORDER BY seq",
                (self.municipality,),
            )
        ]


# -- installing into a world -------------------------------------------------------------------------------


def install(world: World) -> None:
    """Add, for each municipality of the world, its network perimeter, terminal fleet and counter."""
    from simulator.components.counter import Counter
    from simulator.components.registry import Registry
    from simulator.components.terminal import TerminalFleet

    data = load_network_data()
    for m in world.spec.municipalities:
        spec = data.get(m.key)
        if spec is None:
            continue
        db = world.store(m.key)
        parties = {
            key: f"{m.key}.{key}"
            for key in spec.hosts
            if f"{m.key}.{key}" in world.components
        }
        parties["intermediate_server"] = f"platform.intermediate_server.{m.key}"
        parties["nws"] = "nws.core"
        parties["prefectural_server"] = f"jlis.prefectural_server.{m.prefecture}"
        platform_path = "relay" if m.relay is not None and "relay" in spec.hosts else "intermediate_server"
        network_party = f"{m.key}.network"
        network = world.add(
            Network,
            network_party,
            m.key,
            municipality=m.key,
            data=spec,
            trust=world.trust,
            platform_path=platform_path,
            parties=parties,
            chains=world.data_dir / "keys" / "parties",
        )
        if world.fresh:
            with transaction(db):
                network.seed(world.spec.start)
        registry = world.components[f"{m.key}.registry"]
        assert isinstance(registry, Registry)
        fleet_party = f"{m.key}.terminals"
        world.add(
            TerminalFleet,
            fleet_party,
            m.key,
            municipality=m.key,
            network=network,
            systems={p: c for p, c in world.components.items() if p.startswith(f"{m.key}.")},
            approvers=registry.staff,
        )
        if spec.counter is not None:
            counter_party = f"{m.key}.counter"
            world.add(
                Counter,
                counter_party,
                m.key,
                municipality=m.key,
                spec=spec.counter,
                registry=registry,
            )
