"""Step kinds for 送付先情報 and the 個人番号カード管理システム (CS-015, CS-016, CS-022, CS-023).

Each step acts through a component's own command, or sends a message signed with a real party's key (a faulty or
compromised 既存住基); steps decide nothing and never write a store: CS, 既存住基, 機構 and the CMS do.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from simulator.components.base import Outgoing
from simulator.components.municipal_cs import MunicipalCS
from simulator.components.sofusaki import DELIVERY_ITEMS, extract_delivery
from simulator.model.envelope import Envelope, MessageType
from simulator.verify.steps import ScenarioContext, StepError, StepRecord, _deliver, _drive, step

__all__: list[str] = []

_CARD_SYSTEM = "jlis.card_system"


def _municipality(ctx: ScenarioContext, p: dict[str, Any]) -> str:
    return ctx.municipality(p.get("municipality"), ctx.provider)


def _cs(ctx: ScenarioContext, p: dict[str, Any]) -> MunicipalCS:
    return ctx.world.cs(_municipality(ctx, p))


def _party(ctx: ScenarioContext, value: Any) -> str:
    text = str(value).replace("{provider}", ctx.provider).replace("{requester}", ctx.requester)
    ctx.component(text)
    return text


def _resident_code(ctx: ScenarioContext, p: dict[str, Any]) -> str:
    """The person's 住民票コード: `person` (a selector), or `named` (someone entered during the scenario, e.g. a birth)."""
    if "named" in p:
        registry = ctx.world.registry(_municipality(ctx, p))
        found = [r for r in registry.residents() if r["name"] == p["named"]]
        if not found:
            raise StepError("named", f"nobody named {p['named']!r} is on the register of {registry.municipality}")
        return str(found[-1]["resident_code"])
    person = p["_person"]
    if person is None:
        raise StepError("person", "this step needs `person` or `named`")
    return str(person["resident_code"])


@step("extract_delivery")
def _extract_delivery(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """既存住基 extracts 送付先情報 for `person` (or `named`) and sends it toward CS (and on to 機構 and the CMS)."""
    registry = ctx.world.registry(_municipality(ctx, p))
    code = _resident_code(ctx, p)
    _drive(ctx, record, lambda now: extract_delivery(registry, code, now))


@step("forge_delivery")
def _forge_delivery(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A faulty 既存住基 (signing as `from`) sends 送付先情報 about `person` with `set` overrides to the CS;
    `number_of: <selector>` puts another person's 個人番号 in it."""
    cs = _cs(ctx, p)
    sender = ctx.component(_party(ctx, p["from"]))
    registry = ctx.world.registry(_municipality(ctx, p))
    resident = registry.resident(_resident_code(ctx, p))
    if resident is None:
        raise StepError("person", "the person is not on the register")
    items: dict[str, Any] = {k: resident[k] for k in DELIVERY_ITEMS}
    if "number_of" in p:
        items["my_number"] = ctx.person(p["number_of"])["my_number"]
    items.update(dict(p.get("set", {})))
    now = ctx.driver.advance(ctx.driver.hop_latency)
    envelope = Envelope(
        id=uuid.uuid4().hex,
        type=MessageType.DELIVERY_INFO,
        sender=sender.party,
        recipient=cs.party,
        issued_at=now,
        nonce=secrets.token_hex(16),
        correlation_id=record.name,
        body={"request_id": uuid.uuid4().hex},
        sealed=sender.security.seal(items, ctx.world.directory.certificate(cs.party)),
    )
    network = ctx.world.directory.network_between(sender.party, cs.party) or "office_lan"
    _deliver(ctx, record, Outgoing(cs.party, sender.security.sign(envelope), envelope, network, cs.party))


@step("send_delivery_file")
def _send_delivery_file(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The CS is asked to send one of its 送付先情報ファイル (`file`: index, default the newest) to `to`."""
    cs = _cs(ctx, p)
    files = cs.delivery_files()
    if not files:
        raise StepError("file", f"{cs.party} has made no 送付先情報ファイル yet")
    file_id = str(files[int(p.get("file", -1))]["file_id"])
    to = _party(ctx, p.get("to", _CARD_SYSTEM))
    _drive(ctx, record, lambda now: cs.send_delivery_file(file_id, to, now))


@step("purge_delivery")
def _purge_delivery(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The CS batch that deletes every 送付先情報ファイル past its retention."""
    cs = _cs(ctx, p)
    _drive(ctx, record, lambda now: cs.purge_delivery_files(now))


@step("card_event")
def _card_event(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A card `event` (issue, suspend, resume, revoke, collect, return) recorded at the counter for `person`."""
    cs = _cs(ctx, p)
    code = _resident_code(ctx, p)
    session = ctx.session(cs.staff, str(p.get("user", "cs-op")))
    event = str(p["event"])
    _drive(ctx, record, lambda now: cs.record_card_event(session, code, event, now))


@step("send_card_event")
def _send_card_event(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Ask the CS to send a card event: `event: <step name>` (one recorded in that step) or `unrecorded`."""
    cs = _cs(ctx, p)
    wanted = str(p.get("event", "unrecorded"))
    if wanted == "unrecorded":
        event_id = uuid.uuid4().hex
    else:
        earlier = ctx.records.get(wanted)
        if earlier is None or not isinstance(earlier.value, str):
            raise StepError("event", f"no card event was recorded in a step named {wanted!r}")
        event_id = earlier.value
    _drive(ctx, record, lambda now: cs.send_card_event(event_id, now))
