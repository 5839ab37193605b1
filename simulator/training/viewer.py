"""`jukisim trace view`: one self-contained HTML page from a trace, for a training room with no network.

The page has a sequence diagram drawn as SVG here (server-side), a step-through with a panel per hop (what
happened, what was protected how, which control decided and where the PIA says so), the "who saw what"
matrix and a short quiz answered from the trace itself. Everything is inline: no script, style, font or
image is fetched. This module must never add anything to the page that the trace does not say.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from simulator.i18n import Lang, exposure_label, item_label, message_label, outcome_label, party_label, travel_label
from simulator.training.items import ITEM_CLASSES
from simulator.training.trace import STAFF, Trace, codes_seen, load_trace, who_saw_what
from simulator.training.words import (
    citation_text,
    decision_plain,
    decision_title,
    describe,
    findings,
    headline,
    protection,
)

__all__ = ["DEFAULT_MAX_HOPS", "Page", "build_page", "render_page", "write_page"]

DEFAULT_MAX_HOPS = 400
LANE = 134  # horizontal distance between lifelines
TOP = 74  # height of the lane headers
ROW = 36  # vertical distance between arrows
QUIZ_MAX = 6


def _bi(ja: str, en: str) -> dict[str, str]:
    return {"ja": ja, "en": en}


def _label(fn: Any, key: str) -> dict[str, str]:
    return _bi(fn(key, "ja"), fn(key, "en"))


def _wrap(text: str, width: int, lang: Lang) -> list[str]:
    if len(text) <= width:
        return [text]
    if lang == "ja":
        if text.endswith("システム"):
            return [text[: -len("システム")], "システム"]
        cut = text.find("（")
        cut = cut if 0 < cut <= width else width
        return [text[:cut], text[cut:]]
    cut = text.rfind(" ", 0, width + 1)
    cut = cut if cut > 0 else width
    return [text[:cut], text[cut:].strip()]


def _lines(party: str, lang: Lang) -> list[str]:
    """A lane header in at most three short lines: organisation, then the system's name wrapped."""
    if party == "nws.core":
        return (
            ["情報提供ネットワーク", "システム（NWS）"] if lang == "ja" else ["Information Provision", "Network System"]
        )
    head, sep, tail = party_label(party, lang).partition(" ")
    if not sep:
        return _wrap(head, 10 if lang == "ja" else 20, lang)
    return [head, *_wrap(tail, 9 if lang == "ja" else 20, lang)]


@dataclass
class Page:
    """Everything the template draws, computed from the trace (both languages side by side)."""

    title: dict[str, str]
    lang: Lang
    hops: list[dict[str, Any]]
    lanes: list[dict[str, Any]]
    arrows: list[dict[str, Any]]
    panels: list[dict[str, Any]]
    matrix: list[dict[str, Any]]
    columns: list[dict[str, Any]]
    findings: list[dict[str, str]]
    quiz: list[dict[str, Any]]
    touched: list[list[list[str]]]
    width: int
    height: int
    truncated: int = 0
    notes: list[dict[str, str]] = field(default_factory=list)


def _arrow(index: int, hop: Mapping[str, Any], x: dict[str, float]) -> dict[str, Any]:
    x1, x2 = x[hop["sender"]], x[hop["recipient"]]
    outcomes = {d["outcome"] for d in hop["decisions"]}
    outcome = (
        "deny"
        if "deny" in outcomes or hop.get("refusal")
        else "hold"
        if "hold" in outcomes
        else "allow"
        if outcomes
        else ""
    )
    kind = "staff" if hop["message_type"] == "staff.command" else "enc" if hop.get("sealed_for") else "sig"
    number = index + 1
    return {
        "index": index,
        "y": TOP + 18 + index * ROW,
        "x1": x1,
        "x2": x2,
        "dir": 1 if x2 >= x1 else -1,
        "kind": kind,
        "outcome": outcome,
        "label": _bi(
            f"{number}. {message_label(hop['message_type'], 'ja')}",
            f"{number}. {message_label(hop['message_type'], 'en')}",
        ),
        "text_x": (x1 + x2) / 2,
    }


