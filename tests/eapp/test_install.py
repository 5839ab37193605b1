"""The extension installs, from the profile data, exactly the parts each municipality of a world claims, and a
reopened world re-attaches to them (same JPKI root, its own cloud configuration) instead of seeding them again."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.components.cloud import GovCloud
from simulator.components.eapp import JpkiAuthority
from simulator.crypto.pki import fingerprint
from simulator.demo import setup_world
from simulator.profile_world import municipality_spec
from simulator.world import World

pytestmark = pytest.mark.slow

PARTS = ("e_application", "ai_ocr", "counter_saas", "gov_cloud", "file_server", "backup_client")


def _parts(world: World, municipality: str) -> set[str]:
    return {p for p in PARTS if f"{municipality}.{p}" in world.components}


def test_parts_follow_the_profile_data_and_survive_a_reopen(tmp_path: Path) -> None:
    specs = (municipality_spec("kuwana"), municipality_spec("tsukuba"))
    run = setup_world(tmp_path / "w", size=60, seed=7, municipalities=specs)
    world = run.world
    assert _parts(world, "kuwana") == {"gov_cloud"}
    assert _parts(world, "tsukuba") == set(PARTS)
    assert {"eapp.service", "jlis.jpki", "jlis.backup_center"} <= set(world.components)
    jpki = world.component("jlis.jpki")
    assert isinstance(jpki, JpkiAuthority)
    root = fingerprint(jpki.ca.root_certificate)
    cloud = world.component("tsukuba.gov_cloud")
    assert isinstance(cloud, GovCloud)
    assert cloud.access("vendor", "provider", "closed", world.now).refusal is not None
    sites = cloud.sites()
    world.close()

    reopened = World.open(tmp_path / "w", world.spec)
    try:
        again = reopened.component("jlis.jpki")
        assert isinstance(again, JpkiAuthority) and fingerprint(again.ca.root_certificate) == root
        cloud_again = reopened.component("tsukuba.gov_cloud")
        assert isinstance(cloud_again, GovCloud) and cloud_again.sites() == sites
        denied = cloud_again.conn.execute("SELECT principal FROM cloud_access_log WHERE allowed = 0").fetchall()
        assert denied == [("vendor",)]
    finally:
        reopened.close()


def test_a_world_without_claims_gets_none_of_the_parts(tmp_path: Path) -> None:
    specs = (municipality_spec("iizuka"), municipality_spec("kurashiki"))
    run = setup_world(tmp_path / "w", size=60, seed=7, municipalities=specs)
    try:
        assert _parts(run.world, "iizuka") == set()
        assert _parts(run.world, "kurashiki") == {"e_application"}
        assert "jlis.backup_center" not in run.world.components
    finally:
        run.world.close()
