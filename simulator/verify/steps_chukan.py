"""Step kinds for the 中間サーバー, its platform and NWS master distribution (CHUKAN, PF, NWS areas).

Each step drives a component's own command or a signed message, as staff at a 中間サーバー terminal, the
platform operator, the NWS master function or an attacker on the wire would. Steps never decide and never
write a store: the components do, and their decisions are what the scenario's expectations match.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from simulator.components.base import Outgoing, Result
from simulator.components.intermediate_server import IntermediateServer
from simulator.components.staff import StaffSession
from simulator.model.envelope import Envelope, MessageType
from simulator.model.permissions import PermissionList
from simulator.verify.steps import ScenarioContext, StepError, StepRecord, _b64, _b64json, _captured, step
from simulator.world import DEMO_PASSWORD

__all__: list[str] = []


def _chukan(ctx: ScenarioContext, p: dict[str, Any], default: str) -> IntermediateServer:
    return ctx.world.intermediate(ctx.municipality(p.get("municipality"), default))


def _run(ctx: ScenarioContext, record: StepRecord, action: Callable[[datetime], Result]) -> Result:
    result, hops = ctx.driver.step(action)
    record.result = result
    record.hops.extend(hops)
    record.value = result.value
    return result


def _login(ctx: ScenarioContext, record: StepRecord, chukan: IntermediateServer, p: dict[str, Any]) -> StaffSession:
    """Log in at the tenant's terminal (the login itself is recorded); a session that was never logged in on
    this server can be asked for with `login: false`, to show it is refused."""
    user = str(p.get("user", "reviewer"))
    if p.get("login", True) is False:
        # A session the directory would issue, but with no login recorded at this 中間サーバー.
        return chukan.staff.authenticate(user, DEMO_PASSWORD)
    result = _run(ctx, record, lambda now: chukan.login(user, str(p.get("password", DEMO_PASSWORD)), now))
    if not isinstance(result.value, StaffSession):
        raise _Refused()
    return result.value


class _Refused(Exception):
    """The login was refused; the step ends there with that refusal as its result."""


def _staff_step(
    ctx: ScenarioContext,
    record: StepRecord,
    p: dict[str, Any],
    default: str,
    action: Callable[[IntermediateServer, StaffSession, datetime], Result],
) -> None:
    chukan = _chukan(ctx, p, default)
    try:
        session = _login(ctx, record, chukan, p)
    except _Refused:
        return
    _run(ctx, record, lambda now: action(chukan, session, now))
    if p.get("logout", False) and record.refusal is None:
        hops = ctx.driver.step(lambda now: chukan.logout(session, now))[1]
        record.hops.extend(hops)


@step("chukan_login")
def _chukan_login(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Staff log in at a 中間サーバー terminal (`municipality`, `user`, `password`), then optionally log out."""
    chukan = _chukan(ctx, p, ctx.provider)
    try:
        session = _login(ctx, record, chukan, p)
    except _Refused:
        return
    if p.get("logout", False):
        record.hops.extend(ctx.driver.step(lambda now: chukan.logout(session, now))[1])


