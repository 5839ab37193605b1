"""One-off extraction: research/CATALOGUE.md (+ the five seeds) → scenarios/catalogue/controls/*.yaml.

Parses the merged catalogue mechanically (entries, Src citations, line numbers, labels, quoted phrases),
checks every quoted phrase against the seed text it cites, and merges the hand-written parts kept in
tools/catalogue_supplement.yaml (claims in our own words, enforcing components, auditor evidence, and
quote/line fixes where parsing is not enough). It must never invent a citation: a quote it cannot find
within ±3 lines of the cited seed lines is reported, not written.

Run: .venv/bin/python tools/catalogue_extract.py [--shared /work/shared] [--check]
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "scenarios" / "catalogue" / "controls"
SUPPLEMENT = Path(__file__).resolve().parent / "catalogue_supplement.yaml"

SEEDS = {
    "000": "000_b81c60476033af2d.txt",
    "001": "001_cc86eefa057d2f96.txt",
    "002": "002_eb38df5b06157c45.txt",
    "003": "003_c3e3e36f1128990f.txt",
    "004": "004_c609ceaeef7ce1bb.txt",
}
PROFILE_OF_SEED = {"000": "kuwana", "001": "tsukuba", "002": "sapporo", "003": "iizuka", "004": "kurashiki"}
# Change-log ranges (CATALOGUE.md §0.2): a "CL" line must fall inside them.
CHANGELOG = {"000": (449, 596), "001": (1002, 1319), "004": (619, 662)}

AREAS = [
    "JUKI",
    "GW",
    "CS",
    "JLIS",
    "ATENA",
    "RENKEI",
    "RELAY",
    "CHUKAN",
    "PF",
    "NWS",
    "GYOMU",
    "EAPP",
    "SAAS",
    "CLOUD",
    "MADO",
    "NET",
    "TERM",
    "MEDIA",
    "AUTH",
    "ITAKU",
    "LOG",
    "DATA",
]
QUOTE_MAX = 60
WINDOW = 3

SEED_RE = re.compile(r"`(\d{3}_[0-9a-f]{16}\.txt)`")
BARE_SEED_RE = re.compile(r"(?<![`\w])(00[0-4]) (?=(?:CL )?L\d)")
LINE_RE = re.compile(r"(?<![A-Za-z])(CL )?L(\d+)(?:\s*[–-]\s*(\d+))?")
QUOTE_RE = re.compile(r'"([^"]+)"')
BRACKET_RE = re.compile(r"\[([^\[\]]+)\]")
LABEL_RE = re.compile(r"C\d{2,3}|(?:III|IV|V|J|H|S)-[0-9A-Za-z\-]+")
CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff00-\uffef々〆〈〉＜＞「」『』【】]")
HEAD_RE = re.compile(r"^#### ([A-Z]+-\d{3}) · (.+?) · (.+)$")
FIELD_RE = re.compile(r"^- \*\*(Assert|T\+|T−|Src|Scope|Param):\*\*\s?(.*)$")


# --------------------------------------------------------------------------------------------- seeds
class Seed:
    """A seed text with whitespace-free windows, so a quote can be found across 003's wrapped lines."""

    def __init__(self, key: str, path: Path) -> None:
        self.key = key
        self.name = path.name
        self.lines = path.read_text(encoding="utf-8").split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()

    def __len__(self) -> int:
        return len(self.lines)

    def window(self, start: int, end: int, pad: int = WINDOW) -> tuple[str, list[int], list[str]]:
        """Concatenated text of lines start-pad..end+pad without whitespace, with a line number per char
        and the original characters (whitespace collapsed) for copying a quote back out."""
        lo, hi = max(1, start - pad), min(len(self.lines), end + pad)
        text: list[str] = []
        owner: list[int] = []
        chars: list[str] = []
        for n in range(lo, hi + 1):
            gap = False
            for ch in self.lines[n - 1]:
                if ch.isspace():
                    gap = bool(text) and owner[-1] == n
                    continue
                text.append(ch)
                owner.append(n)
                # keep one space where the line itself had whitespace, so a copied quote reads as the seed
                chars.append(" " + ch if gap else ch)
                gap = False
        return "".join(text), owner, chars

    def find(self, needle: str, start: int, end: int, pad: int = WINDOW) -> tuple[str, int, int] | None:
        """Find needle (whitespace and width-insensitive) near start..end; return the seed's own
        characters for it and the lines it spans."""
        text, owner, chars = self.window(start, end, pad)
        return _find_in(needle, text, owner, chars)

    def find_all(self, needle: str, start: int, end: int, pad: int) -> list[tuple[str, int, int]]:
        text, owner, chars = self.window(start, end, pad)
        hits: list[tuple[str, int, int]] = []
        off = 0
        while off < len(text):
            found = _find_at(needle, text, owner, chars, off)
            if not found:
                break
            pos, hit = found
            hits.append(hit)
            off = pos + 1
        return hits


