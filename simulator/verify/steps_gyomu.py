"""Step kinds for the business systems in depth (GYOMU): 住民税システム, 介護保険システム, 既存住基's 提供 function.

Each step acts as staff at a business terminal, or as a channel delivering a record, through the component's own
commands; the components decide and record. A step only builds the input (a record from the selected person's
registry data, which the scenario's population holds) and never reads or writes a store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from simulator.components.base import Component, Result
from simulator.components.gyomu_data import Staff, business_data
from simulator.components.ltc_insurance import LtcInsuranceSystem
from simulator.components.registry_linkage import RegistryLinkage
from simulator.components.resident_tax import ResidentTaxSystem
from simulator.components.staff import StaffDirectory, StaffSession, biometric_sample
from simulator.verify.steps import ScenarioContext, StepError, StepRecord, _drive, step
from simulator.world import DEMO_PASSWORD

__all__: list[str] = []

C = TypeVar("C", bound=Component)
S = TypeVar("S", ResidentTaxSystem, LtcInsuranceSystem)

# Values a record of each kind carries beyond the person's own data (a plausible synthetic filing).
_DEFAULTS: dict[str, Any] = {
    "payer_name": "株式会社つくば精機",
    "payer_corporate_number": "7050001000001",
    "fiscal_year": 2026,
    "payment_amount": 4_000_000,
    "employment_income": 2_760_000,
    "total_deductions": 1_000_000,
    "withheld_tax": 80_000,
    "income": 3_000_000,
    "deductions": 500_000,
    "dependants": [],
    "tax_office": "土浦税務署",
    "sending_body": "他の自治体",
}
_PERSON_FIELDS = ("name", "address", "birth_date", "sex", "my_number")


def _run(ctx: ScenarioContext, record: StepRecord, action: Callable[[datetime], Result]) -> Result:
    """Drive the action as every step does, and hand its result back to the step for a follow-up."""
    _drive(ctx, record, action)
    assert record.result is not None
    return record.result


def _find(ctx: ScenarioContext, p: dict[str, Any], suffix: str, kind: type[C]) -> C:
    """The component ``<municipality>.<suffix>``: the named municipality, else whichever of the world has one."""
    named = p.get("municipality")
    candidates = [ctx.municipality(named, ctx.requester)] if named else [ctx.requester, ctx.provider]
    for m in candidates:
        found = ctx.world.components.get(f"{m}.{suffix}")
        if found is not None:
            assert isinstance(found, kind)
            return found
    raise StepError("municipality", f"no {suffix} in {candidates} (installed from scenarios/data/gyomu.yaml)")


class _Desk(NamedTuple):
    suffix: str  # the component is <municipality>.<suffix>
    user: str  # the clerk a step acts as unless it names `user`
    number_param: str  # the step parameter giving the person's number outright
    number_key: str  # else, where the selected person holds it
    number_ja: str


_DESKS: dict[type[Component], _Desk] = {
    ResidentTaxSystem: _Desk("resident_tax", "zei-a", "taxpayer_number", "tax_atena_number", "税務 宛名番号"),
    LtcInsuranceSystem: _Desk("ltc_insurance", "kaigo-sys-a", "insured_number", "ltc_atena_number", "被保険者番号"),
}


def _tax(ctx: ScenarioContext, p: dict[str, Any]) -> ResidentTaxSystem:
    return _find(ctx, p, _DESKS[ResidentTaxSystem].suffix, ResidentTaxSystem)


def _ltc(ctx: ScenarioContext, p: dict[str, Any]) -> LtcInsuranceSystem:
    return _find(ctx, p, _DESKS[LtcInsuranceSystem].suffix, LtcInsuranceSystem)


def _session(ctx: ScenarioContext, staff: StaffDirectory, user: str, terminal: str | None = None) -> StaffSession:
    """The account's own person at a terminal (their face or finger where the policy asks)."""
    modality, person = staff.policy.biometric, staff.person(user)
    sample = biometric_sample(modality, person) if modality and person else None
    return staff.authenticate(
        user, DEMO_PASSWORD, now=ctx.driver.now, biometric=sample, terminal=terminal or f"{user}-pc"
    )


