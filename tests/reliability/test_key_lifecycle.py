"""Key lifecycle mid-run, across the services: the provider's 中間サーバー renews its signing certificate and exchanges
go on under the new key; its certificate is revoked and what it signs afterwards is refused with the revocation
code, while what it sent before stays verifiable from the log (the receiving side's hash-chained record of when
each message arrived)."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from simulator.crypto import CertificateAuthority, MessageSecurity, ReplayGuard, TrustStore
from simulator.crypto.lifecycle import renew_party
from simulator.errors import InputError, Refusal, RefusalCode
from simulator.model.envelope import Envelope, MessageType
from simulator.services.world import now_jst, open_world
from simulator.store.db import connect
from tests.reliability.conftest_hostile import unb64u
from tests.services.conftest import PROFILE, Harness, harness, query_body, template, world_dir

__all__ = ["harness", "template", "world_dir"]  # fixtures

PROVIDER = "platform.intermediate_server.kuwana"
NWS = "nws.core"
JST = timezone(timedelta(hours=9), "JST")


class Clock:
    """The services' clock, moved by the test: revocation and receipt times are then exactly ordered."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta = timedelta(milliseconds=50)) -> datetime:
        self.now += delta
        return self.now


def clocked(h: Harness) -> Clock:
    clock = Clock(now_jst())
    for ctx in h.contexts.values():
        ctx.driver.clock = clock
    return clock


def exchange(h: Harness, mover: int) -> tuple[str, list[dict[str, Any]]]:
    """One 情報照会 for ``mover``, carried hop by hop; returns its final status and every hop (wire, HTTP answer,
    the services' time when it was delivered)."""
    clock = h.contexts["nws"].driver.clock
    assert isinstance(clock, Clock)
    api = h.client("kurashiki")
    person = h.population.movers[mover]["ltc_atena_number"]
    query_id = api.post("/ltc/queries", json=query_body(person)).json()["query_id"]
    hops: list[dict[str, Any]] = []
    while batch := [(name, item) for name, ctx in h.contexts.items() for item in ctx.driver.pending()]:
        for name, item in batch:
            destination = h.topology.service_of(item.recipient)
            assert destination is not None
            at = clock.advance()
            response = h.post_message(destination.name, item.wire, item.sender)
            hops.append({"sender": item.sender, "recipient": item.recipient, "type": item.message_type,
                         "wire": item.wire, "id": item.message_id, "status": response.status_code,
                         "refusal": response.json().get("refusal"), "at": at})
            h.contexts[name].driver.delivered([item.seq])
    return str(api.get(f"/ltc/queries/{query_id}").json()["status"]), hops


def signed_by_provider(hops: list[dict[str, Any]]) -> dict[str, Any]:
    return next(hop for hop in hops if hop["sender"] == PROVIDER)


def kid(wire: str) -> str:
    return str(json.loads(unb64u(wire.split(".")[0]))["kid"])


def arrival(h: Harness, party: str, message_id: str) -> datetime:
    """When ``party`` logged the message's arrival, from its hash-chained audit trail."""
    rows = [r for r in h.world.component(party).audit.rows(kind="message.in") if r["data"].get("id") == message_id]
    assert len(rows) == 1, message_id
    return datetime.fromisoformat(str(rows[0]["at"]))


def test_renewal_mid_run_exchanges_continue_under_the_new_key(harness: Harness) -> None:
    h = harness
    clock = clocked(h)
    status, before = exchange(h, 0)
    assert status == "provided"
    old = h.world.component(PROVIDER).security.credential
    assert kid(signed_by_provider(before)["wire"]) == old.fingerprint

    renewed = renew_party(h.world, PROVIDER, clock.advance(timedelta(minutes=1)))
    assert renewed.fingerprint != old.fingerprint and renewed.party_id == PROVIDER
    assert h.world.directory.certificate(PROVIDER) == renewed.certificate

    status, after = exchange(h, 1)
    assert status == "provided", after
    assert all(hop["status"] == 202 for hop in after)
    assert kid(signed_by_provider(after)["wire"]) == renewed.fingerprint
    # The old certificate was not revoked: what it signed before the renewal still verifies from the log.
    nws = h.world.component(NWS).security
    hop = signed_by_provider(before)
    assert nws.verify_logged(hop["wire"], arrival(h, NWS, hop["id"]), clock.now).sender == PROVIDER

    # A world reopened afterwards (a restart) signs with the renewed certificate, as the directory shows.
    reopened = open_world(h.data_dir, PROFILE, clock.now)
    try:
        assert reopened.directory.certificate(PROVIDER) == renewed.certificate
        assert reopened.component(PROVIDER).security.credential.fingerprint == renewed.fingerprint
    finally:
        reopened.close()


