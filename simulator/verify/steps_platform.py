"""Step kinds for the 中間サーバー・プラットフォーム's own functions (PF-007/008, CHUKAN-006) and the linkage and
inquiry records (LOG-008/009).

Steps drive the components' commands as the platform operator, the tenant's staff, a business system or a
diff job would. Where a scenario needs a fault (a lost message), the step drops it on the way; steps never
decide, and the components' decisions are what expectations match.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from simulator.components.base import Result
from simulator.components.platform import BackupTarget, TenantPlatform, reconcile_replica
from simulator.model.envelope import MessageType
from simulator.verify.steps import ScenarioContext, StepError, StepRecord, step
from simulator.verify.steps_chukan import _run, _staff_step

__all__: list[str] = []


def _earlier(ctx: ScenarioContext, p: dict[str, Any]) -> Any:
    of = str(p.get("of", ""))
    if of not in ctx.records or ctx.records[of].value is None:
        raise StepError("of", f"names no earlier step with a result ({of!r})")
    return ctx.records[of].value


@step("platform_backup")
def _platform_backup(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The platform operator backs a tenant's store up to `target` ({name, country, tier})."""
    t = dict(p.get("target") or {})
    target = BackupTarget(str(t.get("name", "dc-db")), str(t.get("country", "JP")), str(t.get("tier", "database")))
    _staff_step(
        ctx,
        record,
        {"user": "operator", **p},
        ctx.provider,
        lambda c, s, now: TenantPlatform(c).backup(s, target, now),
    )


