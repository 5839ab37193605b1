"""AI-OCR retention and reach (SAAS-001/002), 窓口DXSaaS users, boundary and staging (SAAS-003/004/005), the
government-cloud tenant (CLOUD-001/002), the file server (CLOUD-003) and the J-LIS backup centre (CLOUD-004)."""

from __future__ import annotations

from datetime import timedelta

from simulator.components.base import Link, Result
from simulator.model.envelope import MessageType
from tests.eapp.conftest import PASSWORD, EappWorld


def _refused_by(result: Result, control: str) -> bool:
    return result.refusal is not None and result.refusal.control_id == control


def test_ocr_keeps_jobs_only_for_the_retention_days_and_never_for_training(eapp_world: EappWorld) -> None:
    w, ocr = eapp_world, eapp_world.ocr
    pages = [{"image": "scan.png", "text": "筑波 太郎"}]
    first = w.step(lambda now: ocr.submit("lgwan", "lgwan_asp", pages, now))[0]
    w.step(lambda now: ocr.submit("core", "lgwan_asp", pages, now))
    assert w.step(lambda now: ocr.delete_job(first.value, now))[0].refusal is None
    w.tick(timedelta(days=ocr.rules.retention_days - 1))
    assert w.step(lambda now: ocr.retention_check(now))[0].refusal is None
    w.tick(timedelta(days=1, hours=1))
    assert _refused_by(w.step(lambda now: ocr.retention_check(now))[0], "SAAS-001")
    purged = w.step(lambda now: ocr.purge(now))[0]
    assert purged.decisions[0].evidence["deleted"] == 1
    assert w.stores["asp"].execute("SELECT COUNT(*) FROM ocr_jobs").fetchone()[0] == 0
    assert _refused_by(w.step(lambda now: ocr.export_training(now))[0], "SAAS-001")


def test_ocr_is_reached_only_from_the_chosen_terminals_inside_the_closed_network(eapp_world: EappWorld) -> None:
    w, ocr = eapp_world, eapp_world.ocr
    assert _refused_by(w.step(lambda now: ocr.submit("lgwan", "internet", [], now))[0], "SAAS-002")
    assert _refused_by(w.step(lambda now: ocr.submit("internet", "lgwan_asp", [], now))[0], "SAAS-002")
    numbered = [{"image": "scan.png", "text": f"筑波 太郎 {w.residents[0]['my_number']}"}]
    assert _refused_by(w.step(lambda now: ocr.submit("lgwan", "lgwan_asp", numbered, now))[0], "SAAS-002")
    assert w.step(lambda now: ocr.submit("core", "lgwan_asp", numbered, now))[0].refusal is None
    assert w.stores["asp"].execute("SELECT terminal FROM ocr_jobs").fetchall() == [("core",)]


def test_dxsaas_uses_core_accounts_and_rights(eapp_world: EappWorld) -> None:
    w, dx = eapp_world, eapp_world.dx
    ok = w.step(lambda now: dx.login("clerk-a", PASSWORD, None, now))[0]
    assert ok.refusal is None and ok.value.user_id == "clerk-a"
    assert _refused_by(w.step(lambda now: dx.login("clerk-a", "wrong", None, now))[0], "SAAS-003")
    assert _refused_by(w.step(lambda now: dx.login("stranger", PASSWORD, None, now))[0], "SAAS-003")
    no_rights = w.step(lambda now: dx.login("dept-head", PASSWORD, None, now))[0]
    assert _refused_by(no_rights, "SAAS-003") and str(no_rights.refusal.code) == "Auth.RoleMissing"  # type: ignore[union-attr]


def test_dxsaas_reaches_only_registered_endpoints_and_erases_staging(eapp_world: EappWorld) -> None:
    w, dx = eapp_world, eapp_world.dx
    assert w.step(lambda now: dx.connect("office_link_hub", now))[0].refusal is None
    assert _refused_by(w.step(lambda now: dx.connect("internet:example.com", now))[0], "SAAS-004")
    clerk = w.registry.staff.authenticate("clerk-a", PASSWORD)
    w.step(lambda now: dx.stage(clerk, {"case": 1}, now))
    handed = w.step(lambda now: dx.hand_off(now))[0]
    assert handed.decisions[0].evidence == {"linked": 1, "left": 0}
    w.step(lambda now: dx.stage(clerk, {"case": 2}, now))
    w.tick(timedelta(days=1))
    assert _refused_by(w.step(lambda now: dx.staging_check(now))[0], "SAAS-005")


def test_cloud_sites_stay_domestic_and_the_backup_apart(eapp_world: EappWorld) -> None:
    w, cloud = eapp_world, eapp_world.cloud
    assert w.step(lambda now: cloud.configuration_check(now))[0].refusal is None
    production = cloud.rules.production_site
    assert _refused_by(w.step(lambda now: cloud.configure_backup(production, now))[0], "CLOUD-001")
    assert _refused_by(w.step(lambda now: cloud.add_replica("dc-overseas", now))[0], "CLOUD-001")
    assert _refused_by(w.step(lambda now: cloud.configure_backup("dc-overseas", now))[0], "CLOUD-001")
    assert cloud.sites() == {"dc-east": "production", "dc-west": "backup"}


def test_cloud_refuses_provider_and_internet_and_alerts_on_repeats(eapp_world: EappWorld) -> None:
    w, cloud = eapp_world, eapp_world.cloud
    assert w.step(lambda now: cloud.access("staff-01", "staff", "closed", now))[0].refusal is None
    for role, network in (("provider", "closed"), ("state", "closed"), ("staff", "internet")):
        refused = w.step(lambda now, r=role, n=network: cloud.access("vendor", r, n, now))[0]
        assert _refused_by(refused, "CLOUD-002")
    alerted = w.step(lambda now: cloud.monitor(now))[0]
    assert alerted.value == ["vendor"] and alerted.decisions[0].control_id == "CLOUD-002"


def test_the_network_operator_never_mounts_the_protected_area(eapp_world: EappWorld) -> None:
    w, files = eapp_world, eapp_world.files
    operator, clerk = (files.staff.authenticate(u, PASSWORD) for u in ("net-op", "fs-clerk"))
    assert w.step(lambda now: files.mount(operator, "network_config", now))[0].refusal is None
    assert _refused_by(w.step(lambda now: files.mount(operator, "specific_personal_info", now))[0], "CLOUD-003")
    assert w.step(lambda now: files.mount(clerk, "specific_personal_info", now))[0].refusal is None


def test_backups_travel_over_ip_vpn_and_rest_encrypted(eapp_world: EappWorld) -> None:
    w = eapp_world
    rows = [{"resident_code": w.residents[0]["resident_code"], "my_number": w.residents[0]["my_number"]}]
    _, delivered = w.step(lambda now: w.backup_client.upload("snap-1", rows, now))
    assert delivered[0].decisions[0].control_id == "CLOUD-004" and delivered[0].refusal is None
    blob = bytes(w.stores["jlis_backup"].execute("SELECT blob FROM backup_blobs").fetchone()[0])
    assert rows[0]["my_number"].encode() not in blob
    assert w.backup_center.restore("snap-1") == rows
    again = Result()
    w.backup_client.send(
        again, MessageType.BACKUP_UPLOAD, w.backup_center.party, w.tick(), body={"name": "x"}, personal={"rows": rows}
    )
    refused = w.backup_center.handle(again.outgoing[0].wire, Link(w.backup_client.party, "internet"), w.tick())
    assert _refused_by(refused, "CLOUD-004")
