"""Backpressure: beyond its admission limits a service answers busy (503 to peers, 429 to business callers) with
a Retry-After hint, the sender keeps the message and honours the hint, and nothing accepted is dropped. Limits
are set tiny on purpose, and filled deterministically (held slots, an undelivered outbox)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx

from simulator.services.admission import Admission, AdmissionLimits
from simulator.services.runtime import RunSettings, ServiceRunner
from simulator.services.tls import TlsMaterial, client_context
from simulator.services.topology import Topology
from simulator.services.world import load_population, now_jst
from tests.services import conftest as shared
from tests.services.conftest import PROFILE, Harness, query_body

# The service tests' world (built once per session, copied per test) and in-process harness.
template = shared.template
world_dir = shared.world_dir
harness = shared.harness


def busy_body(response: httpx.Response, status: int, retry_after: int = 1) -> None:
    assert response.status_code == status, response.text
    assert response.headers["retry-after"] == str(retry_after)
    body = response.json()
    assert body["status"] == "busy" and body["retry_after_s"] == retry_after
    assert body["reason_ja"] and body["reason_en"]


def deliver_from(harness: Harness, service: str) -> None:
    ctx = harness.contexts[service]
    for item in ctx.driver.pending():
        destination = harness.topology.service_of(item.recipient)
        assert destination is not None
        assert harness.post_message(destination.name, item.wire, item.sender).status_code == 202
        ctx.driver.delivered([item.seq])


def test_peer_message_beyond_the_in_flight_limit_is_busy_and_kept(harness: Harness) -> None:
    nws = harness.contexts["nws"]
    nws.admission = Admission(AdmissionLimits(max_in_flight=1))
    mover = harness.population.movers[0]["ltc_atena_number"]
    query_id = harness.client("kurashiki").post("/ltc/queries", json=query_body(mover)).json()["query_id"]
    deliver_from(harness, "kurashiki")  # 宛名 → 中間サーバー: the 情報照会 to NWS is now staged there
    item = next(i for i in harness.contexts["platform.kurashiki"].driver.pending() if i.recipient == "nws.core")
    assert nws.admission.enter(0, business=False) is None  # one request in progress fills the limit
    response = harness.post_message("nws", item.wire, item.sender)
    busy_body(response, 503)
    assert nws.admission.busy_answers == 1
    # Not accepted, so not handled: NWS has no trace of the query and the sender still holds it.
    assert not list(harness.world.component("nws.core").records.rows(kind="query.mediated"))
    assert item in harness.contexts["platform.kurashiki"].driver.pending()
    nws.admission.leave()
    harness.pump()
    answer = harness.client("kurashiki").get(f"/ltc/queries/{query_id}").json()
    assert answer["status"] == "provided"


def test_business_work_beyond_the_outbox_limit_gets_429_and_nothing_accepted_is_dropped(harness: Harness) -> None:
    city = harness.contexts["kurashiki"]
    city.admission = Admission(AdmissionLimits(max_backlog=3, retry_after_s=2))
    movers = [m["ltc_atena_number"] for m in harness.population.movers]
    accepted = []
    for n in range(3):  # nothing is pumped: each query stays staged in 倉敷市's outbox
        response = harness.client("kurashiki").post("/ltc/queries", json=query_body(movers[n]))
        assert response.status_code == 201, response.text
        accepted.append(response.json()["query_id"])
    assert city.driver.backlog() == 3
    response = harness.client("kurashiki").post("/ltc/queries", json=query_body(movers[3]))
    busy_body(response, 429, retry_after=4)  # twice the hint: the outbox is one limit's length past
    register = harness.client("kurashiki").post("/ltc/records", json={
        "business_atena_number": movers[3], "my_number": "123456789018", "record": {}})
    assert register.status_code == 429
    assert harness.client("kurashiki").get("/ready").json()["admission"]["busy_answers"] == 2
    harness.pump()  # the backlog drains: new work is admitted again
    response = harness.client("kurashiki").post("/ltc/queries", json=query_body(movers[3]))
    assert response.status_code == 201
    accepted.append(response.json()["query_id"])
    harness.pump()
    for query_id in accepted:
        assert harness.client("kurashiki").get(f"/ltc/queries/{query_id}").json()["status"] == "provided"


def test_a_retried_business_call_with_the_same_idempotency_key_is_one_query(harness: Harness) -> None:
    mover = harness.population.movers[0]["ltc_atena_number"]
    headers = {"idempotency-key": "terminal-7/0001"}
    first = harness.client("kurashiki").post("/ltc/queries", json=query_body(mover), headers=headers)
    second = harness.client("kurashiki").post("/ltc/queries", json=query_body(mover), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["query_id"] == second.json()["query_id"]
    assert harness.contexts["kurashiki"].driver.backlog() == 1
    other = harness.client("kurashiki").post("/ltc/queries", json=query_body(mover),
                                             headers={"idempotency-key": "terminal-7/0002"})
    assert other.json()["query_id"] != first.json()["query_id"]


def test_the_sender_honours_retry_after_and_delivers_once_the_service_has_room(
    world_dir: tuple[Path, Topology],
) -> None:
    data, topology = world_dir
    settings = RunSettings(data, PROFILE, topology, drain_timeout=10, admission=AdmissionLimits(max_in_flight=1))
    population = load_population(data)
    with ServiceRunner(settings) as runner:
        nws = next(ctx for ctx in runner.contexts() if ctx.spec.name == "nws")
        platform = next(ctx for ctx in runner.contexts() if ctx.spec.name == "platform.kurashiki")
        loop = runner._loop
        assert loop is not None
        loop.call_soon_threadsafe(lambda: nws.admission.enter(0, business=False))  # NWS is full
        with httpx.Client(base_url=topology.service("kurashiki").url,
                          verify=client_context(TlsMaterial(data), None), timeout=30) as city:
            mover = population.movers[0]["ltc_atena_number"]
            query_id = city.post("/ltc/queries", json=query_body(mover)).json()["query_id"]
            assert platform.sender is not None
            deadline = time.monotonic() + 30
            while platform.sender.stats.busy < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert platform.sender.stats.busy >= 2  # told busy, waited the hint, asked again, told busy again
            assert platform.sender.backlog().get("nws") == 1  # still queued, not dropped
            assert city.get(f"/ltc/queries/{query_id}").json()["status"] == "open"
            loop.call_soon_threadsafe(nws.admission.leave)  # room again
            answer = city.get(f"/ltc/queries/{query_id}", params={"wait": 20}).json()
            assert answer["status"] == "provided"
        assert platform.sender.stats.transport_errors == 0


def test_kept_verdicts_older_than_the_cutoff_are_forgotten(harness: Harness) -> None:
    mover = harness.population.movers[0]["ltc_atena_number"]
    harness.client("kurashiki").post("/ltc/queries", json=query_body(mover), headers={"idempotency-key": "k1"})
    harness.pump()
    platform = harness.contexts["platform.kurashiki"].driver
    assert platform.inbox_size() > 0
    assert platform.forget_verdicts(now_jst() - timedelta(days=1)) == 0  # nothing that old
    assert platform.forget_verdicts(now_jst() + timedelta(seconds=1)) > 0
    assert platform.inbox_size() == 0
    assert harness.contexts["kurashiki"].driver.forget_verdicts(now_jst() + timedelta(seconds=1)) >= 1
