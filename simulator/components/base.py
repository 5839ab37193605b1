"""What every component shares: verify what arrives, dispatch by message type, sign what leaves, log decisions.

Components are sans-I/O protocol machines (the h11 idea): a driver hands in a signed wire message (or a
staff command) and the current time, and gets back the messages to deliver and the decisions taken. A
component keeps its own state in its organisation's SQLite store, and never opens a socket, sleeps or reads
the wall clock; time and delivery belong to the driver.
"""

from __future__ import annotations

import secrets
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from simulator.controls.decision import ControlDecision, Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import Refusal, RefusalCode
from simulator.model.envelope import Envelope, MessageType
from simulator.store.chain import HashChain
from simulator.store.db import transaction

__all__ = ["Component", "Directory", "Link", "Outgoing", "Result"]


@dataclass(frozen=True)
class Link:
    """Transport facts the receiving side can see without trusting the message: who connected, on which network."""

    source: str  # party id authenticated by the connection (mutual TLS in the service driver)
    network: str  # "jukinet", "lgwan", "office_lan", "internet", …


@dataclass(frozen=True)
class Outgoing:
    recipient: str
    wire: str
    envelope: Envelope
    network: str
    sealed_for: str | None = None  # party that can open ``envelope.sealed``; None when nothing is sealed


@dataclass
class Result:
    """What one step of a component produced."""

    outgoing: list[Outgoing] = field(default_factory=list)
    decisions: list[ControlDecision] = field(default_factory=list)
    refusal: Refusal | None = None
    value: Any = None  # the answer to a staff command or a local call (e.g. a search result)

    def extend(self, other: Result) -> None:
        self.outgoing.extend(other.outgoing)
        self.decisions.extend(other.decisions)
        if other.refusal is not None and self.refusal is None:
            self.refusal = other.refusal


class Directory:
    """Where each party's certificate and network are published (the 配信マスター / LGPKI directory)."""

    def __init__(self) -> None:
        self._certs: dict[str, x509.Certificate] = {}
        self._networks: dict[tuple[str, str], str] = {}

    def publish(self, party: str, certificate: x509.Certificate) -> None:
        self._certs[party] = certificate

    def certificate(self, party: str) -> x509.Certificate:
        try:
            return self._certs[party]
        except KeyError:
            raise KeyError(f"party: no certificate published for {party!r}") from None

    def parties(self) -> list[str]:
        return sorted(self._certs)

    def connect(self, a: str, b: str, network: str) -> None:
        """Declare that a and b are linked, and over which network (both directions)."""
        self._networks[(a, b)] = network
        self._networks[(b, a)] = network

    def network_between(self, a: str, b: str) -> str | None:
        return self._networks.get((a, b))


Handler = Callable[[Envelope, x509.Certificate, Link, datetime], Result]