@step("chukan_operate")
def _chukan_operate(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """An infrastructure operation by the platform operator (`action`: restart_service, read_metrics)."""
    action = str(p.get("action", "read_metrics"))
    _staff_step(ctx, record, {"user": "operator", **p}, ctx.provider, lambda c, s, now: c.operate(s, action, now))


@step("rotate_key")
def _rotate_key(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The tenant's key manager rotates the 副本 data key."""
    _staff_step(ctx, record, {"user": "keyadmin", **p}, ctx.provider, lambda c, s, now: c.rotate_key(s, now))


@step("export_key")
def _export_key(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A staff member asks the key-management function to hand out a data key (`version`)."""
    version = int(p.get("version", 1))
    _staff_step(ctx, record, {"user": "keyadmin", **p}, ctx.provider, lambda c, s, now: c.export_key(s, version, now))


@step("upload_replica")
def _upload_replica(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A 副本 file (`rows`) uploaded by hand at the 中間サーバー terminal instead of the automatic path."""
    rows = [dict(r) for r in p.get("rows", [{"item": "local_tax_info"}])]
    _staff_step(
        ctx, record, {"user": "reviewer", **p}, ctx.provider, lambda c, s, now: c.import_replica_file(s, rows, now)
    )


def _query_id(ctx: ScenarioContext, p: dict[str, Any]) -> str:
    of = str(p.get("of", ""))
    if of not in ctx.records or not isinstance(ctx.records[of].value, dict):
        raise StepError("of", f"names no earlier query step ({of!r})")
    return str(ctx.records[of].value["query_id"])


@step("query_result")
def _query_result(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The requester's staff open the result of an earlier query step (`of`) on the 照会 screen."""
    query_id = _query_id(ctx, p)
    _staff_step(
        ctx,
        record,
        {"user": "clerk", **p},
        ctx.requester,
        lambda c, s, now: c.view_query_result(s, query_id, now),
    )


@step("purge_results")
def _purge_results(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The 照会 function's scheduled purge of results past their TTL."""
    chukan = _chukan(ctx, p, ctx.requester)
    _run(ctx, record, lambda now: chukan.purge_expired_results(now))


@step("retention_batch")
def _retention_batch(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The system-management batch that deletes data past its retention limit."""
    chukan = _chukan(ctx, p, ctx.requester)
    _run(ctx, record, lambda now: chukan.run_retention_batch(now))


@step("delete_query_record")
def _delete_query_record(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Staff ask to delete the 照会 record of an earlier query step (`of`) by hand."""
    query_id = _query_id(ctx, p)
    _staff_step(
        ctx,
        record,
        {"user": "clerk", **p},
        ctx.requester,
        lambda c, s, now: c.delete_query_record(s, query_id, now),
    )


# -- NWS master distribution ------------------------------------------------------------------------------


def _new_list(ctx: ScenarioContext, p: dict[str, Any]) -> PermissionList:
    current = ctx.world.nws.permission_list
    version = str(p.get("version", f"{current.version}+{uuid.uuid4().hex[:6]}"))
    if "remove_row" in p:
        return current.without_row(str(p["remove_row"]), version)
    add = p.get("add_item")
    if not isinstance(add, dict) or "row" not in add or "item" not in add:
        raise StepError("add_item", "give {row, item} to add, or remove_row")
    rows = tuple(
        r.model_copy(update={"items": (*r.items, str(add["item"]))})
        if r.row == str(add["row"]) and str(add["item"]) not in r.items
        else r
        for r in current.rows
    )
    return current.model_copy(update={"version": version, "rows": rows})


@step("distribute_list")
def _distribute_list(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """NWS puts a new 照会許可用照合リスト in force and distributes it (`add_item` or `remove_row`); deliveries
    to the municipalities in `skip` are lost on the way (a tenant that misses the update)."""
    new_list = _new_list(ctx, p)
    lost = {f"platform.intermediate_server.{ctx.municipality(m, m)}" for m in p.get("skip", [])}
    nws = ctx.world.nws

    def act(now: datetime) -> Result:
        result = nws.distribute(new_list, now)
        result.outgoing = [o for o in result.outgoing if o.recipient not in lost]
        return result

    _run(ctx, record, act)


@step("list_status")
def _list_status(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """NWS checks which 中間サーバー have not applied the list in force (`resend: true` re-sends to them)."""
    nws = ctx.world.nws
    _run(ctx, record, lambda now: nws.distribution_status(now, bool(p.get("resend", False))))


@step("tamper_distribution")
def _tamper_distribution(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Deliver an earlier list distribution whose signed document was altered on the way (rows dropped)."""
    original = _captured(ctx, {"type": MessageType.PERMISSION_LIST, **{k: v for k, v in p.items() if k == "to"}})
    header, payload, signature = str(original.envelope.body["document"]).split(".")
    data = _b64json(payload)
    data["id"] = uuid.uuid4().hex
    data["body"] = {**data["body"], "sequence": int(data["body"]["sequence"]) + 1}
    data["body"]["list"] = {**data["body"]["list"], "rows": data["body"]["list"]["rows"][:1]}
    nws = ctx.world.nws
    now = ctx.driver.advance(ctx.driver.hop_latency)
    envelope = Envelope(
        id=uuid.uuid4().hex,
        type=MessageType.PERMISSION_LIST,
        sender=nws.party,
        recipient=original.recipient,
        issued_at=now,
        nonce=secrets.token_hex(16),
        correlation_id=record.name,
        body={**original.envelope.body, "document": f"{header}.{_b64(data)}.{signature}"},
    )
    wire = nws.security.sign(envelope)
    record.hops.extend(
        ctx.driver.run(Result(outgoing=[Outgoing(original.recipient, wire, envelope, original.network)]))
    )


@step("chukan_send")
def _chukan_send(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """`send` with parties named per world: `from` is a system of `municipality` (atena, tax, ltc, registry,
    chukan, city: the tenant's own city-side peer) or a party id; `to` defaults to the 中間サーバー of `tenant` (default: the same municipality)."""
    from simulator.verify.steps import STEPS

    m = ctx.municipality(p.get("municipality"), ctx.provider)
    sender = str(p.get("from", "atena"))
    if sender in ("atena", "tax", "ltc", "registry"):
        sender = f"{m}.{sender}"
    elif sender == "chukan":
        sender = f"platform.intermediate_server.{m}"
    elif sender == "city":
        sender = ctx.world.intermediate(m).atena_party  # the 宛名 system, or the relay in front of it
    tenant = ctx.municipality(p.get("tenant"), m)
    recipient = str(p.get("to") or f"platform.intermediate_server.{tenant}")
    params = {k: v for k, v in p.items() if k not in ("municipality", "tenant")}
    STEPS["send"](ctx, record, {**params, "from": sender, "to": recipient})


@step("forge_reply")
def _forge_reply(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A validly NWS-signed 照会結果 for the still-open query of an earlier step (`of`), naming another person's
    符号 (`linkage_code`): what a confused or compromised relay would deliver."""
    query_id = _query_id(ctx, p)
    chukan = ctx.world.intermediate(ctx.requester)
    nws = ctx.world.nws
    now = ctx.driver.advance(ctx.driver.hop_latency)
    envelope = Envelope(
        id=uuid.uuid4().hex,
        type=MessageType.PROVISION_REPLY,
        sender=nws.party,
        recipient=chukan.party,
        issued_at=now,
        nonce=secrets.token_hex(16),
        correlation_id=record.name,
        body={
            "query_id": query_id,
            "status": "provided",
            "permit_id": "forged",
            "requester_linkage_code": str(p.get("linkage_code", "ANOTHERPERSONSCODE")),
        },
        sealed=nws.security.seal({"query_id": query_id, "data": {}}, ctx.world.directory.certificate(chukan.party)),
    )
    wire = nws.security.sign(envelope)
    outgoing = Outgoing(chukan.party, wire, envelope, "lgwan", chukan.party)
    record.hops.extend(ctx.driver.run(Result(outgoing=[outgoing])))


@step("tunnel_send")
def _tunnel_send(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A message signed by `from` (a system of `municipality`) that enters the tenant's own tunnel, as an
    unregistered host on the city side would: the connection is the tenant's, the caller is not."""
    from simulator.components.base import Link
    from simulator.drivers.inproc import Hop

    m = ctx.municipality(p.get("municipality"), ctx.provider)
    chukan = ctx.world.intermediate(m)
    sender = ctx.component(f"{m}.{p.get('from', 'tax')}" if "." not in str(p.get("from", "tax")) else str(p["from"]))
    now = ctx.driver.advance(ctx.driver.hop_latency)
    envelope = Envelope(
        id=uuid.uuid4().hex,
        type=MessageType(str(p["type"])),
        sender=sender.party,
        recipient=chukan.party,
        issued_at=now,
        nonce=secrets.token_hex(16),
        correlation_id=record.name,
        body=dict(p.get("body", {})),
    )
    wire = sender.security.sign(envelope)
    result = chukan.handle(wire, Link(source=chukan.atena_party, network="lgwan"), now)
    hop = Hop(
        seq=len(ctx.driver.hops) + 1,
        at=now,
        sender=sender.party,
        recipient=chukan.party,
        network="lgwan",
        message_type=str(envelope.type),
        message_id=envelope.id,
        correlation_id=envelope.correlation_id,
        signed=True,
        sealed_for=None,
        body_keys=sorted(envelope.body),
        wire_bytes=len(wire),
        decisions=result.decisions,
        refusal=result.refusal,
    )
    ctx.driver.hops.append(hop)
    record.hops.append(hop)
    record.hops.extend(ctx.driver.run(Result(outgoing=result.outgoing)))
