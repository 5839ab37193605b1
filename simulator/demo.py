"""`jukisim demo`: a small world of two municipalities, J-LIS, the platform and NWS, run end to end.

Builds the world in a data directory, loads synthetic residents, and carries the main flows: 異動, 個人番号
assignment, 符号取得, 副本 registration, an automatic 情報照会 across municipalities, one held by the
自動応答不可フラグ and released, one NWS refuses, and the resident's view. It prints every hop of one 情報照会
with what was signed, what was encrypted and which controls decided. It must never bypass a component:
everything it shows happened through signed messages the components exchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from simulator.components.base import Outgoing, Result
from simulator.components.business import BusinessSystem
from simulator.components.registry import Registry
from simulator.drivers.inproc import Hop, InProcessDriver
from simulator.i18n import Lang, message_label, network_label, outcome_label, party_label, wareki
from simulator.population import DemoPopulation, demo_population
from simulator.world import DEMO_PASSWORD, MunicipalitySpec, World, WorldSpec

__all__ = ["DEMO_MUNICIPALITIES", "DemoRun", "run_demo", "setup_world"]

JST = ZoneInfo("Asia/Tokyo")
DEMO_START = datetime(2026, 11, 24, 9, 0, tzinfo=JST)
PROVIDER, REQUESTER = "kuwana", "kurashiki"
DEMO_MUNICIPALITIES = (
    MunicipalitySpec("kuwana", "桑名市", "Kuwana", "mie", (("tax", "48"),)),
    MunicipalitySpec("kurashiki", "倉敷市", "Kurashiki", "okayama", (("ltc", "93"), ("ltc", "94")), table="beppyo_2"),
)


@dataclass
class DemoRun:
    world: World
    driver: InProcessDriver
    population: DemoPopulation
    sections: dict[str, list[Hop]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def _t(lang: Lang, ja: str, en: str) -> str:
    return ja if lang == "ja" else en


def setup_world(
    data_dir: Path,
    size: int = 1000,
    seed: int = 20261124,
    on_hop: Callable[[Hop, Outgoing], None] | None = None,
    municipalities: tuple[MunicipalitySpec, ...] = DEMO_MUNICIPALITIES,
    on_local: Callable[[Hop], None] | None = None,
) -> DemoRun:
    """Build a world and bring every resident into the linkage path (宛名, 符号, 副本).

    The first municipality is the provider side, the second the requester: the population includes people
    who moved from the first to the second (the demo's 情報照会 asks about them).
    """
    world = World.create(data_dir, WorldSpec(municipalities=municipalities, start=DEMO_START))
    driver = InProcessDriver(world, DEMO_START, on_hop=on_hop, on_local=on_local)
    population = demo_population(size, seed, [m.key for m in municipalities])
    population.save(Path(data_dir) / "population.json")
    run = DemoRun(world, driver, population)
    for m in municipalities:
        registry = world.registry(m.key)
        rows = population.residents[m.key]
        driver.step(partial(registry.bulk_load, rows))
        hops: list[Hop] = []
        for resident in rows:
            hops += driver.step(partial(_publish, registry, resident["resident_code"]))[1]
        for business, records in (("tax", population.tax[m.key]), ("ltc", population.ltc[m.key])):
            system = world.business(m.key, business)
            for person in records:
                hops += driver.step(
                    partial(_register, system, person["business_atena_number"], person["my_number"], person["record"])
                )[1]
        run.sections[f"setup.{m.key}"] = hops
    return run


def _publish(registry: Registry, resident_code: str, now: datetime) -> Result:
    return registry.publish(resident_code, now)


def _register(system: BusinessSystem, number: str, my_number: str, record: dict[str, Any], now: datetime) -> Result:
    return system.register(number, my_number, record, now)


def _clerks(world: World, m: str) -> tuple[Any, Any]:
    registry = world.registry(m)
    return (
        registry.staff.authenticate("clerk-a", DEMO_PASSWORD),
        registry.staff.authenticate("clerk-b", DEMO_PASSWORD),
    )


def _four_eyes(run: DemoRun, m: str, form: dict[str, Any]) -> list[Hop]:
    """Enter a 異動 as one clerk and confirm it as another (JUKI-002)."""
    registry = run.world.registry(m)
    clerk_a, clerk_b = _clerks(run.world, m)
    entered, hops = run.driver.step(lambda now: registry.enter_change(clerk_a, form, now))
    if entered.refusal is not None:
        raise RuntimeError(f"demo change refused: {entered.refusal}")
    _confirmed, more = run.driver.step(lambda now: registry.confirm_change(clerk_b, entered.value, True, now))
    return hops + more


def _query(run: DemoRun, person: dict[str, Any], row: str, items: list[str]) -> tuple[str, list[Hop]]:
    ltc = run.world.business(REQUESTER, "ltc")
    started, hops = run.driver.step(
        lambda now: ltc.query("ltc-staff-01", person["ltc_atena_number"], row, items, PROVIDER, now)
    )
    return str(started.value), hops


FLOW_TITLES = {
    "change": ("異動（転居）", "change of address"),
    "birth": ("出生", "birth"),
    "query": ("情報照会（自動応答）", "query answered automatically"),
    "held": ("自動応答不可フラグによる保留と送信", "held by the auto-reply-disabled flag, then released"),
    "refused": ("照会許可用照合リストにない照会", "a query not on the list"),
    "portal": ("マイナポータル", "resident portal"),
}


def run_flows(run: DemoRun, mark: Callable[[str, str, str], None] | None = None) -> DemoRun:
    """The demo's flows in order. ``mark(flow, title_ja, title_en)`` is called before each (trace sections)."""
    world, driver, pop = run.world, run.driver, run.population
    mover = pop.movers[0]

    def section(key: str) -> None:
        if mark is not None:
            mark(key, *FLOW_TITLES[key])

    # 異動: a 転居 inside Kuwana, through 既存住基 → 市町村CS → 都道府県サーバ → 全国サーバ.
    someone = next(r for r in pop.residents[PROVIDER] if r["status"] == "active")
    section("change")
    run.sections["change"] = _four_eyes(
        run,
        PROVIDER,
        {
            "change_type": "move_within",
            "resident_code": someone["resident_code"],
            "address": someone["address"].rsplit("丁目", 1)[0] + "丁目99番地",
            "postal_code": someone["postal_code"],
            "change_date": (driver.now.date() - timedelta(days=1)).isoformat(),
        },
    )
    # 出生: a newborn in Kurashiki gets a 住民票コード and a 個人番号, then a 符号.
    parent = next(r for r in pop.residents[REQUESTER] if r["status"] == "active" and r["is_head"])
    section("birth")
    run.sections["birth"] = _four_eyes(
        run,
        REQUESTER,
        {
            "change_type": "birth",
            "name": parent["name"].split()[0] + " 太郎",
            "name_kana": parent["name_kana"].split()[0] + " タロウ",
            "birth_date": (driver.now.date() - timedelta(days=3)).isoformat(),
            "sex": "1",
            "household_id": parent["household_id"],
            "relationship": "子",
            "change_date": (driver.now.date() - timedelta(days=3)).isoformat(),
        },
    )
    # 情報照会: Kurashiki's 介護保険 asks Kuwana for the mover's 地方税関係情報 and 住民票関係情報 (row 94).
    section("query")
    query_id, hops = _query(run, mover, "94", ["local_tax_info", "resident_info"])
    run.sections["query"] = hops
    run.facts["query"] = world.business(REQUESTER, "ltc").answer(query_id)
    # The same query for a person under 支援措置: held by the 自動応答不可フラグ until a reviewer releases it.
    protected = pop.protected_movers[0]
    section("held")
    held_id, hops = _query(run, protected, "94", ["resident_info"])
    chukan = world.intermediate(PROVIDER)
    reviewer = chukan.staff.authenticate("reviewer", DEMO_PASSWORD)
    run.facts["held_before_release"] = world.business(REQUESTER, "ltc").answer(held_id)
    release = chukan.held_requests()[0]
    _r, more = driver.step(lambda now: chukan.release_held(reviewer, release, True, now))
    run.sections["held"] = hops + more
    run.facts["held"] = world.business(REQUESTER, "ltc").answer(held_id)
    # A query NWS must refuse: an item row 94 does not list.
    section("refused")
    refused_id, hops = _query(run, mover, "94", ["health_insurance_info"])
    run.sections["refused"] = hops
    run.facts["refused"] = world.business(REQUESTER, "ltc").answer(refused_id)
    # The resident's view: the mover signs in to マイナポータル with the card.
    section("portal")
    signed_in, hops = driver.step(lambda now: world.portal.sign_in(mover["resident_code"], now))
    run.sections["portal"] = hops
    run.facts["portal"] = world.portal.records(str(signed_in.value)) or []
    return run


# -- printing ---------------------------------------------------------------------------------------------


def _print_hops(console: Console, hops: list[Hop], lang: Lang, detail: bool) -> None:
    for number, hop in enumerate(hops, start=1):
        sender = (
            _t(lang, "職員（端末操作）", "staff (terminal)") if hop.sender == "staff" else party_label(hop.sender, lang)
        )
        arrow = f"[bold]{number:>3}[/] {sender} → {party_label(hop.recipient, lang)}"
        console.print(f"{arrow}  [dim]({network_label(hop.network, lang)})[/]")
        console.print(f"      {message_label(hop.message_type, lang)}  [dim]{hop.message_type}[/]")
        if detail:
            signed = _t(
                lang, "署名: ES256 JWS（送信者の証明書チェーン x5c 付き）", "signed: ES256 JWS (sender's x5c chain)"
            )
            if hop.sealed_for:
                sealed = _t(
                    lang,
                    f"暗号化: JWE ECDH-ES+A256KW/A256GCM → {party_label(hop.sealed_for, lang)} のみ復号可",
                    f"encrypted: JWE ECDH-ES+A256KW/A256GCM, readable only by {party_label(hop.sealed_for, lang)}",
                )
            else:
                sealed = _t(lang, "暗号化: なし（個人情報を含まない）", "encrypted: none (no personal data)")
            console.print(f"      [green]{signed}[/]")
            console.print(f"      [cyan]{sealed}[/]")
            console.print(
                f"      [dim]{_t(lang, '平文の項目', 'plaintext fields')}: {', '.join(hop.body_keys) or '-'}"
                f"  ({hop.wire_bytes} bytes)[/]"
            )
        for decision in hop.decisions:
            colour = {"allow": "green", "deny": "red", "hold": "yellow"}[str(decision.outcome)]
            reason = decision.reason_ja if lang == "ja" else decision.reason_en
            console.print(
                f"      [{colour}]{decision.control_id} {outcome_label(str(decision.outcome), lang)}[/] {reason}"
            )
        if hop.refusal is not None:
            console.print(f"      [red]{hop.refusal.code}[/]")


def print_demo(run: DemoRun, console: Console, lang: Lang) -> None:
    world = run.world
    heading = {
        "change": _t(
            lang,
            "異動（転居）: 既存住基 → 市町村CS → 都道府県サーバ → 全国サーバ",
            "Change of address through Juki-net",
        ),
        "birth": _t(
            lang, "出生: 住民票コード・個人番号の付番と符号取得", "Birth: resident code, My Number and linkage code"
        ),
        "query": _t(
            lang,
            "情報照会（自動応答）: 倉敷市 介護保険 → 桑名市 の地方税関係情報・住民票関係情報",
            "Query answered automatically: Kurashiki LTC asks Kuwana",
        ),
        "held": _t(
            lang, "自動応答不可フラグによる保留と職員による送信", "Held by the auto-reply-disabled flag, then released"
        ),
        "refused": _t(lang, "照会許可用照合リストにない照会（NWSが拒否）", "A query not on the list, refused by NWS"),
        "portal": _t(lang, "マイナポータル: 本人の情報提供等記録", "Resident portal: the person's provision records"),
    }
    total_setup = sum(len(v) for k, v in run.sections.items() if k.startswith("setup."))
    console.rule(_t(lang, "jukisim デモ", "jukisim demo"))
    console.print(
        _t(
            lang,
            f"開始日時: {wareki(DEMO_START)}（{DEMO_START:%Y-%m-%d %H:%M} JST）",
            f"Start: {DEMO_START:%Y-%m-%d %H:%M} JST",
        )
    )
    for m in DEMO_MUNICIPALITIES:
        console.print(
            _t(
                lang,
                f"{m.name_ja}: 住民 {len(run.population.residents[m.key])} 人",
                f"{m.name_en}: {len(run.population.residents[m.key])} residents",
            )
        )
    console.print(
        _t(
            lang,
            f"準備（宛名登録・符号取得・副本登録）で {total_setup} 通の署名付き電文を交換しました",
            f"Setup (addressee registration, linkage codes, replicas) exchanged {total_setup} signed messages",
        )
    )
    for key in ("change", "birth", "query", "held", "refused", "portal"):
        console.rule(heading[key])
        _print_hops(console, run.sections[key], lang, detail=key == "query")
    console.rule(_t(lang, "結果", "Outcomes"))
    table = Table(show_header=True)
    table.add_column(_t(lang, "照会", "query"))
    table.add_column(_t(lang, "結果", "outcome"))
    for key, label in (
        ("query", _t(lang, "自動応答", "automatic")),
        ("held", _t(lang, "保留→送信", "held→released")),
        ("refused", _t(lang, "リスト外", "not on list")),
    ):
        answer = run.facts.get(key) or {}
        table.add_row(label, f"{answer.get('status')} {answer.get('code') or ''}")
    console.print(table)
    console.print(
        _t(
            lang,
            f"本人が見た情報提供等記録: {len(run.facts['portal'])} 件",
            f"Records the resident saw: {len(run.facts['portal'])}",
        )
    )
    console.print(
        _t(
            lang,
            f"データディレクトリ: {world.data_dir}（組織ごとのSQLite）",
            f"Data directory: {world.data_dir} (one SQLite file per organisation)",
        )
    )


def run_demo(data_dir: Path, lang: Lang, size: int, console: Console, trace: Path | None = None) -> DemoRun:
    """Build, run and print the demo; with ``trace``, every hop also goes to a JSONL trace (training viewer)."""
    if trace is None:
        run = setup_world(data_dir, size)
        run_flows(run)
    else:
        from simulator.training.trace import trace_sink

        sink = trace_sink(trace, data_dir=data_dir, meta={"source": "demo", "size": size})
        try:
            sink.set_flow("setup", "準備（宛名登録・符号取得・副本登録）", "setup (addressee, linkage codes, replicas)")
            run = setup_world(data_dir, size, on_hop=sink, on_local=lambda hop: sink.write_local([hop]))
            run_flows(run, mark=sink.set_flow)
        finally:
            sink.close()
    print_demo(run, console, lang)
    return run
