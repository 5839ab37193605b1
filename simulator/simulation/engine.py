"""Cost-model engine: the flows' hop trees carried through stations in SimPy virtual time, one event per hop.

Each station (a component, or a shared pool such as the 中間サーバー・プラットフォーム) has ``capacity`` workers and
serves FIFO in send order. When a hop is sent, its start is computed from the workers' free times (the
Kiefer–Wolfowitz recursion), the station's closed intervals (operating windows, outages, crashes) and the
sender's policy (retry with backoff, or hold and forward); one SimPy event fires at its completion and sends the
children. Nothing here runs a component: a hop costs its measured CPU time from the cost table, and the engine
counts every message and 情報提供等記録 it carries so the run can prove none was lost. It must never drop a hop.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from heapq import heappush, heapreplace
from typing import Any

import simpy
from simpy.events import NORMAL, Event

from simulator.simulation.calendar import Availability, SimClock
from simulator.simulation.costmodel import CostTable
from simulator.simulation.faults import Fault, FaultPlan
from simulator.simulation.flows import FLOWS, Step
from simulator.simulation.metrics import (
    BINS_PER_DECADE,
    MIN_EXPONENT,
    N_BINS,
    LogHistogram,
    StationSeries,
)
from simulator.simulation.params import SimParams

__all__ = ["Arrival", "CostModelEngine", "Municipality", "Station"]

ROLE_KIND = {
    "registry": "registry", "cs": "municipal_cs", "pref": "prefectural_server", "national": "national_server",
    "atena": "atena", "business": "business", "ms": "intermediate_server", "ms_p": "intermediate_server",
    "nws": "nws", "cms": "card_management",
}
ROLES = tuple(ROLE_KIND)
_ROLE_INDEX = {r: i for i, r in enumerate(ROLES)}
_LOG_SCALE = BINS_PER_DECADE / math.log(10)
_LOG_SHIFT = -MIN_EXPONENT * BINS_PER_DECADE + 1
_new_due = object.__new__
log = math.log


@dataclass(frozen=True)
class Municipality:
    key: str
    name: str
    population: int
    prefecture: str


@dataclass(slots=True)
class Arrival:
    """One flow start: ``count`` messages of the flow travel together as one unit (``rows`` for batch jobs)."""

    at: float
    flow: str
    municipality: int
    count: int = 1
    rows: int = 0
    provider: int = -1


class Station:
    __slots__ = ("avail", "busy", "capacity", "closes", "crashes", "free", "hi", "kind", "lo", "name", "policy",
                 "series")

    def __init__(self, name: str, kind: str, capacity: int, avail: Availability, policy: str,
                 series: StationSeries, crashes: list[tuple[float, float]]) -> None:
        self.name = name
        self.kind = kind
        self.capacity = capacity
        self.free = [0.0] * capacity
        self.avail = avail
        self.policy = policy
        self.series = series
        self.busy = 0.0
        self.crashes = crashes
        self.closes = bool(avail)  # a plain flag: the hot path must not call Availability.__bool__
        self.lo = 0.0  # the open interval [lo, hi) that held the last start: most starts fall in it again
        self.hi = 0.0 if self.closes else math.inf

    def fit(self, start: float, service: float) -> float:
        """Earliest start ≥ ``start`` whose service touches no closed interval; refreshes the cached interval."""
        fitted = self.avail.fit(start, service)
        starts, ends = self.avail.starts, self.avail.ends
        i = bisect_right(ends, fitted)
        self.lo = ends[i - 1] if i > 0 else -math.inf
        self.hi = starts[i] if i < len(starts) else math.inf
        return fitted


class _Node:
    __slots__ = ("children", "cost", "delay", "hop", "label", "last_bin", "last_total", "latency", "link_faults",
                 "message", "milestone", "per_row", "record", "role", "sender", "total", "wait")

    def __init__(self, step: Step, cost: float, latency: float, hop: int, link_faults: list[Fault],
                 children: tuple[_Node, ...], stats: HopStats) -> None:
        self.role = _ROLE_INDEX[step.role]
        self.sender = step.sender
        self.message = step.message
        self.cost = cost
        self.latency = latency
        self.hop = hop
        self.label = f"{step.sender or 'staff'}→{step.role} {step.message}"
        self.link_faults = link_faults
        self.children = children
        self.record = step.record
        self.delay = step.delay
        self.milestone = step.milestone
        self.per_row = step.per_row
        self.last_total = -1.0
        self.last_bin = 0
        self.wait = stats.wait  # the hop's histograms, shared with hop_stats
        self.total = stats.total


class _Flow:
    __slots__ = ("count", "flow", "pending", "rows", "stations", "t0")

    def __init__(self, flow: int, stations: list[Station], t0: float, count: int, rows: int) -> None:
        self.flow = flow
        self.stations = stations
        self.t0 = t0
        self.count = count
        self.rows = rows
        self.pending = 1


class _Due:
    """A scheduled hop, duck-typed as a ``simpy.Event`` (``env.step`` reads only ``callbacks``, ``_ok`` and
    ``_value``): slots and one payload tuple keep the one-event-per-hop loop lean."""

    __slots__ = ("_ok", "_value", "callbacks", "kind")
    callbacks: list[Callable[[Any], None]]
    _ok: bool
    _value: tuple[Any, Any, float]
    kind: int


@dataclass
class HopStats:
    wait: LogHistogram = field(default_factory=LogHistogram)
    total: LogHistogram = field(default_factory=LogHistogram)


class CostModelEngine:
    """Carries flows through stations. Build it, ``schedule`` arrivals (or give a day-by-day ``feeder``), ``run``."""

    def __init__(
        self,
        *,
        start: datetime,
        horizon: float,
        municipalities: Sequence[Municipality],
        costs: CostTable,
        params: SimParams,
        faults: FaultPlan | None = None,
        bin_seconds: float = 900.0,
        tracked: Iterable[str] = (),
        shared_platform: bool = True,
        drain_limit: float = 14 * 86_400.0,
        flows: dict[str, Step] | None = None,
        role_kinds: dict[str, str] | None = None,
    ) -> None:
        self.env = simpy.Environment()
        self.clock = SimClock(start)
        self.horizon = horizon
        self.params = params
        self.costs = costs
        self.faults = faults or FaultPlan()
        self.bin_seconds = bin_seconds
        self.drain_limit = drain_limit
        self.end = horizon + drain_limit
        self.n_bins = math.ceil(self.end / bin_seconds) + 1
        self.municipalities = list(municipalities)
        self.shared_platform = shared_platform
        self.role_kind = {**ROLE_KIND, **(role_kinds or {})}
        self.tracked = set(tracked)
        self.stations: dict[str, Station] = {}
        self.series: dict[str, StationSeries] = {}
        self._window_avail: dict[str, Availability] = {}
        self.flow_names = list((flows or FLOWS).keys())
        self._flow_index = {n: i for i, n in enumerate(self.flow_names)}
        self._hop_labels: list[str] = []
        self.hop_stats: list[HopStats] = []
        self._roots = [self._compile(step) for step in (flows or FLOWS).values()]
        self.e2e = [LogHistogram() for _ in self.flow_names]
        self.milestones: dict[tuple[str, str], LogHistogram] = defaultdict(LogHistogram)
        self.started = [0] * len(self.flow_names)
        self.completed = [0] * len(self.flow_names)
        self.completed_by_day: list[list[int]] = [[0] * (int(self.end // 86_400) + 2) for _ in self.flow_names]
        self.last_completion = 0.0
        self.records: dict[str, int] = defaultdict(int)
        self.sent = 0
        self.delivered = 0
        self.retries = 0
        self.held = 0
        self.reexecuted = 0
        self.events = 0
        self._office = params.office.closed(self.clock, self.end)
        self._office_avail = Availability(self._office)
        self._binding_cache: dict[tuple[int, int], list[Station]] = {}
        self._platform_cache: Station | None = None
        self.feeder: Callable[[date], Iterable[Arrival]] | None = None
        self.progress: Callable[[float], None] | None = None
        self._queue = self.env._queue
        self._eid = self.env._eid
        self._inv_bin = 1.0 / bin_seconds
        self._arrivals: list[Arrival] = []  # today's arrivals not yet released, latest first
        self._handlers = (self._on_complete, self._on_arrive, self._on_send, self._on_start)
        self._on_complete_bound = self._on_complete

    # -- building ------------------------------------------------------------------------------------------------

    def _compile(self, step: Step) -> _Node:
        children = tuple(self._compile(c) for c in step.children)
        kind = self.role_kind[step.role]
        cost = self.costs.cost(kind, step.message)
        latency = 0.0 if step.sender is None else self.params.latency.get(step.network, 0.0)
        sender_kind = self.role_kind[step.sender] if step.sender else "staff"
        link_faults = [] if step.sender is None else self.faults.link_faults(
            "", "", sender_kind, kind, step.network)
        hop = len(self._hop_labels)
        self._hop_labels.append(f"{sender_kind}→{kind} {step.message}")
        stats = HopStats()
        self.hop_stats.append(stats)
        return _Node(step, cost, latency, hop, link_faults, children, stats)

    def station(self, name: str, kind: str) -> Station:
        station = self.stations.get(name)
        if station is not None:
            return station
        window = self.params.windows.get(kind)
        if window is not None:
            avail = self._window_avail.get(kind)
            if avail is None:
                avail = self._window_avail[kind] = Availability(window.closed(self.clock, self.end))
        else:
            avail = Availability()
        crashes: list[tuple[float, float]] = []
        faults = self.faults.station_faults(name, kind)
        if faults:
            intervals = [f.interval(self.clock) for f in faults]
            avail = avail.union(intervals)
            crashes = [f.interval(self.clock) for f in faults if f.kind == "crash"]
        track = name in self.tracked or bool(faults) or kind in ("nws", "national_server", "card_management") \
            or name == "platform.intermediate_server"
        if track:
            series = self.series[name] = StationSeries(self.n_bins)
        else:
            key = f"{kind}.*"
            series = self.series.get(key) or self.series.setdefault(key, StationSeries(self.n_bins))
        capacity = self.params.capacity.get(kind, 1)
        station = Station(name, kind, capacity, avail, self.params.receiver_policy(kind), series, crashes)
        self.stations[name] = station
        return station

    def binding(self, municipality: int, provider: int = -1) -> list[Station]:
        """Stations for each role of a flow started by ``municipality`` (``provider``: whose 中間サーバー answers)."""
        key = (municipality, -1 if self.shared_platform else provider)
        cached = self._binding_cache.get(key)
        if cached is not None:
            return cached
        m = self.municipalities[municipality]
        if self.shared_platform:
            if self._platform_cache is None:
                self._platform_cache = self.station("platform.intermediate_server", "intermediate_server")
            ms = ms_p = self._platform_cache
        else:
            ms = self.station(f"platform.intermediate_server.{m.key}", "intermediate_server")
            p = self.municipalities[provider].key if provider >= 0 else "other"
            ms_p = self.station(f"platform.intermediate_server.{p}", "intermediate_server")
        k = self.role_kind
        binding = self._binding_cache[key] = [
            self.station(f"{m.key}.registry", k["registry"]),
            self.station(f"{m.key}.municipal_cs", k["cs"]),
            self.station(f"jlis.prefectural_server.{m.prefecture}", k["pref"]),
            self.station("jlis.national_server", k["national"]),
            self.station(f"{m.key}.atena", k["atena"]),
            self.station(f"{m.key}.business", k["business"]),
            ms,
            ms_p,
            self.station("nws.core", k["nws"]),
            self.station("jlis.card_management", k["cms"]),
        ]
        return binding

    # -- scheduling ----------------------------------------------------------------------------------------------

    def _event(self, at: float, kind: int, node: _Node | None, flow: Any, sent: float) -> None:
        ev = _new_due(_Due)
        ev.callbacks = [self._handlers[kind]]
        ev._ok = True
        ev._value = (node, flow, sent)
        ev.kind = kind
        heappush(self._queue, (at, NORMAL, next(self._eid), ev))  # type: ignore[misc]

    def schedule(self, arrival: Arrival) -> None:
        self._event(arrival.at, 3, None, arrival, arrival.at)

    def _on_complete(self, ev: _Due) -> None:
        node, flow, _ = ev._value
        self._complete(node, flow)

    def _on_arrive(self, ev: _Due) -> None:
        node, flow, sent = ev._value
        self._assign(node, flow, sent, self.env._now)

    def _on_send(self, ev: _Due) -> None:
        node, flow, _ = ev._value
        self._send(node, flow, self.env._now)

    def _on_start(self, ev: _Due) -> None:
        self._start(ev._value[1])
        # Arrivals of the day are released one at a time, so the event heap holds only what is in flight.
        queue = self._arrivals
        if queue:
            nxt = queue.pop()
            self._event(max(nxt.at, self.env._now), 3, None, nxt, nxt.at)

    def _start(self, arrival: Arrival) -> None:
        binding = self.binding(arrival.municipality, arrival.provider)
        index = self._flow_index[arrival.flow]
        flow = _Flow(index, binding, self.env._now, arrival.count, arrival.rows)
        self.started[index] += arrival.count
        self._send(self._roots[index], flow, self.env._now)

    def _send(self, node: _Node, flow: _Flow, now: float) -> None:
        """Send one hop at ``now``. The common case (no fault on the way, receiver open) is written out in full
        here, once per hop of every flow: it is the engine's inner loop."""
        st = flow.stations[node.role]
        k = flow.count
        self.sent += k
        arrive = now + node.latency
        st.series.arrivals[int(now * self._inv_bin)] += k
        if node.link_faults or (st.closes and not (st.lo <= arrive < st.hi) and not st.avail.is_up(arrive)):
            delayed = False
            if node.link_faults:
                arrive, delayed = self._through_link(node, now)
            if st.closes and not st.avail.is_up(arrive):
                arrive = self._policy_arrival(st, arrive, k)
                delayed = True
            if delayed:
                self._event(arrive, 1, node, flow, now)
                return
            self._assign(node, flow, now, arrive)
            return
        # -- inline _assign (keep the two in step) --
        service = node.cost * (flow.rows if node.per_row else k)
        free = st.free
        start = free[0]
        if arrive > start:
            start = arrive
        if st.closes and not (st.lo <= start and start + service <= st.hi):
            start = self._fit(st, start, service, k)
        end = start + service
        if st.capacity == 1:
            free[0] = end
        else:
            heapreplace(free, end)
        st.busy += service
        series = st.series
        b = int(start * self._inv_bin)
        series.starts[b] += k
        series.busy[b] += service
        waited = start - now
        total = waited + (service * (k + 1) / (2 * k) if k > 1 and not node.per_row else service)
        hist = node.wait
        if waited > 1e-6:
            i = int(log(waited) * _LOG_SCALE + _LOG_SHIFT)
            hist.counts[i if i < N_BINS else N_BINS - 1] += k
            hist.total += waited * k
            if waited > hist.maximum:
                hist.maximum = waited
        else:
            hist.counts[0] += k
        hist.n += k
        hist = node.total
        if total == node.last_total:
            hist.counts[node.last_bin] += k
        elif total > 1e-6:
            i = int(log(total) * _LOG_SCALE + _LOG_SHIFT)
            if i >= N_BINS:
                i = N_BINS - 1
            hist.counts[i] += k
            node.last_total, node.last_bin = total, i
        else:
            hist.counts[0] += k
        hist.n += k
        hist.total += total * k
        if total > hist.maximum:
            hist.maximum = total
        ev = _new_due(_Due)
        ev.callbacks = [self._on_complete_bound]
        ev._ok = True
        ev._value = (node, flow, now)
        ev.kind = 0
        heappush(self._queue, (end, NORMAL, next(self._eid), ev))  # type: ignore[misc]

    def _through_link(self, node: _Node, now: float) -> tuple[float, bool]:
        latency = node.latency
        delayed = False
        for fault in node.link_faults:
            a, b = fault.interval(self.clock)
            if fault.kind == "slow_link" and a <= now < b:
                latency = latency * fault.latency_factor + fault.extra_latency
        arrive = now + latency
        for fault in node.link_faults:
            a, b = fault.interval(self.clock)
            if fault.kind != "slow_link" and a <= arrive < b:
                arrive = self._retry_until(arrive, b)
                delayed = True
        return arrive, delayed

    def _policy_arrival(self, st: Station, arrive: float, k: int) -> float:
        up = st.avail.next_up(arrive)
        if st.policy == "hold":
            self.held += k
            return up
        return self._retry_until(arrive, up, st.avail)

    def _retry_until(self, attempt: float, up: float, avail: Availability | None = None) -> float:
        """The first retry attempt at or after ``up`` (exponential backoff from the first refused attempt)."""
        delay = self.params.retry_base
        t = attempt
        while True:
            while t < up:
                t += delay
                delay = min(delay * self.params.retry_factor, self.params.retry_cap)
                self.retries += 1
            if avail is None or avail.is_up(t):
                return t
            up = avail.next_up(t)

    def _fit(self, st: Station, start: float, service: float, k: int) -> float:
        fitted = st.fit(start, service)
        if fitted != start and st.crashes:
            for a, b in st.crashes:
                if start < a < start + service or a <= start < b:
                    self.reexecuted += k
                    break
        return fitted

    def _assign(self, node: _Node, flow: _Flow, sent: float, arrive: float) -> None:
        """Take a worker for a hop that arrives at ``arrive`` (after a retry, a hold or a slow link)."""
        st = flow.stations[node.role]
        k = flow.count
        service = node.cost * (flow.rows if node.per_row else k)
        free = st.free
        start = free[0]
        if arrive > start:
            start = arrive
        if st.closes and not (st.lo <= start and start + service <= st.hi):
            start = self._fit(st, start, service, k)
        end = start + service
        if st.capacity == 1:
            free[0] = end
        else:
            heapreplace(free, end)
        st.busy += service
        series = st.series
        b = int(start * self._inv_bin)
        series.starts[b] += k
        series.busy[b] += service
        waited = start - sent
        total = waited + (service * (k + 1) / (2 * k) if k > 1 and not node.per_row else service)
        node.wait.add(waited, k)
        node.total.add(total, k)
        self._event(end, 0, node, flow, sent)

    def _complete(self, node: _Node, flow: _Flow) -> None:
        now = self.env._now
        k = flow.count
        self.delivered += k
        if node.record is not None:
            self.records[node.record] += k
        if node.milestone is not None:
            self.milestones[(self.flow_names[flow.flow], node.milestone)].add(now - flow.t0, k)
        children = node.children
        if children:
            flow.pending += len(children) - 1
            for child in children:
                if child.delay is not None:
                    self._event(self._human_delay(child.delay, now), 2, child, flow, now)
                else:
                    self._send(child, flow, now)
        else:
            flow.pending -= 1
            if flow.pending == 0:
                self.completed[flow.flow] += k
                self.completed_by_day[flow.flow][int(now // 86_400)] += k
                self.e2e[flow.flow].add(now - flow.t0, k)
                self.last_completion = now

    def _human_delay(self, kind: str, now: float) -> float:
        wait = self.params.confirm_delay if kind == "confirm" else self.params.review_delay
        return self._office_avail.next_up(now + wait)

    # -- running -------------------------------------------------------------------------------------------------

    def _feed_day(self, ev: Event) -> None:
        day: date = ev.value  # type: ignore[assignment]
        if self.feeder is not None:
            now = self.env._now
            fresh = sorted((a for a in self.feeder(day) if now <= a.at < self.horizon), key=lambda a: a.at,
                           reverse=True)
            if fresh:
                # One chain per feed: each arrival, when it starts, releases the next (latest first in the list).
                pending = self._arrivals
                self._arrivals = sorted([*pending, *fresh], key=lambda a: a.at, reverse=True) if pending else fresh
                first = self._arrivals.pop()
                self._event(max(first.at, now), 3, None, first, first.at)
        if self.progress is not None:
            self.progress(min(self.env._now / self.horizon, 1.0) if self.horizon else 1.0)

    def run(self) -> None:
        for day in self.clock.days(self.horizon):
            at = max(self.clock.midnight(day), 0.0)
            ev = Event(self.env)
            ev._ok = True
            ev._value = day
            ev.callbacks.append(self._feed_day)
            self.env.schedule(ev, NORMAL, at)
        self.env.run(until=self.end)
        # Every event went through SimPy's queue: ids handed out, less what is still queued (and the stop event).
        self.events = next(self._eid) - 1 - len(self._queue)

    # -- results -------------------------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self.sent - self.delivered

    def hop_labels(self) -> list[str]:
        return list(self._hop_labels)

    def pending_hops(self) -> int:
        """Messages with an event still scheduled (in service, queued for a start, or waiting for a retry)."""
        pending = 0
        for _, _, _, event in self.env._queue:
            if isinstance(event, _Due) and event.kind in (0, 1):
                pending += event._value[1].count
        return pending

    def station_utilisation(self) -> dict[str, dict[str, Any]]:
        horizon = max(self.horizon, self.last_completion, 1e-9)
        out: dict[str, dict[str, Any]] = {}
        by_kind: dict[str, list[Station]] = defaultdict(list)
        for st in self.stations.values():
            by_kind[st.kind].append(st)
        for kind, stations in sorted(by_kind.items()):
            busy = sum(s.busy for s in stations)
            capacity = sum(s.capacity for s in stations)
            top = max(stations, key=lambda s: s.busy)
            out[kind] = {
                "stations": len(stations),
                "workers": capacity,
                "busy_s": busy,
                "served": sum(sum(series.starts) for series in {id(s.series): s.series for s in stations}.values()),
                "utilisation": busy / (capacity * horizon),
                "busiest": top.name,
                "busiest_utilisation": top.busy / (top.capacity * horizon),
            }
        return out


def _add(hist: LogHistogram, x: float, k: int) -> None:
    if x <= 1e-6:
        i = 0
    else:
        i = int(math.log(x) * _LOG_SCALE + _LOG_SHIFT)
        if i >= N_BINS:
            i = N_BINS - 1
    hist.counts[i] += k
    hist.n += k
    hist.total += x * k
    if x > hist.maximum:
        hist.maximum = x
