"""住基ネット services beyond the 本人確認情報 update: 本人確認情報照会 (CS-021), 4情報検索の経路 (JLIS-003), the card check
at the 統合端末 (CS-018) and 特例転出・特例転入 (転出証明書情報の保留と消去, CS-017/CS-019).

Installed onto the world's CS and J-LIS components as extra message handlers and commands; state lives in each
organisation's own store. It must never answer a 照会 beyond the one person keyed, let a prefectural server answer
for another prefecture, or let held 転出証明書情報 be read by any function but 特例転入.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509

from simulator.components.base import Component, Link, Result
from simulator.components.jlis import NationalServer, PrefecturalServer
from simulator.components.municipal_cs import (
    IDENTITY_ITEMS,
    ItemProblem,
    MunicipalCS,
    check_date,
    check_identifier,
    check_sex,
    exact_keys,
)
from simulator.components.staff import StaffSession
from simulator.controls.decision import Outcome
from simulator.errors import RefusalCode
from simulator.model.envelope import Envelope, MessageType
from simulator.store.db import ensure_schema

if TYPE_CHECKING:
    from simulator.world import World

__all__ = ["HOLD_DAYS", "JukinetServices", "install"]

#: cs.tenshutsu_info.hold_days: the PIA says only 一定期間 (catalogue F-7); 14 days is this testbed's setting.
HOLD_DAYS = 14
_BASIC4 = ("name", "address", "birth_date", "sex")
_PREFECTURE_NAMES = {
    "hokkaido": "北海道",
    "ibaraki": "茨城県",
    "mie": "三重県",
    "fukuoka": "福岡県",
    "okayama": "岡山県",
}

_CS_DDL = """
CREATE TABLE IF NOT EXISTS cs_jukinet_queries (
    query_id TEXT PRIMARY KEY, cs TEXT NOT NULL, purpose TEXT NOT NULL, key_kind TEXT NOT NULL, key TEXT NOT NULL,
    target TEXT NOT NULL, sent_at TEXT NOT NULL, answered_at TEXT, answered_by TEXT, records TEXT, verified INTEGER
);
CREATE TABLE IF NOT EXISTS cs_tenshutsu_held (
    cs TEXT NOT NULL, resident_code TEXT NOT NULL, items TEXT NOT NULL, from_cs TEXT NOT NULL,
    received_at TEXT NOT NULL, expires_at TEXT NOT NULL, PRIMARY KEY (cs, resident_code)
);
CREATE TABLE IF NOT EXISTS cs_tenshutsu_sent (
    cs TEXT NOT NULL, resident_code TEXT NOT NULL, to_cs TEXT NOT NULL, sent_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cs_special_move_ins (
    cs TEXT NOT NULL, resident_code TEXT NOT NULL, card_check TEXT NOT NULL, completed_at TEXT NOT NULL
);
"""
_NS_DDL = """
CREATE TABLE IF NOT EXISTS ns_card_suspensions (
    resident_code TEXT PRIMARY KEY, suspended_at TEXT NOT NULL
);
"""


def _prefecture_of(address: str) -> str | None:
    for key, name in _PREFECTURE_NAMES.items():
        if address.startswith(name):
            return key
    return None


class JukinetServices:
    """The handlers and commands this module adds to one world (one instance per world)."""

    def __init__(self, world: World) -> None:
        self.world = world

    # -- the 照会 key (CS-021, with CS-003's minimum for 4情報) --------------------------------------------------

    @staticmethod
    def key_kind(component: Component, key: Mapping[str, Any], min_keys: int, require_name: bool) -> str:
        """Exactly one kind of key: "resident_code", "my_number" or "basic4". Raises a CS-021 refusal otherwise."""
        try:
            exact_keys(key, [], ("resident_code", "my_number", *_BASIC4))
        except ItemProblem as problem:
            raise component.refuse(
                problem.code,
                "CS-021",
                f"照会キー「{problem.field}」は使えません（住民票コード・個人番号・4情報のみ）",
                f"query key {problem.field!r} is not allowed (only 住民票コード, 個人番号 or 4情報)",
                problem.field,
            ) from None
        kinds = {("basic4" if k in _BASIC4 else k) for k in key}
        if len(kinds) != 1:
            raise component.refuse(
                RefusalCode.FIELD_INVALID,
                "CS-021",
                "照会キーは住民票コード・個人番号・4情報の組合せのいずれか1種類で指定してください"
                + ("（キーがありません）" if not kinds else f"（{len(kinds)}種類が指定されました）"),
                "a query needs exactly one kind of key: 住民票コード, 個人番号 or a 4情報 combination"
                + (" (none given)" if not kinds else f" ({len(kinds)} kinds given)"),
                "key",
            )
        kind = kinds.pop()
        try:
            if kind == "basic4":
                for k, v in key.items():
                    if not isinstance(v, str) or not v.strip():
                        raise ItemProblem(
                            RefusalCode.FIELD_INVALID, k, "空でない文字列が必要です", "must be a non-empty string"
                        )
                non_sex = [k for k in ("name", "address", "birth_date") if k in key]
                if len(non_sex) < min_keys or (require_name and min_keys > 0 and "name" not in key):
                    raise component.refuse(
                        RefusalCode.SEARCH_TOO_BROAD,
                        "CS-021",
                        f"4情報による照会は性別を除く{min_keys}情報以上（CS-003）が必要です",
                        f"a 4情報 query needs at least {min_keys} of name, address, birth date (CS-003)",
                        "key",
                    )
                if "birth_date" in key:
                    check_date(key["birth_date"], "birth_date")
                if "sex" in key:
                    check_sex(key["sex"])
            else:
                check_identifier(key[kind], kind)
        except ItemProblem as problem:
            raise component.refuse(
                problem.code,
                "CS-021",
                f"照会キー「{problem.field}」: {problem.rule_ja}",
                problem.rule_en,
                problem.field,
            ) from None
        return kind

    # -- CS side -----------------------------------------------------------------------------------------------

    def query(
        self,
        cs: MunicipalCS,
        session: StaffSession,
        key: Mapping[str, Any],
        now: datetime,
        purpose: str = "identity_query",
    ) -> Result:
        """本人確認情報照会 from the 統合端末 to the 全国サーバ. Value: the query id (the answer comes back later)."""

        def action(result: Result) -> None:
            cs.staff.require(session, "cs_operator", "CS-010", "本人確認情報照会", "query 本人確認情報")
            kind = self.key_kind(cs, key, cs.search_min_keys, cs.search_require_name)
            result.value = self._send_query(cs, result, dict(key), kind, cs.national_party, purpose, now)

        return cs.command(now, None, action)

    def _send_query(
        self, cs: MunicipalCS, result: Result, key: dict[str, Any], kind: str, target: str, purpose: str, now: datetime
    ) -> str:
        query_id = uuid.uuid4().hex
        cs.conn.execute(
            "INSERT INTO cs_jukinet_queries (query_id, cs, purpose, key_kind, key, target, sent_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (query_id, cs.party, purpose, kind, json.dumps(key, ensure_ascii=False), target, now.isoformat()),
        )
        cs.send(
            result,
            MessageType.BASIC4_SEARCH,
            target,
            now,
            body={"query_id": query_id, "purpose": purpose},
            personal={"key": key},
            correlation_id=query_id,
        )
        return query_id

    def routed_search(
        self, cs: MunicipalCS, session: StaffSession, criteria: Mapping[str, Any], now: datetime
    ) -> Result:
        """4情報検索 routed by the 住所地 given (JLIS-003): own municipality → CS, own prefecture → 都道府県サーバ,
        elsewhere → 全国サーバ. Value: {"route", "query_id" or "records"}."""
        address = str(criteria.get("address", ""))
        own = self._own_prefix(cs)
        if not address or address.startswith(own):
            local = cs.basic4_search(session, criteria, now)
            if local.refusal is None:
                local.decisions.append(
                    cs.decide(
                        "JLIS-003",
                        Outcome.ALLOW,
                        now,
                        reason_ja="自市町村の住民の検索は市町村CSが応答しました",
                        reason_en="a search for a local resident was answered by the CS",
                        evidence={"route": "cs"},
                    )
                )
                local.value = {"route": "cs", "records": local.value}
            return local
        pref_key = _prefecture_of(address)
        same_pref = pref_key is not None and cs.prefectural_party.endswith(f".{pref_key}")
        target = cs.prefectural_party if same_pref else cs.national_party

        def action(result: Result) -> None:
            cs.staff.require(session, "cs_operator", "CS-010", "本人確認情報検索", "search 本人確認情報")
            kind = self.key_kind(cs, criteria, cs.search_min_keys, cs.search_require_name)
            query_id = self._send_query(cs, result, dict(criteria), kind, target, "basic4_search", now)
            result.value = {"route": "prefectural" if same_pref else "national", "query_id": query_id}

        return cs.command(now, None, action)

    @staticmethod
    def _own_prefix(cs: MunicipalCS) -> str:
        row = cs.conn.execute(
            "SELECT address FROM cs_identity_info WHERE status = 'active' ORDER BY resident_code LIMIT 1"
        ).fetchone()
        if row is None:
            return "\uffff"
        address = str(row[0])
        # 都道府県 + 市区町村 (…市 / …町 / …村): the municipality's part of every resident's 住所.
        for i, ch in enumerate(address):
            if ch in "市町村" and i > 2:
                return address[: i + 1]
        return address

    def _on_result(self, cs: MunicipalCS) -> Any:
        def handler(envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
            result = Result()
            query_id = envelope.body.get("query_id")
            row = cs.conn.execute(
                "SELECT purpose, key_kind, key, target FROM cs_jukinet_queries WHERE query_id = ? AND cs = ?"
                " AND answered_at IS NULL",
                (query_id, cs.party),
            ).fetchone()
            if row is None:
                raise cs.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "CS-013",
                    "対応する未回答の照会がありません",
                    "no open query matches this answer",
                    "query_id",
                )
            purpose, kind, key_json, target = str(row[0]), str(row[1]), str(row[2]), str(row[3])
            allowed = {target, cs.national_party}  # a 都道府県サーバ may refer the search on to the 全国サーバ
            cs.require_sender(envelope, allowed, "CS-005", "本人確認情報照会の応答")
            key = json.loads(key_json)
            records = cs.unseal(envelope).get("records")
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise cs.refuse(
                    RefusalCode.FIELD_INVALID,
                    "CS-013",
                    "応答の形式が正しくありません",
                    "the answer carries no list of records",
                    "records",
                )
            verified: bool | None = None
            if kind in ("resident_code", "my_number"):
                strangers = [r for r in records if r.get(kind) != key[kind]]
                if strangers or len(records) > 1:
                    raise cs.refuse(
                        RefusalCode.REPLY_MISMATCH,
                        "CS-021",
                        "照会した本人以外の本人確認情報を含む応答です",
                        "the answer carries a person other than the one keyed",
                        kind,
                    )
            if purpose == "identity_query":
                # The key was one kind (checked before sending and again at the 全国サーバ); the answer is that
                # person only (a 4情報 key may match several people, each of whom met the same key).
                cs.allow(
                    result,
                    "CS-021",
                    now,
                    f"1種類のキー（{kind}）による照会に、その本人の本人確認情報のみが応答されました",
                    f"queried by one kind of key ({kind}); the answer is the keyed person's record only",
                    str(query_id),
                    key_kind=kind,
                    count=len(records),
                )
            if purpose == "card_check":
                verified = self._card_result(cs, result, key["resident_code"], records, now, str(query_id))
            cs.conn.execute(
                "UPDATE cs_jukinet_queries SET answered_at = ?, answered_by = ?, records = ?, verified = ?"
                " WHERE query_id = ?",
                (
                    now.isoformat(),
                    envelope.sender,
                    json.dumps(records, ensure_ascii=False),
                    None if verified is None else int(verified),
                    query_id,
                ),
            )
            return result

        return handler

    def _card_result(
        self, cs: MunicipalCS, result: Result, code: str, records: list[dict[str, Any]], now: datetime, query_id: str
    ) -> bool:
        """CS-018: the record found by the card's 住民票コード must exist and equal what CS holds for that code."""
        if not records:
            result.decisions.append(
                cs.decide(
                    "CS-018",
                    Outcome.DENY,
                    now,
                    reason_ja="カードの住民票コードに該当する本人確認情報がありません（該当なし）。手続を続けられません",
                    reason_en="no 本人確認情報 for the card's 住民票コード (no match); the procedure cannot continue",
                    correlation_id=query_id,
                    evidence={"resident_code": code},
                    code=str(RefusalCode.NOT_FOUND),
                )
            )
            return False
        record = records[0]
        local = cs.identity(code)
        differs = [] if local is None else [k for k in _BASIC4 if str(local[k]) != str(record.get(k))]
        if local is not None and local["status"] == "active" and differs:
            result.decisions.append(
                cs.decide(
                    "CS-018",
                    Outcome.DENY,
                    now,
                    reason_ja=f"全国サーバの本人確認情報が市町村CSの記録と一致しません（{', '.join(differs)}）",
                    reason_en=f"the national record differs from the CS record ({', '.join(differs)})",
                    correlation_id=query_id,
                    evidence={"resident_code": code, "fields": differs},
                    code=str(RefusalCode.STATE_CONFLICT),
                )
            )
            return False
        cs.allow(
            result,
            "CS-018",
            now,
            "カードの住民票コードで照会した本人確認情報を表示しました（記録と一致）",
            "the record looked up by the card's 住民票コード is displayed and equals the record",
            query_id,
            resident_code=code,
            shown={k: record.get(k) for k in _BASIC4},
        )
        return True

    def card_check(self, cs: MunicipalCS, session: StaffSession, card_resident_code: str, now: datetime) -> Result:
        """The 統合端末 reads the 住民票コード on the presented card and asks the 全国サーバ (through CS)."""
        return self.query(cs, session, {"resident_code": card_resident_code}, now, purpose="card_check")

    def answer(self, cs: MunicipalCS, query_id: str) -> dict[str, Any] | None:
        row = cs.conn.execute(
            "SELECT answered_by, records, verified FROM cs_jukinet_queries WHERE query_id = ?", (query_id,)
        ).fetchone()
        if row is None or row[1] is None:
            return None
        return {"answered_by": row[0], "records": json.loads(row[1]), "verified": row[2]}

    # -- 特例転出 / 特例転入 (CS-017, CS-019) -------------------------------------------------------------------------

    def send_tenshutsu(self, cs: MunicipalCS, resident_code: str, to_cs: str, now: datetime) -> Result:
        """特例転出 with a card: the 転出地 CS sends 転出証明書情報 to the 転入予定地 CS over 住基ネット."""

        def action(result: Result) -> None:
            row = cs.identity(resident_code)
            if row is None:
                raise cs.refuse(
                    RefusalCode.NOT_FOUND,
                    "CS-012",
                    "この住民票コードの本人確認情報がありません",
                    "no 本人確認情報 is held for this 住民票コード",
                    "resident_code",
                )
            items = {k: row[k] for k in ("resident_code", "name", "birth_date", "sex", "address")}
            cs.conn.execute(
                "INSERT INTO cs_tenshutsu_sent (cs, resident_code, to_cs, sent_at) VALUES (?, ?, ?, ?)",
                (cs.party, resident_code, to_cs, now.isoformat()),
            )
            cs.send(
                result, MessageType.TENSHUTSU_INFO, to_cs, now, body={}, personal=items, correlation_id=uuid.uuid4().hex
            )

        return cs.command(now, None, action)

    def _on_tenshutsu(self, cs: MunicipalCS) -> Any:
        def handler(envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
            result = Result()
            peers = {p for p in self.world.components if p.endswith(".municipal_cs") and p != cs.party}
            cs.require_sender(envelope, peers, "NET-001", "転出証明書情報")
            items = cs.unseal(envelope)
            try:
                exact_keys(items, ("resident_code", "name", "birth_date", "sex", "address"))
                code = check_identifier(items["resident_code"], "resident_code")
            except ItemProblem as problem:
                raise cs.refuse(
                    problem.code, "CS-012", f"転出証明書情報: {problem.rule_ja}", problem.rule_en, problem.field
                ) from None
            expires = now + timedelta(days=HOLD_DAYS)
            cs.conn.execute(
                "INSERT INTO cs_tenshutsu_held (cs, resident_code, items, from_cs, received_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(cs, resident_code) DO UPDATE SET items = excluded.items,"
                " from_cs = excluded.from_cs, received_at = excluded.received_at, expires_at = excluded.expires_at",
                (
                    cs.party,
                    code,
                    json.dumps(items, ensure_ascii=False),
                    envelope.sender,
                    now.isoformat(),
                    expires.isoformat(),
                ),
            )
            result.decisions.append(
                cs.decide(
                    "CS-017",
                    Outcome.HOLD,
                    now,
                    reason_ja=f"転出証明書情報を特例転入用に保留しました（{HOLD_DAYS}日以内に転入届がなければ消去）",
                    reason_en=f"転出証明書情報 held for 特例転入 only; deleted if no 転入届 within {HOLD_DAYS} days",
                    correlation_id=envelope.correlation_id,
                    evidence={"expires_at": expires.isoformat()},
                )
            )
            return result

        return handler

    def _purge(self, cs: MunicipalCS, result: Result, now: datetime) -> int:
        expired = cs.conn.execute(
            "SELECT resident_code FROM cs_tenshutsu_held WHERE cs = ? AND expires_at <= ?", (cs.party, now.isoformat())
        ).fetchall()
        for (code,) in expired:
            cs.conn.execute("DELETE FROM cs_tenshutsu_held WHERE cs = ? AND resident_code = ?", (cs.party, code))
            result.decisions.append(
                cs.decide(
                    "CS-017",
                    Outcome.DENY,
                    now,
                    reason_ja="保留期間内に転入届がなかったため転出証明書情報を消去しました",
                    reason_en="no 転入届 within the hold period: the held 転出証明書情報 was deleted",
                    evidence={"resident_code": code},
                    code="Retention.HoldExpired",
                )
            )
        return len(expired)

    def purge_expired(self, cs: MunicipalCS, now: datetime) -> Result:
        """The daily batch: delete 転出証明書情報 whose hold period has passed."""

        def action(result: Result) -> None:
            result.value = self._purge(cs, result, now)

        return cs.command(now, None, action)

    def read_held(self, cs: MunicipalCS, function: str, resident_code: str, now: datetime) -> Result:
        """Held 転出証明書情報 opens only to the 特例転入 function."""

        def action(result: Result) -> None:
            if function != "special_move_in":
                raise cs.refuse(
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "CS-017",
                    f"保留中の転出証明書情報は特例転入の処理以外からは参照できません（{function}）",
                    f"held 転出証明書情報 is readable only by 特例転入; refused to {function!r}",
                    "function",
                )
            row = cs.conn.execute(
                "SELECT items FROM cs_tenshutsu_held WHERE cs = ? AND resident_code = ?", (cs.party, resident_code)
            ).fetchone()
            result.value = None if row is None else json.loads(row[0])

        return cs.command(now, None, action)

    def special_move_in(
        self, cs: MunicipalCS, session: StaffSession, resident_code: str, card_check: str | None, now: datetime
    ) -> Result:
        """特例転入: needs a verified card check (CS-018) and held 転出証明書情報 for the same 住民票コード (CS-019)."""
        # The daily purge runs first, so data past its hold period is gone before it can be used.
        purged = self.purge_expired(cs, now)

        def action(result: Result) -> None:
            cs.staff.require(session, "cs_operator", "CS-010", "特例転入", "special move-in")
            if card_check is None:
                raise cs.refuse(
                    RefusalCode.FIELD_MISSING,
                    "CS-019",
                    "個人番号カードの提示がないため特例転入はできません（紙の転出証明書による転入の手続です）",
                    "no 個人番号カード presented: 特例転入 is refused (a paper 転出証明書 is needed)",
                    "card",
                )
            check = cs.conn.execute(
                "SELECT key, verified FROM cs_jukinet_queries WHERE query_id = ? AND cs = ? AND purpose = 'card_check'",
                (card_check, cs.party),
            ).fetchone()
            if check is None or check[1] != 1:
                raise cs.refuse(
                    RefusalCode.NOT_FOUND,
                    "CS-019",
                    "個人番号カードによる本人確認が完了していません",
                    "the card was not verified (CS-018)",
                    "card",
                )
            card_code = json.loads(check[0])["resident_code"]
            held = cs.conn.execute(
                "SELECT items FROM cs_tenshutsu_held WHERE cs = ? AND resident_code = ?", (cs.party, resident_code)
            ).fetchone()
            if held is None:
                raise cs.refuse(
                    RefusalCode.NOT_FOUND,
                    "CS-017",
                    "保留中の転出証明書情報がありません（期間経過で消去済みなど）。通常の転入手続によります",
                    "no held 転出証明書情報 (e.g. deleted after the hold period): use the ordinary 転入",
                    "resident_code",
                )
            if card_code != resident_code:
                raise cs.refuse(
                    RefusalCode.REPLY_MISMATCH,
                    "CS-019",
                    "提示されたカードの住民票コードと転出証明書情報の住民票コードが一致しません",
                    "the card's 住民票コード is not the one on the held 転出証明書情報",
                    "card",
                )
            cs.conn.execute(
                "DELETE FROM cs_tenshutsu_held WHERE cs = ? AND resident_code = ?", (cs.party, resident_code)
            )
            cs.conn.execute(
                "INSERT INTO cs_special_move_ins (cs, resident_code, card_check, completed_at) VALUES (?, ?, ?, ?)",
                (cs.party, resident_code, card_check, now.isoformat()),
            )
            cs.allow(
                result,
                "CS-017",
                now,
                "保留期間内の転入届により転出証明書情報を使用しました（保留を解除）",
                "a 転入届 within the hold period consumed the held 転出証明書情報",
                None,
                resident_code=resident_code,
            )
            cs.allow(
                result,
                "CS-019",
                now,
                "確認済みのカードと同一人の転出証明書情報により特例転入を行いました",
                "特例転入 with a verified card and held 転出証明書情報 for the same person",
                None,
                resident_code=resident_code,
                card_check=card_check,
            )
            result.value = json.loads(held[0])

        done = cs.command(now, None, action)
        purged.extend(done)
        purged.value = done.value
        return purged

    # -- J-LIS side ----------------------------------------------------------------------------------------------

    def _records(
        self, server: Component, table: str, scope: str, params: tuple[Any, ...], key: Mapping[str, str], kind: str
    ) -> list[dict[str, str]]:
        columns = ", ".join(IDENTITY_ITEMS)
        clauses, values = [f"{scope} status = 'active'"], list(params)
        if kind in ("resident_code", "my_number"):
            clauses.append(f"{kind} = ?")
            values.append(key[kind])
        else:
            for k, v in key.items():
                if k == "name":
                    clauses.append("replace(replace(name, ' ', ''), '　', '') = ?")
                    values.append(v.replace(" ", "").replace("　", ""))
                elif k == "address":
                    clauses.append("substr(address, 1, length(?)) = ?")
                    values.extend([v.strip(), v.strip()])
                else:
                    clauses.append(f"{k} = ?")
                    values.append(v)
        rows = server.conn.execute(
            f"SELECT {columns} FROM {table} WHERE {' AND '.join(clauses)} ORDER BY resident_code", values
        ).fetchall()
        return [dict(zip(IDENTITY_ITEMS, r, strict=True)) for r in rows]

    def _on_national_query(self, ns: NationalServer) -> Any:
        def handler(envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
            result = Result()
            allowed = ns._members("municipal_cs") | ns._members("prefectural_server")
            ns.require_sender(envelope, allowed, "NET-001", "本人確認情報照会")
            purpose = str(envelope.body.get("purpose", "identity_query"))
            sealed = ns.unseal(envelope)
            key = sealed.get("key")
            if not isinstance(key, dict):
                raise ns.refuse(RefusalCode.FIELD_MISSING, "CS-021", "照会キーがありません", "no query key", "key")
            kind = self.key_kind(ns, key, 0, False)
            if purpose == "card_check":
                suspended = ns.conn.execute(
                    "SELECT suspended_at FROM ns_card_suspensions WHERE resident_code = ?", (key["resident_code"],)
                ).fetchone()
                if suspended is not None:
                    raise ns.refuse(
                        RefusalCode.STATE_CONFLICT,
                        "CS-018",
                        "このカードは一時停止の届出がされています。本人確認に使えません",
                        "this card is reported 一時停止 (suspended); the identity check fails",
                        "card",
                    )
            records = self._records(ns, "ns_identity_info", "", (), key, kind)
            if purpose == "basic4_search":
                result.decisions.append(
                    ns.decide(
                        "JLIS-003",
                        Outcome.ALLOW,
                        now,
                        reason_ja="他都道府県の住所地の者の検索に全国サーバが応答しました",
                        reason_en="the national server answered a search for a person in another prefecture",
                        correlation_id=envelope.correlation_id,
                        evidence={"count": len(records)},
                    )
                )
            origin = str(envelope.body.get("origin_cs", envelope.sender))
            ns.send(
                result,
                MessageType.BASIC4_RESULT,
                origin,
                now,
                body={"query_id": envelope.body.get("query_id")},
                personal={"records": records},
                correlation_id=envelope.correlation_id,
            )
            return result

        return handler

    def _on_prefectural_search(self, ps: PrefecturalServer) -> Any:
        def handler(envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
            result = Result()
            ps._require_member(envelope, link, "municipal_cs", "4情報検索")
            sealed = ps.unseal(envelope)
            key = sealed.get("key")
            if not isinstance(key, dict):
                raise ps.refuse(RefusalCode.FIELD_MISSING, "JLIS-003", "検索条件がありません", "no search key", "key")
            kind = self.key_kind(ps, key, 0, False)
            own = ps.party.rsplit(".", 1)[1]
            pref = _prefecture_of(str(key.get("address", "")))
            if kind != "basic4" or pref != own:
                # Not ours to answer: this server holds only its prefecture's residents, so refer it on.
                result.decisions.append(
                    ps.decide(
                        "JLIS-003",
                        Outcome.DENY,
                        now,
                        reason_ja="自都道府県の住所地以外の者の検索のため、自らは応答せず全国サーバへ回付しました",
                        reason_en="a search for a person outside this prefecture: not answered here, referred to the "
                        "national server",
                        correlation_id=envelope.correlation_id,
                        evidence={"address_prefecture": pref},
                        code="Routing.ReferredToNational",
                    )
                )
                ps.send(
                    result,
                    MessageType.BASIC4_SEARCH,
                    ps.national_party,
                    now,
                    body={**envelope.body, "purpose": "basic4_search", "origin_cs": envelope.sender},
                    personal={"key": key},
                    correlation_id=envelope.correlation_id,
                )
                return result
            records = self._records(ps, "ps_identity_info", "server = ? AND", (ps.party,), key, kind)
            result.decisions.append(
                ps.decide(
                    "JLIS-003",
                    Outcome.ALLOW,
                    now,
                    reason_ja="自都道府県内の住所地の者の検索に都道府県サーバが応答しました",
                    reason_en="the prefectural server answered a search for a person in its prefecture",
                    correlation_id=envelope.correlation_id,
                    evidence={"count": len(records)},
                )
            )
            ps.send(
                result,
                MessageType.BASIC4_RESULT,
                envelope.sender,
                now,
                body={"query_id": envelope.body.get("query_id")},
                personal={"records": records},
                correlation_id=envelope.correlation_id,
            )
            return result

        return handler

    def suspend_card(self, ns: NationalServer, resident_code: str, now: datetime) -> Result:
        """A 一時停止 report for the card of a 住民票コード (the card-status table of the 全国サーバ)."""

        def action(result: Result) -> None:
            ns.conn.execute(
                "INSERT OR REPLACE INTO ns_card_suspensions (resident_code, suspended_at) VALUES (?, ?)",
                (resident_code, now.isoformat()),
            )

        return ns.command(now, None, action)


def install(world: World) -> JukinetServices:
    """Attach the services to the world's CS and J-LIS components and link the CS to each other on 住基ネット."""
    services = JukinetServices(world)
    css: list[MunicipalCS] = []
    for component in world.components.values():
        if isinstance(component, MunicipalCS):
            ensure_schema(component.conn, _CS_DDL)
            component._handlers[MessageType.BASIC4_RESULT] = services._on_result(component)
            component._handlers[MessageType.TENSHUTSU_INFO] = services._on_tenshutsu(component)
            css.append(component)
        elif isinstance(component, NationalServer):
            ensure_schema(component.conn, _NS_DDL)
            component._handlers[MessageType.BASIC4_SEARCH] = services._on_national_query(component)
        elif isinstance(component, PrefecturalServer):
            component._handlers[MessageType.BASIC4_SEARCH] = services._on_prefectural_search(component)
    for a in css:
        for b in css:
            if a.party < b.party:
                world.directory.connect(a.party, b.party, "jukinet")
    return services