def _panel(index: int, hop: Mapping[str, Any]) -> dict[str, Any]:
    decisions = []
    for d in hop["decisions"]:
        decisions.append(
            {
                "control_id": d["control_id"],
                "outcome": d["outcome"],
                "outcome_label": _label(outcome_label, d["outcome"]),
                "who": _label(party_label, d["component"]),
                "plain": _bi(decision_plain(d, "ja"), decision_plain(d, "en")),
                "title": _bi(decision_title(d, "ja"), decision_title(d, "en")),
                "code": d.get("code"),
                "citations": [_bi(citation_text(c, "ja"), citation_text(c, "en")) for c in d.get("citations", [])],
            }
        )
    fields = [
        {
            "path": f["path"],
            "item": _label(item_label, f["item"]) if f.get("item") else None,
            "travel": f["travel"],
            "travel_label": _label(travel_label, f["travel"]),
            "fp": f.get("fp"),
        }
        for f in hop["fields"]
    ]
    refusal = hop.get("refusal")
    return {
        "index": index,
        "seq": hop["seq"],
        "headline": _bi(headline(hop, "ja"), headline(hop, "en")),
        "message": _label(message_label, hop["message_type"]),
        "describe": _bi(describe(hop, "ja"), describe(hop, "en")),
        "protection": list(zip(protection(hop, "ja"), protection(hop, "en"), strict=True)),
        "decisions": decisions,
        "fields": fields,
        "message_type": hop["message_type"],
        "message_id": hop.get("message_id") or "",
        "correlation_id": hop.get("correlation_id") or "",
        "sealed_for": hop.get("sealed_for"),
        "sealed_label": _label(party_label, hop["sealed_for"]) if hop.get("sealed_for") else None,
        "wire_bytes": hop.get("wire_bytes", 0),
        "at": hop.get("at", ""),
        "refusal": (
            _bi(f"{refusal['code']}: {refusal['reason_ja']}", f"{refusal['code']}: {refusal['reason_en']}")
            if refusal
            else None
        ),
    }


def _matrix(
    parties: list[str], seen: Mapping[str, Mapping[str, str]], codes: Mapping[str, set[str]]
) -> list[dict[str, Any]]:
    rows = []
    for party in parties:
        if party == STAFF or party not in seen:
            continue
        cells = []
        for item in ITEM_CLASSES:
            level = seen[party].get(item, "never")
            cells.append(
                {
                    "item": item,
                    "exposure": level,
                    "label": _label(exposure_label, level),
                    "codes": sorted(codes.get(party, set())) if item == "linkage_code" and level != "never" else [],
                }
            )
        rows.append({"party": party, "label": _label(party_label, party), "cells": cells})
    return rows


def _order(seed: str, values: list[Any]) -> list[Any]:
    """A fixed shuffle (same trace, same order), so the right answer is not always first."""
    return sorted(values, key=lambda v: hashlib.sha256(f"{seed}:{v}".encode()).hexdigest())


def _quiz(hops: list[dict[str, Any]], parties: list[str]) -> list[dict[str, Any]]:
    """Questions answered from the trace: which system refuses (or holds, or checks) this hop, and why."""
    picked: list[tuple[int, Mapping[str, Any]]] = []
    for outcome in ("deny", "hold", "allow"):
        for index, hop in enumerate(hops):
            if len(picked) >= QUIZ_MAX:
                break
            if any(i == index for i, _ in picked):
                continue
            mine = [d for d in hop["decisions"] if d["outcome"] == outcome and d["component"] == hop["recipient"]]
            if mine and (outcome != "allow" or len(picked) < 3):
                picked.append((index, mine[0]))
    # Refusals and holds first: they are what the quiz is for; checks that let a message through follow.
    all_titles = {
        d["control_id"]: _bi(decision_title(d, "ja"), decision_title(d, "en")) for h in hops for d in h["decisions"]
    }
    systems = [p for p in parties if p != STAFF]
    out = []
    for index, decision in picked:
        hop = hops[index]
        number = index + 1
        msg = _label(message_label, hop["message_type"])
        route = _bi(headline(hop, "ja"), headline(hop, "en"))
        verb = {
            "deny": _bi("これを拒否するのはどのシステムですか？", "Which system refuses this?"),
            "hold": _bi(
                "これを止めて職員の確認に回すのはどのシステムですか？", "Which system holds this for staff review?"
            ),
            "allow": _bi(
                "これを受け取って確かめ、通すのはどのシステムですか？", "Which system checks this and lets it through?"
            ),
        }[decision["outcome"]]
        others = [p for p in systems if p != decision["component"] and p in (hop["sender"], hop["recipient"])]
        others += [p for p in systems if p != decision["component"] and p not in others]
        choices = _order(f"{hop['seq']}:who", [decision["component"], *others[:3]])
        reason_ids = [decision["control_id"], *[c for c in all_titles if c != decision["control_id"]][:2]]
        out.append(
            {
                "index": index,
                "question": _bi(
                    f"{number}番目の電文「{msg['ja']}」（{route['ja']}）。{verb['ja']}",
                    f"Message {number}, {msg['en']} ({route['en']}). {verb['en']}",
                ),
                "why": _bi("それはなぜですか（どの対策によりますか）？", "Why — under which control?"),
                "choices": [
                    {"party": p, "label": _label(party_label, p), "right": p == decision["component"]} for p in choices
                ],
                "reasons": [
                    {"id": c, "label": all_titles[c], "right": c == decision["control_id"]}
                    for c in _order(f"{hop['seq']}:why", reason_ids)
                ],
                "answer": _bi(
                    f"{party_label(decision['component'], 'ja')}が{outcome_label(decision['outcome'], 'ja')}します。"
                    f"理由: {decision['reason_ja']}（{decision['control_id']} {decision_title(decision, 'ja')}）",
                    f"{party_label(decision['component'], 'en')} — {outcome_label(decision['outcome'], 'en')}. "
                    f"Why: {decision['reason_en']} ({decision['control_id']} {decision_title(decision, 'en')})",
                ),
                "citations": [
                    _bi(citation_text(c, "ja"), citation_text(c, "en")) for c in decision.get("citations", [])[:2]
                ],
            }
        )
    return out


