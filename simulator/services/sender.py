"""The background sender: carries staged outbox messages to other services' ``/messages`` over mutual TLS.

One lane per destination service, each strictly in order (one message in flight), so messages between two
organisations arrive in the order they were staged. Each message goes out under its sending party's own TLS
client certificate, and only to a server whose certificate names the destination service (SNI). A message
leaves the outbox only once the recipient's service has answered for it (accepted or refused); transport
failures are retried with backoff; a busy answer (503/429 ``{"status": "busy", "retry_after_s"}``) is retried
after the wait it asks for. It must never drop, reorder or alter a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.drivers.service import OutboxItem
from simulator.services.peer import PeerConnection, PeerError
from simulator.services.tls import TlsMaterial, client_context
from simulator.services.topology import ServiceSpec, Topology

__all__ = ["JOSE", "Sender", "SenderStats"]

JOSE = "application/jose"
log = logging.getLogger("jukisim.services.sender")


@dataclass
class SenderStats:
    accepted: int = 0
    refused: int = 0
    transport_errors: int = 0
    busy: int = 0  # busy answers honoured (the message stayed queued and was sent again after Retry-After)
    refusal_codes: dict[str, int] = field(default_factory=dict)


class _Lane:
    def __init__(self, destination: ServiceSpec) -> None:
        self.destination = destination
        self.queue: deque[OutboxItem] = deque()
        self.wake = asyncio.Event()
        self.busy = False
        self.task: asyncio.Task[None] | None = None


class Sender:
    def __init__(
        self,
        topology: Topology,
        material: TlsMaterial,
        delivered: Callable[[list[int]], Awaitable[None]],
        *,
        timeout: float = 30.0,
        flush_interval: float = 0.05,
        max_retry_after: float = 30.0,
    ) -> None:
        self.topology = topology
        self.material = material
        self._delivered = delivered
        self.timeout = timeout
        self.flush_interval = flush_interval
        self.max_retry_after = max_retry_after
        self.stats = SenderStats()
        self._peers: dict[tuple[str, str], PeerConnection] = {}
        self._lanes: dict[str, _Lane] = {}
        self._done: list[int] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    # -- feeding ----------------------------------------------------------------------------------------

    def submit(self, items: list[OutboxItem]) -> None:
        """Queue staged messages (call on the event loop's thread, in staging order)."""
        for item in items:
            destination = self.topology.service_of(item.recipient)
            if destination is None:
                # Kept in the outbox: a placement file that names the recipient's service will carry it on restart.
                log.error("no service hosts %s; message %s stays in the outbox", item.recipient, item.message_id)
                continue
            lane = self._lanes.get(destination.name)
            if lane is None:
                lane = self._lanes[destination.name] = _Lane(destination)
                lane.task = asyncio.create_task(self._run(lane), name=f"lane→{destination.name}")
            lane.queue.append(item)
            lane.wake.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="outbox-flush")

    # -- state ------------------------------------------------------------------------------------------

    def idle(self) -> bool:
        return not self._done and all(not lane.queue and not lane.busy for lane in self._lanes.values())

    def backlog(self) -> dict[str, int]:
        return {name: len(lane.queue) for name, lane in self._lanes.items()}

    async def close(self) -> None:
        """Stop the lanes (what is still queued stays in the outbox for the next start) and flush deliveries."""
        if self._closed:
            return
        self._closed = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if self._flusher is not None:
            tasks.append(self._flusher)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._flush()
        for peer in self._peers.values():
            await peer.close()

    # -- sending ----------------------------------------------------------------------------------------

    def _peer(self, party: str, destination: ServiceSpec) -> PeerConnection:
        peer = self._peers.get((party, destination.name))
        if peer is None:
            peer = PeerConnection(destination.host, destination.port, destination.sni,
                                  client_context(self.material, party), self.timeout)
            self._peers[(party, destination.name)] = peer
        return peer

    async def _run(self, lane: _Lane) -> None:
        backoff = 0.05
        while not self._closed:
            if not lane.queue:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            item = lane.queue[0]
            lane.busy = True
            try:
                outcome = await self._post(lane.destination, item)
            finally:
                lane.busy = False
            if outcome is None:
                self.stats.transport_errors += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if outcome.get("status") == "busy":
                self.stats.busy += 1
                hint = outcome.get("retry_after_s")
                wait = float(hint) if isinstance(hint, int | float) and hint > 0 else backoff
                await asyncio.sleep(min(wait, self.max_retry_after))
                continue
            backoff = 0.05
            lane.queue.popleft()
            self._done.append(item.seq)
            if outcome.get("status") == "accepted":
                self.stats.accepted += 1
            else:
                self.stats.refused += 1
                code = str((outcome.get("refusal") or {}).get("code"))
                self.stats.refusal_codes[code] = self.stats.refusal_codes.get(code, 0) + 1
                log.info("%s refused %s (%s): %s", item.recipient, item.message_id, item.message_type, code)

    async def _post(self, destination: ServiceSpec, item: OutboxItem) -> dict[str, Any] | None:
        """POST one wire under the sending party's certificate; the recipient service's verdict, its busy answer,
        or None when it must be retried (no answer, or an answer that is not a verdict, e.g. 503 while it starts)."""
        try:
            status, payload = await self._peer(item.sender, destination).post(
                "/messages", item.wire.encode("ascii"), JOSE
            )
        except PeerError as exc:
            log.warning("delivery of %s to %s failed: %s", item.message_id, destination.name, exc)
            return None
        try:
            verdict = json.loads(payload)
        except ValueError:
            verdict = None
        if isinstance(verdict, dict) and verdict.get("status") in ("accepted", "refused"):
            return verdict
        if status in (429, 503) and isinstance(verdict, dict) and verdict.get("status") == "busy":
            return verdict
        log.warning("%s answered %s without a verdict for %s", destination.name, status, item.message_id)
        return None

    async def _flush(self) -> None:
        if self._done:
            done, self._done = self._done, []
            await self._delivered(done)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self._flush()
