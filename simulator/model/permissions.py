"""The 照会許可用照合リスト (query-permission list): data that NWS and every 中間サーバー consult, never code.

A row says which kind of organisation may query, for which business, from which kind of provider, which
items. NWS checks the whole tuple before it issues a 提供許可証 (NWS-001); a provider's 中間サーバー checks
its own copy again (CHUKAN-009). This module must never decide for a component; it only answers "is this
tuple on the list" and loads the list from its YAML.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ItemName", "PermissionList", "PermissionRow", "load_permission_list"]


class PermissionRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    row: str
    table: str
    business_ja: str
    business_en: str
    requester_kind: str
    requester_business: str
    provider_kind: str
    items: tuple[str, ...]
    inferred: bool = False
    basis: str = ""
    sources: tuple[dict[str, Any], ...] = ()


class ItemName(BaseModel):
    model_config = ConfigDict(frozen=True)

    ja: str
    en: str


class PermissionList(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    rows: tuple[PermissionRow, ...]
    items: dict[str, ItemName] = Field(default_factory=dict)

    def row(self, row: str) -> PermissionRow | None:
        for entry in self.rows:
            if entry.row == row:
                return entry
        return None

    def allows(self, *, row: str, requester_kind: str, requester_business: str, provider_kind: str, item: str) -> bool:
        entry = self.row(row)
        return (
            entry is not None
            and entry.requester_kind == requester_kind
            and entry.requester_business == requester_business
            and entry.provider_kind == provider_kind
            and item in entry.items
        )

    def item_ja(self, item: str) -> str:
        return self.items[item].ja if item in self.items else item

    def without_row(self, row: str, version: str) -> PermissionList:
        """A new list version with one row removed (the list changes by distribution, NWS-002)."""
        return PermissionList(version=version, rows=tuple(r for r in self.rows if r.row != row), items=self.items)


def load_permission_list(path: Path | None = None) -> PermissionList:
    if path is None:
        text = resources.files("scenarios").joinpath("data/permission_list.yaml").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    return PermissionList.model_validate(yaml.safe_load(text))
