"""Trace content: the 情報照会 flow hop by hop, what NWS could see, decisions with ids and citations, no values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from simulator.controls.catalogue import load_catalogue
from simulator.demo import setup_world
from simulator.errors import InputError
from simulator.training.trace import FORMAT, codes_seen, load_trace, trace_sink, who_saw_what

QUERY_PATH = [
    ("kurashiki.ltc", "kurashiki.atena", "atena.business_query"),
    ("kurashiki.atena", "platform.intermediate_server.kurashiki", "atena.business_query"),
    ("platform.intermediate_server.kurashiki", "nws.core", "nws.query"),
    ("nws.core", "platform.intermediate_server.kuwana", "nws.provision_request"),
    ("platform.intermediate_server.kuwana", "nws.core", "nws.provision_reply"),
    ("nws.core", "platform.intermediate_server.kurashiki", "nws.provision_reply"),
    ("platform.intermediate_server.kurashiki", "kurashiki.atena", "atena.business_answer"),
    ("kurashiki.atena", "kurashiki.ltc", "atena.business_answer"),
]


def test_header_and_flow_marker(query_run: Any) -> None:
    header = query_run.trace.header
    assert header["format"] == FORMAT and header["version"] == 1
    assert header["flow"] == "query" and header["catalogue"] > 0
    assert query_run.trace.flows["query"]["title_ja"] == "情報照会"
    assert all(h["flow"] == "query" for h in query_run.trace.hops)
    last = json.loads(query_run.path.read_text(encoding="utf-8").splitlines()[-1])
    assert last == {"kind": "end", "hops": len(QUERY_PATH)}


def test_query_goes_the_whole_path(query_run: Any) -> None:
    hops = query_run.trace.hops
    assert [(h["sender"], h["recipient"], h["message_type"]) for h in hops] == QUERY_PATH
    assert [h["seq"] for h in hops] == sorted(h["seq"] for h in hops)
    assert query_run.facts["answer"]["status"] == "provided"


def test_nws_visible_fields_carry_no_my_number(query_run: Any) -> None:
    nws_hops = [h for h in query_run.trace.hops if "nws.core" in (h["sender"], h["recipient"])]
    assert len(nws_hops) == 4
    for hop in nws_hops:
        assert hop["items"]["my_number"] == "absent", hop["message_type"]
        assert hop["items"]["resident_code"] == "absent", hop["message_type"]
        assert not [f for f in hop["fields"] if f["item"] in ("my_number", "resident_code")]
        # What NWS can read is the signed body; everything personal it carries is sealed for someone else.
        readable = [f for f in hop["fields"] if f["travel"] == "signed" and f["item"]]
        assert {f["item"] for f in readable} <= {"linkage_code"}, hop["message_type"]
        assert hop["sealed_for"] != "nws.core"


def test_reply_is_sealed_for_the_requester_and_relayed_unopened(query_run: Any) -> None:
    out, relayed = (h for h in query_run.trace.hops if h["message_type"] == "nws.provision_reply")
    for hop in (out, relayed):
        assert hop["sealed_for"] == "platform.intermediate_server.kurashiki" and hop["sealed_opened"] is True
        assert hop["items"]["replica"] == "encrypted" and hop["items"]["basic4"] == "encrypted"
    assert out["relayed"] is False and relayed["relayed"] is True
    assert out["exposure"]["nws.core"] == {"replica": "ciphertext", "basic4": "ciphertext"}
    assert relayed["exposure"]["nws.core"]["replica"] == "ciphertext"
    assert relayed["exposure"]["platform.intermediate_server.kurashiki"]["replica"] == "plaintext"


def test_who_saw_what_over_the_query(query_run: Any) -> None:
    seen = who_saw_what(query_run.trace.hops)
    assert seen["nws.core"]["my_number"] == "never"
    assert seen["nws.core"]["resident_code"] == "never"
    assert seen["nws.core"]["replica"] == "ciphertext"
    assert seen["nws.core"]["linkage_code"] == "plaintext"
    assert seen["platform.intermediate_server.kuwana"]["replica"] == "plaintext"
    assert seen["kurashiki.ltc"]["replica"] == "plaintext"
    assert all(row["my_number"] == "never" for row in seen.values())


def test_each_organisation_holds_a_different_linkage_code(query_run: Any) -> None:
    hops = query_run.trace.hops
    query = next(h for h in hops if h["message_type"] == "nws.query")
    request = next(h for h in hops if h["message_type"] == "nws.provision_request")
    relayed = next(h for h in hops if h["message_type"] == "nws.provision_reply" and h["relayed"])

    def fp(hop: dict[str, object], path: str) -> str:
        return next(str(f["fp"]) for f in hop["fields"] if f["path"] == path)  # type: ignore[attr-defined,index]

    requester_code = fp(query, "requester_linkage_code")
    assert fp(relayed, "requester_linkage_code") == requester_code  # NWS writes the requester's own code back
    provider_code = fp(request, "permit.provider_linkage_code")  # the permit names the provider's code
    assert provider_code != requester_code
    codes = codes_seen(hops)
    assert codes["platform.intermediate_server.kurashiki"] == {requester_code}
    assert codes["platform.intermediate_server.kuwana"] == {provider_code}
    assert codes["nws.core"] == {requester_code, provider_code}


def test_decisions_carry_control_ids_and_citations(query_run: Any) -> None:
    catalogue = load_catalogue()
    decisions = [d for h in query_run.trace.hops for d in h["decisions"]]
    ids = {d["control_id"] for d in decisions}
    assert {"NWS-001", "NWS-003", "NWS-004", "CHUKAN-002", "CHUKAN-009", "CHUKAN-020"} <= ids
    for d in decisions:
        assert d["outcome"] == "allow"
        control = catalogue.get(d["control_id"])
        assert d["title_ja"] == control.title_ja and d["title_en"] == control.title_en
        assert d["citations"], d["control_id"]
        cited = {s.cite() for s in control.sources}
        for c in d["citations"]:
            assert c["cite"] in cited
            assert c["seed"].endswith(".txt") and c["lines"][0] <= c["lines"][1] and c["quote"]
    nws_001 = next(d for h in query_run.trace.hops for d in h["decisions"] if d["control_id"] == "NWS-001")
    assert nws_001["component"] == "nws.core" and "94" in nws_001["reason_ja"]


def test_no_personal_value_is_written(query_run: Any) -> None:
    text = query_run.path.read_text(encoding="utf-8")
    person = query_run.person
    for value in (person["my_number"], person["resident_code"], person["name"], person["ltc_atena_number"]):
        assert value not in text
    for record in query_run.facts["answer"]["data"].values():
        for key in ("name", "address", "name_kana"):
            if key in record:
                assert record[key] not in text
    # No 12-digit 個人番号 or 11-digit 住民票コード of anyone in the world appears, wherever it might hide.
    numbers = set(re.findall(r"(?<!\d)\d{11,12}(?!\d)", text))
    everyone = {
        r[k] for rows in query_run.population.residents.values() for r in rows for k in ("my_number", "resident_code")
    }
    assert not numbers & everyone


def test_refused_query_names_nws_and_the_list(refused_run: Any) -> None:
    hops = refused_run.trace.hops
    query = next(h for h in hops if h["message_type"] == "nws.query")
    deny = [d for d in query["decisions"] if d["outcome"] == "deny"]
    assert [(d["component"], d["control_id"], d["code"]) for d in deny] == [
        ("nws.core", "NWS-001", "Permission.NotOnPermissionList")
    ]
    assert deny[0]["citations"]
    assert "nws.query_refused" in [h["message_type"] for h in hops]
    assert "nws.provision_request" not in [h["message_type"] for h in hops]


def test_held_query_shows_the_hold_and_the_release(held_run: Any) -> None:
    hops = held_run.trace.hops
    request = next(h for h in hops if h["message_type"] == "nws.provision_request")
    assert ("CHUKAN-011", "hold") in [(d["control_id"], d["outcome"]) for d in request["decisions"]]
    staff = next(h for h in hops if h["message_type"] == "staff.command")
    assert staff["sender"] == "staff" and staff["recipient"] == "platform.intermediate_server.kuwana"
    assert "CHUKAN-016" in [d["control_id"] for d in staff["decisions"]]
    # The release comes before the reply it causes, even though it is written after it.
    reply = next(h for h in hops if h["message_type"] == "nws.provision_reply")
    assert hops.index(staff) < hops.index(reply)
    assert held_run.facts["answer_before_release"]["status"] != "provided"
    assert held_run.facts["answer"]["status"] == "provided"


def test_sinks_for_a_world_built_later(tmp_path: Path) -> None:
    """`jukisim demo --trace`: the sink exists before the world. Given the data directory, it opens sealed
    payloads with the keys the world writes there; given nothing, it records them as unopened."""
    data = tmp_path / "world"
    with_keys = trace_sink(tmp_path / "demo.jsonl", data_dir=data)
    without = trace_sink(tmp_path / "plain.jsonl")

    def both(hop: Any, outgoing: Any) -> None:
        with_keys(hop, outgoing)
        without(hop, outgoing)

    run = setup_world(data, size=40, on_hop=both)
    with_keys.close()
    without.close()
    run.world.close()
    trace = load_trace(tmp_path / "demo.jsonl")
    sealed = [h for h in trace.hops if h["sealed_for"]]
    assert len(trace.hops) > 500 and sealed
    assert all(h["sealed_opened"] is True for h in sealed)
    assert who_saw_what(trace.hops)["nws.core"]["my_number"] == "never"
    plain = load_trace(tmp_path / "plain.jsonl")
    assert [h["seq"] for h in plain.hops] == [h["seq"] for h in trace.hops]
    assert all(h["sealed_opened"] is False for h in plain.hops if h["sealed_for"])
    assert all(f["travel"] == "signed" for h in plain.hops for f in h["fields"])


@pytest.mark.parametrize(
    ("lines", "rule"),
    [
        (["{}"], "first line must be a jukisim-trace header"),
        ([json.dumps({"kind": "header", "format": FORMAT, "version": 99})], "version 99 is not supported"),
        ([json.dumps({"kind": "header", "format": FORMAT, "version": 1}), "{not json"], ":2: not JSON"),
        (
            [json.dumps({"kind": "header", "format": FORMAT, "version": 1}), '{"kind": "hop", "seq": 1}'],
            ":2: hop record lacks",
        ),
        ([json.dumps({"kind": "header", "format": FORMAT, "version": 1}), '{"kind": "other"}'], "unknown record kind"),
        ([json.dumps({"kind": "header", "format": FORMAT, "version": 1}), "[1]"], "each line must be a JSON object"),
    ],
)
def test_bad_trace_files_are_refused_with_the_line(tmp_path: Path, lines: list[str], rule: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_trace(path)
    assert caught.value.field == "trace" and rule in caught.value.rule


def test_missing_trace_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_trace(tmp_path / "absent.jsonl")
