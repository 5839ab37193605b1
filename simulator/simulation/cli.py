"""`jukisim simulate`: run the discrete-event simulation and write results.json and report.html under --out.

The typer app exposes one command, ``simulate_command`` (the lead mounts it as ``jukisim simulate``). Bad options
exit with code 2 and name the option and the rule; nothing is written then. This module must never hold simulation
logic: it parses, shows progress, and calls ``simulator.simulation.runner``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from simulator.errors import InputError
from simulator.simulation.runner import SimulationConfig

__all__ = ["app", "simulate_command"]

app = typer.Typer(add_completion=False, help="離散事象シミュレーション / discrete-event simulation")


def simulate_command(
    profile: Annotated[str, typer.Option("--profile", help="kuwana|tsukuba|sapporo|iizuka|kurashiki")] = "kuwana",
    days: Annotated[int, typer.Option("--days", help="日数 / simulated days")] = 7,
    faults: Annotated[Path | None, typer.Option("--faults", help="障害シナリオ (YAML/JSON) / fault file")] = None,
    out: Annotated[Path, typer.Option("--out", help="出力先 / output directory")] = Path("var/simulate"),
    lang: Annotated[str, typer.Option("--lang", help="ja|en")] = "ja",
    seed: Annotated[int, typer.Option("--seed", help="乱数シード / seed")] = 1,
    mode: Annotated[str, typer.Option("--mode", help="model (コストモデル) | real (実コンポーネント)")] = "model",
    timing: Annotated[str, typer.Option("--timing", help="real mode: model (コスト表) | measured (実測CPU時間)")] = "model",
    national: Annotated[bool, typer.Option("--national", help="全国規模 (多数の団体が NWS と PF を共有)")] = False,
    municipalities: Annotated[Path | None, typer.Option("--municipalities",
                                                        help="national: CSV name,population[,prefecture]")] = None,
    size: Annotated[int | None, typer.Option("--size", help="合成住民数 / synthetic residents")] = None,
    start: Annotated[str | None, typer.Option("--start", help="開始日時 (ISO, JST)")] = None,
    costs: Annotated[Path | None, typer.Option("--costs", help="コスト表 JSON / cost table")] = None,
    calibrate: Annotated[bool, typer.Option("--calibrate", help="実コンポーネントで計測し直す / measure a fresh "
                                                                "cost table first")] = False,
    unit: Annotated[int | None, typer.Option("--unit", help="national: messages per simulated unit")] = None,
) -> None:
    """業務の流れを仮想時間で実行し、処理量・所要時間・待ち行列・稼働率・障害からの回復を報告します。"""
    console = Console(stderr=True)
    try:
        config, language = _config(profile, days, faults, lang, seed, mode, timing, national, municipalities, size,
                                   start, costs, calibrate, unit, out, console)
    except InputError as error:
        console.print(f"[red]エラー / error: {error}[/]")
        raise typer.Exit(2) from None
    from simulator.simulation.report import write_report
    from simulator.simulation.runner import simulate

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("simulate", total=1.0)

        def progress(stage: str, fraction: float) -> None:
            bar.update(task, description=stage, completed=fraction)

        try:
            result = simulate(config, progress)
        except InputError as error:
            console.print(f"[red]エラー / error: {error}[/]")
            raise typer.Exit(2) from None
        bar.update(task, description="report", completed=1.0)
    json_path, html_path = write_report(result, out, language)
    ja = language == "ja"
    lost = result["lost_messages"]
    console.print(("消失メッセージ" if ja else "lost messages") + f": {lost}")
    for flow, n in result["throughput"]["completed"].items():
        console.print(f"  {flow}: {n}")
    console.print(f"{json_path}\n{html_path}")
    if lost or not result["checks"].get("ok", False):
        raise typer.Exit(1)


def _config(profile: str, days: int, faults: Path | None, lang: str, seed: int, mode: str, timing: str,
            national: bool, municipalities: Path | None, size: int | None, start: str | None, costs: Path | None,
            calibrate: bool, unit: int | None, out: Path, console: Console) -> tuple[SimulationConfig, str]:
    from simulator.simulation.calendar import JST
    from simulator.simulation.costmodel import CostTable
    from simulator.simulation.faults import FaultPlan, load_faults
    from simulator.simulation.workload import get_profile

    if lang not in ("ja", "en"):
        raise InputError("--lang", f"must be 'ja' or 'en' (got {lang!r})")
    if days < 1:
        raise InputError("--days", f"must be at least 1 (got {days})")
    if mode not in ("model", "real"):
        raise InputError("--mode", f"must be 'model' or 'real' (got {mode!r})")
    if timing not in ("model", "measured"):
        raise InputError("--timing", f"must be 'model' or 'measured' (got {timing!r})")
    if national and mode == "real":
        raise InputError("--national", "national scale runs in cost-model mode only (--mode model)")
    get_profile(profile)
    if size is not None and size < 100:
        raise InputError("--size", f"must be at least 100 (got {size})")
    if unit is not None and unit < 1:
        raise InputError("--unit", f"must be at least 1 (got {unit})")
    if out.exists() and not out.is_dir():
        raise InputError("--out", f"{out} exists and is not a directory")
    moment = None
    if start is not None:
        try:
            moment = datetime.fromisoformat(start)
        except ValueError:
            raise InputError("--start", f"must be an ISO date or date-time (got {start!r})") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=JST)
    plan = load_faults(faults) if faults is not None else FaultPlan()
    table = CostTable.load(costs) if costs is not None else None
    if calibrate:
        from simulator.simulation.realrun import calibrate as measure

        console.print("コスト表を計測しています / measuring a cost table …")
        table = measure()
        out.mkdir(parents=True, exist_ok=True)
        table.save(out / "costs.json")
    config = SimulationConfig(days=days, profile=profile, national=national, mode=mode, timing=timing, seed=seed,
                              size=size, start=moment, faults=plan, costs=table, unit=unit,
                              municipalities=municipalities,
                              data_dir=(out / "world") if mode == "real" else None)
    return config, lang


app.command("simulate")(simulate_command)
