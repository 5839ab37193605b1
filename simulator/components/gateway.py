"""住基ネット中間サーバ / 住基GW: the relay between 既存住基 and 市町村CS that is their security boundary.

Everything 既存住基 sends toward 住基ネット is received here, kept in a durable queue in commit order, and forwarded
to CS only inside 住基ネット's operating window (GW-001, GW-002); each relay step is recorded and reconciled against
the registry's own manifest (GW-003), and each message carried on leaves a 情報連携記録 (LOG-008); the 本人確認情報
relayed are kept as a cache that answers a 広域交付 request off the registry's hours (GW-004). It must never forward the same 異動 twice, drop a queued one, or let anyone but CS read
the cache.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any

from cryptography import x509

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.oplog import record_exchange
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode
from simulator.model.envelope import Envelope, MessageType
from simulator.store.db import ensure_schema

__all__ = ["Gateway"]

_DDL = """
CREATE TABLE IF NOT EXISTS gw_settings (
    gateway TEXT PRIMARY KEY,
    jukinet_opens TEXT NOT NULL, jukinet_closes TEXT NOT NULL,
    registry_opens TEXT NOT NULL, registry_closes TEXT NOT NULL,
    cache_max_age_hours INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS gw_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway TEXT NOT NULL, change_key TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL,
    personal TEXT, resident_code TEXT, correlation_id TEXT,
    received_at TEXT NOT NULL, forwarded_at TEXT,
    UNIQUE (gateway, change_key)
);
CREATE TABLE IF NOT EXISTS gw_cache (
    gateway TEXT NOT NULL, resident_code TEXT NOT NULL, items TEXT NOT NULL, synced_at TEXT NOT NULL,
    PRIMARY KEY (gateway, resident_code)
);
CREATE TABLE IF NOT EXISTS gw_reconciliations (
    gateway TEXT NOT NULL, manifest_id TEXT NOT NULL, checked_at TEXT NOT NULL, expected INTEGER NOT NULL,
    received INTEGER NOT NULL, missing TEXT NOT NULL, unexpected TEXT NOT NULL,
    PRIMARY KEY (gateway, manifest_id)
);
"""

#: What 既存住基 sends toward 住基ネット through the gateway (queued, in commit order).
_TOWARD_CS = (
    MessageType.IDENTITY_UPDATE,
    MessageType.MY_NUMBER_REQUEST,
    MessageType.CODE_ACQUISITION_NOTIFY,
    MessageType.DELIVERY_INFO,  # 送付先情報 (CS-022)
)


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _inside(now: datetime, opens: str, closes: str, *, weekdays_only: bool = False) -> bool:
    if weekdays_only and now.weekday() >= 5:
        return False
    return _hhmm(opens) <= now.timetz().replace(tzinfo=None) < _hhmm(closes)


class Gateway(Component):
    """住基GW. Message contracts (body never personal; ``sealed`` is JWE to the next reader):

    - in IDENTITY_UPDATE / MY_NUMBER_REQUEST / CODE_ACQUISITION_NOTIFY from 既存住基: queued durably; forwarded to
      CS with the same body and the payload re-sealed to CS, when 住基ネット is in its operating window.
    - in MY_NUMBER_ISSUED from CS: relayed to 既存住基 at once.
    - in RELAY_MANIFEST from 既存住基: body {"manifest_id"}; sealed {"entries": [[change_id, resident_code], …]}.
    - in WIDE_AREA_REQUEST from CS: body {"request_id"}; sealed {"resident_code"};
      out WIDE_AREA_REPLY to CS: body {"request_id", "synced_at"}; sealed {"resident_code", "record"}.
    """

    name_ja = "住基ネット中間サーバ（住基GW）"
    name_en = "resident-registry gateway"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        registry_party: str,
        cs_party: str,
        jukinet_window: tuple[str, str] = ("08:00", "21:00"),
        registry_hours: tuple[str, str] = ("08:30", "17:15"),
        cache_max_age: timedelta = timedelta(hours=24),
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.registry_party = registry_party
        self.cs_party = cs_party
        ensure_schema(conn, _DDL)
        # Settings are stored once: a restarted gateway keeps the windows it was configured with.
        conn.execute(
            "INSERT OR IGNORE INTO gw_settings VALUES (?, ?, ?, ?, ?, ?)",
            (party, *jukinet_window, *registry_hours, int(cache_max_age.total_seconds() // 3600)),
        )
        conn.commit()
        for type_ in _TOWARD_CS:
            self._handlers[type_] = self._on_from_registry
        self._handlers[MessageType.MY_NUMBER_ISSUED] = self._on_from_cs
        self._handlers[MessageType.RELAY_MANIFEST] = self._on_manifest
        self._handlers[MessageType.WIDE_AREA_REQUEST] = self._on_wide_area

    # -- settings and state ------------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT jukinet_opens, jukinet_closes, registry_opens, registry_closes, cache_max_age_hours"
            " FROM gw_settings WHERE gateway = ?",
            (self.party,),
        ).fetchone()
        keys = ("jukinet_opens", "jukinet_closes", "registry_opens", "registry_closes", "cache_max_age_hours")
        return dict(zip(keys, row, strict=True))

    def jukinet_open(self, now: datetime) -> bool:
        s = self._settings()
        return _inside(now, s["jukinet_opens"], s["jukinet_closes"])

    def registry_open(self, now: datetime) -> bool:
        s = self._settings()
        return _inside(now, s["registry_opens"], s["registry_closes"], weekdays_only=True)

    def queued(self) -> list[dict[str, Any]]:
        """What is received and not yet forwarded, in commit order."""
        rows = self.conn.execute(
            "SELECT seq, change_key, type, resident_code, received_at FROM gw_queue"
            " WHERE gateway = ? AND forwarded_at IS NULL ORDER BY seq",
            (self.party,),
        ).fetchall()
        return [dict(zip(("seq", "change_key", "type", "resident_code", "received_at"), r, strict=True)) for r in rows]

    def restarted(self) -> Gateway:
        """A new process over the same store (a restart): nothing but the store carries over."""
        return Gateway(
            self.party,
            self.conn,
            self.security,
            self.directory,
            registry_party=self.registry_party,
            cs_party=self.cs_party,
        )

    # -- GW-001: every exchange passes here -----------------------------------------------------------------

    def _require_link(self, envelope: Envelope, link: Link, expected: str, what_ja: str) -> None:
        if envelope.sender != expected or link.source != expected:
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                "GW-001",
                f"{what_ja}は {expected} からのみ中継します（送信元: {envelope.sender}）",
                f"only {expected} may send this through the gateway; refused from {envelope.sender}",
                "sender",
            )

    @staticmethod
    def _change_key(envelope: Envelope, personal: Mapping[str, Any]) -> str:
        # The registry's change id (or request id / 処理通番) identifies one 異動 across redeliveries.
        for key in ("change_id", "request_id"):
            if isinstance(envelope.body.get(key), str):
                return f"{envelope.type}:{envelope.body[key]}"
        return f"{envelope.type}:{personal.get('processing_serial', envelope.id)}"

    def _on_from_registry(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_link(envelope, link, self.registry_party, "既存住基からの電文")
        personal = self.unseal(envelope) if envelope.sealed is not None else {}
        key = self._change_key(envelope, personal)
        if self.conn.execute(
            "SELECT 1 FROM gw_queue WHERE gateway = ? AND change_key = ?", (self.party, key)
        ).fetchone():
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "GW-002",
                "同じ異動データを既に受領しています（二重に中継・適用しません）",
                "this change was already received; it is not relayed or applied twice",
                "change_id",
            )
        code = personal.get("resident_code")
        self.conn.execute(
            "INSERT INTO gw_queue (gateway, change_key, type, body, personal, resident_code, correlation_id,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.party,
                key,
                str(envelope.type),
                json.dumps(envelope.body, ensure_ascii=False),
                json.dumps(personal, ensure_ascii=False),
                code if isinstance(code, str) else None,
                envelope.correlation_id,
                now.isoformat(),
            ),
        )
        self.audit.append(
            at=now.isoformat(),
            kind="gw.received",
            correlation_id=envelope.correlation_id,
            data={"change_key": key, "type": str(envelope.type)},
        )
        if envelope.type == MessageType.IDENTITY_UPDATE and isinstance(code, str):
            # The cache is 既存住基 as of this receipt (GW-004).
            self.conn.execute(
                "INSERT INTO gw_cache (gateway, resident_code, items, synced_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(gateway, resident_code) DO UPDATE SET items = excluded.items,"
                " synced_at = excluded.synced_at",
                (self.party, code, json.dumps(personal, ensure_ascii=False), now.isoformat()),
            )
        self.allow(
            result,
            "GW-001",
            now,
            "既存住基からの電文を境界（住基GW）で受領しました",
            "message from 既存住基 received at the boundary gateway",
            envelope.correlation_id,
            change_key=key,
        )
        if not self.jukinet_open(now):
            s = self._settings()
            result.decisions.append(
                self.decide(
                    "GW-002",
                    Outcome.HOLD,
                    now,
                    reason_ja=f"住基ネットの稼働時間外（{s['jukinet_opens']}〜{s['jukinet_closes']}）のため保留し、稼働後に送信します",
                    reason_en="住基ネット is outside its operating window: the change is queued and sent when it opens",
                    correlation_id=envelope.correlation_id,
                    evidence={"change_key": key, "queued": len(self.queued())},
                )
            )
            return result
        self._drain(result, now)
        return result

    def forward_queued(self, now: datetime) -> Result:
        """The scheduled forwarder: inside the window, send everything queued in commit order."""

        def action(result: Result) -> None:
            if not self.jukinet_open(now):
                waiting = self.queued()
                if waiting:
                    result.decisions.append(
                        self.decide(
                            "GW-002",
                            Outcome.HOLD,
                            now,
                            reason_ja="住基ネットの稼働時間外のため、保留中の異動データは送信しません",
                            reason_en="住基ネット is still outside its operating window; the queue is kept",
                            evidence={"queued": len(waiting)},
                        )
                    )
                result.value = 0
                return
            result.value = self._drain(result, now)

        return self.command(now, None, action)

    def _drain(self, result: Result, now: datetime) -> int:
        rows = self.conn.execute(
            "SELECT seq, change_key, type, body, personal, correlation_id, received_at FROM gw_queue"
            " WHERE gateway = ? AND forwarded_at IS NULL ORDER BY seq",
            (self.party,),
        ).fetchall()
        for seq, key, type_, body, personal, correlation, received_at in rows:
            data = json.loads(personal) if personal else {}
            sent = self.send(
                result,
                MessageType(type_),
                self.cs_party,
                now,
                body=json.loads(body),
                personal=data or None,
                correlation_id=correlation,
            )
            code = data.get("resident_code")
            record_exchange(
                self, sent, now, source=self.registry_party, person_key=code if isinstance(code, str) else None,
                outcome="forwarded",
            )  # fmt: skip
            self.conn.execute("UPDATE gw_queue SET forwarded_at = ? WHERE seq = ?", (now.isoformat(), seq))
            self.audit.append(
                at=now.isoformat(),
                kind="gw.forwarded",
                correlation_id=correlation,
                data={"change_key": key, "seq": seq},
            )
            if received_at != now.isoformat():
                self.allow(
                    result,
                    "GW-002",
                    now,
                    "保留していた異動データをコミット順に住基ネットへ送信しました",
                    "a queued change was forwarded in commit order once 住基ネット was available",
                    correlation,
                    change_key=key,
                    seq=seq,
                    received_at=received_at,
                )
        return len(rows)

    def _on_from_cs(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_link(envelope, link, self.cs_party, "市町村CSからの電文")
        personal = self.unseal(envelope)
        self.allow(
            result,
            "GW-001",
            now,
            "市町村CSからの電文を境界（住基GW）経由で既存住基へ中継しました",
            "message from CS relayed to 既存住基 through the boundary gateway",
            envelope.correlation_id,
        )
        sent = self.send(
            result,
            envelope.type,
            self.registry_party,
            now,
            body=envelope.body,
            personal=personal,
            correlation_id=envelope.correlation_id,
        )
        code = personal.get("resident_code")
        record_exchange(
            self, sent, now, source=self.cs_party, person_key=code if isinstance(code, str) else None,
            outcome="relayed",
        )  # fmt: skip
        return result

    # -- GW-003: reconciliation ---------------------------------------------------------------------------

    def _on_manifest(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        self._require_link(envelope, link, self.registry_party, "中継突合用の送信記録")
        manifest_id = envelope.body.get("manifest_id")
        entries = self.unseal(envelope).get("entries")
        if not isinstance(manifest_id, str) or not isinstance(entries, list):
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                "GW-003",
                "送信記録の形式が正しくありません",
                "the manifest needs a manifest_id and a list of entries",
                "entries",
            )
        expected = {str(e[0]): str(e[1]) for e in entries}
        received = {
            str(k).split(":", 1)[1]
            for (k,) in self.conn.execute(
                "SELECT change_key FROM gw_queue WHERE gateway = ? AND type = ?",
                (self.party, str(MessageType.IDENTITY_UPDATE)),
            )
        }
        missing = sorted(expected[c] for c in expected.keys() - received)
        unexpected = sorted(received - expected.keys())
        self.conn.execute(
            "INSERT INTO gw_reconciliations VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                self.party,
                manifest_id,
                now.isoformat(),
                len(expected),
                len(received & expected.keys()),
                json.dumps(missing),
                json.dumps(unexpected),
            ),
        )
        if missing or unexpected:
            result.decisions.append(
                self.decide(
                    "GW-003",
                    Outcome.DENY,
                    now,
                    reason_ja=f"中継突合で差異があります（未受領 {len(missing)} 件: {', '.join(missing)}）",
                    reason_en=f"relay reconciliation found differences ({len(missing)} not received: {', '.join(missing)})",
                    correlation_id=envelope.correlation_id,
                    evidence={
                        "missing_resident_codes": missing,
                        "unexpected_changes": unexpected,
                        "expected": len(expected),
                    },
                    code=str(RefusalCode.STATE_CONFLICT),
                )
            )
        else:
            self.allow(
                result,
                "GW-003",
                now,
                f"中継突合の差異は0件です（{len(expected)} 件）",
                f"relay reconciliation: zero differences over {len(expected)} changes",
                envelope.correlation_id,
                expected=len(expected),
            )
        return result

    # -- GW-004: 広域交付 cache ----------------------------------------------------------------------------

    def _on_wide_area(self, envelope: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        result = Result()
        if envelope.sender != self.cs_party or link.source != self.cs_party:
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                "GW-004",
                "広域交付用の住基情報は市町村CS（住基ネット経由）からのみ照会できます",
                "only the municipal CS (through 住基ネット) may read the 広域交付 cache",
                "sender",
            )
        request_id = envelope.body.get("request_id")
        code = self.unseal(envelope).get("resident_code")
        if self.registry_open(now):
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "GW-004",
                "既存住基の稼働時間内です。広域交付は既存住基から行ってください",
                "the registry is within its hours; the cache serves only off-hours requests",
                "at",
            )
        row = self.conn.execute(
            "SELECT items, synced_at FROM gw_cache WHERE gateway = ? AND resident_code = ?", (self.party, code)
        ).fetchone()
        if row is None or json.loads(row[0]).get("change_reason") in ("move_out", "death"):
            raise self.refuse(
                RefusalCode.NOT_FOUND,
                "GW-004",
                "この住民票コードの住民は住民基本台帳に記録されていません",
                "no resident on the register has this 住民票コード",
                "resident_code",
            )
        synced_at = datetime.fromisoformat(row[1])
        max_age = timedelta(hours=int(self._settings()["cache_max_age_hours"]))
        if now - synced_at > max_age:
            raise self.refuse(
                RefusalCode.STATE_CONFLICT,
                "GW-004",
                f"保持している住基情報が古すぎます（最終同期 {row[1]}）。交付できません",
                f"the cached record is older than the maximum age (last sync {row[1]})",
                "synced_at",
            )
        self.allow(
            result,
            "GW-004",
            now,
            "既存住基の稼働時間外のため、最終同期時点の住基情報で応答しました",
            "answered off-hours from the cache as of the last sync",
            envelope.correlation_id,
            synced_at=row[1],
        )
        sent = self.send(
            result,
            MessageType.WIDE_AREA_REPLY,
            self.cs_party,
            now,
            body={"request_id": request_id, "synced_at": row[1]},
            personal={"resident_code": code, "record": json.loads(row[0])},
            correlation_id=envelope.correlation_id,
        )
        record_exchange(self, sent, now, source=self.party, person_key=str(code), outcome="answered_from_cache")
        return result
