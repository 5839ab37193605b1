"""The flows a trainee can ask for by name (`jukisim explain FLOW`), each run for real in a small world.

A flow is registered once with an English id, a Japanese name, aliases, which people it can be run for and
how to run it through the components' own commands; flows the components do not carry yet are listed as
planned, so asking for one says so. New flows plug in with ``register``. This module
must never bypass a component: every hop it shows is a signed message the components exchanged.
"""

from __future__ import annotations

import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from simulator.components.base import Result
from simulator.components.business import BusinessSystem
from simulator.components.office_link import HUBS, OfficeLink, Route
from simulator.components.registry import Registry
from simulator.components.tenshutsu import JukinetServices
from simulator.controls.catalogue import PROFILES
from simulator.demo import DEMO_MUNICIPALITIES, DEMO_START
from simulator.drivers.inproc import Hop, InProcessDriver
from simulator.errors import InputError
from simulator.i18n import Lang
from simulator.population import DemoPopulation, demo_population
from simulator.training.trace import TraceWriter
from simulator.world import DEMO_PASSWORD, MunicipalitySpec, World, WorldSpec

__all__ = [
    "FLOWS",
    "PLANNED",
    "Flow",
    "FlowContext",
    "FlowRun",
    "FlowSession",
    "UnknownFlowError",
    "available_flows",
    "find_flow",
    "flow_session",
    "register",
    "run_flow",
]

#: Prefecture of each seed municipality (keys as in simulator.i18n).
PREFECTURE = {"kuwana": "mie", "tsukuba": "ibaraki", "sapporo": "hokkaido", "iizuka": "fukuoka", "kurashiki": "okayama"}
REQUESTER = "kurashiki"  # 倉敷市 介護保険 is the querying side of the seeds' row 94
#: Each seed municipality's 庁内連携 hub (a key of office_link.HUBS), as the verification worlds have them.
OFFICE_HUB = {
    "kuwana": "kuwana_renkei",
    "tsukuba": "tsukuba_renkei",
    "sapporo": "sapporo_kojin_kihon",
    "iizuka": "iizuka_renkei",
    "kurashiki": "kurashiki_kyotsu_kiban",
}
DEFAULT_SIZE = 60
DEFAULT_SEED = 20261124


@dataclass
class FlowContext:
    """Everything a flow's steps need: the world, its driver, who is who, and the trace writer."""

    world: World
    driver: InProcessDriver
    population: DemoPopulation
    home: str  # the municipality where local flows (異動, 出生, 副本登録) happen
    provider: str  # the municipality that answers queries
    requester: str
    person: dict[str, Any]
    writer: TraceWriter | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    hops: list[Hop] = field(default_factory=list)

    def step(self, action: Callable[[datetime], Result]) -> Result:
        """Run one staff command or local call and deliver what it causes; staff hops go to the trace too."""
        result, hops = self.driver.step(action)
        self.hops += hops
        if self.writer is not None and self.driver.on_hop is self.writer:
            self.writer.write_local(hops)
        return result


@dataclass(frozen=True)
class Flow:
    """One flow the trainee can run. ``people`` names who it can be run for (see ``_CANDIDATES``)."""

    id: str
    name_ja: str
    name_en: str
    summary_ja: str
    summary_en: str
    people: str
    run: Callable[[FlowContext], None]
    prepare: Callable[[FlowContext], None] | None = None
    focus: frozenset[str] | None = None  # message types the walk-through shows; None: every hop
    whole: str | None = None  # the flow that shows every hop around a focused one
    aliases: tuple[str, ...] = ()

    def name(self, lang: Lang) -> str:
        return self.name_ja if lang == "ja" else self.name_en

    def summary(self, lang: Lang) -> str:
        return self.summary_ja if lang == "ja" else self.summary_en


@dataclass(frozen=True)
class Planned:
    id: str
    name_ja: str
    name_en: str
    aliases: tuple[str, ...] = ()


