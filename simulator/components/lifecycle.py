"""The municipality's data lifecycle: encrypted backups that are restored and checked before they count (DATA-001,
DATA-003), the UPS in front of its servers (DATA-002), and the system-management batch that deletes only what is
past retention and keeps a hash-chained record of every deletion (DATA-004, DATA-005).

One ``DataLifecycle`` per municipality ("<m>.lifecycle") acts on its own organisation's store only. Its rules come
from scenarios/data/retention.yaml. It must never delete a row within its retention, never purge a file kept
without end, never treat a death as a reason to delete, and never write personal data into a deletion record.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, RootModel, field_validator, model_validator

from simulator.components.base import Component, Directory, Result
from simulator.controls.catalogue import SEED_FILES
from simulator.controls.decision import Outcome
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import InputError, RefusalCode
from simulator.model.area_data import DATA_DIR, Cited, load_area_file
from simulator.store.chain import CHAINED_TABLES, verify_chain

if TYPE_CHECKING:
    from simulator.components.municipal_cs import MunicipalCS
    from simulator.world import World

__all__ = [
    "BACKUP_SITES",
    "BackupPlan",
    "DataLifecycle",
    "LifecycleData",
    "MunicipalityLifecycle",
    "RetentionRule",
    "cutoff_date",
    "install",
    "load_lifecycle_data",
    "period_after",
    "store_snapshot",
]

#: Where a backup job may be pointed. Only the profile's own `sites` are accepted (DATA-003 for つくば).
BACKUP_SITES = ("data_centre", "offsite_custody", "cloud_backup_centre", "office_desktop", "removable_media")

_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
_PERIOD = re.compile(r"^P(?:(?P<y>\d+)Y)?(?:(?P<m>\d+)M)?(?:(?P<d>\d+)D)?$")


# -- profile data --------------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(Cited):
    """A cited fact that also quotes the seed, from one of the five seed files."""

    quote: str

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: str) -> str:
        if v not in SEED_FILES.values():
            raise ValueError(f"unknown seed file {v!r}; expected one of {sorted(SEED_FILES.values())}")
        return v


class Inferred(_Strict):
    inferred: Literal[True]
    reason: str


def _period(v: str | None) -> str | None:
    if v is not None and (not _PERIOD.match(v) or v == "P"):
        raise ValueError(f"{v!r} must be an ISO 8601 period of years, months or days (P8Y, P1M, P1D)")
    return v


class BackupPlan(_Strict):
    schedule: str  # longest allowed gap between two backups (P1D: daily)
    sites: tuple[str, ...]
    dc_only: bool  # the profile claims backups are made only inside the entry-controlled DC (DATA-003)
    source: Citation
    sites_source: Citation | None = None
    offsite_source: Citation | None = None
    schedule_inferred: Inferred | None = None
    sites_inferred: Inferred | None = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        return _period(v) or v

    @field_validator("sites")
    @classmethod
    def _sites(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for site in v:
            if site not in BACKUP_SITES:
                raise ValueError(f"site {site!r} is not one of {list(BACKUP_SITES)}")
        if not v:
            raise ValueError("at least one backup site is needed")
        return v


class UpsPlan(_Strict):
    autonomy_minutes: int
    source: Citation
    autonomy_inferred: Inferred | None = None

    @field_validator("autonomy_minutes")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("autonomy_minutes must be a positive number of minutes")
        return v


class RetentionRule(_Strict):
    kind: str  # the file, e.g. "tax_records", "identity_history"
    source: Citation
    table: str | None = None
    date_column: str | None = None
    period: str | None = None
    never: bool = False
    fiscal_year: bool = False
    business_days: bool = False
    delegate: Literal["cs_delivery_files"] | None = None
    only_status: str | None = None  # only rows whose `status` column has this value (消除者 records)
    person_column: Literal["resident_code", "my_number"] | None = None

    @field_validator("period")
    @classmethod
    def _p(cls, v: str | None) -> str | None:
        return _period(v)

    @field_validator("kind", "table", "date_column", "only_status")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        if v is not None and not _IDENT.match(v):
            raise ValueError(f"{v!r} must be a snake_case identifier")
        return v

    @model_validator(mode="after")
    def _shape(self) -> RetentionRule:
        if self.never:
            if self.period or self.delegate or not self.table:
                raise ValueError(f"{self.kind}: a `never` rule names its table and no period or delegate")
        elif self.delegate is not None:
            if self.period is None or self.table is not None:
                raise ValueError(f"{self.kind}: a delegated rule has a period and no table")
        elif not (self.table and self.date_column and self.period):
            raise ValueError(f"{self.kind}: a rule needs table, date_column and period (or never / delegate)")
        if self.fiscal_year and (self.period is None or not re.fullmatch(r"P\d+Y", self.period)):
            raise ValueError(f"{self.kind}: fiscal_year needs a period in whole years (P8Y)")
        return self

    @property
    def key_column(self) -> str | None:
        """The column naming whose record a row is: given, or the table's usual one."""
        if self.person_column is not None:
            return self.person_column
        if self.table in ("registry_residents", "cs_identity_history", "cs_identity_info"):
            return "resident_code"
        if self.table is not None and self.table.startswith("business_"):
            return "my_number"
        return None