def _squash(s: str) -> str:
    return "".join(ch for ch in s if not ch.isspace())


def _nfkc_map(text: str) -> tuple[str, list[int]]:
    out: list[str] = []
    idx: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch):
            out.append(c)
            idx.append(i)
    return "".join(out), idx


def _find_in(needle: str, text: str, owner: list[int], chars: list[str]) -> tuple[str, int, int] | None:
    found = _find_at(needle, text, owner, chars, 0)
    return found[1] if found else None


def _find_at(
    needle: str, text: str, owner: list[int], chars: list[str], start: int
) -> tuple[int, tuple[str, int, int]] | None:
    n = _squash(needle)
    if not n:
        return None
    pos = text.find(n, start)
    if pos >= 0:
        return pos, ("".join(chars[pos : pos + len(n)]).strip(), owner[pos], owner[pos + len(n) - 1])
    norm_text, idx = _nfkc_map(text)
    norm_needle = unicodedata.normalize("NFKC", n)
    npos = next((i for i, j in enumerate(idx) if j >= start), len(idx))
    pos = norm_text.find(norm_needle, npos)
    if pos < 0:
        return None
    a, b = idx[pos], idx[pos + len(norm_needle) - 1]
    return a, ("".join(chars[a : b + 1]).strip(), owner[a], owner[b])


# ---------------------------------------------------------------------------------------- quotes
BOUNDARY = set("、。・，．「」『』（）()【】＜＞〈〉:：;；")


def shorten(q: str) -> str:
    """Trim a verified phrase to ≤ QUOTE_MAX characters, preferring a clause boundary."""
    q = q.strip().lstrip("・").rstrip("。")
    if len(q) <= QUOTE_MAX:
        return q
    cut = max((i for i in range(20, QUOTE_MAX) if q[i] in "、，"), default=-1)
    return q[:cut] if cut > 0 else q[:QUOTE_MAX]


def fragments(quote: str) -> list[str]:
    parts = re.split(r"…+|\.\.\.+|\s/\s", quote)
    return [p.strip(" 、。「」") for p in parts if len(CJK_RE.findall(p)) >= 4]


# ------------------------------------------------------------------------------------ data shapes
@dataclass
class Src:
    seed: str  # key 000..004
    section: str
    items: list[str]
    lines: tuple[int, int] | None
    changelog: bool
    candidates: list[str]
    note: str = ""
    quote: str | None = None
    how: str = ""  # catalogue | report | entry | *-moved | auto | manual | none
    lines_from: str = "catalogue"  # catalogue | next | appendix | quote | manual | none
    moved_from: tuple[int, int] | None = None
    catalogue_lines: tuple[int, int] | None = None  # as CATALOGUE.md gave them, before any correction


@dataclass
class Entry:
    id: str
    area: str
    kind: str
    title_ja: str
    title_en: str
    assert_: str | None = None
    allowed: str | None = None
    refused: list[str] = field(default_factory=list)
    scope: str = "common"
    scope_note: str = ""
    params: list[dict[str, Any]] = field(default_factory=list)
    sources: list[Src] = field(default_factory=list)
    related: list[str] = field(default_factory=list)
    related_note: str = ""
    src_text: str = ""


# ------------------------------------------------------------------------------------ appendix 1
@dataclass
class Appendix:
    """Appendix 1 of CATALOGUE.md: item label → id, and item label → the section heading and lines."""

    label_id: dict[tuple[str, str], str]
    label_range: dict[tuple[str, str], tuple[str, int, int]]
    sections: dict[str, list[tuple[str, int, int]]]


def parse_appendix(lines: list[str]) -> Appendix:
    label_id: dict[tuple[str, str], str] = {}
    label_range: dict[tuple[str, str], tuple[str, int, int]] = {}
    sections: dict[str, list[tuple[str, int, int]]] = {k: [] for k in SEEDS}
    seed = ""
    heading: tuple[str, int, int] | None = None
    start = next(i for i, s in enumerate(lines) if s.startswith("# Appendix 1"))
    for raw in lines[start:]:
        if raw.startswith("# Appendix 2"):
            break
        m = re.match(r"^## A1\.\d `(\d{3})_", raw)
        if m:
            seed, heading = m.group(1), None
            continue
        m = re.match(r"^\*\*(.+?)\s*\(L(\d+)[–-](\d+)", raw)
        if m and seed:
            heading = (m.group(1).strip(), int(m.group(2)), int(m.group(3)))
            sections[seed].append(heading)
            continue
        if raw.startswith("**"):
            heading = None
            continue
        m = re.match(r"^- (\S+) \[[^\]]+\] → ([A-Z]+-\d{3})", raw)
        if m and seed:
            for lab in re.split(r"[,/]", m.group(1)):
                label_id[(seed, lab)] = m.group(2)
                if heading:
                    label_range[(seed, lab)] = heading
    return Appendix(label_id, label_range, sections)