@step("platform_restore")
def _platform_restore(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The platform operator restores the backup of an earlier `platform_backup` step (`of`) and checks it."""
    backup_id = str(_earlier(ctx, p))
    _staff_step(
        ctx,
        record,
        {"user": "operator", **p},
        ctx.provider,
        lambda c, s, now: TenantPlatform(c).restore(s, backup_id, now),
    )


@step("delete_tenant_data")
def _delete_tenant_data(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A delete of one person's 副本 rows (`atena_number`, default: the tenant's first row), as `user`."""
    chukan = ctx.world.intermediate(ctx.municipality(p.get("municipality"), ctx.provider))
    number = p.get("atena_number")
    if number is None:
        row = chukan.conn.execute(
            "SELECT atena_number FROM chukan_replicas WHERE tenant = ? ORDER BY atena_number LIMIT 1", (chukan.tenant,)
        ).fetchone()
        if row is None:
            raise StepError("atena_number", f"{chukan.tenant} has no replica rows")
        number = row[0]
    _staff_step(
        ctx,
        record,
        {"user": "reviewer", **p},
        ctx.provider,
        lambda c, s, now: TenantPlatform(c).delete_person(s, str(number), now),
    )


@step("disk_swap")
def _disk_swap(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The platform operator swaps a disk (`disk_id`), with an `erase` record {method, certificate} or none."""
    erase = p.get("erase")
    disk = str(p.get("disk_id", f"disk-{uuid.uuid4().hex[:6]}"))
    _staff_step(
        ctx,
        record,
        {"user": "operator", **p},
        ctx.provider,
        lambda c, s, now: TenantPlatform(c).swap_disk(s, disk, dict(erase) if isinstance(erase, dict) else None, now),
    )


@step("disk_audit")
def _disk_audit(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The platform audit of disk swaps against erase records."""
    chukan = ctx.world.intermediate(ctx.municipality(p.get("municipality"), ctx.provider))
    _run(ctx, record, lambda now: TenantPlatform(chukan).audit_disk_swaps(now))


@step("export_replica")
def _export_replica(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Tenant staff export the 副本 of `item` (default local_tax_info) for reconciliation."""
    item = str(p.get("item", "local_tax_info"))
    _staff_step(
        ctx,
        record,
        {"user": "reviewer", **p},
        ctx.provider,
        lambda c, s, now: TenantPlatform(c).export_replica(s, item, now),
    )


@step("reconcile_replica")
def _reconcile_replica(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The city-side diff job: the export of an earlier step (`of`) against `business`'s 原本 (default tax)."""
    export = _earlier(ctx, p)
    if not isinstance(export, dict) or "rows" not in export:
        raise StepError("of", "names no export_replica step")
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    system = ctx.world.business(m, str(p.get("business", "tax")))
    _run(ctx, record, lambda now: reconcile_replica(system, export, now))


def _changed(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    if "taxable_income" in out:
        out["taxable_income"] = int(out["taxable_income"]) + 1000
    elif "premium_stage" in out:
        out["premium_stage"] = 1 if int(out["premium_stage"]) != 1 else 2
    else:
        out["address"] = f"{out.get('address', '')}（変更）"
    return out


@step("update_original")
def _update_original(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A business system updates its 原本 (`new_person: true`: registers a resident it did not hold); with
    `lose_replica: true` the 副本 update is lost on the way to 宛名, so the 副本 diverges from the 原本."""
    m = ctx.municipality(p.get("municipality"), ctx.provider)
    system = ctx.world.business(m, str(p.get("business", "tax")))
    rows = system.conn.execute(
        f"SELECT business_atena_number, my_number, record FROM {system.table}_records ORDER BY business_atena_number"
    ).fetchall()
    if not rows:
        raise StepError("business", f"{system.party} holds no records")
    if p.get("new_person"):
        held = {str(r[1]) for r in rows}
        fresh = [
            r for r in ctx.population.residents.get(m, []) if r["status"] == "active" and r["my_number"] not in held
        ]
        if not fresh:
            raise StepError("new_person", f"every active resident of {m} is already in {system.party}")
        number, my_number, new = f"N{uuid.uuid4().int % 10**9:09d}", str(fresh[0]["my_number"]), json.loads(rows[0][2])
    else:
        number, my_number, new = str(rows[0][0]), str(rows[0][1]), _changed(json.loads(rows[0][2]))
    lose = bool(p.get("lose_replica", False))

    def act(now: datetime) -> Result:
        result = system.register(number, my_number, new, now)
        if lose:
            result.outgoing = [o for o in result.outgoing if o.envelope.type != MessageType.REPLICA_UPDATE]
        return result

    _run(ctx, record, act)


@step("inquiry")
def _inquiry(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The registry's inquiry desk: `action: receive` (`channel`, `subject`) or `close` (`of`, `response`)."""
    from simulator.components.inquiry import InquiryDesk

    registry = ctx.world.registry(ctx.municipality(p.get("municipality"), ctx.provider))
    desk = InquiryDesk(registry)
    session = ctx.session(registry.staff, str(p.get("user", "clerk-a")))
    if str(p.get("action", "receive")) == "receive":
        channel, subject = str(p.get("channel", "phone")), str(p.get("subject", ""))
        _run(ctx, record, lambda now: desk.receive(session, channel, subject, now))
        return
    inquiry_id, response = str(_earlier(ctx, p)), str(p.get("response", ""))
    _run(ctx, record, lambda now: desk.close(session, inquiry_id, response, now))


@step("utm_traffic")
def _utm_traffic(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Connections through the UTM toward a tenant's 中間サーバー: from `from` (a party; default the tenant's
    city-side peer) over `network` (default the network that party is linked on) to `port` (default 443) with
    `payload`; `ports: [..]` tries each port in turn, one second apart (a port scan)."""
    chukan = ctx.world.intermediate(ctx.municipality(p.get("municipality"), ctx.provider))
    source = str(p.get("from") or chukan.atena_party)
    linked = ctx.world.directory.network_between(source, chukan.party)
    network = str(p.get("network") or linked or "internet")
    payload = str(p.get("payload", ""))
    ports = [int(x) for x in p.get("ports", [p.get("port", 443)])]
    if not ports:
        raise StepError("ports", "names no port")
    platform = TenantPlatform(chukan)

    def attempt(port: int) -> Callable[[datetime], Result]:
        return lambda now: platform.utm_screen(source, network, port, payload, now)

    for index, port in enumerate(ports):
        if index:
            ctx.driver.advance(timedelta(seconds=1))
        _run(ctx, record, attempt(port))
    record.value = [h.refusal is None for h in record.hops]


@step("utm_analyse")
def _utm_analyse(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The platform operator's log-analysis job over the UTM log of a tenant."""
    _staff_step(
        ctx, record, {"user": "operator", **p}, ctx.provider, lambda c, s, now: TenantPlatform(c).utm_analyse(s, now)
    )


@step("host_report")
def _host_report(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A platform host's agent reports (`host`, `pattern_age_days`: how old its pattern file is, `patches`:
    {os, middleware} levels), sent in by the platform operator."""
    host = str(p.get("host", ""))
    age = timedelta(days=float(p.get("pattern_age_days", 0)))
    patches = {str(k): int(v) for k, v in dict(p.get("patches") or {}).items()}
    _staff_step(
        ctx,
        record,
        {"user": "operator", **p},
        ctx.provider,
        lambda c, s, now: TenantPlatform(c).host_report(s, host, now - age, patches, now),
    )


@step("patch_release")
def _patch_release(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A vendor patch for `layer` (os, middleware) at `level` is registered by the platform operator."""
    layer, level = str(p.get("layer", "os")), int(p.get("level", 1))
    _staff_step(
        ctx,
        record,
        {"user": "operator", **p},
        ctx.provider,
        lambda c, s, now: TenantPlatform(c).release_patch(s, layer, level, now),
    )


@step("host_compliance")
def _host_compliance(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The compliance job over the platform's host inventory (`quarantine: true` isolates flagged hosts)."""
    quarantine = bool(p.get("quarantine", False))
    _staff_step(
        ctx,
        record,
        {"user": "operator", **p},
        ctx.provider,
        lambda c, s, now: TenantPlatform(c).compliance_check(s, now, quarantine=quarantine),
    )


@step("reconcile_exchanges")
def _reconcile_exchanges(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The count reconciliation of a hub's 情報連携記録 (LOG-008): `hub` is a party (e.g. `{provider}.office_link`,
    `{provider}.juki_gateway`; `{provider}` / `{requester}` are replaced by the world's municipalities)."""
    from simulator.components.oplog import reconcile_exchanges

    party = str(p.get("hub", "{provider}.office_link")).format(provider=ctx.provider, requester=ctx.requester)
    hub = ctx.component(party)
    _run(ctx, record, lambda now: reconcile_exchanges(hub, now))