FLOWS: dict[str, Flow] = {}
PLANNED: dict[str, Planned] = {}


def register(flow: Flow) -> Flow:
    """Add a flow (and drop it from the planned list, if it was there)."""
    FLOWS[flow.id] = flow
    PLANNED.pop(flow.id, None)
    return flow


def _norm(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().lower().replace("-", "_").replace(" ", "_")


def available_flows() -> list[Flow]:
    return list(FLOWS.values())


class UnknownFlowError(InputError):
    """A flow name that is neither carried nor planned, or one that is planned but not carried yet."""

    def __init__(self, asked: str, planned: Planned | None) -> None:
        names = ", ".join(f"{f.id}（{f.name_ja}）" for f in FLOWS.values())
        if planned is not None:
            rule_ja = (
                f"「{planned.name_ja}」（{planned.id}）はまだ実行できません（今後追加予定）。実行できる流れ: {names}"
            )
            rule_en = f"{planned.id} ({planned.name_en}) cannot be run yet (planned). Flows: {names}"
        else:
            rule_ja = f"「{asked}」という流れはありません。実行できる流れ: {names}"
            rule_en = f"there is no flow {asked!r}. Flows: {names}"
        self.rule_ja, self.rule_en = rule_ja, rule_en
        super().__init__("FLOW", rule_en)


def find_flow(name: str) -> Flow:
    key = _norm(name)
    for flow in FLOWS.values():
        if key in {_norm(flow.id), _norm(flow.name_ja), _norm(flow.name_en), *map(_norm, flow.aliases)}:
            return flow
    for planned in PLANNED.values():
        if key in {_norm(planned.id), _norm(planned.name_ja), _norm(planned.name_en), *map(_norm, planned.aliases)}:
            raise UnknownFlowError(name, planned)
    raise UnknownFlowError(name, None)


# -- the world a flow runs in ----------------------------------------------------------------------------


def _spec(key: str) -> MunicipalitySpec:
    """The municipality with its own 庁内連携 hub, so 異動 reach the hub and 庁内移転 can be run."""
    for spec in DEMO_MUNICIPALITIES:
        if spec.key == key:
            return replace(spec, office_link_hub=OFFICE_HUB[key])
    name_ja, name_en = PROFILES[key]
    return MunicipalitySpec(key, name_ja, name_en, PREFECTURE[key], office_link_hub=OFFICE_HUB[key])


def _bulk_load(registry: Registry, rows: list[dict[str, Any]], now: datetime) -> Result:
    return registry.bulk_load(rows, now)


def _publish(registry: Registry, resident_code: str, now: datetime) -> Result:
    return registry.publish(resident_code, now)


def _register(system: BusinessSystem, person: dict[str, Any], now: datetime) -> Result:
    return system.register(person["business_atena_number"], person["my_number"], person["record"], now)


def build_world(data_dir: Path, home: str, size: int, seed: int) -> FlowContext:
    """A two-municipality world (``home`` and 倉敷市, or 桑名市 and 倉敷市 when home is 倉敷市), every resident
    brought into the linkage path (宛名, 符号, 副本) as the demo does, with no trace attached yet."""
    if home not in PROFILES:
        raise InputError("--profile", f"unknown profile {home!r}; expected one of {', '.join(PROFILES)}")
    provider = home if home != REQUESTER else "kuwana"
    specs = (_spec(provider), _spec(REQUESTER))
    world = World.create(data_dir, WorldSpec(municipalities=specs, start=DEMO_START))
    driver = InProcessDriver(world, DEMO_START)
    try:
        population = demo_population(size, seed, [s.key for s in specs])
    except ValueError as err:
        raise InputError("--size", str(err)) from None
    for spec in specs:
        registry = world.registry(spec.key)
        rows = population.residents[spec.key]
        driver.step(partial(_bulk_load, registry, rows))
        for resident in rows:
            driver.step(partial(_publish, registry, resident["resident_code"]))
        for business in ("tax", "ltc"):
            system = world.business(spec.key, business)
            for person in getattr(population, business)[spec.key]:
                driver.step(partial(_register, system, person))
    return FlowContext(world, driver, population, home, provider, REQUESTER, person={})


# -- who a flow can be run for ---------------------------------------------------------------------------


def _residents(ctx: FlowContext) -> list[dict[str, Any]]:
    return [r for r in ctx.population.residents[ctx.home] if r["status"] == "active" and not r["protective_measure"]]


def _leavers(ctx: FlowContext) -> list[dict[str, Any]]:
    return [
        r for r in ctx.population.residents[ctx.provider] if r["status"] == "active" and not r["protective_measure"]
    ]


def _heads(ctx: FlowContext) -> list[dict[str, Any]]:
    return [r for r in _residents(ctx) if r["is_head"]]


def _taxpayers(ctx: FlowContext) -> list[dict[str, Any]]:
    taxed = {t["my_number"] for t in ctx.population.tax[ctx.home]}
    return [r for r in _residents(ctx) if r["my_number"] in taxed]


_CANDIDATES: dict[str, tuple[Callable[[FlowContext], list[dict[str, Any]]], str, str]] = {
    "resident": (_residents, "住民", "a resident"),
    "leaver": (_leavers, "転出する住民（前住所地の住民）", "a resident of the former municipality"),
    "head": (_heads, "世帯主（出生子の親）", "a head of household (the parent)"),
    "taxpayer": (_taxpayers, "課税されている住民", "a resident with a tax record"),
    "mover": (lambda ctx: ctx.population.movers, "転入してきた方", "a person who moved in"),
    "protected_mover": (
        lambda ctx: ctx.population.protected_movers,
        "支援措置の対象で転入してきた方",
        "a person under 支援措置 who moved in",
    ),
}


def candidates(flow: Flow, ctx: FlowContext) -> list[dict[str, Any]]:
    return _CANDIDATES[flow.people][0](ctx)


def choose_person(flow: Flow, ctx: FlowContext, person: str | None) -> dict[str, Any]:
    """The person a flow runs for: the one whose 住民票コード is ``person``, or the first candidate."""
    found = candidates(flow, ctx)
    if not found:
        raise InputError("--size", f"no one in this world can be used for {flow.id}; try a larger --size")
    if person is None:
        return found[0]
    for candidate in found:
        if candidate["resident_code"] == person.strip():
            return candidate
    examples = ", ".join(c["resident_code"] for c in found[:5])
    _, ja, en = _CANDIDATES[flow.people]
    raise InputError(
        "--person",
        f"{person!r} is not {en} in this world (the flow {flow.id} needs {ja}); 住民票コード such as {examples}",
    )


# -- running ---------------------------------------------------------------------------------------------


@dataclass
class FlowRun:
    flow: Flow
    context: FlowContext
    writer: TraceWriter

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.writer.records


@contextmanager
def _data_dir(data: Path | None) -> Iterator[Path]:
    if data is not None:
        yield data
        return
    with tempfile.TemporaryDirectory(prefix="jukisim-explain-") as tmp:
        yield Path(tmp) / "world"


class FlowSession:
    """One world in which several flows run one after the other (each with its own trace)."""

    def __init__(self, base: FlowContext) -> None:
        self.base = base

    def run(self, name: str, *, person: str | None = None, trace: Path | None = None) -> FlowRun:
        """Run one flow and return it; only the flow's own hops are traced (not its preparation)."""
        flow = find_flow(name)
        ctx = replace(self.base, person={}, writer=None, facts={}, hops=[])
        ctx.person = choose_person(flow, ctx, person)
        if flow.prepare is not None:
            flow.prepare(ctx)
        writer = TraceWriter(
            trace,
            keep=True,
            meta={"flow": flow.id, "profile": ctx.home, "provider": ctx.provider, "requester": ctx.requester},
        )
        writer.bind(ctx.world)
        writer.set_flow(flow.id, flow.name_ja, flow.name_en)
        ctx.writer = writer
        ctx.driver.on_hop = writer
        ctx.hops = []
        try:
            flow.run(ctx)
        finally:
            ctx.driver.on_hop = None
            writer.close()
        return FlowRun(flow, ctx, writer)


@contextmanager
def flow_session(
    *, profile: str | None = None, data: Path | None = None, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED
) -> Iterator[FlowSession]:
    """Build a small world (in ``data``, or a temporary directory) and keep it open for ``FlowSession.run``."""
    with _data_dir(data) as directory:
        base = build_world(directory, profile or "kuwana", size, seed)
        try:
            yield FlowSession(base)
        finally:
            base.world.close()


@contextmanager
def run_flow(
    name: str,
    *,
    profile: str | None = None,
    person: str | None = None,
    trace: Path | None = None,
    data: Path | None = None,
    size: int = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
) -> Iterator[FlowRun]:
    """Build a small world, run one flow in it and yield the run (the trace records are in ``writer``).

    Only the flow's own hops are traced: building the world and any preparation (the 転出 before a 転入, a query
    the portal flow needs to have something to show) are not.
    """
    find_flow(name)  # an unknown name fails before a world is built
    with flow_session(profile=profile, data=data, size=size, seed=seed) as session:
        yield session.run(name, person=person, trace=trace)


# -- the flows the components carry today ----------------------------------------------------------------


def _clerks(ctx: FlowContext, m: str) -> tuple[Any, Any]:
    registry = ctx.world.registry(m)
    return (
        registry.staff.authenticate("clerk-a", DEMO_PASSWORD),
        registry.staff.authenticate("clerk-b", DEMO_PASSWORD),
    )


def _four_eyes(ctx: FlowContext, form: dict[str, Any], municipality: str | None = None) -> None:
    """Enter a 異動 as one clerk and confirm it as another (JUKI-002)."""
    m = municipality or ctx.home
    registry = ctx.world.registry(m)
    clerk_a, clerk_b = _clerks(ctx, m)
    entered = ctx.step(lambda now: registry.enter_change(clerk_a, form, now))
    if entered.refusal is not None:
        raise InputError("flow", f"the registry refused the entry: {entered.refusal}")
    ctx.facts["change_id"] = entered.value
    ctx.step(lambda now: registry.confirm_change(clerk_b, str(entered.value), True, now))


def _move_within(ctx: FlowContext) -> None:
    person = ctx.person
    head, _, _ = str(person["address"]).rpartition("丁目")
    _four_eyes(
        ctx,
        {
            "change_type": "move_within",
            "resident_code": person["resident_code"],
            "address": (head + "丁目99番地") if head else str(person["address"]) + " 99番地",
            "postal_code": person["postal_code"],
            "change_date": (ctx.driver.now.date() - timedelta(days=1)).isoformat(),
        },
    )


def _move_out(ctx: FlowContext) -> None:
    _four_eyes(
        ctx,
        {
            "change_type": "move_out",
            "resident_code": ctx.person["resident_code"],
            "change_date": ctx.driver.now.date().isoformat(),
            "destination_address": "東京都千代田区霞が関二丁目1番2号",
        },
    )


def _death(ctx: FlowContext) -> None:
    _four_eyes(
        ctx,
        {
            "change_type": "death",
            "resident_code": ctx.person["resident_code"],
            "change_date": (ctx.driver.now.date() - timedelta(days=1)).isoformat(),
        },
    )


def _mailing_info(ctx: FlowContext) -> None:
    """既存住基 extracts 送付先情報 for one person; CS checks it with 機構 and sends the file to the CMS."""
    from simulator.components.sofusaki import extract_delivery

    registry = ctx.world.registry(ctx.home)
    code = str(ctx.person["resident_code"])
    extracted = ctx.step(lambda now: extract_delivery(registry, code, now))
    if extracted.refusal is not None:
        raise InputError("flow", f"the registry refused the extraction: {extracted.refusal}")
    cs = ctx.world.cs(ctx.home)
    files = cs.delivery_files()
    if not files:
        raise InputError("flow", "CS made no 送付先情報ファイル")
    file_id = str(files[-1]["file_id"])
    ctx.step(lambda now: cs.send_delivery_file(file_id, "jlis.card_system", now))


def _move_out_first(ctx: FlowContext) -> None:
    # The 転出届 at the former municipality comes first (days before); it is not part of the 転入 walked.
    _four_eyes(
        ctx,
        {
            "change_type": "move_out",
            "resident_code": ctx.person["resident_code"],
            "change_date": (ctx.driver.now.date() - timedelta(days=2)).isoformat(),
            "destination_address": ctx.world.spec.municipalities[1].name_ja,
        },
        ctx.provider,
    )


def _move_in(ctx: FlowContext) -> None:
    person = ctx.person
    home = next(r for r in ctx.population.residents[ctx.requester] if r["status"] == "active")
    ctx.home = ctx.requester
    _four_eyes(
        ctx,
        {
            "change_type": "move_in",
            # Copied from the 転出証明書: the same 住民票コード and 個人番号 follow the person.
            "resident_code": person["resident_code"],
            "my_number": person["my_number"],
            "name": person["name"],
            "name_kana": person["name_kana"],
            "birth_date": person["birth_date"],
            "sex": person["sex"],
            "address": home["address"],
            "postal_code": home["postal_code"],
            "household_id": f"HM{person['resident_code']}",
            "relationship": "世帯主",
            "is_head": True,
            "change_date": (ctx.driver.now.date() - timedelta(days=1)).isoformat(),
            "previous_address": person["address"],
        },
    )


def _birth(ctx: FlowContext) -> None:
    parent = ctx.person
    born = (ctx.driver.now.date() - timedelta(days=3)).isoformat()
    _four_eyes(
        ctx,
        {
            "change_type": "birth",
            "name": str(parent["name"]).split()[0] + " 太郎",
            "name_kana": str(parent["name_kana"]).split()[0] + " タロウ",
            "birth_date": born,
            "sex": "1",
            "household_id": parent["household_id"],
            "relationship": "子",
            "change_date": born,
        },
    )


def _replica_update(ctx: FlowContext) -> None:
    tax = ctx.world.business(ctx.home, "tax")
    entry = next(t for t in ctx.population.tax[ctx.home] if t["my_number"] == ctx.person["my_number"])
    ctx.step(lambda now: tax.register(entry["business_atena_number"], entry["my_number"], entry["record"], now))


def _query(ctx: FlowContext, items: list[str], row: str = "94") -> str:
    ltc = ctx.world.business(ctx.requester, "ltc")
    started = ctx.step(
        lambda now: ltc.query("ltc-staff-01", ctx.person["ltc_atena_number"], row, items, ctx.provider, now)
    )
    query_id = str(started.value)
    ctx.facts["answer"] = ltc.answer(query_id)
    return query_id


def _automatic_query(ctx: FlowContext) -> None:
    _query(ctx, ["local_tax_info", "resident_info"])


def _held_query(ctx: FlowContext) -> None:
    query_id = _query(ctx, ["resident_info"])
    ctx.facts["answer_before_release"] = ctx.facts["answer"]
    chukan = ctx.world.intermediate(ctx.provider)
    reviewer = chukan.staff.authenticate("reviewer", DEMO_PASSWORD)
    held = chukan.held_requests()
    if not held:
        raise InputError("flow", "the query was not held; is the person under 支援措置?")
    ctx.step(lambda now: chukan.release_held(reviewer, held[0], True, now))
    ctx.facts["answer"] = ctx.world.business(ctx.requester, "ltc").answer(query_id)


def _refused_query(ctx: FlowContext) -> None:
    _query(ctx, ["health_insurance_info"])


def _portal_prepare(ctx: FlowContext) -> None:
    # Something to disclose: the person's records exist only once someone has queried about them.
    _query(ctx, ["local_tax_info", "resident_info"])


def _portal(ctx: FlowContext) -> None:
    signed_in = ctx.step(lambda now: ctx.world.portal.sign_in(ctx.person["resident_code"], now))
    ctx.facts["records"] = ctx.world.portal.records(str(signed_in.value)) or []


def _active_route(hub: OfficeLink) -> Route:
    """The first route of the hub's table that is in force for everyone: approved (and confirmed where the
    profile needs the 情報主管課長's check) and with no age-limited target set."""
    for route in HUBS[hub.profile.hub].routes:
        if (route.confirmed_by is not None or not route.needs_confirmation) and route.min_age is None:
            return route
    raise InputError("flow", f"{hub.party} has no route in force for everyone")


def _transfer(ctx: FlowContext) -> None:
    hub = ctx.world.component(f"{ctx.home}.office_link")
    if not isinstance(hub, OfficeLink):
        raise InputError("--profile", f"{ctx.home} has no 庁内連携 hub in this world")
    route = _active_route(hub)
    resident = ctx.world.registry(ctx.home).resident(str(ctx.person["resident_code"]))
    if resident is None:
        raise InputError("--person", "no 住民票 for this person")
    person_key = str(resident["business_atena_number"])  # the hub's 参照用住記 is keyed by the 住基 宛名番号
    session = hub.staff.authenticate("renkei-a", DEMO_PASSWORD)
    terminal = hub.profile.terminals[0][0]
    done = ctx.step(
        lambda now: hub.transfer(
            session,
            terminal,
            "office_lan",
            route.destination,
            route.department_ja,
            route.purpose,
            person_key,
            None,
            now,
        )
    )
    if done.refusal is not None:
        raise InputError("flow", f"the hub refused the transfer: {done.refusal}")
    ctx.facts.update(route=route.route_id, destination=f"{ctx.home}.{route.destination}", person_key=person_key)


def _special_move_out_first(ctx: FlowContext) -> None:
    # 特例転出 at the former municipality comes first: its CS sends the 転出証明書情報 to the CS of the 転入予定地.
    services = JukinetServices(ctx.world)
    cs, target = ctx.world.cs(ctx.provider), ctx.world.cs(ctx.requester)
    code = str(ctx.person["resident_code"])
    sent = ctx.step(lambda now: services.send_tenshutsu(cs, code, target.party, now))
    if sent.refusal is not None:
        raise InputError("flow", f"the 転出証明書情報 was not sent: {sent.refusal}")


def _card_move_in(ctx: FlowContext) -> None:
    services = JukinetServices(ctx.world)
    cs = ctx.world.cs(ctx.requester)
    session = cs.staff.authenticate("cs-op", DEMO_PASSWORD)
    code = str(ctx.person["resident_code"])
    checked = ctx.step(lambda now: services.card_check(cs, session, code, now))
    if checked.refusal is not None:
        raise InputError("flow", f"the card check was refused: {checked.refusal}")
    check = str(checked.value)
    done = ctx.step(lambda now: services.special_move_in(cs, session, code, check, now))
    if done.refusal is not None:
        raise InputError("flow", f"the 特例転入 was refused: {done.refusal}")
    ctx.facts["card_check"] = services.answer(cs, check)


CODE_ACQUISITION_TYPES = frozenset(
    {
        "atena.code_request",
        "nws.serial_request",
        "nws.serial_issued",
        "atena.code_status",
        "jukinet.code_acquisition",
        "jukinet.link_code",
        "nws.linkage_code_issued",
    }
)

for _flow in (
    Flow(
        "move_within",
        "異動（転居）",
        "change of address (move within)",
        "窓口で受け付けた転居届を2人の職員が入力・確認し、既存住基から市町村CS・都道府県サーバ・全国サーバへ、"
        "宛名システムと副本へも伝わります。",
        "A change of address entered by one clerk and confirmed by another, then passed from the registry to "
        "the municipal CS, the prefectural and national servers, and to the addressee system and the replica.",
        "resident",
        _move_within,
        aliases=("異動", "転居", "change", "move"),
    ),
    Flow(
        "move_in",
        "転入",
        "move-in",
        "前の市から転出した方の転入届を、2人の職員が入力・確認します。転出証明書の住民票コードと個人番号で住民票を作り、"
        "住基ネットへ伝え、宛名システムに新しく登録されるので、この市の符号を取得し、副本を登録します。",
        "A move-in from the former municipality, entered and confirmed by two clerks: the 住民票 is made with the "
        "resident code and My Number of the 転出証明書, Juki-net is told, and, as the person is new to the addressee "
        "system, this municipality obtains its own linkage code and registers the replica.",
        "leaver",
        _move_in,
        prepare=_move_out_first,
        aliases=("転入届", "move_in"),
    ),
    Flow(
        "birth",
        "出生",
        "birth",
        "出生届から新しい住民票を作り、住民票コードと個人番号（全国サーバが生成）を付け、符号を取得して副本を登録します。",
        "A birth: a new 住民票, a 個人番号 generated by the national server, a 符号 obtained, the replica registered.",
        "head",
        _birth,
        aliases=("出生届",),
    ),
    Flow(
        "code_acquisition",
        "符号取得",
        "linkage-code acquisition",
        "新しく宛名システムに入った方（ここでは出生子）の符号を、処理通番を使って取得します。"
        "NWS は住民票コードを受け取らず、全国サーバが作る連携用コードから機関ごとの符号を作ります。",
        "A person new to the addressee system (here a newborn) gets a 符号 through a processing serial. NWS never "
        "receives the resident code; it derives each organisation's code from the national server's link code.",
        "head",
        _birth,
        focus=CODE_ACQUISITION_TYPES,
        whole="birth",
        aliases=("符号", "linkage_code"),
    ),
    Flow(
        "replica_update",
        "副本登録",
        "replica registration",
        "税務システムが地方税関係情報を副本として登録します。宛名システムが番号を付け替え、中間サーバーが暗号化して保存します。",
        "The tax system registers its 地方税関係情報 as a replica; the addressee system re-keys it and the "
        "intermediate server stores it encrypted.",
        "taxpayer",
        _replica_update,
        aliases=("副本", "replica"),
    ),
    Flow(
        "query",
        "情報照会",
        "query",
        "倉敷市の介護保険担当が、転入してきた方の地方税関係情報と住民票関係情報を前住所地に照会し、"
        "中間サーバーと情報提供ネットワークシステムを通って自動で回答が届きます。",
        "Kurashiki's long-term care section asks the former municipality for a newcomer's tax and resident "
        "information; the answer comes back automatically through both intermediate servers and NWS.",
        "mover",
        _automatic_query,
        aliases=("照会", "自動応答"),
    ),
    Flow(
        "held_query",
        "自動応答不可",
        "query held for review",
        "支援措置（DV等）の対象の方への照会は、自動応答不可フラグで止まり、提供側の職員が確認してから送られます。",
        "A query about a person under 支援措置 is held by the 自動応答不可フラグ until a reviewer at the provider "
        "releases it.",
        "protected_mover",
        _held_query,
        aliases=("自動応答不可フラグ", "保留", "held", "auto_reply_disabled"),
    ),
    Flow(
        "refused_query",
        "照会の拒否",
        "refused query",
        "照会許可用照合リストにない項目を照会すると、情報提供ネットワークシステムが拒否し、理由が照会者に返ります。",
        "A query for an item the query-permission list does not allow is refused by NWS, and the reason goes back.",
        "mover",
        _refused_query,
        aliases=("拒否", "リスト外", "refused", "refusal"),
    ),
    Flow(
        "portal",
        "マイナポータル",
        "resident portal",
        "本人がマイナポータルで、自分に関する情報提供等記録（誰がいつ何を照会したか）を見ます。",
        "The resident sees, in the portal, the provision records about themselves (who asked for what, when).",
        "mover",
        _portal,
        prepare=_portal_prepare,
        aliases=("情報提供等記録", "records", "myna_portal"),
    ),
    Flow(
        "transfer",
        "庁内移転",
        "intra-office transfer",
        "提供・移転の権限を持つ職員が、登録された端末から庁内連携システムに移転を指示します。庁内連携システムは、"
        "データ主管課が承認した連携ルートに設定された項目だけを、そのルートの連携先システムへ渡します。"
        "個人番号は、個人番号利用事務のシステムにだけ渡ります。",
        "A staff user with the transfer privilege, at a registered terminal, asks the intra-office linkage hub for "
        "a transfer; the hub passes only the items of a route the data owner approved, to that route's system, "
        "and a My Number only to a system registered for My Number business.",
        "resident",
        _transfer,
        aliases=("庁内連携", "移転", "office_transfer", "renkei"),
    ),
    Flow(
        "card_move_in",
        "特例転入",
        "move-in with the My Number Card",
        "個人番号カードを持って転出した方（特例転出）の転入です。転出地の市町村CSから届いて保留されている"
        "転出証明書情報を、窓口でカードを確認したうえで、同じ住民票コードの方についてだけ使います。"
        "紙の転出証明書は要りません。",
        "A move-in by a person who moved out with the My Number Card: the 転出証明書情報 the former municipality's "
        "CS sent is held, and used only after the card is checked at the counter and only for the same resident "
        "code. No paper certificate is needed.",
        "leaver",
        _card_move_in,
        prepare=_special_move_out_first,
        aliases=("特例転出", "カード転入", "tokurei_tennyu", "special_move_in"),
    ),
):
    register(_flow)

for _flow in (
    Flow(
        "move_out",
        "転出",
        "move-out",
        "市外へ引っ越す方の転出届を2人の職員が入力・確認します。住民票は消除され（除票）、本人確認情報の更新が"
        "市町村CSから都道府県サーバ・全国サーバへ伝わります。",
        "A move-out entered and confirmed by two clerks: the 住民票 is removed (除票) and the identity update goes "
        "from the municipal CS to the prefectural and national servers.",
        "resident",
        _move_out,
        aliases=("転出届", "moveout"),
    ),
    Flow(
        "death",
        "死亡",
        "death",
        "死亡届に基づく住民票の消除を2人の職員が入力・確認します。消除の事実が住基ネットへ伝わります。"
        "亡くなった方の個人番号も、同じ管理のもとに残ります。",
        "A removal on a death notification, entered and confirmed by two clerks; Juki-net is told. The deceased "
        "person's My Number stays under the same controls.",
        "resident",
        _death,
        aliases=("死亡届", "deceased"),
    ),
    Flow(
        "mailing_info",
        "送付先情報",
        "mailing-address information",
        "個人番号通知書などを送るための送付先情報を既存住基が作り、市町村CSが機構の本人確認情報と突き合わせてから、"
        "個人番号カード管理システムへ送ります。",
        "The registry extracts the mailing-address information for the My Number notice; the municipal CS checks "
        "it against 機構's identity information, then sends it to the card management system.",
        "resident",
        _mailing_info,
        aliases=("送付先", "sofusaki", "mailing"),
    ),
):
    register(_flow)

for _planned in (Planned("household_change", "世帯変更", "household change"),):
    PLANNED[_planned.id] = _planned
