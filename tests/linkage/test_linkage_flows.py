"""End-to-end flows of the linkage spine through the in-process driver, with the issue's required refusals.

One small demo world (two municipalities, J-LIS, the platform, NWS) is built once per module; each test
asserts real decisions (control id and outcome), real records and real state, never a mock.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simulator.audit import verify_directory
from simulator.components.base import Link, Outgoing, Result
from simulator.controls.decision import Outcome
from simulator.demo import PROVIDER, REQUESTER, DemoRun, run_flows, setup_world
from simulator.drivers.inproc import Hop
from simulator.errors import Refusal, RefusalCode
from simulator.model.envelope import Envelope, MessageType
from simulator.world import DEMO_PASSWORD

CHUKAN_PROVIDER = f"platform.intermediate_server.{PROVIDER}"
CHUKAN_REQUESTER = f"platform.intermediate_server.{REQUESTER}"
NWS_SIDE = {"nws.core", "portal", CHUKAN_PROVIDER, CHUKAN_REQUESTER}


class Capture:
    def __init__(self) -> None:
        self.messages: list[Outgoing] = []

    def __call__(self, hop: Hop, outgoing: Outgoing) -> None:
        self.messages.append(outgoing)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoRun, Capture]]:
    capture = Capture()
    run = setup_world(tmp_path_factory.mktemp("world"), size=80, on_hop=capture)
    run_flows(run)
    yield run, capture
    run.world.close()


def decisions(hops: list[Hop], control_id: str) -> list[Any]:
    return [d for h in hops for d in h.decisions if d.control_id == control_id]


def test_automatic_query_crosses_two_municipalities(demo: tuple[DemoRun, Capture]) -> None:
    run, _ = demo
    answer = run.facts["query"]
    assert answer["status"] == "provided"
    assert set(answer["data"]) == {"local_tax_info", "resident_info"}
    assert answer["data"]["local_tax_info"]["fiscal_year"] >= 2024
    hops = run.sections["query"]
    path = [(h.sender, h.recipient) for h in hops]
    assert (CHUKAN_REQUESTER, "nws.core") in path and ("nws.core", CHUKAN_PROVIDER) in path
    assert ("nws.core", CHUKAN_REQUESTER) in path
    for control in ("NWS-001", "NWS-003", "CHUKAN-008", "CHUKAN-009", "CHUKAN-010", "CHUKAN-013", "NWS-004"):
        assert [d.outcome for d in decisions(hops, control)] and all(
            d.outcome == Outcome.ALLOW for d in decisions(hops, control)
        ), control


def test_reply_is_ciphertext_nws_cannot_open(demo: tuple[DemoRun, Capture]) -> None:
    run, capture = demo
    replies = [m for m in capture.messages if m.envelope.type == MessageType.PROVISION_REPLY and m.recipient == "nws.core"]
    assert replies
    reply = replies[0]
    assert reply.sealed_for == CHUKAN_REQUESTER
    assert reply.envelope.sealed is not None and reply.envelope.sealed.count(".") == 4  # JWE compact
    with pytest.raises(Exception) as excinfo:
        run.world.nws.security.unseal(reply.envelope.sealed)
    assert getattr(excinfo.value, "code", None) == RefusalCode.DECRYPTION_FAILED


def test_query_not_on_list_is_refused_by_nws(demo: tuple[DemoRun, Capture]) -> None:
    run, _ = demo
    assert run.facts["refused"]["status"] == "refused"
    assert run.facts["refused"]["code"] == RefusalCode.NOT_ON_PERMISSION_LIST
    denied = decisions(run.sections["refused"], "NWS-001")
    assert [d.outcome for d in denied] == [Outcome.DENY]
    assert not [h for h in run.sections["refused"] if h.message_type == MessageType.PROVISION_REQUEST]
    nws_records = [r["kind"] for r in run.world.nws.records.rows()]
    requester_records = [r["kind"] for r in run.world.intermediate(REQUESTER).records.rows()]
    assert "query.refused" in nws_records and "query.refused" in requester_records


def test_requester_outbound_check_refuses_rows_it_may_not_query(demo: tuple[DemoRun, Capture]) -> None:
    run, _ = demo
    ltc = run.world.business(REQUESTER, "ltc")
    mover = run.population.movers[1]
    _started, hops = run.driver.step(
        lambda now: ltc.query("ltc-staff-01", mover["ltc_atena_number"], "42", ["local_tax_info"], PROVIDER, now)
    )
    denied = decisions(hops, "CHUKAN-008")
    assert [d.outcome for d in denied] == [Outcome.DENY]
    assert not [h for h in hops if h.recipient == "nws.core"]


def test_flagged_person_is_held_until_released(demo: tuple[DemoRun, Capture]) -> None:
    run, _ = demo
    assert run.facts["held_before_release"]["status"] == "open"
    held = decisions(run.sections["held"], "CHUKAN-011")
    assert [d.outcome for d in held] == [Outcome.HOLD, Outcome.ALLOW]
    assert run.facts["held"]["status"] == "provided"
    kinds = [r["kind"] for r in run.world.intermediate(PROVIDER).records.rows()]
    assert "provision.held" in kinds
    released = [r for r in run.world.intermediate(PROVIDER).records.rows(kind="provision.sent") if r["data"]["released_by"]]
    assert released and released[0]["data"]["released_by"] == "reviewer"


def test_release_needs_the_reviewer_role(demo: tuple[DemoRun, Capture]) -> None:
    run, _ = demo
    chukan = run.world.intermediate(PROVIDER)
    operator = chukan.staff.authenticate("operator", DEMO_PASSWORD)
    result = chukan.release_held(operator, "no-such-permit", True, run.driver.now)
    assert result.refusal is not None and result.refusal.code == RefusalCode.ROLE_MISSING
    assert result.refusal.control_id == "CHUKAN-011"


def _provision_request(capture: Capture) -> Outgoing:
    return next(m for m in capture.messages if m.envelope.type == MessageType.PROVISION_REQUEST)


def _resend_as_nws(run: DemoRun, body: dict[str, Any]) -> Any:
    """Wrap a (possibly tampered) permit in a fresh, validly signed envelope from NWS and deliver it."""
    nws = run.world.nws
    now = run.driver.advance(__import__("datetime").timedelta(milliseconds=5))
    envelope = Envelope(
        id=uuid.uuid4().hex, type=MessageType.PROVISION_REQUEST, sender="nws.core", recipient=CHUKAN_PROVIDER,
        issued_at=now, nonce=uuid.uuid4().hex, correlation_id="attack", body=body,
    )
    wire = nws.security.sign(envelope)
    return run.world.intermediate(PROVIDER).handle(wire, Link("nws.core", "lgwan"), now)


def test_reused_permit_is_refused(demo: tuple[DemoRun, Capture]) -> None:
    run, capture = demo
    original = _provision_request(capture)
    result = _resend_as_nws(run, dict(original.envelope.body))
    assert result.refusal is not None
    assert result.refusal.code == RefusalCode.PERMIT_REUSED and result.refusal.control_id == "CHUKAN-010"


def test_altered_permit_is_refused(demo: tuple[DemoRun, Capture]) -> None:
    run, capture = demo
    body = dict(_provision_request(capture).envelope.body)
    header, payload, signature = body["permit"].split(".")
    import base64

    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded["body"]["items"] = ["local_tax_info", "resident_info", "ltc_info"]
    decoded["id"] = uuid.uuid4().hex
    forged = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    body["permit"] = f"{header}.{forged}.{signature}"
    result = _resend_as_nws(run, body)
    assert result.refusal is not None
    assert result.refusal.code == RefusalCode.PERMIT_INVALID and result.refusal.control_id == "CHUKAN-013"


def test_permit_forged_by_another_party_is_refused(demo: tuple[DemoRun, Capture]) -> None:
    run, capture = demo
    body = dict(_provision_request(capture).envelope.body)
    requester = run.world.intermediate(REQUESTER)
    now = run.driver.now
    permit = Envelope(
        id=uuid.uuid4().hex, type=MessageType.PERMIT, sender=CHUKAN_REQUESTER, recipient=CHUKAN_PROVIDER,
        issued_at=now, nonce=uuid.uuid4().hex, body=json.loads(json.dumps(body["route"])) | {"forged": True},
    )
    body["permit"] = requester.security.sign(permit)
    result = _resend_as_nws(run, body)
    assert result.refusal is not None
    assert result.refusal.code == RefusalCode.PERMIT_INVALID and result.refusal.control_id == "CHUKAN-013"


def test_replayed_and_tampered_messages_are_refused(demo: tuple[DemoRun, Capture]) -> None:
    run, capture = demo
    message = next(m for m in capture.messages if m.envelope.type == MessageType.QUERY)
    nws = run.world.nws
    replay = nws.handle(message.wire, Link(message.envelope.sender, "lgwan"), message.envelope.issued_at)
    assert replay.refusal is not None and replay.refusal.code == RefusalCode.REPLAYED_MESSAGE
    header, payload, signature = message.wire.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    tampered = nws.handle(f"{header}.{payload}.{flipped}", Link(message.envelope.sender, "lgwan"), run.driver.now)
    assert tampered.refusal is not None and tampered.refusal.code == RefusalCode.BAD_SIGNATURE


def test_revoked_certificate_is_refused(tmp_path: Path) -> None:
    run = setup_world(tmp_path / "revoked", size=80)
    try:
        world = run.world
        atena = f"{REQUESTER}.atena"
        serial = world.directory.certificate(atena).serial_number
        world.ca.revoke(serial, run.driver.now)
        ltc = world.business(REQUESTER, "ltc")
        person = run.population.movers[0]
        _started, hops = run.driver.step(
            lambda now: ltc.query("ltc-staff-01", person["ltc_atena_number"], "94", ["resident_info"], PROVIDER, now)
        )
        refused = [h for h in hops if h.refusal is not None]
        assert refused and refused[0].refusal is not None
        assert refused[0].refusal.code == RefusalCode.REVOKED_CERTIFICATE
        assert refused[0].refusal.control_id == "NET-003"
    finally:
        run.world.close()


def test_nothing_personal_is_sealed_to_a_revoked_reader(tmp_path: Path) -> None:
    """The provider's 中間サーバー is revoked: the answer is not sealed to it by anyone, and nothing is provided."""
    run = setup_world(tmp_path / "revoked-reader", size=80)
    try:
        world = run.world
        requester_chukan = f"platform.intermediate_server.{REQUESTER}"
        world.ca.revoke(world.directory.certificate(requester_chukan).serial_number, run.driver.now)
        provider_chukan = world.intermediate(PROVIDER)
        result = Result()
        with pytest.raises(Refusal) as refused:
            provider_chukan.send(result, MessageType.QUERY, "nws.core", run.driver.now,
                                 personal={"probe": 1}, seal_to=requester_chukan)
        assert refused.value.code == RefusalCode.REVOKED_CERTIFICATE and refused.value.control_id == "NET-003"
        assert not result.outgoing
        fine = Result()
        provider_chukan.send(fine, MessageType.QUERY, "nws.core", run.driver.now, personal={"probe": 1})
        assert fine.outgoing and fine.outgoing[0].sealed_for == "nws.core"
    finally:
        run.world.close()


