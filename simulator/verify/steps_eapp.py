"""Step kinds for 電子申請, 外部SaaS and ガバメントクラウド (EAPP-001..007, SAAS-001..005, CLOUD-001..004).

Each acts through a component's command, or as a misconfigured system sending its real signed message over the
wrong network; the applicant's client signs with the card's real key, and tampering happens only after signing.
Steps decide nothing and never write a store. The municipality defaults to the profile's own.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from simulator.components.base import Component, Result
from simulator.components.cloud import BACKUP_CENTER, BackupClient, FileServer, GovCloud
from simulator.components.eapp import (
    JPKI_PARTY,
    SERVICE_PARTY,
    EApplication,
    EApplicationService,
    JpkiAuthority,
    sign_application,
)
from simulator.components.saas import AiOcr, CounterSaas
from simulator.components.staff import StaffSession, biometric_sample
from simulator.model.envelope import MessageType
from simulator.verify.steps import STEPS, ScenarioContext, StepError, StepRecord, _drive, step
from simulator.world import DEMO_PASSWORD

__all__: list[str] = []

C = TypeVar("C", bound=Component)


def _municipality(ctx: ScenarioContext, p: dict[str, Any]) -> str:
    return ctx.municipality(p.get("municipality"), ctx.placeholders["profile"])


def _person(ctx: ScenarioContext, p: dict[str, Any]) -> dict[str, Any]:
    """The step's `person`, by default a resident of the municipality."""
    person: dict[str, Any] = p["_person"] or ctx.person(f"resident:{_municipality(ctx, p)}")
    return person


def _part(ctx: ScenarioContext, p: dict[str, Any], suffix: str, kind: type[C]) -> C:
    party = f"{_municipality(ctx, p)}.{suffix}"
    component = ctx.component(party)
    if not isinstance(component, kind):
        raise StepError("municipality", f"{party} is not a {kind.__name__}")
    return component


def _earlier(ctx: ScenarioContext, p: dict[str, Any], param: str) -> Any:
    name = str(p[param])
    earlier = ctx.records.get(name)
    if earlier is None or earlier.value is None:
        raise StepError(param, f"no earlier step named {name!r} produced a value")
    return earlier.value


def _jpki(ctx: ScenarioContext) -> JpkiAuthority:
    component = ctx.component(JPKI_PARTY)
    assert isinstance(component, JpkiAuthority)
    return component


def _misrouted(
    ctx: ScenarioContext,
    record: StepRecord,
    sender: Component,
    recipient: str,
    type_: MessageType,
    network: str,
    body: dict[str, Any],
    personal: dict[str, Any] | None,
) -> None:
    """A misconfigured system sends its ordinary message, signed with its real key, over another network."""
    message = {"from": sender.party, "to": recipient, "type": type_.value, "network": network, "body": body}
    STEPS["send"](ctx, record, message if personal is None else {**message, "personal": personal})


