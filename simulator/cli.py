"""The `jukisim` command: one entry point, sub-commands mounted from the packages that own them.

This module must never hold logic of its own beyond parsing arguments and printing; each command calls
into the package that does the work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from simulator.controls.cli import app as controls_app
from simulator.i18n import Lang
from simulator.services.cli import chaos as services_chaos
from simulator.services.cli import load as services_load
from simulator.services.cli import serve as services_serve
from simulator.simulation.cli import simulate_command
from simulator.training.cli import explain_command, trace_app
from simulator.verify.cli import verify_command
from synthetic_data.cli import app as population_app

app = typer.Typer(
    name="jukisim",
    help="住基・番号制度 情報連携テストベッド / testbed of the 住民基本台帳 information-linkage pipeline",
    no_args_is_help=True,
    add_completion=False,
)
audit_app = typer.Typer(help="証跡の検証 / verify evidence", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(controls_app, name="controls", help="技術的対策カタログ / the control catalogue")
app.add_typer(population_app, name="population", help="合成住民の生成と検証 / synthetic residents")
app.command("verify")(verify_command)
app.command("explain")(explain_command)
app.command("simulate")(simulate_command)
app.command("serve")(services_serve)
app.command("load")(services_load)
app.command("chaos")(services_chaos)
app.add_typer(trace_app, name="trace", help="実行の記録（トレース） / traces of runs")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT_ROOT / "var" / "demo"
LangOption = Annotated[str, typer.Option("--lang", help="表示言語 ja|en / output language")]


def _lang(value: str) -> Lang:
    if value not in ("ja", "en"):
        raise typer.BadParameter("--lang: must be 'ja' or 'en'")
    return "ja" if value == "ja" else "en"


@app.callback()
def _root() -> None:
    """jukisim: 特定個人情報保護評価書の技術的対策を検証するテストベッド。"""


@app.command()
def demo(
    data: Annotated[Path, typer.Option("--data", help="データディレクトリ / data directory")] = DEFAULT_DATA,
    size: Annotated[int, typer.Option("--size", help="住民数 / residents in the world", min=40)] = 1000,
    lang: LangOption = "ja",
    trace: Annotated[
        Path | None, typer.Option("--trace", help="全経路をJSONLに記録 / write every hop to a trace")
    ] = None,
) -> None:
    """2団体・J-LIS・中間サーバー・NWSの小さな世界で主要な流れを実行し、情報照会の各経路を表示します。"""
    from simulator.demo import run_demo

    console = Console()
    run = run_demo(data, _lang(lang), size, console, trace=trace)
    run.world.close()
    if trace is not None:
        console.print(f"trace: {trace}  (jukisim trace view {trace} --out page.html)")


@audit_app.command("verify")
def audit_verify(
    data: Annotated[Path, typer.Argument(help="データディレクトリ / data directory")] = DEFAULT_DATA,
    lang: LangOption = "ja",
) -> None:
    """ハッシュチェーンと情報提供等記録の三者完全性を検証します（改ざん・欠落を検出）。"""
    from simulator.audit import verify_directory

    language = _lang(lang)
    console = Console()
    try:
        report = verify_directory(data)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    for name, tables in report.files.items():
        counts = ", ".join(f"{t}={n}" for t, n in tables.items()) or "-"
        console.print(f"{name}: {counts}")
    for file, chain_break in report.breaks:
        console.print(f"[red]{file}: {chain_break.describe()}[/]")
    for missing in report.missing_records:
        console.print(f"[red]{missing}[/]")
    for duplicate in report.duplicates:
        console.print(f"[red]{duplicate}[/]")
    console.print(report.summary())
    if report.ok:
        console.print(
            "[green]"
            + (
                "すべての証跡は完全です（改ざん・欠落なし）"
                if language == "ja"
                else "all evidence intact: no edit, gap or missing record"
            )
            + "[/]"
        )
    else:
        console.print("[red]" + ("証跡に問題があります" if language == "ja" else "evidence problems found") + "[/]")
        raise typer.Exit(1)


def main() -> None:
    app()