def test_tenant_cannot_read_another_tenants_replica(demo: tuple[DemoRun, Capture]) -> None:
    run, _ = demo
    chukan_b = run.world.intermediate(REQUESTER)
    reviewer = chukan_b.login("reviewer", DEMO_PASSWORD, run.driver.now).value  # recorded login (CHUKAN-017)
    provider_db = run.world.stores[f"platform.{PROVIDER}"]
    atena_number, item = provider_db.execute("SELECT atena_number, item FROM chukan_replicas LIMIT 1").fetchone()
    result = chukan_b.view_replica(reviewer, PROVIDER, atena_number, item, run.driver.now)
    assert result.refusal is not None and result.refusal.control_id == "PF-003"
    own = chukan_b.view_replica(reviewer, REQUESTER, atena_number, item, run.driver.now)
    assert own.refusal is None and own.value is None  # B has no such row in its own partition
    # Even with B's files in hand, A's rows do not open under B's key.
    nonce, ciphertext = provider_db.execute("SELECT nonce, ciphertext FROM chukan_replicas LIMIT 1").fetchone()
    b_key = (run.world.data_dir / "keys" / f"platform.{REQUESTER}.replica.key").read_bytes()
    with pytest.raises(InvalidTag):
        AESGCM(b_key).decrypt(nonce, ciphertext, f"{PROVIDER}|{atena_number}|{item}".encode())


