"""The training page as HTML: self-contained, every hop drawn and explained, the matrix, findings and quiz."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from simulator.errors import InputError
from simulator.training.trace import load_trace
from simulator.training.viewer import build_page, render_page, write_page


def _cell(html: str, party: str, item: str) -> str:
    found = re.search(rf'<td[^>]*data-party="{re.escape(party)}" data-item="{item}" data-exposure="(\w+)"', html)
    assert found, (party, item)
    return found.group(1)


def test_page_is_self_contained(query_run: Any, tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    write_page(query_run.path, out)
    html = out.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    for fetch in ("http://", "https://", "<link", " src=", "@import", "url("):
        assert fetch not in html, fetch
    assert html.count('class="panel"') == len(query_run.trace.hops)
    assert len(re.findall(r'<g class="arrow ', html)) == len(query_run.trace.hops)
    assert '<svg id="seq"' in html and "<script>" in html


def test_page_is_valid_html5(held_run: Any) -> None:
    html5lib = pytest.importorskip("html5lib")
    html5lib.HTMLParser(strict=True).parse(render_page(build_page(held_run.trace)))


def test_matrix_shows_what_nws_never_saw(query_run: Any) -> None:
    html = render_page(build_page(query_run.trace))
    assert _cell(html, "nws.core", "my_number") == "never"
    assert _cell(html, "nws.core", "resident_code") == "never"
    assert _cell(html, "nws.core", "replica") == "ciphertext"
    assert _cell(html, "platform.intermediate_server.kuwana", "replica") == "plaintext"
    assert "情報提供ネットワークシステムは個人番号を一度も見ていません。" in html
    assert "NWS never saw a My Number." in html
    assert "機関ごとに符号が違います" in html


def test_panels_explain_in_plain_words_then_identifiers(query_run: Any) -> None:
    page = build_page(query_run.trace)
    query = next(p for p in page.panels if p["message_type"] == "nws.query")
    assert "個人番号は使いません" in query["describe"]["ja"]
    assert any("符号" in ja for ja, _ in query["protection"])
    nws_001 = next(d for d in query["decisions"] if d["control_id"] == "NWS-001")
    assert nws_001["who"]["ja"] == "情報提供ネットワークシステム"
    assert nws_001["citations"] and "の評価書" in nws_001["citations"][0]["ja"]
    relayed = next(
        p for p in page.panels if p["message_type"] == "nws.provision_reply" and "開けずに" in p["describe"]["ja"]
    )
    assert relayed["sealed_for"] == "platform.intermediate_server.kurashiki"


def test_quiz_asks_who_refuses_and_why(refused_run: Any) -> None:
    page = build_page(refused_run.trace)
    first = page.quiz[0]
    hop = refused_run.trace.hops[first["index"]]
    assert hop["message_type"] == "nws.query"
    assert "拒否するのはどのシステム" in first["question"]["ja"]
    assert [c["party"] for c in first["choices"] if c["right"]] == ["nws.core"]
    assert [r["id"] for r in first["reasons"] if r["right"]] == ["NWS-001"]
    assert len(first["choices"]) >= 3 and "照会許可用照合リスト" in first["answer"]["ja"]


def test_quiz_includes_the_hold(held_run: Any) -> None:
    page = build_page(held_run.trace)
    held = [q for q in page.quiz if "保留" in q["question"]["ja"] or "職員の確認" in q["question"]["ja"]]
    assert held and [r["id"] for r in held[0]["reasons"] if r["right"]] == ["CHUKAN-011"]


def test_language_selection_and_filters(query_run: Any) -> None:
    html = render_page(build_page(query_run.trace, lang="en"))
    assert '<body class="lang-en">' in html and '<html lang="en">' in html
    only_nws = build_page(query_run.trace, correlation=query_run.trace.hops[2]["correlation_id"])
    assert len(only_nws.hops) == len(query_run.trace.hops)
    assert build_page(query_run.trace, flow="portal").hops == []
    short = build_page(query_run.trace, max_hops=3)
    assert len(short.panels) == 3 and short.truncated == len(query_run.trace.hops) - 3
    assert "最初の 3 件" in short.notes[0]["ja"]


def test_empty_selection_still_renders(query_run: Any) -> None:
    html = render_page(build_page(query_run.trace, flow="nothing"))
    assert 'id="total">0<' in html


def test_bad_trace_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"kind": "hop"}\n', encoding="utf-8")
    with pytest.raises(InputError):
        write_page(path, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_trace_records_in_memory_give_the_same_page(query_run: Any) -> None:
    lines = query_run.path.read_text(encoding="utf-8").splitlines()
    again = load_trace([json.loads(line) for line in lines])
    assert [h["seq"] for h in again.hops] == [h["seq"] for h in query_run.trace.hops]
