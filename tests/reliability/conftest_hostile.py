"""Fixtures for the hostile-input tests: a small service world with one 情報照会 carried through it, the real wires
captured on the way, a way to forge JWS by hand (as an attacker would), and the counts of what was tried.

Import the fixtures from here (``from tests.reliability.conftest_hostile import hostile``); this file is not a
conftest, so it never changes the fixtures of the other reliability tests.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from simulator.crypto import CertificateAuthority, Credential
from simulator.services.topology import Topology
from simulator.services.world import now_jst
from tests.services.conftest import Harness, free_port_base, query_body, with_ports

#: Tables that record what happened rather than what is: a refusal may add to these (and only to these).
LOG_TABLES = frozenset({"audit_trail", "chain_heads", "service_inbox", "sqlite_sequence"})
#: The replay guard forgets old entries by time; it may shrink, never grow, on a refusal.
SHRINKING_TABLES = frozenset({"seen_messages"})


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def es256(signing_input: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def forge(header: dict[str, Any] | bytes, payload: bytes, key: ec.EllipticCurvePrivateKey | None) -> str:
    """A compact JWS built by hand: any header (or raw header bytes), any payload, ES256 by ``key`` or no signature."""
    raw_header = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    signing_input = f"{b64u(raw_header)}.{b64u(payload)}".encode("ascii")
    signature = es256(signing_input, key) if key is not None else b""
    return f"{signing_input.decode('ascii')}.{b64u(signature)}"


def header_for(credential: Credential) -> dict[str, Any]:
    """The protected header the project's own signer writes for ``credential``."""
    jwk = credential.public_jwk()
    return {"alg": "ES256", "typ": "jukisim+jws", "kid": credential.fingerprint, "x5c": jwk["x5c"]}


@dataclass(frozen=True)
class Captured:
    """One real cross-service message of the flow, as it left its sender."""

    sender: str
    recipient: str
    message_type: str
    wire: str
    service: str  # the service hosting the recipient
    message_id: str

    @property
    def header(self) -> dict[str, Any]:
        return dict(json.loads(unb64u(self.wire.split(".")[0])))

    @property
    def envelope(self) -> dict[str, Any]:
        return dict(json.loads(unb64u(self.wire.split(".")[1])))


@dataclass
class Tally:
    """Mutations tried and how they ended, per kind and per path (in-process handle, HTTP /messages)."""

    tried: Counter[tuple[str, str]] = field(default_factory=Counter)
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, code) in-process
    http_codes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, code) over HTTP
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (kind, HTTP status)

    def as_dict(self) -> dict[str, Any]:
        kinds = sorted({k for k, _p in self.tried})
        return {
            "by_kind": {
                kind: {
                    path: {"tried": self.tried[(kind, path)], "refused": self.refused[(kind, path)]}
                    for path in sorted({p for k, p in self.tried if k == kind})
                }
                for kind in kinds
            },
            "codes": {f"{k} {c}": n for (k, c), n in sorted(self.codes.items())},
            "http_codes": {f"{k} {c}": n for (k, c), n in sorted(self.http_codes.items())},
            "http_statuses": {f"{k} {s}": n for (k, s), n in sorted(self.statuses.items())},
            "total_tried": sum(self.tried.values()),
            "total_refused": sum(self.refused.values()),
        }


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Hostile:
    harness: Harness
    clock: Clock
    captured: list[Captured]
    credentials: dict[str, Credential]
    rogue: CertificateAuthority  # a CA nobody trusts, issuing certificates under real party names
    tally: Tally
    held_back: Captured  # the last hop of a second query, never delivered: that query stays open

    @property
    def data_dir(self) -> Path:
        return self.harness.data_dir

    def credential(self, party: str) -> Credential:
        found = self.credentials.get(party)
        if found is None:
            found = self.credentials[party] = Credential.load(self.data_dir / "keys" / "parties" / party)
        return found

    def parties(self) -> list[str]:
        return sorted(p.name for p in (self.data_dir / "keys" / "parties").iterdir())

    def row_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for org, conn in self.harness.world.stores.items():
            counts.update(table_counts(org, conn))
        return counts


