"""The services on real sockets (uvicorn, mutual TLS on 127.0.0.1): every endpoint, the flows end to end with the
background sender, and the TLS rules (client certificates, server names, EKU)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simulator.services.peer import PeerConnection, PeerError
from simulator.services.runtime import RunSettings, ServiceRunner
from simulator.services.sender import JOSE
from simulator.services.tls import TlsMaterial, client_context
from simulator.services.topology import Topology
from simulator.services.world import load_population
from tests.services.conftest import PROFILE, query_body


@pytest.fixture()
def running(world_dir: tuple[Path, Topology]) -> Iterator[tuple[Path, Topology, ServiceRunner]]:
    data, topology = world_dir
    with ServiceRunner(RunSettings(data, PROFILE, topology, drain_timeout=10)) as runner:
        yield data, topology, runner


def api(data: Path, topology: Topology, service: str) -> httpx.Client:
    return httpx.Client(base_url=topology.service(service).url, verify=client_context(TlsMaterial(data), None),
                        timeout=30)


def test_every_endpoint_over_tls(running: tuple[Path, Topology, ServiceRunner]) -> None:
    data, topology, runner = running
    population = load_population(data)
    for spec in topology.services:
        with api(data, topology, spec.name) as client:
            assert client.get("/health").json()["service"] == spec.name
            assert client.get("/ready").json()["ready"] is True
            assert "/messages" in client.get("/openapi.json").json()["paths"]
            assert client.get("/docs").status_code == 200
    with api(data, topology, "kurashiki") as city, api(data, topology, "platform.kuwana") as provider:
        mover = population.movers[0]["ltc_atena_number"]
        auto = city.post("/ltc/queries", json=query_body(mover)).json()["query_id"]
        refused = city.post("/ltc/queries", json=query_body(mover, ["health_insurance_info"])).json()["query_id"]
        protected = population.protected_movers[0]["ltc_atena_number"]
        held = city.post("/ltc/queries", json=query_body(protected, ["resident_info"])).json()["query_id"]
        answer = city.get(f"/ltc/queries/{auto}", params={"wait": 20}).json()
        assert answer["status"] == "provided" and set(answer["data"]) == {"local_tax_info", "resident_info"}
        answer = city.get(f"/ltc/queries/{refused}", params={"wait": 20}).json()
        assert answer["status"] == "refused" and answer["code"] == "Permission.NotOnPermissionList"
        token = provider.post("/sessions", json={"system": "intermediate_server", "user_id": "reviewer",
                                                 "password": "jukisim-demo"}).json()["token"]
        auth = {"authorization": f"Bearer {token}"}
        permit = None
        for _ in range(100):
            entries = provider.get("/held", headers=auth).json()["held"]
            permit = next((e["permit_id"] for e in entries if e["correlation_id"] == held), None)
            if permit:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert permit is not None
        assert city.get(f"/ltc/queries/{held}").json()["status"] == "open"
        assert provider.post(f"/held/{permit}/release", json={"approve": True}, headers=auth).status_code == 200
        assert city.get(f"/ltc/queries/{held}", params={"wait": 20}).json()["status"] == "provided"
        record = population.ltc["kurashiki"][0]
        assert city.post("/ltc/records", json={"business_atena_number": record["business_atena_number"],
                                               "my_number": record["my_number"],
                                               "record": record["record"]}).status_code == 202
    senders = {ctx.spec.name: ctx.sender.stats for ctx in runner.contexts() if ctx.sender is not None}
    assert sum(s.accepted for s in senders.values()) >= 15  # 6 + 4 + 6 hops, at least
    assert all(s.refused == 0 and s.transport_errors == 0 for s in senders.values()), senders


def test_messages_over_tls_needs_a_party_certificate(running: tuple[Path, Topology, ServiceRunner]) -> None:
    data, topology, _runner = running
    material = TlsMaterial(data)
    nws = topology.service("nws")
    with httpx.Client(base_url=nws.url, verify=client_context(material, None)) as anonymous:
        response = anonymous.post("/messages", content=b"a.b.c", headers={"content-type": JOSE})
    assert response.status_code == 403
    # A party's message-signing certificate is not a TLS client identity (no clientAuth EKU).
    signing = client_context(material, None)
    party = data / "keys" / "parties" / "platform.intermediate_server.kurashiki"
    signing.load_cert_chain(party / "chain.pem", party / "key.pem")
    with httpx.Client(base_url=nws.url, verify=signing) as wrong:
        refusal = wrong.post("/messages", content=b"a.b.c", headers={"content-type": JOSE}).json()["refusal"]
    assert refusal["code"] in ("Access.SourceNotAllowed", "Security.MalformedMessage")


def test_sender_reaches_only_the_named_service(running: tuple[Path, Topology, ServiceRunner]) -> None:
    data, topology, _runner = running
    material = TlsMaterial(data)
    nws, kurashiki = topology.service("nws"), topology.service("kurashiki")

    async def post(host_port: tuple[str, int], sni: str) -> int:
        peer = PeerConnection(host_port[0], host_port[1], sni, client_context(material, "kurashiki.atena"), 10)
        try:
            status, _body = await peer.post("/messages", b"a.b.c", JOSE)
            return status
        finally:
            await peer.close()

    assert asyncio.run(post((nws.host, nws.port), nws.sni)) == 403  # reached NWS, which refused the junk
    with pytest.raises(PeerError) as excinfo:  # kurashiki's port does not hold NWS's certificate
        asyncio.run(post((kurashiki.host, kurashiki.port), nws.sni))
    assert isinstance(excinfo.value.__cause__, ssl.SSLError | OSError)
