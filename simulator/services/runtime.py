"""Running services: one process hosting some services (one asyncio loop, one uvicorn server each), or a
supervisor with one process per service; readiness, and a clean shutdown that loses nothing.

On Ctrl-C or SIGTERM a host stops taking new business work (503), keeps accepting messages from peers until its
outbox is empty and no message has arrived for a moment (bounded), then stops its servers and closes its stores;
whatever is still staged stays in the outbox table for the next start. A second signal skips the wait. This
module must never handle a message itself; the service driver and the components do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from simulator.drivers.service import ServiceDriver
from simulator.services.admission import Admission, AdmissionLimits
from simulator.services.app import ServiceContext, create_app
from simulator.services.sender import Sender
from simulator.services.tls import TlsMaterial, issue_tls, peer_aware, server_context
from simulator.services.topology import Topology
from simulator.services.world import build_world, now_jst, open_world

__all__ = ["Host", "RunSettings", "ServiceRunner", "child_main", "prepare", "run_services"]

log = logging.getLogger("jukisim.services")
TOPOLOGY_FILE = "services.json"
# How long a service keeps the verdicts of handled messages (its idempotent inbox): far past the ±5-minute freshness
# window, after which a repeated message is refused as stale anyway.
VERDICTS_KEPT = timedelta(days=1)


@dataclass
class RunSettings:
    data_dir: Path
    profile: str
    topology: Topology
    services: list[str] = field(default_factory=list)  # empty: every service of the topology
    drain_timeout: float = 30.0
    quiet_period: float = 1.0
    log_level: str = "warning"
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)

    def selected(self) -> list[str]:
        return list(self.services) or self.topology.names()


def prepare(
    data_dir: Path,
    profile: str,
    *,
    size: int,
    seed: int,
    reuse: bool,
    port_base: int,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Topology:
    """Build a fresh world starting now (or reopen one), decide the topology, issue the TLS certificates."""
    data_dir = Path(data_dir)
    if reuse:
        world = open_world(data_dir, profile, now_jst())
    else:
        world, _population = build_world(data_dir, profile, size, seed, now_jst())
    try:
        topology = Topology.of_world(world, port_base=port_base, overrides=overrides)
        material = TlsMaterial(data_dir)
        if not reuse or not material.exists_for(topology):
            issue_tls(world, topology)
        (data_dir / TOPOLOGY_FILE).write_text(json.dumps(topology.as_dict(), indent=2), encoding="utf-8")
    finally:
        world.close()
    return topology


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the host (several servers share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Host:
    """One process's services: opens the world once, runs a server per selected service, drains on stop."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.contexts: list[ServiceContext] = []
        self.stop = asyncio.Event()
        self.force = False

    def request_stop(self) -> None:
        if self.stop.is_set():
            self.force = True
        self.stop.set()

    async def serve(self, on_ready: Callable[[Host], None] | None = None) -> None:
        settings = self.settings
        world = open_world(settings.data_dir, settings.profile, now_jst())
        material = TlsMaterial(settings.data_dir)
        servers: list[_QuietServer] = []
        protocol = peer_aware(AutoHTTPProtocol)
        try:
            for name in settings.selected():
                spec = settings.topology.service(name)
                driver = ServiceDriver(world, spec.parties, world.stores[spec.organisation], now_jst)
                ctx = ServiceContext(spec, world, driver, admission=Admission(settings.admission))
                ctx.sender = Sender(settings.topology, material, _delivered_by(ctx))
                self.contexts.append(ctx)
                config = uvicorn.Config(
                    create_app(ctx), host=spec.bind, port=spec.port, http=protocol, lifespan="off",
                    ssl_context_factory=_fixed_context(server_context(material, spec.name)),
                    log_level=settings.log_level, access_log=False, timeout_graceful_shutdown=2,
                    timeout_keep_alive=30,
                )
                servers.append(_QuietServer(config))
            for ctx in self.contexts:
                ctx.driver.forget_verdicts(now_jst() - VERDICTS_KEPT)
                pending = await ctx.run(ctx.driver.pending)
                resumed = await ctx.run(ctx.driver.resume)
                assert ctx.sender is not None
                if pending:
                    ctx.sender.submit(pending)
                ctx.settle(resumed)
            tasks = [asyncio.create_task(server.serve(), name=f"serve:{ctx.spec.name}")
                     for server, ctx in zip(servers, self.contexts, strict=True)]
            while not all(server.started for server in servers):
                failed = [t for t in tasks if t.done()]
                if failed:
                    await asyncio.gather(*failed)
                    raise RuntimeError("a service failed to start (is its port in use?)")
                await asyncio.sleep(0.02)
            for ctx in self.contexts:
                ctx.started = True
            if on_ready is not None:
                on_ready(self)
            await self.stop.wait()
            await self._drain()
            # Senders first: their idle keep-alive connections would otherwise hold the servers' shutdown.
            for ctx in self.contexts:
                if ctx.sender is not None:
                    await ctx.sender.close()
            for server in servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for ctx in self.contexts:
                if ctx.sender is not None:
                    await ctx.sender.close()
                ctx.close()
            world.close()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        for ctx in self.contexts:
            ctx.draining = True
        stopped_at = loop.time()
        deadline = stopped_at + self.settings.drain_timeout
        while loop.time() < deadline and not self.force:
            now = loop.time()
            # Quiet since the stop as well: a peer in another process may still be working on an exchange that
            # will reach this service in a moment, even if nothing has arrived here yet.
            if all(
                ctx.sender is not None and ctx.sender.idle() and ctx.in_flight == 0
                and now - max(ctx.last_message, stopped_at) >= self.settings.quiet_period
                for ctx in self.contexts
            ):
                return
            await asyncio.sleep(0.05)
        backlog = {ctx.spec.name: ctx.sender.backlog() for ctx in self.contexts if ctx.sender is not None}
        log.warning("stopping with messages still staged (kept in the outbox for the next start): %s", backlog)