def table_counts(org: str, conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {(org, n): int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}


def business_changes(before: dict[tuple[str, str], int], after: dict[tuple[str, str], int]) -> dict[str, Any]:
    """Tables outside the logs whose row count grew (or, for the replay guard, grew at all)."""
    changed: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        org, table = key
        if table in LOG_TABLES:
            continue
        old, new = before.get(key, 0), after.get(key, 0)
        if (table in SHRINKING_TABLES and new > old) or (table not in SHRINKING_TABLES and new != old):
            changed[f"{org}.{table}"] = (old, new)
    return changed


def audit_size(hostile: Hostile) -> int:
    return sum(c.get((org, "audit_trail"), 0) for org in hostile.harness.world.stores
               for c in [table_counts(org, hostile.harness.world.stores[org])])


def _capture(harness: Harness, clock: Clock, mover: int = 0, hold: str | None = None) -> list[Captured]:
    """Carry one automatic 情報照会 (kurashiki → kuwana) through every service, keeping each wire it crossed;
    a message to ``hold`` is captured but not delivered (and stays in its sender's outbox)."""
    api = harness.client("kurashiki")
    person = harness.population.movers[mover]["ltc_atena_number"]
    started = api.post("/ltc/queries", json=query_body(person))
    assert started.status_code == 201, started.text
    captured: list[Captured] = []
    while True:
        batch = [(name, item) for name, ctx in harness.contexts.items() for item in ctx.driver.pending()
                 if item.message_id not in {c.message_id for c in captured}]
        if not batch:
            break
        for name, item in batch:
            if item.recipient == hold and item.message_type == "nws.provision_reply":
                destination = harness.topology.service_of(item.recipient)
                assert destination is not None
                captured.append(Captured(item.sender, item.recipient, item.message_type, item.wire,
                                         destination.name, item.message_id))
                continue
            clock.now += timedelta(milliseconds=50)
            destination = harness.topology.service_of(item.recipient)
            assert destination is not None
            response = harness.post_message(destination.name, item.wire, item.sender)
            assert response.status_code == 202, response.text
            harness.contexts[name].driver.delivered([item.seq])
            captured.append(Captured(item.sender, item.recipient, item.message_type, item.wire, destination.name,
                                     item.message_id))
    status = api.get(f"/ltc/queries/{started.json()['query_id']}").json()["status"]
    assert status == ("open" if hold else "provided"), status
    return captured


@pytest.fixture(scope="module")
def hostile(
    template: tuple[Path, Topology], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hostile]:
    """A private copy of the service world on a fixed clock, with the wires of one complete 情報照会."""
    source, topology = template
    target = tmp_path_factory.mktemp("hostile") / "world"
    shutil.copytree(source, target)
    topology = with_ports(topology, free_port_base(len(topology.services)))
    (target / "services.json").write_text(json.dumps(topology.as_dict()), encoding="utf-8")
    harness = Harness(target, topology)
    clock = Clock(now_jst())
    for ctx in harness.contexts.values():
        ctx.driver.clock = clock  # every verdict on one clock the test controls: nothing goes stale mid-run
    captured = _capture(harness, clock)
    held_back = _capture(harness, clock, mover=1, hold="platform.intermediate_server.kurashiki")[-1]
    rogue = CertificateAuthority.create("jukisim LGPKI (simulated)", clock.now - timedelta(days=2))
    tally = Tally()
    yield Hostile(harness, clock, captured, {}, rogue, tally, held_back)
    report = tally.as_dict()
    print("\nhostile input:", json.dumps(report, ensure_ascii=False, indent=1))
    out = os.environ.get("JUKISIM_RELIABILITY_OUT")
    if out:
        path = Path(out)
        if path.suffix != ".json":
            path = path / "mutations.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    harness.close()
