"""The 照会許可用照合リスト (query-permission list): data that NWS and every 中間サーバー consult, never code.

A row says which kind of organisation may query, for which business, from which kind of provider, which
items. NWS checks the whole tuple before it issues a 提供許可証 (NWS-001); a provider's 中間サーバー checks
its own copy again (CHUKAN-009). This module must never decide for a component; it only answers "is this
tuple on the list" and loads the list from its YAML.
"""

from __future__ import annotations

from functools import cached_property
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
    requester_ja: str = ""  # the 第一欄 body as the seed prints it, e.g. "都道府県知事又は市町村長"
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
    kinds: dict[str, ItemName] = Field(default_factory=dict)  # organisation kinds (第一欄/第三欄 bodies)
    businesses: dict[str, ItemName] = Field(default_factory=dict)  # requester businesses (第二欄 事務)

    def entries(self, row: str, table: str | None = None) -> tuple[PermissionRow, ...]:
        """Every entry of a row: one per requester kind. Row numbers of the two tables (beppyo_2, shumu_2) are
        unrelated, so a caller that knows the table should name it."""
        found = self._by_row.get(row, ())
        return found if table is None else tuple(e for e in found if e.table == table)

    @cached_property
    def _by_row(self) -> dict[str, tuple[PermissionRow, ...]]:
        index: dict[str, list[PermissionRow]] = {}
        for entry in self.rows:
            index.setdefault(entry.row, []).append(entry)
        return {row: tuple(entries) for row, entries in index.items()}

    def row(self, row: str, table: str | None = None) -> PermissionRow | None:
        found = self.entries(row, table)
        return found[0] if found else None

    def allows(
        self,
        *,
        row: str,
        requester_kind: str,
        requester_business: str,
        provider_kind: str,
        item: str,
        table: str | None = None,
    ) -> bool:
        return any(
            entry.requester_kind == requester_kind
            and entry.requester_business == requester_business
            and entry.provider_kind == provider_kind
            and item in entry.items
            for entry in self.entries(row, table)
        )

    def item_ja(self, item: str) -> str:
        return self.items[item].ja if item in self.items else item

    def without_row(self, row: str, version: str, table: str | None = None) -> PermissionList:
        """A new list version with one row removed (the list changes by distribution, NWS-002)."""
        kept = tuple(r for r in self.rows if not (r.row == row and (table is None or r.table == table)))
        # A fresh model, not model_copy: a copy would carry the old row index along.
        return PermissionList(
            version=version, rows=kept, items=self.items, kinds=self.kinds, businesses=self.businesses
        )


def load_permission_list(path: Path | None = None) -> PermissionList:
    if path is None:
        text = resources.files("scenarios").joinpath("data/permission_list.yaml").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    return PermissionList.model_validate(yaml.safe_load(text))
