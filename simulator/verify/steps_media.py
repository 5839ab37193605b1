"""Step kinds for media and export (MEDIA) and contractors (ITAKU): exports and media intake at the media control,
the 使用管理簿 and bulk approvals, contractor accounts, rosters, sessions and reviews, and the shared file server.

Each step signs its staff in with their own credentials (and finger or face where the profile asks) and drives one
command of simulator.components.media or simulator.components.contractors; the checks and decisions live there.
Steps never decide and never write a store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from simulator.components.base import Result
from simulator.components.contractors import ContractorDesk, SharedFileServer
from simulator.components.media import MediaControl
from simulator.components.staff import StaffDirectory, StaffSession, biometric_sample
from simulator.errors import InputError
from simulator.verify.steps import ScenarioContext, StepError, StepRecord, step
from simulator.world import DEMO_PASSWORD

__all__: list[str] = []


def _municipality(ctx: ScenarioContext, p: dict[str, Any]) -> str:
    """`municipality`: profile (default) | provider | requester | a key."""
    raw = str(p.get("municipality", "profile"))
    return ctx.placeholders["profile"] if raw == "profile" else ctx.municipality(raw, ctx.provider)


def _media(ctx: ScenarioContext, p: dict[str, Any]) -> MediaControl:
    c = ctx.component(f"{_municipality(ctx, p)}.media_control")
    assert isinstance(c, MediaControl)
    return c


def _desk(ctx: ScenarioContext, p: dict[str, Any]) -> ContractorDesk:
    c = ctx.component(f"{_municipality(ctx, p)}.contractors")
    assert isinstance(c, ContractorDesk)
    return c


def _run(ctx: ScenarioContext, record: StepRecord, action: Callable[[datetime], Result]) -> Result:
    try:
        result, hops = ctx.driver.step(action)
    except InputError as exc:  # a parameter that does not fit this world: the scenario file's mistake
        raise StepError(exc.field, exc.rule) from None
    record.result = result
    record.hops.extend(hops)
    record.value = result.value
    return result


def _sample(staff: StaffDirectory, user: str) -> str | None:
    modality, person = staff.policy.biometric, staff.person(user)
    return biometric_sample(modality, person) if modality and person else None


def _medium(media: MediaControl, value: Any) -> str | None:
    """`@designated`: the profile's first designated medium where it has a 使用管理簿 rule, else a plain MO disk."""
    if value is None:
        return None
    if value == "@designated":
        rule = media.rules.usage_register
        return rule.designated_media[0] if rule else f"mo-{media.party.split('.')[0]}-01"
    return str(value)


def _earlier(ctx: ScenarioContext, name: Any, what: str) -> str:
    if str(name) not in ctx.records or ctx.records[str(name)].value is None:
        raise StepError(what, f"names no earlier step with a value ({name!r})")
    return str(ctx.records[str(name)].value)


# -- media ------------------------------------------------------------------------------------------------------