def _registered(ctx: ScenarioContext, person: dict[str, Any], m: str) -> dict[str, Any]:
    """The person as the municipality's registry holds them (a mover's entry lacks the 基本4情報)."""
    rows = [r for r in ctx.population.residents.get(m, []) if r["my_number"] == person["my_number"]]
    return {**(rows[0] if rows else {}), **person}


def _record(ctx: ScenarioContext, system: ResidentTaxSystem, p: dict[str, Any], kind: str) -> dict[str, Any]:
    spec = system.data.record_kinds.get(kind)
    fields = spec.fields if spec else ()
    person = _registered(ctx, p["_person"] or ctx.person("mover"), system.party.split(".")[0])
    out = {f: person[f] if f in _PERSON_FIELDS and f in person else _DEFAULTS.get(f) for f in fields}
    if p.get("my_number_of"):
        # A number valid for another person (e.g. transposed digits that pass the check digit).
        out["my_number"] = ctx.person(p["my_number_of"])["my_number"]
    if p.get("dependants_of") and "dependants" in out:
        out["dependants"] = [
            {"name": d["name"], "birth_date": d.get("birth_date", ""), "relationship": str(entry["relationship"])}
            for entry in p["dependants_of"]
            for d in [ctx.person(entry["person"])]
        ]
    out.update(dict(p.get("record") or {}))
    for f in p.get("drop") or []:
        out.pop(str(f), None)
    return out


