"""送付先情報 and card events on the 市町村CS side: extraction at 既存住基, the check against 機構, sending, deletion.

既存住基 extracts 送付先情報 only for a person on the register who is a new notification target (CS-022); CS checks
it against the 全国サーバ's 機構保存本人確認情報 and 個人番号 before sending (CS-015), sends the file only to the
個人番号カード管理システム (CS-022), and deletes it once its retention ends after the CMS confirmed it (CS-016). Card
events recorded at the counter each produce one message (CS-023). It must never send an unchecked or mismatched
record, delete a file before its transmission is confirmed, or send a file (or an event) twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jpholiday
from cryptography import x509

from simulator.components.base import Component, Link, Result
from simulator.components.card_system import CARD_EVENTS
from simulator.controls.decision import Outcome
from simulator.errors import RefusalCode
from simulator.model.envelope import Envelope, MessageType
from simulator.store.db import ensure_schema

if TYPE_CHECKING:
    from simulator.components.registry import Registry
    from simulator.components.staff import StaffDirectory, StaffSession

__all__ = ["DELIVERY_ITEMS", "DeliveryMixin", "business_days_after", "extract_delivery"]

#: 送付先情報 (個人番号通知書・交付申請書の送付先): the person's codes, 4情報 with 氏名カナ, and the 送付先 住所.
DELIVERY_ITEMS: tuple[str, ...] = (
    "resident_code",
    "my_number",
    "name",
    "name_kana",
    "birth_date",
    "sex",
    "address",
    "postal_code",
)
_BASIC4 = ("name", "birth_date", "sex", "address")

_CS_DDL = """
CREATE TABLE IF NOT EXISTS cs_delivery_files (
    file_id TEXT PRIMARY KEY, cs TEXT NOT NULL, request_id TEXT NOT NULL, resident_code TEXT NOT NULL,
    content TEXT,
    status TEXT NOT NULL CHECK (status IN ('checking', 'blocked', 'sent', 'acknowledged', 'deleted')),
    created_at TEXT NOT NULL, sent_to TEXT, sent_at TEXT, acked_at TEXT, due_on TEXT, deleted_at TEXT,
    UNIQUE (cs, request_id)
);
CREATE TABLE IF NOT EXISTS cs_card_events (
    event_id TEXT PRIMARY KEY, cs TEXT NOT NULL, resident_code TEXT NOT NULL, event TEXT NOT NULL,
    recorded_by TEXT NOT NULL, recorded_at TEXT NOT NULL, sent_at TEXT
);
"""

_REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS registry_delivery_extracts (
    request_id TEXT PRIMARY KEY, resident_code TEXT NOT NULL, change_date TEXT NOT NULL, extracted_at TEXT NOT NULL
);
"""


def _closed(day: date) -> bool:
    # 土日, 祝日 and the 年末年始 closure (12/29–1/3) are not business days of a municipality.
    return (
        day.weekday() >= 5
        or jpholiday.is_holiday(day)
        or (day.month, day.day) >= (12, 29)
        or day <= date(day.year, 1, 3)
    )


def business_days_after(start: date, days: int) -> date:
    """The date ``days`` business days after ``start`` (000: 翌営業日 for 1)."""
    day = start
    for _ in range(days):
        day += timedelta(days=1)
        while _closed(day):
            day += timedelta(days=1)
    return day


# -- 既存住基: extraction (CS-022) -------------------------------------------------------------------------------


