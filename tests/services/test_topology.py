"""Placement of services (ports, hosts, a placement file) and the TLS certificates that follow it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509

from simulator.errors import InputError
from simulator.services.runtime import prepare
from simulator.services.tls import TlsMaterial, peer_party
from simulator.services.topology import Topology, load_overrides
from simulator.services.world import now_jst, open_world
from tests.services.conftest import PROFILE


def test_overrides_are_checked(world_dir: tuple[Path, Topology]) -> None:
    data, _topology = world_dir
    world = open_world(data, PROFILE, now_jst())
    try:
        placed = Topology.of_world(world, port_base=30000, overrides={"nws": {"host": "10.1.2.3", "port": 31000}})
        assert placed.service("nws").url == "https://10.1.2.3:31000" and placed.service("jlis").port == 30001
        assert placed.service_of("kurashiki.ltc") == placed.service("kurashiki")
        with pytest.raises(InputError, match=r"services\.nws"):
            Topology.of_world(world, overrides={"nws": {"address": "x"}})
        with pytest.raises(InputError, match="port"):
            Topology.of_world(world, overrides={"nws": {"port": 70000}})
        with pytest.raises(InputError, match="no such services"):
            Topology.of_world(world, overrides={"tsukuba": {"port": 1234}})
    finally:
        world.close()


def test_placement_file_and_certificates_follow_hosts(world_dir: tuple[Path, Topology], tmp_path: Path) -> None:
    data, topology = world_dir
    placement = tmp_path / "placement.yaml"
    placement.write_text("services:\n  nws: {host: 10.1.2.3, port: 31000}\n", encoding="utf-8")
    overrides = load_overrides(placement)
    assert overrides == {"nws": {"host": "10.1.2.3", "port": 31000}}
    placed = prepare(data, PROFILE, size=60, seed=11, reuse=True, port_base=topology.services[0].port,
                     overrides=overrides)
    assert TlsMaterial(data).exists_for(placed)
    cert = x509.load_pem_x509_certificates((data / "keys/tls/servers/nws/chain.pem").read_bytes())[0]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "nws.jukisim.test" in names.get_values_for_type(x509.DNSName)
    assert "10.1.2.3" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert json.loads((data / "services.json").read_text())["services"][0]["host"] == "10.1.2.3"
    bad = tmp_path / "bad.json"
    bad.write_text('["nws"]', encoding="utf-8")
    with pytest.raises(InputError):
        load_overrides(bad)


def test_client_identity_needs_a_tls_client_certificate(world_dir: tuple[Path, Topology]) -> None:
    data, _topology = world_dir
    tls_client = (data / "keys/tls/clients/kurashiki.atena/chain.pem").read_text()
    signing = (data / "keys/parties/kurashiki.atena/chain.pem").read_text()
    server = (data / "keys/tls/servers/kurashiki/chain.pem").read_text()
    first = "-----END CERTIFICATE-----"
    assert peer_party(tls_client.split(first)[0] + first + "\n") == "kurashiki.atena"
    assert peer_party(signing.split(first)[0] + first + "\n") is None  # no clientAuth: a signing certificate
    assert peer_party(server.split(first)[0] + first + "\n") is None  # serverAuth only