def test_revocation_mid_run_refuses_later_messages_and_keeps_earlier_ones_verifiable(harness: Harness) -> None:
    h = harness
    clock = clocked(h)
    status, before = exchange(h, 0)
    assert status == "provided"
    earlier = signed_by_provider(before)
    earlier_at = arrival(h, NWS, earlier["id"])
    assert earlier_at == earlier["at"]

    revoked_at = clock.advance(timedelta(minutes=1))
    h.world.revoke(PROVIDER, revoked_at)
    clock.advance(timedelta(seconds=1))

    status, after = exchange(h, 1)
    assert status == "open"  # the provider's answer never got past NWS
    later = signed_by_provider(after)
    assert later["status"] == 403 and later["refusal"]["code"] == str(RefusalCode.REVOKED_CERTIFICATE)
    assert later["refusal"]["component"] == NWS and later["refusal"]["control_id"] == "NET-003"

    nws = h.world.component(NWS).security
    now = clock.advance()
    # From the log: the earlier answer arrived before the revocation, so it still verifies …
    assert nws.verify_logged(earlier["wire"], earlier_at, now).id == earlier["id"]
    # … the later one was signed after it, and is refused with the revocation code.
    with pytest.raises(Refusal) as refused:
        nws.verify_logged(later["wire"], later["at"], now)
    assert refused.value.code is RefusalCode.REVOKED_CERTIFICATE
    # The message's own issued_at must agree with the logged time: a day-old log entry does not vouch for it.
    with pytest.raises(Refusal) as mismatched:
        nws.verify_logged(earlier["wire"], earlier_at - timedelta(days=1), now)
    assert mismatched.value.code is RefusalCode.STALE_MESSAGE
    # Live, without a trusted time, a revoked certificate is refused for every message.
    with pytest.raises(Refusal) as live:
        nws.verify(earlier["wire"], now)
    assert live.value.code is RefusalCode.REVOKED_CERTIFICATE

    # A renewed certificate after the revocation restores the exchange.
    renew_party(h.world, PROVIDER, clock.advance())
    status, _hops = exchange(h, 2)
    assert status == "provided"


def test_expiry_renewal_and_revocation_judged_at_the_logged_time(tmp_path: Path) -> None:
    """The same rules without services: a one-day certificate expires, its message still verifies at the time
    it was logged; the renewed certificate signs on; after its revocation only what was logged before stands."""
    t0 = datetime(2026, 4, 1, 9, 0, tzinfo=JST)
    ca = CertificateAuthority.create("jukisim test", t0 - timedelta(days=1))
    clock = [t0]
    trust = TrustStore(ca.root_certificate, lambda: ca.crl(clock[0]))
    short = ca.issue("a.sender", "a", t0 - timedelta(hours=1), days=1)
    sender = MessageSecurity(short, trust, ReplayGuard(connect(tmp_path / "a.sqlite"), timedelta(minutes=10)))
    receiver = MessageSecurity(ca.issue("b.receiver", "b", t0 - timedelta(hours=1)), trust,
                               ReplayGuard(connect(tmp_path / "b.sqlite"), timedelta(minutes=10)))

    def message(at: datetime) -> str:
        return sender.sign(Envelope(id=uuid.uuid4().hex, type=MessageType.RECEIPT, sender="a.sender",
                                    recipient="b.receiver", issued_at=at, nonce=secrets.token_hex(16)))

    first = message(t0)
    assert receiver.verify(first, t0).sender == "a.sender"
    clock[0] = later = t0 + timedelta(days=2)
    with pytest.raises(Refusal) as expired:
        receiver.verify(first, later)
    assert expired.value.code is RefusalCode.EXPIRED_CERTIFICATE
    assert receiver.verify_logged(first, t0, later).sender == "a.sender"  # valid when it arrived

    with pytest.raises(InputError):
        sender.renew(receiver.credential)  # another party's credential is not a renewal
    sender.renew(ca.renew(short, later))
    second = message(later)
    assert receiver.verify(second, later).sender == "a.sender"

    revoked_at = later + timedelta(hours=1)
    ca.revoke(sender.credential.certificate.serial_number, revoked_at)
    clock[0] = after = revoked_at + timedelta(hours=1)
    third = message(after)
    assert receiver.verify_logged(second, later, after).sender == "a.sender"  # logged before the revocation
    with pytest.raises(Refusal) as signed_after:
        receiver.verify_logged(third, after, after)  # logged after the revocation
    assert signed_after.value.code is RefusalCode.REVOKED_CERTIFICATE
    with pytest.raises(Refusal) as live:
        receiver.verify(second, after)  # live, without a trusted time
    assert live.value.code is RefusalCode.REVOKED_CERTIFICATE
    with pytest.raises(InputError):
        receiver.verify_logged(second, after + timedelta(hours=1), after)  # a log time cannot be in the future
