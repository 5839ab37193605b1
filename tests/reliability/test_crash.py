"""Crash consistency: the services of the demo world, one process each on loopback, under a bounded 情報照会 workload
while services are killed with SIGKILL at random moments and restarted. Afterwards every query has its right final
state, every provision is recorded by requester, NWS and provider, nothing was provided twice, and `jukisim audit
verify`'s rules pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.audit import verify_directory
from simulator.services.chaos import ChaosSettings, run_chaos
from simulator.services.topology import Topology
from tests.services import conftest as shared

template = shared.template
world_dir = shared.world_dir

# The services an exchange passes through (requester's business system and 中間サーバー, NWS, provider's 中間サーバー).
EXCHANGE_PATH = ["kurashiki", "platform.kurashiki", "nws", "platform.kuwana"]


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_exchange_and_no_record(world_dir: tuple[Path, Topology]) -> None:
    data, _topology = world_dir
    # Enough work that the kills land inside it on a quiet machine too (300 queries ended after two kills there).
    settings = ChaosSettings(data, queries=800, kills=4, workers=8, kill_gap=(0.3, 1.2), targets=EXCHANGE_PATH,
                             rng_seed=9, deadline_s=600, reuse=True)
    report = run_chaos(settings, log=print)
    print(report.markdown())
    assert len(report.kills) >= 3, "the workload ended before the kills were made"
    assert any(k.queries_in_flight or k.messages_staged for k in report.kills)  # kills hit exchanges in flight
    assert not report.unfinished, report.unfinished[:5]
    assert not report.wrong, report.wrong[:5]
    assert report.provided + report.refused_as_expected == settings.queries
    assert report.records_lost == 0, report.lost_detail[:5]
    assert not report.duplicate_provisions, report.duplicate_provisions[:5]
    assert report.staged_at_end == 0
    assert report.complete_provisions == report.provided
    audit = verify_directory(data)
    assert audit.ok, (audit.breaks, audit.missing_records, audit.duplicates)
    assert audit.in_flight == 0 and audit.unrecorded_at_nws == []
