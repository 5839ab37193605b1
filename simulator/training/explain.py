"""`jukisim explain FLOW`: run one flow and walk it in the terminal, one hop at a time (Enter for the next).

Plain words first (who sent what to whom and why), identifiers second (message type, control id, the
citation in the PIA). Japanese by default, English with ``--lang en``. The walk reads the same trace records
the page is built from, so the terminal and the page never disagree. It must never print a personal value
beyond the synthetic person's 住民票コード the trainee can pass back with ``--person``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simulator.i18n import Lang, exposure_label, item_label, message_label, party_label
from simulator.training.flows import Flow, FlowRun, available_flows
from simulator.training.items import ITEM_CLASSES
from simulator.training.trace import codes_seen, load_trace, who_saw_what
from simulator.training.words import (
    citation_text,
    decision_plain,
    decision_title,
    describe,
    findings,
    headline,
    protection,
    t,
)

__all__ = ["print_flows", "walk"]

_COLOUR = {"allow": "green", "deny": "red", "hold": "yellow"}
_MARK = {"allow": "✔", "deny": "✘", "hold": "‖"}
_EXPOSURE_STYLE = {"plaintext": "bold red", "ciphertext": "cyan", "never": "dim green"}
CITATIONS_SHOWN = 2

Pause = Callable[[], bool]  # True to go on, False to stop the walk


def print_flows(console: Console, lang: Lang) -> None:
    """The flows that can be run, with their Japanese and English names."""
    table = Table(title=t(lang, "実行できる流れ", "Flows you can run"))
    table.add_column("FLOW")
    table.add_column(t(lang, "名前", "name"))
    table.add_column(t(lang, "内容", "what it shows"))
    for flow in available_flows():
        table.add_row(flow.id, escape(flow.name(lang)), escape(flow.summary(lang)))
    console.print(table)


def _short(item: str, lang: Lang) -> str:
    """'4情報（氏名・住所・生年月日・性別）' → '4情報': the long form is for the page, not a table header."""
    return item_label(item, lang).split("（")[0].split(" (")[0]


def _hop(console: Console, hop: Mapping[str, Any], number: int, total: int, lang: Lang) -> None:
    # Japanese prose wraps best where the terminal wraps it, not at the spaces between party names.
    say = partial(console.print, soft_wrap=True)
    console.rule(f"[bold]{number} / {total}[/]  {escape(headline(hop, lang))}", align="left")
    say(f"[bold]{escape(message_label(hop['message_type'], lang))}[/]")
    say(escape(describe(hop, lang)))
    for line in protection(hop, lang):
        say(f"  ・{escape(line)}")
    if hop["decisions"]:
        say(t(lang, "  判断:", "  Decisions:"))
    for d in hop["decisions"]:
        colour = _COLOUR.get(d["outcome"], "white")
        who = escape(party_label(d["component"], lang))
        say(f"   [{colour}]{_MARK.get(d['outcome'], '?')}[/] {who}: {escape(decision_plain(d, lang))}")
        say(f"      [dim]{escape(d['control_id'])} {escape(decision_title(d, lang))}[/]")
        cites = d.get("citations", [])
        for c in cites[:CITATIONS_SHOWN]:
            say(f"      [dim]{t(lang, '根拠', 'source')}: {escape(citation_text(c, lang))}[/]")
        if len(cites) > CITATIONS_SHOWN:
            more = len(cites) - CITATIONS_SHOWN
            say(f"      [dim]{t(lang, f'（ほかの根拠 {more} 件）', f'({more} more citations)')}[/]")
    if hop.get("refusal"):
        r = hop["refusal"]
        say(f"   [red]{escape(str(r['code']))}: {escape(r['reason_ja'] if lang == 'ja' else r['reason_en'])}[/]")
    fields = ", ".join(
        f["path"] + (f"({_short(f['item'], lang)}{' #' + f['fp'] if f.get('fp') else ''})" if f.get("item") else "")
        for f in hop["fields"]
        if "." not in f["path"] and "[" not in f["path"]
    )
    ident = f"{hop['message_type']}"
    if hop.get("sealed_for"):
        ident += f" · {t(lang, '暗号の宛先', 'sealed for')} {hop['sealed_for']}"
    if fields:
        ident += f" · {t(lang, '項目', 'fields')}: {fields}"
    say(f"  [dim]{escape(ident)}[/]")


def _matrix(console: Console, hops: list[dict[str, Any]], parties: list[str], lang: Lang) -> None:
    seen = who_saw_what(hops)
    codes = codes_seen(hops)
    table = Table(title=t(lang, "誰が何を見たか", "Who saw what"))
    table.add_column(t(lang, "システム", "system"))
    for item in ITEM_CLASSES:
        table.add_column(escape(_short(item, lang)), justify="center")
    for party in parties:
        if party not in seen:
            continue
        cells = []
        for item in ITEM_CLASSES:
            level = seen[party][item]
            text = escape(exposure_label(level, lang))
            if item == "linkage_code" and level != "never" and codes.get(party):
                text += "\n" + " ".join(f"#{c}" for c in sorted(codes[party]))
            cells.append(f"[{_EXPOSURE_STYLE[level]}]{text}[/]")
        table.add_row(escape(party_label(party, lang)), *cells)
    console.print(table)
    for line in findings(seen, codes, lang):
        console.print(f"[bold]・{escape(line)}[/]")


def _outcome(console: Console, run: FlowRun, lang: Lang) -> None:
    facts = run.context.facts
    answer = facts.get("answer")
    if isinstance(answer, dict):
        status = str(answer.get("status"))
        label = {
            "provided": t(lang, "回答が届きました（提供）", "the answer arrived (provided)"),
            "refused": t(lang, "照会は拒否されました", "the query was refused"),
        }.get(status, status)
        console.print(t(lang, f"照会の結果: {label}", f"Query result: {label}"))
        if status == "refused":
            reason = answer.get("reason_ja") if lang == "ja" else answer.get("reason_en")
            console.print(f"  {escape(str(answer.get('control_id')))}: {escape(str(reason))}")
    before = facts.get("answer_before_release")
    if isinstance(before, dict):
        console.print(
            t(
                lang,
                f"職員が確認する前の状態: {before.get('status')}（保留中は回答が届きません）",
                f"Before the reviewer acted: {before.get('status')} (nothing is sent while held)",
            )
        )
    if "records" in facts:
        n = len(facts["records"])
        console.print(t(lang, f"本人が見た情報提供等記録: {n} 件", f"Provision records the person saw: {n}"))


def walk(run: FlowRun, console: Console, lang: Lang, pause: Pause | None = None) -> int:
    """Print the run hop by hop; returns how many hops were shown."""
    flow: Flow = run.flow
    trace = load_trace(run.records)
    hops = trace.hops
    shown = [h for h in hops if flow.focus is None or h["message_type"] in flow.focus]
    console.rule(f"[bold]{escape(flow.name(lang))}[/] ({flow.id})")
    console.print(escape(flow.summary(lang)))
    person = run.context.person
    home = run.context.home
    console.print(
        t(
            lang,
            f"対象者（合成データ）: 住民票コード {person.get('resident_code')}　舞台: {party_label(home + '.registry', lang).split()[0]}",
            f"Person (synthetic): resident code {person.get('resident_code')}; municipality: "
            f"{party_label(home + '.registry', lang).split()[0]}",
        )
    )
    if len(shown) < len(hops):
        rest = len(hops) - len(shown)
        whole = f"`jukisim explain {flow.whole}`" if flow.whole else ""
        console.print(
            t(
                lang,
                f"この流れに関わる {len(shown)} 通を順に見ます（前後の {rest} 通は省略。全体は {whole}）。",
                f"Walking the {len(shown)} messages of this flow ({rest} around it are left out; all: {whole}).",
            )
        )
    if pause is not None:
        console.print(t(lang, "[dim]Enter で次へ、q で終了[/]", "[dim]Enter for the next, q to stop[/]"))
    for number, hop in enumerate(shown, start=1):
        if pause is not None and number > 1 and not pause():
            return number - 1
        _hop(console, hop, number, len(shown), lang)
    console.rule(t(lang, "まとめ", "Summary"))
    _outcome(console, run, lang)
    _matrix(console, shown, trace.parties(shown), lang)
    return len(shown)
