"""City-side relay in front of the 中間サーバー: 札幌's システム基盤(市中間サーバ) and つくば's DC relay server.

Everything between the city's 宛名 system and its 中間サーバー tenant passes through here (RELAY-001): each leg is
checked (the declared network, the one party allowed at each end), outbound traffic must be keyed by the
団体内統合宛名番号 and inbound traffic must carry no 符号 (RELAY-004). 札幌's relay also buffers durably while the
platform is in maintenance (RELAY-002) and converts 続柄 codes both ways (RELAY-003). It must never hold a 符号,
never let a business system reach the platform, and never forward a value it could not convert.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode
from simulator.model.envelope import Envelope, MessageType

__all__ = ["RELATIONSHIP_CODES", "RELAY_PROFILES", "Relay", "RelayProfile"]


@dataclass(frozen=True)
class RelayProfile:
    """How one municipality's relay is built (catalogue §D: 002 shi_chukan, 001 dc_relay_two_vpn_legs)."""

    kind: str
    name_ja: str
    name_en: str
    city_network: str  # the leg between the 宛名 system and the relay
    platform_network: str  # the leg between the relay and the platform
    #: Weekly platform maintenance window (weekday 0=Mon … 6=Sun, start hour, end hour), local time; None = no
    #: buffering. F-12 gives no hours: "PF 24h with a weekly maintenance window" is the catalogue's assumption.
    maintenance: tuple[int, int, int] | None = None
    convert_codes: bool = False
    capacity: int = 1000  # buffered messages before the producer gets back-pressure


RELAY_PROFILES: dict[str, RelayProfile] = {
    "shi_chukan": RelayProfile(
        "shi_chukan",
        "システム基盤(市中間サーバ)",
        "city intermediate server (system platform)",
        city_network="office_lan",
        platform_network="lgwan",
        maintenance=(6, 1, 5),
        convert_codes=True,
    ),
    "dc_relay": RelayProfile(
        "dc_relay",
        "データセンター中継サーバー",
        "relay server in the contractor's data centre",
        city_network="vpn",
        platform_network="lgwan",  # the DC ↔ platform VPN runs over LGWAN, the platform's only network (PF-001)
    ),
}

#: 続柄 as written on the 住民票 ↔ the platform code. The seeds name no code list: this is the simulator's own
#: numbering, one code per written form, so the conversion is a bijection and can be checked both ways.
RELATIONSHIP_CODES: dict[str, str] = {
    "世帯主": "01",
    "妻": "02",
    "夫": "03",
    "妻(未届)": "04",
    "夫(未届)": "05",
    "子": "06",
    "子の妻": "07",
    "子の夫": "08",
    "孫": "09",
    "父": "10",
    "母": "11",
    "妻の父": "12",
    "妻の母": "13",
    "夫の父": "14",
    "夫の母": "15",
    "兄": "16",
    "弟": "17",
    "姉": "18",
    "妹": "19",
    "祖父": "20",
    "祖母": "21",
    "同居人": "90",
    "縁故者": "91",
}

_OUTBOUND = (MessageType.REPLICA_UPDATE, MessageType.CODE_REQUEST, MessageType.BUSINESS_QUERY)
_INBOUND = (MessageType.CODE_STATUS, MessageType.BUSINESS_ANSWER)
#: Identifiers that must never reach the platform from the city side (it knows persons only by 統合宛名番号).
_CITY_ONLY = ("business_atena_number", "my_number", "resident_code")
_LINKAGE_CODE_KEYS = ("linkage_code", "fugo")


