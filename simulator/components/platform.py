"""中間サーバー・プラットフォーム operations on one tenant's store: DB-side backup and restore (PF-007), deletion
by the municipality only and erasure records at disk swaps (PF-008), and the 副本 export for reconciliation
with the 原本 (CHUKAN-006). Decisions are taken by the tenant's 中間サーバー (or, for the diff job, by the business
system that holds the 原本). It must never let the platform operator read or delete 特定個人情報, never put a 符号
in an export, and never write a backup to a target outside Japan.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simulator.components.base import Result
from simulator.components.business import BusinessSystem
from simulator.components.intermediate_server import IntermediateServer
from simulator.components.staff import StaffSession
from simulator.controls.decision import Outcome
from simulator.errors import RefusalCode

__all__ = ["ERASE_METHODS", "BackupTarget", "TenantPlatform", "reconcile_replica"]

#: Erasure that the PIAs accept at a hardware swap: crypto-erase or a dedicated erase tool.
ERASE_METHODS = frozenset({"crypto_erase", "erase_tool"})


@dataclass(frozen=True)
class BackupTarget:
    """Where a backup is written: a name, the country its storage sits in (ISO 3166 alpha-2), and the tier."""

    name: str
    country: str
    tier: str = "database"  # "database": the DB side of the platform DC; anything else is off the DB side


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TenantPlatform:
    """The platform functions over one tenant's 中間サーバー store. Holds no state of its own beyond its tables."""

    def __init__(self, server: IntermediateServer, backup_root: Path | None = None) -> None:
        self.server = server
        self.conn = server.conn
        self.tenant = server.tenant
        if backup_root is None:
            files = [Path(r[2]) for r in self.conn.execute("PRAGMA database_list") if r[1] == "main" and r[2]]
            backup_root = files[0].parent / "backups" if files else None
        self.backup_root = backup_root
        self.conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS platform_backups (
                tenant TEXT NOT NULL, backup_id TEXT NOT NULL, target TEXT NOT NULL, country TEXT NOT NULL,
                path TEXT NOT NULL, sha256 TEXT NOT NULL, replica_rows INTEGER NOT NULL, taken_at TEXT NOT NULL,
                taken_by TEXT NOT NULL, PRIMARY KEY (tenant, backup_id));
            CREATE TABLE IF NOT EXISTS platform_disk_swaps (
                tenant TEXT NOT NULL, disk_id TEXT NOT NULL, swapped_at TEXT NOT NULL, swapped_by TEXT NOT NULL,
                erase_method TEXT, erase_certificate TEXT, physically_destroyed INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (tenant, disk_id, swapped_at));
            """
        )

    # -- PF-007: DB-side backup --------------------------------------------------------------------------------

    def backup(self, session: StaffSession, target: BackupTarget, now: datetime) -> Result:
        """Back the tenant's store up with SQLite's online backup API, to a target the data-location policy allows.

        The operator runs it as an infrastructure job: the copy holds only ciphertext and wrapped keys."""
        server = self.server

        def check(result: Result) -> None:
            server._require_login(session)
            server.staff.require(session, "platform_operator", "PF-007", "バックアップ取得", "take a backup")
            if target.country.upper() != "JP" or target.tier != "database":
                raise server.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED,
                    "PF-007",
                    f"バックアップ先 {target.name}（所在: {target.country}、区分: {target.tier}）は保管場所の方針に反します"
                    "（特定個人情報はバックアップも国内のデータセンターのデータベース上に保管します）",
                    f"backup target {target.name} ({target.country}, {target.tier}) breaks the data-location policy:"
                    " backups stay on the database side of the platform's data centre in Japan",
                    field="target.country" if target.country.upper() != "JP" else "target.tier",
                )
            if self.backup_root is None:
                raise server.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "PF-007",
                    "この区画のデータベースはファイルではないためバックアップできません",
                    "the tenant's store is not a file database; nothing to back up to",
                    field="store",
                )

        def act(result: Result) -> None:
            backup_id, path = copied
            rows = self.conn.execute("SELECT COUNT(*) FROM chukan_replicas WHERE tenant = ?", (self.tenant,)).fetchone()
            self.conn.execute(
                "INSERT INTO platform_backups (tenant, backup_id, target, country, path, sha256, replica_rows, taken_at,"
                " taken_by) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    self.tenant,
                    backup_id,
                    target.name,
                    target.country.upper(),
                    str(path),
                    _sha256(path),
                    int(rows[0]),
                    now.isoformat(),
                    session.user_id,
                ),
            )
            server._operation(session, now, "platform.backup", backup_id=backup_id, target=target.name)
            server.allow(
                result,
                "PF-007",
                now,
                f"国内のデータベース側（{target.name}）にバックアップを取得しました（副本 {rows[0]} 行、暗号化のまま）",
                f"backed up to the database side in Japan ({target.name}); {rows[0]} replica rows, still encrypted",
                None,
                backup_id=backup_id,
                target=target.name,
                country=target.country.upper(),
                replica_rows=int(rows[0]),
            )
            result.value = backup_id

        checked = server.command(now, None, check)
        if checked.refusal is not None:
            return checked
        # SQLite's backup API cannot copy from a connection inside a write transaction: copy between commands.
        assert self.backup_root is not None
        backup_id = uuid.uuid4().hex[:12]
        folder = self.backup_root / target.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.tenant}-{backup_id}.sqlite"
        dest = sqlite3.connect(path)
        try:
            self.conn.backup(dest)
        finally:
            dest.close()
        copied = (backup_id, path)
        return server.command(now, None, act)

    def _restored_rows(self, restored: sqlite3.Connection) -> dict[tuple[str, str], dict[str, Any]]:
        """Decrypt every 副本 row of the restored copy with the tenant's KEK: a restore proves nothing unless the
        rows open."""
        keys: dict[int, AESGCM] = {}
        kek = self.server._kek
        for version, nonce, wrapped in restored.execute(
            "SELECT version, nonce, wrapped FROM chukan_data_keys WHERE tenant = ?", (self.tenant,)
        ):
            keys[int(version)] = AESGCM(kek.decrypt(nonce, wrapped, f"{self.tenant}|dek|{version}".encode()))
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for atena_number, item, nonce, ciphertext, version in restored.execute(
            "SELECT atena_number, item, nonce, ciphertext, key_version FROM chukan_replicas WHERE tenant = ?",
            (self.tenant,),
        ):
            plain = keys[int(version)].decrypt(nonce, ciphertext, self.server._aad(atena_number, item))
            rows[(str(atena_number), str(item))] = json.loads(plain)
        return rows

    def restore(self, session: StaffSession, backup_id: str, now: datetime) -> Result:
        """Restore a backup into a restore database (the live store stays untouched) and prove it reproduces the
        tenant's 副本: the file matches its recorded digest and every row decrypts to the live value."""
        server = self.server

        def act(result: Result) -> None:
            server._require_login(session)
            server.staff.require(session, "platform_operator", "PF-007", "バックアップからの復元", "restore a backup")
            row = self.conn.execute(
                "SELECT path, sha256 FROM platform_backups WHERE tenant = ? AND backup_id = ?", (self.tenant, backup_id)
            ).fetchone()
            if row is None:
                raise server.refuse(
                    RefusalCode.NOT_FOUND, "PF-007", "該当するバックアップはありません", "no such backup", "backup_id"
                )
            source = Path(row[0])
            if not source.exists() or _sha256(source) != row[1]:
                raise server.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "PF-007",
                    "バックアップファイルが取得時の内容と一致しません（改変または欠損）",
                    "the backup file does not match the digest recorded when it was taken",
                    "backup_id",
                )
            target = source.with_name(f"{source.stem}-restored-{uuid.uuid4().hex[:6]}.sqlite")
            src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
            restored = sqlite3.connect(target)
            try:
                src.backup(restored)
                try:
                    rows = self._restored_rows(restored)
                except (InvalidTag, KeyError):
                    rows = None
            finally:
                src.close()
                restored.close()
            if rows is None:
                raise server.refuse(
                    RefusalCode.DECRYPTION_FAILED,
                    "PF-007",
                    "復元した副本を団体の鍵で復号できません",
                    "the restored replica rows do not decrypt under the tenant's keys",
                    "backup_id",
                )
            live = {
                (str(a), str(i)): server._read_replica(str(a), str(i))
                for a, i in self.conn.execute(
                    "SELECT atena_number, item FROM chukan_replicas WHERE tenant = ?", (self.tenant,)
                )
            }
            differing = sorted(
                f"{a}/{i}" for (a, i), value in rows.items() if (found := live.get((a, i))) is None or found[0] != value
            )
            if differing or len(rows) != len(live):
                raise server.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "PF-007",
                    f"復元した副本が現行の副本と一致しません（{len(differing)} 行相違、行数 {len(rows)}/{len(live)}）",
                    f"the restored replica differs from the tenant's ({len(differing)} rows; {len(rows)}/{len(live)})",
                    "backup_id",
                )
            server._operation(session, now, "platform.restore", backup_id=backup_id)
            server.allow(
                result,
                "PF-007",
                now,
                f"データベース側のバックアップから復元し、副本 {len(rows)} 行すべてを復号して現行と一致を確認しました",
                f"restored from the database-side backup; all {len(rows)} replica rows decrypt and match the tenant's",
                None,
                backup_id=backup_id,
                rows_decrypted=len(rows),
                restored_to=target.name,
            )
            result.value = {"rows": len(rows), "restored_to": str(target)}

        return server.command(now, None, act)

    # -- PF-008: deletion and erasure ---------------------------------------------------------------------------

    def delete_person(self, session: StaffSession, atena_number: str, now: datetime) -> Result:
        """Delete a person's 副本 rows: a municipality operation only; the platform operator never deletes."""
        server = self.server

        def act(result: Result) -> None:
            server._require_login(session)
            if "platform_operator" in session.roles:
                raise server.refuse(
                    RefusalCode.ROLE_MISSING,
                    "PF-008",
                    "特定個人情報の消去は地方公共団体からの操作によってのみ行います（運用事業者は消去できません）",
                    "only the municipality's own operations delete its data; the platform operator cannot",
                    field="role",
                )
            server.staff.require(session, "replica_viewer", "PF-008", "副本の消去", "delete replica rows")
            deleted = self.conn.execute(
                "DELETE FROM chukan_replicas WHERE tenant = ? AND atena_number = ?", (self.tenant, atena_number)
            ).rowcount
            if deleted == 0:
                raise server.refuse(
                    RefusalCode.NOT_FOUND,
                    "PF-008",
                    "消去する副本はありません",
                    "no replica rows to delete",
                    "atena_number",
                )
            server._operation(session, now, "replica.delete", atena_number=atena_number, rows=deleted)
            server.allow(
                result,
                "PF-008",
                now,
                f"団体の職員の操作で副本 {deleted} 行を消去しました",
                f"the municipality's staff deleted {deleted} replica rows",
                None,
                user=session.user_id,
                rows=deleted,
            )
            result.value = deleted

        return server.command(now, None, act)

    def swap_disk(self, session: StaffSession, disk_id: str, erase: dict[str, Any] | None, now: datetime) -> Result:
        """Record a disk swap; with an erase record (method, certificate) it is complete, without one the swap
        still happened and is recorded as such, for the audit to find."""
        server = self.server

        def act(result: Result) -> None:
            server._require_login(session)
            server.staff.require(session, "platform_operator", "PF-008", "機器の交換", "swap a disk")
            method = certificate = None
            destroyed = False
            if erase is not None:
                method, certificate = str(erase.get("method", "")), str(erase.get("certificate", ""))
                destroyed = bool(erase.get("physically_destroyed", False))
                if method not in ERASE_METHODS or not certificate:
                    raise server.refuse(
                        RefusalCode.FIELD_INVALID,
                        "PF-008",
                        f"消去記録には方法（{', '.join(sorted(ERASE_METHODS))}）と消去証明書が必要です",
                        f"an erase record needs a method ({', '.join(sorted(ERASE_METHODS))}) and a certificate",
                        field="erase",
                    )
            self.conn.execute(
                "INSERT INTO platform_disk_swaps (tenant, disk_id, swapped_at, swapped_by, erase_method,"
                " erase_certificate, physically_destroyed) VALUES (?,?,?,?,?,?,?)",
                (self.tenant, disk_id, now.isoformat(), session.user_id, method, certificate, int(destroyed)),
            )
            server._operation(session, now, "platform.disk_swap", disk_id=disk_id, erase_method=method)
            if method is not None:
                server.allow(
                    result,
                    "PF-008",
                    now,
                    f"ディスク {disk_id} の交換を消去記録（{method}、証明書 {certificate}）とともに記録しました",
                    f"recorded the swap of disk {disk_id} with its erase record ({method}, certificate {certificate})",
                    None,
                    disk_id=disk_id,
                    erase_method=method,
                    certificate=certificate,
                    physically_destroyed=destroyed,
                )

        return server.command(now, None, act)

    def audit_disk_swaps(self, now: datetime) -> Result:
        """The platform audit: every disk swap must carry an erase record."""
        server = self.server

        def act(result: Result) -> None:
            swaps = self.conn.execute(
                "SELECT disk_id, swapped_at, erase_method FROM platform_disk_swaps WHERE tenant = ? ORDER BY swapped_at",
                (self.tenant,),
            ).fetchall()
            missing = [f"{d}@{at}" for d, at, method in swaps if not method]
            if missing:
                raise server.refuse(
                    RefusalCode.LOG_INCOMPLETE,
                    "PF-008",
                    f"消去記録のない機器交換があります: {', '.join(missing)}",
                    f"disk swaps without an erase record: {', '.join(missing)}",
                    field="erase",
                )
            server.allow(
                result,
                "PF-008",
                now,
                f"機器交換 {len(swaps)} 件すべてに消去記録があります",
                f"all {len(swaps)} disk swaps carry an erase record",
                None,
                swaps=len(swaps),
            )
            result.value = len(swaps)

        return server.command(now, None, act)

    # -- CHUKAN-006: export for reconciliation ------------------------------------------------------------------

    def export_replica(self, session: StaffSession, item: str, now: datetime) -> Result:
        """Export the tenant's 副本 rows of one item, keyed by 団体内統合宛名番号 and never by 符号."""
        server = self.server

        def act(result: Result) -> None:
            server._require_login(session)
            server._no_platform_operator(session, "CHUKAN-006", "副本の照合用エクスポート", "export the replica")
            server.staff.require(session, "replica_viewer", "CHUKAN-006", "副本の照合用エクスポート", "export")
            rows = []
            for atena_number, updated_at in self.conn.execute(
                "SELECT atena_number, updated_at FROM chukan_replicas WHERE tenant = ? AND item = ?"
                " ORDER BY atena_number",
                (self.tenant, item),
            ).fetchall():
                found = server._read_replica(str(atena_number), item)
                if found is not None:
                    rows.append(
                        {"atena_number": atena_number, "item": item, "record": found[0], "updated_at": updated_at}
                    )
            text = json.dumps(rows, ensure_ascii=False)
            codes = {
                str(c)
                for (c,) in self.conn.execute(
                    "SELECT linkage_code FROM chukan_linkage_codes WHERE tenant = ? AND linkage_code IS NOT NULL",
                    (self.tenant,),
                )
            }
            if any(code in text for code in codes):
                raise server.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED,
                    "CHUKAN-001",
                    "エクスポートに符号が含まれるため出力しません",
                    "the export would carry a linkage code; it is not written",
                    field="linkage_code",
                )
            server._operation(session, now, "replica.export", item=item, rows=len(rows))
            server.allow(
                result,
                "CHUKAN-006",
                now,
                f"原本照合用に副本 {len(rows)} 行をエクスポートしました（符号は含みません）",
                f"exported {len(rows)} replica rows for reconciliation (no linkage codes)",
                None,
                item=item,
                rows=len(rows),
                linkage_codes_checked=len(codes),
            )
            result.value = {
                "tenant": self.tenant,
                "item": item,
                "exported_at": now.isoformat(),
                "rows": rows,
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
            }

        return server.command(now, None, act)


