"""情報照会 round trips per second through the HTTP services, against the floor of the same run.

The services run as in ``jukisim serve --processes several`` (one process per organisation, mutual TLS on
loopback). One round trip is a business-API call at 倉敷市 (POST /ltc/queries) and its answer (long-poll GET),
with six organisation-to-organisation hops in between (倉敷市 → 中間サーバー → NWS → 中間サーバー(桑名市) → NWS →
中間サーバー → 倉敷市). The floor is the same server stack answering an empty endpoint (GET /health of the same
service), driven by the same client at the same concurrency. Also: p95 round-trip latency at half the maximum
throughput (open-loop arrivals). Target (issue 6): ratio ≥ 0.25, p95 < 100 ms at half load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from simulator.services.runtime import prepare
from simulator.services.tls import TlsMaterial, client_context
from simulator.services.topology import Topology
from simulator.services.world import load_population


def free_port_base(count: int, start: int = 19000) -> int:
    for base in range(start, 60000, 50):
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


class Bench:
    def __init__(self, topology: Topology, material: TlsMaterial, person: str) -> None:
        self.url = topology.service("kurashiki").url
        self.material = material
        self.body = {"operator": "bench", "business_atena_number": person, "row": "94",
                     "items": ["local_tax_info", "resident_info"], "provider": "kuwana"}

    def client(self, concurrency: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=client_context(self.material, None), base_url=self.url, timeout=60,
                                 limits=httpx.Limits(max_connections=2 * concurrency))

    async def round_trip(self, client: httpx.AsyncClient) -> float:
        started = time.perf_counter()
        query = await client.post("/ltc/queries", json=self.body)
        query_id = query.json()["query_id"]
        while True:
            answer = (await client.get(f"/ltc/queries/{query_id}", params={"wait": 20})).json()
            if answer["status"] != "open":
                break
        if answer["status"] != "provided":
            raise RuntimeError(f"round trip ended {answer}")
        return time.perf_counter() - started

    async def empty(self, client: httpx.AsyncClient) -> float:
        started = time.perf_counter()
        response = await client.get("/health")
        response.raise_for_status()
        return time.perf_counter() - started

    async def closed_loop(self, kind: str, concurrency: int, seconds: float) -> float:
        """Completions per second with ``concurrency`` clients each starting the next as soon as one ends."""
        async with self.client(concurrency) as client:
            one = self.round_trip if kind == "round_trip" else self.empty
            for _ in range(3):
                await one(client)
            done = 0
            deadline = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    await one(client)
                    done += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return done / (time.perf_counter() - started)

    async def open_loop(self, rate: float, seconds: float) -> list[float]:
        """Latencies of round trips started at a constant ``rate`` per second, whatever the answers' pace."""
        async with self.client(64) as client:
            tasks = []
            started = time.perf_counter()
            for n in range(int(rate * seconds)):
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.round_trip(client)))
            return list(await asyncio.gather(*tasks))


def _cpu(processes: list[psutil.Process]) -> float:
    return sum(t.user + t.system for t in (p.cpu_times() for p in processes))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(seconds: float, concurrency: int, processes: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "world"
        topology = prepare(data, "demo", size=60, seed=7, reuse=False, port_base=free_port_base(8))
        person = load_population(data).movers[0]["ltc_atena_number"]
        ready = Path(tmp) / "ready.json"
        server = subprocess.Popen(
            [sys.executable, "-m", "simulator.services", "serve", "--reuse", "--data", str(data), "--processes",
             processes, "--port-base", str(topology.services[0].port), "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not ready.exists():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("services did not start")
                time.sleep(0.1)
            bench = Bench(topology, TlsMaterial(data), person)
            pids = json.loads(ready.read_text())["pids"]
            processes = [psutil.Process(pid) for pid in set(pids.values())] + [psutil.Process()]
            cpu_before = _cpu(processes)
            floor = asyncio.run(bench.closed_loop("empty", concurrency, seconds))
            cpu_floor = (_cpu(processes) - cpu_before) / (floor * seconds)
            cpu_before = _cpu(processes)
            trips = asyncio.run(bench.closed_loop("round_trip", concurrency, seconds))
            cpu_trip = (_cpu(processes) - cpu_before) / (trips * seconds)
            latencies = asyncio.run(bench.open_loop(trips / 2, seconds))
            idle = asyncio.run(bench.open_loop(4, 4))
            return {
                "floor_per_s": floor, "round_trips_per_s": trips, "ratio": trips / floor,
                "p50_half_ms": percentile(latencies, 0.50) * 1e3, "p95_half_ms": percentile(latencies, 0.95) * 1e3,
                "p95_idle_ms": percentile(idle, 0.95) * 1e3, "half_rate": trips / 2, "samples": len(latencies),
                # CPU (services and client, all cores) per operation: what the ratio is made of, whatever else
                # the machine is doing at the time.
                "cpu_ms_per_empty": cpu_floor * 1e3, "cpu_ms_per_round_trip": cpu_trip * 1e3,
                "cpu_ratio": cpu_floor / cpu_trip,
            }
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", choices=["one", "several"], default="several")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args.seconds, args.concurrency, args.processes)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"情報照会 round trips through the services ({args.processes} processes, {args.concurrency} clients) "
          "vs. an empty endpoint of the same stack, measured side by side")
    print(f"  floor (GET /health)   : {figures['floor_per_s']:8.1f} /s")
    print(f"  round trips           : {figures['round_trips_per_s']:8.1f} /s")
    print(f"  ratio                 : {figures['ratio']:.3f}  (target ≥ 0.25)")
    print(f"  p95 at half load      : {figures['p95_half_ms']:.1f} ms at {figures['half_rate']:.1f} /s "
          f"(p50 {figures['p50_half_ms']:.1f} ms; target < 100 ms)")
    print(f"  p95 unloaded (4 /s)   : {figures['p95_idle_ms']:.1f} ms")
    print(f"  CPU per operation     : empty {figures['cpu_ms_per_empty']:.2f} ms, round trip "
          f"{figures['cpu_ms_per_round_trip']:.1f} ms (ratio {figures['cpu_ratio']:.3f}, independent of other load)")


if __name__ == "__main__":
    main()
