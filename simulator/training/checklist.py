"""`jukisim explain checklist`: the organisational and physical controls as items a person must examine.

Every ORG and PHY entry a profile claims, with its claim, that municipality's citation and the evidence to examine,
placed at the stage of the linkage path where its related technical controls fire (with the flows that pass there).
Simulation cannot verify these: this module must never mark an item as passed or verified.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape

from simulator.controls.catalogue import PROFILES, Catalogue, Control, Kind, Source, load_catalogue
from simulator.errors import InputError
from simulator.i18n import Lang
from simulator.training.words import citation_text, t

__all__ = [
    "STAGES",
    "ChecklistItem",
    "Stage",
    "build_checklist",
    "checklist_html",
    "checklist_markdown",
    "evidence_text",
    "print_checklist",
]


@dataclass(frozen=True)
class Stage:
    """A stage of the linkage path: the technical areas whose controls fire there and the flows that pass it."""

    id: str
    name_ja: str
    name_en: str
    areas: tuple[str, ...]
    flows: tuple[str, ...]

    def name(self, lang: Lang) -> str:
        return self.name_ja if lang == "ja" else self.name_en


STAGES: tuple[Stage, ...] = (
    Stage(
        "intake",
        "届出・申請の受付（窓口・電子申請）",
        "Intake at the counter and online",
        ("MADO", "JUKI", "EAPP", "SAAS"),
        ("move_in", "move_within", "birth", "move_out", "death"),
    ),
    Stage(
        "jukinet",
        "住基ネット（CS・都道府県・全国サーバ）",
        "Juki-net (CS, prefectural and national servers)",
        ("GW", "CS", "JLIS"),
        ("move_within", "card_move_in", "mailing_info"),
    ),
    Stage(
        "office",
        "宛名・庁内連携",
        "Addressee system and intra-office linkage",
        ("ATENA", "RENKEI", "RELAY"),
        ("transfer", "replica_update"),
    ),
    Stage(
        "linkage",
        "中間サーバー・情報提供ネットワークシステム",
        "Intermediate server and NWS",
        ("CHUKAN", "PF", "NWS"),
        ("query", "held_query", "refused_query", "portal", "code_acquisition"),
    ),
    Stage(
        "business",
        "業務システム（税務・介護保険など）",
        "Business systems (tax, long-term care …)",
        ("GYOMU",),
        ("query", "replica_update"),
    ),
    Stage(
        "infrastructure",
        "基盤（クラウド・ネットワーク・端末・媒体）",
        "Infrastructure (cloud, network, terminals, media)",
        ("CLOUD", "NET", "TERM", "MEDIA"),
        (),
    ),
    Stage(
        "people",
        "職員・委託先・記録・データ管理",
        "Staff, contractors, logs and data handling",
        ("AUTH", "ITAKU", "LOG", "DATA"),
        (),
    ),
)
GENERAL = Stage("general", "全体（特定の段階に依らない）", "Throughout (not tied to one stage)", (), ())


@dataclass(frozen=True)
class ChecklistItem:
    """One ORG/PHY control for one profile: to be examined by a person, never passed by the simulator."""

    control: Control
    related: tuple[Control, ...]  # the technical controls next to which it is examined
    citations: tuple[Source, ...]  # only this profile's seed lines

    @property
    def kind_label(self) -> tuple[str, str]:
        return ("組織的", "organisational") if self.control.kind is Kind.ORGANISATIONAL else ("物理的", "physical")


def _stage_of(area: str) -> Stage:
    return next((s for s in STAGES if area in s.areas), GENERAL)


def build_checklist(profile: str, catalogue: Catalogue | None = None) -> list[tuple[Stage, list[ChecklistItem]]]:
    """The profile's ORG and PHY items grouped by stage, in path order; stages without items are left out."""
    if profile not in PROFILES:
        raise InputError("profile", f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    cat = catalogue or load_catalogue()
    grouped: dict[str, list[ChecklistItem]] = {}
    for control in cat.filter(profile=profile):
        if control.kind is Kind.TECHNICAL:
            continue
        related = tuple(r for r in (cat.get(i) for i in control.related) if r.kind is Kind.TECHNICAL)
        order = [s.id for s in (*STAGES, GENERAL)]
        stage = min((_stage_of(r.area) for r in related), key=lambda s: order.index(s.id), default=GENERAL)
        citations = tuple(s for s in control.sources if s.profile == profile)
        grouped.setdefault(stage.id, []).append(ChecklistItem(control, related, citations))
    return [(s, grouped[s.id]) for s in (*STAGES, GENERAL) if s.id in grouped]


def evidence_text(text: str, lang: Lang) -> str:
    """The catalogue writes each piece of evidence as "日本語 / English": show the reader's language."""
    ja, sep, en = text.partition(" / ")
    return (ja if lang == "ja" else en) if sep else text


def _cities(lang: Lang, profile: str | None) -> Iterator[tuple[str, str, list[tuple[Stage, list[ChecklistItem]]]]]:
    """Each profile asked for (one, or every one), with its city's name in the reader's language and its checklist."""
    for key in [profile] if profile is not None else list(PROFILES):
        groups = build_checklist(key)  # first: an unknown profile is refused naming the field
        yield key, PROFILES[key][0 if lang == "ja" else 1], groups


# The checklist's own words (日本語, English), the same in the terminal, Markdown and HTML forms.
_CLAIM = ("主張", "Claim")
_CITATION = ("根拠", "Citation")
_RELATED = ("関連する技術的対策", "Next to technical controls")
_EVIDENCE = ("確認する証拠", "Evidence to examine")
_RESULT = ("確認結果", "Result")
_FLOWS = ("この段階を通る流れ: ", "Flows through this stage: ")
_NOT_EXAMINED = ("未確認（確認者・日付・所見を記入）", "not yet examined (examiner, date, finding)")
_NOTE = (
    "シミュレーションでは検証できない項目です。証拠を確認し、確認者・日付・所見を記入してください。",
    "Simulation cannot verify these items. Examine the evidence and record examiner, date and finding.",
)


def _related(item: ChecklistItem, lang: Lang) -> str:
    return ", ".join(f"{r.id} {r.title(lang)}" for r in item.related)


def _cite(source: Source, profile: str, lang: Lang) -> str:
    return citation_text(
        {
            "profile": profile,
            "seed": source.seed,
            "section": source.section,
            "lines": list(source.lines),
            "quote": source.quote,
        },
        lang,
    )


def print_checklist(console: Console, lang: Lang, profile: str | None = None) -> int:
    """Print the checklist of one profile (or of every profile); returns the number of items printed."""
    say = console.print
    count = 0

    def label(words: tuple[str, str]) -> str:
        return escape(t(lang, *words).lower())  # a terminal line reads better with lower-case labels

    for key, city, groups in _cities(lang, profile):
        console.rule(
            f"[bold]{escape(t(lang, f'{city}：人が確認する項目（組織的・物理的対策）', f'{city}: items a person must examine (organisational and physical)'))}[/]",
            align="left",
        )
        say(t(lang, *_NOTE), style="yellow", highlight=False)
        for stage, items in groups:
            say(f"\n[bold cyan]■ {escape(stage.name(lang))}[/]", highlight=False)
            if stage.flows:
                flows = ", ".join(f"jukisim explain {f}" for f in stage.flows)
                say(f"  {label(_FLOWS)}{flows}", style="dim", highlight=False)
            for item in items:
                count += 1
                c = item.control
                kind = item.kind_label[0 if lang == "ja" else 1]
                say(f"  [bold]☐ {c.id}[/] ({escape(kind)}) {escape(c.title(lang))}", highlight=False)
                say(f"      {label(_CLAIM)}: {escape(c.claim(lang))}", highlight=False)
                for source in item.citations:
                    say(f"      {label(_CITATION)}: {escape(_cite(source, key, lang))}", highlight=False)
                if item.related:
                    say(f"      {label(_RELATED)}: {escape(_related(item, lang))}", highlight=False)
                say(f"      {label(_EVIDENCE)}:", highlight=False)
                for evidence in c.evidence_to_examine:
                    say(f"        ☐ {escape(evidence_text(evidence, lang))}", highlight=False)
                say(f"      {label(_RESULT)}: {escape(t(lang, *_NOT_EXAMINED))}", highlight=False)
    return count


def checklist_markdown(lang: Lang, profile: str | None = None) -> str:
    """The same checklist as a Markdown page with tick boxes, to print or keep with the audit file."""
    out: list[str] = []
    for key, city, groups in _cities(lang, profile):
        out.append(
            f"# {t(lang, f'{city} 確認項目チェックリスト（組織的・物理的対策）', f'{city}: checklist (organisational and physical controls)')}\n"
        )
        out.append(t(lang, *_NOTE) + "\n")
        for stage, items in groups:
            out.append(f"## {stage.name(lang)}\n")
            if stage.flows:
                out.append(t(lang, *_FLOWS) + ", ".join(f"`jukisim explain {f}`" for f in stage.flows) + "\n")
            for item in items:
                c = item.control
                out.append(f"### ☐ {c.id} {c.title(lang)}\n")
                out.append(f"- {t(lang, *_CLAIM)}: {c.claim(lang)}")
                out.extend(f"- {t(lang, *_CITATION)}: {_cite(s, key, lang)}" for s in item.citations)
                if item.related:
                    out.append(f"- {t(lang, *_RELATED)}: {_related(item, lang)}")
                out.append(f"- {t(lang, *_EVIDENCE)}:")
                out.extend(f"  - [ ] {evidence_text(e, lang)}" for e in c.evidence_to_examine)
                out.append(
                    f"- {t(lang, *_RESULT)}: "
                    f"{t(lang, '未確認（確認者: ＿＿ 日付: ＿＿ 所見: ＿＿）', 'not yet examined (examiner: __ date: __ finding: __)')}\n"
                )
    return "\n".join(out)


_CSS = (
    "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.5}"
    "section.item{border:1px solid #bbb;border-radius:4px;padding:.5rem 1rem;margin:.75rem 0}"
    ".note{background:#fff6d5;padding:.5rem 1rem}.flows,.related{color:#555;font-size:.9rem}"
    "label{display:block}.result{border-top:1px dashed #bbb;margin-top:.5rem;padding-top:.5rem}"
)


def checklist_html(lang: Lang, profile: str | None = None) -> str:
    """The checklist as one self-contained page (no scripts, no network): tick boxes and blank result fields."""
    e = html.escape
    body: list[str] = []
    for key, city, groups in _cities(lang, profile):
        body.append(
            f"<h1>{e(t(lang, f'{city} 確認項目チェックリスト（組織的・物理的対策）', f'{city}: checklist'))}</h1>"
        )
        body.append(f"<p class=note>{e(t(lang, *_NOTE))}</p>")
        for stage, items in groups:
            body.append(f"<h2>{e(stage.name(lang))}</h2>")
            if stage.flows:
                flows = ", ".join(f"<code>jukisim explain {e(f)}</code>" for f in stage.flows)
                body.append(f"<p class=flows>{e(t(lang, *_FLOWS))}{flows}</p>")
            for item in items:
                c = item.control
                body.append(f"<section class=item id='{e(key)}-{e(c.id)}'><h3>☐ {e(c.id)} {e(c.title(lang))}</h3>")
                body.append(f"<p>{e(c.claim(lang))}</p><ul>")
                body.extend(f"<li>{e(_cite(s, key, lang))}</li>" for s in item.citations)
                body.append("</ul>")
                if item.related:
                    body.append(f"<p class=related>{e(t(lang, *_RELATED))}: {e(_related(item, lang))}</p>")
                body.append(f"<p>{e(t(lang, *_EVIDENCE))}:</p>")
                body.extend(
                    f"<label><input type=checkbox> {e(evidence_text(x, lang))}</label>" for x in c.evidence_to_examine
                )
                body.append(f"<p class=result>{e(t(lang, *_RESULT))}: {e(t(lang, *_NOT_EXAMINED))}</p>")
                body.append("</section>")
    title = t(lang, "確認項目チェックリスト", "Checklist")
    return (
        f"<!doctype html><html lang={lang}><head><meta charset=utf-8><title>{e(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