# ------------------------------------------------------------------------------------ reports
def report_quotes(shared: Path) -> dict[tuple[str, str], list[str]]:
    """Quoted phrases the per-seed reports give for each item label."""
    out: dict[tuple[str, str], list[str]] = {}
    for key, name in SEEDS.items():
        path = shared / "research" / name.replace(".txt", ".md")
        text = path.read_text(encoding="utf-8").split("\n")
        current: str | None = None
        for raw in text:
            m = re.match(r"^\s*- \**\s*([A-Z][A-Za-z0-9\-]+)\s*\**\s*\**\[", raw)
            if m and LABEL_RE.fullmatch(m.group(1)):
                current = m.group(1)
            elif raw.startswith("- ") or not raw.strip() or raw.startswith("#"):
                current = None
            if current:
                for q in QUOTE_RE.findall(raw):
                    out.setdefault((key, current), []).append(q)
    return out


# ------------------------------------------------------------------------------------ parsing
def split_top(text: str, sep: str = ";") -> list[str]:
    parts, depth, inq, buf = [], 0, False, []
    for ch in text:
        if ch == '"':
            inq = not inq
        elif not inq and ch == "(":
            depth += 1
        elif not inq and ch == ")":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0 and not inq:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def split_spans(text: str, sep: str) -> list[tuple[int, int]]:
    """Spans of split_top(text, sep) within text."""
    spans, pos = [], 0
    for part in split_top(text, sep):
        spans.append((pos, pos + len(part)))
        pos += len(part) + 1
    return spans


def _line_span(m: re.Match[str]) -> tuple[int, int]:
    a = int(m.group(2))
    if not m.group(3):
        return a, a
    b_txt = m.group(3)
    b = int(b_txt)
    if b < a:  # "L18–23": the end repeats only the last digits
        b = int(str(a)[: len(str(a)) - len(b_txt)] + b_txt)
    return a, b


def _clean_section(s: str) -> str:
    s = QUOTE_RE.sub("", s)
    s = re.sub(r"\([^()]*\)", lambda m: "" if " " in m.group(0) and not CJK_RE.search(m.group(0)) else m.group(0), s)
    if s.count("(") > s.count(")"):
        s = s.rstrip(" ,(") + ")" * (s.count("(") - s.count(")"))
    s = s.replace("()", "")
    s = re.sub(r"\s+", " ", s).strip(" ,;:/→.")
    s = re.sub(r"^(and|also|same text|repeated for the \S+)\s+", "", s).strip()
    # an English gloss after the section name ("① provider on ISMAP, ...") is not part of the name
    m = re.search(r"\s[a-z]+(?:\s+[A-Za-z/,\-]+){1,}.*$", s)
    if m and not CJK_RE.search(m.group(0)):
        s = s[: m.start()].strip(" ,;:")
    return s


PART_RE = re.compile(r"^(?:[JHS]-?III|[JHS]\b|III|II|IV|V\b|Ⅰ|I-|System|別添|提供先|移転)")


def _labels(text: str) -> list[str]:
    labels: list[str] = []
    for b in BRACKET_RE.findall(text):
        labels += [x for x in re.split(r",\s*", b) if LABEL_RE.fullmatch(x)]
    for pre, num, a, z in re.findall(r"\[([A-Z0-9\-]+?)(\d+)([a-z])\]–\[\1\2([a-z])\]", text):
        labels += [f"{pre}{num}{chr(x)}" for x in range(ord(a) + 1, ord(z))]
    return list(dict.fromkeys(labels))


@dataclass
class Clause:
    text: str  # with quoted text blanked out, same length as raw
    raw: str
    quotes: list[str]
    section: str
    line_ms: list[re.Match[str]]


