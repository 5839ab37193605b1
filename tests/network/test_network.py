"""Networks, terminals and the counter (NET, TERM, MADO): the profile data, the firewall, link authentication,
logins on a terminal, the screen lock and the counter's identity check, in one real world (桑名市 → つくば市)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from simulator.components.counter import Counter
from simulator.components.network import EICAR, Network, load_network_data
from simulator.components.staff import StaffSession, biometric_sample
from simulator.components.terminal import TerminalFleet
from simulator.controls.catalogue import PROFILES
from simulator.errors import InputError
from simulator.profile_world import municipality_spec, world_pair
from simulator.world import DEMO_PASSWORD, World, WorldSpec


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    provider, requester = world_pair("tsukuba")
    spec = WorldSpec(
        (municipality_spec(provider), municipality_spec(requester)),
        datetime.fromisoformat("2026-11-24T09:00:00+09:00"),
    )
    w = World.create(tmp_path_factory.mktemp("net") / "world", spec)
    yield w
    w.close()


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def tick(self, **delta: float) -> datetime:
        self.now += timedelta(**delta) if delta else timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock(world: World) -> Clock:
    return Clock(world.spec.start + timedelta(hours=1))


def network(world: World, m: str = "tsukuba") -> Network:
    c = world.component(f"{m}.network")
    assert isinstance(c, Network)
    return c


def fleet(world: World, m: str = "tsukuba") -> TerminalFleet:
    c = world.component(f"{m}.terminals")
    assert isinstance(c, TerminalFleet)
    return c


def sample(world: World, m: str, user: str) -> str | None:
    staff = world.registry(m).staff
    modality = staff.policy.biometric
    return biometric_sample(modality, staff.person(user) or user) if modality else None


def login(world: World, clock: Clock, m: str, terminal: str, user: str, mac: str | None = None) -> str | None:
    result = fleet(world, m).login(
        terminal, mac, f"{m}.registry", user, DEMO_PASSWORD, clock.tick(), biometric=sample(world, m, user)
    )
    return result.value if result.refusal is None else None


def test_every_profile_has_network_data_with_cited_facts() -> None:
    data = load_network_data()
    assert set(PROFILES) <= set(data)
    for spec in data.values():
        for terminal in spec.terminals:
            assert terminal.source.seed.endswith(".txt") and terminal.source.line >= 1


def test_bad_network_data_names_the_profile_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "network.yaml"
    bad.write_text(
        "kuwana:\n  segments: []\n  hosts: {registry: nowhere}\n  hosts_source: {seed: a.txt, line: 1}\n  terminals: []\n  flows: []\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as info:
        load_network_data(bad)
    assert info.value.field.startswith("network.yaml:") and " kuwana" in info.value.field
    assert "nowhere" in info.value.rule


def test_only_whitelisted_flows_pass_and_every_attempt_is_recorded(world: World, clock: Clock) -> None:
    net = network(world, "kuwana")
    passed = net.connect("atena", "platform_path", 443, clock.tick())
    assert passed.refusal is None and [d.control_id for d in passed.decisions] == ["NET-001", "NET-002"]
    dropped = net.connect("tax", "platform_path", 443, clock.tick())
    assert dropped.refusal is not None and dropped.refusal.control_id == "NET-001"
    logged = [(c["source"], c["passed"]) for c in net.connections()[-2:]]
    assert logged == [("atena", 1), ("tax", 0)]


def test_the_separated_network_has_no_route_to_the_internet(world: World, clock: Clock) -> None:
    result = network(world).connect("T-KIKAN-01", "segment:internet", 80, clock.tick())
    assert result.refusal is not None and result.refusal.code == "Access.NoRoute"
    assert result.refusal.control_id == "NET-002"


def test_a_link_peer_with_a_self_signed_certificate_gets_nothing(world: World, clock: Clock) -> None:
    from simulator.verify.steps_net import _impostor_certificate

    net = network(world)
    cs, pref = net.parties["municipal_cs"], net.parties["prefectural_server"]
    genuine = net.authenticate_link(cs, pref, net.chain_of(pref), clock.tick())
    assert genuine.refusal is None and genuine.decisions[0].control_id == "NET-003"

    class Ctx:
        driver = clock

    impostor = net.authenticate_link(cs, pref, [_impostor_certificate(pref, Ctx())], clock.tick())  # type: ignore[arg-type]
    assert impostor.refusal is not None and impostor.refusal.code == "Security.UnknownCertificate"
    rows = net.conn.execute("SELECT authenticated FROM net_links ORDER BY seq DESC LIMIT 2").fetchall()
    assert [r[0] for r in rows] == [0, 1]


def test_an_unregistered_or_cloned_terminal_is_refused_and_logged_before_any_password_check(
    world: World, clock: Clock
) -> None:
    assert login(world, clock, "tsukuba", "T-HOME-PC-99", "clerk-a") is None
    assert login(world, clock, "tsukuba", "T-KIKAN-01", "clerk-a", mac="3c:22:fb:10:20:30") is None
    events = [e for e in fleet(world).events() if e["event"] == "login"][-2:]
    assert [e["outcome"] for e in events] == ["refused", "refused"]
    assert "SystemNotRegistered" in events[0]["detail"] and "StateConflict" in events[1]["detail"]
    assert login(world, clock, "tsukuba", "T-KIKAN-01", "clerk-a") is not None


def test_an_idle_screen_locks_and_only_its_own_user_unlocks_it(world: World, clock: Clock) -> None:
    f = fleet(world, "kuwana")
    session = login(world, clock, "kuwana", "T-KIKAN-01", "clerk-a")
    assert session is not None
    assert f.view(session, "住民票", clock.tick()).refusal is None
    locked = f.view(session, "住民票", clock.tick(minutes=11))
    assert locked.refusal is not None and locked.value is None
    other = f.unlock(session, "clerk-b", DEMO_PASSWORD, clock.tick(), biometric=sample(world, "kuwana", "clerk-b"))
    assert other.refusal is not None and other.refusal.control_id == "TERM-001"
    own = f.unlock(session, "clerk-a", DEMO_PASSWORD, clock.tick(), biometric=sample(world, "kuwana", "clerk-a"))
    assert own.refusal is None
    assert f.view(session, "住民票", clock.tick()).value["shown"] == "住民票"


def test_a_test_virus_is_quarantined(world: World, clock: Clock) -> None:
    net = network(world)
    result = net.scan("T-KIKAN-01", "eicar.com", f"X5O!{EICAR}!", clock.tick())
    assert result.refusal is not None and result.refusal.control_id == "NET-005"
    assert net.quarantine()[-1]["name"] == "eicar.com"


def test_counter_intake_without_identity_check_writes_nothing(world: World, clock: Clock) -> None:
    counter = world.component("kuwana.counter")
    assert isinstance(counter, Counter)
    staff = world.registry("kuwana").staff
    clerk: StaffSession = staff.authenticate(
        "clerk-a", DEMO_PASSWORD, now=clock.tick(), biometric=sample(world, "kuwana", "clerk-a")
    )
    before = counter.conn.execute("SELECT COUNT(*) FROM registry_pending_changes").fetchone()[0]
    form = {"change_type": "move_within", "resident_code": "00000000000", "address": "x", "postal_code": "511-0001",
            "change_date": clock.now.date().isoformat()}
    result = counter.intake(clerk, form, None, clock.tick())
    assert result.refusal is not None and result.refusal.control_id == "MADO-001"
    agent = counter.intake(clerk, form, {"document": "my_number_card", "applicant": "agent"}, clock.tick())
    assert agent.refusal is not None and agent.refusal.field == "id_check.letter_of_authority"
    assert counter.conn.execute("SELECT COUNT(*) FROM registry_pending_changes").fetchone()[0] == before
    assert counter.checks() == []


def test_a_reopened_world_keeps_its_terminals_and_revocations(world: World, clock: Clock) -> None:
    network(world).report_lost("R-SIM-01", clock.tick())
    reopened = World.open(world.data_dir, world.spec)
    try:
        found = network(reopened).terminal("R-SIM-01")
        assert found is not None and found[1] is not None
    finally:
        reopened.close()


def test_every_flow_between_two_parties_rides_a_link_the_directory_declares(world: World) -> None:
    for m in ("kuwana", "tsukuba"):
        net = network(world, m)
        for flow in net.data.flows:
            a = net.parties.get(net.host_key(flow.source_endpoint))
            b = net.parties.get(net.host_key(flow.to))
            if a and b:
                assert world.directory.network_between(a, b) is not None, (m, flow.source_endpoint, flow.to)


def test_the_vpn_leg_is_named_on_tsukubas_platform_flow(world: World, clock: Clock) -> None:
    result = network(world).connect("atena", "platform_path", 443, clock.tick())
    assert result.refusal is None and result.decisions[0].evidence["link"] == "vpn"


def test_a_refused_local_save_leaves_nothing_on_the_terminal(world: World, clock: Clock) -> None:
    f = fleet(world)
    session = login(world, clock, "tsukuba", "T-KIKAN-02", "clerk-b")
    assert session is not None
    refused = f.save(session, "住基抽出.csv", "local", clock.tick())
    assert refused.refusal is not None and refused.refusal.control_id == "TERM-003"
    assert f.save(session, "集計.xlsx", "vdi", clock.tick()).refusal is None
    assert f.local_files("T-KIKAN-02") == []


def test_only_the_information_director_registers_a_terminal(world: World, clock: Clock) -> None:
    from simulator.components.network import Source, TerminalSpec

    spec = TerminalSpec(
        id="T-NEW-01", segment="kikan", mac="02:4a:00:00:09:01", department="市民課", users=["clerk-a"],
        source=Source(seed="test", line=1, inferred=True, reason="a test terminal"),
    )
    staff = world.registry("tsukuba").staff
    for user, ok in (("clerk-a", False), ("joho-kacho", True)):
        session = staff.authenticate(user, DEMO_PASSWORD, now=clock.tick(), biometric=sample(world, "tsukuba", user))
        result = network(world).register_terminal(session, session.roles, spec, clock.tick())
        assert (result.refusal is None) is ok
    assert login(world, clock, "tsukuba", "T-NEW-01", "clerk-a") is not None
