"""MediaControl: who may copy, the record, the witness, the 使用管理簿, the bulk threshold, media channels, CS
encryption of 送付先 media and contractor hand-overs; and what a written medium really holds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from simulator.controls.decision import Outcome
from simulator.store.chain import verify_chain
from simulator.world import DEMO_PASSWORD

from .conftest import Bench

# Each test copies a freshly built two-municipality world: seconds unloaded, well over ten on a busy machine.
pytestmark = pytest.mark.slow


def _outcomes(result: object, control: str) -> list[str]:
    return [str(d.outcome) for d in result.decisions if d.control_id == control]  # type: ignore[attr-defined]


def test_kuwana_export_needs_admin_witness_and_medium_and_is_chained(east: Bench) -> None:
    media = east.media("kuwana")
    admin, clerk = east.session(media.staff, "media-admin"), east.session(media.staff, "clerk")

    def witness() -> object:
        return media.witness_session("witness", DEMO_PASSWORD, east.now, east.sample(media.staff, "witness"))

    refused = east.run(lambda now: media.export(clerk, now, file="resident_register", medium_id="mo-1",
                                                witness=witness()))  # type: ignore[arg-type]
    assert refused.refusal is not None and refused.refusal.control_id == "MEDIA-001"
    alone = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id="mo-1"))
    assert alone.refusal is not None and alone.refusal.control_id == "MEDIA-003"
    no_medium = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id=None,
                                                  witness=witness()))  # type: ignore[arg-type]
    assert no_medium.refusal is not None and no_medium.refusal.control_id == "MEDIA-002"
    ok = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id="mo-1",
                                           witness=witness()))  # type: ignore[arg-type]
    assert ok.refusal is None
    for control in ("MEDIA-001", "MEDIA-002", "MEDIA-003", "MEDIA-005"):
        assert _outcomes(ok, control) == ["allow"], control
    # The medium holds ciphertext that opens to the register rows; the record is in the intact hash chain.
    rows = media.open_medium(ok.value["export_id"])
    assert len(rows) == ok.value["records"] > 0
    package = media.conn.execute("SELECT package FROM media_contents").fetchone()[0]
    assert rows[0]["my_number"].encode() not in bytes(package)
    records = list(media.audit.rows(kind="media.export"))
    assert records and records[-1]["data"]["witness"] == "witness" and records[-1]["data"]["medium_id"] == "mo-1"
    assert verify_chain(media.conn, "audit_trail") == []
    # Nothing refused was written.
    assert media.conn.execute("SELECT COUNT(*) FROM media_exports").fetchone()[0] == 1


def test_bulk_threshold_is_cumulative_and_approval_lifts_it(east: Bench) -> None:
    media = east.media("kuwana")
    rule = media.rules.bulk_output
    assert rule is not None
    admin = east.session(media.staff, "media-admin")
    witness = media.witness_session("witness", DEMO_PASSWORD, east.now, east.sample(media.staff, "witness"))
    total, refusal = 0, None
    while refusal is None:
        result = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id="mo-2",
                                                   witness=witness))
        refusal = result.refusal
        if refusal is None:
            total += result.value["records"]
    assert refusal.control_id == "MEDIA-005" and total <= rule.threshold
    manager = east.session(media.staff, "manager")
    own = east.run(lambda now: media.approve_bulk(manager, now, user_id="manager", records=10_000))
    assert own.refusal is not None  # the 管理責任者 cannot approve their own output
    assert east.run(lambda now: media.approve_bulk(manager, now, user_id="media-admin", records=10_000)).refusal is None
    after = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id="mo-3", witness=witness))
    assert after.refusal is None and _outcomes(after, "MEDIA-005") == ["allow"]
    # Outside the window the count starts again.
    east.tick(timedelta(hours=rule.window_hours + 1))
    media.conn.execute("DELETE FROM media_bulk_approvals")  # test set-up only: no approval left
    media.conn.commit()
    fresh = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id="mo-4",
                                              witness=witness))
    assert fresh.refusal is None


def test_tsukuba_usage_register_designated_media_and_encryption(east: Bench) -> None:
    media = east.media("tsukuba")
    admin = east.session(media.staff, "media-admin")
    manager = east.session(media.staff, "manager")
    entry = east.run(lambda now: media.enter_usage(admin, now, medium_id="usb-tsukuba-01", purpose="申請データ")).value
    unapproved = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id="usb-tsukuba-01",
                                                   usage_entry=entry))
    assert unapproved.refusal is not None and unapproved.refusal.control_id == "MEDIA-004"
    assert east.run(lambda now: media.approve_usage(manager, now, entry_id=entry)).refusal is None
    plain = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id="usb-tsukuba-01",
                                              usage_entry=entry, encryption="none"))
    assert plain.refusal is not None and plain.refusal.code == "Security.NotEncrypted"
    ok = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id="usb-tsukuba-01",
                                           usage_entry=entry))
    assert ok.refusal is None and _outcomes(ok, "MEDIA-004") == ["allow"]
    reused = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id="usb-tsukuba-01",
                                               usage_entry=entry))
    assert reused.refusal is not None  # one entry, one copy


def test_tsukuba_handover_and_channels(east: Bench) -> None:
    media = east.media("tsukuba")
    admin, clerk = east.session(media.staff, "media-admin"), east.session(media.staff, "clerk")
    plain = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id="line",
                                              destination="contractor:tsukuba-c1", encryption="none"))
    assert plain.refusal is not None and plain.refusal.control_id == "ITAKU-003"
    sealed = east.run(lambda now: media.export(admin, now, file="resident_register", medium_id="line",
                                               destination="contractor:tsukuba-c1", encryption="passphrase",
                                               passphrase="ibaraki-2026"))
    assert sealed.refusal is None
    assert media.open_medium(sealed.value["export_id"], passphrase="ibaraki-2026")
    disc = east.run(lambda now: media.intake(clerk, now, flow="salary_payment_report", channel="optical_disc"))
    assert _outcomes(disc, "MEDIA-006") == ["allow"]
    refused = east.run(lambda now: media.intake(clerk, now, flow="pension_payment_report", channel="optical_disc"))
    assert refused.refusal is not None and refused.refusal.control_id == "MEDIA-006"


def test_iizuka_delivery_media_encrypted_and_kurashiki_staff_copy(west: Bench) -> None:
    media = west.media("iizuka")
    admin = west.session(media.staff, "media-admin")
    plain = west.run(lambda now: media.export(admin, now, file="delivery_info", medium_id="mo-k", encryption="none"))
    assert plain.refusal is not None and plain.refusal.control_id == "MEDIA-007"
    ok = west.run(lambda now: media.export(admin, now, file="delivery_info", medium_id="mo-k"))
    assert ok.refusal is None and _outcomes(ok, "MEDIA-007") == ["allow"]
    # 倉敷市 claims only the contract clause: a member of staff is not refused, no MEDIA-003/005 there.
    kurashiki = west.media("kurashiki")
    clerk = west.session(kurashiki.staff, "clerk")
    staff_copy = west.run(lambda now: kurashiki.export(clerk, now, file="resident_register", medium_id="mo-x"))
    assert staff_copy.refusal is None
    assert {d.control_id for d in staff_copy.decisions} == {"MEDIA-001"}
    assert all(d.outcome == Outcome.ALLOW for d in staff_copy.decisions)