def parse_sources(text: str, app: Appendix, default_section: str = "") -> list[Src]:
    """Turn one Src text (or one Sources cell) into citations, one per cited line range.

    A seed file name opens a segment; ";" splits a segment into clauses; each line reference in a clause
    becomes one citation, carrying the labels written before it. A clause that ends with ":" and cites no
    line ("[fn ⑧] "…":") lends its quote to the citations that follow.
    """
    text = BARE_SEED_RE.sub(lambda m: f"`{SEEDS[m.group(1)]}` ", text)
    marks = list(SEED_RE.finditer(text))
    out: list[Src] = []
    shared_quotes: list[str] = []
    lead_section = default_section

    def take_lead(chunk: str) -> None:
        nonlocal shared_quotes, lead_section
        for clause in split_top(chunk):
            c = clause.strip()
            if (c.endswith(":") or c.endswith(" in")) and not LINE_RE.search(QUOTE_RE.sub("", c)):
                shared_quotes = QUOTE_RE.findall(c)
                fn = re.search(r"\[fn ([①-⑩])\]", c)
                lead_section = f"中間サーバーの機能 {fn.group(1)}" if fn else lead_section

    take_lead(text[: marks[0].start()] if marks else text)
    for i, m in enumerate(marks):
        key = m.group(1)[:3]
        seg = text[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(text)]
        clauses: list[Clause] = []
        for raw in split_top(seg):
            c = raw.strip().strip(",").strip()
            if not c:
                continue
            # blank quoted text in place (same length) so positions still index the original clause
            no_q = QUOTE_RE.sub(lambda q: '"' + "\x00" * len(q.group(1)) + '"', c)
            line_ms = list(LINE_RE.finditer(no_q))
            if (c.endswith(":") or c.endswith(" in")) and not line_ms:
                take_lead(c)
                continue
            quotes = [q for q in QUOTE_RE.findall(c) if CJK_RE.search(q)]
            cut = min(
                [p for p in (no_q.find('"'), no_q.find("[")) if p >= 0] + [line_ms[0].start() if line_ms else len(no_q)]
            )
            clauses.append(Clause(no_q, c, quotes, _clean_section(no_q[:cut].replace("\x00", "")), line_ms))
        prev_section = ""
        for n, cl in enumerate(clauses):
            labels_all = _labels(cl.text)
            section = cl.section
            appendix = (
                app.label_range.get((key, labels_all[0]))[0]
                if labels_all and (key, labels_all[0]) in app.label_range
                else ""
            )
            if section.startswith("(") and prev_section:
                # "(マイナポータル)": a qualifier of the part named just before
                section = re.sub(r"\s*\([^()]*\)$", "", prev_section) + " " + section
            elif not section:
                # an unnamed clause ("; [C99] L323") continues the previous part, unless Appendix 1 files its
                # label under another part (III-(1)-4 → III-(2)-4)
                same = appendix and prev_section and appendix.split()[0] == prev_section.split()[0]
                section = prev_section if (same or not appendix) else appendix
            fn = re.search(r"\[fn ([①-⑩])\]", cl.raw)
            section = section or (f"中間サーバーの機能 {fn.group(1)}" if fn else lead_section)
            prev_section = section
            cands = cl.quotes + shared_quotes
            note = ""
            if not cl.line_ms:
                if not labels_all and not cl.quotes:
                    if out:
                        out[-1].note = "; ".join(x for x in (out[-1].note, _one_line(cl.raw)) if x)
                    continue
                src = Src(key, section, labels_all, None, False, cands, note, lines_from="none")
                nxt = clauses[n + 1] if n + 1 < len(clauses) else None
                # "[C37]; 誤った相手 [C41] L265": a bare item shares the lines of the clause that follows it,
                # unless that clause names another part of the assessment.
                if nxt and nxt.line_ms and not PART_RE.match(nxt.section):
                    src.lines, src.lines_from = _line_span(nxt.line_ms[0]), "next"
                out.append(src)
                continue
            # After the last line number: bare labels ("L157–164 [C172]") belong to this clause's citations;
            # "J-III-4 [J-4-11]" is one more citation without a line; anything else is a note.
            tail_at = cl.line_ms[-1].end()
            bare: list[str] = []
            extra: list[Src] = []
            notes: list[str] = []
            # "(and III-(2)-5 [C105], III-(3)-5 [C147])" lists more citations: open the parenthesis
            m_and = re.match(r"^(\s*\((?:and|also) )(.*)\)\s*$", cl.text[tail_at:])
            if m_and and _labels(m_and.group(2)):
                tail_at += len(m_and.group(1))
                cl.text, cl.raw = cl.text[: len(cl.text) - 1], cl.raw[: len(cl.raw) - 1]
            for a, b in split_spans(cl.text[tail_at:], ","):
                piece, raw_piece = cl.text[tail_at + a : tail_at + b], cl.raw[tail_at + a : tail_at + b]
                labs = _labels(piece)
                sect = _clean_section(BRACKET_RE.sub("", piece).replace("\x00", "")).strip("() ,;.")
                if labs and sect and (PART_RE.match(sect) or CJK_RE.search(sect)):
                    extra.append(Src(key, sect, labs, None, False, cands, "", lines_from="none"))
                elif labs and not sect:
                    bare += labs
                elif raw_piece.strip():
                    notes.append(raw_piece.strip())
            note = _note(", ".join(notes))
            last_end = 0
            labels: list[str] = []
            sub_section = section
            for lm in cl.line_ms:
                before = cl.text[last_end : lm.start()]
                here = _labels(before)
                labels = here or labels
                if last_end:
                    between = _clean_section(BRACKET_RE.sub("", before).replace("\x00", ""))
                    between = re.sub(r"^(and|also|same text|as)\b", "", between).strip(" ,(")
                    if between and (CJK_RE.search(between) or PART_RE.match(between)):
                        sub_section = between
                last_end = lm.end()
                out.append(Src(key, sub_section, labels or bare, _line_span(lm), bool(lm.group(1)), cands, note))
            out.extend(extra)
    return out


