"""Fixtures for the service tests: one small world built once, copied per test module, and an in-process harness
that runs every service's app through FastAPI's test client, carrying messages between them itself."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from simulator.drivers.service import ServiceDriver
from simulator.population import DemoPopulation
from simulator.services.app import ServiceContext, create_app
from simulator.services.runtime import prepare
from simulator.services.sender import JOSE
from simulator.services.topology import Topology
from simulator.services.world import load_population, now_jst, open_world
from simulator.world import World

PROFILE = "demo"


def free_port_base(count: int) -> int:
    """A base port with ``count`` free consecutive ports after it (probed, then released)."""
    for base in range(20000, 60000, 37):
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def with_ports(topology: Topology, base: int) -> Topology:
    return Topology(tuple(replace(s, port=base + i) for i, s in enumerate(topology.services)))


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Topology]:
    data = tmp_path_factory.mktemp("template") / "world"
    topology = prepare(data, PROFILE, size=60, seed=11, reuse=False, port_base=20000)
    return data, topology


@pytest.fixture()
def world_dir(template: tuple[Path, Topology], tmp_path: Path) -> tuple[Path, Topology]:
    """A private copy of the template world, with free ports."""
    source, topology = template
    target = tmp_path / "world"
    shutil.copytree(source, target)
    topology = with_ports(topology, free_port_base(len(topology.services)))
    (target / "services.json").write_text(json.dumps(topology.as_dict()), encoding="utf-8")
    return target, topology


class PeerInjector:
    """Test-only stand-in for the TLS layer: puts a party's client certificate into the request scope, as uvicorn's
    peer-aware protocol does after a real handshake (header ``x-test-client-cert: PARTY``)."""

    def __init__(self, app: Any, data_dir: Path) -> None:
        self.app = app
        self.data_dir = data_dir

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            party = headers.get(b"x-test-client-cert")
            if party is not None:
                pem = (self.data_dir / "keys" / "tls" / "clients" / party.decode() / "chain.pem").read_text()
                first = pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
                scope = {**scope, "extensions": {**(scope.get("extensions") or {}),
                                                 "tls": {"client_cert_chain": [first]}}}
        await self.app(scope, receive, send)


class Harness:
    """Every service of one world as a FastAPI app behind the test client; ``pump`` carries staged messages to
    their recipients' ``/messages`` under the sending party's certificate until the world is quiet."""

    def __init__(self, data_dir: Path, topology: Topology) -> None:
        self.data_dir = data_dir
        self.topology = topology
        self.world: World = open_world(data_dir, PROFILE, now_jst())
        self.population: DemoPopulation = load_population(data_dir)
        self.contexts: dict[str, ServiceContext] = {}
        self.clients: dict[str, TestClient] = {}
        for spec in topology.services:
            driver = ServiceDriver(self.world, spec.parties, self.world.stores[spec.organisation], now_jst)
            ctx = ServiceContext(spec, self.world, driver)
            ctx.started = True
            self.contexts[spec.name] = ctx
            self.clients[spec.name] = TestClient(PeerInjector(create_app(ctx), data_dir), base_url="https://testserver")
        self.delivered: list[tuple[str, str, str, int]] = []  # (sender, recipient, type, http status)

    def client(self, service: str) -> TestClient:
        return self.clients[service]

    def post_message(self, service: str, wire: str, peer: str | None) -> Any:
        headers = {"content-type": JOSE}
        if peer is not None:
            headers["x-test-client-cert"] = peer
        return self.clients[service].post("/messages", content=wire.encode(), headers=headers)

    def pump(self, limit: int = 500) -> int:
        moved = 0
        while moved < limit:
            batch = [(name, item) for name, ctx in self.contexts.items() for item in ctx.driver.pending()]
            if not batch:
                return moved
            for name, item in batch:
                destination = self.topology.service_of(item.recipient)
                assert destination is not None, item.recipient
                response = self.post_message(destination.name, item.wire, item.sender)
                assert response.json()["status"] in ("accepted", "refused"), response.text
                self.delivered.append((item.sender, item.recipient, item.message_type, response.status_code))
                self.contexts[name].driver.delivered([item.seq])
                moved += 1
        raise RuntimeError("the world did not become quiet")

    def login(self, service: str, system: str, user: str, password: str = "jukisim-demo") -> dict[str, str]:
        response = self.clients[service].post("/sessions", json={"system": system, "user_id": user,
                                                                "password": password})
        assert response.status_code == 201, response.text
        return {"authorization": f"Bearer {response.json()['token']}"}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        for ctx in self.contexts.values():
            ctx.close()
        self.world.close()


@pytest.fixture()
def harness(world_dir: tuple[Path, Topology]) -> Iterator[Harness]:
    h = Harness(*world_dir)
    yield h
    h.close()


def query_body(person: str, items: list[str] | None = None, row: str = "94") -> dict[str, Any]:
    return {"operator": "test-staff", "business_atena_number": person, "row": row,
            "items": items or ["local_tax_info", "resident_info"], "provider": "kuwana"}
