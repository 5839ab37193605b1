"""Step kinds for networks, terminals and the counter (NET, TERM, MADO): connections through the firewall, link
authentication, anti-malware, off-site devices, logins on a terminal, screen lock, camera, media, installs and
counter intake.

Each step drives one command of a municipality's ``<m>.network``, ``<m>.terminals`` or ``<m>.counter``
(simulator.components.network / terminal / counter); the decisions are theirs. `municipality` defaults to the
scenario's profile. A step that needs an earlier terminal session names the login step (`login: <step name>`).
The one thing a step makes itself is an impostor's self-signed certificate (`net_handshake` with `impostor`),
as an attacker would.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from simulator.components.base import Component
from simulator.components.counter import FOUR_ITEMS, Counter
from simulator.components.network import EICAR, Network, TerminalSpec
from simulator.components.staff import StaffDirectory, biometric_sample
from simulator.components.terminal import TerminalFleet
from simulator.verify.steps import ScenarioContext, StepError, StepRecord, _drive, step
from simulator.world import DEMO_PASSWORD


def _municipality(ctx: ScenarioContext, p: dict[str, Any]) -> str:
    raw = str(p.get("municipality", "profile"))
    return ctx.placeholders["profile"] if raw == "profile" else ctx.municipality(raw, ctx.provider)


def _part(ctx: ScenarioContext, p: dict[str, Any], suffix: str) -> Component:
    m = _municipality(ctx, p)
    try:
        return ctx.world.component(f"{m}.{suffix}")
    except KeyError:
        raise StepError("municipality", f"{m} has no {suffix} (scenarios/data/network.yaml)") from None


def _network(ctx: ScenarioContext, p: dict[str, Any]) -> Network:
    c = _part(ctx, p, "network")
    assert isinstance(c, Network)
    return c


def _fleet(ctx: ScenarioContext, p: dict[str, Any]) -> TerminalFleet:
    c = _part(ctx, p, "terminals")
    assert isinstance(c, TerminalFleet)
    return c


def _session_of(ctx: ScenarioContext, p: dict[str, Any]) -> str:
    name = str(p.get("login", ""))
    record = ctx.records.get(name)
    if record is None or not isinstance(record.value, str):
        raise StepError("login", f"no earlier successful login step named {name!r}")
    return record.value


def _sample(staff: StaffDirectory, user: str, p: dict[str, Any]) -> str | None:
    """The finger or face at the sensor: `biometric_of` another user's, `none`, or by default the user's own."""
    modality = staff.policy.biometric
    whose = str(p.get("biometric_of", user))
    if modality is None or whose == "none":
        return None
    return biometric_sample(modality, staff.person(whose) or whose)


def _registry_staff(ctx: ScenarioContext, p: dict[str, Any]) -> StaffDirectory:
    staff: StaffDirectory | None = getattr(_part(ctx, p, "registry"), "staff", None)
    if staff is None:
        raise StepError("municipality", "the registry has no staff accounts")
    return staff


# -- NET ---------------------------------------------------------------------------------------------------


@step("net_connect")
def _net_connect(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A connection through the firewall: `from`, `to` (a host key such as atena, platform_path, registry, a
    terminal id, or segment:<id>), `port` (default 443) (NET-001/002/004)."""
    network = _network(ctx, p)
    source, destination, port = str(p["from"]), str(p["to"]), int(p.get("port", 443))
    _drive(ctx, record, lambda now: network.connect(source, destination, port, now))


def _impostor_certificate(party: str, ctx: ScenarioContext) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)])
    now = ctx.driver.now
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