def reconcile_replica(business: BusinessSystem, export: dict[str, Any], now: datetime) -> Result:
    """The city-side diff job: the 副本 export against the business system's 原本, mapped through the 宛名
    system's links to 団体内統合宛名番号. Every value mismatch, missing and surplus row is reported."""

    def act(result: Result) -> None:
        item = str(export["item"])
        if business.replica_item != item:
            raise business.refuse(
                RefusalCode.FIELD_INVALID,
                "CHUKAN-006",
                f"この業務システムの原本は {business.replica_item} です（エクスポートは {item}）",
                f"this system's originals are {business.replica_item}; the export is {item}",
                field="item",
            )
        originals: dict[str, dict[str, Any]] = {}
        for number, record in business.conn.execute(
            f"SELECT business_atena_number, record FROM {business.table}_records"
        ):
            link = business.conn.execute(
                "SELECT atena_number FROM atena_business_links WHERE business = ? AND business_atena_number = ?",
                (business.business, number),
            ).fetchone()
            if link is not None:
                originals[str(link[0])] = json.loads(record)
        replica = {str(r["atena_number"]): r["record"] for r in export["rows"]}
        findings: list[dict[str, Any]] = []
        for atena_number, original in sorted(originals.items()):
            if atena_number not in replica:
                findings.append({"atena_number": atena_number, "kind": "missing_in_replica"})
            elif replica[atena_number] != original:
                fields = sorted(
                    k
                    for k in set(original) | set(replica[atena_number])
                    if original.get(k) != replica[atena_number].get(k)
                )
                findings.append({"atena_number": atena_number, "kind": "value_mismatch", "fields": fields})
        findings.extend({"atena_number": a, "kind": "no_original"} for a in sorted(set(replica) - set(originals)))
        business.audit.append(
            at=now.isoformat(),
            kind="replica.reconciliation",
            correlation_id=None,
            data={"item": item, "originals": len(originals), "replica_rows": len(replica), "findings": findings},
        )
        evidence = {"item": item, "originals": len(originals), "replica_rows": len(replica), "findings": findings}
        if findings:
            result.decisions.append(
                business.decide(
                    "CHUKAN-006",
                    Outcome.DENY,
                    now,
                    reason_ja=f"副本と原本の照合で不一致 {len(findings)} 件を検出しました",
                    reason_en=f"reconciling the replica with the originals found {len(findings)} mismatches",
                    evidence=evidence,
                    code=str(RefusalCode.STATE_CONFLICT),
                )
            )
        else:
            business.allow(
                result,
                "CHUKAN-006",
                now,
                f"副本と原本を照合し、{len(originals)} 件すべて一致しました（不一致 0 件）",
                f"reconciled the replica with the originals: all {len(originals)} match, zero mismatches",
                None,
                **evidence,
            )
        result.value = findings

    return business.command(now, None, act)
