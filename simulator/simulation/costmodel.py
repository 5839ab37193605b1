"""Service-time cost model: CPU seconds per (component kind, message type), calibrated from real runs.

A cost table is measured, never invented: ``calibrate`` runs a small world of real components (signatures,
encryption, SQLite) under the SimPy driver, times every ``handle`` and staff command with the thread's CPU
clock, and keeps the mean per kind and message type. The table travels as JSON with where and when it was
measured. This module must never guess a cost it has no measurement for: a missing key is an error, unless
the table names a measured fallback for that kind.
"""

from __future__ import annotations

import json
import platform
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.errors import InputError

__all__ = ["DEFAULT_COSTS_PATH", "CostTable", "kind_of"]

DEFAULT_COSTS_PATH = Path(__file__).with_name("default_costs.json")

#: Kinds a party id maps to (component kinds; ``business`` covers 税務 and 介護保険 systems).
KINDS = (
    "registry", "municipal_cs", "prefectural_server", "national_server", "atena", "business",
    "intermediate_server", "nws", "portal", "card_management",
)


def kind_of(party: str) -> str:
    """The component kind of a party id (``kuwana.municipal_cs`` → ``municipal_cs``)."""
    if party.startswith("platform.intermediate_server."):
        return "intermediate_server"
    if party.startswith("jlis.prefectural_server."):
        return "prefectural_server"
    if party == "jlis.national_server":
        return "national_server"
    if party.startswith("jlis.card_management"):
        return "card_management"
    if party.startswith("nws."):
        return "nws"
    if party == "portal":
        return "portal"
    suffix = party.rsplit(".", 1)[-1]
    if suffix in ("tax", "ltc"):
        return "business"
    return suffix


@dataclass
class CostTable:
    """Mean CPU seconds per (kind, message type); ``samples`` says how many measurements each mean rests on."""

    costs: dict[tuple[str, str], float]
    samples: dict[tuple[str, str], int] = field(default_factory=dict)
    fallback: dict[str, float] = field(default_factory=dict)  # per kind: mean over its measured types
    source: dict[str, Any] = field(default_factory=dict)

    def cost(self, kind: str, message_type: str) -> float:
        try:
            return self.costs[(kind, message_type)]
        except KeyError:
            pass
        if kind in self.fallback:
            return self.fallback[kind]
        raise KeyError(f"cost: no measured service time for {kind} / {message_type}")

    @classmethod
    def from_samples(cls, measured: Mapping[tuple[str, str], Iterable[float]], source: Mapping[str, Any]) -> CostTable:
        costs: dict[tuple[str, str], float] = {}
        samples: dict[tuple[str, str], int] = {}
        per_kind: dict[str, list[float]] = defaultdict(list)
        for key, values in sorted(measured.items()):
            values = list(values)
            if not values:
                continue
            # The median resists the odd stall of a shared machine; the table records how many samples it used.
            costs[key] = statistics.median(values)
            samples[key] = len(values)
            per_kind[key[0]].append(costs[key])
        fallback = {k: statistics.median(v) for k, v in per_kind.items()}
        return cls(costs, samples, fallback, dict(source))

    def with_overrides(self, overrides: Mapping[str, float]) -> CostTable:
        """A copy with ``kind/message_type`` keys replaced (for what-if runs and hand-computed tests)."""
        costs = dict(self.costs)
        for key, value in overrides.items():
            kind, _, message_type = key.partition("/")
            if not message_type:
                raise InputError("costs", f"override keys are KIND/MESSAGE_TYPE (got {key!r})")
            costs[(kind, message_type)] = float(value)
        return CostTable(costs, dict(self.samples), dict(self.fallback), {**self.source, "overrides": dict(overrides)})

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "costs": {f"{k}/{t}": v for (k, t), v in sorted(self.costs.items())},
            "samples": {f"{k}/{t}": n for (k, t), n in sorted(self.samples.items())},
            "fallback": dict(sorted(self.fallback.items())),
        }

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.as_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "costs") -> CostTable:
        raw = data.get("costs")
        if not isinstance(raw, Mapping) or not raw:
            raise InputError(f"{where}.costs", "must be a non-empty mapping of KIND/MESSAGE_TYPE to seconds")
        costs: dict[tuple[str, str], float] = {}
        for key, value in raw.items():
            kind, _, message_type = str(key).partition("/")
            if not message_type or isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InputError(f"{where}.costs.{key}", "must be KIND/MESSAGE_TYPE: seconds ≥ 0")
            costs[(kind, message_type)] = float(value)
        samples: dict[tuple[str, str], int] = {}
        for key, value in (data.get("samples") or {}).items():
            kind, _, message_type = str(key).partition("/")
            samples[(kind, message_type)] = int(value)
        fallback = {str(k): float(v) for k, v in (data.get("fallback") or {}).items()}
        source = dict(data.get("source") or {})
        return cls(costs, samples, fallback, source)

    @classmethod
    def load(cls, path: Path) -> CostTable:
        path = Path(path)
        if not path.is_file():
            raise InputError("--costs", f"{path} does not exist or is not a file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise InputError("--costs", f"{path} is not valid JSON: {error}") from None
        if not isinstance(data, Mapping):
            raise InputError("--costs", f"{path} must hold a JSON object")
        return cls.from_dict(data, str(path))

    @classmethod
    def default(cls) -> CostTable:
        """The table measured when this version was built (see its ``source``); ``calibrate`` makes a fresh one."""
        return cls.load(DEFAULT_COSTS_PATH)


def measurement_source(**extra: Any) -> dict[str, Any]:
    return {
        "method": "median CPU time (time.thread_time) of real Component.handle and staff commands under the SimPy "
                  "driver",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.system()} python {platform.python_version()}",
        **extra,
    }