def _fixed_context(context: ssl.SSLContext) -> Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    def factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return context

    return factory


def _delivered_by(ctx: ServiceContext) -> Callable[[list[int]], Any]:
    async def delivered(seqs: list[int]) -> None:
        await ctx.run(lambda: ctx.driver.delivered(seqs))

    return delivered


# -- one process -------------------------------------------------------------------------------------------


def _serve_here(
    settings: RunSettings, ready: Callable[[dict[str, int]], None] | None, *, signals: tuple[int, ...]
) -> None:
    """Run a host on this thread's own loop until one of ``signals`` (or the host's stop) ends it."""
    host = Host(settings)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, host.request_stop)

        def announce(h: Host) -> None:
            if ready is not None:
                ready({ctx.spec.name: os.getpid() for ctx in h.contexts})

        await host.serve(announce)

    _run_loop(main())


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when it is installed (faster sockets and TLS), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def _write_ready(path: Path, pids: dict[str, int]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"pids": pids}), encoding="utf-8")
    tmp.replace(path)


def child_main(settings: RunSettings, ready_file: str) -> None:
    """The body of one service process: serve until SIGTERM, announcing readiness in ``ready_file``."""
    # Ctrl-C reaches every process of the group: the supervisor turns it into one SIGTERM per child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING)
    _serve_here(settings, lambda pids: _write_ready(Path(ready_file), pids), signals=(signal.SIGTERM,))


def run_services(
    settings: RunSettings,
    *,
    processes: str = "one",
    ready_file: Path | None = None,
    on_ready: Callable[[dict[str, int]], None] | None = None,
) -> int:
    """Serve until Ctrl-C or SIGTERM. ``processes`` is "one" (all services in this process) or "several" (one
    process per service under this supervisor). ``ready_file`` receives {"pids": {service: pid}} once all
    services answer. Returns a process exit code.
    """
    if processes == "one":

        def announce(pids: dict[str, int]) -> None:
            if ready_file is not None:
                _write_ready(ready_file, pids)
            if on_ready is not None:
                on_ready(pids)

        _serve_here(settings, announce, signals=(signal.SIGINT, signal.SIGTERM))
        return 0
    if processes != "several":
        raise ValueError("processes: must be 'one' or 'several'")
    spawn = multiprocessing.get_context("spawn")
    children: dict[str, Any] = {}
    files: dict[str, Path] = {}
    for name in settings.selected():
        single = RunSettings(settings.data_dir, settings.profile, settings.topology, [name],
                             settings.drain_timeout, settings.quiet_period, settings.log_level, settings.admission)
        files[name] = settings.data_dir / f".ready.{name}.json"
        files[name].unlink(missing_ok=True)
        proc = spawn.Process(target=child_main, args=(single, str(files[name])), name=f"jukisim:{name}")
        proc.start()
        children[name] = proc
    stopping = {"count": 0}

    def forward(_sig: int, _frame: Any) -> None:
        stopping["count"] += 1
        for proc in children.values():
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        announced = False
        while any(p.is_alive() for p in children.values()):
            if not announced and all(f.exists() for f in files.values()):
                pids = {name: int(p.pid or 0) for name, p in children.items()}
                if ready_file is not None:
                    _write_ready(ready_file, pids)
                if on_ready is not None:
                    on_ready(pids)
                announced = True
            if not announced and any(not p.is_alive() for p in children.values()) and not stopping["count"]:
                forward(signal.SIGTERM, None)
            time.sleep(0.05)
        for proc in children.values():
            proc.join(timeout=settings.drain_timeout + 10)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for f in files.values():
            f.unlink(missing_ok=True)
    return 0 if all(p.exitcode == 0 for p in children.values()) else 1


class ServiceRunner:
    """Services of one world in a background thread of this process (tests, benchmarks): ``with`` starts them
    and waits until they answer; leaving stops them with the same drain as a signal would."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.host = Host(settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> ServiceRunner:
        def main() -> None:
            async def run() -> None:
                self._loop = asyncio.get_running_loop()
                await self.host.serve(lambda _h: self._ready.set())

            try:
                _run_loop(run())
            except BaseException as exc:
                self._error = exc
                self._ready.set()

        self._thread = threading.Thread(target=main, name="jukisim-services", daemon=True)
        self._thread.start()
        if not self._ready.wait(60):
            raise TimeoutError("services did not become ready within 60 s")
        if self._error is not None:
            raise RuntimeError("services failed to start") from self._error
        return self

    def contexts(self) -> list[ServiceContext]:
        return self.host.contexts

    def stop(self, timeout: float = 60) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.host.request_stop)
            self._thread.join(timeout)

    def __exit__(self, *exc: object) -> None:
        self.stop()
