"""Trace files (JSONL): every delivered message of a run, with what travelled how and which controls decided.

A ``TraceWriter`` is the driver's ``on_hop`` observer. Per hop it writes the sender, receiver, network and
message type; each field's path, item class and how it travelled (signed plaintext, encrypted, absent),
reading the sealed payload with its reader's key as a testbed observer may; what each side could see
(plaintext or ciphertext); the decisions with their control ids; and the citations of those controls in the
seed PIAs. It must never write a personal value: field names, item classes and keyed fingerprints only.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

from cryptography import x509

from simulator.components.base import Outgoing
from simulator.controls.catalogue import Catalogue, load_catalogue
from simulator.controls.decision import ControlDecision
from simulator.crypto import Credential, MessageSecurity, ReplayGuard, TrustStore
from simulator.drivers.inproc import Hop
from simulator.errors import InputError, Refusal
from simulator.training.items import (
    EXPOSURE_RANK,
    ITEM_CLASSES,
    TRAVEL_RANK,
    FieldSeen,
    Fingerprinter,
    stronger_exposure,
    walk_fields,
)

__all__ = [
    "FORMAT",
    "STAFF",
    "VERSION",
    "KeyStoreOpener",
    "SealedOpener",
    "Trace",
    "TraceWriter",
    "codes_seen",
    "decision_record",
    "load_trace",
    "trace_sink",
    "who_saw_what",
    "world_opener",
]

FORMAT = "jukisim-trace"
VERSION = 1
STAFF = "staff"


class SealedOpener(Protocol):
    """Opens a sealed payload as ``party`` would; raises (any exception) when it cannot."""

    def __call__(self, party: str, sealed: str) -> Mapping[str, Any]: ...


class _World(Protocol):
    def component(self, party: str) -> Any: ...


def world_opener(world: _World) -> SealedOpener:
    """Open sealed payloads with the keys of the running world's components."""

    def open_(party: str, sealed: str) -> Mapping[str, Any]:
        security: MessageSecurity = world.component(party).security
        return security.unseal(sealed)

    return open_


class KeyStoreOpener:
    """Open sealed payloads with the keys a world keeps in its data directory (``keys/parties/<party>``).

    For a writer created before the world it observes exists (``jukisim demo --trace``): keys are read on first
    use, when the world has written them.
    """

    def __init__(self, data_dir: Path) -> None:
        self.keys = Path(data_dir) / "keys"
        self._security: dict[str, MessageSecurity] = {}

    def _for(self, party: str) -> MessageSecurity:
        if party not in self._security:
            credential = Credential.load(self.keys / "parties" / party)
            root = x509.load_pem_x509_certificate((self.keys / "ca" / "root.crt.pem").read_bytes())
            crl_path = self.keys / "ca" / "crl.pem"
            trust = TrustStore(root, lambda: x509.load_pem_x509_crl(crl_path.read_bytes()))
            # Unsealing consults neither the trust store nor the replay guard; MessageSecurity needs both.
            replay = ReplayGuard(sqlite3.connect(":memory:"), timedelta(minutes=10))
            self._security[party] = MessageSecurity(credential, trust, replay)
        return self._security[party]

    def __call__(self, party: str, sealed: str) -> Mapping[str, Any]:
        return self._for(party).unseal(sealed)


@cache
def _catalogue() -> Catalogue | None:
    try:
        return load_catalogue()
    except (InputError, OSError):
        return None


def decision_record(decision: ControlDecision, catalogue: Catalogue | None) -> dict[str, Any]:
    """A decision as a trace carries it: id, outcome, who, why, the control's titles and its citations.

    Evidence values are left out (they can hold identifiers); their keys say what was looked at.
    """
    out: dict[str, Any] = {
        "control_id": decision.control_id,
        "outcome": str(decision.outcome),
        "component": decision.component,
        "code": decision.code,
        "reason_ja": decision.reason_ja,
        "reason_en": decision.reason_en,
        "evidence_keys": sorted(decision.evidence),
        "title_ja": None,
        "title_en": None,
        "citations": [],
    }
    if catalogue is not None and decision.control_id in catalogue:
        control = catalogue.get(decision.control_id)
        out["title_ja"], out["title_en"] = control.title_ja, control.title_en
        seen: set[str] = set()
        for source in control.sources:
            cite = source.cite()
            if cite in seen:
                continue
            seen.add(cite)
            out["citations"].append(
                {
                    "cite": cite,
                    "seed": source.seed,
                    "profile": source.profile,
                    "section": source.section,
                    "item": source.item,
                    "lines": list(source.lines),
                    "quote": source.quote,
                }
            )
    return out


def _digest(sealed: str) -> bytes:
    return hashlib.sha256(sealed.encode("ascii", "replace")).digest()


