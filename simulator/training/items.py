"""Which kind of personal item a message field carries (個人番号, 住民票コード, 4情報, 符号, 副本 …), for traces.

A trace observer walks a message's signed body and its opened sealed payload and names each field by its
path and item class, so a trainee can see what travelled how without seeing the values. This module must
never return a personal value: only field paths, item classes and, for identifiers, a keyed fingerprint
whose key is never written anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EXPOSURE_RANK",
    "ITEM_CLASSES",
    "TRAVEL_RANK",
    "FieldSeen",
    "Fingerprinter",
    "item_of",
    "stronger_exposure",
    "walk_fields",
]

#: Item classes in the order the "who saw what" matrix shows them.
ITEM_CLASSES: tuple[str, ...] = (
    "my_number",
    "resident_code",
    "basic4",
    "linkage_code",
    "link_code",
    "atena_number",
    "replica",
)

# Identifiers get a fingerprint, so a trainee can see that two hops carry the same value, or that two
# organisations hold different 符号 for one person, without the value itself.
_IDENTIFIERS = frozenset({"my_number", "resident_code", "linkage_code", "link_code", "atena_number"})

_BY_KEY: dict[str, str] = {
    "my_number": "my_number",
    "resident_code": "resident_code",
    "name": "basic4",
    "name_kana": "basic4",
    "address": "basic4",
    "birth_date": "basic4",
    "sex": "basic4",
    "previous_address": "basic4",
    "destination_address": "basic4",
    "linkage_code": "linkage_code",
    "requester_linkage_code": "linkage_code",
    "provider_linkage_code": "linkage_code",
    "link_code": "link_code",
    "atena_number": "atena_number",
    # 副本 contents: the record a business system publishes, and the items a provision carries.
    "record": "replica",
    "data": "replica",
    "resident_info": "replica",
    "local_tax_info": "replica",
    "ltc_info": "replica",
    "health_insurance_info": "replica",
}

#: How a field travelled, weakest protection last: "signed" is readable by every hop but tamper-evident.
TRAVEL_RANK = {"absent": 0, "encrypted": 1, "signed": 2, "plaintext": 3}
#: What a party could see of an item: a party that held it in the clear "saw" it; one that only carried it
#: sealed for someone else held "ciphertext".
EXPOSURE_RANK = {"never": 0, "ciphertext": 1, "plaintext": 2}

_MAX_DEPTH = 6
_MAX_LIST = 50  # a list of records (e.g. 情報提供等記録) is described by its first entries' keys


def item_of(key: str) -> str | None:
    """The item class a field name stands for, or None for control data (ids, statuses, row numbers)."""
    return _BY_KEY.get(key)


def stronger_exposure(a: str, b: str) -> str:
    return a if EXPOSURE_RANK[a] >= EXPOSURE_RANK[b] else b


class Fingerprinter:
    """Short keyed fingerprints of identifiers. The key lives only in memory, so a trace cannot be joined
    with another trace, and a 12-digit 個人番号 cannot be recovered by trying every number."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def __call__(self, item: str, value: str) -> str:
        return hmac.new(self._key, f"{item}\x00{value}".encode(), hashlib.sha256).hexdigest()[:8]


@dataclass(frozen=True)
class FieldSeen:
    """One field of a message: where it is, which item class it carries, how it travelled."""

    path: str
    travel: str  # "signed" | "encrypted" | "plaintext"
    item: str | None
    fingerprint: str | None = None

    def as_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "travel": self.travel, "item": self.item}
        if self.fingerprint:
            out["fp"] = self.fingerprint
        return out


def _jws_body(value: str) -> Mapping[str, Any] | None:
    """The body of a nested signed envelope (a 提供許可証 travels as a JWS inside a body), if ``value`` is one.

    Reading the payload of a JWS needs no key; the trace only names its fields, and never verifies it: the
    component that receives it does.
    """
    parts = value.split(".")
    if len(parts) != 3 or len(value) < 40:
        return None
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or "alg" not in header or not isinstance(payload, dict):
        return None
    body = payload.get("body")
    return body if isinstance(body, dict) else None


def _walk(value: Any, path: str, travel: str, fp: Fingerprinter, depth: int) -> Iterator[FieldSeen]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            child = value[key]
            item = item_of(str(key))
            sub = f"{path}.{key}" if path else str(key)
            mark = fp(item, str(child)) if item in _IDENTIFIERS and isinstance(child, str | int) and child else None
            yield FieldSeen(sub, travel, item, mark)
            yield from _walk(child, sub, travel, fp, depth + 1)
    elif isinstance(value, list):
        for element in value[:_MAX_LIST]:
            yield from _walk(element, f"{path}[]", travel, fp, depth + 1)
    elif isinstance(value, str) and travel == "signed":
        nested = _jws_body(value)
        if nested is not None:
            yield from _walk(nested, path, "signed", fp, depth + 1)


def walk_fields(payload: Mapping[str, Any], travel: str, fp: Fingerprinter) -> list[FieldSeen]:
    """Every field of ``payload`` (nested ones by dotted path, list entries as ``[]``), once per path.

    A 副本 record is named on its own path (``record``, ``data.resident_info``); the fields inside it carry
    their own class (``record.name`` is 4情報), so one path names one class.
    """
    seen: dict[str, FieldSeen] = {}
    for field in _walk(payload, "", travel, fp, 0):
        if field.path not in seen:
            seen[field.path] = field
    return list(seen.values())
