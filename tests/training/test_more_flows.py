"""The flows carried beyond the linkage spine: 庁内移転 through the hub and 特例転入 with a held 転出証明書情報.

Each runs in the session's shared world and must show its decisions on the hops (the staff command at the hub
or the CS), and never hand anything along a route the profile did not approve.
"""

from __future__ import annotations

from simulator.components.office_link import HUBS
from simulator.training.flows import OFFICE_HUB, FlowSession
from simulator.training.trace import load_trace


def _decisions(records: list[dict[str, object]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for hop in load_trace(records).hops:
        for d in hop["decisions"]:
            out.setdefault(str(d["control_id"]), set()).add(str(d["outcome"]))
    return out


def test_transfer_goes_through_the_hub_along_an_approved_route(linkage: FlowSession) -> None:
    run = linkage.run("庁内移転")
    hops = load_trace(run.records).hops
    home = run.context.home
    assert all(h["flow"] == "transfer" for h in hops)
    transfers = [h for h in hops if h["message_type"] == "office.transfer"]
    assert transfers and all(h["sender"] == f"{home}.office_link" for h in transfers)
    route = run.context.facts["route"]
    assert route in {r.route_id for r in HUBS[OFFICE_HUB[home]].routes}
    assert transfers[0]["recipient"] == run.context.facts["destination"]
    decided = _decisions(run.records)
    for control in ("RENKEI-001", "RENKEI-002", "RENKEI-004", "RENKEI-005"):
        assert decided.get(control) == {"allow"}, control


def test_card_move_in_uses_the_held_certificate_after_the_card_check(linkage: FlowSession) -> None:
    run = linkage.run("特例転入")
    assert all(h["flow"] == "card_move_in" for h in load_trace(run.records).hops)
    decided = _decisions(run.records)
    assert decided.get("CS-018") == {"allow"} and decided.get("CS-019") == {"allow"}
    assert decided.get("CS-017") == {"allow"}
    checked = run.context.facts["card_check"]
    assert checked["verified"] == 1
    assert [r["resident_code"] for r in checked["records"]] == [run.context.person["resident_code"]]
