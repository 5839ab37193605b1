"""The step library: every action a scenario file may name, ordinary or adversarial.

Each step kind is a small function over a running world: it acts through the components' own commands and
signed messages (an attacker's step signs with a real party's key, as a compromised system would), and
returns what happened. Steps never decide anything and never write to a store directly; the components
they drive do that, and emit the decisions the scenario's expectations are matched against.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulator.components.base import Component, Outgoing, Result
from simulator.components.staff import StaffDirectory, StaffSession, biometric_sample
from simulator.drivers.inproc import Hop, InProcessDriver
from simulator.errors import Refusal
from simulator.model.envelope import Envelope, MessageType
from simulator.population import DemoPopulation
from simulator.world import DEMO_PASSWORD, World

__all__ = ["STEPS", "ScenarioContext", "StepError", "StepRecord", "run_step"]


class StepError(ValueError):
    """A step's parameters do not fit the world (unknown party, person or message): names the parameter."""

    def __init__(self, param: str, rule: str) -> None:
        self.param = param
        self.rule = rule
        super().__init__(f"{param}: {rule}")


@dataclass
class StepRecord:
    name: str
    kind: str
    hops: list[Hop] = field(default_factory=list)
    result: Result | None = None
    value: Any = None

    @property
    def refusal(self) -> Refusal | None:
        if self.result is not None and self.result.refusal is not None:
            return self.result.refusal
        for hop in self.hops:
            if hop.refusal is not None:
                return hop.refusal
        return None


@dataclass
class ScenarioContext:
    world: World
    driver: InProcessDriver
    population: DemoPopulation
    provider: str
    requester: str
    placeholders: dict[str, str] = field(default_factory=dict)
    captured: list[Outgoing] = field(default_factory=list)
    records: dict[str, StepRecord] = field(default_factory=dict)

    # -- lookups -------------------------------------------------------------------------------------------

    def component(self, party: str) -> Component:
        try:
            return self.world.component(party)
        except KeyError:
            raise StepError("party", f"no component {party!r} in this world") from None

    def municipality(self, value: Any, default: str) -> str:
        key = str(value or default)
        if key == "provider":
            return self.provider
        if key == "requester":
            return self.requester
        return key

    def person(self, selector: Any) -> dict[str, Any]:
        """`mover`, `mover:1`, `protected_mover`, `resident:<municipality>[:<index>]`, `newborn`…"""
        text = str(selector or "mover")
        kind, _, rest = text.partition(":")
        if kind in ("mover", "protected_mover"):
            people = self.population.movers if kind == "mover" else self.population.protected_movers
            index = int(rest or 0)
            if index >= len(people):
                raise StepError("person", f"the world has only {len(people)} {kind}s")
            return people[index]
        if kind == "resident":
            m, _, idx = rest.partition(":")
            m = self.municipality(m, self.provider)
            active = [r for r in self.population.residents.get(m, []) if r["status"] == "active"]
            index = int(idx or 0)
            if index >= len(active):
                raise StepError("person", f"{m} has only {len(active)} active residents")
            return active[index]
        if kind == "removed":
            m = self.municipality(rest, self.provider)
            removed = [r for r in self.population.residents.get(m, []) if r["status"] == "removed"]
            if not removed:
                raise StepError("person", f"{m} has no removed residents")
            return removed[0]
        raise StepError("person", f"unknown selector {text!r} (mover, protected_mover, resident:<m>, removed:<m>)")

    def session(self, staff: StaffDirectory, user: str) -> StaffSession:
        # The account's own person at their own terminal: their finger or face where the policy asks (AUTH-003).
        modality, person = staff.policy.biometric, staff.person(user)
        sample = biometric_sample(modality, person) if modality and person else None
        return staff.authenticate(user, DEMO_PASSWORD, now=self.driver.now, biometric=sample, terminal=f"{user}-pc")


