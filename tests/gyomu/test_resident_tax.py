"""住民税システム (つくば): each GYOMU control allowed and refused at the component, nothing half-written."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from simulator.components.resident_tax import ResidentTaxSystem, assess
from simulator.controls.decision import Outcome
from simulator.model.envelope import MessageType
from tests.gyomu.conftest import Bench, refused_at


def _system(bench: Bench) -> ResidentTaxSystem:
    c = bench.world.component("tsukuba.resident_tax")
    assert isinstance(c, ResidentTaxSystem)
    return c


def _mover(bench: Bench, index: int = 0) -> dict[str, Any]:
    return bench.registered("tsukuba", bench.population.movers[index])


def _return(person: dict[str, Any], **extra: Any) -> dict[str, Any]:
    base = {k: person[k] for k in ("name", "address", "birth_date", "sex", "my_number")}
    return base | {"fiscal_year": 2026, "income": 3_000_000, "deductions": 500_000, "dependants": []} | extra


def _salary(person: dict[str, Any]) -> dict[str, Any]:
    base = {k: person[k] for k in ("name", "address", "birth_date", "sex", "my_number")}
    return base | {"payer_name": "株式会社テスト", "payer_corporate_number": "7050001000001", "fiscal_year": 2026,
                   "payment_amount": 4_000_000, "employment_income": 2_760_000, "total_deductions": 1_000_000,
                   "withheld_tax": 80_000, "dependants": []}


def _decisions(result: Any, control: str) -> list[str]:
    return [str(d.outcome) for d in result.decisions if d.control_id == control]


def _count(system: ResidentTaxSystem, table: str) -> int:
    return int(system.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# -- GYOMU-001 / 002 / 004 -----------------------------------------------------------------------------------


def test_a_return_at_the_counter_is_accepted_with_its_channel(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    result, _ = tsukuba.step(lambda now: system.receive("resident_tax_return", "counter", _return(_mover(tsukuba)),
                                                        now))
    assert result.refusal is None
    assert _decisions(result, "GYOMU-001") == ["allow"] and _decisions(result, "GYOMU-002") == ["allow"]
    stored = system.intake(result.value["intake_id"])
    assert stored is not None and stored["channel"] == "counter" and stored["status"] == "attached"


@pytest.mark.parametrize("channel", [None, ""])
def test_a_record_with_no_channel_is_rejected_and_not_stored(tsukuba: Bench, channel: str | None) -> None:
    system = _system(tsukuba)
    before = _count(system, "resident_tax_intake")
    result, _ = tsukuba.step(lambda now: system.receive("resident_tax_return", channel, _return(_mover(tsukuba)),
                                                        now))
    assert refused_at(result) == ("GYOMU-001", "channel")
    assert _count(system, "resident_tax_intake") == before


def test_a_named_pull_is_not_a_function_of_the_link(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    session = tsukuba.session(system.staff, "zei-a", "zei-link-01")
    result, _ = tsukuba.step(lambda now: system.download(session, "national_tax_link", [], now, target="山田 太郎"))
    assert refused_at(result) == ("GYOMU-001", "target")


def test_an_extra_field_is_rejected_naming_it(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    record = _salary(_mover(tsukuba)) | {"remarks": "自由記載"}
    result, _ = tsukuba.step(lambda now: system.receive("salary_payment_report", "data_link_system", record, now))
    assert refused_at(result) == ("GYOMU-002", "remarks")


def test_a_missing_field_is_rejected_naming_it(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    record = _return(_mover(tsukuba))
    del record["income"]
    result, _ = tsukuba.step(lambda now: system.receive("resident_tax_return", "mail", record, now))
    assert result.refusal is not None
    assert (result.refusal.control_id, result.refusal.field, str(result.refusal.code)) == (
        "GYOMU-002", "income", "Input.FieldMissing")


@pytest.mark.parametrize("channel", ["email", "ad_hoc_upload", "counter"])
def test_a_payment_report_off_the_dedicated_line_is_rejected(tsukuba: Bench, channel: str) -> None:
    system = _system(tsukuba)
    result, _ = tsukuba.step(lambda now: system.receive("salary_payment_report", channel, _salary(_mover(tsukuba)),
                                                        now))
    assert result.refusal is not None and result.refusal.control_id == "GYOMU-004"


def test_an_eltax_payment_report_is_accepted_at_a_designated_terminal(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    session = tsukuba.session(system.staff, "zei-a", "zei-link-01")
    batch = [{"kind": "salary_payment_report", **_salary(_mover(tsukuba))}]
    result, _ = tsukuba.step(lambda now: system.download(session, "eltax", batch, now))
    assert result.refusal is None
    for control in ("GYOMU-001", "GYOMU-002", "GYOMU-004", "GYOMU-010"):
        assert _decisions(result, control) == ["allow"], control


# -- GYOMU-010 ------------------------------------------------------------------------------------------------


def test_a_download_from_an_ordinary_terminal_is_refused(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    session = tsukuba.session(system.staff, "zei-a")
    batch = [{"kind": "salary_payment_report", **_salary(_mover(tsukuba))}]
    result, _ = tsukuba.step(lambda now: system.download(session, "eltax", batch, now))
    assert refused_at(result) == ("GYOMU-010", "terminal")


def test_a_batch_with_one_off_spec_message_is_rejected_whole(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    session = tsukuba.session(system.staff, "zei-a", "zei-link-02")
    good = {"kind": "salary_payment_report", **_salary(_mover(tsukuba))}
    bad = good | {"memo": "仕様外"}
    before = _count(system, "resident_tax_intake")
    result, _ = tsukuba.step(lambda now: system.download(session, "eltax", [good, bad], now))
    assert refused_at(result) == ("GYOMU-010", "batch[1]")
    assert _count(system, "resident_tax_intake") == before


def test_a_user_without_the_link_role_cannot_download(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    session = tsukuba.session(system.staff, "zei-b", "zei-link-01")
    result, _ = tsukuba.step(lambda now: system.download(session, "eltax", [], now))
    assert result.refusal is not None and result.refusal.control_id == "GYOMU-010"


# -- GYOMU-005 / 006 -----------------------------------------------------------------------------------------


def test_another_persons_valid_number_goes_to_the_exception_queue(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    other = tsukuba.population.residents["tsukuba"][1]["my_number"]
    record = _return(_mover(tsukuba)) | {"my_number": other}
    result, _ = tsukuba.step(lambda now: system.receive("resident_tax_return", "mail", record, now))
    assert result.refusal is None
    assert _decisions(result, "GYOMU-005") == [str(Outcome.HOLD)]
    stored = system.intake(result.value["intake_id"])
    assert stored is not None and stored["status"] == "exception" and stored["taxpayer_number"] is None


def test_an_other_body_record_is_attached_only_on_four_matching_items(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    mover = _mover(tsukuba)
    record = {k: mover[k] for k in ("name", "address", "birth_date", "sex")} | {
        "sending_body": "桑名市", "fiscal_year": 2026, "income": 1_000_000, "deductions": 0}
    ok, _ = tsukuba.step(lambda now: system.receive("other_body_return", "other_body", record, now))
    assert _decisions(ok, "GYOMU-006") == ["allow"]
    assert ok.value["taxpayer_number"] == mover["tax_atena_number"]
    off, _ = tsukuba.step(lambda now: system.receive("other_body_return", "other_body",
                                                     record | {"birth_date": "1931-01-01"}, now))
    assert _decisions(off, "GYOMU-006") == [str(Outcome.HOLD)]
    assert off.value["status"] == "review" and off.value["taxpayer_number"] is None


# -- GYOMU-007 ------------------------------------------------------------------------------------------------


def test_ex_officio_correction_needs_a_reason_and_is_kept(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    taken, _ = tsukuba.step(lambda now: system.receive("resident_tax_return", "counter", _return(_mover(tsukuba)),
                                                       now))
    intake = taken.value["intake_id"]
    session = tsukuba.session(system.staff, "zei-a")
    refused, _ = tsukuba.step(lambda now: system.correct(session, intake, "deductions", 1, "  ", now))
    assert refused_at(refused) == ("GYOMU-007", "reason")
    assert system.corrections(intake) == []
    done, _ = tsukuba.step(lambda now: system.correct(session, intake, "deductions", 480_000, "証明書と照合", now))
    assert done.refusal is None
    assert system.corrections(intake) == [{"field": "deductions", "before": 500_000, "after": 480_000,
                                           "reason": "証明書と照合", "operator": "zei-a"}]
    _assert_append_only(system.conn, "resident_tax_corrections", "reason")


# -- GYOMU-013 ------------------------------------------------------------------------------------------------


def test_an_assessment_needs_a_second_persons_read_back(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    number = str(_mover(tsukuba)["tax_atena_number"])
    a, b = tsukuba.session(system.staff, "zei-a"), tsukuba.session(system.staff, "zei-b")
    entered, _ = tsukuba.step(lambda now: system.enter_assessment(a, number, 2026, 3_000_000, 500_000, now))
    assessment = str(entered.value)
    own, _ = tsukuba.step(lambda now: system.confirm_assessment(a, assessment, 3_000_000, 500_000, now))
    assert own.refusal is not None and str(own.refusal.code) == "Auth.SamePersonConfirmation"
    wrong, _ = tsukuba.step(lambda now: system.confirm_assessment(b, assessment, 3_300_000, 500_000, now))
    assert wrong.refusal is not None and wrong.refusal.field == "income"
    status = system.conn.execute("SELECT status FROM resident_tax_assessments WHERE assessment_id = ?",
                                 (assessment,)).fetchone()[0]
    assert status == "entered"
    final, hops = tsukuba.step(lambda now: system.confirm_assessment(b, assessment, 3_000_000, 500_000, now))
    assert final.refusal is None and _decisions(final, "GYOMU-013") == ["allow"]
    assert final.value == {"taxable_income": 2_500_000, "income_levy": 250_000, "per_capita_levy": 5000}
    # The 副本 of 住民税関係情報 leaves through the 税務 system, the existing path.
    assert any(h.message_type == MessageType.REPLICA_UPDATE and h.sender == "tsukuba.tax" for h in hops)


def test_assess_uses_the_standard_rates() -> None:
    assert assess(1_000_000, 1_200_000) == (0, 0, 5000)
    assert assess(2_000_000, 0) == (2_000_000, 200_000, 5000)


# -- GYOMU-008 / 011 ------------------------------------------------------------------------------------------


def test_a_query_needs_the_permission_and_carries_only_its_fields(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    number = str(_mover(tsukuba)["tax_atena_number"])
    queries = f"SELECT COUNT(*) FROM {system.tax.table}_queries"
    before_queries = system.conn.execute(queries).fetchone()[0]
    before_ops = len(system.desk.records(number))
    b = tsukuba.session(system.staff, "zei-b")
    no_role, _ = tsukuba.step(lambda now: system.query(b, number, "48", ["resident_info"], "kuwana", now))
    assert no_role.refusal is not None and (no_role.refusal.control_id, str(no_role.refusal.code)) == (
        "GYOMU-011", "Auth.RoleMissing")
    a = tsukuba.session(system.staff, "zei-a")
    wrong_row, _ = tsukuba.step(lambda now: system.query(a, number, "49", ["resident_info"], "kuwana", now))
    assert wrong_row.refusal is not None and wrong_row.refusal.field == "row"
    fat, _ = tsukuba.step(lambda now: system.query(a, number, "48", ["resident_info"], "kuwana", now,
                                                   attach={"taxable_income": 1}))
    assert refused_at(fat) == ("GYOMU-008", "taxable_income")
    # Nothing half-written: neither the query nor its operation record survived a refusal.
    assert system.conn.execute(queries).fetchone()[0] == before_queries
    assert len(system.desk.records(number)) == before_ops
    ok, hops = tsukuba.step(lambda now: system.query(a, number, "48", ["resident_info"], "kuwana", now))
    assert ok.refusal is None
    assert _decisions(ok, "GYOMU-011") == ["allow"] and _decisions(ok, "GYOMU-008") == ["allow"]
    sent = next(h for h in hops if h.message_type == MessageType.BUSINESS_QUERY)
    assert set(sent.body_keys) <= {"query_id", "business_atena_number", "row", "items", "provider"}
    record = system.desk.records(number)[-1]
    assert (record["staff"], record["terminal"], record["operation"]) == ("zei-a", "zei-a-pc", "query.start")
    _assert_append_only(system.conn, "resident_tax_operations", "staff")


# -- GYOMU-009 ------------------------------------------------------------------------------------------------


def test_a_request_is_answered_only_under_a_basis_that_requires_disclosure(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    number = str(_mover(tsukuba)["tax_atena_number"])
    a = tsukuba.session(system.staff, "zei-a")
    ok, _ = tsukuba.step(lambda now: system.disclose(a, "福祉事務所", "seikatsu_hogo_29", number, now))
    assert ok.refusal is None and "fiscal_year" in ok.value["record"]
    refused, _ = tsukuba.step(lambda now: system.disclose(a, "警察署", "keiji_soshou_197_2", number, now))
    assert refused_at(refused) == ("GYOMU-009", "basis")
    unknown, _ = tsukuba.step(lambda now: system.disclose(a, "某団体", "no_such_law", number, now))
    assert unknown.refusal is not None
    decisions = [(d["basis"], d["decision"]) for d in system.disclosures()]
    assert ("seikatsu_hogo_29", "answered") in decisions and ("keiji_soshou_197_2", "refused") in decisions
    assert ("no_such_law", "refused") in decisions


# -- GYOMU-003 ------------------------------------------------------------------------------------------------


def test_a_dependant_inquiry_must_name_all_three_and_a_declared_relation(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    mover = _mover(tsukuba, 1)
    child = tsukuba.population.residents["kuwana"][2]
    other = tsukuba.population.residents["kuwana"][3]
    declared = _return(mover, dependants=[{"name": child["name"], "birth_date": child["birth_date"],
                                           "relationship": "子"}])
    tsukuba.step(lambda now: system.receive("resident_tax_return", "counter", declared, now))
    a = tsukuba.session(system.staff, "zei-a")
    number = str(mover["tax_atena_number"])
    dep = {"name": child["name"], "birth_date": child["birth_date"]}
    ok, hops = tsukuba.step(lambda now: system.dependant_inquiry(a, number, dep, "子", "kuwana", now))
    assert ok.refusal is None and _decisions(ok, "GYOMU-003") == ["allow"]
    # The other city answered (its desk took its own GYOMU-003 decision) and the answer is kept with the inquiry.
    assert [d.component for h in hops for d in h.decisions if d.control_id == "GYOMU-003"] == [
        "tsukuba.resident_tax", "kuwana.tax_inquiry"]
    answer = system.dependant_answer(str(ok.value))
    assert answer is not None and "found" in answer
    for args, field in (
        (("", dep, "子"), "taxpayer_number"),
        ((number, None, "子"), "dependant"),
        ((number, dep, None), "relationship"),
        ((number, dep, "配偶者"), "dependant"),
        ((number, {"name": other["name"], "birth_date": other["birth_date"]}, "子"), "dependant"),
    ):
        refused, _ = tsukuba.step(lambda now, args=args: system.dependant_inquiry(a, *args, "kuwana", now))
        assert refused_at(refused) == ("GYOMU-003", field)


def test_the_other_city_answers_no_incomplete_inquiry(tsukuba: Bench) -> None:
    system = _system(tsukuba)
    desk = tsukuba.world.component("kuwana.tax_inquiry")
    _, hops = tsukuba.step(lambda now: system.command(now, None, lambda r: system.send(
        r, MessageType.DEPENDANT_INQUIRY, desk.party, now, body={"inquiry_id": "x"},
        personal={"taxpayer": {"name": "某", "city": "tsukuba"}, "relationship": "子"})))
    # A message built outside the system's own checks (no dependant named): the other city does not answer.
    [hop] = [h for h in hops if h.recipient == desk.party]
    assert refused_at(hop) == ("GYOMU-003", "dependant")
    assert not any(h.message_type == MessageType.DEPENDANT_ANSWER for h in hops)


def _assert_append_only(conn: sqlite3.Connection, table: str, column: str) -> None:
    """The table's rows can be neither edited nor deleted (its triggers abort both)."""
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(f"UPDATE {table} SET {column} = 'x'")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(f"DELETE FROM {table}")