def _run(kind: str, suffix: str, kind_of_part: type[C], run: Callable[[C, datetime], Result]) -> None:
    """Register step ``kind``: one of the part's own checks or batch runs at the step's time, with no parameters."""

    def run_step(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
        part = _part(ctx, p, suffix, kind_of_part)
        _drive(ctx, record, lambda now: run(part, now))

    run_step.__doc__ = run.__doc__  # the run says what it is
    step(kind)(run_step)


# -- 電子申請 ---------------------------------------------------------------------------------------------------


@step("eapp_apply")
def _eapp_apply(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The applicant (`person`, default a resident of the city) signs a form with the card and submits it.

    `procedure` (default the city's first form); `set`: field values to override (`extra` adds fields the form
    lacks); `attachments`; `typed: true` types the 個人番号 instead of taking it from the chip; `number_of:
    <selector>` puts another person's number in the field; `signer: <selector>` signs with another person's card
    (impersonation); `alter_after_signing: {field: value}` changes the form after it was signed (tampering).
    """
    e_app = _part(ctx, p, "e_application", EApplication)
    person = _person(ctx, p)
    form = next((f for f in e_app.rules.procedures if f.id == p.get("procedure")), e_app.rules.procedures[0])
    signer = ctx.person(p["signer"]) if "signer" in p else person
    card = _jpki(ctx).card(str(signer["resident_code"]), str(signer["my_number"]), ctx.driver.now)
    fields: dict[str, Any] = {}
    for name in form.fields:
        fields[name] = person.get(name, f"{name}-{secrets.randbelow(10**6)}")
    fields["my_number"] = card.my_number  # the client copies it from the chip's storage area (EAPP-002)
    if "number_of" in p:
        fields["my_number"] = ctx.person(p["number_of"])["my_number"]
    fields.update(dict(p.get("set", {})))
    fields.update(dict(p.get("extra", {})))
    if "my_number" not in form.fields and "my_number" not in p.get("extra", {}):
        fields.pop("my_number")
    application = {
        "serial": uuid.uuid4().hex[:16],
        "municipality": e_app.municipality,
        "procedure": str(p.get("procedure", form.id)),
        "fields": fields,
        "attachments": list(p.get("attachments", form.attachments[:1])),
        "my_number_source": "typed" if p.get("typed") or "number_of" in p else "card_chip",
    }
    signed = sign_application(card, application)
    if "alter_after_signing" in p:
        signed["application"] = {**application, "fields": {**fields, **dict(p["alter_after_signing"])}}
    service = ctx.component(SERVICE_PARTY)
    assert isinstance(service, EApplicationService)
    _drive(ctx, record, lambda now: service.submit(signed, now))


@step("eapp_revoke_card")
def _eapp_revoke_card(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """機構 revokes the 署名用電子証明書 of `person`'s card (lost card, 失効申請)."""
    person = p["_person"]
    if person is None:
        raise StepError("person", "name whose card is revoked")
    jpki = _jpki(ctx)
    card = jpki.card(str(person["resident_code"]), str(person["my_number"]), ctx.driver.now)
    _drive(ctx, record, lambda now: jpki.revoke_card(card, now))


def _session(ctx: ScenarioContext, e_app: EApplication, user: str) -> StaffSession:
    return ctx.session(e_app.staff, user)


@step("eapp_fetch")
def _eapp_fetch(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """LGWAN-side staff (`user`, default eapp-dl) download the applications; `network: internet` makes a
    misconfigured terminal send the same signed request over another segment."""
    e_app = _part(ctx, p, "e_application", EApplication)
    if "network" in p:
        _misrouted(
            ctx,
            record,
            e_app,
            SERVICE_PARTY,
            MessageType.EAPP_FETCH,
            str(p["network"]),
            {"municipality": e_app.municipality},
            None,
        )
        return
    session = _session(ctx, e_app, str(p.get("user", "eapp-dl")))
    _drive(ctx, record, lambda now: e_app.fetch(session, now))


@step("eapp_import")
def _eapp_import(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Move the LGWAN terminal's applications into the 基幹 side (`user`, default eapp-dl)."""
    e_app = _part(ctx, p, "e_application", EApplication)
    session = _session(ctx, e_app, str(p.get("user", "eapp-dl")))
    _drive(ctx, record, lambda now: e_app.import_to_core(session, now))


_run("eapp_terminal_check", "e_application", EApplication, EApplication.terminal_check)


@step("eapp_dispose_media")
def _eapp_dispose_media(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """`user` disposes of external medium `media`, with `approver` (a user id) or without (omit it)."""
    e_app = _part(ctx, p, "e_application", EApplication)
    session = _session(ctx, e_app, str(p.get("user", "eapp-dl")))
    approver = _session(ctx, e_app, str(p["approver"])) if "approver" in p else None
    media = str(p.get("media", f"usb-{record.name}"))
    _drive(ctx, record, lambda now: e_app.dispose_media(session, media, approver, now))


@step("eapp_pull")
def _eapp_pull(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The business system (`business`, default the first form's) asks for its applications."""
    e_app = _part(ctx, p, "e_application", EApplication)
    business = str(p.get("business", e_app.rules.procedures[0].business))
    _drive(ctx, record, lambda now: e_app.pull(business, now))


@step("eapp_push")
def _eapp_push(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Someone asks the 申請管理システム to send `application` (a step name) to `business` unasked."""
    e_app = _part(ctx, p, "e_application", EApplication)
    serial = str(_earlier(ctx, p, "application"))
    _drive(ctx, record, lambda now: e_app.push(serial, str(p.get("business", "tax")), now))


@step("eapp_enrich")
def _eapp_enrich(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Someone asks the 申請管理システム to join `source` data (e.g. tax) to `application` (a step name)."""
    e_app = _part(ctx, p, "e_application", EApplication)
    serial = str(_earlier(ctx, p, "application"))
    _drive(ctx, record, lambda now: e_app.enrich(serial, str(p.get("source", "tax")), now))


@step("eapp_review")
def _eapp_review(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A reviewer (`user`, default eapp-admin) records `outcome` on the version submitted in step `application`."""
    e_app = _part(ctx, p, "e_application", EApplication)
    serial = str(_earlier(ctx, p, "application"))
    session = _session(ctx, e_app, str(p.get("user", "eapp-admin")))
    _drive(ctx, record, lambda now: e_app.review(session, serial, str(p.get("outcome", "approved")), now))


# -- 外部SaaS --------------------------------------------------------------------------------------------------


@step("ocr_submit")
def _ocr_submit(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A terminal of segment `terminal` (core, lgwan, internet …) sends a form image over `network`;
    `with_my_number: true` scans a form that carries the person's 個人番号."""
    ocr = _part(ctx, p, "ai_ocr", AiOcr)
    person = _person(ctx, p)
    text = f"{person['name']} {person['address']}" + (f" {person['my_number']}" if p.get("with_my_number") else "")
    pages = [{"image": f"scan-{uuid.uuid4().hex[:8]}.png", "text": text}]
    terminal, network = str(p.get("terminal", "lgwan")), str(p.get("network", ocr.rules.server_network))
    _drive(ctx, record, lambda now: ocr.submit(terminal, network, pages, now))


@step("ocr_delete")
def _ocr_delete(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Staff delete the job submitted in step `job`."""
    ocr = _part(ctx, p, "ai_ocr", AiOcr)
    job = str(_earlier(ctx, p, "job"))
    _drive(ctx, record, lambda now: ocr.delete_job(job, now))


_run("ocr_purge", "ai_ocr", AiOcr, AiOcr.purge)
_run("ocr_retention_check", "ai_ocr", AiOcr, AiOcr.retention_check)
_run("ocr_export_training", "ai_ocr", AiOcr, AiOcr.export_training)


@step("dx_login")
def _dx_login(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """`user` signs in to the 窓口DXSaaS with their 基幹 password (and biometric, where the 基幹 policy asks)."""
    saas = _part(ctx, p, "counter_saas", CounterSaas)
    user = str(p["user"])
    modality, person = saas.core_staff.policy.biometric, saas.core_staff.person(user)
    sample = biometric_sample(modality, person) if modality and person else None
    password = str(p.get("password", DEMO_PASSWORD))
    _drive(ctx, record, lambda now: saas.login(user, password, sample, now))


@step("dx_connect")
def _dx_connect(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The DXSaaS calls `destination` (a registered endpoint name, or any host)."""
    saas = _part(ctx, p, "counter_saas", CounterSaas)
    _drive(ctx, record, lambda now: saas.connect(str(p["destination"]), now))


@step("dx_stage")
def _dx_stage(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A counter case (`user`, default clerk-a) stages `person`'s record on the 連携基盤."""
    saas = _part(ctx, p, "counter_saas", CounterSaas)
    person = _person(ctx, p)
    session = ctx.session(saas.core_staff, str(p.get("user", "clerk-a")))
    data = {"resident_code": person["resident_code"], "my_number": person["my_number"], "case": record.name}
    _drive(ctx, record, lambda now: saas.stage(session, data, now))


_run("dx_hand_off", "counter_saas", CounterSaas, CounterSaas.hand_off)
_run("dx_staging_check", "counter_saas", CounterSaas, CounterSaas.staging_check)


# -- ガバメントクラウド・ファイルサーバ・バックアップ ----------------------------------------------------------------


_run("cloud_check", "gov_cloud", GovCloud, GovCloud.configuration_check)
_run("cloud_monitor", "gov_cloud", GovCloud, GovCloud.monitor)


@step("cloud_backup_site")
def _cloud_backup_site(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """An operator configures the backup to `site` (`production` names the production centre)."""
    cloud = _part(ctx, p, "gov_cloud", GovCloud)
    site = str(p["site"]).replace("production", cloud.rules.production_site)
    _drive(ctx, record, lambda now: cloud.configure_backup(site, now))


@step("cloud_replica")
def _cloud_replica(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """An operator adds a replica in `site`."""
    cloud = _part(ctx, p, "gov_cloud", GovCloud)
    _drive(ctx, record, lambda now: cloud.add_replica(str(p["site"]), now))


@step("cloud_access")
def _cloud_access(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """`principal` with `role` (staff, provider, state) reads tenant data over `network` (closed, internet)."""
    cloud = _part(ctx, p, "gov_cloud", GovCloud)
    principal, role = str(p.get("principal", "staff-01")), str(p.get("role", "staff"))
    _drive(ctx, record, lambda now: cloud.access(principal, role, str(p.get("network", "closed")), now))


@step("fs_mount")
def _fs_mount(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """`user` (net-op: the network operator; fs-clerk: 基幹 staff) mounts `share` of the 基幹系ファイルサーバ."""
    server = _part(ctx, p, "file_server", FileServer)
    session = ctx.session(server.staff, str(p["user"]))
    _drive(ctx, record, lambda now: server.mount(session, str(p["share"]), now))


@step("backup_upload")
def _backup_upload(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The city's backup job sends `person`'s record as a snapshot; `network: internet` sends it off the VPN."""
    client = _part(ctx, p, "backup_client", BackupClient)
    person = _person(ctx, p)
    rows = [{"resident_code": person["resident_code"], "my_number": person["my_number"], "name": person["name"]}]
    name = f"{client.party}:{record.name}"
    if "network" in p:
        _misrouted(
            ctx,
            record,
            client,
            BACKUP_CENTER,
            MessageType.BACKUP_UPLOAD,
            str(p["network"]),
            {"name": name},
            {"rows": rows},
        )
        return
    _drive(ctx, record, lambda now: client.upload(name, rows, now))
