"""市町村CS (コミュニケーションサーバ): the municipality's edge of 住基ネット, and the statutory 本人確認情報 item set.

Takes 本人確認情報 only from its 既存住基 (CS-001), exactly the 8 items (CS-002), checked (CS-012), and notifies the
都道府県サーバ once per change (CS-020); relays 個人番号 and 符号取得 traffic to 機構; answers 4情報 searches (CS-003/010/013).
It must never accept traffic from a business or 宛名 system, pass on a non-statutory item, or answer beyond the matches.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.hsm import KeyModule, KeyModuleError
from simulator.components.sofusaki import DeliveryMixin
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import InputError, Refusal, RefusalCode
from simulator.identifiers import IdentifierError, validate_my_number, validate_resident_code
from simulator.model.envelope import Envelope, MessageType
from simulator.store.db import ensure_schema, transaction

__all__ = [
    "CHANGE_REASONS",
    "IDENTITY_ITEMS",
    "REMOVAL_REASONS",
    "SEX_CODES",
    "ItemProblem",
    "MunicipalCS",
    "check_date",
    "check_identity_format",
    "check_identity_schema",
    "check_kana",
    "check_postal_code",
    "check_sex",
    "check_text",
    "exact_keys",
    "run_staff_command",
]

#: 本人確認情報 (住基法第30条の6, 総務省告示第334号 第6-7): 住民票コード, 氏名, 生年月日, 性別, 住所, 個人番号, 異動事由, 異動年月日.
IDENTITY_ITEMS: tuple[str, ...] = (
    "resident_code",
    "name",
    "birth_date",
    "sex",
    "address",
    "my_number",
    "change_reason",
    "change_date",
)
#: 異動事由, as GLOSSARY change_event ids (世帯変更 changes no 本人確認情報 item, so it never reaches CS).
CHANGE_REASONS: tuple[str, ...] = ("move_in", "move_within", "move_out", "birth", "death", "correction")
#: 異動事由 after which the person is a 消除者 (removed resident).
REMOVAL_REASONS: frozenset[str] = frozenset({"move_out", "death"})
#: 性別 as 住基 codes: "1" 男, "2" 女. The one encoding used in every jukinet table and message.
SEX_CODES: dict[str, str] = {"1": "男", "2": "女"}

# 異動事由 → the 本人確認情報 items such an update may change for a person CS already holds (CS-012 ii).
_MUTABLE_ITEMS: dict[str, frozenset[str]] = {
    "move_within": frozenset({"address"}),
    "move_out": frozenset(),
    "death": frozenset(),
    "move_in": frozenset({"name", "address"}),  # a returning resident may come back under a new 氏名 (婚姻等)
    # 職権訂正 approved by the 所属長 (JUKI-003): any 4情報 item, never the codes.
    "correction": frozenset({"name", "birth_date", "sex", "address"}),
}
_BASIC4_KEYS = ("name", "address", "birth_date", "sex")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_KANA = re.compile(r"[\u30a1-\u30fa\u30fc\u30fb\u3000 ]+")  # 全角カタカナ, 長音, 中点, spaces
_POSTAL = re.compile(r"([0-9]{3})-?([0-9]{4})")
_MAX_TEXT = 200


# -- item rules shared by 既存住基, CS and the J-LIS servers ------------------------------------------------


class ItemProblem(Exception):
    """One item breaks one rule. Callers turn it into a Refusal (with their control id) or an InputError."""

    def __init__(self, code: RefusalCode, field: str, rule_ja: str, rule_en: str) -> None:
        self.code = code
        self.field = field
        self.rule_ja = rule_ja
        self.rule_en = rule_en
        super().__init__(f"{field}: {rule_en}")

    def as_input_error(self, prefix: str = "") -> InputError:
        return InputError(f"{prefix}{self.field}", self.rule_en)


def exact_keys(data: Mapping[str, Any], required: Iterable[str], optional: Iterable[str] = ()) -> None:
    """Refuse any key outside required ∪ optional (named, not dropped) and any missing required key."""
    req = set(required)
    allowed = req | set(optional)
    extra = sorted(set(data) - allowed)
    if extra:
        raise ItemProblem(
            RefusalCode.FIELD_NOT_ALLOWED,
            extra[0],
            f"項目「{extra[0]}」はこの様式・電文にはありません（受け付けません）",
            f"field {extra[0]!r} is not part of this form or message and is refused",
        )
    missing = sorted(req - set(data))
    if missing:
        raise ItemProblem(
            RefusalCode.FIELD_MISSING,
            missing[0],
            f"必須項目「{missing[0]}」がありません",
            f"required field {missing[0]!r} is missing",
        )


def check_text(value: Any, field: str, max_len: int = _MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ItemProblem(RefusalCode.FIELD_INVALID, field, "空でない文字列が必要です", "must be a non-empty string")
    if len(value) > max_len:
        raise ItemProblem(
            RefusalCode.FIELD_INVALID, field, f"{max_len}文字以内で入力してください", f"must be at most {max_len} characters"
        )
    return value.strip()


def check_date(value: Any, field: str, *, not_after: date | None = None, not_before: date | None = None) -> date:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ItemProblem(
            RefusalCode.FIELD_INVALID, field, "日付は YYYY-MM-DD 形式で入力してください", "must be a date as YYYY-MM-DD"
        )
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise ItemProblem(RefusalCode.FIELD_INVALID, field, "存在しない日付です", "is not a real calendar date") from None
    if not_after is not None and parsed > not_after:
        raise ItemProblem(
            RefusalCode.FIELD_INVALID,
            field,
            f"未来の日付は入力できません（{not_after.isoformat()} より後）",
            f"must not be later than {not_after.isoformat()}",
        )
    if not_before is not None and parsed < not_before:
        raise ItemProblem(
            RefusalCode.FIELD_INVALID,
            field,
            f"{not_before.isoformat()} より前の日付は入力できません",
            f"must not be earlier than {not_before.isoformat()}",
        )
    return parsed


def check_sex(value: Any, field: str = "sex") -> str:
    if value not in SEX_CODES:
        raise ItemProblem(
            RefusalCode.FIELD_INVALID, field, "性別は 1（男）または 2（女）で入力してください", "must be '1' (male) or '2' (female)"
        )
    return str(value)


def check_kana(value: Any, field: str = "name_kana") -> str:
    text = check_text(value, field)
    if not _KANA.fullmatch(text):
        raise ItemProblem(RefusalCode.FIELD_INVALID, field, "全角カタカナで入力してください", "must be full-width katakana")
    return text


def check_postal_code(value: Any, field: str = "postal_code") -> str:
    """Return the 郵便番号 as 7 digits (a hyphen is accepted on input and dropped)."""
    match = _POSTAL.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ItemProblem(
            RefusalCode.FIELD_INVALID, field, "郵便番号は7桁の数字（NNN-NNNN）で入力してください", "must be 7 digits (NNN-NNNN)"
        )
    return match.group(1) + match.group(2)


def check_identifier(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ItemProblem(RefusalCode.FIELD_INVALID, field, "数字の文字列が必要です", "must be a string of digits")
    try:
        if field == "my_number":
            return validate_my_number(value)
        return validate_resident_code(value)
    except IdentifierError as error:
        raise ItemProblem(RefusalCode.FIELD_INVALID, field, error.rule, error.rule) from None


def check_identity_schema(items: Mapping[str, Any]) -> None:
    """CS-002: exactly the 8 本人確認情報 items, nothing more (a message with an extra field is rejected whole)."""
    exact_keys(items, IDENTITY_ITEMS)


def check_identity_format(items: Mapping[str, Any]) -> dict[str, str]:
    """CS-012 (iii): every item well formed; returns the items normalised (stripped text)."""
    check_identity_schema(items)
    birth = check_date(items["birth_date"], "birth_date")
    change_reason = items["change_reason"]
    if change_reason not in CHANGE_REASONS:
        raise ItemProblem(
            RefusalCode.FIELD_INVALID,
            "change_reason",
            f"異動事由は {', '.join(CHANGE_REASONS)} のいずれかです",
            f"must be one of {', '.join(CHANGE_REASONS)}",
        )
    check_date(items["change_date"], "change_date", not_before=birth)
    return {
        "resident_code": check_identifier(items["resident_code"], "resident_code"),
        "name": check_text(items["name"], "name"),
        "birth_date": birth.isoformat(),
        "sex": check_sex(items["sex"]),
        "address": check_text(items["address"], "address"),
        "my_number": check_identifier(items["my_number"], "my_number"),
        "change_reason": str(change_reason),
        "change_date": str(items["change_date"]),
    }


def status_for(change_reason: str) -> str:
    return "removed" if change_reason in REMOVAL_REASONS else "active"


def run_staff_command(
    component: Component,
    session: StaffSession,
    function: str,
    now: datetime,
    correlation_id: str | None,
    action: Callable[[Result], None],
) -> Result:
    """Like Component.command, but a refusal's decision also names the operator and the function (LOG-001)."""
    result = Result()
    try:
        with transaction(component.conn):
            action(result)
    except Refusal as refusal:
        return component.refused(
            refusal, now, correlation_id=correlation_id, evidence={"operator": session.user_id, "function": function}
        )
    return result