def _note(tail: str) -> str:
    """What CATALOGUE.md writes after the last line number of a citation ("(also H-4, S-4)", "[doc]")."""
    t = re.sub(r"\s+", " ", tail).strip(" ,;.")
    while t.startswith(")"):
        t = t[1:].strip(" ,;.")
    if t.count("(") > t.count(")"):
        t += ")"
    elif t.count(")") > t.count("(") and t.endswith(")"):
        t = t[:-1].strip(" ,;.")
    return t


def parse_section_a(lines: list[str], app: Appendix) -> list[Entry]:
    start = next(i for i, s in enumerate(lines) if s.startswith("# A. Technical"))
    end = next(i for i, s in enumerate(lines) if s.startswith("# B. Organisational"))
    entries: list[Entry] = []
    cur: Entry | None = None
    fields: dict[str, list[str]] = {}
    key = ""

    def flush() -> None:
        if cur is None:
            return
        f = {k: "\n".join(v).strip() for k, v in fields.items()}
        cur.assert_ = _block(f.get("Assert", ""))
        cur.allowed = _one_line(f.get("T+", ""))
        cur.refused = split_cases(f.get("T−", ""))
        scope = f.get("Scope", "")
        param = f.get("Param", "")
        if "**Param:**" in scope:
            scope, param = scope.split("**Param:**", 1)
        cur.scope = "profile-specific" if scope.strip().startswith("profile-specific") else "common"
        cur.scope_note = _one_line(scope)
        cur.params = parse_params(_one_line(param)) if param.strip() else []
        cur.src_text = _one_line(f.get("Src", ""))
        cur.sources = parse_sources(cur.src_text, app)
        entries.append(cur)

    for raw in lines[start:end]:
        m = HEAD_RE.match(raw)
        if m:
            flush()
            eid = m.group(1)
            cur = Entry(eid, eid.split("-")[0], "technical", m.group(2).strip(), m.group(3).strip())
            fields, key = {}, ""
            continue
        if cur is None:
            continue
        fm = FIELD_RE.match(raw)
        if fm:
            key = fm.group(1)
            fields[key] = [fm.group(2)]
        elif raw.startswith("  ") and key:
            fields[key].append(raw)
        elif raw.startswith("## ") or (raw.strip() and not raw.startswith(" ")):
            key = ""
    flush()
    return entries


def _one_line(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def _block(s: str) -> str:
    """Keep sub-bullets of an Assert as lines of their own; join wrapped prose."""
    out: list[str] = []
    for raw in s.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if raw.startswith("  - ") or raw.startswith("    - ") or line.startswith("- "):
            out.append("- " + line[2:].strip())
        elif (out and not out[-1].startswith("- ")) or (out and raw.startswith("    ")):
            out[-1] += " " + line
        elif out:
            out.append(line)
        else:
            out.append(line)
    return "\n".join(out)


def split_cases(s: str) -> list[str]:
    s = _one_line(s)
    if not s:
        return []
    parts = re.split(r"(?:^|\s)\((\d+)\)\s", " " + s)
    if len(parts) == 1:
        return [s]
    cases = [parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)]
    head = parts[0].strip()
    return ([head] if head else []) + cases


def parse_params(s: str) -> list[dict[str, Any]]:
    keys = list(re.finditer(r"`([a-z_][a-z0-9_.]*)`", s))
    if not keys:
        return [{"key": None, "text": s.rstrip(".")}]
    out = []
    for i, k in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(s)
        text = s[k.end() : end].strip(" ,.;")
        out.append({"key": k.group(1), "text": text})
    return out


def parse_section_b(lines: list[str], app: Appendix) -> list[Entry]:
    start = next(i for i, s in enumerate(lines) if s.startswith("# B. Organisational"))
    end = next(i for i, s in enumerate(lines) if s.startswith("# C. Consolidated"))
    out: list[Entry] = []
    for raw in lines[start:end]:
        m = re.match(r"^\| ((?:ORG|PHY)-\d{3}) \| (.+)$", raw)
        if not m:
            continue
        cells = [c.strip() for c in m.group(2).rstrip("|").split(" | ")]
        ja, en, sources, related = cells[0], cells[1], cells[2], cells[3]
        eid = m.group(1)
        e = Entry(eid, eid[:3], "organisational" if eid.startswith("ORG") else "physical", ja, en)
        e.src_text = sources
        e.sources = parse_sources(sources, app)
        e.scope = "common" if len({s.seed for s in e.sources}) > 1 else "profile-specific"
        ids, notes = expand_related(related)
        e.related, e.related_note = ids, notes
        out.append(e)
    return out


def expand_related(cell: str) -> tuple[list[str], str]:
    if cell.strip() in ("—", "-", ""):
        return [], ""
    ids: list[str] = []
    notes: list[str] = []
    for part in re.split(r",\s*", cell):
        part = part.strip()
        m = re.fullmatch(r"([A-Z]+)-(\d{3})\.\.(\d{3})", part)
        if m:
            ids += [f"{m.group(1)}-{n:03d}" for n in range(int(m.group(2)), int(m.group(3)) + 1)]
        elif re.fullmatch(r"(?:[A-Z]+)-\d{3}", part) and part.split("-")[0] in [*AREAS, "ORG", "PHY"]:
            ids.append(part)
        else:
            notes.append(part)
    return ids, ", ".join(notes)


