"""A service refuses what the in-process path refuses, with the same error code, and logs the refusal as a deny
decision in the refusing organisation's audit trail."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from simulator.components.base import Link
from simulator.drivers.service import OutboxItem, peek
from simulator.model.envelope import Envelope
from simulator.services.world import now_jst
from tests.services.conftest import Harness, query_body


def staged_query(harness: Harness) -> OutboxItem:
    """A genuine 情報照会依頼 from 倉敷市's 宛名 to its 中間サーバー, staged and not yet delivered."""
    mover = harness.population.movers[0]["ltc_atena_number"]
    assert harness.client("kurashiki").post("/ltc/queries", json=query_body(mover)).status_code == 201
    return next(i for i in harness.contexts["kurashiki"].driver.pending() if i.message_type == "atena.business_query")


def in_process(harness: Harness, recipient: str, wire: str, source: str, network: str = "lgwan") -> str | None:
    result = harness.world.component(recipient).handle(wire, Link(source=source, network=network), now_jst())
    return None if result.refusal is None else str(result.refusal.code)


def over_http(harness: Harness, service: str, wire: str, peer: str | None) -> str | None:
    response = harness.post_message(service, wire, peer)
    body = response.json()
    if body["status"] == "accepted":
        assert response.status_code == 202
        return None
    assert response.status_code == 403, response.text
    return str(body["refusal"]["code"])


def last_denial(harness: Harness, party: str) -> dict[str, object]:
    rows = list(harness.world.component(party).audit.rows(kind="decision"))
    return dict(rows[-1]["data"])


def test_tampered_signature(harness: Harness) -> None:
    item = staged_query(harness)
    head, payload, signature = item.wire.split(".")
    tampered = f"{head}.{payload}.{signature[:-6]}{'AAAAAA' if signature[-6:] != 'AAAAAA' else 'BBBBBB'}"
    chukan = "platform.intermediate_server.kurashiki"
    expected = in_process(harness, chukan, tampered, item.sender)
    assert expected == "Security.BadSignature"
    assert over_http(harness, "platform.kurashiki", tampered, item.sender) == expected
    assert last_denial(harness, chukan)["code"] == expected


def test_replayed_message(harness: Harness) -> None:
    """The very same wire again from the same peer (its answer was lost in a crash) gets the kept verdict and has
    no second effect; the same message id signed anew is a replay, refused as in-process (CHUKAN-013)."""
    item = staged_query(harness)
    chukan = "platform.intermediate_server.kurashiki"
    assert over_http(harness, "platform.kurashiki", item.wire, item.sender) is None
    again = harness.post_message("platform.kurashiki", item.wire, item.sender)
    assert again.status_code == 202 and again.json()["duplicate"] is True
    towards_nws = [i for i in harness.contexts["platform.kurashiki"].driver.pending() if i.recipient == "nws.core"]
    assert len(towards_nws) == 1  # one 情報照会, not two
    resigned = harness.world.component(item.sender).security.sign(Envelope.model_validate(peek(item.wire)))
    assert resigned != item.wire  # ES256 signatures are randomised: same message id, other bytes
    expected = in_process(harness, chukan, resigned, item.sender)
    assert expected == "Security.ReplayedMessage"
    assert over_http(harness, "platform.kurashiki", resigned, item.sender) == expected
    assert last_denial(harness, chukan)["code"] == expected


def test_wrong_recipient(harness: Harness) -> None:
    """A 情報照会 for NWS handed to J-LIS: in-process the 全国サーバ refuses it; over HTTP, the J-LIS service."""
    item = staged_query(harness)
    assert over_http(harness, "platform.kurashiki", item.wire, item.sender) is None
    query = next(i for i in harness.contexts["platform.kurashiki"].driver.pending() if i.recipient == "nws.core")
    expected = in_process(harness, "jlis.national_server", query.wire, query.sender)
    assert expected == "Security.WrongRecipient"
    assert over_http(harness, "jlis", query.wire, query.sender) == expected
    assert last_denial(harness, "jlis.national_server")["code"] == expected or last_denial(
        harness, "jlis.prefectural_server.mie")["code"] == expected


def test_stale_message(harness: Harness) -> None:
    atena = harness.world.component("kurashiki.atena")
    envelope = Envelope(
        id=uuid.uuid4().hex, type="atena.business_query", sender="kurashiki.atena",
        recipient="platform.intermediate_server.kurashiki", issued_at=now_jst() - timedelta(hours=1),
        nonce=secrets.token_hex(16), correlation_id="stale", body={},
    )
    wire = atena.security.sign(envelope)
    expected = in_process(harness, "platform.intermediate_server.kurashiki", wire, "kurashiki.atena")
    assert expected == "Security.StaleMessage"
    assert over_http(harness, "platform.kurashiki", wire, "kurashiki.atena") == expected


def test_connection_from_another_party_than_the_signer(harness: Harness) -> None:
    """住基ネット: the TLS peer must be the signed sender. In-process that is Link.source; over HTTP, the certificate."""
    clerk_a = harness.login("kurashiki", "registry", "clerk-a")
    clerk_b = harness.login("kurashiki", "registry", "clerk-b")
    person = next(r for r in harness.population.residents["kurashiki"] if r["status"] == "active")
    form = {"change_type": "move_within", "resident_code": person["resident_code"],
            "address": person["address"].rsplit("丁目", 1)[0] + "丁目3番地", "postal_code": person["postal_code"],
            "change_date": harness.world.now.date().isoformat()}
    api = harness.client("kurashiki")
    change_id = api.post("/registry/changes", json={"form": form}, headers=clerk_a).json()["change_id"]
    assert api.post(f"/registry/changes/{change_id}/confirm", json={"matches": True}, headers=clerk_b).is_success
    item = next(i for i in harness.contexts["kurashiki"].driver.pending() if i.sender == "kurashiki.municipal_cs")
    expected = in_process(harness, item.recipient, item.wire, "kurashiki.atena", network="jukinet")
    assert expected == "Access.SourceNotAllowed"
    assert over_http(harness, "jlis", item.wire, "kurashiki.atena") == expected
    assert over_http(harness, "jlis", item.wire, None) == expected  # no client certificate at all
    assert over_http(harness, "jlis", item.wire, item.sender) is None  # the genuine peer


def test_revoked_sender(harness: Harness) -> None:
    item = staged_query(harness)
    harness.world.revoke("kurashiki.atena", now_jst())
    chukan = "platform.intermediate_server.kurashiki"
    expected = in_process(harness, chukan, item.wire, item.sender)
    assert expected == "Security.RevokedCertificate"
    assert over_http(harness, "platform.kurashiki", item.wire, item.sender) == expected
