"""A refusal whose side effects must stay (a quarantine, a cut session, a screen lock, a blocked mount).

A command's refusal normally rolls its writes back; these are decided and recorded inside a command that still
commits, so the record of what was stopped survives. It must never decide anything itself: the caller has.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from simulator.components.base import Component, Result
from simulator.errors import RefusalCode

__all__ = ["deny_kept"]


def deny_kept(
    component: Component,
    result: Result,
    code: RefusalCode,
    control: str,
    now: datetime,
    reason_ja: str,
    reason_en: str,
    *,
    field: str,
    **evidence: Any,
) -> None:
    """Log the deny decision now and put the refusal on ``result``, without raising (so nothing rolls back)."""
    refusal = component.refuse(code, control, reason_ja, reason_en, field)
    result.decisions.extend(component.refused(refusal, now, correlation_id=None, evidence=evidence).decisions)
    result.refusal = refusal
