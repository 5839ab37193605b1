"""Relay buffering with back-pressure (RELAY-002) and the office link's sequence gap handling (RENKEI-006)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.office_link import HUBS, OfficeLink
from simulator.components.relay import RELAY_PROFILES, Relay
from simulator.components.staff import StaffDirectory
from simulator.controls.decision import Outcome
from simulator.crypto import CertificateAuthority, MessageSecurity, ReplayGuard, TrustStore
from simulator.errors import RefusalCode
from simulator.model.envelope import MessageType
from simulator.store.db import connect

JST = timezone(timedelta(hours=9))
SUNDAY_2AM = datetime(2026, 11, 29, 2, 0, tzinfo=JST)  # inside the 市中間サーバ's weekly maintenance window


def _world(tmp_path: Path, parties: list[str]) -> tuple[Directory, dict[str, MessageSecurity], object]:
    ca = CertificateAuthority.create("test CA", SUNDAY_2AM - timedelta(days=2))
    trust = TrustStore(ca.root_certificate, lambda: ca.crl(SUNDAY_2AM))
    directory = Directory()
    conn = connect(tmp_path / "sapporo.sqlite")
    securities = {}
    for party in parties:
        cred = ca.issue(party, "sapporo", SUNDAY_2AM - timedelta(days=1))
        directory.publish(party, cred.certificate)
        securities[party] = MessageSecurity(cred, trust, ReplayGuard(conn, timedelta(minutes=10)))
    return directory, securities, conn


def _sent(component: Component, type_: MessageType, to: str, now: datetime, **kw: object) -> str:
    result = Result()
    envelope = component.send(result, type_, to, now, **kw)  # type: ignore[arg-type]
    assert envelope is not None
    return result.outgoing[0].wire


def test_relay_buffers_in_order_and_pushes_back_when_full(tmp_path: Path) -> None:
    atena, relay_party, chukan = "sapporo.atena", "sapporo.relay", "platform.intermediate_server.sapporo"
    directory, sec, conn = _world(tmp_path, [atena, relay_party, chukan])
    directory.connect(atena, relay_party, "office_lan")
    directory.connect(relay_party, chukan, "lgwan")
    profile = RELAY_PROFILES["shi_chukan"]
    small = type(profile)(**{**profile.__dict__, "capacity": 2})
    relay = Relay(relay_party, conn, sec[relay_party], directory, profile=small, city_party=atena,  # type: ignore[arg-type]
                  platform_party=chukan)  # fmt: skip
    sender = Component(atena, conn, sec[atena], directory)  # type: ignore[arg-type]
    link = Link(atena, "office_lan")
    outcomes = []
    for i in range(3):
        now = SUNDAY_2AM + timedelta(seconds=i)
        wire = _sent(
            sender, MessageType.CODE_REQUEST, relay_party, now, body={"atena_number": f"{i:015d}", "tenant": "sapporo"}
        )
        outcomes.append(relay.handle(wire, link, now))
    assert [r.decisions[-1].outcome for r in outcomes[:2]] == [Outcome.HOLD, Outcome.HOLD]
    assert not outcomes[0].outgoing and not outcomes[1].outgoing
    assert outcomes[2].refusal is not None and outcomes[2].refusal.control_id == "RELAY-002"
    assert outcomes[2].refusal.code == RefusalCode.STATE_CONFLICT
    assert relay.flush(SUNDAY_2AM + timedelta(hours=1)).value == 0  # still in maintenance
    flushed = relay.flush(SUNDAY_2AM + timedelta(hours=4))
    assert [o.envelope.body["atena_number"] for o in flushed.outgoing] == [f"{i:015d}" for i in range(2)]
    assert relay.buffered() == 0


def test_office_link_holds_a_gap_and_applies_in_order(tmp_path: Path) -> None:
    registry, hub_party = "kuwana.registry", "kuwana.office_link"
    directory, sec, conn = _world(tmp_path, [registry, hub_party, "kuwana.tax", "kuwana.nhi", "kuwana.sewer"])
    for dest in ("kuwana.tax", "kuwana.nhi", "kuwana.sewer"):
        directory.connect(hub_party, dest, "office_lan")
    directory.connect(registry, hub_party, "office_lan")
    hub = OfficeLink(hub_party, conn, sec[hub_party], directory, profile=HUBS["kuwana_renkei"], municipality="kuwana",  # type: ignore[arg-type]
                     registry_party=registry, atena_party="kuwana.atena", staff=StaffDirectory(conn, hub_party))  # fmt: skip
    sender = Component(registry, conn, sec[registry], directory)  # type: ignore[arg-type]
    link = Link(registry, "office_lan")
    record = {"my_number": "000000000000", "name": "試験 花子", "birth_date": "1960-01-01", "sex": "2",
              "address": "中央町1番", "change_type": "move_within", "change_date": "2026-11-29"}  # fmt: skip

    def change(seq: int, at: datetime) -> Result:
        wire = _sent(sender, MessageType.OFFICE_CHANGE, hub_party, at, body={"seq": seq, "business_atena_number": f"A{seq}"},
                     personal={"record": record})  # fmt: skip
        return hub.handle(wire, link, at)

    held = change(2, SUNDAY_2AM)
    assert [d.outcome for d in held.decisions if d.control_id == "RENKEI-006"] == [Outcome.HOLD]
    assert not held.outgoing
    filled = change(1, SUNDAY_2AM + timedelta(seconds=1))
    keys = [o.envelope.body["person_key"] for o in filled.outgoing]
    assert keys.index("A1") < keys.index("A2")  # the held change follows the one that filled the gap
    sewer = [o for o in filled.outgoing if o.recipient == "kuwana.sewer"]
    assert sewer and all("my_number" not in o.envelope.body["items"] for o in sewer)
    again = change(1, SUNDAY_2AM + timedelta(seconds=2))
    assert again.refusal is not None and again.refusal.control_id == "RENKEI-006"
