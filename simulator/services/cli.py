"""`jukisim serve` and `jukisim load`: the world as HTTP services on loopback, and a Locust run against them.

This module only parses options, prints and calls ``simulator.services.runtime`` and ``simulator.services.load``;
it must never hold logic of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from simulator.errors import InputError

__all__ = ["app", "chaos", "load", "serve"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
app = typer.Typer(help="HTTPサービスと負荷試験 / the world as services, and load tests", no_args_is_help=True,
                  add_completion=False)

ProfileOption = Annotated[str, typer.Option("--profile", help="世界のプロファイル / world profile: demo, kuwana, tsukuba, sapporo, iizuka, kurashiki")]
SizeOption = Annotated[int, typer.Option("--size", min=40, help="住民数 / residents in the world")]
SeedOption = Annotated[int, typer.Option("--seed", help="乱数の種 / population seed")]
PortOption = Annotated[int, typer.Option("--port-base", min=1024, max=65000, help="最初のポート / first port")]
ProcessesOption = Annotated[
    str, typer.Option("--processes", help="one: 1プロセス / several: サービスごとに1プロセス")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="配置ファイル (JSON/YAML): services.NAME.{host,bind,port}")
]


def _check_processes(value: str) -> str:
    if value not in ("one", "several"):
        raise typer.BadParameter("--processes: must be 'one' or 'several'")
    return value


@app.command()
def serve(
    profile: ProfileOption = "demo",
    data: Annotated[Path, typer.Option("--data", help="データディレクトリ / data directory")] = PROJECT_ROOT
    / "var" / "services",
    size: SizeOption = 400,
    seed: SeedOption = 20261124,
    port_base: PortOption = 8600,
    processes: ProcessesOption = "one",
    config: ConfigOption = None,
    only: Annotated[
        str | None, typer.Option("--only", help="このホストで動かすサービス（カンマ区切り）/ services to run here")
    ] = None,
    reuse: Annotated[
        bool, typer.Option("--reuse", help="既存の世界を再利用（再起動）/ reopen the world in --data")
    ] = False,
    drain_timeout: Annotated[float, typer.Option("--drain-timeout", min=0, help="停止時の送信待ち上限（秒）")] = 30.0,
    ready_file: Annotated[Path | None, typer.Option("--ready-file", help="準備完了時に書くJSON / written when ready")]
    = None,
    max_in_flight: Annotated[int, typer.Option("--max-in-flight", min=1, help="同時処理の上限（超えると503/429）")]
    = 64,
    max_backlog: Annotated[int, typer.Option("--max-backlog", min=1, help="送信待ち電文の上限（超えると新規業務は429）")]
    = 5000,
    retry_after: Annotated[int, typer.Option("--retry-after", min=1, help="混雑時の Retry-After（秒）")] = 1,
) -> None:
    """世界をHTTPサービスとしてループバックで起動します（相互TLS）。Ctrl-C / SIGTERM で送信を終えてから停止します。"""
    from simulator.services.admission import AdmissionLimits
    from simulator.services.runtime import RunSettings, prepare, run_services
    from simulator.services.topology import load_overrides

    console = Console()
    try:
        overrides = load_overrides(config)
        console.print("世界を準備しています… / preparing the world…")
        topology = prepare(data, profile, size=size, seed=seed, reuse=reuse, port_base=port_base,
                           overrides=overrides)
        selected = [s.strip() for s in only.split(",") if s.strip()] if only else []
        for name in selected:
            topology.service(name)
    except InputError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    table = Table("service", "url", "parties")
    for spec in topology.services:
        if not selected or spec.name in selected:
            table.add_row(spec.name, spec.url, ", ".join(spec.parties))
    console.print(table)
    console.print(f"OpenAPI: <url>/docs ・ <url>/openapi.json　データ / data: {data}")

    def announce(pids: dict[str, int]) -> None:
        console.print(f"[green]準備完了 / ready[/] ({len(pids)} services). Ctrl-C で停止 / to stop")

    settings = RunSettings(data, profile, topology, selected, drain_timeout=drain_timeout,
                           admission=AdmissionLimits(max_in_flight, max_backlog, retry_after))
    code = run_services(settings, processes=_check_processes(processes), ready_file=ready_file, on_ready=announce)
    console.print("停止しました（未送信の電文は送信待ちテーブルに保存） / stopped")
    raise typer.Exit(code)


@app.command()
def load(
    profile: ProfileOption = "demo",
    users: Annotated[int, typer.Option("--users", min=1, max=500, help="同時利用者数 / concurrent users")] = 10,
    spawn_rate: Annotated[float, typer.Option("--spawn-rate", min=0.1, help="毎秒の起動数 / users started per s")] = 2,
    duration: Annotated[int, typer.Option("--duration", min=5, max=3600, help="秒 / seconds")] = 60,
    out: Annotated[Path, typer.Option("--out", help="結果の出力先 / report directory")] = PROJECT_ROOT
    / "var" / "load",
    size: SizeOption = 400,
    seed: SeedOption = 20261124,
    port_base: PortOption = 8700,
    processes: ProcessesOption = "several",
    workers: Annotated[int, typer.Option("--workers", min=0, max=16, help="Locust分散実行のワーカー数")] = 0,
    think: Annotated[str, typer.Option("--think", help="職員の思考時間（秒）min,max / think time")] = "2,8",
) -> None:
    """サービスを起動し、Locust をヘッドレスで実行し、両方を停止して、CSV・HTML・要約を書きます。"""
    from simulator.services.load import LoadSettings, run_load

    console = Console()
    try:
        low, high = (float(x) for x in think.split(","))
    except ValueError:
        raise typer.BadParameter("--think: two numbers, min,max (seconds)") from None
    settings = LoadSettings(
        profile=profile, users=users, spawn_rate=spawn_rate, duration=duration, out=out, size=size, seed=seed,
        port_base=port_base, processes=_check_processes(processes), workers=workers, think=(low, high),
    )
    try:
        summary = run_load(settings, log=console.print)
    except (InputError, RuntimeError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    console.print(summary.markdown())
    console.print(f"報告 / reports: {out}")
    raise typer.Exit(0 if summary.wrong_outcomes == 0 and summary.requests > 0 else 1)


@app.command()
def chaos(
    data: Annotated[Path, typer.Option("--data", help="データディレクトリ（新しく作る）/ data directory (built anew)")]
    = PROJECT_ROOT / "var" / "chaos",
    profile: ProfileOption = "demo",
    queries: Annotated[int, typer.Option("--queries", min=1, max=20000, help="情報照会の数 / queries")] = 1000,
    kills: Annotated[int, typer.Option("--kills", min=0, max=200, help="SIGKILL の回数 / kills")] = 10,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="同時に照会する端末 / clients")] = 16,
    targets: Annotated[str | None, typer.Option("--targets", help="停止させるサービス（カンマ区切り）/ services to kill")]
    = None,
    gap: Annotated[str, typer.Option("--gap", help="停止の間隔（秒）min,max / seconds between kills")] = "1,5",
    port_base: PortOption = 21600,
    max_in_flight: Annotated[int, typer.Option("--max-in-flight", min=1, help="同時処理の上限")] = 64,
    max_backlog: Annotated[int, typer.Option("--max-backlog", min=1, help="送信待ち電文の上限")] = 5000,
    seed: Annotated[int, typer.Option("--seed", help="停止の乱数の種 / seed of the kills")] = 20261124,
    report: Annotated[Path | None, typer.Option("--report", help="結果のJSON / write the figures as JSON")] = None,
) -> None:
    """各サービスを別プロセスで起動し、情報照会の負荷の中で無作為にSIGKILL・再起動し、記録の欠落と重複を検査します。"""
    import json

    from simulator.services.admission import AdmissionLimits
    from simulator.services.chaos import ChaosSettings, run_chaos

    console = Console()
    try:
        low, high = (float(x) for x in gap.split(","))
    except ValueError:
        raise typer.BadParameter("--gap: two numbers, min,max (seconds)") from None
    if data.exists() and any(data.iterdir()):
        raise typer.BadParameter(f"--data: {data} must be empty or absent (the run builds its own world)")
    settings = ChaosSettings(
        data, profile=profile, queries=queries, kills=kills, workers=workers, port_base=port_base,
        kill_gap=(low, high), targets=[t.strip() for t in targets.split(",") if t.strip()] if targets else [],
        rng_seed=seed, admission=AdmissionLimits(max_in_flight, max_backlog),
    )
    result = run_chaos(settings, log=console.print)
    console.print(result.markdown())
    if report is not None:
        report.write_text(json.dumps(result.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    raise typer.Exit(0 if result.ok else 1)
