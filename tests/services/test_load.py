"""`jukisim load` end to end: services started, Locust run headless for a few seconds, both stopped, reports
written; requests were made and no outcome was wrong. Distributed mode (master and two workers) with the slow suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.services.cli import app
from simulator.services.load import LoadSettings, run_load
from tests.services.conftest import free_port_base


def test_short_headless_run(tmp_path: Path) -> None:
    out = tmp_path / "load"
    summary = run_load(LoadSettings(users=3, spawn_rate=3, duration=6, out=out, size=60, seed=5,
                                    port_base=free_port_base(24), processes="one", think=(0.1, 0.4)),
                       log=lambda _msg: None)
    assert summary.requests > 0
    assert summary.wrong_outcomes == 0, (out / "locust_failures.csv").read_text()
    assert summary.evidence_ok, summary.evidence_problems[:5]
    names = {s.name for s in summary.steps}
    assert "auto: query→answer" in names and "login registry" in names
    for name in ("locust_stats.csv", "locust_failures.csv", "locust.html", "summary.md", "summary.json", "plan.json"):
        assert (out / name).exists(), name
    figures = json.loads((out / "summary.json").read_text())
    assert figures["cpu"] and all(v["cpu_seconds"] >= 0 for v in figures["cpu"].values())
    assert "| step |" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_distributed_master_and_two_workers(tmp_path: Path) -> None:
    out = tmp_path / "load"
    result = CliRunner().invoke(app, [
        "load", "--users", "4", "--spawn-rate", "4", "--duration", "8", "--size", "60", "--out", str(out),
        "--port-base", str(free_port_base(24)), "--workers", "2", "--think", "0.1,0.4",
    ])
    assert result.exit_code == 0, result.output
    figures = json.loads((out / "summary.json").read_text())
    assert figures["requests"] > 0 and figures["wrong_outcomes"] == 0
    assert (out / "locust-worker-0.log").exists() and (out / "locust-worker-1.log").exists()
    assert len(figures["cpu"]) >= 7  # one process per service, each measured (extensions may add services)
