"""What a simulation run measures: latency histograms, queue and utilisation series, backlog and recovery per fault.

Latencies go into log-binned histograms (40 bins per decade from 1 µs, exact count, sum and maximum), so a year of
national traffic fits in memory and percentiles are within a few per cent. Queue lengths are kept per time bin
as arrivals and service starts, so the backlog at every bin edge is exact. This module must never look at a
message: it only counts what the drivers tell it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BINS_PER_DECADE", "LogHistogram", "StationSeries", "recovery_after"]

BINS_PER_DECADE = 40
MIN_EXPONENT = -6  # 1 µs
N_BINS = BINS_PER_DECADE * 14  # up to 1e8 s


def bin_index(x: float) -> int:
    if x <= 1e-6:
        return 0
    i = int((math.log10(x) - MIN_EXPONENT) * BINS_PER_DECADE) + 1
    return i if i < N_BINS else N_BINS - 1


class LogHistogram:
    """Counts per log bin, plus exact n, sum and max (weights allowed: a unit of k messages counts k)."""

    __slots__ = ("counts", "maximum", "n", "total")

    def __init__(self) -> None:
        self.counts = [0] * N_BINS
        self.n = 0
        self.total = 0.0
        self.maximum = 0.0

    def add(self, x: float, weight: int = 1) -> None:
        self.counts[bin_index(x)] += weight
        self.n += weight
        self.total += x * weight
        if x > self.maximum:
            self.maximum = x

    def merge(self, other: LogHistogram) -> None:
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.n += other.n
        self.total += other.total
        self.maximum = max(self.maximum, other.maximum)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    def percentile(self, q: float) -> float:
        """The q-th percentile (0–100): the geometric middle of the bin that holds it (exact 0 for bin 0)."""
        if not self.n:
            return 0.0
        target = q / 100.0 * self.n
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if c and seen >= target:
                if i == 0:
                    return 0.0
                lower = 10 ** (MIN_EXPONENT + (i - 1) / BINS_PER_DECADE)
                upper = 10 ** (MIN_EXPONENT + i / BINS_PER_DECADE)
                return min(math.sqrt(lower * upper), self.maximum)
        return self.maximum

    def summary(self) -> dict[str, float]:
        return {
            "n": self.n,
            "mean_s": self.mean,
            "p50_s": self.percentile(50),
            "p90_s": self.percentile(90),
            "p95_s": self.percentile(95),
            "p99_s": self.percentile(99),
            "max_s": self.maximum,
        }


@dataclass
class StationSeries:
    """Per time bin: messages that started waiting (sent to it, including those held for retry), that started
    service, busy seconds, and completions. Backlog at the end of bin i = Σ arrivals − Σ starts up to i."""

    bins: int
    arrivals: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    done: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.arrivals:
            self.arrivals = [0] * self.bins
            self.starts = [0] * self.bins
            self.busy = [0.0] * self.bins
            self.done = [0] * self.bins

    def backlog(self) -> list[int]:
        out, level = [], 0
        for a, s in zip(self.arrivals, self.starts, strict=True):
            level += a - s
            out.append(level)
        return out

    def merge(self, other: StationSeries) -> None:
        for i in range(self.bins):
            self.arrivals[i] += other.arrivals[i]
            self.starts[i] += other.starts[i]
            self.busy[i] += other.busy[i]
            self.done[i] += other.done[i]


def recovery_after(backlog: Sequence[int], bin_seconds: float, fault_start: float, fault_end: float,
                   baseline_window: float = 3600.0) -> dict[str, Any]:
    """Backlog and recovery of one station around one fault.

    Baseline: the largest backlog in the hour before the fault (what normal load leaves queued). Recovered: the
    first bin edge at or after the fault's end where the backlog is back at or below that baseline.
    """
    def at(t: float) -> int:
        i = min(max(int(t // bin_seconds), 0), len(backlog) - 1)
        return backlog[i]

    first = max(int((fault_start - baseline_window) // bin_seconds), 0)
    last = max(int(fault_start // bin_seconds) - 1, first)
    baseline = max(backlog[first:last + 1], default=0)
    end_index = min(int((fault_end - 1e-9) // bin_seconds), len(backlog) - 1)
    start_index = min(int(fault_start // bin_seconds), len(backlog) - 1)
    recovered: float | None = None
    stop = len(backlog) - 1
    for i in range(max(end_index, start_index), len(backlog)):
        if backlog[i] <= baseline:
            recovered = (i + 1) * bin_seconds
            stop = i
            break
    peak_index = max(range(start_index, stop + 1), key=lambda i: (backlog[i], -i), default=start_index)
    return {
        "baseline_backlog": baseline,
        "backlog_at_fault_end": at(fault_end - 1e-9),
        "backlog_peak": backlog[peak_index] if backlog else 0,
        "backlog_peak_at_s": (peak_index + 1) * bin_seconds,
        "recovered_at_s": recovered,
        "recovery_s": None if recovered is None else max(recovered - fault_end, 0.0),
    }


def merge_histograms(items: Iterable[LogHistogram]) -> LogHistogram:
    out = LogHistogram()
    for h in items:
        out.merge(h)
    return out
