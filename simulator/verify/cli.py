"""`jukisim verify`: run the verification scenarios and write the report an auditor signs.

With no arguments it runs every scenario in each profile it names; with `--profile` only that profile's
scenarios, and the report covers the controls that profile claims. This module must never decide a
verdict; it gathers scenarios, runs them, and hands the results to the report.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulator.controls.catalogue import enforcement_sites, load_catalogue, project_root
from simulator.i18n import Lang
from simulator.verify.report import VERDICT_LABELS, build_report
from simulator.verify.runner import ScenarioResult, TemplateCache, run_scenario
from simulator.verify.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["DEFAULT_SCENARIOS", "collect_scenarios", "verify_command"]

DEFAULT_SCENARIOS = project_root() / "scenarios" / "verify"
JST = ZoneInfo("Asia/Tokyo")


def collect_scenarios(paths: list[Path]) -> list[Scenario]:
    files: list[Path] = []
    for path in paths or [DEFAULT_SCENARIOS]:
        if path.is_dir():
            files.extend(sorted(path.rglob("*.yaml")))
        elif path.exists():
            files.append(path)
        else:
            raise ScenarioError(path, None, "path", "no such scenario file or directory")
    scenarios = [load_scenario(f) for f in files]
    seen: dict[str, str] = {}
    for s in scenarios:
        if s.id in seen:
            raise ScenarioError(s.source, None, "id", f"duplicate scenario id {s.id!r} (also in {seen[s.id]})")
        seen[s.id] = s.source
    return scenarios


def _unknown_controls(scenario: Scenario, known: set[str]) -> list[str]:
    named = set(scenario.controls)
    named |= {d.control for d in scenario.expect.decisions + scenario.expect.no_decisions}
    named |= {r.control for r in scenario.expect.refusals if r.control}
    return sorted(c for c in named if c not in known)


def verify_command(
    scenarios: Annotated[
        list[Path] | None, typer.Argument(help="シナリオファイルまたはフォルダ / scenario files or folders")
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="団体プロファイル / municipality profile")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="報告書の出力先 / report directory")] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="許可・拒否の両方が検証されていない技術的対策があれば不合格")
    ] = False,
    lang: Annotated[str, typer.Option("--lang", help="ja|en")] = "ja",
    work: Annotated[Path | None, typer.Option("--work", help="作業用ディレクトリ / where worlds are built")] = None,
    trace: Annotated[
        Path | None, typer.Option("--trace", help="全経路をJSONLに記録 / write every hop to a trace")
    ] = None,
) -> None:
    """シナリオを実行し、評価書の技術的対策ごとに許可・拒否の検証結果と証跡を報告します。"""
    language: Lang = "en" if lang == "en" else "ja"
    console = Console()
    try:
        loaded = collect_scenarios(list(scenarios or []))
    except ScenarioError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    catalogue = load_catalogue()
    known = {c.id for c in catalogue}
    if profile is not None and profile not in {"kuwana", "tsukuba", "sapporo", "iizuka", "kurashiki"}:
        console.print(f"[red]--profile: unknown profile {profile!r} (kuwana, tsukuba, sapporo, iizuka, kurashiki)[/]")
        raise typer.Exit(2)
    runs = [(s, p) for s in loaded for p in s.profiles if profile is None or p == profile]
    out_dir = out or project_root() / "var" / "verify" / (profile or "all")
    work_dir = Path(work) if work else Path(tempfile.mkdtemp(prefix="jukisim-verify-"))
    results: list[ScenarioResult] = []
    sink = None
    if trace is not None:
        from simulator.training.trace import trace_sink

        sink = trace_sink(trace, meta={"source": "verify", "profile": profile})
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("検証中" if language == "ja" else "verifying", total=len(runs))
        cache = TemplateCache(
            work_dir,
            on_build=lambda plan: progress.update(
                task, description=f"world {plan.provider}↔{plan.requester} ({plan.size})"
            ),
        )
        for scenario, where in runs:
            progress.update(task, description=f"{scenario.id}@{where}")
            unknown = _unknown_controls(scenario, known)
            if unknown:
                # A scenario naming a control that does not exist can prove nothing: it always fails.
                results.append(
                    ScenarioResult(
                        scenario,
                        passed=False,
                        profile=where,
                        failures=[f"unknown control id(s) {', '.join(unknown)} (not in the catalogue)"],
                    )
                )
            elif sink is not None:
                sink.set_flow(f"{scenario.id}@{where}", scenario.title_ja, scenario.title_en)
                results.append(
                    run_scenario(
                        scenario,
                        cache,
                        where,
                        on_hop=sink,
                        on_local=lambda hop: sink.write_local([hop]),
                        on_start=sink.bind,
                    )
                )
            else:
                results.append(run_scenario(scenario, cache, where))
            progress.advance(task)
    if sink is not None:
        sink.close()
    report = build_report(
        catalogue,
        results,
        profile=profile,
        sites=enforcement_sites(project_root()),
        strict=strict,
        generated_at=datetime.now(JST),
    )
    paths = report.write(out_dir, language)
    _summary(console, report, language)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")
    if not report.ok:
        raise typer.Exit(1)


def _summary(console: Console, report: object, lang: Lang) -> None:
    from simulator.verify.report import VerificationReport

    assert isinstance(report, VerificationReport)
    table = Table(title="検証結果" if lang == "ja" else "Verification summary")
    table.add_column("判定" if lang == "ja" else "verdict")
    table.add_column("件数" if lang == "ja" else "controls", justify="right")
    for key, count in sorted(report.counts().items()):
        label = VERDICT_LABELS[key][0 if lang == "ja" else 1]
        table.add_row(label, str(count))
    console.print(table)
    for r in report.failed_scenarios:
        console.print(f"[red]✘ {r.scenario.id}@{r.profile}[/] {r.scenario.source}")
        for failure in r.failures:
            console.print(f"    {failure}")
    if report.strict and report.strict_gaps:
        gaps = ", ".join(e.control.id for e in report.strict_gaps[:40])
        more = len(report.strict_gaps) - 40
        console.print(
            f"[red]--strict: {len(report.strict_gaps)} technical controls not verified both ways:[/] {gaps}"
            + (f" … (+{more})" if more > 0 else "")
        )
    ok = "合格" if lang == "ja" else "PASS"
    ng = "不合格" if lang == "ja" else "FAIL"
    console.print(f"[green]{ok}[/]" if report.ok else f"[red]{ng}[/]")
