"""ガバメントクラウド, the 基幹系ファイルサーバ in the operator's DC, and the J-LIS クラウド型バックアップセンター.

Domestic sites with the backup apart from production (CLOUD-001); no provider or state reads, no internet route,
alerts on repeated denials (CLOUD-002); the network operator kept out of the 特定個人情報 area (CLOUD-003); backups
over IP-VPN, sealed, stored encrypted (CLOUD-004). It must never store a backup in clear or data abroad.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simulator.components.base import Component, Directory, Link, Result
from simulator.components.city_service import CityService, require_network, sealed_payload
from simulator.components.eapp_saas_cloud import BackupCenterRules, FileServerRules, GovCloudRules
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode
from simulator.model.envelope import Envelope, MessageType

__all__ = ["BackupCenter", "BackupClient", "FileServer", "GovCloud"]

BACKUP_CENTER = "jlis.backup_center"
OUTSIDE_ROLES = ("provider", "state")  # the cloud provider's and the state's staff: never tenant data (CLOUD-002)


class GovCloud(Component):
    """One municipality's tenant on the ガバメントクラウド: sites, backup placement, access and monitoring."""

    name_ja = "ガバメントクラウド（団体の環境）"
    name_en = "government cloud tenant"

    def __init__(
        self, party: str, conn: Any, security: MessageSecurity, directory: Directory, *, rules: GovCloudRules
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.rules = rules
        conn.executescript(
            """CREATE TABLE IF NOT EXISTS cloud_sites (site TEXT PRIMARY KEY, purpose TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS cloud_access_log (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, principal TEXT NOT NULL,
                role TEXT NOT NULL, network TEXT NOT NULL, allowed INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS cloud_alerts (principal TEXT PRIMARY KEY, at TEXT NOT NULL, denials INTEGER);"""
        )
        if conn.execute("SELECT COUNT(*) FROM cloud_sites").fetchone()[0] == 0:
            backup = next(
                s for s, c in sorted(rules.sites.items()) if c == rules.residency and s != rules.production_site
            )
            with conn:
                conn.executemany(
                    "INSERT INTO cloud_sites (site, purpose) VALUES (?, ?)",
                    [(rules.production_site, "production"), (backup, "backup")],
                )

    def sites(self) -> dict[str, str]:
        return {str(r[0]): str(r[1]) for r in self.conn.execute("SELECT site, purpose FROM cloud_sites")}

    def _domestic(self, site: str, what_ja: str, what_en: str) -> None:
        country = self.rules.sites.get(site)
        if country != self.rules.residency:
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                "CLOUD-001",
                f"{what_ja}は国内（{self.rules.residency}）のデータセンターに置きます（{site}: {country}）",
                f"{what_en} must be in a {self.rules.residency} data centre; {site} is {country}",
                field="site",
            )

    def configuration_check(self, now: datetime) -> Result:
        """The configuration a reviewer reads: residency, certification, backup apart from production."""

        def act(result: Result) -> None:
            sites = self.sites()
            for site in sites:
                self._domestic(site, "データ", "data")
            backups = [s for s, p in sites.items() if p == "backup"]
            if not backups or self.rules.production_site in backups:
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "CLOUD-001",
                    "バックアップが本番環境と別のデータセンターにありません",
                    "no backup in a data centre other than production",
                    field="backup_site",
                )
            self.allow(
                result,
                "CLOUD-001",
                now,
                "データは国内、バックアップは本番と別の国内データセンターにあります",
                "data resides in Japan and the backup sits in another domestic centre",
                None,
                residency=self.rules.residency,
                production=self.rules.production_site,
                backup=backups,
                certifications=list(self.rules.certifications),
            )

        return self.command(now, None, act)

    def configure_backup(self, site: str, now: datetime) -> Result:
        def act(result: Result) -> None:
            if site == self.rules.production_site:
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "CLOUD-001",
                    "バックアップを本番環境と同じデータセンターに置くことはできません",
                    "a backup may not be placed in the production data centre",
                    field="site",
                )
            self._domestic(site, "バックアップ", "the backup")
            self.conn.execute("DELETE FROM cloud_sites WHERE purpose = 'backup'")
            self.conn.execute("INSERT OR REPLACE INTO cloud_sites (site, purpose) VALUES (?, 'backup')", (site,))
            self.allow(
                result,
                "CLOUD-001",
                now,
                f"バックアップ先を国内の別センター（{site}）に設定しました",
                f"the backup now goes to another domestic centre ({site})",
                None,
                site=site,
            )

        return self.command(now, None, act)

    def add_replica(self, site: str, now: datetime) -> Result:
        def act(result: Result) -> None:
            self._domestic(site, "複製", "a replica")
            self.conn.execute("INSERT OR IGNORE INTO cloud_sites (site, purpose) VALUES (?, 'replica')", (site,))
            self.allow(
                result,
                "CLOUD-001",
                now,
                f"国内のデータセンター（{site}）に複製を置きました",
                f"placed a replica in the domestic centre {site}",
                None,
                site=site,
            )

        return self.command(now, None, act)

    def access(self, principal: str, role: str, network: str, now: datetime) -> Result:
        """Someone reads tenant data: only the municipality's own staff, only over the closed network."""

        def act(result: Result) -> None:
            if self.rules.isolation is None:
                return
            refusal = None
            if role in OUTSIDE_ROLES:
                refusal = self.refuse(
                    RefusalCode.TENANT_MISMATCH,
                    "CLOUD-002",
                    "国およびクラウド事業者は団体のデータにアクセスできません",
                    "neither the state nor the cloud provider may access the tenant's data",
                    field="role",
                )
            elif network != "closed":
                refusal = self.refuse(
                    RefusalCode.NO_ROUTE,
                    "CLOUD-002",
                    "特定個人情報の環境はインターネットから切り離された閉域網です（経路なし）",
                    "the environment is a closed network: there is no route from the internet",
                    field="network",
                )
            self.conn.execute(
                "INSERT INTO cloud_access_log (at, principal, role, network, allowed) VALUES (?,?,?,?,?)",
                (now.isoformat(), principal, role, network, int(refusal is None)),
            )
            if refusal is not None:
                raise refusal
            self.allow(
                result,
                "CLOUD-002",
                now,
                "団体の職員が閉域網から自団体のデータにアクセスしました",
                "the tenant's own staff read its data over the closed network",
                None,
                principal=principal,
            )

        result = self.command(now, None, act)
        if result.refusal is not None:
            # The access log row was rolled back with the refusal; the monitor must still see the attempt.
            with self.conn:
                self.conn.execute(
                    "INSERT INTO cloud_access_log (at, principal, role, network, allowed) VALUES (?,?,?,?,0)",
                    (now.isoformat(), principal, role, network),
                )
        return result

    def monitor(self, now: datetime) -> Result:
        """Continuous monitoring: an account with repeated denied accesses raises an alert."""

        def act(result: Result) -> None:
            rows = self.conn.execute(
                "SELECT principal, COUNT(*) FROM cloud_access_log WHERE allowed = 0 GROUP BY principal"
                " HAVING COUNT(*) >= ?",
                (self.rules.alert_after_denials,),
            ).fetchall()
            for principal, count in rows:
                self.conn.execute(
                    "INSERT OR REPLACE INTO cloud_alerts (principal, at, denials) VALUES (?,?,?)",
                    (principal, now.isoformat(), count),
                )
                self.allow(
                    result,
                    "CLOUD-002",
                    now,
                    f"異常なアカウント（{principal}）を検知し警報を出しました",
                    f"monitoring raised an alert on the anomalous account {principal}",
                    None,
                    principal=principal,
                    denials=count,
                )
            result.value = [str(r[0]) for r in rows]

        return self.command(now, None, act)


