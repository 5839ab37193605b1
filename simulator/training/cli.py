"""Typer commands of the training features: `explain FLOW`, `explain checklist` and `trace view TRACE --out page.html`.

The lead mounts them at top level (`jukisim explain …`, `jukisim trace view …`). Each command parses its
arguments and calls into the training package; this module must never hold the logic itself.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from simulator.errors import InputError
from simulator.i18n import Lang

__all__ = ["app", "checklist_command", "explain_command", "trace_app"]

app = typer.Typer(help="研修用の機能 / training features", no_args_is_help=True, add_completion=False)
trace_app = typer.Typer(help="実行の記録（トレース） / traces of runs", no_args_is_help=True)
app.add_typer(trace_app, name="trace")

LangOption = Annotated[str, typer.Option("--lang", help="表示言語 ja|en / output language")]


def _lang(value: str) -> Lang:
    if value not in ("ja", "en"):
        raise typer.BadParameter("--lang: must be 'ja' or 'en'")
    return "ja" if value == "ja" else "en"


def _fail(console: Console, message: str) -> typer.Exit:
    console.print(message, style="red", highlight=False, markup=False)
    return typer.Exit(2)


@app.command("explain")
def explain_command(
    flow: Annotated[
        str | None, typer.Argument(help="流れの名前（例: query, 情報照会）。省略すると一覧 / flow name; omit to list")
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="舞台の団体 kuwana|tsukuba|sapporo|iizuka|kurashiki / municipality")
    ] = None,
    person: Annotated[
        str | None, typer.Option("--person", help="対象者の住民票コード / the person's resident code")
    ] = None,
    lang: LangOption = "ja",
    trace: Annotated[
        Path | None, typer.Option("--trace", help="トレース(JSONL)の保存先 / write the trace here")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="研修用ページの保存先 / write the page here")] = None,
    pause: Annotated[
        bool | None, typer.Option("--pause/--no-pause", help="1通ごとに Enter を待つ / wait for Enter between hops")
    ] = None,
    size: Annotated[int, typer.Option("--size", min=60, help="住民数 / residents in the world")] = 60,
    data: Annotated[Path | None, typer.Option("--data", help="世界の保存先（省略時は一時） / data directory")] = None,
) -> None:
    """1つの流れを実際に動かし、1通ずつ説明します（Enter で次へ）。/ Run one flow and walk it hop by hop."""
    from simulator.training.explain import print_flows, walk
    from simulator.training.flows import UnknownFlowError, run_flow
    from simulator.training.viewer import build_page, render_page

    language = _lang(lang)
    console = Console(soft_wrap=True)  # paths and ids must not be broken across lines
    if flow is None:
        print_flows(console, language)
        console.print(
            "組織的・物理的対策の確認項目: jukisim explain checklist [--profile P]"
            if language == "ja"
            else "organisational and physical items to examine: jukisim explain checklist [--profile P]",
            highlight=False,
        )
        return
    if flow.strip().lower() in CHECKLIST_NAMES:
        checklist_command(profile=profile, lang=lang, out=None, page=html)
        return
    interactive = sys.stdin.isatty() if pause is None else pause

    def wait() -> bool:
        answer = console.input("")
        return answer.strip().lower() not in ("q", "quit", "exit")

    try:
        with run_flow(flow, profile=profile, person=person, trace=trace, data=data, size=size) as run:
            walk(run, console, language, wait if interactive else None)
            if html is not None:
                from simulator.training.trace import load_trace

                page = build_page(load_trace(run.records), lang=language)
                html.parent.mkdir(parents=True, exist_ok=True)
                html.write_text(render_page(page), encoding="utf-8")
    except UnknownFlowError as err:
        raise _fail(console, err.rule_ja if language == "ja" else err.rule_en) from None
    except InputError as err:
        raise _fail(console, str(err)) from None
    except (KeyboardInterrupt, EOFError):
        raise typer.Exit(130) from None
    if trace is not None:
        console.print(f"trace: {trace}", highlight=False)
    if html is not None:
        console.print(f"page: {html}", highlight=False)


CHECKLIST_NAMES = ("checklist", "チェックリスト", "確認項目")


@app.command("checklist")
def checklist_command(
    profile: Annotated[
        str | None, typer.Option("--profile", help="団体 kuwana|tsukuba|sapporo|iizuka|kurashiki（省略時は全団体）")
    ] = None,
    lang: LangOption = "ja",
    out: Annotated[
        Path | None, typer.Option("--out", help="チェックリスト(Markdown)の保存先 / write the checklist here")
    ] = None,
    page: Annotated[
        Path | None, typer.Option("--html", help="チェックリストのページ(HTML)の保存先 / write the page here")
    ] = None,
) -> None:
    """組織的・物理的対策を、人が確認する項目として流れの段階ごとに示します。/ ORG and PHY items a person examines."""
    from simulator.training.checklist import checklist_html, checklist_markdown, print_checklist

    language = _lang(lang)
    console = Console(soft_wrap=True)
    try:
        written = [(out, checklist_markdown), (page, checklist_html)]
        for path, render in written:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(render(language, profile), encoding="utf-8")
                console.print(f"checklist: {path}", highlight=False)
        if out is None and page is None:
            print_checklist(console, language, profile)
    except InputError as err:
        raise _fail(console, str(err)) from None


@trace_app.command("view")
def view_command(
    trace: Annotated[Path, typer.Argument(help="トレース(JSONL) / trace file")],
    out: Annotated[Path, typer.Option("--out", help="出力するHTMLページ / the page to write")],
    lang: LangOption = "ja",
    flow: Annotated[str | None, typer.Option("--flow", help="この流れの電文だけ / only this flow's hops")] = None,
    correlation: Annotated[
        str | None, typer.Option("--correlation", help="この関連番号の電文だけ / only this correlation id")
    ] = None,
    max_hops: Annotated[
        int, typer.Option("--max-hops", min=1, help="表示する電文の上限 / at most this many hops")
    ] = 400,
) -> None:
    """トレースから、ネットワークなしで開ける1枚のページ（流れ図・手順・誰が何を見たか・クイズ）を作ります。"""
    from simulator.training.viewer import write_page

    language = _lang(lang)
    console = Console(soft_wrap=True)  # paths and ids must not be broken across lines
    try:
        page = write_page(trace, out, lang=language, flow=flow, correlation=correlation, max_hops=max_hops)
    except InputError as err:
        raise _fail(console, str(err)) from None
    if not page.hops:
        console.print(
            "電文がありません（--flow / --correlation を確認してください）"
            if language == "ja"
            else "no hops selected (check --flow / --correlation)",
            style="yellow",
        )
    for note in page.notes:
        console.print(note[language], style="yellow", highlight=False)
    console.print(f"{out} ({len(page.hops)} hops)", highlight=False, soft_wrap=True)
