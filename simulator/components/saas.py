"""外部SaaS of one city: AI-OCR (LGWAN-ASP型) and 窓口DXSaaS with its staging on the 連携基盤.

AI-OCR: retention, staff deletion, no training use (SAAS-001), reached only from chosen terminals inside the closed
network (SAAS-002). 窓口DXSaaS: 基幹 rights and authentication (SAAS-003), registered endpoints only (SAAS-004),
staging erased once linked (SAAS-005). It must never keep OCR data past retention nor reach an unregistered host.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from simulator.components.base import Component, Directory, Result
from simulator.components.eapp_saas_cloud import AiOcrRules, CounterSaasRules
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import Refusal, RefusalCode

__all__ = ["AiOcr", "CounterSaas"]

_MY_NUMBER = re.compile(r"(?<!\d)\d{12}(?!\d)")


def _has_my_number(pages: list[dict[str, Any]]) -> bool:
    """Does any page's recognised text carry a 12-digit number (a 個人番号)? The content decides the terminal."""
    return any(_MY_NUMBER.search(str(page.get("text", ""))) for page in pages)


class AiOcr(Component):
    """AI-OCR (LGWAN-ASP型): AP and 文字認識 servers keep nothing; the DB server keeps jobs for checking only."""

    name_ja = "AI-OCR（LGWAN-ASP型）"
    name_en = "AI-OCR (LGWAN-ASP)"

    def __init__(
        self, party: str, conn: Any, security: MessageSecurity, directory: Directory, *, rules: AiOcrRules
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.rules = rules
        conn.executescript(
            """CREATE TABLE IF NOT EXISTS ocr_jobs (
                job_id TEXT PRIMARY KEY, stored_at TEXT NOT NULL, terminal TEXT NOT NULL, pages TEXT NOT NULL);"""
        )

    def submit(self, terminal_segment: str, network: str, pages: list[dict[str, Any]], now: datetime) -> Result:
        """A terminal sends a job: only from the chosen segments, and only inside the LGWAN-ASP closed network."""

        def act(result: Result) -> None:
            if network != self.rules.server_network:
                raise self.refuse(
                    RefusalCode.NO_ROUTE,
                    "SAAS-002",
                    f"AI-OCRのサーバへは{self.rules.server_network}の閉域網からしか到達できません（接続元: {network}）",
                    f"the AI-OCR servers are reachable only inside {self.rules.server_network}; "
                    f"no route from {network}",
                    field="network",
                )
            if terminal_segment not in self.rules.terminal_segments:
                raise self.refuse(
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "SAAS-002",
                    f"この端末（{terminal_segment}）からはAI-OCRを利用できません",
                    f"AI-OCR is used only from {list(self.rules.terminal_segments)} terminals",
                    field="terminal",
                )
            content = self.rules.my_number_content
            if content is not None and terminal_segment not in content.terminal_segments and _has_my_number(pages):
                raise self.refuse(
                    RefusalCode.SOURCE_NOT_ALLOWED,
                    "SAAS-002",
                    f"個人番号を含む帳票は{'・'.join(content.terminal_segments)}端末から送ります（この端末: {terminal_segment}）",
                    f"forms carrying a 個人番号 go only from {list(content.terminal_segments)} terminals",
                    field="terminal",
                )
            job_id = uuid.uuid4().hex
            self.conn.execute(
                "INSERT INTO ocr_jobs (job_id, stored_at, terminal, pages) VALUES (?,?,?,?)",
                (job_id, now.isoformat(), terminal_segment, json.dumps(pages, ensure_ascii=False)),
            )
            self.allow(
                result,
                "SAAS-002",
                now,
                f"{terminal_segment}端末から閉域網内のAI-OCRへ送信しました",
                f"a {terminal_segment} terminal sent a job inside {network}",
                None,
                job=job_id,
            )
            result.value = job_id

        return self.command(now, None, act)

    def delete_job(self, job_id: str, now: datetime) -> Result:
        """Staff delete a job's images and text once checked."""

        def act(result: Result) -> None:
            gone = self.conn.execute("DELETE FROM ocr_jobs WHERE job_id = ?", (job_id,)).rowcount
            if not gone:
                raise self.refuse(RefusalCode.NOT_FOUND, "SAAS-001", "そのジョブはありません", "no such job", "job")
            self.allow(
                result,
                "SAAS-001",
                now,
                "職員がAI-OCRのデータを削除しました",
                "staff deleted the job's data",
                None,
                job=job_id,
            )

        return self.command(now, None, act)

    def _cutoff(self, now: datetime) -> str:
        return (now - timedelta(days=self.rules.retention_days)).isoformat()

    def purge(self, now: datetime) -> Result:
        """The automatic deletion: every job kept longer than the retention days is physically deleted."""

        def act(result: Result) -> None:
            gone = self.conn.execute("DELETE FROM ocr_jobs WHERE stored_at <= ?", (self._cutoff(now),)).rowcount
            self.allow(
                result,
                "SAAS-001",
                now,
                f"{self.rules.retention_days}日を過ぎたデータを自動で物理削除しました",
                f"deleted the data older than {self.rules.retention_days} days",
                None,
                deleted=gone,
            )

        return self.command(now, None, act)

    def retention_check(self, now: datetime) -> Result:
        """Is anything still held past the retention days? (what an auditor checks on day 6)."""

        def act(result: Result) -> None:
            left = self.conn.execute(
                "SELECT COUNT(*) FROM ocr_jobs WHERE stored_at <= ?", (self._cutoff(now),)
            ).fetchone()[0]
            if left:
                raise self.refuse(
                    RefusalCode.NOT_ERASED,
                    "SAAS-001",
                    f"保管期間（{self.rules.retention_days}日）を過ぎたデータが残っています（{left}件）",
                    f"{left} jobs are still held past {self.rules.retention_days} days",
                    field="jobs",
                )
            self.allow(
                result,
                "SAAS-001",
                now,
                "保管期間を過ぎたデータは残っていません",
                "nothing is held past the retention",
                None,
            )

        return self.command(now, None, act)

    def export_training(self, now: datetime) -> Result:
        """A training-set export of the city's data: refused unless the contract allows training use."""

        def act(result: Result) -> None:
            if not self.rules.training_use:
                raise self.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED,
                    "SAAS-001",
                    "本市のデータを教師データとして用いることはできません（契約）",
                    "the city's data may not be used as training data (contract)",
                    field="export",
                )
            result.value = [str(r[0]) for r in self.conn.execute("SELECT job_id FROM ocr_jobs")]

        return self.command(now, None, act)


