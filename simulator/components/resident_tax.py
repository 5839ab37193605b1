"""住民税システム (つくば市, 001): 課税資料の受付, 賦課 with 読み合わせ, 職権修正, 照会, 扶養照会 and non-NWS requests.

It composes the generic 税務 BusinessSystem (宛名 link, 副本, NWS 照会) and adds the controls the seed states before
that (GYOMU-001..010, 013). It must never offer an operation that fetches a named person's data from outside, never
edit a collected record except by 職権修正, and never answer a non-NWS request without a basis for disclosure.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.business import BusinessSystem
from simulator.components.gyomu_data import RecordKind, ResidentTaxData
from simulator.components.linkage_desk import LinkageDesk
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import Refusal, RefusalCode
from simulator.model.envelope import Envelope, MessageType
from simulator.store.db import transaction

__all__ = ["QUERY_FIELDS", "ResidentTaxSystem", "assess"]

#: What a 照会 may carry from the 住民税システム towards 宛名 / 中間サーバー (GYOMU-008), and nothing else.
QUERY_FIELDS = frozenset({"business_atena_number", "row", "items", "provider"})
_BASIC_FOUR = ("name", "address", "birth_date", "sex")
# 均等割 at the standard rates (市町村民税 3,000 + 道府県民税 1,000 + 森林環境税 1,000 yen) and 所得割 at the
# standard 10 % (市町村 6 % + 道府県 4 %); the seed states no rates, so the standard ones are used.
PER_CAPITA_LEVY = 5000
INCOME_LEVY_RATE_PERCENT = 10


def assess(income: int, deductions: int) -> tuple[int, int, int]:
    """(taxable income, 所得割, 均等割) at the standard rates."""
    taxable = max(0, income - deductions)
    return taxable, taxable * INCOME_LEVY_RATE_PERCENT // 100, PER_CAPITA_LEVY


class ResidentTaxSystem(Component):
    name_ja = "住民税システム"
    name_en = "resident tax system"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        data: ResidentTaxData,
        tax: BusinessSystem,
        staff: StaffDirectory,
        provision_rows: frozenset[str],
        query_rows: frozenset[str],
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.data = data
        self.tax = tax
        self.staff = staff
        self.desk = LinkageDesk(self, conn, staff, table="resident_tax_operations", query_role="nws_query",
                                query_rows=query_rows, provision_rows=provision_rows)
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS resident_tax_intake (
                intake_id TEXT PRIMARY KEY, kind TEXT NOT NULL, channel TEXT NOT NULL, terminal TEXT,
                received_at TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('attached', 'exception', 'review')),
                taxpayer_number TEXT, record TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS resident_tax_assessments (
                assessment_id TEXT PRIMARY KEY, taxpayer_number TEXT NOT NULL, fiscal_year INTEGER NOT NULL,
                income INTEGER NOT NULL, deductions INTEGER NOT NULL, entered_by TEXT NOT NULL,
                entered_at TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('entered', 'final')),
                confirmed_by TEXT, confirmed_at TEXT);
            CREATE TABLE IF NOT EXISTS resident_tax_corrections (
                correction_id TEXT PRIMARY KEY, intake_id TEXT NOT NULL, field TEXT NOT NULL, before TEXT,
                after TEXT, reason TEXT NOT NULL CHECK (length(trim(reason)) > 0), operator TEXT NOT NULL,
                terminal TEXT NOT NULL, at TEXT NOT NULL);
            CREATE TRIGGER IF NOT EXISTS resident_tax_corrections_fixed BEFORE UPDATE ON resident_tax_corrections
                BEGIN SELECT RAISE(ABORT, 'resident_tax_corrections: correction records cannot be edited'); END;
            CREATE TRIGGER IF NOT EXISTS resident_tax_corrections_kept BEFORE DELETE ON resident_tax_corrections
                BEGIN SELECT RAISE(ABORT, 'resident_tax_corrections: correction records cannot be deleted'); END;
            CREATE TABLE IF NOT EXISTS resident_tax_disclosures (
                request_id TEXT PRIMARY KEY, requester TEXT NOT NULL, basis TEXT NOT NULL, discloses TEXT NOT NULL,
                taxpayer_number TEXT NOT NULL, decision TEXT NOT NULL, operator TEXT NOT NULL, at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS resident_tax_dependant_inquiries (
                inquiry_id TEXT PRIMARY KEY, taxpayer_number TEXT NOT NULL, dependant TEXT NOT NULL,
                relationship TEXT NOT NULL, recipient TEXT NOT NULL, operator TEXT NOT NULL, at TEXT NOT NULL,
                answer TEXT, answered_at TEXT);
            """
        )
        self._handlers = {MessageType.DEPENDANT_ANSWER: self._on_dependant_answer}

    # -- the city's taxpayers, as the 宛名管理システム knows them ---------------------------------------------

    def taxpayers(self) -> list[dict[str, str]]:
        """Every person the 税務 system is linked to in the 宛名管理システム, with their 個人番号 and 基本4情報.

        Read from the 宛名 tables of the same municipal store (the 宛名管理システム and 住民税システム share the
        基幹 platform in 001); never written here.
        """
        rows = self.conn.execute(
            "SELECT l.business_atena_number, p.my_number, p.name, p.address, p.birth_date, p.sex"
            " FROM atena_business_links l JOIN atena_persons p ON p.atena_number = l.atena_number"
            " WHERE l.business = ? ORDER BY l.business_atena_number",
            (self.tax.business,),
        ).fetchall()
        keys = ("taxpayer_number", "my_number", *_BASIC_FOUR)
        return [dict(zip(keys, (str(v) if v is not None else "" for v in r), strict=True)) for r in rows]

    def _taxpayer(self, number: str) -> dict[str, str] | None:
        return next((t for t in self.taxpayers() if t["taxpayer_number"] == number), None)

    def _match_four(self, record: Mapping[str, Any]) -> list[dict[str, str]]:
        return [t for t in self.taxpayers() if all(str(record.get(k, "")) == t[k] for k in _BASIC_FOUR)]

    # -- intake (GYOMU-001, 002, 004, 005, 006, 010) --------------------------------------------------------

    def receive(self, kind: str, channel: str | None, record: Mapping[str, Any], now: datetime) -> Result:
        """One 課税資料 handed in at the counter, by post, from another body or on disc (not a restricted link)."""

        def act(result: Result) -> None:
            spec = self._check(kind, channel, record)
            assert channel is not None
            if self.data.channels[channel].restricted:
                raise self.refuse(
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "GYOMU-010",
                    f"{self.data.channels[channel].name_ja}の資料は指定端末での取込みでのみ受け付けます",
                    f"records on the {channel} channel are taken in only by a download at a designated terminal",
                    field="channel",
                )
            result.value = self._accept(result, kind, spec, channel, record, None, now)

        return self.command(now, None, act)

    def download(
        self,
        session: StaffSession,
        channel: str,
        batch: Sequence[Mapping[str, Any]],
        now: datetime,
        *,
        target: str | None = None,
    ) -> Result:
        """Take in a 国税連携 or eLTAX batch at a designated terminal (GYOMU-010).

        The link delivers what was sent to the city; there is no request for a named person (GYOMU-001), so a
        download naming a ``target`` is refused.
        """

        def act(result: Result) -> None:
            if target:
                raise self.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED,
                    "GYOMU-001",
                    "特定の者の課税資料を取り寄せる機能はありません（資料は本人の申告や税務署等からの送付でのみ入手します）",
                    "there is no operation that fetches a named person's data; records only arrive as sent",
                    field="target",
                )
            self.staff.require(session, "tax_link_operator", "GYOMU-010", "国税連携・eLTAXの取込み", "download")
            env = self.data.restricted_environment
            if channel not in self.data.channels or not self.data.channels[channel].restricted:
                raise self.refuse(
                    RefusalCode.FIELD_INVALID,
                    "GYOMU-010",
                    f"{channel} は国税連携・eLTAXの経路ではありません",
                    f"{channel!r} is not a restricted link (national tax link or eLTAX)",
                    field="channel",
                )
            if session.terminal not in env.terminals:
                raise self.refuse(
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "GYOMU-010",
                    f"端末 {session.terminal} は国税連携・eLTAXの指定端末ではありません",
                    f"terminal {session.terminal!r} is not a designated terminal on {env.segment}",
                    field="terminal",
                )
            if not batch:
                raise self.refuse(RefusalCode.FIELD_MISSING, "GYOMU-010", "取込むデータがありません",
                                  "the batch is empty", field="batch")
            checked: list[tuple[str, RecordKind, Mapping[str, Any]]] = []
            for index, message in enumerate(batch):
                kind = str(message.get("kind", ""))
                spec = self.data.record_kinds.get(kind)
                fields = {k: v for k, v in message.items() if k != "kind"}
                if spec is None or channel not in spec.channels or set(fields) != set(spec.fields):
                    # A batch is taken in whole or not at all: one non-conforming message rejects it (spec).
                    raise self.refuse(
                        RefusalCode.MALFORMED_MESSAGE,
                        "GYOMU-010",
                        f"{index + 1}件目のデータが定められた仕様に合いません（種別 {kind or 'なし'}）",
                        f"message {index + 1} does not conform to the fixed interface specification (kind {kind!r})",
                        field=f"batch[{index}]",
                    )
                checked.append((kind, spec, fields))
            self.allow(
                result,
                "GYOMU-010",
                now,
                "指定端末から定められた仕様のデータを取り込みました",
                "a conformant batch was downloaded at a designated terminal",
                None,
                terminal=session.terminal,
                channel=channel,
                count=len(checked),
            )
            self.desk.record(session, "-", f"download.{channel}", now, {"count": len(checked)})
            result.value = [
                self._accept(result, kind, spec, channel, fields, session.terminal, now) for kind, spec, fields in checked
            ]

        return self.command(now, None, act)

    def _check(self, kind: str, channel: str | None, record: Mapping[str, Any]) -> RecordKind:
        """Channel and schema checks that refuse (GYOMU-001, 004, 002); the record is then well-formed."""
        if not channel:
            raise self.refuse(
                RefusalCode.FIELD_MISSING,
                "GYOMU-001",
                "入手経路（本人窓口・郵送・国税連携・eLTAX・他団体）のない課税資料は受け付けません",
                "a record with no source channel is rejected",
                field="channel",
            )
        spec = self.data.record_kinds.get(kind)
        if spec is None:
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                "GYOMU-002",
                f"定められた様式ではありません: {kind}",
                f"{kind!r} is not one of the fixed record kinds {sorted(self.data.record_kinds)}",
                field="kind",
            )
        if spec.payer_report and channel not in spec.channels:
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                "GYOMU-004",
                f"{spec.name_ja}は専用線（eLTAX）またはデータ連携システムでのみ受け付けます（経路: {channel}）",
                f"payment reports are accepted only on {list(spec.channels)}; refused on {channel!r}",
                field="channel",
            )
        if channel not in self.data.channels or channel not in spec.channels:
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                "GYOMU-001",
                f"{spec.name_ja}はこの経路では受け付けません: {channel}",
                f"{kind} does not arrive on {channel!r}; its channels are {list(spec.channels)}",
                field="channel",
            )
        extra = sorted(set(record) - set(spec.fields))
        if extra:
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED,
                "GYOMU-002",
                f"{spec.name_ja}の様式にない項目があります: {', '.join(extra)}",
                f"{kind} carries fields outside its fixed schema: {extra}",
                field=extra[0],
            )
        missing = [f for f in spec.fields if f not in record]
        if missing:
            raise self.refuse(
                RefusalCode.FIELD_MISSING,
                "GYOMU-002",
                f"{spec.name_ja}の必須項目がありません: {', '.join(missing)}",
                f"{kind} lacks fields of its schema: {missing}",
                field=missing[0],
            )
        return spec

    def _accept(
        self,
        result: Result,
        kind: str,
        spec: RecordKind,
        channel: str,
        record: Mapping[str, Any],
        terminal: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        intake_id = uuid.uuid4().hex
        self.allow(result, "GYOMU-001", now, f"{self.data.channels[channel].name_ja}から入手しました",
                   f"received on the declared channel {channel}", None, intake=intake_id, channel=channel)
        self.allow(result, "GYOMU-002", now, f"{spec.name_ja}の定められた項目どおりです",
                   f"{kind} conforms to its fixed schema", None, intake=intake_id, kind=kind)
        if spec.payer_report:
            self.allow(result, "GYOMU-004", now, "支払報告書を専用線経由で受け付けました",
                       "the payment report arrived on the dedicated line", None, intake=intake_id, channel=channel)
        status, taxpayer = "attached", None
        if channel == "other_body":
            status, taxpayer = self._match_other_body(result, intake_id, record, now)
        elif "my_number" in record:
            status, taxpayer = self._match_number(result, intake_id, record, now, payer_report=spec.payer_report)
        self.conn.execute(
            "INSERT INTO resident_tax_intake (intake_id, kind, channel, terminal, received_at, status, taxpayer_number,"
            " record) VALUES (?,?,?,?,?,?,?,?)",
            (intake_id, kind, channel, terminal, now.isoformat(), status, taxpayer,
             json.dumps(dict(record), ensure_ascii=False, sort_keys=True)),
        )
        return {"intake_id": intake_id, "status": status, "taxpayer_number": taxpayer}

    def _match_other_body(
        self, result: Result, intake_id: str, record: Mapping[str, Any], now: datetime
    ) -> tuple[str, str | None]:
        """GYOMU-006: one by one on the 基本4情報 against the city's taxpayers; otherwise held for review."""
        found = self._match_four(record)
        if len(found) == 1:
            self.allow(result, "GYOMU-006", now, "基本4情報が課税対象者と一致したため紐付けました",
                       "all four basic items match one taxpayer; attached", None,
                       intake=intake_id, taxpayer=found[0]["taxpayer_number"])
            return "attached", found[0]["taxpayer_number"]
        result.decisions.append(
            self.decide(
                "GYOMU-006",
                Outcome.HOLD,
                now,
                reason_ja="基本4情報が一致する課税対象者がいないため紐付けず、確認待ちにしました",
                reason_en="no single taxpayer matches on the four basic items; not attached, queued for review",
                evidence={"intake": intake_id, "candidates": len(found)},
                code=str(RefusalCode.HELD_FOR_REVIEW),
            )
        )
        return "review", None

    def _match_number(
        self, result: Result, intake_id: str, record: Mapping[str, Any], now: datetime, *, payer_report: bool
    ) -> tuple[str, str | None]:
        """GYOMU-005: the declared 個人番号 must be the 宛名 record's of the person the form identifies."""
        identified = self._match_four(record)
        person = identified[0] if len(identified) == 1 else None
        if person is not None and person["my_number"] == str(record.get("my_number")):
            if not payer_report:
                self.allow(result, "GYOMU-005", now, "申告された個人番号が宛名管理システムの記録と一致しました",
                           "the declared number matches the addressee record of the identified person", None,
                           intake=intake_id, taxpayer=person["taxpayer_number"])
            return "attached", person["taxpayer_number"]
        if payer_report:
            return "review", None
        result.decisions.append(
            self.decide(
                "GYOMU-005",
                Outcome.HOLD,
                now,
                reason_ja="申告された個人番号が本人確認した者の宛名記録と一致しないため、例外処理に回しました",
                reason_en="the declared number does not match the identified person's addressee record; exception queue",
                evidence={"intake": intake_id, "identified": person is not None},
                code=str(RefusalCode.HELD_FOR_REVIEW),
            )
        )
        return "exception", None

    def intake(self, intake_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT kind, channel, status, taxpayer_number, record FROM resident_tax_intake WHERE intake_id = ?",
            (intake_id,),
        ).fetchone()
        if row is None:
            return None
        return {"kind": row[0], "channel": row[1], "status": row[2], "taxpayer_number": row[3],
                "record": json.loads(row[4])}

    # -- 職権修正 (GYOMU-007) --------------------------------------------------------------------------------

    def correct(
        self, session: StaffSession, intake_id: str, field: str, value: Any, reason: str, now: datetime
    ) -> Result:
        """Correct one field of a collected record ex officio, recording reason, before, after and operator."""

        def act(result: Result) -> None:
            self.staff.require(session, "tax_assessor", "GYOMU-007", "職権修正", "correct ex officio")
            if not reason or not str(reason).strip():
                raise self.refuse(RefusalCode.FIELD_MISSING, "GYOMU-007", "職権修正には理由が必要です",
                                  "an ex-officio correction needs a reason", field="reason")
            current = self.intake(intake_id)
            if current is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "GYOMU-007", "該当する課税資料がありません",
                                  "no such collected record", field="intake_id")
            record = dict(current["record"])
            if field not in record:
                raise self.refuse(RefusalCode.FIELD_INVALID, "GYOMU-007", f"この資料に項目 {field} はありません",
                                  f"the record has no field {field!r}", field="field")
            before = record[field]
            record[field] = value
            self.conn.execute("UPDATE resident_tax_intake SET record = ? WHERE intake_id = ?",
                              (json.dumps(record, ensure_ascii=False, sort_keys=True), intake_id))
            correction_id = uuid.uuid4().hex
            self.conn.execute(
                "INSERT INTO resident_tax_corrections (correction_id, intake_id, field, before, after, reason, operator,"
                " terminal, at) VALUES (?,?,?,?,?,?,?,?,?)",
                (correction_id, intake_id, field, json.dumps(before, ensure_ascii=False),
                 json.dumps(value, ensure_ascii=False), reason, session.user_id, session.terminal, now.isoformat()),
            )
            self.allow(result, "GYOMU-007", now, "理由・修正前後の値・操作者を記録して職権修正しました",
                       "corrected ex officio with reason, before and after values and operator recorded", None,
                       correction=correction_id, field=field, operator=session.user_id)
            result.value = correction_id

        return self.command(now, None, act)

    def corrections(self, intake_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT field, before, after, reason, operator FROM resident_tax_corrections WHERE intake_id = ? ORDER BY at",
            (intake_id,),
        ).fetchall()
        return [{"field": r[0], "before": json.loads(r[1]), "after": json.loads(r[2]), "reason": r[3],
                 "operator": r[4]} for r in rows]

    # -- 賦課 with 読み合わせ (GYOMU-013) ----------------------------------------------------------------------

    def enter_assessment(
        self, session: StaffSession, taxpayer_number: str, fiscal_year: int, income: int, deductions: int,
        now: datetime,
    ) -> Result:
        def act(result: Result) -> None:
            self.staff.require(session, "tax_assessor", "GYOMU-013", "賦課の入力", "enter an assessment")
            if self._taxpayer(taxpayer_number) is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "GYOMU-013", "課税対象者ではありません",
                                  "not a taxpayer of the city", field="taxpayer_number")
            for name, amount in (("income", income), ("deductions", deductions)):
                if not isinstance(amount, int) or amount < 0:
                    raise self.refuse(RefusalCode.FIELD_INVALID, "GYOMU-013", f"{name} は0以上の整数です",
                                      f"{name} must be a whole number of yen, at least 0", field=name)
            assessment_id = uuid.uuid4().hex
            self.conn.execute(
                "INSERT INTO resident_tax_assessments (assessment_id, taxpayer_number, fiscal_year, income, deductions,"
                " entered_by, entered_at, status) VALUES (?,?,?,?,?,?,?, 'entered')",
                (assessment_id, taxpayer_number, fiscal_year, income, deductions, session.user_id, now.isoformat()),
            )
            self.desk.record(session, taxpayer_number, "assessment.enter", now, {"assessment": assessment_id})
            result.value = assessment_id

        return self.command(now, None, act)

    def confirm_assessment(
        self, session: StaffSession, assessment_id: str, income: int, deductions: int, now: datetime
    ) -> Result:
        """The 読み合わせ: a second assessor reads back income and deductions; only then is the 賦課 final and
        its 住民税関係情報 published as the 副本 through the 税務 system."""

        def act(result: Result) -> None:
            self.staff.require(session, "tax_assessor", "GYOMU-013", "賦課の確認", "confirm an assessment")
            row = self.conn.execute(
                "SELECT taxpayer_number, fiscal_year, income, deductions, entered_by, status"
                " FROM resident_tax_assessments WHERE assessment_id = ?",
                (assessment_id,),
            ).fetchone()
            if row is None or row[5] != "entered":
                raise self.refuse(RefusalCode.STATE_CONFLICT, "GYOMU-013", "確認待ちの賦課がありません",
                                  "no assessment awaiting confirmation", field="assessment_id")
            number, year, entered_income, entered_deductions, entered_by, _ = row
            if entered_by == session.user_id:
                raise self.refuse(RefusalCode.SAME_PERSON_CONFIRMATION, "GYOMU-013",
                                  "入力した職員自身は読み合わせの確認者になれません",
                                  "the user who entered the amounts cannot confirm them", field="session")
            if (income, deductions) != (entered_income, entered_deductions):
                raise self.refuse(RefusalCode.FIELD_INVALID, "GYOMU-013",
                                  "読み合わせの所得額・控除額が入力と一致しません",
                                  "the read-back income or deductions differ from the entry", field="income")
            self.conn.execute(
                "UPDATE resident_tax_assessments SET status = 'final', confirmed_by = ?, confirmed_at = ?"
                " WHERE assessment_id = ?",
                (session.user_id, now.isoformat(), assessment_id),
            )
            taxable, income_levy, per_capita = assess(income, deductions)
            self.allow(result, "GYOMU-013", now, "別の職員の読み合わせで所得額・控除額を確認し、賦課を確定しました",
                       "a second person read back income and deductions; the assessment is final", None,
                       assessment=assessment_id, entered_by=entered_by, confirmed_by=session.user_id)
            person = self._taxpayer(number)
            assert person is not None
            published = self.tax.register(
                number,
                person["my_number"],
                {"fiscal_year": year, "taxable_income": taxable, "income_levy": income_levy,
                 "per_capita_levy": per_capita},
                now,
            )
            if published.refusal is not None:
                raise published.refusal
            result.extend(published)
            result.value = {"taxable_income": taxable, "income_levy": income_levy, "per_capita_levy": per_capita}

        return self.command(now, None, act)

    # -- 照会 (GYOMU-011, GYOMU-008) -------------------------------------------------------------------------

    def query(
        self,
        session: StaffSession,
        taxpayer_number: str,
        row: str,
        items: list[str],
        provider: str,
        now: datetime,
        *,
        attach: Mapping[str, Any] | None = None,
    ) -> Result:
        """Start an NWS 照会 through the 税務 system: permission and record first, then only the minimal fields.

        ``attach`` stands for a badly built export that adds fields (e.g. 所得) to the message: the interface
        refuses it (GYOMU-008).
        """

        def act(result: Result) -> None:
            self.desk.authorise_query(result, session, taxpayer_number, row, items, now)
            fields = {"business_atena_number": taxpayer_number, "row": row, "items": items, "provider": provider,
                      **dict(attach or {})}
            extra = sorted(set(fields) - QUERY_FIELDS)
            if extra:
                raise self.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED,
                    "GYOMU-008",
                    f"照会に不要な項目は連携できません: {', '.join(extra)}",
                    f"a query carries only {sorted(QUERY_FIELDS)}; refused {extra}",
                    field=extra[0],
                )
            self.allow(result, "GYOMU-008", now, "照会に必要な項目（宛名番号・項・情報・提供者）のみを連携します",
                       "only the fields the query needs are passed on", None, fields=sorted(fields))
            started = self.tax.query(session.user_id, taxpayer_number, row, items, provider, now)
            if started.refusal is not None:
                raise started.refusal
            result.extend(started)
            result.value = started.value

        return self.command(now, None, act)

    # -- requests from outside NWS (GYOMU-009) ---------------------------------------------------------------

    def disclose(
        self, session: StaffSession, requester: str, basis: str, taxpayer_number: str, now: datetime
    ) -> Result:
        """Answer a non-NWS request for tax data only where the cited basis requires or presupposes disclosure."""
        request_id = uuid.uuid4().hex

        def act(result: Result) -> None:
            self.staff.require(session, "tax_assessor", "GYOMU-009", "課税情報の照会への回答", "answer a request")
            cited = next((b for b in self.data.disclosure_bases if b.id == basis), None)
            if cited is None or cited.discloses == "general":
                name = cited.name_ja if cited else basis
                raise _Declined(
                    cited.discloses if cited else "unknown",
                    self.refuse(
                        RefusalCode.FIELD_NOT_ALLOWED,
                        "GYOMU-009",
                        f"根拠法令（{name}）は課税情報の開示を明示せず前提ともしていないため、回答しません（地方税法第22条）",
                        f"the cited basis {name} neither requires nor presupposes disclosure of tax data; refused",
                        field="basis",
                    )
                )
            person = self._taxpayer(taxpayer_number)
            record = self.conn.execute(
                f"SELECT record FROM {self.tax.table}_records WHERE business_atena_number = ?", (taxpayer_number,)
            ).fetchone()
            if person is None or record is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "GYOMU-009", "該当する課税情報がありません",
                                  "no tax record for this person", field="taxpayer_number")
            self._log_disclosure(request_id, requester, basis, cited.discloses, taxpayer_number, "answered", session,
                                 now)
            self.allow(result, "GYOMU-009", now, f"根拠法令（{cited.name_ja}）が開示を{'明示' if cited.discloses == 'requires' else '前提と'}しているため回答しました",
                       f"the cited basis {cited.name_ja} {cited.discloses} disclosure; answered", request_id,
                       basis=basis, requester=requester)
            result.value = {"request_id": request_id, "record": json.loads(record[0])}

        # A refusal is itself a decision to record with its basis: log it outside the rolled-back transaction.
        try:
            return self.command(now, request_id, act)
        except _Declined as declined:
            with transaction(self.conn):
                self._log_disclosure(request_id, requester, basis, declined.discloses, taxpayer_number, "refused",
                                     session, now)
            return self.refused(declined.refusal, now, correlation_id=request_id, evidence={"basis": basis})

    def _log_disclosure(
        self, request_id: str, requester: str, basis: str, discloses: str, taxpayer_number: str, decision: str,
        session: StaffSession, now: datetime,
    ) -> None:
        self.conn.execute(
            "INSERT INTO resident_tax_disclosures (request_id, requester, basis, discloses, taxpayer_number, decision,"
            " operator, at) VALUES (?,?,?,?,?,?,?,?)",
            (request_id, requester, basis, discloses, taxpayer_number, decision, session.user_id, now.isoformat()),
        )

    def disclosures(self) -> list[dict[str, str]]:
        rows = self.conn.execute(
            "SELECT request_id, requester, basis, discloses, decision FROM resident_tax_disclosures ORDER BY at"
        ).fetchall()
        return [dict(zip(("request_id", "requester", "basis", "discloses", "decision"), r, strict=True)) for r in rows]

    # -- 扶養照会 (GYOMU-003) ---------------------------------------------------------------------------------

    def dependant_inquiry(
        self,
        session: StaffSession,
        taxpayer_number: str,
        dependant: Mapping[str, Any] | None,
        relationship: str | None,
        recipient: str,
        now: datetime,
    ) -> Result:
        """Send an inquiry to another municipality about a dependant: it must name the city's 扶養者, the
        被扶養者 and their relationship, and the dependant must be one that taxpayer declared. The answer arrives
        as a DEPENDANT_ANSWER (see ``dependant_answer``)."""

        def act(result: Result) -> None:
            self.staff.require(session, "tax_assessor", "GYOMU-003", "扶養照会", "inquire about a dependant")
            if not taxpayer_number or self._taxpayer(taxpayer_number) is None:
                raise self.refuse(RefusalCode.FIELD_MISSING, "GYOMU-003",
                                  "照会には本市が課税する扶養者の特定が必要です",
                                  "the inquiry must name a taxpayer of the city (扶養者)", field="taxpayer_number")
            if not dependant or not all(dependant.get(k) for k in ("name", "birth_date")):
                raise self.refuse(RefusalCode.FIELD_MISSING, "GYOMU-003", "被扶養者（氏名・生年月日）の特定が必要です",
                                  "the inquiry must name the dependant (name and birth date)", field="dependant")
            if not relationship:
                raise self.refuse(RefusalCode.FIELD_MISSING, "GYOMU-003", "扶養者との続柄の記載が必要です",
                                  "the inquiry must state the relationship", field="relationship")
            declared = self._declared_dependants(taxpayer_number)
            key = (str(dependant["name"]), str(dependant["birth_date"]))
            if declared.get(key) != relationship:
                raise self.refuse(RefusalCode.NOT_FOUND, "GYOMU-003",
                                  "この者は当該扶養者が申告した被扶養者ではないため照会できません",
                                  "this person is not a dependant the taxpayer declared with that relationship",
                                  field="dependant")
            inquiry_id = uuid.uuid4().hex
            self.conn.execute(
                "INSERT INTO resident_tax_dependant_inquiries (inquiry_id, taxpayer_number, dependant, relationship,"
                " recipient, operator, at) VALUES (?,?,?,?,?,?,?)",
                (inquiry_id, taxpayer_number, json.dumps(dict(dependant), ensure_ascii=False), relationship,
                 recipient, session.user_id, now.isoformat()),
            )
            self.desk.record(session, taxpayer_number, "dependant_inquiry", now, {"recipient": recipient})
            self.allow(result, "GYOMU-003", now, "扶養者・被扶養者・続柄を特定した照会を作成しました",
                       "the inquiry names the taxpayer, the dependant and their relationship", inquiry_id,
                       recipient=recipient)
            taxpayer = self._taxpayer(taxpayer_number)
            assert taxpayer is not None
            self.send(
                result,
                MessageType.DEPENDANT_INQUIRY,
                f"{recipient}.tax_inquiry",
                now,
                body={"inquiry_id": inquiry_id},
                personal={
                    "taxpayer": {"name": taxpayer["name"], "city": self.party.split(".")[0]},
                    "dependant": {"name": str(dependant["name"]), "birth_date": str(dependant["birth_date"])},
                    "relationship": relationship,
                },
                correlation_id=inquiry_id,
            )
            result.value = inquiry_id

        return self.command(now, None, act)

    def _on_dependant_answer(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        inquiry_id = str(env.body.get("inquiry_id", ""))
        row = self.conn.execute(
            "SELECT recipient FROM resident_tax_dependant_inquiries WHERE inquiry_id = ? AND answer IS NULL",
            (inquiry_id,),
        ).fetchone()
        if row is None or env.sender != f"{row[0]}.tax_inquiry":
            raise self.refuse(RefusalCode.REPLY_MISMATCH, "GYOMU-003", "照会していない相手からの回答です",
                              "an answer to no open inquiry of this sender", field="inquiry_id")
        answer = self.unseal(env)
        self.conn.execute(
            "UPDATE resident_tax_dependant_inquiries SET answer = ?, answered_at = ? WHERE inquiry_id = ?",
            (json.dumps(answer, ensure_ascii=False), now.isoformat(), inquiry_id),
        )
        return Result(value=answer)

    def dependant_answer(self, inquiry_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT answer FROM resident_tax_dependant_inquiries WHERE inquiry_id = ?",
                                (inquiry_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def _declared_dependants(self, taxpayer_number: str) -> dict[tuple[str, str], str]:
        """(name, birth date) → relationship, from the attached records of this taxpayer."""
        out: dict[tuple[str, str], str] = {}
        for (raw,) in self.conn.execute(
            "SELECT record FROM resident_tax_intake WHERE taxpayer_number = ? AND status = 'attached'",
            (taxpayer_number,),
        ):
            for d in json.loads(raw).get("dependants") or []:
                if isinstance(d, dict) and d.get("name") and d.get("birth_date"):
                    out[(str(d["name"]), str(d["birth_date"]))] = str(d.get("relationship", ""))
        return out


class _Declined(Exception):
    """A refusal that must keep the request's own record (GYOMU-009 records every decision with its basis)."""

    def __init__(self, discloses: str, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.discloses = discloses  # how the cited basis is classed ("general", or "unknown" when not in the table)
        self.refusal = refusal