class TraceWriter:
    """The driver's ``on_hop``: one JSON line per hop. Use as a context manager, or call ``close()``.

    ``path`` None keeps the records in memory only (``records``); ``keep=True`` keeps them as well as writing.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        opener: SealedOpener | None = None,
        keep: bool = False,
        meta: Mapping[str, Any] | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.opener = opener
        self.keep = keep or path is None
        self.records: list[dict[str, Any]] = []
        self.flow: str | None = None
        self.hops_written = 0
        self._catalogue = catalogue if catalogue is not None else _catalogue()
        self._fingerprint = Fingerprinter()
        self._received: dict[bytes, set[str]] = {}  # sealed payload → parties that received it
        self._file: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")
        header = {
            "kind": "header",
            "format": FORMAT,
            "version": VERSION,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "items": list(ITEM_CLASSES),
            "fingerprints": "HMAC-SHA256 under a key that exists only while the trace is written: equal within "
            "one trace means equal values; nothing else can be learnt from it",
            "catalogue": None if self._catalogue is None else len(self._catalogue),
            **dict(meta or {}),
        }
        self._emit(header)

    # -- wiring ------------------------------------------------------------------------------------------

    def bind(self, world: _World) -> None:
        """Read sealed payloads with the keys of ``world``'s components from now on."""
        self.opener = world_opener(world)

    def set_flow(self, flow: str | None, title_ja: str = "", title_en: str = "", **extra: Any) -> None:
        """Tag the hops that follow with a flow id (and write a marker line the viewer uses for titles)."""
        self.flow = flow
        if flow is not None:
            self._emit({"kind": "flow", "flow": flow, "title_ja": title_ja, "title_en": title_en, **extra})

    def __call__(self, hop: Hop, outgoing: Outgoing | None) -> None:
        self._emit(self.hop_record(hop, outgoing))
        self.hops_written += 1

    def write_local(self, hops: Iterable[Hop]) -> None:
        """Write staff-command hops (the driver reports those in ``step``'s return value, not to ``on_hop``)."""
        for hop in hops:
            if hop.message_type == "staff.command":
                self(hop, None)

    def flush(self) -> None:
        """Push written lines to the file (a long run can be watched while it goes on)."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._emit({"kind": "end", "hops": self.hops_written})
            self._file.close()
            self._file = None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _emit(self, record: dict[str, Any]) -> None:
        if self.keep:
            self.records.append(record)
        if self._file is not None:
            self._file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")

    # -- one hop ---------------------------------------------------------------------------------------

    def _open(self, party: str, sealed: str) -> Mapping[str, Any] | None:
        if self.opener is None:
            return None
        try:
            return self.opener(party, sealed)
        except (Refusal, InputError, KeyError, OSError, ValueError):
            return None

    def hop_record(self, hop: Hop, outgoing: Outgoing | None) -> dict[str, Any]:
        fields: list[FieldSeen] = []
        sealed_opened: bool | None = None
        relay = False
        if outgoing is not None:
            fields += walk_fields(outgoing.envelope.body, "signed", self._fingerprint)
            sealed = outgoing.envelope.sealed
            if sealed is not None:
                digest = _digest(sealed)
                receivers = self._received.setdefault(digest, set())
                relay = hop.sender in receivers and outgoing.sealed_for != hop.sender
                receivers.add(hop.recipient)
                payload = self._open(outgoing.sealed_for, sealed) if outgoing.sealed_for else None
                sealed_opened = payload is not None
                if payload is not None:
                    fields += walk_fields(payload, "encrypted", self._fingerprint)
        items: dict[str, str] = dict.fromkeys(ITEM_CLASSES, "absent")
        for f in fields:
            if f.item is not None and TRAVEL_RANK[f.travel] > TRAVEL_RANK[items[f.item]]:
                items[f.item] = f.travel
        return {
            "kind": "hop",
            "seq": hop.seq,
            "flow": self.flow,
            "at": hop.at.isoformat(),
            "sender": hop.sender,
            "recipient": hop.recipient,
            "network": hop.network,
            "message_type": hop.message_type,
            "message_id": hop.message_id,
            "correlation_id": hop.correlation_id,
            "signed": hop.signed,
            "sealed_for": hop.sealed_for,
            "sealed_opened": sealed_opened,
            "relayed": relay,
            "wire_bytes": hop.wire_bytes,
            "fields": [f.as_record() for f in fields],
            "items": items,
            "exposure": _exposure(hop, fields, relay),
            "decisions": [decision_record(d, self._catalogue) for d in hop.decisions],
            "refusal": hop.refusal.as_dict() if hop.refusal else None,
        }


def _exposure(hop: Hop, fields: list[FieldSeen], relay: bool) -> dict[str, dict[str, str]]:
    """What the two ends of a hop could see of each item: the sender held what it sent (unless it only
    relayed a sealed payload), the receiver can read what is signed and what was sealed for it."""
    out: dict[str, dict[str, str]] = {}

    def see(party: str, item: str, level: str) -> None:
        if party == STAFF:
            return
        current = out.setdefault(party, {}).get(item, "never")
        out[party][item] = stronger_exposure(current, level)

    for f in fields:
        if f.item is None:
            continue
        if f.travel == "encrypted":
            see(hop.sender, f.item, "ciphertext" if relay else "plaintext")
            see(hop.recipient, f.item, "plaintext" if hop.sealed_for == hop.recipient else "ciphertext")
        else:
            see(hop.sender, f.item, "plaintext")
            see(hop.recipient, f.item, "plaintext")
    return out


def trace_sink(
    path: Path, *, world: _World | None = None, data_dir: Path | None = None, meta: Mapping[str, Any] | None = None
) -> TraceWriter:
    """A writer to pass as the driver's ``on_hop`` (call ``close()`` when the run ends).

    Give ``world`` when it exists already, or ``data_dir`` (the world's data directory) when the world is
    built after the driver is given the sink; without either, sealed payloads are recorded as unopened.
    """
    opener: SealedOpener | None = None
    if world is not None:
        opener = world_opener(world)
    elif data_dir is not None:
        opener = KeyStoreOpener(data_dir)
    return TraceWriter(path, opener=opener, meta=meta)


# -- reading ---------------------------------------------------------------------------------------------

_HOP_KEYS = ("seq", "sender", "recipient", "message_type", "fields", "items", "exposure", "decisions")


@dataclass
class Trace:
    """A trace as read back: the header, the flow markers, and the hops in delivery order (by ``seq``)."""

    header: dict[str, Any]
    flows: dict[str, dict[str, Any]] = field(default_factory=dict)
    hops: list[dict[str, Any]] = field(default_factory=list)

    def select(
        self, *, flow: str | None = None, correlation: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        hops = [
            h
            for h in self.hops
            if (flow is None or h.get("flow") == flow)
            and (correlation is None or h.get("correlation_id") == correlation)
        ]
        return hops if limit is None else hops[:limit]

    def parties(self, hops: list[dict[str, Any]] | None = None) -> list[str]:
        """Parties in order of first appearance (senders before receivers), staff first."""
        order: list[str] = []
        for h in hops if hops is not None else self.hops:
            for p in (h["sender"], h["recipient"]):
                if p not in order:
                    order.append(p)
        return sorted(order, key=lambda p: (p != STAFF, order.index(p)))


def who_saw_what(hops: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Per party, per item class: the strongest exposure over the hops (plaintext > ciphertext > never)."""
    out: dict[str, dict[str, str]] = {}
    for h in hops:
        for party in (h["sender"], h["recipient"]):
            if party != STAFF:
                out.setdefault(party, dict.fromkeys(ITEM_CLASSES, "never"))
        for party, seen in h.get("exposure", {}).items():
            row = out.setdefault(party, dict.fromkeys(ITEM_CLASSES, "never"))
            for item, level in seen.items():
                if item in row and level in EXPOSURE_RANK:
                    row[item] = stronger_exposure(row[item], level)
    return out


def codes_seen(hops: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Per party, the fingerprints of the 符号 it held in the clear (to show each organisation has its own)."""
    out: dict[str, set[str]] = {}
    for h in hops:
        for f in h.get("fields", []):
            if f.get("item") != "linkage_code" or not f.get("fp"):
                continue
            holders: list[str] = []
            if f["travel"] == "encrypted":
                if not h.get("relayed"):
                    holders.append(h["sender"])
                if h.get("sealed_for") == h["recipient"]:
                    holders.append(h["recipient"])
            else:
                holders += [h["sender"], h["recipient"]]
            for party in holders:
                if party != STAFF:
                    out.setdefault(party, set()).add(str(f["fp"]))
    return out


def load_trace(source: Path | Iterable[Mapping[str, Any]]) -> Trace:
    """Read a trace file (or records in memory). A bad line raises InputError naming the line and the rule."""
    records: list[tuple[int, Mapping[str, Any]]] = []
    if isinstance(source, Path):
        if not source.exists():
            raise InputError("trace", f"{source}: no such file")
        with source.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as err:
                    raise InputError("trace", f"{source}:{number}: not JSON ({err.msg})") from None
                if not isinstance(value, dict):
                    raise InputError("trace", f"{source}:{number}: each line must be a JSON object")
                records.append((number, value))
    else:
        records = list(enumerate(source, start=1))
    where = str(source) if isinstance(source, Path) else "records"
    if not records or records[0][1].get("kind") != "header" or records[0][1].get("format") != FORMAT:
        raise InputError("trace", f"{where}: the first line must be a {FORMAT} header; is this a jukisim trace?")
    header = dict(records[0][1])
    if header.get("version") != VERSION:
        raise InputError("trace", f"{where}: version {header.get('version')!r} is not supported (expected {VERSION})")
    trace = Trace(header=header)
    for number, record in records[1:]:
        kind = record.get("kind")
        if kind == "hop":
            missing = [k for k in _HOP_KEYS if k not in record]
            if missing:
                raise InputError("trace", f"{where}:{number}: hop record lacks {', '.join(missing)}")
            trace.hops.append(dict(record))
        elif kind == "flow":
            trace.flows[str(record.get("flow"))] = dict(record)
        elif kind not in ("end",):
            raise InputError("trace", f"{where}:{number}: unknown record kind {kind!r}")
    trace.hops.sort(key=lambda h: int(h["seq"]))
    return trace