@step("tax_receive")
def _tax_receive(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A 課税資料 handed to the 住民税システム: `kind`, `channel` (omit or null for none), `person`, `record`
    (fields to set or add), `drop` (fields to leave out), `my_number_of` (another person's valid number),
    `dependants_of` (list of {person, relationship}: the 扶養親族 declared)."""
    system = _tax(ctx, p)
    kind = str(p.get("kind", "resident_tax_return"))
    data = _record(ctx, system, p, kind)
    channel = p.get("channel")
    _run(ctx, record, lambda now: system.receive(kind, str(channel) if channel else None, data, now))


@step("tax_download")
def _tax_download(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """国税連携 / eLTAX download: `user`, `terminal`, `channel`, `batch` (items with `kind`, `person`, `record`,
    `drop`), `target` (a named person to fetch: there is no such function)."""
    system = _tax(ctx, p)
    session = _session(ctx, system.staff, str(p.get("user", "zei-a")), p.get("terminal"))
    batch = []
    for item in p.get("batch") or []:
        kind = str(item.get("kind", "salary_payment_report"))
        person = ctx.person(item["person"]) if item.get("person") else None
        batch.append({"kind": kind, **_record(ctx, system, {**item, "_person": person}, kind)})
    target = ctx.person(p["target"])["name"] if p.get("target") else None
    channel = str(p.get("channel", "eltax"))
    _run(ctx, record, lambda now: system.download(session, channel, batch, now, target=target))


def _number(ctx: ScenarioContext, p: dict[str, Any], kind: type[Component]) -> str:
    """The person's number at that system: the step's own, else the selected person's (default: the mover)."""
    desk = _DESKS[kind]
    person = p["_person"] or ctx.person("mover")
    number = p.get(desk.number_param) or person.get(desk.number_key)
    if not number:
        raise StepError("person", f"the person has no {desk.number_ja} (use a mover)")
    return str(number)


def _clerk(ctx: ScenarioContext, p: dict[str, Any], kind: type[S]) -> tuple[S, StaffSession, str]:
    """The business system, `user`'s session at it (default: the desk's clerk) and the selected person's number."""
    system = _find(ctx, p, _DESKS[kind].suffix, kind)
    return system, _session(ctx, system.staff, str(p.get("user", _DESKS[kind].user))), _number(ctx, p, kind)


@step("tax_assess")
def _tax_assess(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """賦課 with 読み合わせ: `enter_as` enters `income`/`deductions` for `person`; `confirm_as` reads back
    `read_back` (default: the same amounts). `confirm: false` stops after the entry."""
    system = _tax(ctx, p)
    number = _number(ctx, p, ResidentTaxSystem)
    income, deductions = int(p.get("income", 3_000_000)), int(p.get("deductions", 500_000))
    enterer = _session(ctx, system.staff, str(p.get("enter_as", "zei-a")))
    year = int(p.get("fiscal_year", 2026))
    entered = _run(ctx, record, lambda now: system.enter_assessment(enterer, number, year, income, deductions, now))
    if entered.refusal is not None or p.get("confirm", True) is False:
        return
    assessment = str(entered.value)
    back = dict(p.get("read_back") or {})
    confirmer = _session(ctx, system.staff, str(p.get("confirm_as", "zei-b")))
    _run(ctx, record, lambda now: system.confirm_assessment(
        confirmer, assessment, int(back.get("income", income)), int(back.get("deductions", deductions)), now))


@step("tax_correct")
def _tax_correct(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """職権修正 of a record an earlier `tax_receive` step (`of`) took in: `user`, `field`, `value`, `reason`."""
    system = _tax(ctx, p)
    earlier = ctx.records.get(str(p.get("of")))
    intake = earlier.value if earlier is not None and isinstance(earlier.value, dict) else None
    if intake is None:
        raise StepError("of", "name an earlier tax_receive step that took a record in")
    session = _session(ctx, system.staff, str(p.get("user", "zei-a")))
    field, value, reason = str(p["field"]), p.get("value"), str(p.get("reason") or "")
    _run(ctx, record, lambda now: system.correct(session, str(intake["intake_id"]), field, value, reason, now))


@step("tax_query")
def _tax_query(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A 照会 started at the 住民税システム: `user`, `person`, `row`, `items`, `provider`, `attach` (extra fields a
    badly built export would add)."""
    system, session, number = _clerk(ctx, p, ResidentTaxSystem)
    row = str(p.get("row") or ctx.placeholders["query_row"])
    items = [str(i) for i in p.get("items") or [ctx.placeholders["query_item"]]]
    provider = ctx.municipality(p.get("provider"), ctx.provider)
    attach = dict(p.get("attach") or {})
    _run(ctx, record, lambda now: system.query(session, number, row, items, provider, now, attach=attach))
    record.value = {"query_id": record.value, "system": system.tax.party}


@step("tax_disclose")
def _tax_disclose(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A request for tax data from outside NWS: `requester`, `basis` (an id of the data file's legal bases)."""
    system, session, number = _clerk(ctx, p, ResidentTaxSystem)
    requester, basis = str(p.get("requester", "照会機関")), str(p["basis"])
    _run(ctx, record, lambda now: system.disclose(session, requester, basis, number, now))


@step("tax_dependant_inquiry")
def _tax_dependant_inquiry(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """扶養照会 to another municipality: `person` (the 扶養者; omit `taxpayer: false` to leave it out),
    `dependant` (a person selector, or omitted), `relationship`, `to` (default: the provider)."""
    system = _tax(ctx, p)
    session = _session(ctx, system.staff, str(p.get("user", "zei-a")))
    number = _number(ctx, p, ResidentTaxSystem) if p.get("taxpayer", True) else ""
    dependant = None
    if p.get("dependant"):
        who = ctx.person(p["dependant"])
        dependant = {"name": who["name"], "birth_date": who.get("birth_date", "")}
    relationship = p.get("relationship")
    to = ctx.municipality(p.get("to"), ctx.provider)
    _run(ctx, record, lambda now: system.dependant_inquiry(
        session, number, dependant, str(relationship) if relationship else None, to, now))


# -- 介護保険 ------------------------------------------------------------------------------------------------------


@step("ltc_form")
def _ltc_form(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A 介護保険 window form (`form`, `fields`) for `person`, taken by `user`."""
    system, session, number = _clerk(ctx, p, LtcInsuranceSystem)
    form, fields = str(p.get("form", "qualification_acquisition")), dict(p.get("fields") or {})
    _run(ctx, record, lambda now: system.submit_form(session, form, number, fields, now))


@step("ltc_write")
def _ltc_write(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Write `attributes` of 別添1 `section` to the 介護保険 file for `person`."""
    system, session, number = _clerk(ctx, p, LtcInsuranceSystem)
    section, attributes = str(p["section"]), dict(p.get("attributes") or {})
    _run(ctx, record, lambda now: system.write(session, number, section, attributes, now))


@step("ltc_link")
def _ltc_link(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Join `person`'s 介護保険 record to `dataset` for `purpose`."""
    system, session, number = _clerk(ctx, p, LtcInsuranceSystem)
    dataset, purpose = str(p["dataset"]), str(p.get("purpose", "保険料段階の算定"))
    _run(ctx, record, lambda now: system.link(session, number, dataset, purpose, now))


@step("ltc_kokuhoren")
def _ltc_kokuhoren(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Send `items` for `person` to the 国保連 over its interface."""
    system, session, number = _clerk(ctx, p, LtcInsuranceSystem)
    items = dict(p.get("items") or {})
    _run(ctx, record, lambda now: system.send_to_kokuhoren(session, number, items, now))


# -- profile-generic steps (one scenario, every profile a control lists) -------------------------------------------


@step("business_intake")
def _business_intake(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A conformant intake at the profile's business system, or one with `extra` fields: a 給与支払報告書 on disc at
    a 住民税システム, a 資格取得届 at a 介護保険システム (`municipality`, default: the world's)."""
    extra = dict(p.get("extra") or {})
    try:
        tax = _tax(ctx, p)
    except StepError:
        tax = None
    if tax is not None:
        data = _record(ctx, tax, {**p, "record": extra}, "salary_payment_report")
        # The disc route (データ連携システム) takes a 給与支払報告書 file as it is, so its schema is checked here.
        _run(ctx, record, lambda now: tax.receive("salary_payment_report", "data_link_system", data, now))
        return
    ltc = _ltc(ctx, p)
    session = _session(ctx, ltc.staff, str(p.get("user", "kaigo-sys-a")))
    number = _number(ctx, p, LtcInsuranceSystem)
    form = ltc.data.window_forms["qualification_acquisition"]
    values = {"被保険者番号": number, "資格取得日": "2026-04-01", "資格届出日": "2026-04-03", "被保険者区分": "1"}
    fields = {f: values.get(f, "") for f in form.fields} | extra
    _run(ctx, record, lambda now: ltc.submit_form(session, "qualification_acquisition", number, fields, now))


@step("linkage_action")
def _linkage_action(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A staff-started 照会 or 提供 at the profile municipality's business system (`municipality`, default: the
    world's profile): a 照会 at a 住民税システム, a 提供 (副本登録) at a 既存住基. `who: permitted` (default) or
    `unpermitted` picks, from the data file's staff, a user holding or lacking that permission."""
    m = ctx.municipality(p.get("municipality") or ctx.placeholders["profile"], ctx.requester)
    person = p["_person"] or ctx.person("mover")
    permitted = str(p.get("who", "permitted")) == "permitted"
    components = ctx.world.components
    tax, desk = components.get(f"{m}.resident_tax"), components.get(f"{m}.juki_linkage")
    if isinstance(tax, ResidentTaxSystem):
        user = _pick(tax.data.staff, "nws_query", permitted)
        session = _session(ctx, tax.staff, user)
        number = str(person["tax_atena_number"])
        row, item = ctx.placeholders["query_row"], ctx.placeholders["query_item"]
        provider = ctx.provider if m != ctx.provider else ctx.requester
        _run(ctx, record, lambda now: tax.query(session, number, row, [item], provider, now))
        return
    if not isinstance(desk, RegistryLinkage):
        raise StepError("municipality", f"{m} has no business system that starts 照会 or 提供 in this world")
    data = business_data(m).registry_linkage
    assert data is not None
    session = _session(ctx, desk.staff, _pick(data.staff, "nws_provide", permitted))
    code = str(person["resident_code"])
    _run(ctx, record, lambda now: desk.provide(session, code, now))


def _pick(staff: tuple[Staff, ...], role: str, holding: bool) -> str:
    for s in staff:
        if (role in s.roles) == holding:
            return s.user
    raise StepError("who", f"the data file lists no user {'with' if holding else 'without'} {role!r}")