class MunicipalityLifecycle(_Strict):
    backup: BackupPlan | None
    retention: tuple[RetentionRule, ...]
    ups: UpsPlan | None = None

    @field_validator("retention")
    @classmethod
    def _unique(cls, v: tuple[RetentionRule, ...]) -> tuple[RetentionRule, ...]:
        kinds = [r.kind for r in v]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"a kind is listed twice: {kinds}")
        return v


class LifecycleData(_Strict):
    profiles: dict[str, MunicipalityLifecycle]


class _Profiles(RootModel[dict[str, MunicipalityLifecycle]]):
    """retention.yaml keeps its profiles under one top-level ``profiles`` key."""


def load_lifecycle_data(path: Path | None = None) -> LifecycleData:
    """Read scenarios/data/retention.yaml (or ``path``); bad input names file:line, the field and the rule."""
    source = path or DATA_DIR / "retention.yaml"
    top = load_area_file(source, _Profiles)
    if set(top) != {"profiles"}:
        raise InputError(source.name, "must hold exactly one key, profiles: a mapping of profile key to its plan")
    return LifecycleData(profiles=top["profiles"].root)


# -- dates ---------------------------------------------------------------------------------------------------------


def _minus_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def cutoff_date(rule: RetentionRule, now: datetime) -> date:
    """Rows dated before this day are past retention (kept: this day and later)."""
    assert rule.period is not None
    years, months, days = _parts(rule.period)
    today = now.date()
    if rule.fiscal_year:
        # 現年度および過去 n−1 年分: the 年度 starts on 1 April.
        fy = today.year if today.month >= 4 else today.year - 1
        return date(fy - years + 1, 4, 1)
    return _minus(today, years, months, days)


def _parts(period: str) -> tuple[int, int, int]:
    m = _PERIOD.match(period)
    if m is None or period == "P":
        raise InputError("period", f"{period!r} must be an ISO 8601 period of years, months or days")
    return int(m.group("y") or 0), int(m.group("m") or 0), int(m.group("d") or 0)


def _minus(today: date, years: int, months: int, days: int) -> date:
    day = _minus_years(today, years)
    if months:
        total = day.year * 12 + day.month - 1 - months
        y, mo = divmod(total, 12)
        for d in (day.day, 30, 29, 28):
            try:
                day = date(y, mo + 1, d)
                break
            except ValueError:
                continue
    return day - timedelta(days=days)


