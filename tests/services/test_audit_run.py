"""`jukisim audit verify` over a whole run's stores: every provision recorded by provider, NWS and requester, and a
provision recorded twice or a record missing at one party is reported (the chains themselves stay valid here, so
it is the cross-party check that finds it)."""

from __future__ import annotations

from simulator.audit import verify_directory
from simulator.services.world import now_jst
from tests.services.conftest import Harness, query_body


def provided_exchange(harness: Harness) -> str:
    mover = harness.population.movers[0]["ltc_atena_number"]
    query_id = harness.client("kurashiki").post("/ltc/queries", json=query_body(mover)).json()["query_id"]
    harness.pump()
    assert harness.client("kurashiki").get(f"/ltc/queries/{query_id}").json()["status"] == "provided"
    return str(query_id)


def test_a_complete_run_is_ok_with_every_provision_at_three_parties(harness: Harness) -> None:
    provided_exchange(harness)
    provided_exchange(harness)
    report = verify_directory(harness.data_dir)
    assert report.ok, report.problems()
    assert report.provisions == report.complete_provisions == 2
    assert report.in_flight == 0 and report.unrecorded_at_nws == []
    assert "recorded by provider, NWS and requester: 2" in report.summary()


def test_staged_messages_are_reported_as_in_flight(harness: Harness) -> None:
    mover = harness.population.movers[0]["ltc_atena_number"]
    harness.client("kurashiki").post("/ltc/queries", json=query_body(mover))
    report = verify_directory(harness.data_dir)
    assert report.in_flight == 1 and "still staged" in report.summary()
    city = harness.contexts["kurashiki"].driver
    for item in city.pending():  # 宛名 → 中間サーバー: the requester sends its 情報照会; NWS has not seen it yet
        assert harness.post_message("platform.kurashiki", item.wire, item.sender).status_code == 202
        city.delivered([item.seq])
    report = verify_directory(harness.data_dir)
    assert len(report.unrecorded_at_nws) == 1 and report.in_flight == 1
    harness.pump()
    assert verify_directory(harness.data_dir).unrecorded_at_nws == []


def test_a_duplicate_provision_and_a_missing_relay_are_reported(harness: Harness) -> None:
    provided_exchange(harness)
    provider = harness.world.component("platform.intermediate_server.kuwana")
    sent = [r for r in provider.records.rows(kind="provision.sent")][-1]
    # The same permit provided again (a validly chained row): what a non-idempotent retry would have left.
    provider.records.append(at=now_jst().isoformat(), kind="provision.sent", correlation_id=sent["correlation_id"],
                            data=sent["data"])
    # A provision NWS never relayed (as if its record were lost), also validly chained.
    provider.records.append(at=now_jst().isoformat(), kind="provision.sent", correlation_id="lost",
                            data={**sent["data"], "permit_id": "permit-never-relayed"})
    report = verify_directory(harness.data_dir)
    assert not report.ok and not report.breaks
    assert any("recorded as provided 2 times by the provider" in d for d in report.duplicates)
    assert any("permit-never-relayed" in m and "NWS" in m for m in report.missing_records)
    assert any("permit-never-relayed" in m and "requester" in m for m in report.missing_records)
