"""Parameters of a simulation run, with their defaults and where each default comes from.

Figures the seeds or public statistics give are cited; everything else is an assumption, labelled as one in
``SOURCES`` (and in docs/simulation.md) so nobody quotes it as a fact. Profiles and the CLI override them.
This module must never hold generated data or randomness.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import time
from typing import Any

from simulator.simulation.calendar import Window

__all__ = ["SOURCES", "SimParams"]

#: 会計検査院「マイナンバー制度における地方公共団体による情報照会の実施状況について」(令和6年5月15日, 会計検査院法
#: 第30条の2 報告): 地方公共団体が実施したマイナンバー情報照会 令和4年度 3029万余件; 地方税関係情報 was the most
#: queried kind.
NATIONAL_QUERIES_FY2022 = 30_290_000
#: 住民基本台帳に基づく人口 (令和6年1月1日現在, 日本人住民 + 外国人住民) [ext: 総務省; check before quoting].
NATIONAL_POPULATION = 124_885_175

SOURCES: dict[str, str] = {
    "queries_per_resident_year": "会計検査院 令和6年5月 報告: 3029万余件 (令和4年度, 地方公共団体の情報照会) ÷ "
                                 "住民基本台帳人口 124,885,175 (令和6年1月1日) [ext]",
    "query_mix": "assumption: 会計検査院 names 地方税関係情報 as the most queried kind but this project has no "
                 "published share; the mix is a parameter",
    "query_held_share": "synthetic population: 支援措置 0.12% of residents (docs/population.md) → 自動応答不可 (F-11, F-33)",
    "query_refused_share": "assumption: queries outside the 照会許可用照合リスト are rare; NWS refuses them (NWS-001)",
    "latency": "assumption: one-way delivery per network; no seed states latencies",
    "capacity": "assumption: workers per component; no seed states capacities",
    "windows": "F-12 (assumption): 既存住基 weekdays 08:00–20:00; 住基ネット weekdays 08:30–21:30; PF 24h with a "
               "weekly maintenance window; 開庁日 by jpholiday + 12/29–1/3 (F-37)",
    "office_hours": "assumption: 窓口 08:30–17:15 on 開庁日",
    "confirm_delay": "assumption: the second clerk confirms (JUKI-002) 5 minutes after entry",
    "review": "F-11: review SLA 3 business days; assumption: a reviewer releases a held request 1 office hour or "
              "more after it arrives, on an open day",
    "retry": "assumption: senders retry with exponential backoff 1 s × 2, capped at 5 minutes; the 札幌 "
             "住基ネット中間サーバ holds and forwards instead (GW-002), as does the 市中間サーバ (RELAY-002)",
    "change_rates": "synthetic_data profiles: 転入/転出/転居 rates, 出生 6.0‰, deaths by age (人口動態統計); months: "
                    "住民基本台帳人口移動報告 2023 (March 14%, April 12%)",
    "replica_per_change": "assumption: each 異動 also changes 1.5 business records (税務, 介護, …) whose 副本 is "
                          "refreshed by the night batch (F-6: maximum lag 1 business day)",
    "initial_assessment": "P-064 / P-073: 当初賦課決定 in June; assumption: the 住民税関係情報 副本 of every taxpayer "
                          "(60% of residents) is refreshed the night of the second Monday of June",
    "consistency": "P-060 / F-16: 整合性確認 about monthly (003); assumption: first open day of the month, 18:00",
    "sofusaki": "FL-11 / P-063: 送付先情報 for each new 通知対象者 (births, first registrations), nightly at 18:30 "
                "[assumption]; deleted 1 business day later (P-080)",
    "retention": "P-080 送付先 deleted 1 business day after linkage; F-8 照会 results 30 days; nightly at 19:30 "
                 "[assumption]",
}

_JUKI = Window("既存住基", hours=(time(8, 0), time(20, 0)), open_days_only=True)
_JUKINET = Window("住基ネット", hours=(time(8, 30), time(21, 30)), open_days_only=True)
_PLATFORM = Window("中間サーバー・プラットフォーム", weekly_maintenance=(6, time(2, 0), time(6, 0)))
_OFFICE = Window("窓口", hours=(time(8, 30), time(17, 15)), open_days_only=True)


def _default_windows() -> dict[str, Window]:
    return {
        "registry": _JUKI,
        "municipal_cs": _JUKINET,
        "prefectural_server": _JUKINET,
        "national_server": _JUKINET,
        "card_management": _JUKINET,
        "intermediate_server": _PLATFORM,
    }


@dataclass(frozen=True)
class SimParams:
    latency: dict[str, float] = field(default_factory=lambda: {
        "terminal": 0.0, "office_lan": 0.0005, "lgwan": 0.010, "jukinet": 0.008, "internet": 0.030})
    capacity: dict[str, int] = field(default_factory=lambda: {
        "registry": 4, "municipal_cs": 2, "prefectural_server": 8, "national_server": 32, "atena": 4,
        "business": 4, "intermediate_server": 64, "nws": 64, "portal": 8, "card_management": 8})
    windows: dict[str, Window] = field(default_factory=_default_windows)
    office: Window = _OFFICE
    #: What a sender does when the receiver (or the link) is closed: "retry" with backoff, or "hold" (a gateway
    #: keeps the message durably and forwards it when the receiver opens, in commit order).
    policy: dict[str, str] = field(default_factory=dict)
    retry_base: float = 1.0
    retry_factor: float = 2.0
    retry_cap: float = 300.0
    confirm_delay: float = 300.0
    review_delay: float = 3600.0
    queries_per_resident_year: float = NATIONAL_QUERIES_FY2022 / NATIONAL_POPULATION
    query_held_share: float = 0.0012
    query_refused_share: float = 0.001
    #: 事務 (requesting business) and the information queried; shares sum to 1 [assumption, see SOURCES].
    query_mix: dict[str, float] = field(default_factory=lambda: {
        "地方税関係情報": 0.45, "住民票関係情報": 0.20, "医療保険給付関係情報": 0.12, "年金給付関係情報": 0.10,
        "介護保険給付関係情報": 0.06, "障害者関係情報": 0.04, "その他": 0.03})
    query_month_weights: tuple[float, ...] = (1.0,) * 12
    replica_per_change: float = 1.5
    taxpayer_share: float = 0.60
    consistency_at: time = time(18, 0)
    sofusaki_at: time = time(18, 30)
    retention_at: time = time(19, 30)
    replica_batch_at: time = time(22, 0)
    batch_runs: bool = True

    def with_(self, **changes: Any) -> SimParams:
        return replace(self, **changes)

    def receiver_policy(self, kind: str) -> str:
        return self.policy.get(kind, "retry")

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency_s": self.latency,
            "capacity": self.capacity,
            "windows": {k: _window_text(w) for k, w in self.windows.items()},
            "office_hours": _window_text(self.office),
            "policy": {k: self.receiver_policy(k) for k in sorted(set(self.capacity) | set(self.policy))},
            "retry": {"base_s": self.retry_base, "factor": self.retry_factor, "cap_s": self.retry_cap},
            "confirm_delay_s": self.confirm_delay,
            "review_delay_s": self.review_delay,
            "queries_per_resident_year": self.queries_per_resident_year,
            "query_held_share": self.query_held_share,
            "query_refused_share": self.query_refused_share,
            "query_mix": self.query_mix,
            "query_month_weights": list(self.query_month_weights),
            "replica_per_change": self.replica_per_change,
            "taxpayer_share": self.taxpayer_share,
            "sources": SOURCES,
        }


def _window_text(window: Window) -> str:
    parts = []
    if window.open_days_only:
        parts.append("開庁日")
    if window.hours:
        parts.append(f"{window.hours[0]:%H:%M}–{window.hours[1]:%H:%M}")
    else:
        parts.append("24h")
    if window.weekly_maintenance:
        day, a, b = window.weekly_maintenance
        parts.append(f"maintenance weekday {day} {a:%H:%M}–{b:%H:%M}")
    return " ".join(parts)
