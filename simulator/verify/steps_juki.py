"""Step kinds of the 住基 side (JUKI, GW, CS, JLIS): registry screens, the 住基GW, the CS host and the J-LIS checks.

Each step acts through a component's own command or a message signed with a real party's key; faults are modelled
on the wire (a link that drops a message), never by editing a store. Steps decide nothing: the components do.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from simulator.components.base import Component, Link, Outgoing, Result
from simulator.components.gateway import Gateway
from simulator.components.hsm import KeyModule
from simulator.components.jlis import NationalServer, PrefecturalServer
from simulator.components.municipal_cs import IDENTITY_ITEMS, JLIS_PACKAGES, MunicipalCS
from simulator.identifiers import new_resident_code
from simulator.model.envelope import Envelope, MessageType
from simulator.verify.steps import ScenarioContext, StepError, StepRecord, _b64json, _deliver, _drive, step

__all__: list[str] = []

# Wires a faulty link swallowed, per scenario context (a link fault is part of the world's wire, not a store).
_DROPPED: dict[int, set[str]] = {}


def _lost(ctx: ScenarioContext) -> list[Outgoing]:
    wires = _DROPPED.get(id(ctx), set())
    return [m for m in ctx.captured if m.wire in wires]


def _message_type(value: Any) -> MessageType:
    try:
        return MessageType(str(value))
    except ValueError:
        raise StepError("type", f"unknown message type {value!r}") from None


def _resolve(ctx: ScenarioContext, party: Any) -> str:
    """A party id; `{provider}` / `{requester}` in it are replaced by the world's municipalities."""
    text = str(party).replace("{provider}", ctx.provider).replace("{requester}", ctx.requester)
    ctx.component(text)
    return text


def _cs(ctx: ScenarioContext, p: dict[str, Any]) -> MunicipalCS:
    return ctx.world.cs(ctx.municipality(p.get("municipality"), ctx.provider))


def _resign(sender: Component, original: Envelope, now: datetime, **changes: Any) -> Outgoing:
    envelope = original.model_copy(
        update={"id": uuid.uuid4().hex, "nonce": secrets.token_hex(16), "issued_at": now, **changes}
    )
    return Outgoing(envelope.recipient, sender.security.sign(envelope), envelope, "", None)


# -- faults on the wire ---------------------------------------------------------------------------------------