class Component:
    """Base class. Subclasses register handlers per MessageType in ``_handlers``."""

    #: Japanese and English names shown to people (traces, reports).
    name_ja: str = "コンポーネント"
    name_en: str = "component"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
    ) -> None:
        self.party = party
        self.conn = conn
        self.security = security
        self.directory = directory
        self.audit = HashChain(conn, "audit_trail")
        self._handlers: dict[MessageType, Handler] = {}

    # -- receiving ---------------------------------------------------------------------------------------

    def handle(self, wire: str, link: Link, now: datetime) -> Result:
        """Verify and dispatch one incoming message. Never raises for the peer's faults: refusals are results.

        Verification, the replay record, the handler's writes and its audit rows commit as one transaction; a
        refusal rolls all of it back and is then logged on its own, so nothing half-done is ever stored.
        """
        envelope: Envelope | None = None
        try:
            with transaction(self.conn), self.audit.batch():
                envelope, sender_cert = self.security.verify_with_sender(wire, now)
                handler = self._handlers.get(envelope.type)
                if handler is None:
                    raise self.refuse(
                        RefusalCode.MALFORMED_MESSAGE,
                        "NET-001",
                        f"この相手先が受け付けない電文種別です: {envelope.type}",
                        f"this party does not accept messages of type {envelope.type}",
                        field="type",
                    )
                self.audit.append(
                    at=now.isoformat(),
                    kind="message.in",
                    correlation_id=envelope.correlation_id,
                    # The receiving party too: several components share one organisation's trail (LOG-008
                    # reconciles what each hub passed on against what each receiver got).
                    data={
                        "id": envelope.id,
                        "type": envelope.type,
                        "from": envelope.sender,
                        "to": self.party,
                        "network": link.network,
                    },
                )
                return handler(envelope, sender_cert, link, now)
        except Refusal as refusal:
            if envelope is None:
                return self.refused(refusal, now, correlation_id=None, evidence={"stage": "verify"})
            return self.refused(
                refusal, now, correlation_id=envelope.correlation_id, evidence={"message_id": envelope.id}
            )

    # -- deciding ----------------------------------------------------------------------------------------

    def decide(
        self,
        control_id: str,
        outcome: Outcome,
        now: datetime,
        *,
        reason_ja: str,
        reason_en: str,
        correlation_id: str | None = None,
        evidence: Mapping[str, Any] | None = None,
        code: str | None = None,
    ) -> ControlDecision:
        decision = ControlDecision(
            control_id=control_id,
            outcome=outcome,
            component=self.party,
            reason_ja=reason_ja,
            reason_en=reason_en,
            at=now,
            correlation_id=correlation_id,
            code=code,
            evidence=dict(evidence or {}),
        )
        self.audit.append(at=now.isoformat(), kind="decision", correlation_id=correlation_id, data=decision.as_record())
        return decision

    def allow(
        self,
        result: Result,
        control_id: str,
        now: datetime,
        reason_ja: str,
        reason_en: str,
        correlation_id: str | None = None,
        **evidence: Any,
    ) -> None:
        result.decisions.append(
            self.decide(
                control_id,
                Outcome.ALLOW,
                now,
                reason_ja=reason_ja,
                reason_en=reason_en,
                correlation_id=correlation_id,
                evidence=evidence,
            )
        )

    def refuse(
        self,
        code: RefusalCode,
        control_id: str,
        reason_ja: str,
        reason_en: str,
        field: str | None = None,
    ) -> Refusal:
        """Build a refusal to ``raise``; the decision is logged when it is caught by ``handle`` or a command."""
        return Refusal(
            code, component=self.party, control_id=control_id, reason_ja=reason_ja, reason_en=reason_en, field=field
        )

    def refused(
        self,
        refusal: Refusal,
        now: datetime,
        *,
        correlation_id: str | None,
        evidence: Mapping[str, Any] | None = None,
    ) -> Result:
        """Log a refusal as a deny decision (outside any rolled-back transaction) and return it as a result."""
        decision = self.decide(
            refusal.control_id,
            Outcome.DENY,
            now,
            reason_ja=refusal.reason_ja,
            reason_en=refusal.reason_en,
            correlation_id=correlation_id,
            evidence={**(evidence or {}), "field": refusal.field},
            code=str(refusal.code),
        )
        return Result(decisions=[decision], refusal=refusal)

    def command(self, now: datetime, correlation_id: str | None, action: Callable[[Result], None]) -> Result:
        """Run a staff command or local call atomically; a refusal rolls its writes back and is logged."""
        result = Result()
        try:
            with transaction(self.conn), self.audit.batch():
                action(result)
        except Refusal as refusal:
            return self.refused(refusal, now, correlation_id=correlation_id)
        return result

    # -- sending -----------------------------------------------------------------------------------------

    def send(
        self,
        result: Result,
        type_: MessageType,
        recipient: str,
        now: datetime,
        *,
        body: Mapping[str, Any] | None = None,
        personal: Mapping[str, Any] | None = None,
        seal_to: str | None = None,
        sealed: str | None = None,
        sealed_for: str | None = None,
        correlation_id: str | None = None,
    ) -> Envelope:
        """Sign and queue a message. ``personal`` is encrypted to ``seal_to`` (default: the recipient)."""
        network = self.directory.network_between(self.party, recipient)
        if network is None:
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                "NET-001",
                f"{recipient} への接続経路は定義されていません",
                f"there is no route from {self.party} to {recipient}",
                field="recipient",
            )
        if personal is not None:
            reader = seal_to or recipient
            # Never seal to a certificate the trust store would refuse now (revoked, expired, unknown: NET-003).
            certificate = self.security.sealing_certificate(self.directory.certificate(reader), now)
            sealed = self.security.seal(dict(personal), certificate)
            sealed_for = reader
        envelope = Envelope(
            id=uuid.uuid4().hex,
            type=type_,
            sender=self.party,
            recipient=recipient,
            issued_at=now,
            nonce=secrets.token_hex(16),
            correlation_id=correlation_id,
            body=dict(body or {}),
            sealed=sealed,
        )
        wire = self.security.sign(envelope)
        self.audit.append(
            at=now.isoformat(),
            kind="message.out",
            correlation_id=correlation_id,
            data={"id": envelope.id, "type": type_, "to": recipient, "sealed_for": sealed_for},
        )
        result.outgoing.append(Outgoing(recipient, wire, envelope, network, sealed_for))
        return envelope

    def unseal(self, envelope: Envelope) -> dict[str, Any]:
        if envelope.sealed is None:
            raise self.refuse(
                RefusalCode.NOT_ENCRYPTED,
                "CHUKAN-012",
                "個人情報を含む電文が暗号化されていません",
                "a message that must carry personal data encrypted arrived without a sealed payload",
                field="sealed",
            )
        return self.security.unseal(envelope.sealed)

    def require_sender(self, envelope: Envelope, allowed: set[str], control_id: str, what_ja: str) -> None:
        if envelope.sender not in allowed:
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                control_id,
                f"{what_ja}は {', '.join(sorted(allowed))} からのみ受け付けます（送信元: {envelope.sender}）",
                f"only {', '.join(sorted(allowed))} may send this; refused from {envelope.sender}",
                field="sender",
            )
