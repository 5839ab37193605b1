"""A control decision: what one enforcement point decided, under which control id, and why.

Every enforcement point emits one of these into its organisation's audit trail, allowed or not, so an
auditor can go from a PIA sentence (control id) to the evidence that the control acted.
This module must never decide; it only gives decisions one shape.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["ControlDecision", "Outcome"]


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"  # 自動応答不可: held for a person to decide


class ControlDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    control_id: str
    outcome: Outcome
    component: str
    reason_ja: str
    reason_en: str
    at: datetime
    correlation_id: str | None = None
    code: str | None = None  # the RefusalCode when the outcome is deny
    evidence: dict[str, Any] = {}

    def as_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