def period_after(day: date, period: str) -> date:
    """The first day on which a row dated ``day`` is past a retention of ``period`` (calendar arithmetic, so the
    answer is searched from an estimate rather than added: month ends make adding and subtracting differ)."""
    parts = _parts(period)
    estimate = day + timedelta(days=parts[0] * 365 + parts[0] // 4 + parts[1] * 31 + parts[2])
    while _minus(estimate, *parts) <= day:
        estimate += timedelta(days=1)
    while _minus(estimate - timedelta(days=1), *parts) > day:
        estimate -= timedelta(days=1)
    return estimate


# -- the store's content, for "the restored data equals the snapshot" ----------------------------------------------


def store_snapshot(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Row count and digest of every table (rows in a canonical order), excluding SQLite's own tables."""
    out: dict[str, dict[str, Any]] = {}
    tables = [
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    for table in tables:
        rows = sorted(repr(r) for r in conn.execute(f'SELECT * FROM "{table}"'))
        digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        out[table] = {"rows": len(rows), "sha256": digest}
    return out


def _table_exists(conn: sqlite3.Connection, table: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f'PRAGMA table_info("{table}")')}


class DataLifecycle(Component):
    """Backup, restore check, UPS and the retention batch of one municipality's store."""

    name_ja = "データ保管管理（システム管理バッチ）"
    name_en = "data lifecycle (system-management batch)"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        municipality: str,
        plan: MunicipalityLifecycle,
        backup_root: Path,
        backup_key: bytes,
        cs: MunicipalCS | None = None,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.municipality = municipality
        self.plan = plan
        self.backup_root = backup_root
        self._backup_key = backup_key
        self.cs = cs
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS lifecycle_backups (
                backup_id TEXT PRIMARY KEY, municipality TEXT NOT NULL, site TEXT NOT NULL, target TEXT NOT NULL,
                path TEXT NOT NULL, sha256 TEXT NOT NULL, snapshot TEXT NOT NULL, taken_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS lifecycle_power (
                municipality TEXT NOT NULL, at TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL);
            """
        )

    # -- DATA-001 / DATA-003: backup ------------------------------------------------------------------------------

    def backup(self, site: str, target: str, now: datetime) -> Result:
        """Copy the store with SQLite's online backup API, encrypt it (AES-256-GCM) and write it to ``target``.

        The target must be one of the profile's backup sites; where the profile claims that backups are made only
        inside the entry-controlled data centre, any other site is refused under DATA-003."""
        plan = self.plan.backup

        def check(result: Result) -> None:
            if plan is None:
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT, "DATA-001", "この団体のバックアップ計画は評価書に記載がありません",
                    "the profile states no backup plan for this municipality", "backup",
                )
            if site not in plan.sites:
                control = "DATA-003" if plan.dc_only else "DATA-001"
                raise self.refuse(
                    RefusalCode.FIELD_NOT_ALLOWED, control,
                    f"バックアップ先 {target}（{site}）は登録された取得場所（{', '.join(plan.sites)}）ではありません"
                    + ("。バックアップの取得は入退室管理をしているデータセンタ内に限ります" if plan.dc_only else ""),
                    f"backup target {target} ({site}) is not a registered backup site ({', '.join(plan.sites)})",
                    "site",
                )

        checked = self.command(now, None, check)
        if checked.refusal is not None:
            return checked
        assert plan is not None
        # The backup API cannot copy from a connection inside a write transaction: copy between commands.
        memory = sqlite3.connect(":memory:")
        try:
            self.conn.backup(memory)
            snapshot = store_snapshot(memory)
            image = bytearray(memory.serialize())
        # The live store is in WAL mode and its header says so (bytes 18–19 = 2); a backup must open on its own,
        # without a -wal file beside it, so the copy is marked as a rollback-journal database.
        finally:
            memory.close()
        if image[18:20] == b"\x02\x02":
            image[18:20] = b"\x01\x01"
        backup_id = uuid.uuid4().hex[:12]
        nonce = secrets.token_bytes(12)
        sealed = nonce + AESGCM(self._backup_key).encrypt(nonce, bytes(image), self._aad(backup_id))
        folder = self.backup_root / self.municipality / target
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{backup_id}.sqlite.enc"
        path.write_bytes(sealed)
        digest = hashlib.sha256(sealed).hexdigest()

        def act(result: Result) -> None:
            self.conn.execute(
                "INSERT INTO lifecycle_backups (backup_id, municipality, site, target, path, sha256, snapshot, taken_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (backup_id, self.municipality, site, target, str(path), digest, json.dumps(snapshot), now.isoformat()),
            )
            tables = len(snapshot)
            rows = sum(int(t["rows"]) for t in snapshot.values())
            self.audit.append(
                at=now.isoformat(), kind="backup.taken",
                data={"backup_id": backup_id, "site": site, "target": target, "tables": tables, "rows": rows,
                      "sha256": digest},
            )
            self.allow(
                result, "DATA-001", now,
                f"バックアップを取得し暗号化して {target} に保存しました（{tables} 表 {rows} 行）",
                f"took an encrypted backup to {target} ({tables} tables, {rows} rows)",
                None, backup_id=backup_id, site=site, tables=tables, rows=rows,
            )
            if plan.dc_only:
                self.allow(
                    result, "DATA-003", now,
                    f"バックアップ先 {target} は入退室管理をしているデータセンタ内（{site}）です",
                    f"backup target {target} is inside the entry-controlled data centre ({site})",
                    None, backup_id=backup_id, site=site,
                )
            result.value = backup_id

        return self.command(now, None, act)

    def check_schedule(self, now: datetime) -> Result:
        """The backup monitor: the last backup must be within the profile's schedule, else it raises an alert."""
        plan = self.plan.backup

        def act(result: Result) -> None:
            if plan is None:
                return
            last = self.conn.execute(
                "SELECT MAX(taken_at) FROM lifecycle_backups WHERE municipality = ?", (self.municipality,)
            ).fetchone()[0]
            probe = RetentionRule(kind="backup", source=plan.source, table="lifecycle_backups",
                                  date_column="taken_at", period=plan.schedule)
            # A gap longer than the schedule (plus the hour the job may run late) is a missed window.
            due_after = datetime.combine(cutoff_date(probe, now), now.timetz()) - timedelta(hours=1)
            if last is None or datetime.fromisoformat(str(last)) < due_after:
                self.audit.append(at=now.isoformat(), kind="backup.alert",
                                  data={"last": last, "schedule": plan.schedule})
                result.decisions.append(self.decide(
                    "DATA-001", Outcome.DENY, now,
                    reason_ja=f"バックアップ周期（{plan.schedule}）内にバックアップがありません。警報を上げました（前回: {last or 'なし'}）",
                    reason_en=f"no backup within the schedule ({plan.schedule}); alert raised (last: {last or 'none'})",
                    evidence={"last": last, "schedule": plan.schedule}, code=str(RefusalCode.BACKUP_MISSED),
                ))
                result.value = {"alert": True, "last": last}
                return
            self.allow(result, "DATA-001", now, f"前回のバックアップ（{last}）は周期 {plan.schedule} 内です",
                       f"the last backup ({last}) is within the schedule {plan.schedule}", None, last=last)
            result.value = {"alert": False, "last": last}

        return self.command(now, None, act)

    def _aad(self, backup_id: str) -> bytes:
        return f"{self.municipality}|backup|{backup_id}".encode()

    def restore(self, backup_id: str, now: datetime, *, key: bytes | None = None) -> Result:
        """Restore a backup into a clean database beside it (the live store is untouched) and accept it only when
        the file matches its recorded digest, decrypts, passes SQLite's integrity check, its hash chains are intact
        and its content equals the snapshot recorded when it was taken."""

        def act(result: Result) -> None:
            row = self.conn.execute(
                "SELECT path, sha256, snapshot FROM lifecycle_backups WHERE backup_id = ? AND municipality = ?",
                (backup_id, self.municipality),
            ).fetchone()
            if row is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "DATA-001", "該当するバックアップはありません",
                                  "no such backup", "backup_id")
            source = Path(str(row[0]))
            sealed = source.read_bytes() if source.exists() else b""
            if hashlib.sha256(sealed).hexdigest() != row[1]:
                raise self.refuse(RefusalCode.BACKUP_INVALID, "DATA-001",
                                  "バックアップファイルが取得時の内容と一致しません（改変または欠損）",
                                  "the backup file does not match the digest recorded when it was taken", "backup_id")
            try:
                image = AESGCM(key or self._backup_key).decrypt(sealed[:12], sealed[12:], self._aad(backup_id))
            except (InvalidTag, ValueError):
                raise self.refuse(RefusalCode.DECRYPTION_FAILED, "DATA-001",
                                  "復元に使った鍵ではバックアップを復号できません（鍵が違うか、内容が改変されています）",
                                  "the backup does not decrypt under the key used for the restore", "key") from None
            target = source.with_name(f"{source.stem}-restored-{uuid.uuid4().hex[:6]}.sqlite")
            problems = self._check_image(image, json.loads(str(row[2])), target)
            if problems:
                raise self.refuse(RefusalCode.BACKUP_INVALID, "DATA-001",
                                  f"復元したデータベースを受け入れません: {'; '.join(problems)}",
                                  f"the restored database is not accepted: {'; '.join(problems)}", "backup_id")
            self.audit.append(at=now.isoformat(), kind="backup.restored",
                              data={"backup_id": backup_id, "restored_to": target.name})
            self.allow(result, "DATA-001", now,
                       "バックアップを新しいデータベースに復元し、整合性・ハッシュチェーン・取得時の内容との一致を確認しました",
                       "restored the backup to a clean database: integrity, hash chains and snapshot all match",
                       None, backup_id=backup_id, restored_to=target.name)
            result.value = {"restored_to": str(target)}

        return self.command(now, None, act)

    def nightly_check(self, now: datetime) -> Result:
        """The nightly 正誤性確認 of every backup held: digest, decryption, integrity, hash chains and snapshot.
        A corrupted copy raises an alert (a DATA-001 deny naming it); nothing is written anywhere else."""

        def act(result: Result) -> None:
            bad: list[str] = []
            rows = self.conn.execute(
                "SELECT backup_id, path, sha256, snapshot FROM lifecycle_backups WHERE municipality = ?"
                " ORDER BY taken_at", (self.municipality,)
            ).fetchall()
            for backup_id, path, digest, snapshot in rows:
                source = Path(str(path))
                sealed = source.read_bytes() if source.exists() else b""
                problems: list[str] = []
                if hashlib.sha256(sealed).hexdigest() != digest:
                    problems.append("digest")
                else:
                    try:
                        image = AESGCM(self._backup_key).decrypt(sealed[:12], sealed[12:], self._aad(str(backup_id)))
                        problems = self._check_image(image, json.loads(str(snapshot)), None)
                    except (InvalidTag, ValueError):
                        problems.append("decryption")
                if problems:
                    bad.append(f"{backup_id} ({', '.join(problems)})")
            self.audit.append(at=now.isoformat(), kind="backup.nightly_check",
                              data={"backups": len(rows), "bad": len(bad)})
            if bad:
                result.decisions.append(self.decide(
                    "DATA-001", Outcome.DENY, now,
                    reason_ja=f"夜間の正誤性確認で破損したバックアップを検出しました: {', '.join(bad)}",
                    reason_en=f"the nightly integrity check found corrupted backups: {', '.join(bad)}",
                    evidence={"backups": len(rows), "bad": bad}, code=str(RefusalCode.BACKUP_INVALID),
                ))
            else:
                self.allow(result, "DATA-001", now, f"夜間の正誤性確認: バックアップ {len(rows)} 件すべて正常です",
                           f"nightly integrity check: all {len(rows)} backups are sound", None, backups=len(rows))
            result.value = {"backups": len(rows), "bad": bad}

        return self.command(now, None, act)

    @staticmethod
    def _check_image(image: bytes, expected: dict[str, Any], target: Path | None) -> list[str]:
        memory = sqlite3.connect(":memory:")
        problems: list[str] = []
        try:
            memory.deserialize(image)
            check = memory.execute("PRAGMA integrity_check").fetchone()
            if check is None or check[0] != "ok":
                problems.append(f"integrity_check: {check[0] if check else 'no answer'}")
            for table in CHAINED_TABLES:
                problems.extend(b.describe() for b in verify_chain(memory, table))
            found = store_snapshot(memory)
            differing = sorted(t for t in set(found) | set(expected) if found.get(t) != expected.get(t))
            if differing:
                problems.append(f"content differs from the snapshot in {', '.join(differing)}")
            if not problems and target is not None:
                restored = sqlite3.connect(target)
                try:
                    memory.backup(restored)
                finally:
                    restored.close()
        except sqlite3.DatabaseError as exc:
            problems.append(f"not a database: {exc}")
        finally:
            memory.close()
        return problems

    # -- DATA-002: UPS -----------------------------------------------------------------------------------------

    def power_cut(self, minutes: float, now: datetime) -> Result:
        """A mains outage of ``minutes``. Within the UPS autonomy nothing stops; beyond it the servers shut down
        cleanly before the battery runs out (WAL checkpointed), and at restart every committed row is checked."""
        ups = self.plan.ups

        def act(result: Result) -> None:
            if ups is None:
                raise self.refuse(RefusalCode.STATE_CONFLICT, "DATA-002", "無停電電源装置は評価書に記載がありません",
                                  "the profile states no UPS", "ups")
            detail = {"minutes": minutes, "autonomy_minutes": ups.autonomy_minutes}
            if minutes <= ups.autonomy_minutes:
                self.conn.execute("INSERT INTO lifecycle_power VALUES (?,?,?,?)",
                                  (self.municipality, now.isoformat(), "on_battery", json.dumps(detail)))
                self.allow(result, "DATA-002", now,
                           f"{minutes:g} 分の停電を無停電電源装置（{ups.autonomy_minutes} 分）で無停止のまま乗り切りました",
                           f"a {minutes:g}-minute outage was carried by the UPS ({ups.autonomy_minutes} min) with no stop",
                           None, **detail)
                result.value = {"interrupted": False}
                return
            self.conn.execute("INSERT INTO lifecycle_power VALUES (?,?,?,?)",
                              (self.municipality, now.isoformat(), "clean_shutdown", json.dumps(detail)))
            result.decisions.append(self.decide(
                "DATA-002", Outcome.DENY, now,
                reason_ja=f"停電が無停電電源装置の持続時間（{ups.autonomy_minutes} 分）を超えるため、電池切れ前に正常停止しました",
                reason_en=f"the outage outlasts the UPS ({ups.autonomy_minutes} min): clean shutdown before the battery ran out",
                evidence=detail, code=str(RefusalCode.STATE_CONFLICT),
            ))
            result.value = {"interrupted": True}

        res = self.command(now, None, act)
        if res.refusal is not None or not (res.value or {}).get("interrupted"):
            return res
        # Clean shutdown: everything committed is moved from the WAL into the database file, then the store is
        # reopened as a restart would and every table compared with what was committed before the stop.
        before = store_snapshot(self.conn)  # everything committed up to the shutdown
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        files = [Path(r[2]) for r in self.conn.execute("PRAGMA database_list") if r[1] == "main" and r[2]]
        after = before
        if files:
            # Only the database file itself is read (no -wal beside it): what a restart finds if the shutdown
            # really moved every committed page into it.
            image = bytearray(files[0].read_bytes())
            if image[18:20] == b"\x02\x02":
                image[18:20] = b"\x01\x01"
            reopened = sqlite3.connect(":memory:")
            try:
                reopened.deserialize(bytes(image))
                after = store_snapshot(reopened)
                ok = reopened.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            finally:
                reopened.close()
        else:
            ok = True
        restart_at = now + timedelta(minutes=minutes)
        lost = sorted(t for t in before if after.get(t) != before[t])

        def restarted(result: Result) -> None:
            if lost or not ok:
                raise self.refuse(RefusalCode.STATE_CONFLICT, "DATA-002",
                                  f"再起動後に確定済みデータが失われています: {', '.join(lost) or 'integrity_check'}",
                                  f"committed data is missing after restart: {', '.join(lost) or 'integrity_check'}",
                                  "store")
            self.conn.execute("INSERT INTO lifecycle_power VALUES (?,?,?,?)",
                              (self.municipality, restart_at.isoformat(), "restart", json.dumps({"tables": len(after)})))
            self.allow(result, "DATA-002", restart_at,
                       f"復電後に再起動し、確定済みデータ（{len(after)} 表）がすべて残っていることを確認しました",
                       f"restarted after the outage; all committed data ({len(after)} tables) is present",
                       None, tables=len(after))
            result.value = {"interrupted": True, "tables": len(after)}

        out = self.command(restart_at, None, restarted)
        res.extend(out)
        res.value = out.value
        return res

    # -- DATA-004 / DATA-005: retention --------------------------------------------------------------------------

    def rule(self, kind: str) -> RetentionRule | None:
        return next((r for r in self.plan.retention if r.kind == kind), None)

    def _delete(self, table: str, where: str, params: tuple[Any, ...]) -> int:
        """DELETE with the table's append-only triggers lifted for this statement only, inside the caller's
        transaction: the batch is the one path allowed to remove rows, and it leaves a deletion record."""
        triggers = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? AND sql LIKE '%BEFORE DELETE%'",
            (table,),
        ).fetchall()
        for name, _ in triggers:
            self.conn.execute(f'DROP TRIGGER "{name}"')
        count = self.conn.execute(f'DELETE FROM "{table}" WHERE {where}', params).rowcount
        for _, sql in triggers:
            self.conn.execute(sql)
        return int(count)

    def _deceased(self) -> list[str]:
        if not _table_exists(self.conn, "registry_residents"):
            return []
        return [str(r[0]) for r in self.conn.execute(
            "SELECT resident_code FROM registry_residents WHERE status = 'removed' AND last_change_reason = 'death'"
        )]

    def run_batch(self, now: datetime) -> Result:
        """The retention batch: every rule of the profile, deleting only rows dated before the cutoff, each deletion
        recorded (kind, table, count, date range; never the data) in the hash-chained audit trail."""
        batch_id = uuid.uuid4().hex[:12]
        delegated = Result()
        delegated_counts: dict[str, int] = {}
        for rule in self.plan.retention:
            if rule.delegate == "cs_delivery_files" and self.cs is not None:
                # CS-016 owns the 送付先情報ファイル deletion and its business-day count; the batch only runs it.
                out = self.cs.purge_delivery_files(now)
                delegated.extend(out)
                delegated_counts[rule.kind] = len((out.value or {}).get("deleted", []))

        def act(result: Result) -> None:
            summaries: list[dict[str, Any]] = []
            for rule in self.plan.retention:
                summary: dict[str, Any] = {"kind": rule.kind}
                if rule.delegate is not None:
                    summary |= {"delegate": rule.delegate, "deleted": delegated_counts.get(rule.kind, 0)}
                elif rule.never:
                    assert rule.table is not None
                    kept = self.conn.execute(f'SELECT COUNT(*) FROM "{rule.table}"').fetchone()[0] \
                        if _table_exists(self.conn, rule.table) else 0
                    summary |= {"table": rule.table, "never": True, "deleted": 0, "kept": int(kept)}
                else:
                    summary |= self._purge_rule(rule, now, batch_id)
                summaries.append(summary)
            deleted = sum(int(s.get("deleted", 0)) for s in summaries)
            self.audit.append(at=now.isoformat(), kind="retention.run",
                              data={"batch_id": batch_id, "rules": summaries, "deleted": deleted})
            if self.plan.retention:
                self.allow(result, "DATA-004", now,
                           f"保存期間を過ぎた記録 {deleted} 件を消去し、消去記録を残しました（規則 {len(summaries)} 件）",
                           f"deleted {deleted} rows past retention and recorded the deletion ({len(summaries)} rules)",
                           None, batch_id=batch_id, rules=summaries)
            deceased = self._deceased()
            if deceased:
                numbered = self.conn.execute(
                    "SELECT COUNT(*) FROM registry_residents WHERE status = 'removed' AND last_change_reason = 'death'"
                    " AND my_number IS NOT NULL"
                ).fetchone()[0]
                # The CS keeps a 消除者's 本人確認情報 (with the 個人番号) for as long as a living person's history.
                missing = 0
                if _table_exists(self.conn, "cs_identity_info"):
                    held = {str(r[0]) for r in self.conn.execute(
                        "SELECT resident_code FROM cs_identity_info WHERE my_number IS NOT NULL AND my_number != ''")}
                    missing = sum(1 for code in deceased if code not in held)
                if missing or numbered < len(deceased):
                    result.decisions.append(self.decide(
                        "DATA-005", Outcome.DENY, now,
                        reason_ja=f"死亡による消除者の記録が保存期間内に失われています（CS {missing} 人、個人番号 "
                                  f"{len(deceased) - int(numbered)} 人）",
                        reason_en=f"deceased persons' records are missing within retention ({missing} at the CS,"
                                  f" {len(deceased) - int(numbered)} without their 個人番号)",
                        evidence={"deceased": len(deceased), "missing_at_cs": missing, "with_number": int(numbered)},
                        code=str(RefusalCode.STATE_CONFLICT),
                    ))
                    deceased = []
            if deceased:
                self.allow(result, "DATA-005", now,
                           f"死亡による消除者 {len(deceased)} 人の記録は生存者と同じ保存規則で保持しています（個人番号あり {numbered} 人）",
                           f"the records of {len(deceased)} deceased persons are kept under the living's rules"
                           f" ({numbered} with their 個人番号)",
                           None, deceased=len(deceased), with_number=int(numbered))
            result.value = {"batch_id": batch_id, "rules": summaries, "deleted": deleted}

        out = self.command(now, None, act)
        # The batch's own decisions first: a trace names the component of a command by its first decision.
        out.outgoing.extend(delegated.outgoing)
        out.decisions.extend(delegated.decisions)
        return out

    def _purge_rule(self, rule: RetentionRule, now: datetime, batch_id: str) -> dict[str, Any]:
        assert rule.table is not None and rule.date_column is not None
        if not _table_exists(self.conn, rule.table):
            return {"table": rule.table, "deleted": 0, "absent": True}
        cutoff = cutoff_date(rule, now).isoformat()
        where, params = f'"{rule.date_column}" < ?', [cutoff]
        if rule.only_status is not None:
            where += " AND status = ?"
            params.append(rule.only_status)
        count, oldest, newest = self.conn.execute(
            f'SELECT COUNT(*), MIN("{rule.date_column}"), MAX("{rule.date_column}") FROM "{rule.table}" WHERE {where}',
            params,
        ).fetchone()
        deleted = self._delete(rule.table, where, tuple(params)) if count else 0
        record = {"batch_id": batch_id, "kind": rule.kind, "table": rule.table, "count": deleted,
                  "oldest": oldest, "newest": newest, "cutoff": cutoff, "period": rule.period,
                  "fiscal_year": rule.fiscal_year}
        self.audit.append(at=now.isoformat(), kind="retention.deletion", data=record)
        return {"table": rule.table, "deleted": deleted, "cutoff": cutoff, "oldest": oldest, "newest": newest}

    def subjects(self, kind: str, limit: int = 5) -> list[str]:
        """Resident codes that have rows in a rule's table (to pick a subject for a deletion request)."""
        rule = self.rule(kind)
        if rule is None or rule.table is None or not _table_exists(self.conn, rule.table):
            return []
        column = rule.key_column
        if column == "resident_code":
            sql = f'SELECT DISTINCT resident_code FROM "{rule.table}" ORDER BY resident_code LIMIT ?'
        elif column == "my_number":
            sql = (f'SELECT r.resident_code FROM registry_residents r JOIN "{rule.table}" t ON t.my_number = r.my_number'
                   " ORDER BY r.resident_code LIMIT ?")
        else:
            return []
        return [str(r[0]) for r in self.conn.execute(sql, (limit,))]

    def purge_record(self, kind: str, resident_code: str, reason: str, now: datetime) -> Result:
        """A request to delete one person's rows of a file ahead of the batch: granted only for rows past retention.
        A file kept without end is never purged, and a death is never a reason (DATA-005)."""

        def act(result: Result) -> None:
            rule = self.rule(kind)
            if rule is None:
                raise self.refuse(RefusalCode.NOT_FOUND, "DATA-004", f"保存規則のないファイルです: {kind}",
                                  f"no retention rule for {kind}", "kind")
            if rule.never:
                raise self.refuse(RefusalCode.RETENTION_NOT_ENDED, "DATA-004",
                                  f"{kind} は保存年限の経過による消去を行わないファイルです",
                                  f"{kind} is kept without end and is never purged", "kind")
            column = rule.key_column
            if rule.table is None or rule.date_column is None or column is None:
                raise self.refuse(RefusalCode.FIELD_INVALID, "DATA-004",
                                  f"{kind} は個人単位では消去しません（一括処理のみ）",
                                  f"{kind} is not deleted per person (batch only)", "kind")
            key = resident_code
            if column == "my_number":
                found = self.conn.execute("SELECT my_number FROM registry_residents WHERE resident_code = ?",
                                          (resident_code,)).fetchone()
                key = str(found[0]) if found and found[0] else ""
            where, params = f'"{column}" = ?', [key]
            if rule.only_status is not None:
                where += " AND status = ?"
                params.append(rule.only_status)
            rows = self.conn.execute(
                f'SELECT COUNT(*), MAX("{rule.date_column}") FROM "{rule.table}" WHERE {where}', params
            ).fetchone()
            if not rows[0]:
                raise self.refuse(RefusalCode.NOT_FOUND, "DATA-004", "消去対象の記録はありません",
                                  "no rows of that person in the file", "resident_code")
            cutoff = cutoff_date(rule, now).isoformat()
            if str(rows[1]) >= cutoff:
                dead = resident_code in self._deceased()
                if dead or reason == "death":
                    raise self.refuse(RefusalCode.RETENTION_NOT_ENDED, "DATA-005",
                                      f"死亡は消去の理由になりません。死者の記録も生存者と同じく保存期間（{rule.period}）を守ります",
                                      f"a death is no reason to delete: the deceased's rows keep the same retention ({rule.period})",
                                      "reason")
                raise self.refuse(RefusalCode.RETENTION_NOT_ENDED, "DATA-004",
                                  f"{kind} の保存期間（{rule.period}）が終わっていない記録は消去できません（{cutoff} 以降の記録）",
                                  f"rows of {kind} within their retention ({rule.period}) cannot be deleted",
                                  "resident_code")
            deleted = self._delete(rule.table, where, tuple(params))
            self.audit.append(at=now.isoformat(), kind="retention.deletion",
                              data={"kind": kind, "table": rule.table, "count": deleted, "newest": rows[1],
                                    "cutoff": cutoff, "reason": reason})
            self.allow(result, "DATA-004", now, f"保存期間を過ぎた {kind} の記録 {deleted} 件を消去しました",
                       f"deleted {deleted} rows of {kind} past retention", None, kind=kind, count=deleted)
            result.value = {"deleted": deleted}

        return self.command(now, None, act)

    def deletion_records(self) -> list[dict[str, Any]]:
        return list(self.audit.rows(kind="retention.deletion"))


# -- installing ----------------------------------------------------------------------------------------------------


def install(world: World) -> None:
    """One lifecycle batch per municipality of the world, with its profile's rules, on its own store."""
    from simulator.components.municipal_cs import MunicipalCS

    data = load_lifecycle_data()
    for m in world.spec.municipalities:
        plan = data.profiles.get(m.key)
        if plan is None:
            continue
        party = f"{m.key}.lifecycle"
        cs = world.components.get(f"{m.key}.municipal_cs")
        world.add(
            DataLifecycle,
            party,
            m.key,
            municipality=m.key,
            plan=plan,
            backup_root=world.data_dir / "backups",
            backup_key=world.key(f"{m.key}.backup"),
            cs=cs if isinstance(cs, MunicipalCS) else None,
        )