def extract_delivery(registry: Registry, resident_code: str, now: datetime) -> Result:
    """Extract 送付先情報 for one person at 既存住基 and send it toward CS. Value: the request id.

    Only a person on the register (not a 消除者), with a 個人番号, who has not been notified since their last
    記載 (a newborn, a first 転入) is a new notification target; anyone else yields nothing.
    """
    ensure_schema(registry.conn, _REGISTRY_DDL)

    def action(result: Result) -> None:
        person = registry.resident(resident_code)
        if person is None or person["status"] != "active":
            raise registry.refuse(
                RefusalCode.NOT_FOUND,
                "CS-022",
                "住民基本台帳に記録されている者ではありません（消除者からは送付先情報を抽出しません）",
                "the person is not on the register (no 送付先情報 is extracted for a removed resident)",
                "resident_code",
            )
        if person["my_number"] is None:
            raise registry.refuse(
                RefusalCode.STATE_CONFLICT,
                "CS-022",
                "個人番号が未指定のため通知対象者ではありません",
                "no 個人番号 is recorded yet, so the person is not a notification target",
                "my_number",
            )
        done = registry.conn.execute(
            "SELECT 1 FROM registry_delivery_extracts WHERE resident_code = ? AND change_date = ?",
            (resident_code, person["last_change_date"]),
        ).fetchone()
        if done is not None:
            raise registry.refuse(
                RefusalCode.STATE_CONFLICT,
                "CS-022",
                "新たな個人番号の通知対象者ではありません（抽出済み）",
                "not a new notification target: 送付先情報 was already extracted",
                "resident_code",
            )
        request_id = uuid.uuid4().hex
        registry.conn.execute(
            "INSERT INTO registry_delivery_extracts (request_id, resident_code, change_date, extracted_at)"
            " VALUES (?, ?, ?, ?)",
            (request_id, resident_code, person["last_change_date"], now.isoformat()),
        )
        registry.allow(
            result,
            "CS-022",
            now,
            "住民基本台帳に記録された新たな通知対象者の送付先情報を抽出しました",
            "送付先情報 extracted for a new notification target on the register",
            request_id,
            change_reason=person["last_change_reason"],
        )
        registry.send(
            result,
            MessageType.DELIVERY_INFO,
            registry.cs_party,
            now,
            body={"request_id": request_id},
            personal={k: person[k] for k in DELIVERY_ITEMS},
            correlation_id=request_id,
        )
        result.value = request_id

    return registry.command(now, None, action)


# -- 市町村CS --------------------------------------------------------------------------------------------------


