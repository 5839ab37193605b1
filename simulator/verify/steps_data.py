"""Step kinds for the municipality's data lifecycle (DATA-001..005): backups, restores, the backup checks, the
retention batch, a deletion request, a death 異動 and a power cut.

Steps drive the "<m>.lifecycle" component's commands as the system-management job or its operator would; the
component decides. Two steps stand for an insider with direct access to the backup storage (or a failing disk):
`data_restore` with `tamper: true` and `backup_check` with `corrupt:` flip a byte of an encrypted backup file out
of band, because DATA-001's checks exist to catch exactly that. Steps never write a store.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from simulator.components.lifecycle import DataLifecycle, period_after
from simulator.verify.steps import STEPS, ScenarioContext, StepError, StepRecord, _drive, step

__all__: list[str] = []


def _lifecycle(ctx: ScenarioContext, p: dict[str, Any]) -> DataLifecycle:
    """The lifecycle batch of `municipality` (default: the profile's own municipality)."""
    m = ctx.municipality(p.get("municipality"), ctx.placeholders.get("profile", ctx.provider))
    component = ctx.component(f"{m}.lifecycle")
    if not isinstance(component, DataLifecycle):
        raise StepError("municipality", f"{m}.lifecycle is not a data lifecycle component")
    return component


def _earlier(ctx: ScenarioContext, p: dict[str, Any]) -> Any:
    of = str(p.get("of", ""))
    if of not in ctx.records or ctx.records[of].value is None:
        raise StepError("of", f"names no earlier step with a result ({of!r})")
    return ctx.records[of].value


def _kind(lc: DataLifecycle, p: dict[str, Any]) -> str:
    """`kind`, or the first of the profile's per-person files (so one scenario fits every profile)."""
    if p.get("kind"):
        return str(p["kind"])
    for rule in lc.plan.retention:
        if rule.key_column is not None and not rule.never and rule.delegate is None:
            return rule.kind
    raise StepError("kind", f"{lc.municipality} has no per-person retention rule")


def _subject(ctx: ScenarioContext, lc: DataLifecycle, p: dict[str, Any]) -> str:
    """`subject: deceased` (the person of an earlier `record_death`) or the first person with rows in the file."""
    if p.get("subject") == "deceased":
        return str(_earlier(ctx, {"of": p.get("of", "death")})["resident_code"])
    found = lc.subjects(_kind(lc, p), 1)
    if not found:
        raise StepError("kind", f"no person has rows in {_kind(lc, p)} at {lc.municipality}")
    return found[0]


@step("data_backup")
def _data_backup(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The backup job of `municipality` to `target` at `site` (data_centre, offsite_custody, office_desktop …)."""
    lc = _lifecycle(ctx, p)
    site, target = str(p.get("site", "data_centre")), str(p.get("target", "dc-nas"))
    _drive(ctx, record, lambda now: lc.backup(site, target, now))


@step("data_restore")
def _data_restore(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Restore the backup of an earlier `data_backup` step (`of`) into a clean database and check it.
    `wrong_key: true` restores with a key that is not the organisation's; `tamper: true` is the insider case."""
    lc = _lifecycle(ctx, p)
    backup_id = str(_earlier(ctx, p))
    if p.get("tamper"):
        _flip(lc, backup_id)
    key = secrets.token_bytes(32) if p.get("wrong_key") else None
    _drive(ctx, record, lambda now: lc.restore(backup_id, now, key=key))


@step("backup_monitor")
def _backup_monitor(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The backup monitor: alerts when the last backup is older than the profile's schedule."""
    lc = _lifecycle(ctx, p)
    _drive(ctx, record, lambda now: lc.check_schedule(now))


@step("backup_check")
def _backup_check(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The nightly integrity check of every backup `municipality` holds (`corrupt: <data_backup step>` first flips
    a byte of that backup's file: the insider or the failing disk)."""
    lc = _lifecycle(ctx, p)
    if p.get("corrupt"):
        backup_id = str(_earlier(ctx, {"of": p["corrupt"]}))
        _flip(lc, backup_id)
    _drive(ctx, record, lambda now: lc.nightly_check(now))


def _flip(lc: DataLifecycle, backup_id: str) -> None:
    row = lc.conn.execute("SELECT path FROM lifecycle_backups WHERE backup_id = ?", (backup_id,)).fetchone()
    path = Path(str(row[0]))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@step("lifecycle_batch")
def _lifecycle_batch(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The system-management retention batch of `municipality` (every rule of its profile)."""
    lc = _lifecycle(ctx, p)
    _drive(ctx, record, lambda now: lc.run_batch(now))


@step("purge_record")
def _purge_record(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A request to delete one person's rows of file `kind` ahead of the batch (`subject`: deceased or first;
    `reason`: e.g. death, request)."""
    lc = _lifecycle(ctx, p)
    kind, code = _kind(lc, p), _subject(ctx, lc, p)
    reason = str(p.get("reason", "request"))
    _drive(ctx, record, lambda now: lc.purge_record(kind, code, reason, now))


@step("record_death")
def _record_death(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A 死亡届 for a resident of `municipality` who has rows in the profile's per-person file (`kind`), entered and
    confirmed at 既存住基 by two clerks. Value: {resident_code}."""
    lc = _lifecycle(ctx, p)
    codes = lc.subjects(_kind(lc, p), 50)
    active = {
        str(r[0])
        for r in lc.conn.execute("SELECT resident_code FROM registry_residents WHERE status = 'active'")
    }
    # Someone with rows in the file; where nobody has any yet (a history that only the death will start), the first
    # living resident.
    chosen = next((c for c in codes if c in active), None) or min(active, default=None)
    if chosen is None:
        raise StepError("municipality", f"{lc.municipality} has no living resident")
    params = {
        "municipality": lc.municipality,
        "form": {"change_type": "death", "resident_code": chosen, "change_date": "today"},
        "_person": None,
    }
    STEPS["change"](ctx, record, params)
    record.value = {"resident_code": chosen}


@step("power_cut")
def _power_cut(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A mains outage of `minutes` at `municipality`'s servers (UPS, DATA-002)."""
    lc = _lifecycle(ctx, p)
    minutes = float(p.get("minutes", 5))
    _drive(ctx, record, lambda now: lc.power_cut(minutes, now))


@step("advance_past")
def _advance_past(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Move the clock past the retention of file `kind` (default: the profile's first per-person file) plus
    `extra_days` (default 1); a 年度 rule moves a further year so that a whole 年度 falls out."""
    lc = _lifecycle(ctx, p)
    kind = _kind(lc, p)
    rule = lc.rule(kind)
    if rule is None or rule.period is None:
        raise StepError("kind", f"{kind} has no retention period at {lc.municipality}")
    start = ctx.driver.now
    target = period_after(start.date(), rule.period) + timedelta(days=int(p.get("extra_days", 1)))
    if rule.fiscal_year:
        target = target.replace(year=target.year + 1, day=min(target.day, 28))  # a whole 年度 later
    days = (target - start.date()).days
    ctx.driver.advance(timedelta(days=days))
    record.value = {"days": days}


@step("view_deceased")
def _view_deceased(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """`user` opens the 住民票 detail of the person of an earlier `record_death` (`of`, default `death`) at 既存住基:
    the same access check, masking and log as for a living resident (DATA-005 with AUTH-006)."""
    lc = _lifecycle(ctx, p)
    code = str(_earlier(ctx, {"of": p.get("of", "death")})["resident_code"])
    registry = ctx.world.registry(lc.municipality)
    session = ctx.session(registry.staff, str(p.get("user", "clerk-a")))
    purpose = str(p.get("purpose", "死亡に伴う事務"))
    _drive(ctx, record, lambda now: registry.resident_detail(session, code, now, purpose=purpose))
