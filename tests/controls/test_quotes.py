"""Every quote is found in its seed text within ±3 lines of the lines it cites (whitespace ignored)."""

from __future__ import annotations

from pathlib import Path

from simulator.controls.catalogue import Catalogue, Source, verify_quotes


def _squash(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace())


def test_every_quote_occurs_near_its_lines(catalogue: Catalogue, seeds: Path) -> None:
    # An independent check, on purpose not calling verify_quotes.
    texts: dict[str, list[str]] = {}
    missing = []
    checked = 0
    for c in catalogue:
        for s in c.sources:
            lines = texts.setdefault(s.seed, (seeds / s.seed).read_text(encoding="utf-8").split("\n"))
            lo, hi = max(1, s.lines[0] - 3), min(len(lines), s.lines[1] + 3)
            window = _squash("".join(lines[lo - 1 : hi]))
            checked += 1
            if not s.quote or _squash(s.quote) not in window:
                missing.append(f"{c.id} {s.cite()}: {s.quote}")
    assert not missing, "quotes not found at their cited lines:\n" + "\n".join(missing)
    assert checked > 700


def test_verify_quotes_agrees_and_catches_a_wrong_one(catalogue: Catalogue, seeds: Path) -> None:
    verified, failures = verify_quotes(catalogue, seeds)
    assert failures == []
    assert verified == sum(len(c.sources) for c in catalogue)
    control = catalogue.get("JUKI-004")
    moved = control.sources[0].model_copy(update={"lines": (20, 20)})
    bad = catalogue.model_copy(update={"controls": [control.model_copy(update={"sources": [moved]})]})
    n, problems = verify_quotes(bad, seeds)
    assert n == 0 and len(problems) == 1 and "quote not found" in problems[0]


def test_citation_text() -> None:
    s = Source(seed="003_c3e3e36f1128990f.txt", section="J-III-2 リスク1", item="J-2-R1-6", lines=(2307, 2307))
    assert s.cite() == "003_c3e3e36f1128990f.txt J-III-2 リスク1 [J-2-R1-6] L2307"
    cl = Source(seed="000_b81c60476033af2d.txt", section="II", lines=(503, 504), changelog=True)
    assert cl.cite().endswith("CL L503–504")
