"""ContractorDesk and SharedFileServer: roster-bound accounts, premises and contract term, session records and
review, the 再委託 chain, and the shared file server's rights, terminals and per-file passwords."""

from __future__ import annotations

from datetime import timedelta

import pytest

from simulator.components.contractors import SharedFileServer
from simulator.controls.decision import Outcome
from simulator.world import DEMO_PASSWORD

from .conftest import Bench

pytestmark = pytest.mark.slow  # a freshly built world per test (see test_media)


def test_accounts_only_for_rostered_workers(east: Bench) -> None:
    desk = east.desk("kuwana")
    admin = east.session(desk.staff, "itaku-kanri")
    stranger = east.run(lambda now: desk.create_account(admin, now, contract_id="kuwana-c1", worker_id="kuwana-c1-x",
                                                        functions=("maintenance",), password=DEMO_PASSWORD))
    assert stranger.refusal is not None and stranger.refusal.code == "Contract.NotOnRoster"
    assert desk.staff.person("itaku-kuwana-c1-x") is None  # nothing half-written
    ok = east.run(lambda now: desk.create_account(admin, now, contract_id="kuwana-c1", worker_id="kuwana-c1-w2",
                                                  functions=("maintenance",), password=DEMO_PASSWORD))
    assert ok.refusal is None and ok.value == "itaku-kuwana-c1-w2"
    clerk_like = east.session(desk.staff, "itaku-kansa")  # the auditor cannot issue accounts
    denied = east.run(lambda now: desk.create_account(clerk_like, now, contract_id="kuwana-c1",
                                                      worker_id="kuwana-c1-w3", functions=("maintenance",),
                                                      password=DEMO_PASSWORD))
    assert denied.refusal is not None and denied.refusal.code == "Auth.RoleMissing"


def _login(bench: Bench, m: str, user: str, terminal: str | None = None) -> object:
    desk = bench.desk(m)
    premises = desk.rules.premises
    where = terminal or (premises.terminals[0] if premises else "pc")
    return bench.run(lambda now: desk.login(user, DEMO_PASSWORD, now, terminal=where,
                                            biometric=bench.sample(desk.staff, user)))


def test_session_rules_records_and_review(east: Bench) -> None:
    desk = east.desk("tsukuba")
    user = "itaku-tsukuba-c1-w1"
    outside = _login(east, "tsukuba", user, terminal="home-pc")
    assert outside.refusal is not None and outside.refusal.code == "Contract.OffPremises"  # type: ignore[attr-defined]
    wrong = east.run(lambda now: desk.login(user, "not-the-password", now, terminal="tsukuba-honcho2f-01"))
    assert wrong.refusal is not None and wrong.refusal.control_id == "AUTH-002"
    login = _login(east, "tsukuba", user)
    session = login.value  # type: ignore[attr-defined]
    view = east.run(lambda now: desk.operate(session, now, system="tax", function="resident_view"))
    assert view.refusal is not None and view.refusal.control_id == "ITAKU-001"
    dump = east.run(lambda now: desk.operate(session, now, system="tax", function="dump"))
    assert dump.refusal is not None and dump.refusal.control_id == "MEDIA-001"
    work = east.run(lambda now: desk.operate(session, now, system="tax", function="maintenance", target="帳票設定"))
    assert [str(d.outcome) for d in work.decisions if d.control_id == "ITAKU-002"] == ["allow"]
    closed = east.run(lambda now: desk.end_session(session, now, work_record=None))
    assert [d.outcome for d in closed.decisions] == [Outcome.HOLD]
    again = east.run(lambda now: desk.operate(session, now, system="tax", function="maintenance"))
    assert again.refusal is not None  # a closed session cannot act
    auditor = east.session(desk.staff, "itaku-kansa")
    review = east.run(lambda now: desk.review(auditor, now))
    assert review.value[user]["flagged"] and review.value[user]["operations"] == 1
    assert [d.outcome for d in review.decisions] == [Outcome.HOLD]
    ops = desk.conn.execute("SELECT COUNT(*) FROM itaku_operations").fetchone()[0]
    assert ops == 1
    try:
        desk.conn.execute("DELETE FROM itaku_operations")
    except Exception as exc:  # the operation log is append-only
        assert "append-only" in str(exc)
    else:
        raise AssertionError("itaku_operations accepted a DELETE")


