"""`jukisim population …`: generate, validate and export synthetic populations from the command line.

The lead mounts `app` under the top-level command. Arguments are checked before any work; a bad one gives a
message naming the option and the rule, exit code 2, and nothing written. This module must never hold
generation logic of its own; it parses, calls synthetic_data, and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulator.errors import InputError

from . import PROFILES, Check, ValidationFailed, check_output_path, ensure_valid, get_profile, validate_path, write
from . import export as export_tables
from .generator import MAX_SIZE

app = typer.Typer(
    name="population",
    help="合成住民データの生成・検証 / generate and validate synthetic populations",
    no_args_is_help=True,
    add_completion=False,
)
_err = Console(stderr=True, soft_wrap=True)
_out = Console(soft_wrap=True)

_STAGES = {
    "households": "世帯と住民 / households and residents",
    "events": "異動 / life events",
    "business": "税・介護保険 / tax and long-term care",
    "identifiers": "個人番号 / My Numbers",
    "writing": "書込みと検証 / writing and validating",
    "done": "完了 / done",
}


def _fail(option: str, rule: str) -> None:
    _err.print(f"[bold red]エラー / error[/]: {option}: {rule}")
    raise typer.Exit(code=2)


@app.command()
def generate(
    profile: Annotated[str, typer.Option("--profile", help=f"自治体プロファイル / one of: {', '.join(sorted(PROFILES))}")],
    size: Annotated[int, typer.Option("--size", help="住民数 / number of active residents (> 0)")],
    seed: Annotated[int, typer.Option("--seed", help="乱数シード / seed (≥ 0); same seed, profile and size → same bytes")],
    out: Annotated[Path, typer.Option("--out", help="出力SQLiteファイル / output SQLite file")],
    year: Annotated[int, typer.Option("--year", help="異動の年 (住民は1月1日現在) / event year (snapshot on 1 January)")] = 2024,
    skip_validation: Annotated[bool, typer.Option("--skip-validation", help="検証の失敗でも書き出す / write even if drift")] = False,
) -> None:
    """合成人口を生成してSQLiteに書き出す / generate a population and write it to SQLite."""
    try:
        get_profile(profile)
    except InputError as exc:
        _fail("--profile", exc.rule)
    if size <= 0:
        _fail("--size", f"must be greater than 0 (got {size})")
    if size > MAX_SIZE:
        _fail("--size", f"must be at most {MAX_SIZE:,} (got {size:,})")
    if seed < 0:
        _fail("--seed", f"must be 0 or more (got {seed})")
    if not 2000 <= year <= 2100:
        _fail("--year", f"must be between 2000 and 2100 (got {year})")
    try:
        check_output_path(out)
    except InputError as exc:
        _fail("--out", exc.rule)

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=_err, transient=False,
    ) as bar:
        task = bar.add_task(_STAGES["households"], total=1.0)

        def report(stage: str, fraction: float) -> None:
            bar.update(task, completed=fraction, description=_STAGES.get(stage, stage))

        try:
            checks = write(profile, size, seed, out, year=year, progress=report, validate=not skip_validation)
        except ValidationFailed as exc:
            bar.stop()
            _err.print(f"[bold red]検証失敗 / validation failed[/] — nothing written to {out}\n{exc}")
            raise typer.Exit(code=1) from None
        except InputError as exc:
            bar.stop()
            _fail(f"--{exc.field}", exc.rule)
    failed = [c for c in checks if not c.ok]
    _out.print(_summary(checks))
    _out.print(f"{out}: {size:,} residents ({profile}, seed {seed}); {len(checks)} checks, {len(failed)} failed")


def _summary(checks: list[Check]) -> Table:
    """One row per group: how many checks, and the worst drift as a share of its tolerance."""
    table = Table(title="検証の要約 / validation summary")
    for column in ("group", "checks", "failed", "worst check", "drift / tolerance"):
        table.add_column(column)
    groups: dict[str, list[Check]] = {}
    for c in checks:
        groups.setdefault(c.group, []).append(c)
    for group, members in groups.items():
        worst = max(members, key=lambda c: abs(c.actual - c.target) / c.tolerance if c.tolerance else 0.0)
        ratio = abs(worst.actual - worst.target) / worst.tolerance if worst.tolerance else 0.0
        bad = sum(1 for c in members if not c.ok)
        table.add_row(group, str(len(members)), f"[bold red]{bad}[/]" if bad else "0", worst.name, f"{ratio:.2f}")
    return table


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="人口ファイル / population SQLite file")],
    show_all: Annotated[bool, typer.Option("--all", help="全項目を表示 / show passing checks too")] = False,
) -> None:
    """分布と不変条件を検証する / compare distributions with their targets; exit 1 on drift."""
    try:
        checks = validate_path(path)
    except InputError as exc:
        _fail("PATH", exc.rule)
    table = Table(title=f"検証 / validation: {path}")
    for column in ("group", "check", "target", "actual", "tolerance", "n", "ok"):
        table.add_column(column)
    for c in checks:
        if show_all or not c.ok:
            table.add_row(c.group, c.name, f"{c.target:.4f}", f"{c.actual:.4f}", f"±{c.tolerance:.4f}", str(c.n),
                          "[green]OK[/]" if c.ok else "[bold red]DRIFT[/]")
    failed = [c for c in checks if not c.ok]
    _out.print(_summary(checks))
    if show_all or failed:
        _out.print(table)
    _out.print(f"{len(checks)} checks, {len(failed)} failed")
    try:
        ensure_valid(checks)
    except ValidationFailed:
        raise typer.Exit(code=1) from None


@app.command()
def export(
    path: Annotated[Path, typer.Argument(help="人口ファイル / population SQLite file")],
    out: Annotated[Path, typer.Option("--out", help="出力ディレクトリ / output directory")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl または csv / jsonl or csv")] = "jsonl",
) -> None:
    """各テーブルをJSONLまたはCSVに書き出す / export every table as JSONL or CSV."""
    if fmt not in ("jsonl", "csv"):
        _fail("--format", f"must be jsonl or csv (got {fmt!r})")
    if out.exists() and not out.is_dir():
        _fail("--out", f"{out} exists and is not a directory")
    try:
        files = export_tables(path, out, fmt)
    except InputError as exc:
        _fail("PATH" if exc.field == "path" else f"--{exc.field}", exc.rule)
    for f in files:
        _out.print(str(f))