@step("net_handshake")
def _net_handshake(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Mutual authentication before a link carries data: `local` (default municipal_cs), `peer` (default
    prefectural_server); `impostor: true` presents a self-signed certificate in the peer's name (NET-003)."""
    network = _network(ctx, p)
    local = network.parties.get(str(p.get("local", "municipal_cs")), str(p.get("local", "")))
    peer = network.parties.get(str(p.get("peer", "prefectural_server")), str(p.get("peer", "")))
    chain = [_impostor_certificate(peer, ctx)] if p.get("impostor") else network.chain_of(peer)
    _drive(ctx, record, lambda now: network.authenticate_link(local, peer, chain, now))


@step("net_hygiene")
def _net_hygiene(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Anti-malware and patches (NET-005): `action` update_definitions | release_patch | apply_patch | compliance,
    `host` (a host key or terminal id), `patch`."""
    network = _network(ctx, p)
    action, host, patch = str(p["action"]), str(p.get("host", "registry")), str(p.get("patch", ""))
    if action == "update_definitions":
        _drive(ctx, record, lambda now: network.update_definitions(host, now))
    elif action == "release_patch":
        _drive(ctx, record, lambda now: network.release_patch(patch, now))
    elif action == "apply_patch":
        _drive(ctx, record, lambda now: network.apply_patch(host, patch, now))
    elif action == "compliance":
        _drive(ctx, record, lambda now: network.compliance(host, now))
    else:
        raise StepError("action", "update_definitions, release_patch, apply_patch or compliance")


@step("net_scan")
def _net_scan(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A file on a host, or a mail (`kind: mail`), passes the scanner: `content`, or `eicar: true` (NET-005)."""
    network = _network(ctx, p)
    host, name = str(p.get("host", "T-KIKAN-01")), str(p.get("file", "document.txt"))
    content = EICAR if p.get("eicar") else str(p.get("content", "住民異動届 集計表"))
    kind = str(p.get("kind", "file"))
    _drive(ctx, record, lambda now: network.scan(host, name, content, now, kind=kind))


@step("net_lend")
def _net_lend(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The 所属長 (`approver`, default dept-head) approves lending SIM `device` to `user` (NET-006)."""
    network = _network(ctx, p)
    staff = _registry_staff(ctx, p)
    approver = ctx.session(staff, str(p.get("approver", "dept-head")))
    device, user = str(p["device"]), str(p["user"])
    _drive(ctx, record, lambda now: network.approve_loan(approver, approver.roles, device, user, now))


@step("net_remote")
def _net_remote(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Open an off-site session on `device` for `user` (NET-006/007); value: the session id."""
    network = _network(ctx, p)
    device, user = str(p["device"]), str(p["user"])
    _drive(ctx, record, lambda now: network.remote_connect(device, user, now))


@step("net_remote_use")
def _net_remote_use(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A request in the off-site session opened by step `login` (NET-006)."""
    network = _network(ctx, p)
    session = _session_of(ctx, p)
    _drive(ctx, record, lambda now: network.remote_use(session, now))


@step("net_lost")
def _net_lost(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A device is reported lost and revoked (NET-007)."""
    network = _network(ctx, p)
    device = str(p["device"])
    _drive(ctx, record, lambda now: network.report_lost(device, now))


@step("term_register")
def _term_register(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Register a terminal: `terminal`, `segment`, `mac`, `department`, `users`, by `approver` (default
    joho-kacho, the 情報主管課長) (NET-003)."""
    network = _network(ctx, p)
    approver = ctx.session(_registry_staff(ctx, p), str(p.get("approver", "joho-kacho")))
    try:
        spec = TerminalSpec.model_validate(
            {
                "id": p["terminal"],
                "segment": p.get("segment", "kikan"),
                "mac": p["mac"],
                "department": p.get("department", "市民課"),
                "users": list(p.get("users", [])),
                "source": {"seed": "scenario", "line": 1, "inferred": True, "reason": "registered by a scenario"},
            }
        )
    except ValidationError as error:
        raise StepError("terminal", str(error.errors()[0]["msg"])) from None
    _drive(ctx, record, lambda now: network.register_terminal(approver, approver.roles, spec, now))


# -- TERM --------------------------------------------------------------------------------------------------


@step("term_login")
def _term_login(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Staff login on a terminal: `terminal`, `mac` (default: the terminal presents its own), `system` (default
    registry), `user`, `password`, `biometric_of` (NET-001/003/007, then the system's AUTH checks)."""
    fleet = _fleet(ctx, p)
    m = _municipality(ctx, p)
    system = f"{m}.{p.get('system', 'registry')}"
    staff: StaffDirectory | None = getattr(fleet.systems.get(system), "staff", None)
    if staff is None:
        raise StepError("system", f"{system} has no staff accounts")
    user, password = str(p["user"]), str(p.get("password", DEMO_PASSWORD))
    terminal = str(p["terminal"])
    mac = str(p["mac"]) if "mac" in p else None
    sample = _sample(staff, user, p)
    _drive(ctx, record, lambda now: fleet.login(terminal, mac, system, user, password, now, biometric=sample))


@step("term_view")
def _term_view(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Show a record in the session of step `login`; `my_number: true` for a 個人番号 function (TERM-001/006)."""
    fleet = _fleet(ctx, p)
    session = _session_of(ctx, p)
    what, my_number = str(p.get("what", "住民票")), bool(p.get("my_number", False))
    _drive(ctx, record, lambda now: fleet.view(session, what, now, my_number=my_number))


@step("term_unlock")
def _term_unlock(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Unlock the screen of step `login` as `user` (their own password and finger/face unless `biometric_of`)."""
    fleet = _fleet(ctx, p)
    session = _session_of(ctx, p)
    user, password = str(p["user"]), str(p.get("password", DEMO_PASSWORD))
    system = str(
        fleet.conn.execute("SELECT system FROM term_sessions WHERE session_id = ?", (session,)).fetchone()[0]
    )
    sample = _sample(fleet._staff(system), user, p)
    _drive(ctx, record, lambda now: fleet.unlock(session, user, password, now, biometric=sample))


@step("term_camera")
def _term_camera(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """The terminal camera sees `faces` faces in the session of step `login` (TERM-002)."""
    fleet = _fleet(ctx, p)
    session, faces = _session_of(ctx, p), int(p.get("faces", 1))
    _drive(ctx, record, lambda now: fleet.camera(session, faces, now))


@step("term_save")
def _term_save(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Save `name` to `target` vdi or local in the session of step `login` (TERM-003)."""
    fleet = _fleet(ctx, p)
    session, name, target = _session_of(ctx, p), str(p.get("name", "extract.csv")), str(p.get("target", "vdi"))
    _drive(ctx, record, lambda now: fleet.save(session, name, target, now))


@step("term_media")
def _term_media(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """External media (TERM-004): `action` approve | grant_copy | mount | copy; `media`; `approver` (default
    joho-kacho) for approve/grant_copy; `user` for grant_copy; `login` for mount/copy; `what` for copy."""
    fleet = _fleet(ctx, p)
    action, media = str(p["action"]), str(p["media"])
    if action in ("approve", "grant_copy"):
        approver = ctx.session(_registry_staff(ctx, p), str(p.get("approver", "joho-kacho")))
        if action == "approve":
            _drive(ctx, record, lambda now: fleet.approve_media(approver, media, now))
        else:
            user = str(p["user"])
            _drive(ctx, record, lambda now: fleet.grant_copy(approver, media, user, now))
    elif action == "mount":
        session = _session_of(ctx, p)
        _drive(ctx, record, lambda now: fleet.mount(session, media, now))
    elif action == "copy":
        session, what = _session_of(ctx, p), str(p.get("what", "住基抽出ファイル"))
        _drive(ctx, record, lambda now: fleet.copy_to_media(session, media, what, now))
    else:
        raise StepError("action", "approve, grant_copy, mount or copy")


@step("term_saas")
def _term_saas(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Open `service` (default counter_dx) from `terminal` (TERM-005)."""
    fleet = _fleet(ctx, p)
    terminal, service = str(p["terminal"]), str(p.get("service", "counter_dx"))
    _drive(ctx, record, lambda now: fleet.open_saas(terminal, service, now))


@step("term_install")
def _term_install(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """Software installs (TERM-007): `action` request | approve | install; `terminal`, `package`; approve names
    the `request` step and the `approver` (default joho-kacho)."""
    fleet = _fleet(ctx, p)
    action = str(p["action"])
    if action == "request":
        terminal, package = str(p["terminal"]), str(p["package"])
        applicant = str(p.get("applicant", "clerk-a"))
        _drive(ctx, record, lambda now: fleet.request_install(terminal, package, applicant, now))
    elif action == "approve":
        request = ctx.records.get(str(p.get("request", "")))
        if request is None or not isinstance(request.value, str):
            raise StepError("request", "name an earlier request step")
        approver = ctx.session(_registry_staff(ctx, p), str(p.get("approver", "joho-kacho")))
        request_id = request.value
        _drive(ctx, record, lambda now: fleet.approve_install(approver, request_id, now))
    elif action == "install":
        terminal, package = str(p["terminal"]), str(p["package"])
        _drive(ctx, record, lambda now: fleet.install(terminal, package, now))
    else:
        raise StepError("action", "request, approve or install")


# -- MADO --------------------------------------------------------------------------------------------------


@step("counter_intake")
def _counter_intake(ctx: ScenarioContext, record: StepRecord, p: dict[str, Any]) -> None:
    """A 届出 at the counter (MADO-001): `resident` (index of an active resident of the municipality; their
    resident_code is filled into the `form`, as for `change`), `id_check` ({document, applicant: self|agent,
    letter_of_authority, move_in_basis, card: own | resident:<index>}) or none, the `clerk` (default clerk-a) and
    `confirm_as` (default clerk-b; `confirm: false` leaves the change pending)."""
    c = _part(ctx, p, "counter")
    assert isinstance(c, Counter)
    m = _municipality(ctx, p)
    person = ctx.person(f"resident:{m}:{int(p.get('resident', 0))}")
    form = dict(p["form"])
    if "resident_code" not in form and form.get("change_type") not in ("birth", "move_in"):
        form["resident_code"] = person["resident_code"]
    if isinstance(form.get("change_date"), str) and form["change_date"].startswith("today"):
        form["change_date"] = (ctx.driver.now.date() + timedelta(days=int(form["change_date"][5:] or 0))).isoformat()
    id_check = dict(p["id_check"]) if isinstance(p.get("id_check"), dict) else None
    if id_check is not None and "card" in id_check:
        card = str(id_check["card"])
        holder = person if card == "own" else ctx.person(f"resident:{m}:{int(card.removeprefix('resident:'))}")
        id_check["card"] = {k: holder.get(k) for k in FOUR_ITEMS}
    registry_staff = c.registry.staff
    clerk = ctx.session(registry_staff, str(p.get("clerk", "clerk-a")))
    _drive(ctx, record, lambda now: c.intake(clerk, form, id_check, now))
    if record.refusal is not None or p.get("confirm", True) is False:
        return
    confirmer = ctx.session(registry_staff, str(p.get("confirm_as", "clerk-b")))
    change_id = str(record.value)
    _drive(ctx, record, lambda now: c.registry.confirm_change(confirmer, change_id, True, now))