def test_contract_end_and_roster_removal(west: Bench) -> None:
    desk = west.desk("kurashiki")
    admin = west.session(desk.staff, "itaku-kanri")
    user = "itaku-kurashiki-c1-w1"
    assert _login(west, "kurashiki", user).refusal is None  # type: ignore[attr-defined]
    removed = west.run(lambda now: desk.remove_from_roster(admin, now, contract_id="kurashiki-c1",
                                                           worker_id="kurashiki-c1-w1"))
    assert removed.refusal is None
    after = _login(west, "kurashiki", user)
    assert after.refusal is not None and after.refusal.code == "Contract.NotOnRoster"  # type: ignore[attr-defined]
    iizuka = west.desk("iizuka")
    west.tick(timedelta(days=200))
    late = _login(west, "iizuka", "itaku-iizuka-c1-w1")
    assert late.refusal is not None and late.refusal.code == "Contract.Ended"  # type: ignore[attr-defined]
    assert iizuka.contracts["iizuka-c1"].ends is not None


def test_subcontract_chain(west: Bench) -> None:
    desk = west.desk("kurashiki")
    admin = west.session(desk.staff, "itaku-kanri")
    chain = desk.contracts["kurashiki-c1"].contractor.chain
    for doc in chain[:-1]:
        assert west.run(lambda now, d=doc: desk.record_document(  # type: ignore[misc]
            admin, now, contract_id="kurashiki-c1", worker_id="kurashiki-c1-s1", document=d)).refusal is None
    early = west.run(lambda now: desk.create_account(admin, now, contract_id="kurashiki-c1",
                                                     worker_id="kurashiki-c1-s1", functions=("maintenance",),
                                                     password=DEMO_PASSWORD))
    assert early.refusal is not None and chain[-1] in early.refusal.reason_ja
    west.run(lambda now: desk.record_document(admin, now, contract_id="kurashiki-c1", worker_id="kurashiki-c1-s1",
                                              document=chain[-1]))
    ok = west.run(lambda now: desk.create_account(admin, now, contract_id="kurashiki-c1",
                                                  worker_id="kurashiki-c1-s1", functions=("maintenance",),
                                                  password=DEMO_PASSWORD))
    assert ok.refusal is None
    # 飯塚市 declares no 再委託: a subcontractor's worker on a roster still gets no account.
    iizuka = west.desk("iizuka")
    boss = west.session(iizuka.staff, "itaku-kanri")
    west.run(lambda now: iizuka.add_to_roster(boss, now, contract_id="iizuka-c1", worker_id="iizuka-c1-s1",
                                              person_name="再委託 太郎", tier=2))
    sub = west.run(lambda now: iizuka.create_account(boss, now, contract_id="iizuka-c1", worker_id="iizuka-c1-s1",
                                                     functions=("maintenance",), password=DEMO_PASSWORD))
    assert sub.refusal is not None and sub.refusal.code == "Contract.SubcontractNotApproved"


def test_shared_file_server(east: Bench) -> None:
    server = east.world.component("tsukuba.shared_file_server")
    assert isinstance(server, SharedFileServer)
    holder = east.session(server.staff, "zei-a")
    put = east.run(lambda now: server.put(holder, now, terminal="tsukuba-zei-01", name="a.csv", content="課税資料",
                                          file_password="pass-for-a-file"))
    assert put.refusal is None
    stored = server.conn.execute("SELECT content FROM shared_files").fetchone()[0]
    assert "課税資料".encode() not in bytes(stored)
    contractor = east.session(server.staff, "itaku-share")
    opened = east.run(lambda now: server.open(contractor, now, terminal="tsukuba-honcho2f-01", name="a.csv",
                                              file_password="pass-for-a-file"))
    assert opened.value == "課税資料"
    wrong = east.run(lambda now: server.open(contractor, now, terminal="tsukuba-honcho2f-01", name="a.csv",
                                             file_password="not-the-password"))
    assert wrong.refusal is not None and wrong.refusal.code == "Contract.FilePasswordWrong"
    other = east.session(server.staff, "zei-b")
    listing = east.run(lambda now: server.listing(other, now, terminal="tsukuba-zei-01"))
    assert listing.refusal is not None and listing.refusal.code == "Auth.RoleMissing"
    outside = east.run(lambda now: server.listing(holder, now, terminal="home-pc"))
    assert outside.refusal is not None and outside.refusal.code == "Contract.OffPremises"
