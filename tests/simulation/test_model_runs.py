"""Cost-model runs end to end: same seed → same results, city and national workloads, the CLI and its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from simulator.simulation.cli import app
from simulator.simulation.runner import SimulationConfig, simulate
from simulator.simulation.workload import default_municipalities

runner = CliRunner()


def _without_timing(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "performance"}


def test_same_seed_same_results() -> None:
    a = simulate(SimulationConfig(days=12, profile="kuwana", size=3000, seed=11))
    b = simulate(SimulationConfig(days=12, profile="kuwana", size=3000, seed=11))
    c = simulate(SimulationConfig(days=12, profile="kuwana", size=3000, seed=12))
    assert _without_timing(a) == _without_timing(b)
    assert _without_timing(a) != _without_timing(c)
    assert a["lost_messages"] == 0 and a["checks"]["ok"]
    assert a["throughput"]["completed"] == a["throughput"]["started"]


def test_city_run_reports_every_section() -> None:
    result = simulate(SimulationConfig(days=10, profile="iizuka", size=2000, seed=3))
    assert set(result) >= {"run", "throughput", "latency", "queues", "utilisation", "faults", "records", "messages",
                           "lost_messages", "checks"}
    hops = result["latency"]["hops"]
    assert "intermediate_server→nws nws.query" in hops
    assert hops["intermediate_server→nws nws.query"]["p95_s"] >= hops["intermediate_server→nws nws.query"]["p50_s"]
    assert result["latency"]["end_to_end"]["query"]["n"] == result["throughput"]["completed"]["query"]
    # Every query left its records: requester (sent, answered), NWS (mediated, relayed), provider (sent); a
    # query NWS refused leaves one refusal record at NWS and one at the requester.
    records = result["records"]
    assert records["query.sent"] == records["query.mediated"] + records.get("query.refused", 0) // 2
    assert records["query.mediated"] == records["provision.relayed"] == records["query.answered"] \
        == records["provision.sent"]
    assert result["checks"]["records_lost"] == 0


def test_sapporo_gateway_holds_jukinet_traffic_during_an_outage() -> None:
    from datetime import datetime

    from simulator.simulation.calendar import JST
    from simulator.simulation.faults import Fault, FaultPlan

    plan = FaultPlan([Fault("outage", "kind:municipal_cs", datetime(2024, 1, 9, 9, 0, tzinfo=JST), 6 * 3600.0)])
    result = simulate(SimulationConfig(days=10, profile="sapporo", size=6000, seed=5, faults=plan))
    assert result["messages"]["held_by_gateway"] > 0  # GW-002: held and forwarded, not retried
    assert result["messages"]["retries"] == 0
    assert result["lost_messages"] == 0
    fault = result["faults"][0]
    assert fault["backlog_peak"] > 0 and fault["recovery_s"] is not None
    assert fault["drained_before_next_opening"] is True


def test_default_municipality_list_is_national() -> None:
    municipalities = default_municipalities()
    assert len(municipalities) == 1741
    total = sum(m.population for m in municipalities)
    assert total == pytest.approx(124_885_175, rel=0.001)
    assert 3_000_000 < municipalities[0].population < 5_000_000
    assert municipalities[-1].population < 1000


def test_national_mode_with_a_size_list(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("name,population,prefecture\n甲市,300000,mie\n乙町,20000,mie\n丙村,3000,okayama\n",
                   encoding="utf-8")
    result = runner.invoke(app, ["--national", "--municipalities", str(csv), "--days", "3", "--out",
                                 str(tmp_path / "out"), "--lang", "en", "--unit", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert data["run"]["municipalities"] == 3 and data["run"]["unit"] == 2
    assert data["lost_messages"] == 0
    assert data["throughput"]["completed"]["query"] > 0


def test_cli_writes_json_and_a_self_contained_page(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["--profile", "kurashiki", "--size", "1500", "--days", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert data["lost_messages"] == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "jukisim シミュレーション結果" in page and "data:image/png;base64," in page
    assert 'src="http' not in page and "<script" not in page  # opens offline
    english = runner.invoke(app, ["--profile", "kurashiki", "--size", "1500", "--days", "4", "--out", str(out),
                                  "--lang", "en"])
    assert english.exit_code == 0
    assert "jukisim simulation results" in (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--days", "0"], "--days"),
        (["--profile", "osaka"], "--profile"),
        (["--lang", "fr"], "--lang"),
        (["--mode", "fast"], "--mode"),
        (["--national", "--mode", "real"], "--national"),
        (["--faults", "/nonexistent/f.yaml"], "--faults"),
        (["--start", "next tuesday"], "--start"),
    ],
)
def test_bad_options_exit_2_and_name_the_option(tmp_path: Path, args: list[str], option: str) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2
    assert option in result.output
    assert not (out / "results.json").exists()
