"""Fault scenarios for the SimPy drivers: outage windows, slow links, crash and restart, read from YAML or JSON.

A fault names what it hits (a component, a kind of component, a link between two kinds, or a whole network),
when, and for how long. The drivers turn faults into closed intervals and extra latency; senders then retry with
backoff or a gateway holds and forwards, as the documents describe. This module must never drop a message or
decide what a component does: it only says when a station or a link is unavailable or slow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from simulator.errors import InputError
from simulator.simulation.calendar import JST, SimClock, parse_duration

__all__ = ["Fault", "FaultPlan", "load_faults"]

KINDS = ("outage", "slow_link", "crash")


@dataclass(frozen=True)
class Fault:
    """One fault. ``target``: a party (``nws.core``), a kind (``kind:municipal_cs``), a party prefix ending in
    ``*`` (``sapporo.*``), a link (``link:registry->municipal_cs``, kinds or parties), or ``network:jukinet``."""

    kind: str
    target: str
    start: datetime
    duration: float  # seconds; for a crash, the time until the restart completes
    extra_latency: float = 0.0  # slow_link: seconds added to each delivery
    latency_factor: float = 1.0  # slow_link: multiplier on the link's latency
    label: str = ""

    @property
    def is_link(self) -> bool:
        return self.target.startswith(("link:", "network:"))

    def interval(self, clock: SimClock) -> tuple[float, float]:
        begin = clock.seconds(self.start)
        return begin, begin + self.duration

    def matches_party(self, party: str, kind: str) -> bool:
        target = self.target
        if target.startswith("kind:"):
            return kind == target[5:]
        if target.endswith("*"):
            return party.startswith(target[:-1])
        return party == target or (target == "platform" and kind == "intermediate_server")

    def matches_link(self, sender: str, recipient: str, sender_kind: str, recipient_kind: str, network: str) -> bool:
        if self.target.startswith("network:"):
            return network == self.target[8:]
        if not self.target.startswith("link:"):
            return False
        try:
            a, b = self.target[5:].split("->")
        except ValueError:
            return False
        return a in (sender, sender_kind) and b in (recipient, recipient_kind)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "start": self.start.isoformat(),
            "duration_s": self.duration,
            "extra_latency_s": self.extra_latency,
            "latency_factor": self.latency_factor,
            "label": self.label or f"{self.kind} {self.target}",
        }


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def station_faults(self, party: str, kind: str) -> list[Fault]:
        return [f for f in self.faults if f.kind in ("outage", "crash") and not f.is_link
                and f.matches_party(party, kind)]

    def link_faults(self, sender: str, recipient: str, sender_kind: str, recipient_kind: str,
                    network: str) -> list[Fault]:
        return [f for f in self.faults if f.is_link
                and f.matches_link(sender, recipient, sender_kind, recipient_kind, network)]


def _fault(raw: Mapping[str, Any], index: int, default_start: datetime | None) -> Fault:
    where = f"faults[{index}]"
    if not isinstance(raw, Mapping):
        raise InputError(where, "must be a mapping with kind, target, start and duration")
    allowed = {"kind", "target", "start", "at", "duration", "restart_after", "extra_latency", "latency_factor",
               "label"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise InputError(f"{where}.{unknown[0]}", f"unknown key; allowed: {', '.join(sorted(allowed))}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise InputError(f"{where}.kind", f"must be one of {', '.join(KINDS)} (got {kind!r})")
    target = raw.get("target")
    if not isinstance(target, str) or not target.strip():
        raise InputError(f"{where}.target", "must name a component, kind:KIND, link:A->B or network:NAME")
    if kind == "slow_link" and not target.startswith(("link:", "network:")):
        raise InputError(f"{where}.target", "a slow_link needs link:A->B or network:NAME")
    when = raw.get("start", raw.get("at"))
    if when is None:
        if default_start is None:
            raise InputError(f"{where}.start", "is required (ISO date-time, JST if no offset)")
        start = default_start
    else:
        start = _moment(when, f"{where}.start")
    length_key = "restart_after" if kind == "crash" and "restart_after" in raw else "duration"
    if length_key not in raw:
        raise InputError(f"{where}.{length_key}", "is required (e.g. 2h, 15m)")
    duration = parse_duration(raw[length_key], f"{where}.{length_key}")
    if duration <= 0:
        raise InputError(f"{where}.{length_key}", "must be positive")
    extra = parse_duration(raw.get("extra_latency", 0), f"{where}.extra_latency")
    factor = raw.get("latency_factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, int | float) or factor < 1:
        raise InputError(f"{where}.latency_factor", "must be a number ≥ 1")
    if kind == "slow_link" and extra == 0 and factor == 1:
        raise InputError(f"{where}.extra_latency", "a slow_link needs extra_latency or latency_factor")
    label = raw.get("label", "")
    if not isinstance(label, str):
        raise InputError(f"{where}.label", "must be text")
    return Fault(kind, target.strip(), start, duration, extra, float(factor), label)


def _moment(value: object, field: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InputError(field, f"must be an ISO date-time such as 2024-04-01T10:00 (got {value!r})") from None
    else:
        raise InputError(field, "must be an ISO date-time such as 2024-04-01T10:00")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=JST)


def parse_faults(data: object, default_start: datetime | None = None) -> FaultPlan:
    """Faults from parsed YAML/JSON: either a list, or a mapping with a ``faults`` list."""
    items: object = data.get("faults", []) if isinstance(data, Mapping) else data
    if items is None:
        items = []
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise InputError("faults", "must be a list of faults")
    return FaultPlan([_fault(raw, i, default_start) for i, raw in enumerate(items)])


def load_faults(path: Path) -> FaultPlan:
    path = Path(path)
    if not path.is_file():
        raise InputError("--faults", f"{path} does not exist or is not a file")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise InputError("--faults", f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {error}") from None
    return parse_faults(data)