def _keys_anywhere(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys_anywhere(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys_anywhere(v)}
    return set()


class Relay(Component):
    name_ja = "中継サーバー"
    name_en = "relay server"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        profile: RelayProfile,
        city_party: str,
        platform_party: str,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.profile = profile
        self.name_ja, self.name_en = profile.name_ja, profile.name_en
        self.city_party = city_party
        self.platform_party = platform_party
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS relay_buffer (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, relay TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL,
                sealed TEXT, correlation_id TEXT, buffered_at TEXT NOT NULL, delivered_at TEXT);
            CREATE TABLE IF NOT EXISTS relay_code_map (
                relay TEXT NOT NULL, field TEXT NOT NULL, city_code TEXT NOT NULL, platform_code TEXT NOT NULL,
                PRIMARY KEY (relay, field, city_code), UNIQUE (relay, field, platform_code));
            """
        )
        if profile.convert_codes:
            conn.executemany(
                "INSERT OR IGNORE INTO relay_code_map (relay, field, city_code, platform_code) VALUES (?,?,?,?)",
                [(party, "relationship", city, code) for city, code in RELATIONSHIP_CODES.items()],
            )
            conn.commit()
        for type_ in _OUTBOUND:
            self._handlers[type_] = self._on_outbound
        for type_ in _INBOUND:
            self._handlers[type_] = self._on_inbound

    # -- legs (RELAY-001) --------------------------------------------------------------------------------

    def _check_leg(self, env: Envelope, link: Link, expected_sender: str, network: str, leg_ja: str) -> None:
        if env.sender != expected_sender or link.source != env.sender:
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                "RELAY-001",
                f"{leg_ja}で受け付けるのは {expected_sender} からの電文のみです（送信元: {env.sender}）",
                f"only {expected_sender} may use this leg of the relay; refused from {env.sender}",
                field="sender",
            )
        if link.network != network:
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                "RELAY-001",
                f"{leg_ja}は {network} 経由の接続のみ受け付けます（到着経路: {link.network}）。破棄しました",
                f"this leg accepts only connections over {network}; a message over {link.network} was dropped",
                field="network",
            )

    # -- 団体内統合宛名番号 only towards the platform (RELAY-004) ------------------------------------------------

    def _check_outbound_keys(self, env: Envelope, personal: dict[str, Any] | None) -> None:
        atena_number = env.body.get("atena_number")
        if not isinstance(atena_number, str) or not atena_number.isdigit() or len(atena_number) != 15:
            raise self.refuse(
                RefusalCode.FIELD_MISSING,
                "RELAY-004",
                "中間サーバーへの電文には団体内統合宛名番号（15桁）が必要です。送信しません",
                "a message towards the platform must carry the 15-digit unified addressee number; not forwarded",
                field="atena_number",
            )
        leaked = sorted((_keys_anywhere(env.body) | _keys_anywhere(personal or {})) & set(_CITY_ONLY))
        if leaked:
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED,
                "RELAY-004",
                f"庁内でのみ使用する番号（{', '.join(leaked)}）を中間サーバーへ送ることはできません",
                f"city-internal numbers ({', '.join(leaked)}) must not reach the platform",
                field=leaked[0],
            )

    # -- code conversion (RELAY-003) -----------------------------------------------------------------------

    def _map(self, field: str, value: str, *, to_platform: bool) -> str | None:
        column, other = ("city_code", "platform_code") if to_platform else ("platform_code", "city_code")
        row = self.conn.execute(
            f"SELECT {other} FROM relay_code_map WHERE relay = ? AND field = ? AND {column} = ?",
            (self.party, field, value),
        ).fetchone()
        return None if row is None else str(row[0])

    def _convert(self, record: dict[str, Any], *, to_platform: bool) -> tuple[dict[str, Any], list[dict[str, str]]]:
        converted = dict(record)
        done: list[dict[str, str]] = []
        fields = {
            f for (f,) in self.conn.execute("SELECT DISTINCT field FROM relay_code_map WHERE relay = ?", (self.party,))
        }
        for field in sorted(fields & set(record)):
            original = str(record[field])
            mapped = self._map(field, original, to_platform=to_platform)
            if mapped is None:
                raise self.refuse(
                    RefusalCode.FIELD_INVALID,
                    "RELAY-003",
                    f"{field} のコード「{original}」は変換表にありません。推測せずエラーとし、送信しません",
                    f"{field} value {original!r} has no mapping; it is rejected, not guessed, and nothing is sent",
                    field=f"record.{field}",
                )
            back = self._map(field, mapped, to_platform=not to_platform)
            if back != original:
                # A mapping that does not come back unchanged would lose information on the return path.
                raise self.refuse(
                    RefusalCode.FIELD_INVALID,
                    "RELAY-003",
                    f"{field} のコード変換が可逆ではありません（{original} → {mapped} → {back}）",
                    f"{field} conversion is not lossless ({original} → {mapped} → {back})",
                    field=f"record.{field}",
                )
            converted[field] = mapped
            done.append({"field": field, "from": original, "to": mapped, "reverse": back})
        return converted, done

    def _convert_outbound(
        self, env: Envelope, personal: dict[str, Any], result: Result, now: datetime
    ) -> dict[str, Any]:
        record = personal.get("record")
        if not self.profile.convert_codes or not isinstance(record, dict):
            return personal
        converted, done = self._convert(record, to_platform=True)
        if done:
            self.allow(
                result,
                "RELAY-003",
                now,
                "業務システムのコードを中間サーバーの形式に変換し、逆変換で元に戻ることを確認しました",
                "converted business codes to the platform format and checked the reverse conversion gives them back",
                env.correlation_id,
                conversions=done,
            )
        return {**personal, "record": converted}

    def _convert_inbound(
        self, env: Envelope, personal: dict[str, Any], result: Result, now: datetime
    ) -> dict[str, Any]:
        data = personal.get("data")
        if not self.profile.convert_codes or not isinstance(data, dict):
            return personal
        out: dict[str, Any] = {}
        done: list[dict[str, str]] = []
        for item, record in data.items():
            if isinstance(record, dict):
                out[item], conversions = self._convert(record, to_platform=False)
                done.extend(conversions)
            else:
                out[item] = record
        if done:
            self.allow(
                result,
                "RELAY-003",
                now,
                "中間サーバーからの結果を業務システムのコードに変換しました",
                "converted the platform's codes in the result back to the business systems' codes",
                env.correlation_id,
                conversions=done,
            )
        return {**personal, "data": out}

    # -- platform hours and buffering (RELAY-002) ----------------------------------------------------------

    def platform_open(self, now: datetime) -> bool:
        window = self.profile.maintenance
        if window is None:
            return True
        weekday, start, end = window
        return not (now.weekday() == weekday and start <= now.hour < end)

    def buffered(self) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM relay_buffer WHERE relay = ? AND delivered_at IS NULL", (self.party,)
        ).fetchone()
        return int(row[0])

    def _buffer(
        self, env: Envelope, body: dict[str, Any], personal: dict[str, Any] | None, result: Result, now: datetime
    ) -> None:
        waiting = self.buffered()
        if waiting >= self.profile.capacity:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "RELAY-002",
                f"中継サーバーの保留領域が満杯です（{waiting}件）。受け付けられないため再送してください",
                f"the relay buffer is full ({waiting} messages); the message is refused so the sender retries",
                field="buffer",
            )
        # Held data is sealed to the platform at once, so what waits on disk is readable only by the platform.
        sealed = None
        if personal is not None:
            sealed = self.security.seal(personal, self.directory.certificate(self.platform_party))
        self.conn.execute(
            "INSERT INTO relay_buffer (relay, type, body, sealed, correlation_id, buffered_at) VALUES (?,?,?,?,?,?)",
            (
                self.party,
                str(env.type),
                json.dumps(body, ensure_ascii=False),
                sealed,
                env.correlation_id,
                now.isoformat(),
            ),
        )
        reason = "稼働時間外" if not self.platform_open(now) else "先行する保留電文の後ろ"
        result.decisions.append(
            self.decide(
                "RELAY-002",
                Outcome.HOLD,
                now,
                reason_ja=f"中間サーバー・プラットフォームの{reason}のため、電文を保留しました（業務は継続できます）",
                reason_en="the platform is unavailable (maintenance window) or earlier messages wait; the message is "
                "buffered and the business system is not blocked",
                correlation_id=env.correlation_id,
                evidence={"type": str(env.type), "waiting": waiting + 1},
            )
        )

    def _drain(self, result: Result, now: datetime) -> int:
        rows = self.conn.execute(
            "SELECT seq, type, body, sealed, correlation_id, buffered_at FROM relay_buffer"
            " WHERE relay = ? AND delivered_at IS NULL ORDER BY seq",
            (self.party,),
        ).fetchall()
        for seq, type_, body, sealed, correlation_id, buffered_at in rows:
            self.send(
                result,
                MessageType(type_),
                self.platform_party,
                now,
                body=json.loads(body),
                sealed=sealed,
                sealed_for=self.platform_party if sealed else None,
                correlation_id=correlation_id,
            )
            self.conn.execute("UPDATE relay_buffer SET delivered_at = ? WHERE seq = ?", (now.isoformat(), seq))
            self.allow(
                result,
                "RELAY-002",
                now,
                "保留していた電文を受付順に中間サーバーへ送信しました",
                "a buffered message was forwarded to the platform in arrival order",
                correlation_id,
                seq=seq,
                buffered_at=buffered_at,
            )
        return len(rows)

    def flush(self, now: datetime) -> Result:
        """The relay's scheduler tick: forward everything buffered, in order, if the platform is open."""

        def act(result: Result) -> None:
            result.value = self._drain(result, now) if self.platform_open(now) else 0

        return self.command(now, None, act)

    # -- handlers ------------------------------------------------------------------------------------------

    def _on_outbound(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._check_leg(env, link, self.city_party, self.profile.city_network, "庁内側の区間")
        personal = self.unseal(env) if env.sealed else None
        self._check_outbound_keys(env, personal)
        self.allow(
            result,
            "RELAY-004",
            now,
            "中間サーバーへの電文は団体内統合宛名番号で送られています",
            "the message towards the platform is keyed by the unified addressee number",
            env.correlation_id,
        )
        if personal is not None:
            personal = self._convert_outbound(env, personal, result, now)
        body = dict(env.body)
        if not self.platform_open(now):
            self._buffer(env, body, personal, result, now)
            return result
        if self.buffered():
            self._drain(result, now)  # what waited goes first, so the platform sees changes in order
        self.send(
            result, env.type, self.platform_party, now, body=body, personal=personal, correlation_id=env.correlation_id
        )
        self.allow(
            result,
            "RELAY-001",
            now,
            f"庁内から中間サーバー・プラットフォームへは{self.name_ja}を経由して中継しました",
            f"city traffic reached the platform only through the {self.name_en}",
            env.correlation_id,
            legs=[self.profile.city_network, self.profile.platform_network],
        )
        return result

    def _on_inbound(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._check_leg(env, link, self.platform_party, self.profile.platform_network, "プラットフォーム側の区間")
        personal = self.unseal(env) if env.sealed else None
        carried = sorted((_keys_anywhere(env.body) | _keys_anywhere(personal or {})) & set(_LINKAGE_CODE_KEYS))
        if carried:
            raise self.refuse(
                RefusalCode.FIELD_NOT_ALLOWED,
                "RELAY-004",
                "符号を含む電文を庁内へ中継することはできません。遮断しました",
                "a message carrying a linkage code (符号) towards the city is blocked",
                field=carried[0],
            )
        if personal is not None:
            personal = self._convert_inbound(env, personal, result, now)
        self.send(
            result,
            env.type,
            self.city_party,
            now,
            body=dict(env.body),
            personal=personal,
            correlation_id=env.correlation_id,
        )
        self.allow(
            result,
            "RELAY-001",
            now,
            f"中間サーバー・プラットフォームからの電文を{self.name_ja}で受け、庁内へ中継しました",
            f"platform traffic reached the city only through the {self.name_en}",
            env.correlation_id,
            legs=[self.profile.platform_network, self.profile.city_network],
        )
        return result