# ------------------------------------------------------------------------------------ quotes
def japanese_terms(e: Entry) -> list[str]:
    text = " ".join([e.title_ja, e.assert_ or "", e.allowed or "", " ".join(e.refused), e.src_text])
    runs = re.findall(r"[\u3040-\u30ff\u3400-\u9fff々ー０-９Ａ-Ｚａ-ｚ]{2,}", text)
    return sorted(set(runs), key=len, reverse=True)


def auto_quote(seed: Seed, s: Src, e: Entry) -> tuple[str, int, int] | None:
    """No usable quote was given: pick the seed phrase in the cited window that shares the longest run
    with the entry's own Japanese wording, widened to the surrounding clause."""
    assert s.lines
    text, owner, chars = seed.window(s.lines[0], s.lines[1], pad=0)
    if not text:
        return None
    best = (0, 0, 0)
    base, idx = _nfkc_map(text)
    for term in japanese_terms(e)[:80]:
        t = unicodedata.normalize("NFKC", term)
        sm = difflib.SequenceMatcher(None, base, t, autojunk=False)
        m = sm.find_longest_match(0, len(base), 0, len(t))
        if m.size > best[0]:
            best = (m.size, idx[m.a], idx[m.a + m.size - 1] + 1)
    if best[0] < 3:
        return None
    _, a, b = best
    lo, hi = a, b

    def edge(i: int) -> bool:
        return text[i] in BOUNDARY or text[i] in '<>"=/' or chars[i].startswith(" ")

    while lo > 0 and not edge(lo - 1) and not chars[lo].startswith(" ") and b - lo < QUOTE_MAX - 5:
        lo -= 1
    while hi < len(text) and not edge(hi) and hi - lo < QUOTE_MAX:
        hi += 1
    if any(ch in "<>" for ch in text[lo:hi]):
        return None
    phrase = "".join(chars[lo:hi]).strip()
    return shorten(phrase), owner[lo], owner[min(hi, len(owner)) - 1]


def _best_hit(
    seed: Seed, pool: list[str], lines: tuple[int, int], pad: int, min_cjk: int = 4, changelog: bool | None = None
) -> tuple[str, int, int] | None:
    """The longest candidate phrase found near the lines; among equals, the one nearest to them.
    With changelog set, a hit must lie inside (True) or outside (False) the seed's change log."""
    best: tuple[str, int, int] | None = None
    best_key: tuple[int, int] = (0, 0)
    cl = CHANGELOG.get(seed.key)
    for cand in pool:
        for frag in [cand, *fragments(cand)]:
            if len(CJK_RE.findall(frag)) < min_cjk:
                continue
            for hit in seed.find_all(frag, lines[0], lines[1], pad):
                if changelog is not None and cl and (cl[0] <= hit[1] <= cl[1]) != changelog:
                    continue
                dist = 0 if lines[0] <= hit[1] <= lines[1] else min(abs(hit[1] - lines[0]), abs(hit[1] - lines[1]))
                key = (min(len(hit[0]), QUOTE_MAX), -dist)
                if key > best_key:
                    best, best_key = hit, key
    return best


WIDE = 80


def resolve(e: Entry, s: Src, seeds: dict[str, Seed], app: Appendix, rq: dict[tuple[str, str], list[str]]) -> None:
    """Pick a verifiable quote for one citation; correct its lines when the phrase sits elsewhere."""
    seed = seeds[s.seed]
    rng = next((app.label_range[(s.seed, lab)] for lab in s.items if (s.seed, lab) in app.label_range), None)
    if rng is None and s.section:
        head = s.section.split()[0]
        rng = next((h for h in app.sections[s.seed] if h[0].split()[0].rstrip(",") == head), None)
    if s.lines is None:
        if rng is None:
            return
        s.lines, s.lines_from = (rng[1], rng[2]), "appendix"
        s.section = s.section or rng[0]
    if not s.section:
        # no part named in CATALOGUE.md: use the Appendix 1 part whose line range holds the citation
        s.section = next((h[0] for h in app.sections[s.seed] if h[1] <= s.lines[0] <= h[2]), "")
    own = s.candidates
    report = [q for lab in s.items for q in rq.get((s.seed, lab), [])]
    entry_wide = [q for o in e.sources for q in o.candidates] + [
        q for o in e.sources for lab in o.items for q in rq.get((o.seed, lab), [])
    ]
    for how, pool, min_cjk in (("catalogue", own, 2), ("report", report, 4), ("entry", entry_wide, 4)):
        hit = _best_hit(seed, pool, s.lines, WINDOW, min_cjk)
        if hit:
            s.quote, s.how = shorten(hit[0]), how
            if s.lines_from in ("appendix", "next"):
                s.lines, s.lines_from = (hit[1], hit[2]), "quote"
            return
    # The phrase the catalogue quotes is not within ±3 lines: look further (the reports' line numbers
    # are sometimes a few lines off) and move the citation to where the seed really says it.
    wide_lines = (min(s.lines[0], rng[1]), max(s.lines[1], rng[2])) if rng else s.lines
    for how, pool in (("catalogue", own), ("report", report)):
        hit = _best_hit(seed, pool, wide_lines, WIDE, 4, s.changelog)
        if hit:
            if s.lines_from == "catalogue":
                s.moved_from = s.lines
            s.quote, s.how = shorten(hit[0]), how + "-moved"
            s.lines, s.lines_from = (hit[1], hit[2]), "quote"
            return
    hit = auto_quote(seed, s, e)
    if hit:
        s.quote, s.how = hit[0], "auto"
        if s.lines_from in ("appendix", "next"):
            s.lines, s.lines_from = (hit[1], hit[2]), "quote"