@step("media_export")
def _media_export(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Write a file to a medium or a contractor: `user` (media-admin), `file` (resident_register | delivery_info),
    `medium` (an ID, `@designated`, or absent), `destination` (medium | contractor:<m>-c<n> | `@contractor`),
    `encryption` (key | passphrase | none), `passphrase`, `witness` (a user who signs in beside the operator),
    `usage_entry` (the step that entered the 使用管理簿), `times` (repeat; stops at the first refusal)."""
    media = _media(ctx, p)
    user = str(p.get("user", "media-admin"))
    session = ctx.session(media.staff, user)
    destination = str(p.get("destination", "medium"))
    if destination == "@contractor":
        destination = f"contractor:{_municipality(ctx, p)}-c1"
    entry = _earlier(ctx, p["usage_entry"], "usage_entry") if "usage_entry" in p else None
    for _ in range(int(p.get("times", 1))):

        def act(now: datetime) -> Result:
            witness: StaffSession | None = None
            if "witness" in p:
                who = str(p["witness"])
                witness = media.witness_session(who, DEMO_PASSWORD, now, _sample(media.staff, who))
            return media.export(
                session,
                now,
                file=str(p.get("file", "resident_register")),
                medium_id=_medium(media, p.get("medium")),
                destination=destination,
                encryption=p.get("encryption", "key"),
                passphrase=str(p["passphrase"]) if "passphrase" in p else None,
                witness=witness,
                usage_entry=entry,
            )

        if _run(ctx, record, act).refusal is not None:
            break


@step("media_usage_entry")
def _media_usage_entry(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """An entry in the 使用管理簿 by `user` for `medium` and `purpose`, approved by `approve_as` (default manager;
    `none` leaves it unapproved). Value: the entry id."""
    media = _media(ctx, p)
    user = str(p.get("user", "media-admin"))
    session = ctx.session(media.staff, user)
    medium = _medium(media, p.get("medium", "@designated")) or ""
    purpose = str(p.get("purpose", "申請データの保管用複製"))
    entry = _run(ctx, record, lambda now: media.enter_usage(session, now, medium_id=medium, purpose=purpose)).value
    approver = str(p.get("approve_as", "manager"))
    if entry is None or approver == "none":
        return
    manager = ctx.session(media.staff, approver)
    _run(ctx, record, lambda now: media.approve_usage(manager, now, entry_id=str(entry)))
    record.value = entry


@step("media_approve_bulk")
def _media_approve_bulk(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The 管理責任者 (`as`, default manager) approves a bulk output of `records` by `for` beforehand."""
    media = _media(ctx, p)
    manager = ctx.session(media.staff, str(p.get("as", "manager")))
    user, records = str(p.get("for", "media-admin")), int(p.get("records", 5000))
    _run(ctx, record, lambda now: media.approve_bulk(manager, now, user_id=user, records=records))


@step("media_intake")
def _media_intake(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Data for `flow` arriving over `channel` (e.g. optical_disc), taken in by `user` (default clerk)."""
    media = _media(ctx, p)
    session = ctx.session(media.staff, str(p.get("user", "clerk")))
    flow, channel = str(p["flow"]), str(p["channel"])
    _run(ctx, record, lambda now: media.intake(session, now, flow=flow, channel=channel))


# -- contractors ------------------------------------------------------------------------------------------------


def _contract(desk: ContractorDesk, value: Any) -> str:
    """`contract`: an index in the profile's order (1 …), or `subcontracting` / `direct_only` (the first of those)."""
    text = str(value if value is not None else 1)
    contracts = list(desk.contracts.values())
    if text == "subcontracting":
        chosen = [c for c in contracts if c.contractor.subcontract]
    elif text == "direct_only":
        chosen = [c for c in contracts if not c.contractor.subcontract]
    elif text.isdigit() and 1 <= int(text) <= len(contracts):
        chosen = [contracts[int(text) - 1]]
    else:
        raise StepError("contract", f"{text!r}: an index 1..{len(contracts)}, subcontracting or direct_only")
    if not chosen:
        raise StepError("contract", f"{desk.municipality} has no {text} contract")
    return chosen[0].contract_id


def _admin(ctx: ScenarioContext, desk: ContractorDesk, p: dict[str, Any], default: str) -> StaffSession:
    return ctx.session(desk.staff, str(p.get("as", default)))


@step("contractor_account")
def _contractor_account(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The city issues an account to `worker` (w<n>, s<n> for a subcontractor's worker, or anyone) of `contract`,
    with `functions` (default [maintenance]), as `as` (default itaku-kanri). Value: the user ID."""
    desk = _desk(ctx, p)
    admin = _admin(ctx, desk, p, "itaku-kanri")
    cid = _contract(desk, p.get("contract"))
    worker = f"{cid}-{p.get('worker', 'w2')}"
    functions = tuple(str(f) for f in p.get("functions", ["maintenance"]))
    _run(ctx, record, lambda now: desk.create_account(
        admin, now, contract_id=cid, worker_id=worker, functions=functions, password=DEMO_PASSWORD))


@step("contractor_documents")
def _contractor_documents(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The city files subcontracting papers for `worker` (default s1) of `contract`: `documents` is a list, `all`
    (the profile's whole chain) or `all_but_last` (the chain without its last paper)."""
    desk = _desk(ctx, p)
    admin = _admin(ctx, desk, p, "itaku-kanri")
    cid = _contract(desk, p.get("contract", "subcontracting"))
    chain = list(desk.contracts[cid].contractor.chain)
    wanted = p.get("documents", "all")
    documents = chain if wanted == "all" else chain[:-1] if wanted == "all_but_last" else [str(d) for d in wanted]
    worker = f"{cid}-{p.get('worker', 's1')}"
    for document in documents:
        file_it = partial(desk.record_document, admin, contract_id=cid, worker_id=worker, document=document)
        if _run(ctx, record, file_it).refusal is not None:
            return


@step("contractor_roster_add")
def _contractor_roster_add(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The contractor submits a roster line for `worker` of `contract` (`tier` 1, or 2 for a subcontractor's
    worker; `person_name`); the city files it."""
    desk = _desk(ctx, p)
    admin = _admin(ctx, desk, p, "itaku-kanri")
    cid = _contract(desk, p.get("contract"))
    worker, tier = f"{cid}-{p.get('worker', 'n1')}", int(p.get("tier", 1))
    name = str(p.get("person_name", f"{desk.contracts[cid].contractor.name} 追加従事者 {worker}"))
    _run(ctx, record, lambda now: desk.add_to_roster(
        admin, now, contract_id=cid, worker_id=worker, person_name=name, tier=tier))


@step("contractor_roster_remove")
def _contractor_roster_remove(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The contractor's roster drops `worker` (default w1) of `contract`; the city disables the account."""
    desk = _desk(ctx, p)
    admin = _admin(ctx, desk, p, "itaku-kanri")
    cid = _contract(desk, p.get("contract"))
    worker = f"{cid}-{p.get('worker', 'w1')}"
    _run(ctx, record, lambda now: desk.remove_from_roster(admin, now, contract_id=cid, worker_id=worker))


@step("contractor_session")
def _contractor_session(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A contractor worker's session: `worker` (default w1) of `contract` signs in at `terminal` (default the first
    on-premises terminal; `outside` for one that is not), runs `operations` ([{function, system, target}]; system
    defaults to the contract's first), and ends with `work_record` (null: closed without one; `end: false` leaves
    the session open)."""
    desk = _desk(ctx, p)
    cid = _contract(desk, p.get("contract"))
    user = f"itaku-{cid}-{p.get('worker', 'w1')}"
    premises = desk.rules.premises
    terminal = str(p.get("terminal", premises.terminals[0] if premises else "itaku-pc"))
    if terminal == "outside":
        terminal = "remote-home-pc"
    sample = _sample(desk.staff, user)
    login = _run(ctx, record, lambda now: desk.login(user, DEMO_PASSWORD, now, terminal=terminal, biometric=sample))
    session = login.value
    if not isinstance(session, StaffSession):
        return
    system_default = desk.contracts[cid].contractor.systems[0]
    for op in p.get("operations", []):
        system, function = str(op.get("system", system_default)), str(op["function"])
        target = str(op["target"]) if op.get("target") is not None else None
        operate = partial(desk.operate, session, system=system, function=function, target=target)
        _run(ctx, record, operate)
    if p.get("end", True):
        note = p.get("work_record", "保守作業: 定期点検")
        _run(ctx, record, lambda now: desk.end_session(
            session, now, work_record=str(note) if note is not None else None))
    record.value = session.session_id


@step("contractor_review")
def _contractor_review(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The city's review of contractor sessions and work records, by `as` (default itaku-kansa)."""
    desk = _desk(ctx, p)
    auditor = _admin(ctx, desk, p, "itaku-kansa")
    _run(ctx, record, lambda now: desk.review(auditor, now))


@step("shared_file")
def _shared_file(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The file server shared with the contractor: `action` put | list | open by `user` at `terminal` (default the
    first city terminal; `outside` for one that is not), with `name`, `content` and `file_password`."""
    m = _municipality(ctx, p)
    server = ctx.component(f"{m}.shared_file_server")
    assert isinstance(server, SharedFileServer)
    session = ctx.session(server.staff, str(p.get("user", "zei-a")))
    terminal = str(p.get("terminal", server.rule.terminals[0]))
    if terminal == "outside":
        terminal = "remote-home-pc"
    action, name = str(p.get("action", "list")), str(p.get("name", "課税資料.csv"))
    password = str(p.get("file_password", "file-pass-1234"))
    if action == "put":
        content = str(p.get("content", "課税資料（委託先へ引き渡す入力原票の一覧）"))
        _run(ctx, record, lambda now: server.put(
            session, now, terminal=terminal, name=name, content=content, file_password=password))
    elif action == "list":
        _run(ctx, record, lambda now: server.listing(session, now, terminal=terminal))
    elif action == "open":
        _run(ctx, record, lambda now: server.open(
            session, now, terminal=terminal, name=name, file_password=password))
    else:
        raise StepError("action", f"{action!r}: put, list or open")
