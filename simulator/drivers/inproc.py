"""In-process driver: synchronous delivery of every outgoing message until the world is quiet.

It owns the clock (a virtual one, advanced a little per hop so records stay ordered) and delivery; the
components own everything else. Every hop is reported to the trace sink, so the demo, the tests and the
training viewer see the same facts. It must never reach into a component's store or alter a message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from simulator.components.base import Component, Link, Outgoing, Result
from simulator.controls.decision import ControlDecision
from simulator.errors import Refusal

__all__ = ["Hop", "InProcessDriver", "World"]


class World(Protocol):
    components: dict[str, Component]
    now: datetime  # the driver keeps the world's clock, so time-dependent services (the CRL) follow it

    def component(self, party: str) -> Component: ...


@dataclass
class Hop:
    """One delivered message, as an observer beside the wire would describe it."""

    seq: int
    at: datetime
    sender: str
    recipient: str
    network: str
    message_type: str
    message_id: str
    correlation_id: str | None
    signed: bool
    sealed_for: str | None
    body_keys: list[str]
    wire_bytes: int
    decisions: list[ControlDecision] = field(default_factory=list)
    refusal: Refusal | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "sender": self.sender,
            "recipient": self.recipient,
            "network": self.network,
            "message_type": self.message_type,
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "signed": self.signed,
            "sealed_for": self.sealed_for,
            "body_keys": self.body_keys,
            "wire_bytes": self.wire_bytes,
            "decisions": [d.as_record() for d in self.decisions],
            "refusal": self.refusal.as_dict() if self.refusal else None,
        }


class InProcessDriver:
    def __init__(
        self,
        world: World,
        start: datetime,
        *,
        hop_latency: timedelta = timedelta(milliseconds=5),
        on_hop: Callable[[Hop, Outgoing], None] | None = None,
        max_hops: int = 10_000,
        on_local: Callable[[Hop], None] | None = None,
    ) -> None:
        self.world = world
        self.now = start
        self.hop_latency = hop_latency
        self.on_hop = on_hop
        self.on_local = on_local  # staff commands: a hop with no message (4-eyes entry, a reviewer's release)
        self.max_hops = max_hops
        self.hops: list[Hop] = []
        self._seq = 0

    def _tick(self, delta: timedelta) -> datetime:
        self.now += delta
        self.world.now = self.now
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        return self._tick(delta)

    def run(self, result: Result) -> list[Hop]:
        """Deliver everything ``result`` sends, and everything that causes, breadth first. Returns the hops."""
        queue: deque[Outgoing] = deque(result.outgoing)
        hops: list[Hop] = []
        delivered = 0
        while queue:
            delivered += 1
            if delivered > self.max_hops:
                raise RuntimeError(f"more than {self.max_hops} hops from one step: a message loop")
            outgoing = queue.popleft()
            self._tick(self.hop_latency)
            receiver = self.world.component(outgoing.recipient)
            step = receiver.handle(
                outgoing.wire, Link(source=outgoing.envelope.sender, network=outgoing.network), self.now
            )
            self._seq += 1
            hop = Hop(
                seq=self._seq,
                at=self.now,
                sender=outgoing.envelope.sender,
                recipient=outgoing.recipient,
                network=outgoing.network,
                message_type=str(outgoing.envelope.type),
                message_id=outgoing.envelope.id,
                correlation_id=outgoing.envelope.correlation_id,
                signed=True,
                sealed_for=outgoing.sealed_for,
                body_keys=sorted(outgoing.envelope.body),
                wire_bytes=len(outgoing.wire),
                decisions=step.decisions,
                refusal=step.refusal,
            )
            hops.append(hop)
            self.hops.append(hop)
            if self.on_hop is not None:
                self.on_hop(hop, outgoing)
            queue.extend(step.outgoing)
        return hops

    def step(self, action: Callable[[datetime], Result]) -> tuple[Result, list[Hop]]:
        """Run a local action (a staff command) at the current time, then deliver what it sends."""
        result = action(self._tick(self.hop_latency))
        local: list[Hop] = []
        if result.decisions or result.refusal is not None:
            # A staff command's own decisions (a release, a 4-eyes refusal) belong in the trace too.
            component = result.decisions[0].component if result.decisions else result.refusal.component  # type: ignore[union-attr]
            self._seq += 1
            local.append(
                Hop(
                    seq=self._seq,
                    at=self.now,
                    sender="staff",
                    recipient=component,
                    network="terminal",
                    message_type="staff.command",
                    message_id="",
                    correlation_id=None,
                    signed=False,
                    sealed_for=None,
                    body_keys=[],
                    wire_bytes=0,
                    decisions=result.decisions,
                    refusal=result.refusal,
                )
            )
            self.hops.extend(local)
            if self.on_local is not None:
                self.on_local(local[0])
        return result, local + self.run(result)
