"""API fuzzing with schemathesis: every operation of every service's OpenAPI, called through its ASGI app (no
sockets) with schema-conforming and schema-violating requests, anonymously and with a logged-in staff session
and a peer's TLS identity. No request may get a server error (the ``not_a_server_error`` check).

The default run is a few examples per operation; ``-m slow`` runs many. Totals are printed (``-s``) and, with
``$JUKISIM_RELIABILITY_OUT`` set, written to ``fuzz_api.json`` beside the mutation counts.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.openapi import from_asgi

from simulator.services.app import create_app
from simulator.services.sender import JOSE
from simulator.services.topology import Topology
from tests.services.conftest import Harness, PeerInjector, free_port_base, template, with_ports

__all__ = ["template"]  # fixture

# Signed envelopes travel as text; schemathesis sends generated strings for them as it would text/plain.
schemathesis.serializer.alias(JOSE, "text/plain")

#: A staff account per kind of system (the demo world's synthetic users) to reach past the login check.
LOGINS = {"registry": "clerk-a", "intermediate_server": "reviewer"}


@pytest.fixture(scope="module")
def fuzz_harness(template: tuple[Path, Topology], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    source, topology = template
    target = tmp_path_factory.mktemp("fuzz") / "world"
    shutil.copytree(source, target)
    topology = with_ports(topology, free_port_base(len(topology.services)))
    (target / "services.json").write_text(json.dumps(topology.as_dict()), encoding="utf-8")
    harness = Harness(target, topology)
    yield harness
    harness.close()


def _identities(harness: Harness, service: str, paths: dict[str, Any]) -> list[dict[str, str]]:
    """Headers to fuzz under: none, then (where the service has them) a staff session and a peer's TLS identity."""
    found: list[dict[str, str]] = [{}]
    if "/sessions" in paths:
        for system, user in LOGINS.items():
            response = harness.client(service).post("/sessions", json={"system": system, "user_id": user,
                                                                       "password": "jukisim-demo"})
            if response.status_code == 201:
                found.append({"authorization": f"Bearer {response.json()['token']}"})
    spec = next(s for s in harness.topology.services if s.name == service)
    peers = sorted(p.name for p in (harness.data_dir / "keys" / "tls" / "clients").iterdir()
                   if p.name not in spec.parties)
    if peers:
        found.append({"x-test-client-cert": peers[0]})
    return found


@dataclass
class Tally:
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def fuzz_operation(label: str, operation: Any, identity: dict[str, str], examples: int, tally: Tally) -> None:
    strategy = (operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
                | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        tally.cases[label] += 1
        try:
            response = case.call(headers=identity or None)
        except Exception as err:  # an exception out of the app is a server error too
            tally.errors.append(f"{label}: {type(err).__name__}: {err}"[:400])
            return
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except Exception as failure:  # recorded, so one run lists every failing operation
            tally.errors.append(f"{label}: {response.status_code} {str(failure)[:300]}")

    run()


def fuzz(harness: Harness, examples: int) -> dict[str, Any]:
    tally = Tally()
    for name, ctx in harness.contexts.items():
        schema = from_asgi("/openapi.json", PeerInjector(create_app(ctx), harness.data_dir))
        paths = harness.client(name).get("/openapi.json").json()["paths"]
        for identity in _identities(harness, name, paths):
            for found in schema.get_all_operations():
                operation = found.ok()
                fuzz_operation(f"{name} {operation.label}", operation, identity, examples, tally)
    return {"cases": sum(tally.cases.values()), "operations": len(tally.cases), "server_errors": len(tally.errors),
            "statuses": dict(sorted(tally.statuses.items())), "errors": tally.errors[:20]}


def _report(result: dict[str, Any], run: str) -> None:
    print(f"\nAPI fuzz ({run}):", json.dumps(result, ensure_ascii=False))
    out = os.environ.get("JUKISIM_RELIABILITY_OUT")
    if out:
        folder = Path(out).parent if Path(out).suffix == ".json" else Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"fuzz_api_{run}.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), "utf-8")


def test_api_fuzz_finds_no_server_error(fuzz_harness: Harness) -> None:
    result = fuzz(fuzz_harness, examples=2)
    _report(result, "fast")
    assert result["cases"] > 0 and result["errors"] == [], result["errors"]


@pytest.mark.slow
def test_api_fuzz_long_run_finds_no_server_error(fuzz_harness: Harness) -> None:
    result = fuzz(fuzz_harness, examples=60)
    _report(result, "slow")
    assert result["errors"] == [], result["errors"]
