"""Every service endpoint through FastAPI's test client: health, readiness, OpenAPI, /messages, the business API,
the registry's four-eyes 異動 and the platform's review queue, with messages carried between the services."""

from __future__ import annotations

from simulator.services.sender import JOSE
from tests.services.conftest import Harness, query_body


def test_every_service_has_health_readiness_and_openapi(harness: Harness) -> None:
    core = ["nws", "jlis", "portal", "platform.kurashiki", "platform.kuwana", "kurashiki", "kuwana"]
    # World extensions (simulator/extensions) may add organisations of their own, each its own service.
    assert [s.name for s in harness.topology.services if s.name in core] == core
    for spec in harness.topology.services:
        client = harness.client(spec.name)
        assert client.get("/health").json() == {"status": "ok", "service": spec.name}
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["parties"] == list(spec.parties)
        paths = client.get("/openapi.json").json()["paths"]
        assert JOSE in paths["/messages"]["post"]["requestBody"]["content"]
    municipality = harness.client("kurashiki").get("/openapi.json").json()["paths"]
    for path in ("/ltc/queries", "/ltc/queries/{query_id}", "/ltc/records", "/tax/queries", "/registry/changes",
                 "/registry/changes/{change_id}/confirm", "/sessions"):
        assert path in municipality, path
    tenant = harness.client("platform.kuwana").get("/openapi.json").json()["paths"]
    assert "/held" in tenant and "/held/{permit_id}/release" in tenant and "/ltc/queries" not in tenant


def test_automatic_query_crosses_the_services(harness: Harness) -> None:
    api = harness.client("kurashiki")
    mover = harness.population.movers[0]["ltc_atena_number"]
    started = api.post("/ltc/queries", json=query_body(mover))
    assert started.status_code == 201
    query_id = started.json()["query_id"]
    assert api.get(f"/ltc/queries/{query_id}").json()["status"] == "open"
    hops = harness.pump()
    answer = api.get(f"/ltc/queries/{query_id}").json()
    assert answer["status"] == "provided"
    assert set(answer["data"]) == {"local_tax_info", "resident_info"}
    path = [(s, r) for s, r, _t, _c in harness.delivered]
    assert hops == 6 and path == [
        ("kurashiki.atena", "platform.intermediate_server.kurashiki"),
        ("platform.intermediate_server.kurashiki", "nws.core"),
        ("nws.core", "platform.intermediate_server.kuwana"),
        ("platform.intermediate_server.kuwana", "nws.core"),
        ("nws.core", "platform.intermediate_server.kurashiki"),
        ("platform.intermediate_server.kurashiki", "kurashiki.atena"),
    ]
    assert all(code == 202 for *_rest, code in harness.delivered)


def test_query_the_list_refuses(harness: Harness) -> None:
    api = harness.client("kurashiki")
    mover = harness.population.movers[0]["ltc_atena_number"]
    query_id = api.post("/ltc/queries", json=query_body(mover, ["health_insurance_info"])).json()["query_id"]
    harness.pump()
    answer = api.get(f"/ltc/queries/{query_id}").json()
    assert answer["status"] == "refused" and answer["code"] == "Permission.NotOnPermissionList"


def test_held_request_is_released_by_the_providers_reviewer(harness: Harness) -> None:
    api = harness.client("kurashiki")
    provider = harness.client("platform.kuwana")
    person = harness.population.protected_movers[0]["ltc_atena_number"]
    query_id = api.post("/ltc/queries", json=query_body(person, ["resident_info"])).json()["query_id"]
    harness.pump()
    assert api.get(f"/ltc/queries/{query_id}").json()["status"] == "open"
    assert provider.get("/held").status_code == 401  # the queue is for logged-in reviewers only
    reviewer = harness.login("platform.kuwana", "intermediate_server", "reviewer")
    held = provider.get("/held", headers=reviewer).json()["held"]
    permit = next(h["permit_id"] for h in held if h["correlation_id"] == query_id)
    operator = harness.login("platform.kuwana", "intermediate_server", "operator")
    denied = provider.post(f"/held/{permit}/release", json={"approve": True}, headers=operator)
    assert denied.status_code == 403 and denied.json()["refusal"]["code"] == "Auth.RoleMissing"
    released = provider.post(f"/held/{permit}/release", json={"approve": True}, headers=reviewer)
    assert released.status_code == 200 and released.json()["status"] == "released"
    again = provider.post(f"/held/{permit}/release", json={"approve": True}, headers=reviewer)
    assert again.status_code == 409 and again.json()["refusal"]["code"] == "Input.StateConflict"
    harness.pump()
    assert api.get(f"/ltc/queries/{query_id}").json()["status"] == "provided"