# ------------------------------------------------------------------------------------ output
class _NoDupLoader(yaml.SafeLoader):
    """The supplement is hand-edited: a key given twice must be an error, not a silent override."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for k, _ in node.value:
            key = self.construct_object(k, deep=deep)
            if key in seen:
                raise SystemExit(f"{SUPPLEMENT.name}:{k.start_mark.line + 1}: key {key!r} given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class FlowList(list[Any]):
    pass


class Dumper(yaml.SafeDumper):
    pass


def _str(d: yaml.SafeDumper, s: str) -> yaml.ScalarNode:
    if "\n" in s:
        return d.represent_scalar("tag:yaml.org,2002:str", s, style="|")
    return d.represent_scalar("tag:yaml.org,2002:str", s)


Dumper.add_representer(str, _str)
Dumper.add_representer(FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def to_record(e: Entry, sup: dict[str, Any]) -> dict[str, Any]:
    r: dict[str, Any] = {
        "id": e.id,
        "title_ja": sup.get("title_ja", e.title_ja),
        "title_en": sup.get("title_en", e.title_en),
        "area": e.area,
        "kind": e.kind,
        "claim_ja": sup.get("claim_ja"),
        "claim_en": sup.get("claim_en"),
    }
    if e.kind == "technical":
        r["assert"] = e.assert_
        r["allowed_case"] = e.allowed
        r["refused_cases"] = e.refused
    else:
        r["evidence_to_examine"] = sup.get("evidence_to_examine", [])
    r["scope"] = e.scope
    if e.scope_note:
        r["scope_note"] = e.scope_note
    r["profiles"] = FlowList(
        sorted({PROFILE_OF_SEED[s.seed] for s in e.sources}, key=list(PROFILE_OF_SEED.values()).index)
    )
    r["enforced_by"] = FlowList(sup.get("enforced_by", []))
    if e.params:
        r["params"] = e.params
    if e.related:
        r["related"] = FlowList(e.related)
    if e.related_note:
        r["related_note"] = e.related_note
    srcs = []
    for s in e.sources:
        d: dict[str, Any] = {"seed": SEEDS[s.seed], "section": s.section or "—"}
        if s.items:
            d["item"] = ", ".join(s.items)
        d["lines"] = FlowList(list(s.lines)) if s.lines else None
        if s.changelog:
            d["changelog"] = True
        d["quote"] = s.quote
        if s.note:
            d["note"] = s.note
        if s.lines_from == "quote" and s.catalogue_lines is None:
            d["lines_located_by"] = "quote"
        if s.catalogue_lines and s.lines and s.catalogue_lines != s.lines:
            d["catalogue_lines"] = FlowList(list(s.catalogue_lines))
        srcs.append(d)
    r["sources"] = srcs
    return r


def apply_fixes(e: Entry, fixes: list[dict[str, Any]], seeds: dict[str, Seed]) -> None:
    """Hand fixes from the supplement: {seed, line, quote?, lines?, drop?, section?} matched by the
    cited seed key and first line (or index)."""
    for fx in fixes:
        if "add" in fx:
            a = fx["add"]
            src = Src(a["seed"], a["section"], [x for x in str(a.get("item") or "").split(", ") if x],
                      tuple(a["lines"]), bool(a.get("changelog")), [], a.get("note", ""), lines_from="manual")  # fmt: skip
            hit = seeds[src.seed].find(a["quote"], src.lines[0], src.lines[1])
            if not hit:
                raise SystemExit(f"{e.id}: added citation's quote not in {src.seed} L{src.lines}: {a['quote']}")
            src.quote, src.how = shorten(hit[0]), "manual"
            e.sources.append(src)
            continue
        idx = fx.get("index")
        match = [
            s
            for i, s in enumerate(e.sources)
            if (idx is not None and i == idx)
            or (
                idx is None
                and s.seed == fx["seed"]
                and s.lines
                and s.lines[0] == fx["line"]
                and ("item" not in fx or ", ".join(s.items) == fx["item"])
            )
        ]
        if not match:
            raise SystemExit(f"{e.id}: supplement fix matches no source: {fx}")
        for s in match:
            if fx.get("drop"):
                e.sources.remove(s)
                continue
            if "lines" in fx:
                s.lines, s.lines_from = tuple(fx["lines"]), "manual"  # type: ignore[assignment]
            if "changelog" in fx:
                s.changelog = bool(fx["changelog"])
            if "section" in fx:
                s.section = fx["section"]
            if "set_item" in fx:
                s.items = [x for x in str(fx["set_item"] or "").split(", ") if x]
            if "note" in fx:
                s.note = "; ".join(x for x in (s.note, fx["note"]) if x)
            if "quote" in fx:
                q = fx["quote"]
                assert s.lines
                hit = seeds[s.seed].find(q, s.lines[0], s.lines[1])
                if not hit:
                    raise SystemExit(f"{e.id}: hand quote not in {s.seed} L{s.lines}: {q}")
                s.quote, s.how = shorten(hit[0]), "manual"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--check", action="store_true", help="report only; write nothing")
    ap.add_argument("--dump", action="store_true", help="print unresolved sources")
    args = ap.parse_args()
    cat = (args.shared / "research" / "CATALOGUE.md").read_text(encoding="utf-8").split("\n")
    seeds = {k: Seed(k, args.shared / "seeds" / v) for k, v in SEEDS.items()}
    app = parse_appendix(cat)
    rq = report_quotes(args.shared)
    entries = parse_section_a(cat, app) + parse_section_b(cat, app)
    sup_all: dict[str, Any] = (
        yaml.load(SUPPLEMENT.read_text(encoding="utf-8"), Loader=_NoDupLoader) if SUPPLEMENT.exists() else {}
    )
    controls_sup: dict[str, Any] = sup_all.get("controls", {}) or {}
    fixes_sup: dict[str, list[dict[str, Any]]] = sup_all.get("fixes", {}) or {}
    stats: dict[str, int] = {}
    problems: list[str] = []
    for e in entries:
        for s in e.sources:
            if s.lines_from == "catalogue":
                s.catalogue_lines = s.lines
            resolve(e, s, seeds, app, rq)
        apply_fixes(e, (controls_sup.get(e.id) or {}).get("fixes", []) + fixes_sup.get(e.id, []), seeds)
        for s in e.sources:
            stats[s.how or "none"] = stats.get(s.how or "none", 0) + 1
            if s.lines is None:
                problems.append(f"{e.id} {s.seed} {s.section!r} {s.items}: no lines")
            elif s.lines[1] > len(seeds[s.seed]):
                problems.append(f"{e.id} {s.seed} L{s.lines}: beyond end of seed ({len(seeds[s.seed])})")
            if not s.quote and s.lines:
                problems.append(f"{e.id} {s.seed} L{s.lines[0]}-{s.lines[1]} {s.section!r} {s.items}: no quote")
            if s.changelog and s.seed in CHANGELOG and s.lines:
                lo, hi = CHANGELOG[s.seed]
                if not (lo <= s.lines[0] <= hi):
                    problems.append(f"{e.id} {s.seed} CL L{s.lines[0]}: outside the change log {lo}-{hi}")
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.area] = counts.get(e.area, 0) + 1
    print("entries per area:", counts, "total", len(entries), file=sys.stderr)
    print("quote resolution:", stats, file=sys.stderr)
    for p in problems:
        print("  ", p, file=sys.stderr)
    if args.dump:
        for e in entries:
            for s in e.sources:
                print(e.id, s.seed, s.lines, s.how, s.section, s.items, "|", s.quote, file=sys.stderr)
    if args.check:
        return 0
    area_meta: dict[str, Any] = sup_all.get("areas", {}) or {}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for area in [*AREAS, "ORG", "PHY"]:
        recs = [to_record(e, controls_sup.get(e.id) or {}) for e in entries if e.area == area]
        meta = area_meta.get(area, {})
        doc = {
            "area": area,
            "title_ja": meta.get("title_ja", ""),
            "title_en": meta.get("title_en", ""),
            "controls": recs,
        }
        header = (
            f"# {area}: {meta.get('title_ja', '')} / {meta.get('title_en', '')}\n"
            "# Control catalogue data (jukisim). Generated by tools/catalogue_extract.py from\n"
            "# /work/shared/research/CATALOGUE.md and tools/catalogue_supplement.yaml; every `quote` is copied\n"
            "# from the cited seed lines (whitespace removed) and checked by tests/controls/test_quotes.py.\n"
        )
        body = yaml.dump(doc, Dumper=Dumper, allow_unicode=True, sort_keys=False, width=100000)
        (OUT_DIR / f"{area.lower()}.yaml").write_text(header + body, encoding="utf-8")
    return 1 if any("beyond end" in p or "outside the change" in p for p in problems) else 0


if __name__ == "__main__":
    raise SystemExit(main())