def build_page(
    trace: Trace,
    *,
    lang: Lang = "ja",
    flow: str | None = None,
    correlation: str | None = None,
    max_hops: int = DEFAULT_MAX_HOPS,
) -> Page:
    selected = trace.select(flow=flow, correlation=correlation)
    truncated = max(0, len(selected) - max_hops)
    hops = selected[:max_hops]
    parties = trace.parties(hops)
    x = {p: 20 + LANE * i + LANE / 2 for i, p in enumerate(parties)}
    lanes = [{"party": p, "x": x[p], "ja": _lines(p, "ja"), "en": _lines(p, "en")} for p in parties]
    seen = who_saw_what(hops)
    codes = codes_seen(hops)
    flow_id = flow or trace.header.get("flow")
    marker = trace.flows.get(str(flow_id)) if flow_id else None
    if marker is not None:
        title = _bi(str(marker.get("title_ja") or flow_id), str(marker.get("title_en") or flow_id))
    elif flow_id:
        title = _bi(str(flow_id), str(flow_id))
    else:
        title = _bi("実行の記録", "Run trace")
    notes: list[dict[str, str]] = []
    if truncated:
        notes.append(
            _bi(
                f"電文が多いため最初の {max_hops} 件だけを表示しています（残り {truncated} 件）。--flow か --correlation で絞り込めます。",
                f"Showing the first {max_hops} hops only ({truncated} more); narrow with --flow or --correlation.",
            )
        )
    if any(h.get("sealed_for") and h.get("sealed_opened") is False for h in hops):
        notes.append(
            _bi(
                "一部の暗号化部分は、記録時に鍵がなかったため項目名が分かりません。「誰が何を見たか」はその分少なく表示されます。",
                "Some sealed payloads could not be opened when the trace was written; the matrix undercounts them.",
            )
        )
    touched = [[[p, i] for p, items in h.get("exposure", {}).items() for i in items] for h in hops]
    return Page(
        title=title,
        lang=lang,
        hops=hops,
        lanes=lanes,
        arrows=[_arrow(i, h, x) for i, h in enumerate(hops)],
        panels=[_panel(i, h) for i, h in enumerate(hops)],
        matrix=_matrix(parties, seen, codes),
        columns=[{"item": i, "label": _label(item_label, i)} for i in ITEM_CLASSES],
        findings=[_bi(ja, en) for ja, en in zip(findings(seen, codes, "ja"), findings(seen, codes, "en"), strict=True)],
        quiz=_quiz(hops, parties),
        touched=touched,
        width=int(40 + LANE * max(1, len(parties))),
        height=int(TOP + 36 + ROW * max(1, len(hops))),
        truncated=truncated,
        notes=notes,
    )


def _environment() -> jinja2.Environment:
    source = resources.files("simulator.training.templates").joinpath("trace.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(
        loader=jinja2.DictLoader({"trace.html.j2": source}),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(LANE=LANE, TOP=TOP, ROW=ROW)
    return env


def render_page(page: Page) -> str:
    return _environment().get_template("trace.html.j2").render(page=page)


def write_page(
    trace_path: Path,
    out: Path,
    *,
    lang: Lang = "ja",
    flow: str | None = None,
    correlation: str | None = None,
    max_hops: int = DEFAULT_MAX_HOPS,
) -> Page:
    """Read ``trace_path`` and write the page to ``out``; returns what was drawn."""
    page = build_page(load_trace(trace_path), lang=lang, flow=flow, correlation=correlation, max_hops=max_hops)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_page(page), encoding="utf-8")
    return page