def test_change_entered_and_confirmed_by_two_clerks(harness: Harness) -> None:
    api = harness.client("kurashiki")
    clerk_a = harness.login("kurashiki", "registry", "clerk-a")
    clerk_b = harness.login("kurashiki", "registry", "clerk-b")
    person = next(r for r in harness.population.residents["kurashiki"] if r["status"] == "active")
    form = {"change_type": "move_within", "resident_code": person["resident_code"],
            "address": person["address"].rsplit("丁目", 1)[0] + "丁目7番地", "postal_code": person["postal_code"],
            "change_date": harness.world.now.date().isoformat()}
    assert api.post("/registry/changes", json={"form": form}).status_code == 401
    entered = api.post("/registry/changes", json={"form": form}, headers=clerk_a)
    assert entered.status_code == 201
    change_id = entered.json()["change_id"]
    same = api.post(f"/registry/changes/{change_id}/confirm", json={"matches": True}, headers=clerk_a)
    assert same.status_code == 403 and same.json()["refusal"]["code"] == "Auth.SamePersonConfirmation"
    confirmed = api.post(f"/registry/changes/{change_id}/confirm", json={"matches": True}, headers=clerk_b)
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "COMMITTED"
    harness.pump()
    recipients = {r for _s, r, _t, _c in harness.delivered}
    # 市町村CS → 都道府県サーバ over the network; 都道府県 → 全国 stays inside the J-LIS service; the ack comes back.
    assert {"jlis.prefectural_server.okayama", "kurashiki.municipal_cs"} <= recipients
    bad = api.post("/registry/changes", json={"form": {**form, "postal_code": "12"}}, headers=clerk_a)
    assert bad.status_code == 422 and bad.json()["refusal"]["field"] == "postal_code"


def test_replica_update_reaches_the_tenant(harness: Harness) -> None:
    api = harness.client("kurashiki")
    person = harness.population.ltc["kurashiki"][0]
    record = {**person["record"], "premium_stage": 7}
    response = api.post("/ltc/records", json={"business_atena_number": person["business_atena_number"],
                                              "my_number": person["my_number"], "record": record})
    assert response.status_code == 202
    harness.pump()
    types = [(r, t) for _s, r, t, _c in harness.delivered]
    assert ("platform.intermediate_server.kurashiki", "atena.replica_update") in types
    invalid = api.post("/ltc/records", json={"business_atena_number": person["business_atena_number"],
                                             "my_number": person["my_number"], "record": {"care_level": "x"}})
    assert invalid.status_code == 422 and invalid.json()["status"] == "invalid"
    assert invalid.json()["field"].startswith("record.")


def test_messages_needs_a_client_certificate_and_a_jws(harness: Harness) -> None:
    nws = harness.client("nws")
    no_cert = harness.post_message("nws", "a.b.c", None)
    assert no_cert.status_code == 403
    assert no_cert.json()["refusal"]["code"] in ("Access.SourceNotAllowed", "Security.MalformedMessage")
    garbage = harness.post_message("nws", "not a jws", "platform.intermediate_server.kurashiki")
    assert garbage.status_code == 403 and garbage.json()["refusal"]["code"] == "Security.MalformedMessage"
    wrong_type = nws.post("/messages", content=b"x.y.z", headers={"content-type": "application/json"})
    assert wrong_type.status_code == 415
    bad_login = harness.client("kurashiki").post("/sessions", json={"system": "registry", "user_id": "clerk-a",
                                                                    "password": "wrong"})
    assert bad_login.status_code == 401 and bad_login.json()["refusal"]["code"] == "Auth.NotAuthenticated"
    missing = harness.client("kurashiki").post("/ltc/queries", json={"operator": "x"})
    assert missing.status_code == 422
    assert harness.client("kurashiki").get("/ltc/queries/nope").status_code == 404


def test_draining_service_refuses_new_work_but_takes_messages(harness: Harness) -> None:
    ctx = harness.contexts["kurashiki"]
    ctx.draining = True
    api = harness.client("kurashiki")
    mover = harness.population.movers[0]["ltc_atena_number"]
    assert api.get("/ready").status_code == 503
    assert api.post("/ltc/queries", json=query_body(mover)).status_code == 503
    ctx.draining = False
    query_id = api.post("/ltc/queries", json=query_body(mover)).json()["query_id"]
    ctx.draining = True
    harness.pump()  # the answer still gets in while draining
    assert api.get(f"/ltc/queries/{query_id}").json()["status"] == "provided"
