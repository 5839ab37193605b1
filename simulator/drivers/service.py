"""Service driver: one organisation's components behind a network boundary, with a durable outbox and inbox.

The twin of the in-process driver for the HTTP services. It hands a received wire to the recipient component
with a Link whose source is the peer the TLS handshake authenticated, on the wall clock, and writes every
message that step sends into the store's outbox in the same transaction, so a crash loses nothing. The same
transaction writes the verdict into the inbox, keyed by message id: the very same wire delivered again (its
answer was lost in a crash) gets the same verdict and has no second effect. Messages for parties of the same
service are delivered here at once, from the outbox; the rest wait for the sender. It must never reach into a
component's tables, alter a message, or trust a sender named only by the message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from simulator.components.base import Component, Link, Outgoing, Result
from simulator.drivers.inproc import Hop, World
from simulator.errors import Refusal, RefusalCode
from simulator.store.db import ensure_schema, transaction

__all__ = ["OutboxItem", "Receipt", "ServiceDriver"]

_DDL = """
CREATE TABLE IF NOT EXISTS service_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    network TEXT NOT NULL,
    message_type TEXT NOT NULL,
    correlation_id TEXT,
    wire TEXT NOT NULL,
    local INTEGER NOT NULL,
    staged_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS service_inbox (
    -- Keyed by id and bytes: a forgery reusing a genuine id must not take the genuine message's kept verdict.
    message_id TEXT NOT NULL,
    wire_sha256 TEXT NOT NULL,
    peer TEXT NOT NULL,
    recipient TEXT NOT NULL,
    status TEXT NOT NULL,
    refusal TEXT,
    received_at TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (message_id, wire_sha256)
);
CREATE TABLE IF NOT EXISTS service_requests (
    request_key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    value TEXT,
    refusal TEXT,
    received_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxItem:
    """One staged message, kept in the sender's store until the recipient's service has answered for it."""

    seq: int
    message_id: str
    sender: str
    recipient: str
    network: str
    message_type: str
    correlation_id: str | None
    wire: str


@dataclass
class Receipt:
    """What one received message (or one command) did here, including deliveries between local parties."""

    status: Literal["accepted", "refused"]
    result: Result
    message_id: str | None = None
    message_type: str | None = None
    remote: list[OutboxItem] = field(default_factory=list)
    correlation_ids: set[str] = field(default_factory=set)
    hops: list[Hop] = field(default_factory=list)
    duplicate: bool = False  # the same wire (or request key) was already handled: this is its stored verdict

    @property
    def refusal(self) -> Refusal | None:
        return self.result.refusal


def peek(wire: str) -> dict[str, Any]:
    """The unverified routing header of a JWS envelope (recipient, sender, type, id), for dispatch only.

    The recipient component verifies everything again; a forged header only sends a message to a component that
    will refuse it. Raises ValueError on anything that is not a compact JWS with a JSON payload.
    """
    parts = wire.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except RecursionError:  # JSON nested deeper than the parser's stack: hostile input, not a crash
        raise ValueError("the payload nests too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("the payload is not a JSON object")
    return data


class ServiceDriver:
    """Serialises every step of one service's components (they share one SQLite connection) behind one lock."""

    def __init__(
        self,
        world: World,
        parties: Collection[str],
        conn: sqlite3.Connection,
        clock: Callable[[], datetime],
        *,
        max_local_hops: int = 1000,
    ) -> None:
        self.world = world
        self.parties = frozenset(parties)
        self.conn = conn
        self.clock = clock
        self.max_local_hops = max_local_hops
        self.lock = threading.RLock()
        self._seq = 0
        for party in self.parties:
            if world.component(party).conn is not conn:
                raise ValueError(f"parties: {party} keeps its state in another store")
        ensure_schema(conn, _DDL)

    # -- receiving over the network ---------------------------------------------------------------------

    def receive(self, wire: str, peer: str | None) -> Receipt:
        """Handle one message that arrived from ``peer`` (the TLS-authenticated party, or None without one)."""
        with self.lock:
            now = self._now()
            try:
                header = peek(wire)
                recipient = str(header.get("recipient", ""))
            except (ValueError, UnicodeDecodeError):
                header, recipient = {}, ""
            component = self.world.components.get(recipient) if recipient in self.parties else None
            if component is None:
                gateway = self.world.component(min(self.parties))
                code = RefusalCode.WRONG_RECIPIENT if header else RefusalCode.MALFORMED_MESSAGE
                refusal = gateway.refuse(
                    code,
                    "NET-001",
                    "この電文の宛先はこのサービスにありません"
                    if header
                    else "電文の形式が正しくありません（JWS compact 形式ではない）",
                    f"no party {recipient!r} is hosted by this service" if header else "the body is not a compact JWS",
                    field="recipient" if header else "wire",
                )
                return self._refused_at_gateway(gateway, refusal, now, header, peer)
            if peer is None:
                refusal = component.refuse(
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "NET-003",
                    "接続元の証明書（相互TLS）が提示されていません",
                    "the connection presented no TLS client certificate (mutual TLS is required)",
                    field="connection",
                )
                return self._refused_at_gateway(component, refusal, now, header, peer)
            digest = hashlib.sha256(wire.encode("utf-8")).hexdigest()
            replayed = self._inbox_verdict(str(header.get("id", "")), digest, peer, recipient)
            if replayed is not None:
                replayed.message_type = _str_or_none(header.get("type"))
                return replayed
            network = self.world.components[recipient].directory.network_between(peer, recipient)
            if network is None:
                refusal = component.refuse(
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "NET-001",
                    f"{peer} から {recipient} への接続経路は定義されていません",
                    f"there is no route from {peer} to {recipient}",
                    field="connection",
                )
                return self._refused_at_gateway(component, refusal, now, header, peer)
            with transaction(self.conn):
                result = component.handle(wire, Link(source=peer, network=network), now)
                staged = self._stage(result.outgoing, now)
                if header.get("id"):
                    self.conn.execute(
                        "INSERT OR IGNORE INTO service_inbox (message_id, wire_sha256, peer, recipient, status, refusal,"
                        " received_at) VALUES (?,?,?,?,?,?,?)",
                        (str(header["id"]), digest, peer, recipient, "refused" if result.refusal else "accepted",
                         json.dumps(result.refusal.as_dict(), ensure_ascii=False) if result.refusal else None,
                         now.isoformat()),
                    )
            receipt = Receipt(
                "refused" if result.refusal else "accepted",
                result,
                message_id=str(header.get("id")),
                message_type=str(header.get("type")),
            )
            if header.get("correlation_id"):
                receipt.correlation_ids.add(str(header["correlation_id"]))
            self._report(receipt, recipient, str(header.get("sender", peer)), network, header, len(wire), result, now)
            self._cascade(receipt, staged)
            return receipt

    def _refused_at_gateway(
        self, component: Component, refusal: Refusal, now: datetime, header: dict[str, Any], peer: str | None
    ) -> Receipt:
        result = component.refused(
            refusal,
            now,
            correlation_id=_str_or_none(header.get("correlation_id")),
            evidence={"stage": "transport", "peer": peer, "message_id": header.get("id")},
        )
        return Receipt(
            "refused", result, message_id=_str_or_none(header.get("id")), message_type=_str_or_none(header.get("type"))
        )

    # -- local commands (staff terminals, business API) -------------------------------------------------

    def command(self, action: Callable[[datetime], Result], *, request_key: str | None = None) -> Receipt:
        """Run a staff command or API call on a hosted component now; stage and deliver what it sends.

        With a ``request_key`` (the caller's Idempotency-Key) the outcome is kept with the step: a caller that
        lost the answer in a crash and asks again gets the same outcome, and the command does not run twice.
        """
        with self.lock:
            if request_key is not None:
                row = self.conn.execute(
                    "SELECT status, value, refusal FROM service_requests WHERE request_key = ?", (request_key,)
                ).fetchone()
                if row is not None:
                    kept = Result(value=json.loads(row[1]) if row[1] else None,
                                  refusal=_refusal_of(row[2]) if row[2] else None)
                    return Receipt(row[0], kept, duplicate=True)
            now = self._now()
            with transaction(self.conn):
                result = action(now)
                staged = self._stage(result.outgoing, now)
                if request_key is not None:
                    self.conn.execute(
                        "INSERT INTO service_requests (request_key, status, value, refusal, received_at)"
                        " VALUES (?,?,?,?,?)",
                        (request_key, "refused" if result.refusal else "accepted",
                         json.dumps(result.value, ensure_ascii=False, default=str),
                         json.dumps(result.refusal.as_dict(), ensure_ascii=False) if result.refusal else None,
                         now.isoformat()),
                    )
            receipt = Receipt("refused" if result.refusal else "accepted", result)
            self._cascade(receipt, staged)
            return receipt

    def read(self, action: Callable[[], Any]) -> Any:
        """Run a read-only call on a hosted component, serialised with the steps that write."""
        with self.lock:
            return action()

    # -- the outbox -------------------------------------------------------------------------------------

    def pending(self) -> list[OutboxItem]:
        """Messages staged for other services and not yet answered for (in order), e.g. after a restart."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT seq, message_id, sender, recipient, network, message_type, correlation_id, wire"
                " FROM service_outbox WHERE local = 0 ORDER BY seq"
            ).fetchall()
        return [OutboxItem(*row) for row in rows]

    def resume(self) -> Receipt:
        """Deliver local messages a crash left staged (between two local steps); returns what that staged remotely."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT seq, message_id, sender, recipient, network, message_type, correlation_id, wire"
                " FROM service_outbox WHERE local = 1 ORDER BY seq"
            ).fetchall()
            receipt = Receipt("accepted", Result())
            self._cascade(receipt, [OutboxItem(*row) for row in rows])
            return receipt

    def delivered(self, seqs: Collection[int]) -> None:
        """The recipients' services answered for these (accepted or refused): forget them."""
        if not seqs:
            return
        with self.lock, transaction(self.conn):
            self.conn.executemany("DELETE FROM service_outbox WHERE seq = ?", [(s,) for s in seqs])

    def backlog(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT count(*) FROM service_outbox").fetchone()[0])

    def _inbox_verdict(self, message_id: str, digest: str, peer: str, recipient: str) -> Receipt | None:
        """The kept verdict when this exact wire already came from this peer; None for anything new.

        Only the identical bytes from the same authenticated peer match: a different message reusing the id is
        handed to the component, whose replay guard refuses it (CHUKAN-013).
        """
        if not message_id:
            return None
        row = self.conn.execute(
            "SELECT status, refusal FROM service_inbox WHERE message_id = ? AND wire_sha256 = ? AND peer = ?"
            " AND recipient = ?",
            (message_id, digest, peer, recipient),
        ).fetchone()
        if row is None:
            return None
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE service_inbox SET deliveries = deliveries + 1 WHERE message_id = ? AND wire_sha256 = ?",
                (message_id, digest),
            )
        result = Result(refusal=_refusal_of(row[1]) if row[1] else None)
        return Receipt(row[0], result, message_id=message_id, duplicate=True)

    def forget_verdicts(self, before: datetime) -> int:
        """Drop kept verdicts (inbox and request keys) older than ``before``, so the inbox stays bounded.

        Safe once ``before`` is well past the freshness window: a message that old is refused as stale anyway, and
        the exchange it belonged to was handled the first time.
        """
        with self.lock, transaction(self.conn):
            cutoff = before.isoformat()
            dropped = self.conn.execute("DELETE FROM service_inbox WHERE received_at < ?", (cutoff,)).rowcount
            dropped += self.conn.execute("DELETE FROM service_requests WHERE received_at < ?", (cutoff,)).rowcount
        return int(dropped)

    def inbox_size(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT count(*) FROM service_inbox").fetchone()[0])

    # -- internals --------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock()
        self.world.now = now  # the CRL source follows the world's clock
        return now

    def _stage(self, outgoing: list[Outgoing], now: datetime) -> list[OutboxItem]:
        staged = []
        for out in outgoing:
            env = out.envelope
            local = out.recipient in self.parties
            cursor = self.conn.execute(
                "INSERT INTO service_outbox (message_id, sender, recipient, network, message_type, correlation_id,"
                " wire, local, staged_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    env.id,
                    env.sender,
                    out.recipient,
                    out.network,
                    str(env.type),
                    env.correlation_id,
                    out.wire,
                    int(local),
                    now.isoformat(),
                ),
            )
            staged.append(
                OutboxItem(
                    int(cursor.lastrowid or 0),
                    env.id,
                    env.sender,
                    out.recipient,
                    out.network,
                    str(env.type),
                    env.correlation_id,
                    out.wire,
                )
            )
        return staged

    def _cascade(self, receipt: Receipt, staged: list[OutboxItem]) -> None:
        queue = deque(item for item in staged if item.recipient in self.parties)
        receipt.remote.extend(item for item in staged if item.recipient not in self.parties)
        hops = 0
        while queue:
            hops += 1
            if hops > self.max_local_hops:
                raise RuntimeError(f"more than {self.max_local_hops} local hops from one step: a message loop")
            item = queue.popleft()
            now = self._now()
            component = self.world.component(item.recipient)
            with transaction(self.conn):
                result = component.handle(item.wire, Link(source=item.sender, network=item.network), now)
                more = self._stage(result.outgoing, now)
                self.conn.execute("DELETE FROM service_outbox WHERE seq = ?", (item.seq,))
            if item.correlation_id:
                receipt.correlation_ids.add(item.correlation_id)
            self._report(
                receipt,
                item.recipient,
                item.sender,
                item.network,
                {"id": item.message_id, "type": item.message_type, "correlation_id": item.correlation_id},
                len(item.wire),
                result,
                now,
            )
            queue.extend(m for m in more if m.recipient in self.parties)
            receipt.remote.extend(m for m in more if m.recipient not in self.parties)

    def _report(
        self,
        receipt: Receipt,
        recipient: str,
        sender: str,
        network: str,
        header: dict[str, Any],
        size: int,
        result: Result,
        now: datetime,
    ) -> None:
        self._seq += 1
        hop = Hop(
            seq=self._seq,
            at=now,
            sender=sender,
            recipient=recipient,
            network=network,
            message_type=str(header.get("type")),
            message_id=str(header.get("id")),
            correlation_id=_str_or_none(header.get("correlation_id")),
            signed=True,
            sealed_for=None,
            body_keys=[],
            wire_bytes=size,
            decisions=result.decisions,
            refusal=result.refusal,
        )
        receipt.hops.append(hop)


def _refusal_of(text: str) -> Refusal:
    data = json.loads(text)
    return Refusal(
        RefusalCode(data["code"]),
        component=str(data.get("component")),
        control_id=str(data.get("control_id")),
        reason_ja=str(data.get("reason_ja")),
        reason_en=str(data.get("reason_en")),
        field=_str_or_none(data.get("field")),
    )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
