"""Discrete-event (SimPy) driver: the in-process driver's twin in virtual time, with capacity, queues and faults.

Each delivery is a SimPy process: link latency, then a worker of the receiving component (``simpy.Resource``,
capacity from the parameters), then the real ``component.handle(wire, Link(...), now)`` at the virtual time, the
worker held for the service time (the call's measured CPU time, or the cost table's figure), then the outgoing
messages are sent on. Staff commands are processes too. A closed or failed receiver makes the sender retry with
backoff, or a gateway hold and forward (GW-002, RELAY-002). A message that waited longer than half the freshness
window is re-stamped by its own sender (new ``issued_at`` and nonce, same id and content, signed with the sender's
key), as a retransmitting sender would. It must never reach into a component's store, drop a message, or alter a
message's content.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import simpy

from simulator.components.base import Link, Outgoing, Result
from simulator.drivers.inproc import Hop, World
from simulator.simulation.calendar import Availability, SimClock
from simulator.simulation.costmodel import CostTable, kind_of
from simulator.simulation.faults import FaultPlan
from simulator.simulation.metrics import LogHistogram, StationSeries
from simulator.simulation.params import SimParams

__all__ = ["DesDriver", "Track"]

Timing = str  # "measured" | "model"


@dataclass
class Track:
    """One flow started by a staff command: it is done when every message it caused has been handled."""

    label: str
    started: float
    pending: int = 0
    finished: float | None = None
    hops: list[Hop] = field(default_factory=list)
    result: Result | None = None
    done: simpy.Event | None = None


@dataclass
class _Station:
    party: str
    kind: str
    resource: simpy.Resource
    avail: Availability
    policy: str
    series: StationSeries
    busy: float = 0.0
    served: int = 0


class DesDriver:
    """Runs a world's components under SimPy. ``step`` starts a staff command; ``env.run`` advances time."""

    def __init__(
        self,
        world: World,
        start: datetime,
        *,
        params: SimParams | None = None,
        timing: Timing = "model",
        costs: CostTable | None = None,
        faults: FaultPlan | None = None,
        horizon: float = 86_400.0,
        bin_seconds: float = 60.0,
        shared_platform: bool = True,
        on_hop: Callable[[Hop, Outgoing], None] | None = None,
        env: simpy.Environment | None = None,
    ) -> None:
        if timing not in ("measured", "model"):
            raise ValueError("timing: must be 'measured' or 'model'")
        if timing == "model" and costs is None:
            raise ValueError("costs: a cost table is needed when timing is 'model'")
        self.world = world
        self.env = env or simpy.Environment()
        self.clock = SimClock(start)
        self.params = params or SimParams()
        self.timing = timing
        self.costs = costs
        self.faults = faults or FaultPlan()
        self.bin_seconds = bin_seconds
        self.horizon = horizon
        self.n_bins = int(horizon // bin_seconds) + 1
        self.shared_platform = shared_platform
        self.on_hop = on_hop
        self.world.now = start
        self.hops: list[Hop] = []
        self.samples: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.hop_wait: dict[str, LogHistogram] = defaultdict(LogHistogram)
        self.hop_total: dict[str, LogHistogram] = defaultdict(LogHistogram)
        self.e2e: dict[str, LogHistogram] = defaultdict(LogHistogram)
        self.tracks: list[Track] = []
        self.sent = 0
        self.delivered = 0
        self.retries = 0
        self.held = 0
        self.restamped = 0
        self.outbox_held = 0
        self.live = 0  # delivery processes started and not yet handled: in flight, never lost
        self._seq = 0
        self._stations: dict[str, _Station] = {}
        self._pools: dict[str, simpy.Resource] = {}
        self._window_closed: dict[str, list[tuple[float, float]]] = {}

    # -- time --------------------------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.clock.at(self.env.now)

    def _at(self) -> datetime:
        moment = self.clock.at(self.env.now)
        self.world.now = moment
        return moment

    # -- stations ----------------------------------------------------------------------------------------------

    def station(self, party: str) -> _Station:
        station = self._stations.get(party)
        if station is not None:
            return station
        kind = kind_of(party)
        pool = "platform" if self.shared_platform and kind == "intermediate_server" else party
        resource = self._pools.get(pool)
        if resource is None:
            resource = self._pools[pool] = simpy.Resource(self.env, capacity=self.params.capacity.get(kind, 1))
        window = self.params.windows.get(kind)
        closed: list[tuple[float, float]] = []
        if window is not None:
            if kind not in self._window_closed:
                self._window_closed[kind] = window.closed(self.clock, self.horizon * 2 + 30 * 86_400)
            closed = list(self._window_closed[kind])
        closed += [f.interval(self.clock) for f in self.faults.station_faults(party, kind)]
        station = _Station(
            party, kind, resource, Availability(closed), self.params.receiver_policy(kind), StationSeries(self.n_bins)
        )
        self._stations[party] = station
        return station

    def stations(self) -> dict[str, _Station]:
        return dict(self._stations)

    def _bin(self, t: float) -> int:
        return min(int(t // self.bin_seconds), self.n_bins - 1)

    # -- staff commands ----------------------------------------------------------------------------------------

    def step(self, party: str, action: Callable[[datetime], Result], *, command: str, label: str = "staff") -> Track:
        """Start staff command ``command`` (``enter_change``, ``query`` …) at ``party`` now, as a process; the
        returned track fills in as the flow runs."""
        track = Track(label, self.env.now, done=self.env.event())
        self.tracks.append(track)
        self.env.process(self._staff(party, action, command, track))
        return track

    def _staff(
        self, party: str, action: Callable[[datetime], Result], command: str, track: Track
    ) -> Generator[Any, Any, None]:
        track.pending += 1
        station = self.station(party)
        arrived = self.env.now
        station.series.arrivals[self._bin(arrived)] += 1
        with station.resource.request() as request:
            yield request
            opened = station.avail.next_up(self.env.now)
            if opened > self.env.now:
                yield self.env.timeout(opened - self.env.now)
            start = self.env.now
            station.series.starts[self._bin(start)] += 1
            now = self._at()
            started = time.thread_time()
            result = action(now)
            cpu = time.thread_time() - started
            message = f"staff.{command}"
            service = self._service(station.kind, message, cpu)
            yield self.env.timeout(service)
            station.busy += service
            station.served += 1
            station.series.busy[self._bin(start)] += service
            station.series.done[self._bin(self.env.now)] += 1
        track.result = result
        self.hop_wait[f"staff→{station.kind} {message}"].add(start - arrived)
        self.hop_total[f"staff→{station.kind} {message}"].add(self.env.now - arrived)
        if result.decisions or result.refusal is not None:
            component = result.decisions[0].component if result.decisions else result.refusal.component  # type: ignore[union-attr]
            self._seq += 1
            hop = Hop(
                self._seq,
                now,
                "staff",
                component,
                "terminal",
                "staff.command",
                "",
                None,
                False,
                None,
                [],
                0,
                result.decisions,
                result.refusal,
            )
            self.hops.append(hop)
            track.hops.append(hop)
        yield from self._release(station, result.outgoing, track)
        self._finish(track)

    # -- delivery ----------------------------------------------------------------------------------------------

    def _release(self, station: _Station, outgoing: list[Outgoing], track: Track) -> Generator[Any, Any, None]:
        # A component that crashed after committing keeps its outgoing messages in its outbox until it restarts.
        opened = station.avail.next_up(self.env.now)
        if outgoing and opened > self.env.now:
            self.outbox_held += len(outgoing)
            yield self.env.timeout(opened - self.env.now)
        for message in outgoing:
            track.pending += 1
            self.sent += 1
            self.live += 1
            self.env.process(self._deliver(message, track))

    def _deliver(self, outgoing: Outgoing, track: Track) -> Generator[Any, Any, None]:
        sent = self.env.now
        sender, recipient = outgoing.envelope.sender, outgoing.recipient
        station = self.station(recipient)
        station.series.arrivals[self._bin(sent)] += 1
        latency = self.params.latency.get(outgoing.network, 0.0)
        links = self.faults.link_faults(sender, recipient, kind_of(sender), station.kind, outgoing.network)
        for fault in links:
            a, b = fault.interval(self.clock)
            if fault.kind == "slow_link" and a <= sent < b:
                latency = latency * fault.latency_factor + fault.extra_latency
        yield self.env.timeout(latency)
        delay = self.params.retry_base
        while True:
            link_down = next(
                (
                    f.interval(self.clock)[1]
                    for f in links
                    if f.kind != "slow_link" and f.interval(self.clock)[0] <= self.env.now < f.interval(self.clock)[1]
                ),
                None,
            )
            closed = not station.avail.is_up(self.env.now)
            if link_down is None and not closed:
                break
            if closed and link_down is None and station.policy == "hold":
                self.held += 1
                yield self.env.timeout(station.avail.next_up(self.env.now) - self.env.now)
                continue
            self.retries += 1
            yield self.env.timeout(delay)
            delay = min(delay * self.params.retry_factor, self.params.retry_cap)
        arrived = self.env.now
        with station.resource.request() as request:
            yield request
            opened = station.avail.next_up(self.env.now)
            if opened > self.env.now:
                yield self.env.timeout(opened - self.env.now)
            start = self.env.now
            station.series.starts[self._bin(start)] += 1
            now = self._at()
            if (now - outgoing.envelope.issued_at).total_seconds() > self.params_max_age():
                outgoing = self._restamp(outgoing, now)
            receiver = self.world.component(recipient)
            started = time.thread_time()
            step = receiver.handle(outgoing.wire, Link(source=sender, network=outgoing.network), now)
            cpu = time.thread_time() - started
            service = self._service(station.kind, str(outgoing.envelope.type), cpu)
            yield self.env.timeout(service)
            station.busy += service
            station.served += 1
            station.series.busy[self._bin(start)] += service
            station.series.done[self._bin(self.env.now)] += 1
        self.delivered += 1
        self.live -= 1
        label = f"{kind_of(sender)}→{station.kind} {outgoing.envelope.type}"
        self.hop_wait[label].add(start - arrived)
        self.hop_total[label].add(self.env.now - sent)
        self._seq += 1
        hop = Hop(
            seq=self._seq,
            at=now,
            sender=sender,
            recipient=recipient,
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
        self.hops.append(hop)
        track.hops.append(hop)
        if self.on_hop is not None:
            self.on_hop(hop, outgoing)
        yield from self._release(station, step.outgoing, track)
        self._finish(track)

    def params_max_age(self) -> float:
        """Re-stamp a message older than half the receivers' freshness window (±5 minutes, F-23)."""
        return 150.0

    def _restamp(self, outgoing: Outgoing, now: datetime) -> Outgoing:
        sender = self.world.component(outgoing.envelope.sender)
        envelope = outgoing.envelope.model_copy(update={"issued_at": now, "nonce": secrets.token_hex(16)})
        self.restamped += 1
        return Outgoing(
            outgoing.recipient, sender.security.sign(envelope), envelope, outgoing.network, outgoing.sealed_for
        )

    def _service(self, kind: str, message_type: str, cpu: float) -> float:
        self.samples[(kind, message_type)].append(cpu)
        if self.timing == "measured":
            return cpu
        assert self.costs is not None
        return self.costs.cost(kind, message_type)

    def _finish(self, track: Track) -> None:
        track.pending -= 1
        if track.pending == 0:
            track.finished = self.env.now
            self.e2e[track.label].add(track.finished - track.started)
            if track.done is not None:
                track.done.succeed(track)

    # -- running -----------------------------------------------------------------------------------------------

    def run(self, until: float | None = None) -> None:
        """Advance virtual time (to ``until`` seconds, or until nothing is left to do)."""
        self.env.run(until=until)

    @property
    def in_flight(self) -> int:
        return self.live

    @property
    def lost_messages(self) -> int:
        """Messages sent that were neither handled nor still on their way: must be 0."""
        return self.sent - self.delivered - self.live
