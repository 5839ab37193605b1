"""`jukisim controls …`: browse the control catalogue, in Japanese (default) or English.

`list` prints a table of controls, `show ID` one control in full (claim, citations, cases, where the code
enforces it), `check` re-verifies the catalogue against the seed texts and the code.
This module must never change the catalogue or decide a control; it only reads and prints.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simulator.controls.catalogue import (
    COMPONENTS,
    PROFILES,
    Catalogue,
    CatalogueError,
    Control,
    Kind,
    UnknownControlError,
    enforcement_sites,
    load_catalogue,
    project_root,
    seeds_dir,
    verify_quotes,
)
from simulator.errors import InputError

__all__ = ["app"]

app = typer.Typer(
    name="controls",
    help="管理策カタログ（特定個人情報保護評価書の対策） / the control catalogue",
    no_args_is_help=True,
    add_completion=False,
)


class Lang(StrEnum):
    JA = "ja"
    EN = "en"


class KindOption(StrEnum):
    TECHNICAL = "technical"
    ORGANISATIONAL = "organisational"
    PHYSICAL = "physical"


_LABELS: dict[str, tuple[str, str]] = {
    "id": ("ID", "ID"),
    "title": ("名称", "Title"),
    "kind": ("種別", "Kind"),
    "enforced_by": ("実施コンポーネント", "Enforced by"),
    "profiles": ("対象団体", "Profiles"),
    "code": ("コード", "Code"),
    "area": ("領域", "Area"),
    "scope": ("範囲", "Scope"),
    "claim": ("評価書の主張", "What the PIA claims"),
    "assert": ("検証する振る舞い", "Behaviour to test"),
    "allowed": ("許可される例", "Allowed case"),
    "refused": ("拒否される例", "Refused cases"),
    "evidence": ("確認すべき証跡", "Evidence to examine"),
    "params": ("パラメータ", "Parameters"),
    "related": ("関連する管理策", "Related controls"),
    "sources": ("出典", "Sources"),
    "seed": ("評価書", "Seed"),
    "section": ("箇所", "Section"),
    "item": ("項目", "Item"),
    "lines": ("行", "Lines"),
    "quote": ("引用", "Quote"),
    "sites": ("コード上の実施箇所", "Where the code enforces it"),
    "no_sites": ("コード上の実施箇所はまだありません。", "Not yet enforced anywhere in the code."),
    "checklist": (
        "人が確認するチェックリスト項目です（コードでは判定しません）。",
        "A checklist item for a person to verify; the code does not decide it.",
    ),
    "count": ("件", "controls"),
    "none": ("該当する管理策はありません。", "No control matches."),
}


def _t(key: str, lang: Lang) -> str:
    ja, en = _LABELS[key]
    return ja if lang is Lang.JA else en


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _error(message: str) -> None:
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}")


def _load() -> Catalogue:
    try:
        return load_catalogue()
    except CatalogueError as exc:
        _error(str(exc))
        raise typer.Exit(1) from None


def _profiles(c: Control, lang: Lang) -> str:
    return ", ".join(PROFILES[p][0 if lang is Lang.JA else 1] for p in c.profiles)


def _components(c: Control, lang: Lang, *, with_ids: bool = False) -> str:
    if lang is Lang.EN:
        return ", ".join(c.enforced_by)
    names = [COMPONENTS[x][0] + (f" ({x})" if with_ids else "") for x in c.enforced_by]
    return "、".join(names)


LangOpt = Annotated[Lang, typer.Option("--lang", help="表示言語 / display language")]


@app.command("list")
def list_controls(
    area: Annotated[str | None, typer.Option("--area", help="領域 (JUKI, CS, CHUKAN …) / area")] = None,
    kind: Annotated[KindOption | None, typer.Option("--kind", help="種別 / kind")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="団体 (kuwana …) / municipality profile")] = None,
    lang: LangOpt = Lang.JA,
) -> None:
    """管理策の一覧 / list controls."""
    catalogue = _load()
    try:
        rows = catalogue.filter(area=area, kind=kind.value if kind else None, profile=profile)
    except InputError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    console = _console()
    if not rows:
        console.print(_t("none", lang))
        return
    sites = enforcement_sites(project_root())
    table = Table(show_lines=False)
    for key in ("id", "title", "kind", "enforced_by", "profiles", "code"):
        table.add_column(_t(key, lang), no_wrap=key in ("id", "kind", "code"), overflow="fold")
    for c in rows:
        n = len(sites.get(c.id, []))
        table.add_row(
            c.id,
            escape(c.title(lang.value)),
            c.kind.label(lang.value),
            escape(_components(c, lang)),
            _profiles(c, lang),
            str(n) if n else "—",
        )
    console.print(table)
    console.print(f"{len(rows)} {_t('count', lang)}")


@app.command("show")
def show(
    control_id: Annotated[str, typer.Argument(help="管理策ID（例: CHUKAN-009） / control id")],
    lang: LangOpt = Lang.JA,
) -> None:
    """管理策の詳細（主張・出典・例・コード上の実施箇所） / one control in full."""
    catalogue = _load()
    try:
        c = catalogue.get(control_id.strip().upper())
    except UnknownControlError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    console = _console()
    other = Lang.EN if lang is Lang.JA else Lang.JA
    console.print(f"[bold]{c.id}[/]  {escape(c.title(lang.value))}")
    console.print(f"[dim]{escape(c.title(other.value))}[/]")
    console.print(
        f"{_t('area', lang)}: {c.area}   {_t('kind', lang)}: {c.kind.label(lang.value)}   "
        f"{_t('scope', lang)}: {c.scope.label(lang.value)}   {_t('profiles', lang)}: {_profiles(c, lang)}"
    )
    if c.enforced_by:
        console.print(f"{_t('enforced_by', lang)}: {escape(_components(c, lang, with_ids=True))}")
    console.print()
    _section(console, _t("claim", lang), [c.claim(lang.value)])
    if c.kind is Kind.TECHNICAL:
        _section(console, _t("assert", lang), [c.assert_ or ""])
        _section(console, _t("allowed", lang), [c.allowed_case or ""])
        _section(console, _t("refused", lang), [f"({i}) {x}" for i, x in enumerate(c.refused_cases, 1)])
    else:
        _section(console, _t("evidence", lang), [f"・{x}" for x in c.evidence_to_examine])
    if c.params:
        _section(console, _t("params", lang), [f"{p.key}: {p.text}" if p.key else p.text for p in c.params])
    if c.related:
        _section(
            console, _t("related", lang), [", ".join(c.related) + (f" ({c.related_note})" if c.related_note else "")]
        )
    console.print(f"[bold]{_t('sources', lang)}[/]")
    for i, s in enumerate(c.sources, 1):
        municipality = PROFILES[s.profile][0 if lang is Lang.JA else 1]
        console.print(f"  [{i}] {escape(s.cite())}  ({municipality})")
        if s.quote:
            console.print("      " + escape(f"「{s.quote}」" if lang is Lang.JA else f'"{s.quote}"'))
        if s.note:
            console.print(f"      [dim]{escape(s.note)}[/]")
    console.print()
    console.print(f"[bold]{_t('sites', lang)}[/]")
    if c.kind is not Kind.TECHNICAL:
        console.print("  " + _t("checklist", lang))
        return
    sites = enforcement_sites(project_root()).get(c.id, [])
    if not sites:
        console.print("  " + _t("no_sites", lang))
    for path, line in sites:
        console.print(f"  {escape(path)}:{line}")


def _section(console: Console, title: str, lines: list[str]) -> None:
    console.print(f"[bold]{escape(title)}[/]")
    for line in lines:
        for part in line.split("\n"):
            console.print("  " + escape(part))
    console.print()


@app.command("check")
def check(
    seeds: Annotated[
        Path | None, typer.Option("--seeds", help="評価書テキストの場所 / where the seed texts are")
    ] = None,
    lang: LangOpt = Lang.JA,
) -> None:
    """カタログを評価書テキストとコードに照らして検査 / verify quotes and code references."""
    catalogue = _load()
    console = _console()
    failures: list[str] = []
    where = seeds or seeds_dir()
    for note in catalogue.notes:
        console.print(f"[yellow]{escape(note)}[/]")
    if where is not None:
        verified, missing = verify_quotes(catalogue, where)
        failures += missing
        label = "引用を評価書テキストで確認" if lang is Lang.JA else "quotes verified against the seed texts"
        console.print(f"{label}: {verified}")
    sites = enforcement_sites(project_root())
    unknown = sorted(cid for cid in sites if cid not in catalogue)
    for cid in unknown:
        for path, line in sites[cid]:
            failures.append(f"{path}:{line}: control id {cid} is not in the catalogue")
    enforced = sum(1 for c in catalogue if c.id in sites)
    technical = sum(1 for c in catalogue if c.kind is Kind.TECHNICAL)
    label = "コード上に実施箇所のある技術的管理策" if lang is Lang.JA else "technical controls named in code"
    console.print(f"{label}: {enforced}/{technical}")
    for f in failures:
        console.print(f"[red]✗[/] {escape(f)}")
    if failures:
        raise typer.Exit(1)
    console.print("OK")