class CounterSaas(Component):
    """窓口DXSaaS: its users and authentication come from the 基幹業務システム; staging on the 連携基盤."""

    name_ja = "窓口DXSaaS"
    name_en = "counter DX SaaS"

    def __init__(
        self,
        party: str,
        conn: Any,
        security: MessageSecurity,
        directory: Directory,
        *,
        rules: CounterSaasRules,
        core_staff: StaffDirectory,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.rules = rules
        self.core_staff = core_staff  # the 基幹業務システム's accounts and policy (基幹業務システムに準ずる)
        conn.executescript(
            """CREATE TABLE IF NOT EXISTS dx_staging (
                staging_id TEXT PRIMARY KEY, staged_at TEXT NOT NULL, by_user TEXT NOT NULL, data TEXT NOT NULL);"""
        )

    def login(self, user: str, password: str, biometric: str | None, now: datetime) -> Result:
        """Sign in with the 基幹 credentials and policy; only holders of a 基幹 business role get in."""

        def act(result: Result) -> None:
            try:
                session = self.core_staff.authenticate(
                    user, password, now=now, biometric=biometric, terminal=f"{user}-dx"
                )
            except Refusal as refusal:
                raise self.refuse(
                    refusal.code,
                    "SAAS-003",
                    "基幹業務システムの認証に失敗しました: " + refusal.reason_ja,
                    "the 基幹 authentication failed: " + refusal.reason_en,
                    field="user",
                ) from None
            held = sorted(set(self.rules.core_roles) & set(session.roles))
            if not held:
                raise self.refuse(
                    RefusalCode.ROLE_MISSING,
                    "SAAS-003",
                    "基幹業務システムの権限を持たない職員は窓口DXSaaSを利用できません",
                    "only staff holding 基幹 rights may use the counter DX SaaS",
                    field="user",
                )
            self.allow(
                result,
                "SAAS-003",
                now,
                "基幹業務システムの権限と認証で窓口DXSaaSにログインしました",
                "signed in with 基幹 rights and 基幹 authentication",
                None,
                user=user,
                roles=held,
            )
            result.value = session

        return self.command(now, None, act)

    def connect(self, destination: str, now: datetime) -> Result:
        """An outbound call: the boundary FW and 連携サーバ pass only registered endpoints."""

        def act(result: Result) -> None:
            if destination not in self.rules.endpoints:
                raise self.refuse(
                    RefusalCode.NO_ROUTE,
                    "SAAS-004",
                    f"登録されていない接続先（{destination}）への通信は境界FWで遮断されます",
                    f"the boundary firewall blocks {destination!r}: not a registered endpoint",
                    field="destination",
                )
            self.allow(
                result,
                "SAAS-004",
                now,
                f"登録された接続先（{destination}）へ連携サーバ経由で通信しました",
                f"reached the registered endpoint {destination!r} through the 連携サーバ",
                None,
            )

        return self.command(now, None, act)

    def stage(self, session: StaffSession, data: dict[str, Any], now: datetime) -> Result:
        """A counter case puts 特定個人情報 on the 連携基盤 for the 基幹 side to take."""

        def act(result: Result) -> None:
            staging_id = uuid.uuid4().hex
            self.conn.execute(
                "INSERT INTO dx_staging (staging_id, staged_at, by_user, data) VALUES (?,?,?,?)",
                (staging_id, now.isoformat(), session.user_id, json.dumps(data, ensure_ascii=False)),
            )
            result.value = staging_id

        return self.command(now, None, act)

    def hand_off(self, now: datetime) -> Result:
        """The 基幹 side takes what is staged; the staging area is erased right after the linkage."""

        def act(result: Result) -> None:
            ids = [str(r[0]) for r in self.conn.execute("SELECT staging_id FROM dx_staging")]
            self.conn.execute("DELETE FROM dx_staging")
            left = self.conn.execute("SELECT COUNT(*) FROM dx_staging").fetchone()[0]
            self.allow(
                result,
                "SAAS-005",
                now,
                "連携後、連携基盤上の特定個人情報を完全消去しました",
                "erased the staged data right after the linkage",
                None,
                linked=len(ids),
                left=left,
            )
            result.value = ids

        return self.command(now, None, act)

    def staging_check(self, now: datetime) -> Result:
        """管理者の確認: staged data from an earlier day means something was never linked and erased."""

        def act(result: Result) -> None:
            left = self.conn.execute(
                "SELECT COUNT(*) FROM dx_staging WHERE substr(staged_at, 1, 10) < ?", (now.date().isoformat(),)
            ).fetchone()[0]
            if left:
                raise self.refuse(
                    RefusalCode.NOT_ERASED,
                    "SAAS-005",
                    f"連携基盤に前日以前の特定個人情報が残っています（{left}件）",
                    f"{left} staged records from an earlier day are still on the hub",
                    field="staging",
                )
            self.allow(
                result,
                "SAAS-005",
                now,
                "連携基盤に不要な特定個人情報は残っていません",
                "nothing unneeded is left on the hub",
                None,
            )

        return self.command(now, None, act)