_DDL = """
CREATE TABLE IF NOT EXISTS cs_identity_info (
    resident_code TEXT PRIMARY KEY,
    name TEXT NOT NULL, birth_date TEXT NOT NULL, sex TEXT NOT NULL, address TEXT NOT NULL,
    my_number TEXT NOT NULL, change_reason TEXT NOT NULL, change_date TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'removed')),
    change_id TEXT, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cs_identity_name ON cs_identity_info(name);
CREATE INDEX IF NOT EXISTS cs_identity_birth ON cs_identity_info(birth_date);
CREATE TABLE IF NOT EXISTS cs_identity_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    change_id TEXT, resident_code TEXT NOT NULL, items TEXT NOT NULL, received_at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS cs_identity_history_no_update BEFORE UPDATE ON cs_identity_history
    BEGIN SELECT RAISE(ABORT, 'cs_identity_history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS cs_identity_history_no_delete BEFORE DELETE ON cs_identity_history
    BEGIN SELECT RAISE(ABORT, 'cs_identity_history is append-only'); END;
CREATE TABLE IF NOT EXISTS cs_notifications (
    change_id TEXT PRIMARY KEY, resident_code TEXT NOT NULL, notified_at TEXT NOT NULL, acked_at TEXT
);
CREATE TABLE IF NOT EXISTS cs_number_pairs (
    resident_code TEXT PRIMARY KEY, my_number TEXT NOT NULL UNIQUE, recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cs_number_requests (
    request_id TEXT PRIMARY KEY, resident_code TEXT NOT NULL, requested_at TEXT NOT NULL, answered_at TEXT
);
CREATE TABLE IF NOT EXISTS cs_code_acquisitions (
    processing_serial TEXT PRIMARY KEY, resident_code TEXT NOT NULL, relayed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cs_host_allowlist (
    cs TEXT NOT NULL, program TEXT NOT NULL, sha256 TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('cs_application', 'jlis_service')),
    PRIMARY KEY (cs, program)
);
CREATE TABLE IF NOT EXISTS cs_host_launches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, cs TEXT NOT NULL, program TEXT NOT NULL, sha256 TEXT NOT NULL,
    outcome TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cs_segment_devices (
    cs TEXT NOT NULL, mac TEXT NOT NULL, device TEXT NOT NULL, online INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (cs, mac)
);
CREATE TABLE IF NOT EXISTS cs_segment_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, cs TEXT NOT NULL, mac TEXT NOT NULL, event TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cs_wide_area_requests (
    request_id TEXT PRIMARY KEY, resident_code TEXT NOT NULL, requested_at TEXT NOT NULL, answered_at TEXT,
    synced_at TEXT
);
"""

#: Packages 機構 distributes for the CS host (simulated contents): the only software allowed to run there (CS-007),
#: and the CS application, the only client of CS data (CS-009).
JLIS_PACKAGES: dict[str, tuple[bytes, str]] = {
    "jlis-cs-app": (b"J-LIS municipal CS application, release 2026.10 (simulated package)", "cs_application"),
    "jlis-cs-batch": (b"J-LIS CS batch (consistency upload), release 2026.10 (simulated package)", "jlis_service"),
}