def test_same_person_has_different_codes_at_each_organisation(demo: tuple[DemoRun, Capture]) -> None:
    run, _ = demo
    nws = run.world.stores["nws"]
    rows = nws.execute(
        "SELECT link_code, COUNT(DISTINCT org), COUNT(DISTINCT linkage_code) FROM nws_linkage_codes"
        " GROUP BY link_code HAVING COUNT(DISTINCT org) > 1"
    ).fetchall()
    assert rows, "the movers must hold codes at both municipalities"
    assert all(orgs == codes for _link, orgs, codes in rows)


def _all_text_of_store(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        chunks = []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in conn.execute(f"SELECT * FROM {table}"):
                chunks.extend(str(v) for v in row if isinstance(v, str))
        return "\n".join(chunks)
    finally:
        conn.close()


def _opened(run: DemoRun, message: Outgoing) -> str:
    """Everything the message carries: the signed body, and the sealed payload opened by its reader."""
    text = json.dumps(message.envelope.body, ensure_ascii=False)
    if message.envelope.sealed and message.sealed_for:
        reader = run.world.component(message.sealed_for)
        text += json.dumps(reader.security.unseal(message.envelope.sealed), ensure_ascii=False)
    return text


def test_no_my_number_on_nws_and_no_linkage_code_outside_nws_side(demo: tuple[DemoRun, Capture]) -> None:
    run, capture = demo
    my_numbers = {r["my_number"] for rows in run.population.residents.values() for r in rows}
    codes = {c for (c,) in run.world.stores["nws"].execute("SELECT linkage_code FROM nws_linkage_codes")}
    assert my_numbers and codes
    mn_pattern = re.compile("|".join(sorted(my_numbers)))
    code_pattern = re.compile("|".join(sorted(codes)))
    nws_traffic = [m for m in capture.messages if {m.envelope.sender, m.recipient} & {"nws.core"}]
    assert nws_traffic
    for message in nws_traffic:
        assert not mn_pattern.search(_opened(run, message)), message.envelope.type
    city_traffic = [m for m in capture.messages if not ({m.envelope.sender, m.recipient} & NWS_SIDE)]
    assert city_traffic
    for message in city_traffic:
        assert not code_pattern.search(_opened(run, message)), message.envelope.type
    for store in run.world.data_dir.glob("*.sqlite"):
        text = _all_text_of_store(store)
        if store.stem == "nws" or store.stem.startswith("platform."):
            assert not mn_pattern.search(text), store.name
        else:
            assert not code_pattern.search(text), store.name


def test_resident_sees_only_their_own_records(demo: tuple[DemoRun, Capture]) -> None:
    run, _ = demo
    records = run.facts["portal"]
    assert records
    assert {r["requester"] for r in records if r.get("requester")} <= {REQUESTER}
    assert any(r["kind"] == "query.mediated" for r in records)
    protected_permits = {
        r["data"]["permit_id"] for r in run.world.nws.records.rows(kind="query.mediated")
    } - {r.get("permit_id") for r in records}
    assert protected_permits, "other people's exchanges exist but are not shown"


def test_provision_records_at_requester_nws_and_provider(demo: tuple[DemoRun, Capture]) -> None:
    run, _ = demo
    report = verify_directory(run.world.data_dir)
    assert report.ok, (report.breaks, report.missing_records)
    assert report.files["nws.sqlite"]["provision_records"] > 0
    assert report.files[f"platform.{PROVIDER}.sqlite"]["provision_records"] > 0
    assert report.files[f"platform.{REQUESTER}.sqlite"]["provision_records"] > 0
