"""中間サーバー・プラットフォーム operations on one tenant's store: the UTM in front of it and its log analysis
(PF-005), the hosts' anti-malware patterns and patches (PF-006), DB-side backup and restore (PF-007), deletion
by the municipality only and erasure records at disk swaps (PF-008), and the 副本 export for reconciliation
with the 原本 (CHUKAN-006). Decisions are taken by the tenant's 中間サーバー (or, for the diff job, by the business
system that holds the 原本). It must never let the platform operator read or delete 特定個人情報, never put a 符号
in an export, and never write a backup to a target outside Japan.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
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

__all__ = [
    "ERASE_METHODS",
    "INTRUSION_SIGNATURES",
    "BackupTarget",
    "TenantPlatform",
    "reconcile_replica",
]

#: PF-005: the platform's only service port toward its peers (HTTPS over LGWAN); anything else is dropped.
UTM_SERVICE_PORTS = frozenset({443})
#: PF-005: distinct ports one source may touch within the window before it is treated as a port scan.
PORT_SCAN_PORTS = 10
PORT_SCAN_WINDOW = timedelta(minutes=1)
#: PF-005: the UTM's intrusion-prevention signatures (a representative set of well-known exploit patterns).
INTRUSION_SIGNATURES = {
    "sql_injection": re.compile(r"(?i)'\s*or\s+'?1'?\s*=\s*'?1|union\s+select"),
    "path_traversal": re.compile(r"\.\./\.\./"),
    "jndi_lookup": re.compile(r"(?i)\$\{jndi:"),
    "shellshock": re.compile(r"\(\)\s*\{\s*:;\s*\}"),
}
#: PF-006 policy: pattern files at most a day old; a released patch applied within two weeks.
PATTERN_MAX_AGE = timedelta(days=1)
PATCH_GRACE = timedelta(days=14)
PATCHED_LAYERS = frozenset({"os", "middleware"})

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
            CREATE TABLE IF NOT EXISTS platform_utm_log (
                tenant TEXT NOT NULL, at TEXT NOT NULL, source TEXT NOT NULL, network TEXT NOT NULL,
                port INTEGER NOT NULL, verdict TEXT NOT NULL, rule TEXT NOT NULL, detail TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS platform_utm_alerts (
                tenant TEXT NOT NULL, at TEXT NOT NULL, source TEXT NOT NULL, rule TEXT NOT NULL, detail TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS platform_utm_analyses (
                tenant TEXT NOT NULL, until TEXT NOT NULL, lines INTEGER NOT NULL, alerts INTEGER NOT NULL,
                summary TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS platform_hosts (
                tenant TEXT NOT NULL, host TEXT NOT NULL, pattern_at TEXT NOT NULL, patches TEXT NOT NULL,
                reported_at TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('in_service', 'quarantined')),
                PRIMARY KEY (tenant, host));
            CREATE TABLE IF NOT EXISTS platform_patches (
                tenant TEXT NOT NULL, layer TEXT NOT NULL, level INTEGER NOT NULL, released_at TEXT NOT NULL,
                PRIMARY KEY (tenant, layer, level));
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

    # -- PF-005: the UTM in front of the platform -----------------------------------------------------------------

    def _utm_log(
        self, now: datetime, source: str, network: str, port: int, verdict: str, rule: str, detail: str
    ) -> None:
        self.conn.execute(
            "INSERT INTO platform_utm_log (tenant, at, source, network, port, verdict, rule, detail)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (self.tenant, now.isoformat(), source, network, port, verdict, rule, detail),
        )

    def utm_screen(self, source: str, network: str, port: int, payload: str, now: datetime) -> Result:
        """One connection through the UTM toward the tenant's 中間サーバー. Every connection leaves a log line;
        a blocked one is a deny (and, for a scan, an alert) that is committed, not rolled back: the block is the
        UTM working, and its log is what the analysis job reads."""
        server = self.server

        def act(result: Result) -> None:
            since = (now - PORT_SCAN_WINDOW).isoformat()
            probed = {
                int(p)
                for (p,) in self.conn.execute(
                    "SELECT port FROM platform_utm_log WHERE tenant = ? AND source = ? AND at >= ?",
                    (self.tenant, source, since),
                )
            } | {port}
            peer_network = server.directory.network_between(source, server.party)
            block: tuple[str, RefusalCode, str, str, str] | None = None
            if len(probed) >= PORT_SCAN_PORTS:
                block = (
                    "port_scan",
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "source",
                    f"{source} から {PORT_SCAN_WINDOW.total_seconds():.0f} 秒間に {len(probed)} ポートへの接続を検知しました"
                    "（ポートスキャン）。遮断し、警報を上げます",
                    f"{source} probed {len(probed)} ports within {PORT_SCAN_WINDOW}: a port scan, blocked and alerted",
                )
            elif peer_network is None or peer_network != network or port not in UTM_SERVICE_PORTS:
                block = (
                    "not_allowed",
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "source" if peer_network is None else ("network" if peer_network != network else "port"),
                    f"許可リストにない通信です（{source}、{network}、ポート {port}）。破棄しました",
                    f"traffic not on the allow-list ({source} over {network} to port {port}) was dropped",
                )
            else:
                for name, pattern in INTRUSION_SIGNATURES.items():
                    if pattern.search(payload):
                        block = (
                            name,
                            RefusalCode.FIELD_NOT_ALLOWED,
                            "payload",
                            f"既知の攻撃パターン（{name}）に一致したため遮断しました（侵入防止）",
                            f"the payload matches the known intrusion signature {name!r}; blocked",
                        )
                        break
            if block is None:
                self._utm_log(now, source, network, port, "pass", "allow_list", "")
                server.allow(
                    result,
                    "PF-005",
                    now,
                    f"許可リストの通信（{source}、{network}、ポート {port}）を通過させ、ログに記録しました",
                    f"allowed traffic ({source} over {network} to port {port}) passed and was logged",
                    None,
                    source=source,
                    network=network,
                    port=port,
                )
                result.value = "pass"
                return
            rule, code, field_name, reason_ja, reason_en = block
            self._utm_log(now, source, network, port, "block", rule, reason_en)
            if rule == "port_scan":
                self.conn.execute(
                    "INSERT INTO platform_utm_alerts (tenant, at, source, rule, detail) VALUES (?,?,?,?,?)",
                    (self.tenant, now.isoformat(), source, rule, json.dumps(sorted(probed))),
                )
            result.decisions.append(
                server.decide(
                    "PF-005",
                    Outcome.DENY,
                    now,
                    reason_ja=reason_ja,
                    reason_en=reason_en,
                    evidence={"source": source, "network": network, "port": port, "rule": rule},
                    code=str(code),
                )
            )
            result.refusal = server.refuse(code, "PF-005", reason_ja, reason_en, field=field_name)
            result.value = "block"

        return server.command(now, None, act)

    def utm_analyse(self, session: StaffSession, now: datetime) -> Result:
        """The log-analysis job: read the UTM log since the last analysis and report what was blocked and alerted."""
        server = self.server

        def act(result: Result) -> None:
            server._require_login(session)
            server.staff.require(session, "platform_operator", "PF-005", "UTMログの解析", "analyse the UTM log")
            last = self.conn.execute(
                "SELECT MAX(until) FROM platform_utm_analyses WHERE tenant = ?", (self.tenant,)
            ).fetchone()[0]
            rows = self.conn.execute(
                "SELECT verdict, rule, source FROM platform_utm_log WHERE tenant = ? AND at > ?",
                (self.tenant, last or ""),
            ).fetchall()
            alerts = self.conn.execute(
                "SELECT COUNT(*) FROM platform_utm_alerts WHERE tenant = ? AND at > ?", (self.tenant, last or "")
            ).fetchone()[0]
            by_rule: dict[str, int] = {}
            for verdict, rule, _ in rows:
                by_rule[f"{verdict}:{rule}"] = by_rule.get(f"{verdict}:{rule}", 0) + 1
            blocked_sources = sorted({s for v, _, s in rows if v == "block"})
            self.conn.execute(
                "INSERT INTO platform_utm_analyses (tenant, until, lines, alerts, summary) VALUES (?,?,?,?,?)",
                (self.tenant, now.isoformat(), len(rows), int(alerts), json.dumps(by_rule, sort_keys=True)),
            )
            server._operation(session, now, "platform.utm_analysis", lines=len(rows), alerts=int(alerts))
            server.allow(
                result,
                "PF-005",
                now,
                f"UTMログ {len(rows)} 行を解析しました（遮断 {sum(1 for r in rows if r[0] == 'block')} 件、警報 {alerts} 件）",
                f"analysed {len(rows)} UTM log lines ({sum(1 for r in rows if r[0] == 'block')} blocked, {alerts} alerts)",
                None,
                lines=len(rows),
                alerts=int(alerts),
                by_rule=by_rule,
                blocked_sources=blocked_sources,
            )
            result.value = {"lines": len(rows), "alerts": int(alerts), "by_rule": by_rule}

        return server.command(now, None, act)

    # -- PF-006: anti-malware patterns and patches on the platform's hosts ---------------------------------------

    def host_report(
        self,
        session: StaffSession,
        host: str,
        pattern_at: datetime,
        patches: dict[str, int],
        now: datetime,
    ) -> Result:
        """A host's agent reports its anti-malware pattern date and OS/middleware patch levels (the inventory)."""
        server = self.server

        def act(result: Result) -> None:
            server._require_login(session)
            server.staff.require(
                session, "platform_operator", "PF-006", "ホスト台帳の更新", "update the host inventory"
            )
            unknown = sorted(set(patches) - PATCHED_LAYERS)
            if not host or unknown:
                raise server.refuse(
                    RefusalCode.FIELD_INVALID,
                    "PF-006",
                    f"ホスト名と、{'・'.join(sorted(PATCHED_LAYERS))} のパッチ水準で報告してください",
                    f"a host report names the host and patch levels of {', '.join(sorted(PATCHED_LAYERS))} only",
                    field="patches" if unknown else "host",
                )
            self.conn.execute(
                "INSERT INTO platform_hosts (tenant, host, pattern_at, patches, reported_at, state) VALUES (?,?,?,?,?,"
                "'in_service') ON CONFLICT(tenant, host) DO UPDATE SET pattern_at = excluded.pattern_at,"
                " patches = excluded.patches, reported_at = excluded.reported_at",
                (self.tenant, host, pattern_at.isoformat(), json.dumps(patches, sort_keys=True), now.isoformat()),
            )
            server._operation(session, now, "platform.host_report", host=host)
            result.value = host

        return server.command(now, None, act)

    def release_patch(self, session: StaffSession, layer: str, level: int, now: datetime) -> Result:
        """A vendor patch released for a layer (os, middleware): hosts must reach it within the grace period."""
        server = self.server

        def act(result: Result) -> None:
            server._require_login(session)
            server.staff.require(session, "platform_operator", "PF-006", "パッチ情報の登録", "register a patch")
            if layer not in PATCHED_LAYERS:
                raise server.refuse(
                    RefusalCode.FIELD_INVALID,
                    "PF-006",
                    f"パッチの対象は {'・'.join(sorted(PATCHED_LAYERS))} のいずれかです",
                    f"a patch is for one of {', '.join(sorted(PATCHED_LAYERS))}",
                    field="layer",
                )
            self.conn.execute(
                "INSERT OR REPLACE INTO platform_patches (tenant, layer, level, released_at) VALUES (?,?,?,?)",
                (self.tenant, layer, level, now.isoformat()),
            )
            server._operation(session, now, "platform.patch_released", layer=layer, level=level)
            result.value = level

        return server.command(now, None, act)

    def compliance_check(self, session: StaffSession, now: datetime, *, quarantine: bool = False) -> Result:
        """The compliance job over the host inventory: a host whose pattern file is older than the policy, or that
        lacks a patch released more than the grace period ago, is flagged (and, by option, quarantined)."""
        server = self.server

        def act(result: Result) -> None:
            server._require_login(session)
            server.staff.require(session, "platform_operator", "PF-006", "ホストの適合性確認", "check host compliance")
            hosts = self.conn.execute(
                "SELECT host, pattern_at, patches FROM platform_hosts WHERE tenant = ? AND state = 'in_service'"
                " ORDER BY host",
                (self.tenant,),
            ).fetchall()
            if not hosts:
                raise server.refuse(
                    RefusalCode.NOT_FOUND,
                    "PF-006",
                    "ホスト台帳が空です。適合性を確認できません",
                    "the host inventory is empty; compliance cannot be shown",
                    field="hosts",
                )
            due = {
                str(layer): int(level)
                for layer, level in self.conn.execute(
                    "SELECT layer, MAX(level) FROM platform_patches WHERE tenant = ? AND released_at <= ? GROUP BY layer",
                    (self.tenant, (now - PATCH_GRACE).isoformat()),
                )
            }
            flagged: list[dict[str, Any]] = []
            for host, pattern_at, patches_json in hosts:
                patches = json.loads(patches_json)
                problems = []
                age = now - datetime.fromisoformat(pattern_at)
                if age > PATTERN_MAX_AGE:
                    problems.append(f"pattern {age.days}d old")
                problems.extend(
                    f"{layer} {patches.get(layer, 0)} < {level}"
                    for layer, level in sorted(due.items())
                    if int(patches.get(layer, 0)) < level
                )
                if problems:
                    flagged.append({"host": host, "problems": problems})
            if quarantine:
                self.conn.executemany(
                    "UPDATE platform_hosts SET state = 'quarantined' WHERE tenant = ? AND host = ?",
                    [(self.tenant, f["host"]) for f in flagged],
                )
            server._operation(session, now, "platform.compliance", hosts=len(hosts), flagged=len(flagged))
            result.value = flagged
            if flagged:
                names = ", ".join(f["host"] for f in flagged)
                result.decisions.append(
                    server.decide(
                        "PF-006",
                        Outcome.DENY,
                        now,
                        reason_ja=f"ウイルス対策パターンまたはパッチが方針より古いホストがあります: {names}"
                        + ("（隔離しました）" if quarantine else ""),
                        reason_en=f"hosts with a pattern file or patch level older than the policy: {names}"
                        + (" (quarantined)" if quarantine else ""),
                        evidence={"flagged": flagged, "hosts": len(hosts), "quarantined": quarantine},
                        code=str(RefusalCode.STATE_CONFLICT),
                    )
                )
                return
            server.allow(
                result,
                "PF-006",
                now,
                f"全ホスト {len(hosts)} 台のウイルス対策パターンとパッチが最新です",
                f"all {len(hosts)} hosts run current anti-malware patterns and patches",
                None,
                hosts=len(hosts),
                patches_due=due,
            )

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
