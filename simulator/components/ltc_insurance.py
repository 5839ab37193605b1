"""介護保険システム (倉敷市, 004): 資格, 認定 and 賦課 records held to the 別添1 items, joined only to configured feeds.

It composes the generic 介護保険 BusinessSystem (宛名 link, 副本, 照会 under rows 93/94) and adds the file itself
(GYOMU-002), the configured links and the 国保連 伝送 outbox (GYOMU-012). It must never store an attribute outside
別添1, never join a dataset it is not configured for, and never queue for the 国保連 more than its 別添1 items.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from simulator.components.base import Component, Directory, Result
from simulator.components.business import BusinessSystem
from simulator.components.gyomu_data import LtcData
from simulator.components.linkage_desk import LinkageDesk
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode

__all__ = ["LtcInsuranceSystem", "premium_stage"]

# The national standard 9-stage model's bands for a person who is taxed themselves (合計所得金額, yen): stage 6 under
# 1.2 million, 7 under 2.1 million, 8 under 3.2 million, 9 above; 非課税 is stage 4 here. 倉敷市's own table is not in
# the seed (004), so the standard one is used.
_STAGES = ((1_200_000, 6), (2_100_000, 7), (3_200_000, 8))


def premium_stage(taxable_income: int) -> int:
    if taxable_income <= 0:
        return 4
    return next((stage for limit, stage in _STAGES if taxable_income < limit), 9)


class LtcInsuranceSystem(Component):
    name_ja = "介護保険システム（記録）"
    name_en = "long-term care insurance records"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        data: LtcData,
        ltc: BusinessSystem,
        tax: BusinessSystem,
        staff: StaffDirectory,
        provision_rows: frozenset[str],
        query_rows: frozenset[str],
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.data = data
        self.ltc = ltc
        self.tax = tax
        self.staff = staff
        self.desk = LinkageDesk(self, conn, staff, table="ltc_file_operations", query_role="nws_query",
                                query_rows=query_rows, provision_rows=provision_rows)
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS ltc_file (
                insured_number TEXT NOT NULL, section TEXT NOT NULL, item TEXT NOT NULL, value TEXT NOT NULL,
                updated_by TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (insured_number, section, item));
            CREATE TABLE IF NOT EXISTS ltc_kokuhoren_outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, insured_number TEXT NOT NULL, items TEXT NOT NULL,
                operator TEXT NOT NULL, at TEXT NOT NULL, collected_at TEXT);
            CREATE TABLE IF NOT EXISTS ltc_links (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, insured_number TEXT NOT NULL, dataset TEXT NOT NULL,
                purpose TEXT NOT NULL, operator TEXT NOT NULL, at TEXT NOT NULL);
            """
        )

    # -- the file: 別添1 items only (GYOMU-002) ---------------------------------------------------------------

    def _insured(self, insured_number: str) -> tuple[str, dict[str, Any]]:
        row = self.conn.execute(
            f"SELECT my_number, record FROM {self.ltc.table}_records WHERE business_atena_number = ?",
            (insured_number,),
        ).fetchone()
        if row is None:
            raise self.refuse(RefusalCode.NOT_FOUND, "GYOMU-002", "該当する被保険者がいません",
                              "no such insured person in the 介護保険 system", field="insured_number")
        return str(row[0]), json.loads(row[1])

    def _write(
        self, result: Result, session: StaffSession, insured_number: str, section: str,
        attributes: Mapping[str, Any], now: datetime,
    ) -> None:
        allowed = self.data.items(section)
        if not allowed:
            raise self.refuse(RefusalCode.FIELD_INVALID, "GYOMU-002", f"別添1にない区分です: {section}",
                              f"{section!r} is not a section of 別添1", field="section")
        outside = sorted(set(attributes) - allowed)
        if outside:
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED,
                "GYOMU-002",
                f"介護保険ファイルに別添1の<{self.data.beppyo_1[section].name_ja}>にない項目は書き込めません: "
                f"{', '.join(outside)}",
                f"attributes outside 別添1 <{section}> cannot be written to the 介護保険 file: {outside}",
                field=outside[0],
            )
        for item, value in attributes.items():
            self.conn.execute(
                "INSERT INTO ltc_file (insured_number, section, item, value, updated_by, updated_at) VALUES"
                " (?,?,?,?,?,?) ON CONFLICT(insured_number, section, item) DO UPDATE SET value = excluded.value,"
                " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                (insured_number, section, item, json.dumps(value, ensure_ascii=False), session.user_id,
                 now.isoformat()),
            )
        self.allow(result, "GYOMU-002", now, "別添1の項目のみを介護保険ファイルに記録しました",
                   "only 別添1 items were written to the 介護保険 file", None, section=section,
                   items=sorted(attributes))

    def write(
        self, session: StaffSession, insured_number: str, section: str, attributes: Mapping[str, Any], now: datetime
    ) -> Result:
        """Write 別添1 items of one section for one insured person (認定 results, 資格 changes …)."""

        def act(result: Result) -> None:
            self.staff.require(session, "ltc_clerk", "GYOMU-002", "介護保険ファイルの更新", "update the file")
            self._insured(insured_number)
            self._write(result, session, insured_number, section, attributes, now)
            self.desk.record(session, insured_number, f"write.{section}", now, {"items": sorted(attributes)})

        return self.command(now, None, act)

    def submit_form(
        self, session: StaffSession, form: str, insured_number: str, fields: Mapping[str, Any], now: datetime
    ) -> Result:
        """A window form (資格取得届, 要介護認定申請書 …): exactly its fixed field set, then written to its section."""

        def act(result: Result) -> None:
            self.staff.require(session, "ltc_clerk", "GYOMU-002", "届出の受付", "take a form")
            spec = self.data.window_forms.get(form)
            if spec is None:
                raise self.refuse(RefusalCode.FIELD_INVALID, "GYOMU-002", f"定められた様式ではありません: {form}",
                                  f"{form!r} is not one of {sorted(self.data.window_forms)}", field="form")
            extra = sorted(set(fields) - set(spec.fields))
            if extra:
                raise self.refuse(RefusalCode.FIELD_NOT_ALLOWED, "GYOMU-002",
                                  f"{spec.name_ja}の様式にない項目があります: {', '.join(extra)}",
                                  f"{form} carries fields outside its fixed set: {extra}", field=extra[0])
            missing = [f for f in spec.fields if f not in fields]
            if missing:
                raise self.refuse(RefusalCode.FIELD_MISSING, "GYOMU-002",
                                  f"{spec.name_ja}の項目がありません: {', '.join(missing)}",
                                  f"{form} lacks {missing}", field=missing[0])
            self._insured(insured_number)
            self._write(result, session, insured_number, spec.section, fields, now)
            self.desk.record(session, insured_number, f"form.{form}", now, {"fields": sorted(fields)})

        return self.command(now, None, act)

    def file(self, insured_number: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for section, item, value in self.conn.execute(
            "SELECT section, item, value FROM ltc_file WHERE insured_number = ? ORDER BY section, item",
            (insured_number,),
        ):
            out.setdefault(section, {})[item] = json.loads(value)
        return out

    # -- joins to other systems' data (GYOMU-012) -------------------------------------------------------------

    def link(self, session: StaffSession, insured_number: str, dataset: str, purpose: str, now: datetime) -> Result:
        """Join one insured person's record to a configured feed; for 住民税 this sets the 保険料段階 (賦課) and
        republishes the 副本 of 介護保険関係情報."""

        def act(result: Result) -> None:
            self.staff.require(session, "ltc_clerk", "GYOMU-012", "他システム情報との紐付け", "link a dataset")
            if dataset not in self.data.linked_datasets:
                raise self.refuse(
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "GYOMU-012",
                    f"介護保険システムは {dataset} との紐付けを設定されていません（必要ない情報との紐付けはできません）",
                    f"the 介護保険 system is not configured to link to {dataset!r}; configured: "
                    f"{sorted(self.data.linked_datasets)}",
                    field="dataset",
                )
            my_number, record = self._insured(insured_number)
            self.conn.execute(
                "INSERT INTO ltc_links (insured_number, dataset, purpose, operator, at) VALUES (?,?,?,?,?)",
                (insured_number, dataset, purpose, session.user_id, now.isoformat()),
            )
            self.allow(result, "GYOMU-012", now, f"設定された連携先（{self.data.linked_datasets[dataset].name_ja}）と紐付けました",
                       f"linked to the configured dataset {dataset}", None, dataset=dataset, purpose=purpose)
            if dataset != "local_tax":
                return
            tax = self.conn.execute(
                f"SELECT record FROM {self.tax.table}_records WHERE my_number = ?", (my_number,)
            ).fetchone()
            if tax is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "GYOMU-012", "住民税情報がありません",
                                  "no resident tax record for this person", field="insured_number")
            stage = premium_stage(int(json.loads(tax[0]).get("taxable_income", 0)))
            self._write(result, session, insured_number, "assessment", {"所得段階": stage}, now)
            published = self.ltc.register(insured_number, my_number, {**record, "premium_stage": stage}, now)
            if published.refusal is not None:
                raise published.refusal
            result.extend(published)
            result.value = {"premium_stage": stage}

        return self.command(now, None, act)

    # -- the 国保連 interface (GYOMU-012) ----------------------------------------------------------------------

    def send_to_kokuhoren(
        self, session: StaffSession, insured_number: str, items: Mapping[str, Any], now: datetime
    ) -> Result:
        """Queue 受給者異動・給付実績 items for the 国保連: the interface carries the 別添1 <国保連> items only."""

        def act(result: Result) -> None:
            self.staff.require(session, "ltc_clerk", "GYOMU-012", "国保連への送付", "send to the federation")
            allowed = self.data.items(self.data.kokuhoren.section)
            outside = sorted(set(items) - allowed)
            if not items or outside:
                raise self.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED,
                    "GYOMU-012",
                    f"国保連との連携は別添1<国保連>の項目に限られます: {', '.join(outside) or '項目なし'}",
                    f"the federation interface carries only the 別添1 <国保連> items; refused {outside or 'empty'}",
                    field=outside[0] if outside else "items",
                )
            self._insured(insured_number)
            self.allow(result, "GYOMU-012", now, "国保連へ定められた項目のみを送付しました",
                       "only the federation's configured items were sent", None, items=sorted(items))
            self.desk.record(session, insured_number, "kokuhoren.send", now, {"items": sorted(items)})
            # The 国保連伝送 file the federation collects: the interface ends at this outbox (the federation's own
            # system is another organisation, outside the city's assessment).
            self.conn.execute(
                "INSERT INTO ltc_kokuhoren_outbox (insured_number, items, operator, at) VALUES (?,?,?,?)",
                (insured_number, json.dumps(dict(items), ensure_ascii=False, sort_keys=True), session.user_id,
                 now.isoformat()),
            )

        return self.command(now, None, act)

    # -- 照会 under rows 93 and 94 (GYOMU-011) -----------------------------------------------------------------

    def query(
        self, session: StaffSession, insured_number: str, row: str, items: list[str], provider: str, now: datetime
    ) -> Result:
        def act(result: Result) -> None:
            self.desk.authorise_query(result, session, insured_number, row, items, now)
            started = self.ltc.query(session.user_id, insured_number, row, items, provider, now)
            if started.refusal is not None:
                raise started.refusal
            result.extend(started)
            result.value = started.value

        return self.command(now, None, act)