def _mac_for(party: str, device: str) -> str:
    """A stable, locally administered MAC for a modelled device (the registration list of the CS hub)."""
    digest = hashlib.sha256(f"{party}|{device}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))

_IDENTITY_COLUMNS = ", ".join(IDENTITY_ITEMS)


class MunicipalCS(DeliveryMixin, Component):
    """市町村CS. Message contracts (body is never personal; ``sealed`` is JWE to the recipient):

    - in IDENTITY_UPDATE from 既存住基: body {"change_id", optional "initial_load": true}; sealed = the 8
      IDENTITY_ITEMS. out IDENTITY_NOTIFY to the 都道府県サーバ: the same body; sealed = the 8 items.
      ``initial_load`` marks the 初期データ移行 of a person CS does not hold yet (no 異動 logic check).
    - in IDENTITY_ACK from the 都道府県サーバ: body {"change_id"}.
    - in MY_NUMBER_REQUEST from 既存住基: body {"request_id"}; sealed {"resident_code"} → relayed to the 全国サーバ.
    - in MY_NUMBER_ISSUED from the 全国サーバ: body {"request_id"}; sealed {"resident_code", "my_number"} → relayed
      to 既存住基 after the CS-013 / CS-014 checks.
    - in CODE_ACQUISITION_NOTIFY from 既存住基: body {}; sealed {"processing_serial", "resident_code"} → relayed to
      the 全国サーバ.
    """

    name_ja = "市町村CS"
    name_en = "municipal communication server"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        registry_party: str,
        prefectural_party: str,
        national_party: str,
        staff: StaffDirectory,
        search_min_keys: int = 2,
        search_require_name: bool = True,
        bypassed_party: str | None = None,
        delivery_retention_days: int = 1,
        key_module: KeyModule | None = None,
        card_system_party: str | None = None,
        delivery_retention_business_days: bool | None = None,
    ) -> None:
        super().__init__(party, conn, security, directory)
        if search_min_keys not in (0, 1, 2, 3):
            raise InputError("search_min_keys", "must be 0..3 (profile cs.search.min_non_sex_keys)")
        self.registry_party = registry_party
        self.prefectural_party = prefectural_party
        self.national_party = national_party
        self.staff = staff
        # Profile switches (CS-003, catalogue F-20): 000/003 need 2 non-性別 keys; 002 states no minimum (0).
        # require_name=True is the strict reading (氏名+住所 or 氏名+生年月日); False admits 住所+生年月日.
        self.search_min_keys = search_min_keys
        self.search_require_name = search_require_name
        # With a 住基GW, registry_party is the gateway and bypassed_party the 既存住基 behind it (GW-001).
        self.bypassed_party = bypassed_party
        self.delivery_retention_days = delivery_retention_days
        self.key_module = key_module
        ensure_schema(conn, _DDL)
        with transaction(conn):
            for program, (content, role) in JLIS_PACKAGES.items():
                conn.execute(
                    "INSERT OR IGNORE INTO cs_host_allowlist (cs, program, sha256, role) VALUES (?, ?, ?, ?)",
                    (party, program, hashlib.sha256(content).hexdigest(), role),
                )
            for device in ("cs_server", "juki_terminal_1", "juki_terminal_2"):
                conn.execute(
                    "INSERT OR IGNORE INTO cs_segment_devices (cs, mac, device) VALUES (?, ?, ?)",
                    (party, _mac_for(party, device), device),
                )
            if key_module is not None:
                key_module.generate("jukinet-auth")
        self._handlers[MessageType.WIDE_AREA_REPLY] = self._on_wide_area_reply
        self._handlers[MessageType.IDENTITY_UPDATE] = self._on_identity_update
        self._handlers[MessageType.IDENTITY_ACK] = self._on_identity_ack
        self._handlers[MessageType.MY_NUMBER_REQUEST] = self._on_my_number_request
        self._handlers[MessageType.MY_NUMBER_ISSUED] = self._on_my_number_issued
        self._handlers[MessageType.CODE_ACQUISITION_NOTIFY] = self._on_code_acquisition
        # 送付先情報 and card events to the 個人番号カード管理システム (CS-015/016/022/023: simulator/components/sofusaki.py).
        self._init_delivery(card_system_party, delivery_retention_business_days)

    # -- helpers -----------------------------------------------------------------------------------------

    def _require_peer(self, envelope: Envelope, link: Link, expected: str, control_id: str, what_ja: str) -> None:
        # The connection's authenticated source must agree with the signed sender: a relay cannot speak for another.
        sender = envelope.sender
        if self.bypassed_party is not None and self.bypassed_party in (sender, link.source):
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED, "GW-001",
                f"既存住基からの直接の接続は受け付けません（住基GW {self.registry_party} 経由のみ）",
                f"no direct session from 既存住基; only through the gateway {self.registry_party}", "sender",
            )
        if sender != expected and sender.endswith(".atena"):
            control_id = "CS-004"  # 宛名 and CS are never connected
        elif sender != expected and sender.startswith(("platform.", "nws.", "portal")):
            control_id = "CS-024"  # nothing from the 番号制度 side reaches CS files
        self.require_sender(envelope, {expected}, control_id, what_ja)
        if link.source != envelope.sender:
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                control_id,
                f"接続元（{link.source}）と電文の送信者（{envelope.sender}）が一致しません",
                f"the connection source {link.source!r} is not the signed sender {envelope.sender!r}",
                field="sender",
            )

    def _problem(self, problem: ItemProblem, control_id: str, what_ja: str) -> Refusal:
        return self.refuse(
            problem.code, control_id, f"{what_ja}: 項目「{problem.field}」: {problem.rule_ja}", problem.rule_en, problem.field
        )

    def _checked(
        self,
        data: Mapping[str, Any],
        control_id: str,
        what_ja: str,
        required: Iterable[str],
        optional: Iterable[str] = (),
    ) -> None:
        try:
            exact_keys(data, required, optional)
        except ItemProblem as problem:
            raise self._problem(problem, control_id, what_ja) from None

    def _text_id(self, value: Any, field: str, control_id: str) -> str:
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                control_id,
                f"項目「{field}」は1〜64文字の識別子です",
                f"{field} must be an identifier of 1 to 64 characters",
                field,
            )
        return value

    def _row(self, resident_code: str) -> dict[str, str] | None:
        cur = self.conn.execute(
            f"SELECT {_IDENTITY_COLUMNS}, status FROM cs_identity_info WHERE resident_code = ?", (resident_code,)
        )
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([*IDENTITY_ITEMS, "status"], row, strict=True))

    def _store(self, items: Mapping[str, str], change_id: str | None, now: datetime) -> None:
        self.conn.execute(
            f"""INSERT INTO cs_identity_info ({_IDENTITY_COLUMNS}, status, change_id, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(resident_code) DO UPDATE SET name = excluded.name, birth_date = excluded.birth_date,
                  sex = excluded.sex, address = excluded.address, my_number = excluded.my_number,
                  change_reason = excluded.change_reason, change_date = excluded.change_date,
                  status = excluded.status, change_id = excluded.change_id, updated_at = excluded.updated_at""",
            (
                *(items[k] for k in IDENTITY_ITEMS),
                status_for(items["change_reason"]),
                change_id,
                now.isoformat(),
            ),
        )
        self.conn.execute(
            "INSERT INTO cs_identity_history (change_id, resident_code, items, received_at) VALUES (?, ?, ?, ?)",
            (change_id, items["resident_code"], json.dumps(dict(items), ensure_ascii=False), now.isoformat()),
        )

    def _pair_check(self, resident_code: str, my_number: str, control_id: str) -> bool:
        """CS-014: the 住民票コード ↔ 個人番号 pair must agree with the one CS holds. Returns whether a pair was known."""
        known = self.conn.execute(
            "SELECT my_number FROM cs_number_pairs WHERE resident_code = ?", (resident_code,)
        ).fetchone()
        if known is not None and known[0] != my_number:
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                control_id,
                "個人番号が、この住民票コードについて市町村CSが保持する対応付けと一致しません",
                "the 個人番号 does not match the 住民票コード ↔ 個人番号 pair this CS holds",
                "my_number",
            )
        other = self.conn.execute(
            "SELECT resident_code FROM cs_number_pairs WHERE my_number = ? AND resident_code != ?",
            (my_number, resident_code),
        ).fetchone()
        if other is not None:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                control_id,
                "この個人番号は別の住民票コードに対応付けられています",
                "this 個人番号 is paired with a different 住民票コード",
                "my_number",
            )
        return known is not None

    def _record_pair(self, resident_code: str, my_number: str, now: datetime) -> None:
        self.conn.execute(
            "INSERT INTO cs_number_pairs (resident_code, my_number, recorded_at) VALUES (?, ?, ?)"
            " ON CONFLICT(resident_code) DO NOTHING",
            (resident_code, my_number, now.isoformat()),
        )

    # -- 本人確認情報の更新 (FL-01 steps 4–6) -------------------------------------------------------------------

    def _on_identity_update(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        corr = envelope.correlation_id
        self._require_peer(envelope, link, self.registry_party, "CS-001", "本人確認情報の更新")
        self._checked(envelope.body, "CS-002", "本人確認情報の更新（制御項目）", ["change_id"], ["initial_load"])
        change_id = self._text_id(envelope.body["change_id"], "change_id", "CS-002")
        initial_load = envelope.body.get("initial_load", False)
        if not isinstance(initial_load, bool):
            raise self.refuse(RefusalCode.FIELD_INVALID, "CS-002", "initial_load は真偽値です",
                              "initial_load must be a boolean", "initial_load")
        sealed = self.unseal(envelope)
        try:
            check_identity_schema(sealed)
        except ItemProblem as problem:
            raise self._problem(problem, "CS-002", "告示で定める本人確認情報以外は受け付けません") from None
        self.allow(result, "CS-001", now, "既存住基からの本人確認情報を受け付けました",
                   "本人確認情報 accepted from the registered 既存住基", corr, source=envelope.sender)
        self.allow(result, "CS-002", now, "告示で定める8項目のみでした", "exactly the 8 statutory items", corr)
        self.allow(result, "CS-006", now, "法令で定める項目以外の情報は紐付けられていません",
                   "no item beyond the statutory ones is joined to the update", corr)
        try:
            items = check_identity_format(sealed)
        except ItemProblem as problem:
            raise self._problem(problem, "CS-012", "本人確認情報の形式チェック") from None
        if self.conn.execute("SELECT 1 FROM cs_notifications WHERE change_id = ?", (change_id,)).fetchone():
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "CS-020",
                "同じ異動についての更新が二重に届きました（都道府県サーバへは通知済み）",
                "a second update for the same change arrived; the 都道府県サーバ was already notified",
                "change_id",
            )
        if initial_load:
            # 初期データ移行: a person CS does not hold yet, in whatever state the register has them.
            if self._row(items["resident_code"]) is not None:
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "CS-012",
                    "初期登録ですが、この住民票コードの本人確認情報は既に記録されています",
                    "an initial-load update for a 住民票コード already on file",
                    "resident_code",
                )
        else:
            self._logic_check(items)
        self.allow(result, "CS-012", now, "形式・論理チェックを通過しました", "format and logic checks passed", corr,
                   change_reason=items["change_reason"])
        known = self._pair_check(items["resident_code"], items["my_number"], "CS-014")
        self.allow(result, "CS-014", now, "住民票コードと個人番号の対応付けを確認しました",
                   "住民票コード ↔ 個人番号 pairing checked", corr, pair_known=known)
        self._store(items, change_id, now)
        self._record_pair(items["resident_code"], items["my_number"], now)
        self.send(
            result,
            MessageType.IDENTITY_NOTIFY,
            self.prefectural_party,
            now,
            body={"change_id": change_id, "initial_load": True} if initial_load else {"change_id": change_id},
            personal=items,
            correlation_id=corr,
        )
        self.conn.execute(
            "INSERT INTO cs_notifications (change_id, resident_code, notified_at) VALUES (?, ?, ?)",
            (change_id, items["resident_code"], now.isoformat()),
        )
        self.allow(result, "CS-020", now, "都道府県サーバへ更新を1件通知しました",
                   "one update notified to the 都道府県サーバ", corr, change_id=change_id)
        return result

    def _logic_check(self, items: Mapping[str, str]) -> None:
        """CS-012 (i), (ii): the 異動事由 must make sense against what CS already holds for the 住民票コード."""
        reason = items["change_reason"]
        current = self._row(items["resident_code"])
        if reason == "birth" and current is not None:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "CS-012",
                "出生を異動事由とする更新ですが、この住民票コードは既に記録されています",
                "a birth update for a 住民票コード that is already on file",
                "change_reason",
            )
        if reason == "move_in" and current is not None and current["status"] == "active":
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "CS-012",
                "現存する住民に対して転入を異動事由とする更新はできません",
                "a move-in update for a 住民票コード that is already an active resident",
                "change_reason",
            )
        if reason in ("move_within", "move_out", "death"):
            if current is None:
                raise self.refuse(
                    RefusalCode.NOT_FOUND,
                    "CS-012",
                    "この住民票コードの本人確認情報がありません",
                    "no 本人確認情報 is held for this 住民票コード",
                    "resident_code",
                )
            if current["status"] != "active":
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "CS-012",
                    "消除済みの住民に対する更新です",
                    "an update for a resident who has already been removed",
                    "change_reason",
                )
        if current is not None and reason in _MUTABLE_ITEMS:
            fixed = [k for k in ("name", "birth_date", "sex", "address", "my_number") if k not in _MUTABLE_ITEMS[reason]]
            for key in fixed:
                if items[key] != current[key]:
                    raise self.refuse(
                        RefusalCode.FIELD_INVALID,
                        "CS-012",
                        f"異動事由「{reason}」の更新で「{key}」を変更することはできません",
                        f"an update with reason {reason!r} may not change {key!r}",
                        key,
                    )

    def _on_identity_ack(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        self._require_peer(envelope, link, self.prefectural_party, "CS-005", "更新受領通知")
        self._checked(envelope.body, "CS-020", "更新受領通知", ["change_id"])
        updated = self.conn.execute(
            "UPDATE cs_notifications SET acked_at = ? WHERE change_id = ? AND acked_at IS NULL",
            (now.isoformat(), envelope.body["change_id"]),
        ).rowcount
        if updated != 1:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "CS-020",
                "未通知または受領済みの更新に対する受領通知です",
                "an acknowledgement for an update that was not sent or was already acknowledged",
                "change_id",
            )
        return Result()

    # -- 個人番号の指定 (FL-04 steps 3–4) ----------------------------------------------------------------------

    def _on_my_number_request(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_peer(envelope, link, self.registry_party, "CS-005", "個人番号生成要求")
        self._checked(envelope.body, "CS-006", "個人番号生成要求（制御項目）", ["request_id"])
        request_id = self._text_id(envelope.body["request_id"], "request_id", "CS-006")
        sealed = self.unseal(envelope)
        self._checked(sealed, "CS-006", "個人番号生成要求", ["resident_code"])
        try:
            code = check_identifier(sealed["resident_code"], "resident_code")
        except ItemProblem as problem:
            raise self._problem(problem, "CS-012", "個人番号生成要求") from None
        if self.conn.execute("SELECT 1 FROM cs_number_requests WHERE request_id = ?", (request_id,)).fetchone():
            raise self.refuse(
                RefusalCode.STATE_CONFLICT, "CS-012", "同じ要求番号の生成要求が既にあります",
                "a request with this id was already relayed", "request_id",
            )
        self.conn.execute(
            "INSERT INTO cs_number_requests (request_id, resident_code, requested_at) VALUES (?, ?, ?)",
            (request_id, code, now.isoformat()),
        )
        self.allow(result, "CS-006", now, "法令で定める項目（住民票コード）のみの要求でした",
                   "the request carries only the statutory item (住民票コード)", envelope.correlation_id)
        self.allow(result, "CS-005", now, "既存住基からの個人番号生成要求を機構へ中継します",
                   "個人番号 request from 既存住基 relayed to 機構", envelope.correlation_id)
        self.send(
            result,
            MessageType.MY_NUMBER_REQUEST,
            self.national_party,
            now,
            body={"request_id": request_id},
            personal={"resident_code": code},
            correlation_id=envelope.correlation_id,
        )
        return result

    def _on_my_number_issued(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_peer(envelope, link, self.national_party, "CS-005", "個人番号の通知")
        self._checked(envelope.body, "CS-013", "個人番号の通知（制御項目）", ["request_id"])
        sealed = self.unseal(envelope)
        self._checked(sealed, "CS-013", "個人番号の通知", ["resident_code", "my_number"])
        request = self.conn.execute(
            "SELECT resident_code, answered_at FROM cs_number_requests WHERE request_id = ?",
            (envelope.body["request_id"],),
        ).fetchone()
        if request is None or request[1] is not None:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT, "CS-013", "対応する未回答の個人番号生成要求がありません",
                "no open 個人番号 request matches this reply", "request_id",
            )
        if sealed["resident_code"] != request[0]:
            raise self.refuse(
                RefusalCode.REPLY_MISMATCH, "CS-013", "要求した住民票コード以外の者についての応答です",
                "the reply is about a person other than the one requested", "resident_code",
            )
        try:
            number = check_identifier(sealed["my_number"], "my_number")
        except ItemProblem as problem:
            raise self._problem(problem, "CS-013", "個人番号の通知") from None
        self._pair_check(request[0], number, "CS-014")
        self._record_pair(request[0], number, now)
        self.conn.execute(
            "UPDATE cs_number_requests SET answered_at = ? WHERE request_id = ?",
            (now.isoformat(), envelope.body["request_id"]),
        )
        self.allow(result, "CS-013", now, "要求した本人についての応答のみでした",
                   "the reply concerns only the person requested", envelope.correlation_id)
        self.send(
            result,
            MessageType.MY_NUMBER_ISSUED,
            self.registry_party,
            now,
            body={"request_id": envelope.body["request_id"]},
            personal={"resident_code": request[0], "my_number": number},
            correlation_id=envelope.correlation_id,
        )
        return result

    # -- 符号取得 (FL-17 step 4) -------------------------------------------------------------------------------

    def _on_code_acquisition(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_peer(envelope, link, self.registry_party, "CS-005", "符号取得のための通知")
        self._checked(envelope.body, "CS-006", "符号取得のための通知（制御項目）", [])
        sealed = self.unseal(envelope)
        self._checked(sealed, "CS-006", "符号取得のための通知", ["processing_serial", "resident_code"])
        serial = self._text_id(sealed["processing_serial"], "processing_serial", "CS-012")
        try:
            code = check_identifier(sealed["resident_code"], "resident_code")
        except ItemProblem as problem:
            raise self._problem(problem, "CS-012", "符号取得のための通知") from None
        # A 消除者 stays on file: the municipality still holds their 除票 and may need their 符号 for it.
        if self._row(code) is None:
            raise self.refuse(
                RefusalCode.NOT_FOUND, "CS-012", "この市町村の本人確認情報に記録されていない住民票コードです",
                "the 住民票コード is not on this municipality's 本人確認情報 file", "resident_code",
            )
        if self.conn.execute(
            "SELECT 1 FROM cs_code_acquisitions WHERE processing_serial = ?", (serial,)
        ).fetchone():
            raise self.refuse(
                RefusalCode.SERIAL_INVALID, "NWS-005", "この処理通番は既に使用されています",
                "this 処理通番 was already used", "processing_serial",
            )
        self.conn.execute(
            "INSERT INTO cs_code_acquisitions (processing_serial, resident_code, relayed_at) VALUES (?, ?, ?)",
            (serial, code, now.isoformat()),
        )
        self.allow(result, "CS-005", now, "既存住基からの符号取得通知を機構へ中継します",
                   "code-acquisition notice from 既存住基 relayed to 機構", envelope.correlation_id)
        self.send(
            result,
            MessageType.CODE_ACQUISITION_NOTIFY,
            self.national_party,
            now,
            body={},
            personal={"processing_serial": serial, "resident_code": code},
            correlation_id=envelope.correlation_id,
        )
        return result

    # -- 4情報検索 (FL-08) -------------------------------------------------------------------------------------

    def basic4_search(self, session: StaffSession, criteria: Mapping[str, Any], now: datetime) -> Result:
        """本人確認情報検索. ``criteria`` keys: name, address (prefix), birth_date, sex. Value: list of matches."""

        def action(result: Result) -> None:
            self.staff.require(session, "cs_operator", "CS-010", "本人確認情報検索", "search 本人確認情報")
            self.allow(result, "CS-010", now, "CS操作権限を確認しました", "CS operator privilege checked",
                       operator=session.user_id, function="basic4_search")
            try:
                exact_keys(criteria, [], _BASIC4_KEYS)
            except ItemProblem as problem:
                raise self._problem(problem, "CS-003", "検索条件") from None
            given = {k: v for k, v in criteria.items() if isinstance(v, str) and v.strip()}
            if set(criteria) - set(given):
                bad = sorted(set(criteria) - set(given))[0]
                raise self.refuse(RefusalCode.FIELD_INVALID, "CS-003", f"検索条件「{bad}」が空です",
                                  f"search key {bad!r} is empty", bad)
            non_sex = [k for k in ("name", "address", "birth_date") if k in given]
            if len(non_sex) < self.search_min_keys or (
                self.search_require_name and self.search_min_keys > 0 and "name" not in given
            ):
                need_ja = "氏名を含む" if self.search_require_name else ""
                raise self.refuse(
                    RefusalCode.SEARCH_TOO_BROAD,
                    "CS-003",
                    f"性別を除く{self.search_min_keys}情報以上（{need_ja}組み合わせ）を指定してください",
                    f"give at least {self.search_min_keys} of name, address, birth date (sex does not count)"
                    + ("; name is required" if self.search_require_name else ""),
                    "criteria",
                )
            try:
                if "birth_date" in given:
                    check_date(given["birth_date"], "birth_date")
                if "sex" in given:
                    check_sex(given["sex"])
            except ItemProblem as problem:
                raise self._problem(problem, "CS-003", "検索条件") from None
            self.allow(result, "CS-003", now, "検索条件の最低限を満たしています", "minimum search keys given",
                       keys=sorted(given))
            matches = self._search(given)
            self.audit.append(
                at=now.isoformat(),
                kind="cs.operation",
                data={
                    "operator": session.user_id,
                    "session": session.session_id,
                    "function": "basic4_search",
                    "keys": sorted(given),
                    "targets": [m["resident_code"] for m in matches],
                },
            )
            self.allow(result, "CS-013", now, "検索条件に合致する者のみを応答しました",
                       "only the persons matching the conditions were returned", count=len(matches))
            result.value = matches

        return run_staff_command(self, session, "basic4_search", now, None, action)

    def _search(self, given: Mapping[str, str]) -> list[dict[str, str]]:
        clauses: list[str] = []
        params: list[str] = []
        if "name" in given:
            clauses.append("replace(replace(name, ' ', ''), '　', '') = ?")
            params.append(given["name"].replace(" ", "").replace("　", ""))
        if "birth_date" in given:
            clauses.append("birth_date = ?")
            params.append(given["birth_date"])
        if "sex" in given:
            clauses.append("sex = ?")
            params.append(given["sex"])
        if "address" in given:
            # 住所 is matched from its beginning (都道府県 … 番地), as a clerk types it.
            clauses.append("substr(address, 1, length(?)) = ?")
            params.extend([given["address"].strip(), given["address"].strip()])
        where = " AND ".join(clauses) if clauses else "1 = 0"
        rows = self.conn.execute(
            f"SELECT {_IDENTITY_COLUMNS}, status FROM cs_identity_info WHERE {where} ORDER BY resident_code", params
        ).fetchall()
        return [dict(zip([*IDENTITY_ITEMS, "status"], row, strict=True)) for row in rows]

    # -- bulk load, reads --------------------------------------------------------------------------------

    def bulk_load(self, rows: Iterable[Mapping[str, Any]], now: datetime) -> Result:
        """Initial load of 本人確認情報 (the 8 items per row, e.g. Registry.identity_snapshot()); one transaction."""
        count = 0
        with transaction(self.conn):
            for index, row in enumerate(rows):
                try:
                    items = check_identity_format(row)
                except ItemProblem as problem:
                    raise problem.as_input_error(f"rows[{index}].") from None
                if self._row(items["resident_code"]) is not None:
                    raise InputError(f"rows[{index}].resident_code", "duplicate 住民票コード")
                clash = self.conn.execute(
                    "SELECT 1 FROM cs_number_pairs WHERE my_number = ?", (items["my_number"],)
                ).fetchone()
                if clash:
                    raise InputError(f"rows[{index}].my_number", "個人番号 already paired with another 住民票コード")
                self._store(items, None, now)
                self._record_pair(items["resident_code"], items["my_number"], now)
                count += 1
            self.audit.append(at=now.isoformat(), kind="bulk_load", data={"table": "cs_identity_info", "count": count})
        return Result(value=count)

    def identity(self, resident_code: str) -> dict[str, str] | None:
        """The 本人確認情報 CS holds for one person (8 items + status), or None."""
        return self._row(resident_code)

    def consistency_rows(self) -> list[dict[str, str]]:
        """整合性確認用本人確認情報 (JLIS-002): the 8 items of every person on file, active and removed."""
        rows = self.conn.execute(f"SELECT {_IDENTITY_COLUMNS} FROM cs_identity_info ORDER BY resident_code")
        return [dict(zip(IDENTITY_ITEMS, row, strict=True)) for row in rows]

    def unacknowledged(self) -> list[str]:
        """Change ids notified to the 都道府県サーバ and not yet acknowledged."""
        rows = self.conn.execute("SELECT change_id FROM cs_notifications WHERE acked_at IS NULL ORDER BY notified_at")
        return [r[0] for r in rows]

    # -- 広域交付 through the 住基GW cache (GW-004) and the reply check (CS-013) -----------------------------------

    def request_wide_area(self, resident_code: str, now: datetime) -> Result:
        """A 広域交付 request for one of our residents arrived over 住基ネット: ask the 住基GW. Value: request id."""

        def action(result: Result) -> None:
            try:
                code = check_identifier(resident_code, "resident_code")
            except ItemProblem as problem:
                raise self._problem(problem, "CS-012", "広域交付の請求") from None
            request_id = uuid.uuid4().hex
            self.conn.execute(
                "INSERT INTO cs_wide_area_requests (request_id, resident_code, requested_at) VALUES (?, ?, ?)",
                (request_id, code, now.isoformat()),
            )
            self.send(result, MessageType.WIDE_AREA_REQUEST, self.registry_party, now, body={"request_id": request_id},
                      personal={"resident_code": code}, correlation_id=request_id)
            result.value = request_id

        return self.command(now, None, action)

    def _on_wide_area_reply(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_peer(envelope, link, self.registry_party, "CS-005", "広域交付の応答")
        sealed = self.unseal(envelope)
        request = self.conn.execute(
            "SELECT resident_code FROM cs_wide_area_requests WHERE request_id = ? AND answered_at IS NULL",
            (envelope.body.get("request_id"),),
        ).fetchone()
        if request is None:
            raise self.refuse(RefusalCode.STATE_CONFLICT, "CS-013", "対応する未回答の広域交付請求がありません",
                              "no open 広域交付 request matches this reply", "request_id")
        record = sealed.get("record")
        if (sealed.get("resident_code") != request[0] or not isinstance(record, dict)
                or record.get("resident_code") != request[0]):
            raise self.refuse(RefusalCode.REPLY_MISMATCH, "CS-013", "請求した住民票コード以外の者を含む応答です",
                              "the reply carries a person other than the one requested", "resident_code")
        self.conn.execute(
            "UPDATE cs_wide_area_requests SET answered_at = ?, synced_at = ? WHERE request_id = ?",
            (now.isoformat(), envelope.body.get("synced_at"), envelope.body.get("request_id")),
        )
        self.allow(result, "CS-013", now, "請求した本人についての応答のみでした",
                   "the reply concerns only the person requested", envelope.correlation_id)
        return result

    def wide_area_answer(self, request_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT resident_code, answered_at, synced_at FROM cs_wide_area_requests WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return None if row is None else {"resident_code": row[0], "answered_at": row[1], "synced_at": row[2]}

    # -- topology (CS-004, CS-024) --------------------------------------------------------------------------

    def topology_audit(self, now: datetime) -> Result:
        """List every party this CS has a route to; a 宛名 (CS-004) or 番号制度-side (CS-024) route is a finding."""

        def action(result: Result) -> None:
            routes = {p: n for p in self.directory.parties()
                      if (n := self.directory.network_between(self.party, p)) is not None}
            findings = {
                "CS-004": sorted(p for p in routes if p.endswith(".atena")),
                "CS-024": sorted(p for p in routes if p.startswith(("platform.", "nws.", "portal"))),
            }
            what = {"CS-004": ("団体内統合宛名システム", "the 宛名 system"),
                    "CS-024": ("中間サーバー・情報提供ネットワークシステム", "the 中間サーバー or NWS")}
            for control, found in findings.items():
                if found:
                    result.decisions.append(self.decide(
                        control, Outcome.DENY, now,
                        reason_ja=f"市町村CSから{what[control][0]}への経路があります: {', '.join(found)}",
                        reason_en=f"the CS has a route to {what[control][1]}: {', '.join(found)}",
                        evidence={"routes": routes, "findings": found}, code=str(RefusalCode.SOURCE_NOT_ALLOWED),
                    ))
                else:
                    self.allow(result, control, now, f"市町村CSから{what[control][0]}への経路はありません",
                               f"no route from the CS to {what[control][1]}", None, routes=routes)
            result.value = routes

        return self.command(now, None, action)

    # -- the CS host: software allow-list (CS-007), 機構 application only (CS-009) -------------------------------

    def _allowlisted(self, program: str, content: bytes) -> tuple[str, str | None]:
        digest = hashlib.sha256(content).hexdigest()
        row = self.conn.execute(
            "SELECT role FROM cs_host_allowlist WHERE cs = ? AND program = ? AND sha256 = ?",
            (self.party, program, digest),
        ).fetchone()
        return digest, None if row is None else str(row[0])

    def launch_process(self, program: str, content: bytes, now: datetime) -> Result:
        """Execute a program on the CS host: only allow-listed (name and digest) 機構 software starts."""
        digest, role = self._allowlisted(program, content)

        def action(result: Result) -> None:
            if role is None:
                raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "CS-007",
                                  f"CSサーバで許可されていないソフトウェアです（{program}）。起動を阻止しました",
                                  f"{program!r} is not on the CS host's allow-list; its launch was blocked", "program")
            self.conn.execute(
                "INSERT INTO cs_host_launches (cs, program, sha256, outcome, at) VALUES (?, ?, ?, 'started', ?)",
                (self.party, program, digest, now.isoformat()),
            )
            self.allow(result, "CS-007", now, f"許可リストにあるソフトウェアを起動しました（{program}）",
                       f"allow-listed software started ({program})", None, program=program, sha256=digest)

        result = self.command(now, None, action)
        if result.refusal is not None:
            with transaction(self.conn):
                # The blocked attempt is logged even though the step was refused.
                self.conn.execute(
                    "INSERT INTO cs_host_launches (cs, program, sha256, outcome, at) VALUES (?, ?, ?, 'blocked', ?)",
                    (self.party, program, digest, now.isoformat()),
                )
        return result

    def open_data_session(self, program: str, content: bytes, now: datetime) -> Result:
        """A client asks for a session on CS data (update, search, 照会, 整合, 送付先): only the 機構 CS application."""
        digest, role = self._allowlisted(program, content)

        def action(result: Result) -> None:
            if role != "cs_application":
                raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "CS-009",
                                  f"CSのデータには機構が配付するCSアプリケーション以外から接続できません（{program}）",
                                  f"only the 機構-supplied CS application may reach CS data; refused {program!r}",
                                  "program")
            self.allow(result, "CS-009", now, "機構が配付したCSアプリケーションからの接続です",
                       "session opened by the 機構-supplied CS application", None, program=program, sha256=digest)
            result.value = uuid.uuid4().hex

        return self.command(now, None, action)

    # -- the CS segment hub: MAC filtering (CS-008) ------------------------------------------------------------

    def registered_mac(self, device: str) -> str:
        row = self.conn.execute(
            "SELECT mac FROM cs_segment_devices WHERE cs = ? AND device = ?", (self.party, device)
        ).fetchone()
        if row is None:
            raise KeyError(f"device: {device!r} is not registered on {self.party}'s segment")
        return str(row[0])

    def connect_device(self, mac: str, now: datetime) -> Result:
        """A device is plugged into the CS hub: link up only for a registered MAC that is not already online."""
        mac = mac.lower()

        def action(result: Result) -> None:
            row = self.conn.execute(
                "SELECT device, online FROM cs_segment_devices WHERE cs = ? AND mac = ?", (self.party, mac)
            ).fetchone()
            if row is None:
                raise self.refuse(RefusalCode.SYSTEM_NOT_REGISTERED, "CS-008",
                                  f"登録されていない機器（MAC {mac}）はCSセグメントに接続できません",
                                  f"unregistered device (MAC {mac}): no link on the CS segment", "mac")
            if row[1]:
                raise self.refuse(RefusalCode.STATE_CONFLICT, "CS-008",
                                  f"MACアドレス {mac}（{row[0]}）が重複しています。なりすましの疑いがあります",
                                  f"duplicate MAC {mac} ({row[0]}) while the registered device is online: spoofing",
                                  "mac")
            self.conn.execute("UPDATE cs_segment_devices SET online = 1 WHERE cs = ? AND mac = ?", (self.party, mac))
            self.conn.execute("INSERT INTO cs_segment_events (cs, mac, event, at) VALUES (?, ?, 'link_up', ?)",
                              (self.party, mac, now.isoformat()))
            self.allow(result, "CS-008", now, f"登録済みの機器（{row[0]}）を接続しました",
                       f"registered device connected ({row[0]})", None, mac=mac, device=row[0])

        result = self.command(now, None, action)
        if result.refusal is not None:
            with transaction(self.conn):
                self.conn.execute("INSERT INTO cs_segment_events (cs, mac, event, at) VALUES (?, ?, ?, ?)",
                                  (self.party, mac, f"blocked:{result.refusal.code}", now.isoformat()))
        return result

    # -- 耐タンパー装置 (CS-011) ---------------------------------------------------------------------------------

    def _module(self) -> KeyModule:
        if self.key_module is None:
            raise self.refuse(RefusalCode.NOT_FOUND, "CS-011", "このCSには耐タンパー装置がありません",
                              "this CS has no tamper-resistant module", "key_module")
        return self.key_module

    def module_sign(self, data: bytes, now: datetime, module: KeyModule | None = None) -> Result:
        """Sign with the 住基ネット authentication key inside the module. Value: the signature (hex)."""

        def action(result: Result) -> None:
            used = module or self._module()
            try:
                signature = used.sign("jukinet-auth", data)
            except KeyModuleError as error:
                raise self.refuse(RefusalCode.DECRYPTION_FAILED, "CS-011", error.rule_ja, error.rule, "key") from None
            if not used.verify("jukinet-auth", data, signature):
                raise self.refuse(RefusalCode.BAD_SIGNATURE, "CS-011", "装置の署名を検証できません",
                                  "the module's signature does not verify", "key")
            self.allow(result, "CS-011", now, "耐タンパー装置内で署名しました（鍵は装置外に出ていません）",
                       "signed inside the tamper-resistant module; the key never left it", None,
                       module=used.module_id)
            result.value = signature.hex()

        return self.command(now, None, action)

    def module_export(self, now: datetime) -> Result:
        """An attempt to export the authentication key from the module."""

        def action(result: Result) -> None:
            try:
                self._module().export("jukinet-auth")
            except KeyModuleError as error:
                raise self.refuse(RefusalCode.SOURCE_NOT_ALLOWED, "CS-011", error.rule_ja, error.rule, "key") from None

        return self.command(now, None, action)