def _b64json(part: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _fill(value: Any, person: dict[str, Any] | None, world: dict[str, str]) -> Any:
    """Replace "@person.<field>" with the selected person's field and "@world.<key>" with the world's value."""
    if isinstance(value, str) and value.startswith("@world."):
        key = value.removeprefix("@world.")
        if key not in world:
            raise StepError(value, f"unknown world value; known: {sorted(world)}")
        return world[key]
    if isinstance(value, str) and value.startswith("@person."):
        if person is None:
            raise StepError("person", f"{value} needs a `person` parameter on the step")
        key = value.removeprefix("@person.")
        if key not in person:
            raise StepError(value, f"the person has no field {key!r}; fields: {sorted(person)}")
        return person[key]
    if isinstance(value, dict):
        return {k: _fill(v, person, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, person, world) for v in value]
    return value


StepFunction = Callable[[ScenarioContext, StepRecord, dict[str, Any]], None]
STEPS: dict[str, StepFunction] = {}


def step(name: str) -> Callable[[StepFunction], StepFunction]:
    def register(fn: StepFunction) -> StepFunction:
        STEPS[name] = fn
        return fn

    return register


def run_step(ctx: ScenarioContext, kind: str, name: str, params: dict[str, Any]) -> StepRecord:
    fn = STEPS.get(kind)
    if fn is None:
        raise StepError("do", f"unknown step kind {kind!r}; known: {', '.join(sorted(STEPS))}")
    record = StepRecord(name=name, kind=kind)
    person = ctx.person(params["person"]) if "person" in params else None
    filled = _fill({k: v for k, v in params.items() if k != "person"}, person, ctx.placeholders)
    fn(ctx, record, filled | {"_person": person})
    ctx.records[name] = record
    return record


def _drive(ctx: ScenarioContext, record: StepRecord, action: Callable[[datetime], Result]) -> None:
    result, hops = ctx.driver.step(action)
    record.result = result
    record.hops.extend(hops)
    record.value = result.value


def _deliver(ctx: ScenarioContext, record: StepRecord, outgoing: Outgoing) -> None:
    hops = ctx.driver.run(Result(outgoing=[outgoing]))
    record.hops.extend(hops)


# -- ordinary business --------------------------------------------------------------------------------------


@step("query")
def _query(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """情報照会 by a business system: requester, business, person, row, items, provider."""
    requester = ctx.municipality(p.get("requester"), ctx.requester)
    provider = ctx.municipality(p.get("provider"), ctx.provider)
    business = str(p.get("business") or ctx.placeholders.get("query_business", "ltc"))
    person = p["_person"] or ctx.person("mover")
    number = str(p.get("business_atena_number") or person.get(f"{business}_atena_number") or "")
    if not number:
        raise StepError("business_atena_number", f"the person has no {business} number at {requester}")
    system = ctx.world.business(requester, business)
    row = str(p.get("row") or ctx.placeholders["query_row"])
    items = [str(i) for i in p.get("items") or [ctx.placeholders["query_item"]]]
    _drive(ctx, record, lambda now: system.query(str(p.get("operator", "staff-01")), number, row, items, provider, now))
    record.value = {"query_id": record.value, "system": system.party}


@step("release")
def _release(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A reviewer releases (or declines) the latest request held by the 自動応答不可フラグ."""
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    chukan = ctx.world.intermediate(m)
    held = chukan.held_requests()
    permit = str(p.get("permit") or (held[-1] if held else "none-held"))
    user = str(p.get("user", "reviewer"))
    session = StaffSession(user, user, frozenset(), chukan.party, secrets.token_hex(4))
    if p.get("authenticate", True):
        session = ctx.session(chukan.staff, user)
    _drive(ctx, record, lambda now: chukan.release_held(session, permit, bool(p.get("approve", True)), now))


@step("change")
def _change(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A 異動 entered by one clerk and confirmed by another (or the same one, to test JUKI-002)."""
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    registry = ctx.world.registry(m)
    form = dict(p["form"])
    person = p["_person"]
    if person is not None and "resident_code" not in form and form.get("change_type") not in ("birth", "move_in"):
        form["resident_code"] = person["resident_code"]
    for key in ("change_date", "birth_date"):
        if isinstance(form.get(key), str) and form[key].startswith("today"):
            days = int(form[key].removeprefix("today") or 0)
            form[key] = (ctx.driver.now.date() + timedelta(days=days)).isoformat()
    enterer = ctx.session(registry.staff, str(p.get("enter_as", "clerk-a")))
    _drive(ctx, record, lambda now: registry.enter_change(enterer, form, now))
    if record.refusal is not None or p.get("confirm", True) is False:
        return
    change_id = record.value
    confirmer = ctx.session(registry.staff, str(p.get("confirm_as", "clerk-b")))
    _drive(
        ctx, record, lambda now: registry.confirm_change(confirmer, str(change_id), bool(p.get("matches", True)), now)
    )


@step("search")
def _search(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """4情報検索 at the 統合端末 of a municipality's CS."""
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    cs = ctx.world.cs(m)
    session = ctx.session(cs.staff, str(p.get("user", "cs-op")))
    _drive(ctx, record, lambda now: cs.basic4_search(session, dict(p["criteria"]), now))


@step("register")
def _register(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A business system registers a person and publishes its 副本 item (the record may be malformed)."""
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    system = ctx.world.business(m, str(p.get("business", "tax")))
    person = p["_person"] or ctx.person(f"resident:{m}")
    number = str(p.get("business_atena_number") or f"T{uuid.uuid4().int % 10**9:09d}")
    _drive(ctx, record, lambda now: system.register(number, person["my_number"], dict(p["record"]), now))


@step("view_replica")
def _view_replica(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A 中間サーバー operator views a 副本 row (CHUKAN-005), possibly of another tenant (PF-003)."""
    m = ctx.municipality(p.get("municipality"), ctx.requester)
    tenant = ctx.municipality(p.get("tenant"), m)
    chukan = ctx.world.intermediate(m)
    store = ctx.world.stores[f"platform.{tenant}"]
    row = store.execute("SELECT atena_number, item FROM chukan_replicas ORDER BY atena_number LIMIT 1").fetchone()
    if row is None:
        raise StepError("tenant", f"{tenant} has no replica rows")
    user = str(p.get("user", "reviewer"))
    # Staff log in at the 中間サーバー terminal first; the login is recorded there (CHUKAN-016/017).
    _drive(ctx, record, lambda now: chukan.login(user, DEMO_PASSWORD, now))
    session = record.value
    if not isinstance(session, StaffSession):
        return
    item = str(p.get("item", row[1]))
    _drive(ctx, record, lambda now: chukan.view_replica(session, tenant, str(row[0]), item, now))


@step("portal")
def _portal(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The person signs in to マイナポータル with the card and reads their 情報提供等記録."""
    person = p["_person"] or ctx.person("mover")
    code = str(p.get("resident_code") or person["resident_code"])
    _drive(ctx, record, lambda now: ctx.world.portal.sign_in(code, now))
    session_id = record.value
    record.value = {"session": session_id, "records": ctx.world.portal.records(str(session_id)) or []}


@step("login")
def _login(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A staff login at a component (AUTH-002, AUTH-007)."""
    component = ctx.component(str(p["party"]))
    staff: StaffDirectory | None = getattr(component, "staff", None)
    if staff is None:
        raise StepError("party", f"{component.party} has no staff accounts")
    user, password = str(p["user"]), str(p.get("password", DEMO_PASSWORD))

    def act(result: Result) -> None:
        modality, person = staff.policy.biometric, staff.person(user)
        sample = biometric_sample(modality, person) if modality and person else None
        session = staff.authenticate(user, password, now=ctx.driver.now, biometric=sample, terminal=f"{user}-pc")
        component.allow(
            result,
            "AUTH-002",
            ctx.driver.now,
            "ユーザIDとパスワードで認証しました",
            "authenticated by user ID and password",
            None,
            user=user,
        )
        result.value = session.user_id

    _drive(ctx, record, lambda now: component.command(now, None, act))


@step("disable_account")
def _disable(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The HR feed disables an account (transfer, leave, retirement) the same day (AUTH-007)."""
    component = ctx.component(str(p["party"]))
    staff: StaffDirectory | None = getattr(component, "staff", None)
    if staff is None:
        raise StepError("party", f"{component.party} has no staff accounts")
    user = str(p["user"])

    def act(result: Result) -> None:
        staff.disable(user, ctx.driver.now)
        component.allow(
            result,
            "AUTH-007",
            ctx.driver.now,
            "人事異動によりアカウントを使用停止しました",
            "the account was disabled on the HR event",
            None,
            user=user,
        )

    _drive(ctx, record, lambda now: component.command(now, None, act))


@step("advance")
def _advance(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    ctx.driver.advance(
        timedelta(
            days=float(p.get("days", 0)),
            hours=float(p.get("hours", 0)),
            minutes=float(p.get("minutes", 0)),
            seconds=float(p.get("seconds", 0)),
        )
    )


# -- adversarial ------------------------------------------------------------------------------------------


@step("send")
def _send(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A message signed with a real party's key (a compromised or misconfigured system) to any party."""
    sender = ctx.component(str(p["from"]))
    recipient = str(p["to"])
    ctx.component(recipient)
    now = ctx.driver.advance(ctx.driver.hop_latency)
    sealed, sealed_for = None, None
    if "personal" in p:
        sealed_for = str(p.get("seal_to", recipient))
        sealed = sender.security.seal(dict(p["personal"]), ctx.world.directory.certificate(sealed_for))
    try:
        message_type = MessageType(str(p["type"]))
    except ValueError:
        raise StepError("type", f"unknown message type {p['type']!r}") from None
    envelope = Envelope(
        id=uuid.uuid4().hex,
        type=message_type,
        sender=sender.party,
        recipient=recipient,
        issued_at=now,
        nonce=secrets.token_hex(16),
        correlation_id=str(p.get("correlation_id", record.name)),
        body=dict(p.get("body", {})),
        sealed=sealed,
    )
    network = str(p.get("network") or ctx.world.directory.network_between(sender.party, recipient) or "office_lan")
    outgoing = Outgoing(recipient, sender.security.sign(envelope), envelope, network, sealed_for)
    _deliver(ctx, record, outgoing)


def _captured(ctx: ScenarioContext, p: dict[str, Any]) -> Outgoing:
    wanted = str(p["type"])
    to = p.get("to")
    matches = [m for m in ctx.captured if m.envelope.type == wanted and (to is None or m.recipient == to)]
    if not matches:
        raise StepError("type", f"no {wanted} message has been delivered yet in this scenario")
    return matches[int(p.get("index", -1))]


@step("replay")
def _replay(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Deliver an earlier message again, byte for byte."""
    original = _captured(ctx, p)
    ctx.driver.advance(timedelta(seconds=float(p.get("after_seconds", 1))))
    _deliver(ctx, record, original)


@step("tamper")
def _tamper(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Deliver an earlier message with its signature or payload altered in transit."""
    original = _captured(ctx, p)
    header, payload, signature = original.wire.split(".")
    if p.get("part", "payload") == "signature":
        signature = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    else:
        data = _b64json(payload)
        data["body"] = {**data.get("body", {}), **dict(p.get("set", {"tampered": True}))}
        payload = _b64(data)
    wire = f"{header}.{payload}.{signature}"
    _deliver(ctx, record, Outgoing(original.recipient, wire, original.envelope, original.network, original.sealed_for))


@step("revoke")
def _revoke(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The CA revokes a party's certificate and publishes its CRL."""
    ctx.world.revoke(str(p["party"]), ctx.driver.now)


def _permit_request(ctx: ScenarioContext, p: dict[str, Any]) -> tuple[dict[str, Any], str]:
    original = _captured(ctx, {"type": MessageType.PROVISION_REQUEST, **{k: v for k, v in p.items() if k == "index"}})
    return dict(original.envelope.body), original.recipient


def _as_nws(ctx: ScenarioContext, record: StepRecord, body: dict[str, Any], recipient: str) -> None:
    nws = ctx.world.nws
    now = ctx.driver.advance(ctx.driver.hop_latency)
    envelope = Envelope(
        id=uuid.uuid4().hex,
        type=MessageType.PROVISION_REQUEST,
        sender=nws.party,
        recipient=recipient,
        issued_at=now,
        nonce=secrets.token_hex(16),
        correlation_id=record.name,
        body=body,
    )
    network = ctx.world.directory.network_between(nws.party, recipient) or "lgwan"
    _deliver(ctx, record, Outgoing(recipient, nws.security.sign(envelope), envelope, network, None))


@step("reuse_permit")
def _reuse_permit(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Present a 提供許可証 that was already used, inside a fresh, validly signed request."""
    body, recipient = _permit_request(ctx, p)
    _as_nws(ctx, record, body, recipient)


@step("alter_permit")
def _alter_permit(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Present a 提供許可証 whose contents were altered after NWS signed it (more items, another person)."""
    body, recipient = _permit_request(ctx, p)
    header, payload, signature = str(body["permit"]).split(".")
    data = _b64json(payload)
    data["id"] = uuid.uuid4().hex
    data["body"] = {**data["body"], **dict(p.get("set", {"items": ["local_tax_info", "resident_info", "ltc_info"]}))}
    body["permit"] = f"{header}.{_b64(data)}.{signature}"
    _as_nws(ctx, record, body, recipient)


@step("forge_permit")
def _forge_permit(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Present a 提供許可証 signed by a party other than NWS."""
    body, recipient = _permit_request(ctx, p)
    forger = ctx.component(str(p.get("signer", f"platform.intermediate_server.{ctx.requester}")))
    original = _b64json(str(body["permit"]).split(".")[1])
    permit = Envelope(
        id=uuid.uuid4().hex,
        type=MessageType.PERMIT,
        sender=forger.party,
        recipient=recipient,
        issued_at=ctx.driver.now,
        nonce=secrets.token_hex(16),
        body=original["body"],
    )
    body["permit"] = forger.security.sign(permit)
    _as_nws(ctx, record, body, recipient)


def _load_area_steps() -> None:
    """Step kinds that belong to one area live in `steps_<area>.py` beside this module; load them all."""
    import importlib
    import pkgutil
    from pathlib import Path

    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.startswith("steps_"):
            importlib.import_module(f"simulator.verify.{module.name}")


_load_area_steps()