@step("link_fault")
def _link_fault(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The link into `to` drops the next `count` messages of `type` (a network fault injected on the wire)."""
    target = ctx.component(_resolve(ctx, p["to"]))
    wanted = _message_type(p["type"])
    remaining = [int(p.get("count", 1))]
    inner = target.handle
    dropped = _DROPPED.setdefault(id(ctx), set())

    def faulty(wire: str, link: Link, now: datetime) -> Result:
        if remaining[0] > 0 and _b64json(wire.split(".")[1]).get("type") == wanted:
            remaining[0] -= 1
            dropped.add(wire)  # the driver still reports the hop: the sender did send it
            return Result()
        return inner(wire, link, now)

    setattr(target, "handle", faulty)  # noqa: B010 - the fault wraps this one instance's wire


@step("answer_number")
def _answer_number(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Answer a 個人番号 request whose real reply was lost, as its sender would, about `person` instead."""
    wanted = _message_type(p.get("type", MessageType.MY_NUMBER_ISSUED))
    to = _resolve(ctx, p["to"])
    lost = [m for m in _lost(ctx) if m.envelope.type == wanted and m.recipient == to]
    if not lost:
        raise StepError("to", f"no lost {wanted} to {to} to answer")
    original = lost[-1]
    sender = ctx.component(original.envelope.sender)
    person = p["_person"]
    if person is None:
        raise StepError("person", "answer_number needs the person the wrong answer names")
    sealed_for = original.sealed_for or to
    now = ctx.driver.advance(ctx.driver.hop_latency)
    sealed = sender.security.seal(
        {"resident_code": person["resident_code"], "my_number": person["my_number"]},
        ctx.world.directory.certificate(sealed_for),
    )
    outgoing = _resign(sender, original.envelope, now, sealed=sealed)
    network = original.network
    _deliver(ctx, record, Outgoing(outgoing.recipient, outgoing.wire, outgoing.envelope, network, sealed_for))


@step("redeliver")
def _redeliver(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The sender retries an earlier message (same body and payload, a new envelope): at-least-once delivery."""
    wanted = _message_type(p["type"])
    to = _resolve(ctx, p["to"]) if "to" in p else None
    pool = _lost(ctx) if p.get("lost") else ctx.captured
    matches = [m for m in pool if m.envelope.type == wanted and (to is None or m.recipient == to)]
    if not matches:
        raise StepError("type", f"no {wanted} message to redeliver")
    original = matches[int(p.get("index", -1))]
    sender = ctx.component(original.envelope.sender)
    now = ctx.driver.advance(ctx.driver.hop_latency)
    again = _resign(sender, original.envelope, now)
    _deliver(ctx, record, Outgoing(again.recipient, again.wire, again.envelope, original.network, original.sealed_for))


# -- 既存住基 -----------------------------------------------------------------------------------------------------


def _registry_session(ctx: ScenarioContext, p: dict[str, Any], key: str = "user", default: str = "clerk-a") -> Any:
    registry = ctx.world.registry(ctx.municipality(p.get("municipality"), ctx.provider))
    return registry, ctx.session(registry.staff, str(p.get(key, default)))


def _code_of(ctx: ScenarioContext, p: dict[str, Any]) -> str:
    if "resident_code_from" in p:
        value = ctx.records[str(p["resident_code_from"])].value
        if not isinstance(value, dict) or "resident_code" not in value:
            raise StepError("resident_code_from", "that step produced no 住民票コード")
        return str(value["resident_code"])
    person = p["_person"]
    if person is None:
        raise StepError("person", "this step needs a person")
    return str(person["resident_code"])


@step("publish")
def _publish(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """既存住基 produces the 移転 data of one 住民票 (本人確認情報, 宛名, 副本): checked before it is produced."""
    registry = ctx.world.registry(ctx.municipality(p.get("municipality"), ctx.provider))
    code = _code_of(ctx, p)
    _drive(ctx, record, lambda now: registry.publish(code, now))


@step("correction")
def _correction(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A clerk enters a 本人確認情報 correction; `approve_as` (a 所属長, or not) approves or declines it."""
    registry, clerk = _registry_session(ctx, p, "enter_as")
    code = _code_of(ctx, p)
    changes = dict(p["changes"])
    reason = str(p.get("reason", "届出書の記載誤りによる職権訂正"))
    _drive(ctx, record, lambda now: registry.request_correction(clerk, code, changes, reason, now))
    if record.refusal is not None or "approve_as" not in p:
        return
    correction_id = str(record.value)
    approver = ctx.session(registry.staff, str(p["approve_as"]))
    approve = bool(p.get("approve", True))
    _drive(ctx, record, lambda now: registry.decide_correction(approver, correction_id, approve, now))


@step("resident_view")
def _resident_view(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A registry screen: `view: detail` (one person) or `view: list` (household / search result) with `columns`."""
    registry, clerk = _registry_session(ctx, p)
    if p.get("view", "detail") == "detail":
        code = _code_of(ctx, p)
        _drive(ctx, record, lambda now: registry.resident_detail(clerk, code, now))
        return
    person = p["_person"]
    columns = [str(c) for c in p.get("columns", ["atena_number", "name", "address"])]
    household = str(person["household_id"]) if person is not None and p.get("household", True) else None
    _drive(ctx, record, lambda now: registry.resident_list(clerk, columns, now, household_id=household))


@step("master_query")
def _master_query(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A business system's connection asks 既存住基 for a resident (`database`: resident_master or another store)."""
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    registry = ctx.world.registry(m)
    client = ctx.component(_resolve(ctx, p.get("from", f"{m}.tax")))
    person = p["_person"]
    if person is None:
        raise StepError("person", "master_query needs a person")
    atena = registry.resident(str(person["resident_code"]))
    if atena is None:
        raise StepError("person", "the person is not on this register")

    def act(now: datetime) -> Result:
        envelope = Envelope(
            id=uuid.uuid4().hex,
            type=MessageType.RESIDENT_MASTER_QUERY,
            sender=client.party,
            recipient=registry.party,
            issued_at=now,
            nonce=secrets.token_hex(16),
            correlation_id=record.name,
            body={
                "database": str(p.get("database", "resident_master")),
                "atena_number": atena["business_atena_number"],
            },
        )
        # The answer comes back on the same connection (a synchronous read), so it is the step's value.
        return registry.handle(client.security.sign(envelope), Link(client.party, "office_lan"), now)

    _drive(ctx, record, act)


@step("seal")
def _seal(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """印鑑登録 of `person`, then an 印鑑登録証明書 or a report over seal records with `columns`."""
    registry, clerk = _registry_session(ctx, p)
    code = _code_of(ctx, p)
    image = str(p.get("seal_image", f"seal-image-of-{code}"))
    _drive(ctx, record, lambda now: registry.register_seal(clerk, code, image, now))
    if record.refusal is not None:
        return
    number = str(record.value)
    columns = [str(c) for c in p.get("columns", ["seal_number", "name", "birth_date", "address"])]
    one = None if p.get("report", False) else number
    _drive(ctx, record, lambda now: registry.seal_report(clerk, columns, now, seal_number=one))


# -- 住基GW ---------------------------------------------------------------------------------------------------


def _gateway(ctx: ScenarioContext, p: dict[str, Any]) -> Gateway:
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    gateway = ctx.component(f"{m}.juki_gateway")
    if not isinstance(gateway, Gateway):
        raise StepError("municipality", f"{m} has no 住基GW")
    return gateway


@step("gw_forward")
def _gw_forward(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The 住基GW's scheduled forwarder runs (it sends its queue only inside 住基ネット's window)."""
    gateway = _gateway(ctx, p)
    _drive(ctx, record, lambda now: gateway.forward_queued(now))


@step("gw_restart")
def _gw_restart(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The 住基GW process restarts: a new instance over the same store, nothing carried in memory."""
    gateway = _gateway(ctx, p)
    ctx.world.components[gateway.party] = gateway.restarted()
    record.value = {"queued": len(ctx.world.components[gateway.party].queued())}  # type: ignore[attr-defined]


@step("relay_manifest")
def _relay_manifest(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """既存住基 sends the 住基GW its record of every update it produced, for the daily reconciliation."""
    registry = ctx.world.registry(ctx.municipality(p.get("municipality"), ctx.provider))
    _drive(ctx, record, lambda now: registry.send_relay_manifest(now))


@step("wide_area")
def _wide_area(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A 住民票の写しの広域交付 request for `person` reaches the provider's CS over 住基ネット."""
    cs = _cs(ctx, p)
    code = str(p.get("resident_code") or _code_of(ctx, p))
    _drive(ctx, record, lambda now: cs.request_wide_area(code, now))


# -- 市町村CS -------------------------------------------------------------------------------------------------


@step("identity_update")
def _identity_update(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """An IDENTITY_UPDATE about `person` (8 items, `set` overrides; `resident_code: new` for an unused code)."""
    sender = ctx.component(_resolve(ctx, p["from"]))
    cs = _cs(ctx, p)
    person = p["_person"]
    if person is None:
        raise StepError("person", "identity_update needs a person")
    items: dict[str, Any] = {k: person.get(k) for k in IDENTITY_ITEMS if k in person}
    items.update(change_reason=str(p.get("reason", "move_within")), change_date=ctx.driver.now.date().isoformat())
    items.update(dict(p.get("set", {})))
    if items.get("resident_code") == "new":
        items["resident_code"] = new_resident_code()
    now = ctx.driver.advance(ctx.driver.hop_latency)
    envelope = Envelope(
        id=uuid.uuid4().hex,
        type=MessageType.IDENTITY_UPDATE,
        sender=sender.party,
        recipient=cs.party,
        issued_at=now,
        nonce=secrets.token_hex(16),
        correlation_id=record.name,
        body={"change_id": uuid.uuid4().hex, **dict(p.get("body", {}))},
        sealed=sender.security.seal(items, ctx.world.directory.certificate(cs.party)),
    )
    network = ctx.world.directory.network_between(sender.party, cs.party) or "office_lan"
    _deliver(ctx, record, Outgoing(cs.party, sender.security.sign(envelope), envelope, network, cs.party))


@step("cs_topology")
def _cs_topology(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Audit the routes the CS has (CS-004, CS-024)."""
    cs = _cs(ctx, p)
    _drive(ctx, record, lambda now: cs.topology_audit(now))


def _program(p: dict[str, Any]) -> tuple[str, bytes]:
    name = str(p["program"])
    if name in JLIS_PACKAGES and "content" not in p:
        return name, JLIS_PACKAGES[name][0]  # the package as 機構 distributed it
    return name, str(p.get("content", f"binary of {name}")).encode()


@step("cs_launch")
def _cs_launch(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Launch `program` (with `content`, else the 機構 package of that name) on the CS host."""
    cs = _cs(ctx, p)
    name, content = _program(p)
    _drive(ctx, record, lambda now: cs.launch_process(name, content, now))


@step("cs_client")
def _cs_client(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A client program asks for a session on CS data."""
    cs = _cs(ctx, p)
    name, content = _program(p)
    _drive(ctx, record, lambda now: cs.open_data_session(name, content, now))


@step("cs_device")
def _cs_device(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Plug a device into the CS hub: `device` (a registered one's MAC) or a literal `mac`."""
    cs = _cs(ctx, p)
    try:
        mac = str(p["mac"]) if "mac" in p else cs.registered_mac(str(p["device"]))
    except KeyError as error:
        raise StepError("device", str(error)) from None
    _drive(ctx, record, lambda now: cs.connect_device(mac, now))


@step("cs_module")
def _cs_module(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The CS key module: `action` sign, export, or sign_on_copy (the CS disk image on another host)."""
    cs = _cs(ctx, p)
    action = str(p.get("action", "sign"))
    data = str(p.get("data", "住基ネット相互認証チャレンジ")).encode()
    act: Callable[[datetime], Result]
    if action == "sign":
        act = lambda now: cs.module_sign(data, now)  # noqa: E731
    elif action == "export":
        act = lambda now: cs.module_export(now)  # noqa: E731
    elif action == "sign_on_copy":
        # The same store (a copied disk image) in a module with another device secret.
        copy = KeyModule(cs.conn, f"{cs.party}.hsm", secrets.token_bytes(32))
        act = lambda now: cs.module_sign(data, now, module=copy)  # noqa: E731
    else:
        raise StepError("action", "sign, export or sign_on_copy")
    _drive(ctx, record, act)


# -- J-LIS ----------------------------------------------------------------------------------------------------


@step("consistency_check")
def _consistency_check(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """整合性確認 (住基法第14条): the CS's upload compared at the `server` (prefectural or national)."""
    cs = _cs(ctx, p)
    rows = cs.consistency_rows()
    drop = p.get("drop_person")
    if drop is not None:
        code = ctx.person(drop)["resident_code"]
        rows = [r for r in rows if r["resident_code"] != code]
    alter = p.get("alter_person")
    if alter is not None:
        code = ctx.person(alter)["resident_code"]
        rows = [{**r, "address": r["address"] + "（相違）"} if r["resident_code"] == code else r for r in rows]
    server_kind = str(p.get("server", "national"))
    server: PrefecturalServer | NationalServer
    if server_kind == "national":
        found = ctx.component("jlis.national_server")
        assert isinstance(found, NationalServer)
        server = found
    else:
        found = ctx.component(cs.prefectural_party)
        assert isinstance(found, PrefecturalServer)
        server = found
    uploader = str(p.get("as_cs", cs.party))
    _drive(ctx, record, lambda now: server.consistency_check(uploader, rows, now))


@step("send_as")
def _send_as(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The generic `send`, with `{provider}` / `{requester}` in `from` and `to`, so one file fits every profile."""
    from simulator.verify.steps import STEPS

    STEPS["send"](ctx, record, {**p, "from": _resolve(ctx, p["from"]), "to": _resolve(ctx, p["to"])})