class FileServer(Component):
    """基幹系ファイルサーバ in the network operator's data centre."""

    name_ja = "基幹系ファイルサーバ"
    name_en = "core file server"

    def __init__(
        self,
        party: str,
        conn: Any,
        security: MessageSecurity,
        directory: Directory,
        *,
        rules: FileServerRules,
        staff: StaffDirectory,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.rules = rules
        self.staff = staff

    def mount(self, session: StaffSession, share: str, now: datetime) -> Result:
        def act(result: Result) -> None:
            if share in self.rules.protected_shares:
                self.staff.require(
                    session,
                    "specific_personal_info",
                    "CLOUD-003",
                    f"特定個人情報を含む領域（{share}）の利用",
                    f"mount the protected share {share!r}",
                )
            elif share in self.rules.operator_shares:
                self.staff.require(
                    session,
                    "network_operator",
                    "CLOUD-003",
                    f"機器管理領域（{share}）の利用",
                    f"mount the appliance share {share!r}",
                )
            else:
                raise self.refuse(
                    RefusalCode.NOT_FOUND,
                    "CLOUD-003",
                    f"領域 {share} はありません",
                    f"no share {share!r}",
                    field="share",
                )
            self.allow(
                result,
                "CLOUD-003",
                now,
                f"{session.user_id} が権限のある領域（{share}）を利用しました",
                f"{session.user_id} mounted {share!r}, which the role allows",
                None,
                share=share,
            )

        return self.command(now, None, act)


class BackupClient(Component):
    """The city's backup job: sends a snapshot to the J-LIS backup centre, sealed to it."""

    name_ja = "バックアップ取得処理"
    name_en = "backup job"

    def upload(self, name: str, rows: list[dict[str, Any]], now: datetime) -> Result:
        def act(result: Result) -> None:
            self.send(
                result,
                MessageType.BACKUP_UPLOAD,
                BACKUP_CENTER,
                now,
                body={"name": name},
                personal={"rows": rows},
                correlation_id=name,
            )

        return self.command(now, name, act)


class BackupCenter(CityService[BackupCenterRules]):
    """J-LIS クラウド型バックアップセンター (LGWAN-ASP): accepts backups only over IP-VPN and stores them encrypted."""

    name_ja = "クラウド型バックアップセンター"
    name_en = "cloud backup centre"
    caller_part = "backup_client"

    def __init__(
        self, party: str, conn: Any, security: MessageSecurity, directory: Directory, *, storage_key: bytes
    ) -> None:
        super().__init__(party, conn, security, directory)
        self._aead = AESGCM(storage_key)
        conn.executescript(
            """CREATE TABLE IF NOT EXISTS backup_blobs (
                name TEXT PRIMARY KEY, municipality TEXT NOT NULL, stored_at TEXT NOT NULL, blob BLOB NOT NULL);"""
        )
        self._handlers[MessageType.BACKUP_UPLOAD] = self._on_upload

    def _on_upload(self, env: Envelope, cert: x509.Certificate, link: Link, now: datetime) -> Result:
        municipality, rules = self.subscriber(env, "CLOUD-004")
        require_network(self, link, rules.network, "CLOUD-004", "バックアップ", "backups")
        rows = list(sealed_payload(self, env, "CLOUD-004", "バックアップ", "the backup").get("rows") or [])
        name = str(env.body.get("name") or env.id)
        nonce = secrets.token_bytes(12)
        plain = json.dumps(rows, ensure_ascii=False, sort_keys=True).encode()
        blob = nonce + self._aead.encrypt(nonce, plain, name.encode())
        self.conn.execute(
            "INSERT OR REPLACE INTO backup_blobs (name, municipality, stored_at, blob) VALUES (?,?,?,?)",
            (name, municipality, now.isoformat(), blob),
        )
        result = Result()
        self.allow(
            result,
            "CLOUD-004",
            now,
            "IP-VPN経由で暗号化されたバックアップを受け取り、暗号化して保存しました",
            "received the backup over IP-VPN, sealed, and stored it encrypted (AES-256-GCM)",
            env.correlation_id,
            network=link.network,
            stored_bytes=len(blob),
            plaintext_in_blob=plain in blob,
        )
        return result

    def restore(self, name: str) -> list[dict[str, Any]]:
        row = self.conn.execute("SELECT blob FROM backup_blobs WHERE name = ?", (name,)).fetchone()
        if row is None:
            return []
        blob = bytes(row[0])
        data: list[dict[str, Any]] = json.loads(self._aead.decrypt(blob[:12], blob[12:], name.encode()))
        return data
