"""Step kinds for 本人確認情報照会, 4情報検索の経路, the card check and 特例転出・特例転入 (CS-017/018/019/021, JLIS-003).

Each step acts through the CS or 全国サーバ commands of simulator.components.tenshutsu (the driver delivers the
messages they send); a card is modelled as the 住民票コード it carries. Steps decide nothing and write no store.
"""

from __future__ import annotations

from typing import Any

from simulator.components.jlis import NationalServer
from simulator.components.tenshutsu import JukinetServices
from simulator.identifiers import new_resident_code
from simulator.verify.steps import ScenarioContext, StepError, StepRecord, _drive, step

__all__: list[str] = []


def _services(ctx: ScenarioContext) -> JukinetServices:
    return JukinetServices(ctx.world)


def _card_code(ctx: ScenarioContext, p: dict[str, Any]) -> str | None:
    """The 住民票コード on the presented card: `card: none`, `card: unknown` (a valid code no one has), a person
    selector, or (default) the step's person."""
    card = p.get("card")
    if card == "none":
        return None
    if card == "unknown":
        return new_resident_code()
    if card is not None:
        return str(ctx.person(card)["resident_code"])
    person = p["_person"]
    if person is None:
        raise StepError("person", "a card check needs a person (or `card`)")
    return str(person["resident_code"])


def _answered(ctx: ScenarioContext, record: StepRecord, m: str) -> None:
    if record.refusal is None and isinstance(record.value, str):
        record.value = {"query_id": record.value, "answer": _services(ctx).answer(ctx.world.cs(m), record.value)}


@step("identity_query")
def _identity_query(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """本人確認情報照会 from a CS to the 全国サーバ keyed by `key` (住民票コード, 個人番号 or 4情報)."""
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    cs = ctx.world.cs(m)
    session = ctx.session(cs.staff, str(p.get("user", "cs-op")))
    key = dict(p.get("key") or {})
    _drive(ctx, record, lambda now: _services(ctx).query(cs, session, key, now))
    _answered(ctx, record, m)


@step("card_check")
def _card_check(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The 統合端末 reads the presented card's 住民票コード and looks the person up (CS → 全国サーバ)."""
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    cs = ctx.world.cs(m)
    session = ctx.session(cs.staff, str(p.get("user", "cs-op")))
    code = _card_code(ctx, p)
    if code is None:
        raise StepError("card", "card_check needs a card")
    _drive(ctx, record, lambda now: _services(ctx).card_check(cs, session, code, now))
    _answered(ctx, record, m)


@step("card_suspend")
def _card_suspend(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The card of `person` is reported 一時停止 (the 全国サーバ's card-status table)."""
    national = ctx.component("jlis.national_server")
    assert isinstance(national, NationalServer)
    code = _card_code(ctx, p)
    if code is None:
        raise StepError("card", "card_suspend needs a card")
    _drive(ctx, record, lambda now: _services(ctx).suspend_card(national, code, now))


@step("routed_search")
def _routed_search(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """4情報検索 at the 統合端末, routed by the 住所地 in `criteria` (CS, 都道府県サーバ or 全国サーバ)."""
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    cs = ctx.world.cs(m)
    session = ctx.session(cs.staff, str(p.get("user", "cs-op")))
    criteria = dict(p["criteria"])
    _drive(ctx, record, lambda now: _services(ctx).routed_search(cs, session, criteria, now))
    value = record.value
    if record.refusal is None and isinstance(value, dict) and "query_id" in value:
        record.value = {**value, "answer": _services(ctx).answer(cs, str(value["query_id"]))}


@step("tenshutsu")
def _tenshutsu(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """特例転出 of `person` from `municipality` (default provider) to `to` (default requester): 転出証明書情報 CS → CS."""
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    to = ctx.municipality(p.get("to"), ctx.requester)
    person = p["_person"]
    if person is None:
        raise StepError("person", "tenshutsu needs a person")
    cs, target = ctx.world.cs(m), ctx.world.cs(to)
    code = str(person["resident_code"])
    _drive(ctx, record, lambda now: _services(ctx).send_tenshutsu(cs, code, target.party, now))


@step("tokurei_tennyu")
def _tokurei_tennyu(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """特例転入 of `person` at `municipality` (default requester): the card (`card`) is checked first, then used."""
    m = ctx.municipality(p.get("municipality"), ctx.requester)
    cs = ctx.world.cs(m)
    session = ctx.session(cs.staff, str(p.get("user", "cs-op")))
    person = p["_person"]
    if person is None:
        raise StepError("person", "tokurei_tennyu needs the person the 転入届 is for")
    code = _card_code(ctx, p)
    check: str | None = None
    if code is not None:
        _drive(ctx, record, lambda now: _services(ctx).card_check(cs, session, code, now))
        if record.refusal is not None:
            return
        check = str(record.value)
    resident_code = str(person["resident_code"])
    _drive(ctx, record, lambda now: _services(ctx).special_move_in(cs, session, resident_code, check, now))


@step("tenshutsu_purge")
def _tenshutsu_purge(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The CS's daily batch deletes 転出証明書情報 held past its period."""
    cs = ctx.world.cs(ctx.municipality(p.get("municipality"), ctx.requester))
    _drive(ctx, record, lambda now: _services(ctx).purge_expired(cs, now))


@step("tenshutsu_read")
def _tenshutsu_read(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A CS function (`function`) asks for the held 転出証明書情報 of `person`."""
    cs = ctx.world.cs(ctx.municipality(p.get("municipality"), ctx.requester))
    person = p["_person"]
    if person is None:
        raise StepError("person", "tenshutsu_read needs a person")
    code, function = str(person["resident_code"]), str(p.get("function", "basic4_search"))
    _drive(ctx, record, lambda now: _services(ctx).read_held(cs, function, code, now))
