"""Clean shutdown loses nothing: `jukisim serve` (one process per service) stopped by SIGTERM in the middle of
traffic leaves every 情報提供等記録 on disk at all three parties, and a hard stop leaves staged messages in the
outbox, which a restart delivers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from simulator.audit import verify_directory
from simulator.services.tls import TlsMaterial, client_context
from simulator.services.topology import Topology
from simulator.services.world import load_population, now_jst, open_world
from tests.services.conftest import PROFILE, query_body


def start(data: Path, topology: Topology, *, drain: float, processes: str) -> subprocess.Popen[bytes]:
    ready = data / "ready.json"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.services", "serve", "--reuse", "--data", str(data), "--processes",
         processes, "--port-base", str(topology.services[0].port), "--drain-timeout", str(drain),
         "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while not ready.exists():
        assert proc.poll() is None, "serve exited early"
        assert time.monotonic() < deadline, "serve not ready"
        time.sleep(0.05)
    return proc


def fire(data: Path, topology: Topology, count: int) -> list[str]:
    """Start ``count`` queries (automatic and held) without waiting for any answer."""
    population = load_population(data)
    people = [m["ltc_atena_number"] for m in population.movers]
    ids = []
    with httpx.Client(base_url=topology.service("kurashiki").url,
                      verify=client_context(TlsMaterial(data), None)) as client:
        for n in range(count):
            ids.append(client.post("/ltc/queries", json=query_body(people[n % len(people)])).json()["query_id"])
        protected = population.protected_movers[0]["ltc_atena_number"]
        ids.append(client.post("/ltc/queries", json=query_body(protected, ["resident_info"])).json()["query_id"])
    return ids


def answers(data: Path, ids: list[str]) -> dict[str, str]:
    world = open_world(data, PROFILE, now_jst())
    try:
        ltc = world.business("kurashiki", "ltc")
        return {i: str((ltc.answer(i) or {}).get("status")) for i in ids}
    finally:
        world.close()


def outbox(data: Path) -> int:
    world = open_world(data, PROFILE, now_jst())
    try:
        total = 0
        for conn in world.stores.values():
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'service_outbox'").fetchone()
            if exists:
                total += conn.execute("SELECT count(*) FROM service_outbox").fetchone()[0]
        return total
    finally:
        world.close()


# One process per service takes a while to start on two cores: that variant runs with the slow suite.
PROCESSES = ["one", pytest.param("several", marks=pytest.mark.slow)]


@pytest.mark.parametrize("processes", PROCESSES)
def test_sigterm_mid_traffic_leaves_every_record(world_dir: tuple[Path, Topology], processes: str) -> None:
    data, topology = world_dir
    proc = start(data, topology, drain=30, processes=processes)
    ids = fire(data, topology, 12)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    statuses = answers(data, ids)
    assert [statuses[i] for i in ids[:-1]] == ["provided"] * 12  # every exchange in flight was completed
    assert statuses[ids[-1]] == "open"  # the held one waits for its reviewer, recorded as held
    report = verify_directory(data)
    assert report.ok, (report.breaks, report.missing_records)
    assert outbox(data) == 0


@pytest.mark.parametrize("processes", PROCESSES)
def test_hard_stop_keeps_staged_messages_for_the_restart(world_dir: tuple[Path, Topology], processes: str) -> None:
    data, topology = world_dir
    proc = start(data, topology, drain=0, processes=processes)
    ids = fire(data, topology, 12)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    report = verify_directory(data)
    assert not report.breaks
    restarted = start(data, topology, drain=30, processes=processes)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=topology.service("kurashiki").url,
                          verify=client_context(TlsMaterial(data), None)) as client:
            for query_id in ids[:-1]:
                status = "open"
                while status == "open" and time.monotonic() < deadline:
                    status = client.get(f"/ltc/queries/{query_id}", params={"wait": 5}).json()["status"]
                assert status == "provided", query_id
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(60) == 0
    assert verify_directory(data).ok
    assert json.loads((data / "services.json").read_text())["services"][0]["name"] == "nws"