class DeliveryMixin(Component):
    """The CS's 送付先情報 and card-event duties. Message contracts (body never personal):

    - in DELIVERY_INFO from 既存住基 (or its 住基GW): body {"request_id"}; sealed = DELIVERY_ITEMS.
      out IDENTITY_CHECK to the 全国サーバ: body {"file_id"}; sealed {"resident_code"}.
    - in IDENTITY_CHECK_REPLY from the 全国サーバ: body {"file_id"}; sealed {"resident_code", "found", 4情報,
      "my_number"}; on agreement, out DELIVERY_INFO to the CMS: body {"file_id"}; sealed = the record.
    - in DELIVERY_ACK from the CMS: body {"file_id"}.
    - out CARD_EVENT to the CMS: body {"event_id"}; sealed {"resident_code", "event"}.
    """

    registry_party: str
    national_party: str
    staff: StaffDirectory
    delivery_retention_days: int

    def _init_delivery(self, card_system_party: str | None, business_days: bool | None) -> None:
        self.card_system_party = card_system_party
        # 000 keeps the file until the next business day; 003 keeps it under a year, in calendar days. A retention
        # under a week is read as business days unless the caller says otherwise.
        self.delivery_business_days = self.delivery_retention_days < 7 if business_days is None else business_days
        ensure_schema(self.conn, _CS_DDL)
        self._handlers[MessageType.DELIVERY_INFO] = self._on_delivery_info
        self._handlers[MessageType.IDENTITY_CHECK_REPLY] = self._on_identity_check_reply
        self._handlers[MessageType.DELIVERY_ACK] = self._on_delivery_ack

    # The MunicipalCS supplies these.
    def _require_peer(self, envelope: Envelope, link: Link, expected: str, control_id: str, what_ja: str) -> None:
        raise NotImplementedError

    def _row(self, resident_code: str) -> dict[str, str] | None:
        raise NotImplementedError

    def _cms(self) -> str:
        if self.card_system_party is None:
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                "CS-022",
                "個人番号カード管理システムへの接続がありません",
                "this CS has no link to the card management system",
                "recipient",
            )
        return self.card_system_party

    def _body_id(self, envelope: Envelope, key: str, control_id: str) -> str:
        value = envelope.body.get(key)
        if set(envelope.body) != {key} or not isinstance(value, str) or not 1 <= len(value) <= 64:
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                control_id,
                f"制御項目は「{key}」（1〜64文字）のみです",
                f"the body must hold exactly {key!r}, of 1 to 64 characters",
                key,
            )
        return value

    def _file(self, file_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT file_id, request_id, resident_code, content, status, sent_to, sent_at, acked_at, due_on,"
            " deleted_at FROM cs_delivery_files WHERE cs = ? AND file_id = ?",
            (self.party, file_id),
        ).fetchone()
        keys = (
            "file_id",
            "request_id",
            "resident_code",
            "content",
            "status",
            "sent_to",
            "sent_at",
            "acked_at",
            "due_on",
            "deleted_at",
        )
        return None if row is None else dict(zip(keys, row, strict=True))

    def delivery_files(self) -> list[dict[str, Any]]:
        """Every 送付先情報ファイル this CS made, oldest first, with whether its content is still held."""
        ids = self.conn.execute(
            "SELECT file_id FROM cs_delivery_files WHERE cs = ? ORDER BY created_at, rowid", (self.party,)
        ).fetchall()
        files = [self._file(str(i[0])) for i in ids]
        return [
            {**{k: v for k, v in f.items() if k != "content"}, "present": f["content"] is not None}
            for f in files
            if f is not None
        ]

    # -- 送付先情報: receive, check against 機構 (CS-015), send to the CMS (CS-022) ------------------------------

    def _on_delivery_info(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        from simulator.components.municipal_cs import (
            ItemProblem,
            check_date,
            check_identifier,
            check_kana,
            check_postal_code,
            check_sex,
            check_text,
            exact_keys,
        )

        result = Result()
        corr = envelope.correlation_id
        self._require_peer(envelope, link, self.registry_party, "CS-022", "送付先情報")
        request_id = self._body_id(envelope, "request_id", "CS-022")
        sealed = self.unseal(envelope)
        try:
            exact_keys(sealed, DELIVERY_ITEMS)
            record = {
                "resident_code": check_identifier(sealed["resident_code"], "resident_code"),
                "my_number": check_identifier(sealed["my_number"], "my_number"),
                "name": check_text(sealed["name"], "name"),
                "name_kana": check_kana(sealed["name_kana"]),
                "birth_date": check_date(sealed["birth_date"], "birth_date").isoformat(),
                "sex": check_sex(sealed["sex"]),
                "address": check_text(sealed["address"], "address"),
                "postal_code": check_postal_code(sealed["postal_code"]),
            }
        except ItemProblem as problem:
            raise self.refuse(
                problem.code,
                "CS-022",
                f"送付先情報: 項目「{problem.field}」: {problem.rule_ja}",
                problem.rule_en,
                problem.field,
            ) from None
        held = self._row(record["resident_code"])
        if held is None or held["status"] != "active":
            raise self.refuse(
                RefusalCode.NOT_FOUND,
                "CS-022",
                "本人確認情報に現存する住民として記録されていない者の送付先情報です",
                "送付先情報 for a person who is not an active resident on this CS's file",
                "resident_code",
            )
        if self.conn.execute(
            "SELECT 1 FROM cs_delivery_files WHERE cs = ? AND request_id = ?", (self.party, request_id)
        ).fetchone():
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "CS-016",
                "この抽出の送付先情報ファイルは既に作成されています",
                "a 送付先情報ファイル for this extraction already exists",
                "request_id",
            )
        # One new file per linkage need (CS-016): never an earlier file reused.
        file_id = uuid.uuid4().hex
        self.conn.execute(
            "INSERT INTO cs_delivery_files (file_id, cs, request_id, resident_code, content, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, 'checking', ?)",
            (
                file_id,
                self.party,
                request_id,
                record["resident_code"],
                json.dumps(record, ensure_ascii=False),
                now.isoformat(),
            ),
        )
        self.allow(
            result,
            "CS-022",
            now,
            "既存住基から住民の送付先情報を受け付け、送付先情報ファイルを作成しました",
            "送付先情報 of a resident accepted from 既存住基; a new 送付先情報ファイル created",
            corr,
            file_id=file_id,
        )
        self.send(
            result,
            MessageType.IDENTITY_CHECK,
            self.national_party,
            now,
            body={"file_id": file_id},
            personal={"resident_code": record["resident_code"]},
            correlation_id=corr,
        )
        result.value = file_id
        return result

    def _on_identity_check_reply(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        corr = envelope.correlation_id
        self._require_peer(envelope, link, self.national_party, "CS-015", "機構保存本人確認情報の回答")
        file_id = self._body_id(envelope, "file_id", "CS-015")
        answer = self.unseal(envelope)
        file = self._file(file_id)
        if file is None or file["status"] != "checking" or answer.get("resident_code") != file["resident_code"]:
            raise self.refuse(
                RefusalCode.REPLY_MISMATCH,
                "CS-015",
                "突合中の送付先情報ファイルに対応しない回答です",
                "the answer matches no 送付先情報ファイル being checked",
                "file_id",
            )
        record = json.loads(str(file["content"]))
        if answer.get("found") is not True:
            differs = ["resident_code"]
        else:
            differs = [k for k in (*_BASIC4, "my_number") if str(answer.get(k)) != str(record[k])]
        if differs:
            self.conn.execute("UPDATE cs_delivery_files SET status = 'blocked' WHERE file_id = ?", (file_id,))
            number = "my_number" in differs
            result.decisions.append(
                self.decide(
                    "CS-015",
                    Outcome.DENY,
                    now,
                    reason_ja=(
                        "個人番号が全国サーバの保持する住民票コードとの対応と一致しないため送付しません"
                        if number
                        else f"4情報が機構保存本人確認情報と一致しない（{', '.join(differs)}）ため送付しません"
                    ),
                    reason_en=(
                        "the 個人番号 differs from the one the 全国サーバ holds for the 住民票コード; not sent"
                        if number
                        else f"the 4情報 differ from the 機構保存本人確認情報 ({', '.join(differs)}); not sent"
                    ),
                    correlation_id=corr,
                    evidence={"file_id": file_id, "fields": differs},
                    code=str(RefusalCode.FIELD_INVALID),
                )
            )
            result.value = {"file_id": file_id, "blocked": differs}
            return result
        self.allow(
            result,
            "CS-015",
            now,
            "4情報と個人番号が機構保存本人確認情報と一致しました",
            "4情報 and 個人番号 agree with the 全国サーバ",
            corr,
            file_id=file_id,
        )
        self._transmit(result, file_id, record, now, corr)
        return result

    def _transmit(
        self, result: Result, file_id: str, record: Mapping[str, Any], now: datetime, corr: str | None
    ) -> None:
        cms = self._cms()
        self.send(
            result, MessageType.DELIVERY_INFO, cms, now, body={"file_id": file_id}, personal=record, correlation_id=corr
        )
        self.conn.execute(
            "UPDATE cs_delivery_files SET status = 'sent', sent_to = ?, sent_at = ? WHERE file_id = ?",
            (cms, now.isoformat(), file_id),
        )
        self.allow(
            result,
            "CS-022",
            now,
            "送付先情報を個人番号カード管理システムへ送付しました",
            "送付先情報 sent to the card management system",
            corr,
            file_id=file_id,
            to=cms,
        )

    def send_delivery_file(self, file_id: str, recipient: str, now: datetime) -> Result:
        """Send a 送付先情報ファイル to ``recipient`` (an operator's or batch's request); only a checked, never-sent file
        goes, and only to the CMS."""

        def action(result: Result) -> None:
            if recipient != self.card_system_party:
                raise self.refuse(
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "CS-022",
                    f"送付先情報は個人番号カード管理システム以外へは送付できません（宛先: {recipient}）",
                    f"送付先情報 goes only to the card management system; refused to {recipient}",
                    "recipient",
                )
            file = self._file(file_id)
            if file is None:
                raise self.refuse(
                    RefusalCode.NOT_FOUND,
                    "CS-016",
                    "この送付先情報ファイルはありません",
                    "no such 送付先情報ファイル",
                    "file_id",
                )
            if file["status"] in ("sent", "acknowledged", "deleted"):
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "CS-016",
                    "送付済みの送付先情報ファイルは再利用しません（連携の都度新たに作成します）",
                    "a 送付先情報ファイル already sent is never reused; each linkage makes a new one",
                    "file_id",
                )
            if file["status"] != "blocked":
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "CS-015",
                    "機構保存本人確認情報との突合が済んでいません",
                    "the check against the 全国サーバ has not finished",
                    "file_id",
                )
            # A blocked file goes only after a new check against 機構 agrees (CS-015).
            self.conn.execute("UPDATE cs_delivery_files SET status = 'checking' WHERE file_id = ?", (file_id,))
            self.send(
                result,
                MessageType.IDENTITY_CHECK,
                self.national_party,
                now,
                body={"file_id": file_id},
                personal={"resident_code": file["resident_code"]},
                correlation_id=file["request_id"],
            )

        return self.command(now, None, action)

    def _on_delivery_ack(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_peer(envelope, link, self._cms(), "CS-016", "送付先情報の受領通知")
        file_id = self._body_id(envelope, "file_id", "CS-016")
        file = self._file(file_id)
        if file is None or file["status"] != "sent":
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "CS-016",
                "送付中の送付先情報ファイルに対応しない受領通知です",
                "the acknowledgement matches no 送付先情報ファイル in transit",
                "file_id",
            )
        acked = now.date()
        due = (
            business_days_after(acked, self.delivery_retention_days)
            if self.delivery_business_days
            else acked + timedelta(days=self.delivery_retention_days)
        )
        self.conn.execute(
            "UPDATE cs_delivery_files SET status = 'acknowledged', acked_at = ?, due_on = ? WHERE file_id = ?",
            (now.isoformat(), due.isoformat(), file_id),
        )
        self.allow(
            result,
            "CS-016",
            now,
            f"送付の完了を確認しました。{due.isoformat()} に削除します",
            f"transmission confirmed; the file is deleted on {due.isoformat()}",
            envelope.correlation_id,
            file_id=file_id,
            due_on=due.isoformat(),
        )
        return result

    # -- deletion batch (CS-016) ------------------------------------------------------------------------------

    def purge_delivery_files(self, now: datetime) -> Result:
        """The batch that deletes every 送付先情報ファイル past its retention. Value: {"deleted": [...], "kept": [...]}."""

        def action(result: Result) -> None:
            deleted: list[str] = []
            kept: list[str] = []
            rows = self.conn.execute(
                "SELECT file_id, status, due_on FROM cs_delivery_files WHERE cs = ? AND content IS NOT NULL"
                " ORDER BY created_at, rowid",
                (self.party,),
            ).fetchall()
            for file_id, status, due_on in rows:
                if status != "acknowledged":
                    kept.append(file_id)
                    result.decisions.append(
                        self.decide(
                            "CS-016",
                            Outcome.HOLD,
                            now,
                            reason_ja="送付の完了が確認されていないため削除しません",
                            reason_en="transmission is not confirmed; the file is not deleted",
                            evidence={"file_id": file_id, "status": status},
                        )
                    )
                elif now.date() < date.fromisoformat(due_on):
                    kept.append(file_id)
                    result.decisions.append(
                        self.decide(
                            "CS-016",
                            Outcome.HOLD,
                            now,
                            reason_ja=f"保管期間中のため保持します（{due_on} に削除）",
                            reason_en=f"within its retention; kept until {due_on}",
                            evidence={"file_id": file_id, "due_on": due_on},
                        )
                    )
                else:
                    self.conn.execute(
                        "UPDATE cs_delivery_files SET content = NULL, status = 'deleted', deleted_at = ?"
                        " WHERE file_id = ?",
                        (now.isoformat(), file_id),
                    )
                    deleted.append(file_id)
                    self.allow(
                        result,
                        "CS-016",
                        now,
                        "保管期間の経過した送付先情報ファイルを一括削除しました",
                        "a 送付先情報ファイル past its retention was deleted by the batch",
                        None,
                        file_id=file_id,
                        due_on=due_on,
                    )
            result.value = {"deleted": deleted, "kept": kept}

        return self.command(now, None, action)

    # -- card events recorded at the counter (CS-023) ----------------------------------------------------------

    def record_card_event(self, session: StaffSession, resident_code: str, event: str, now: datetime) -> Result:
        """A card event entered at the 窓口 (統合端末): recorded, and sent to the CMS exactly once. Value: event id."""

        def action(result: Result) -> None:
            self.staff.require(session, "cs_operator", "CS-023", "カードの異動の記録", "record a card event")
            if event not in CARD_EVENTS:
                raise self.refuse(
                    RefusalCode.FIELD_INVALID,
                    "CS-023",
                    f"カードの異動事由は {', '.join(CARD_EVENTS)} のいずれかです",
                    f"the event must be one of {', '.join(CARD_EVENTS)}",
                    "event",
                )
            if self._row(resident_code) is None:
                raise self.refuse(
                    RefusalCode.NOT_FOUND,
                    "CS-023",
                    "本人確認情報に記録されていない住民票コードです",
                    "the 住民票コード is not on this CS's file",
                    "resident_code",
                )
            event_id = uuid.uuid4().hex
            self.conn.execute(
                "INSERT INTO cs_card_events (event_id, cs, resident_code, event, recorded_by, recorded_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (event_id, self.party, resident_code, event, session.user_id, now.isoformat()),
            )
            self._send_event(result, event_id, resident_code, event, now)
            result.value = event_id

        return self.command(now, None, action)

    def send_card_event(self, event_id: str, now: datetime) -> Result:
        """Send a card event to the CMS: only one recorded at the counter, and only once."""

        def action(result: Result) -> None:
            row = self.conn.execute(
                "SELECT resident_code, event, sent_at FROM cs_card_events WHERE cs = ? AND event_id = ?",
                (self.party, event_id),
            ).fetchone()
            if row is None:
                raise self.refuse(
                    RefusalCode.NOT_FOUND,
                    "CS-023",
                    "窓口で記録されていないカードの異動は送信できません",
                    "a card event not recorded at the counter cannot be sent",
                    "event_id",
                )
            if row[2] is not None:
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "CS-023",
                    "このカードの異動は送信済みです（1件につき1回）",
                    "this card event was already sent; one message per event",
                    "event_id",
                )
            self._send_event(result, event_id, str(row[0]), str(row[1]), now)

        return self.command(now, None, action)

    def _send_event(self, result: Result, event_id: str, resident_code: str, event: str, now: datetime) -> None:
        cms = self._cms()
        self.send(
            result,
            MessageType.CARD_EVENT,
            cms,
            now,
            body={"event_id": event_id},
            personal={"resident_code": resident_code, "event": event},
            correlation_id=event_id,
        )
        self.conn.execute("UPDATE cs_card_events SET sent_at = ? WHERE event_id = ?", (now.isoformat(), event_id))
        self.allow(
            result,
            "CS-023",
            now,
            f"窓口で記録したカードの異動（{CARD_EVENTS[event][0]}）を1件送信しました",
            f"the card event {event} recorded at the counter sent once",
            event_id,
            event_id=event_id,
            event=event,
        )
