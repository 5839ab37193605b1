"""Admission control (backpressure): a bounded amount of work inside one service, and a clear busy answer beyond it.

Two limits, both configurable: requests being handled at once (peer messages and business calls), and the
outbox backlog (messages this service staged that other services have not yet answered for). Beyond the first,
anyone gets busy; beyond the second only new business work does, because refusing peers' messages while our
own outbox waits on them could deadlock two services. Busy is 503 for peers (429 for business API callers) with
a ``Retry-After`` header and ``{"status": "busy", "retry_after_s": N}``. It must never drop or queue work
itself: what it refuses was not accepted, and the caller keeps it (a sender keeps it in its outbox).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi.responses import JSONResponse

__all__ = ["Admission", "AdmissionLimits"]


@dataclass(frozen=True)
class AdmissionLimits:
    max_in_flight: int = 64  # requests handled at once: /messages and business work together
    max_backlog: int = 5000  # staged outbox messages beyond which new business work is refused
    retry_after_s: int = 1  # the hint in Retry-After (whole seconds, as HTTP wants)

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight: must be at least 1")
        if self.max_backlog < 1:
            raise ValueError("max_backlog: must be at least 1")
        if self.retry_after_s < 1:
            raise ValueError("retry_after_s: must be at least 1 second")


@dataclass
class Admission:
    """Counts the work inside a service; ``enter`` admits it or returns the busy answer to give instead."""

    limits: AdmissionLimits = field(default_factory=AdmissionLimits)
    in_flight: int = 0
    busy_answers: int = 0  # how many callers were told to come back (a figure for /ready and the reports)
    peak_in_flight: int = 0

    def enter(self, backlog: int, *, business: bool) -> JSONResponse | None:
        limits = self.limits
        reason: tuple[str, str] | None = None
        if self.in_flight >= limits.max_in_flight:
            reason = ("処理中の要求が上限に達しています", f"{self.in_flight} requests in progress (limit "
                      f"{limits.max_in_flight})")
        elif business and backlog >= limits.max_backlog:
            reason = ("送信待ちの電文が上限に達しています", f"{backlog} messages wait in the outbox (limit "
                      f"{limits.max_backlog})")
        if reason is not None:
            self.busy_answers += 1
            # The longer the outbox, the longer to wait: a hint proportional to how far past the limit we are.
            wait = limits.retry_after_s * (1 + backlog // limits.max_backlog if business else 1)
            return JSONResponse(
                {"status": "busy", "retry_after_s": wait, "reason_ja": reason[0] + "。しばらくしてから再送してください",
                 "reason_en": reason[1] + "; retry later"},
                status_code=429 if business else 503,
                headers={"Retry-After": str(wait)},
            )
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return None

    def leave(self) -> None:
        self.in_flight -= 1

    def as_dict(self) -> dict[str, int]:
        return {"in_flight": self.in_flight, "peak_in_flight": self.peak_in_flight, "busy_answers": self.busy_answers,
                "max_in_flight": self.limits.max_in_flight, "max_backlog": self.limits.max_backlog}
