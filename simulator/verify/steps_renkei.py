"""Step kinds for the city's inside: 庁内移転 and 提供依頼 (RENKEI), the relay's scheduler tick (RELAY), 宛名 lookups (ATENA).

Each step drives a component's own command (a staff user at a terminal, a 連携先 system's request, a batch or a
relay tick); the components decide. A step picks people from the world's population and reads public facts (a
住民票's 宛名番号) through component methods, and must never write to a store or take a decision itself.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from simulator.components.atena import Atena
from simulator.components.office_link import LinkedSystem, OfficeLink
from simulator.components.relay import Relay
from simulator.components.staff import StaffSession
from simulator.verify.steps import ScenarioContext, StepError, StepRecord, _drive, step

__all__: list[str] = []


def _municipality(ctx: ScenarioContext, p: dict[str, Any]) -> str:
    """Default: the profile's own municipality (profiles are named after them)."""
    return ctx.municipality(p.get("municipality"), ctx.placeholders.get("profile", ctx.provider))


def _component(ctx: ScenarioContext, party: str, kind: type[Any]) -> Any:
    component = ctx.component(party)
    if not isinstance(component, kind):
        raise StepError("municipality", f"{party} is not a {kind.__name__} in this world")
    return component


def _age(birth_date: str, on: date) -> int:
    born = date.fromisoformat(birth_date)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _chosen(ctx: ScenarioContext, p: dict[str, Any], m: str) -> dict[str, Any]:
    """The step's `person`, or the first active resident of m within `age_at_least` / `age_below`."""
    if p.get("_person") is not None:
        return dict(p["_person"])
    low, high = p.get("age_at_least"), p.get("age_below")
    today = ctx.driver.now.date()
    for resident in ctx.population.residents.get(m, []):
        age = _age(str(resident["birth_date"]), today)
        if resident["status"] == "active" and (low is None or age >= int(low)) and (high is None or age < int(high)):
            return dict(resident)
    raise StepError("person", f"{m} has no active resident in the age range [{low}, {high})")


def _person_key(ctx: ScenarioContext, m: str, person: dict[str, Any]) -> str:
    """The person's 住基 宛名番号, read through 既存住基's own lookup (what the hub keys its 参照用住記 by)."""
    resident = ctx.world.registry(m).resident(str(person["resident_code"]))
    if resident is None:
        raise StepError("person", f"{m} has no 住民票 for this person")
    return str(resident["business_atena_number"])


@step("transfer")
def _transfer(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """庁内移転 started by a staff user at a terminal: destination, department, purpose, person, items."""
    m = _municipality(ctx, p)
    hub: OfficeLink = _component(ctx, f"{m}.office_link", OfficeLink)
    user = str(p.get("user", "renkei-a"))
    session = ctx.session(hub.staff, user)
    person = _chosen(ctx, p, m)
    key = str(p.get("person_key") or _person_key(ctx, m, person))
    items = [str(i) for i in p["items"]] if p.get("items") else None
    _drive(
        ctx,
        record,
        lambda now: hub.transfer(
            session,
            str(p.get("terminal", hub.profile.terminals[0][0])),
            str(p.get("network", "office_lan")),
            str(p["destination"]),
            str(p["department"]),
            str(p["purpose"]),
            key,
            items,
            now,
        ),
    )
    record.value = {"person_key": key, "destination": f"{m}.{p['destination']}"}


@step("office_request")
def _office_request(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """提供依頼 from a 連携先 system (`system`: nhi, welfare, election, sewer) to the hub."""
    m = _municipality(ctx, p)
    system: LinkedSystem = _component(ctx, f"{m}.{p['system']}", LinkedSystem)
    person = _chosen(ctx, p, m)
    key = str(p.get("person_key") or _person_key(ctx, m, person))
    items = [str(i) for i in p["items"]] if p.get("items") else None
    _drive(
        ctx,
        record,
        lambda now: system.request(key, str(p["department"]), str(p["purpose"]), items, now),
    )
    record.value = {"person_key": key, "received": system.received(key)}


@step("office_batch")
def _office_batch(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The hub's daily batch (共通基盤's 参照用住記 refresh)."""
    m = _municipality(ctx, p)
    hub: OfficeLink = _component(ctx, f"{m}.office_link", OfficeLink)
    _drive(ctx, record, hub.run_batch)


@step("relay_flush")
def _relay_flush(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The relay's scheduler tick: forward what it buffered, if the platform is open."""
    m = _municipality(ctx, p)
    relay: Relay = _component(ctx, f"{m}.relay", Relay)
    _drive(ctx, record, relay.flush)


@step("atena_lookup")
def _atena_lookup(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A staff lookup at the 宛名 system: `key` ({my_number} or {business, business_atena_number}), or `by`."""
    m = _municipality(ctx, p)
    atena: Atena = _component(ctx, f"{m}.atena", Atena)
    if atena.staff is None:
        raise StepError("municipality", f"{atena.party} has no staff accounts")
    user = str(p.get("user", "kaigo-a"))
    session = StaffSession(user, user, frozenset(), atena.party, "unauthenticated")
    if p.get("authenticate", True):
        session = ctx.session(atena.staff, user)
    key = dict(p.get("key") or {})
    by = p.get("by")
    if by in ("ltc", "tax"):
        registered = getattr(ctx.population, by).get(m, [])
        if not registered:
            raise StepError("by", f"{m} has no {by} registrations")
        key = {"business": by, "business_atena_number": registered[0]["business_atena_number"]}
    elif by == "my_number":
        key = {"my_number": _chosen(ctx, p, m)["my_number"]}
    if not key:
        raise StepError("key", "give `key` or `by` (ltc, tax, my_number)")
    _drive(ctx, record, lambda now: atena.lookup(session, key, now))
