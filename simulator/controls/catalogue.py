"""The control catalogue: every control the five 特定個人情報保護評価書 claim, as reviewable data.

Loads scenarios/catalogue/controls/*.yaml into typed entries (id, titles, claim, testable assertion, cases,
citations into the seed texts, enforcing component) and checks them on load: unique ids, the id pattern of
each area, the kind, and that every cited seed line exists. It also finds where code names a control id.
This module must never decide a control or invent a citation; it only describes what the PIAs claim.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.errors import InputError
from simulator.yamlmarks import Problem, YamlProblems, line_for, load_marked

__all__ = [
    "AREAS",
    "CHANGELOG_LINES",
    "COMPONENTS",
    "PROFILES",
    "SEED_FILES",
    "Catalogue",
    "CatalogueError",
    "Control",
    "Kind",
    "Param",
    "Problem",
    "Scope",
    "Source",
    "UnknownControlError",
    "default_catalogue_path",
    "enforcement_sites",
    "load_catalogue",
    "project_root",
    "seeds_dir",
    "verify_quotes",
]

# Technical areas in catalogue order (CATALOGUE.md §0.5), then the two checklist areas of Section B.
AREAS: tuple[str, ...] = (
    "JUKI", "GW", "CS", "JLIS", "ATENA", "RENKEI", "RELAY", "CHUKAN", "PF", "NWS", "GYOMU",
    "EAPP", "SAAS", "CLOUD", "MADO", "NET", "TERM", "MEDIA", "AUTH", "ITAKU", "LOG", "DATA",
    "ORG", "PHY",
)  # fmt: skip

# Seed texts (the five PIAs) and the municipality profile that each one describes.
SEED_FILES: dict[str, str] = {
    "kuwana": "000_b81c60476033af2d.txt",
    "tsukuba": "001_cc86eefa057d2f96.txt",
    "sapporo": "002_eb38df5b06157c45.txt",
    "iizuka": "003_c3e3e36f1128990f.txt",
    "kurashiki": "004_c609ceaeef7ce1bb.txt",
}
PROFILES: dict[str, tuple[str, str]] = {
    "kuwana": ("桑名市", "Kuwana"),
    "tsukuba": ("つくば市", "Tsukuba"),
    "sapporo": ("札幌市", "Sapporo"),
    "iizuka": ("飯塚市", "Iizuka"),
    "kurashiki": ("倉敷市", "Kurashiki"),
}
_PROFILE_OF_SEED = {seed: profile for profile, seed in SEED_FILES.items()}

# The change log (変更箇所) of each seed that has one: a citation marked `changelog` must fall inside it.
CHANGELOG_LINES: dict[str, tuple[int, int]] = {
    "000_b81c60476033af2d.txt": (449, 596),
    "001_cc86eefa057d2f96.txt": (1002, 1319),
    "004_c609ceaeef7ce1bb.txt": (619, 662),
}

# Components that can enforce a control: identifier → (日本語, English). Identifiers follow GLOSSARY.md.
COMPONENTS: dict[str, tuple[str, str]] = {
    "registry": ("既存住基システム", "existing resident-registry system"),
    "gateway": ("住基GW・住基ネット中間サーバ", "registry gateway"),
    "municipal_cs": ("市町村CS", "municipal communication server"),
    "juki_terminal": ("統合端末", "Juki-net integrated terminal"),
    "prefectural_server": ("都道府県サーバ", "prefectural server"),
    "national_server": ("全国サーバ", "national server"),
    "card_system": ("個人番号カード管理システム", "card management system"),
    "atena": ("団体内統合宛名システム", "unified addressee system"),
    "office_link": ("庁内連携システム", "intra-office linkage"),
    "relay": ("市側中継サーバ", "city-side relay"),
    "intermediate_server": ("中間サーバー", "intermediate server"),
    "platform": ("中間サーバー・プラットフォーム", "intermediate-server platform"),
    "nws": ("情報提供ネットワークシステム", "Information Provision Network System"),
    "business_system": ("業務システム", "business system"),
    "e_application": ("電子申請（マイナポータル・申請管理）", "online application service"),
    "ai_ocr": ("AI-OCR", "AI-OCR service"),
    "counter_saas": ("窓口DXSaaS", "counter DX SaaS"),
    "gov_cloud": ("ガバメントクラウド", "Government Cloud"),
    "file_server": ("基幹系ファイルサーバ", "core file server"),
    "backup_center": ("クラウド型バックアップセンター", "cloud backup centre"),
    "lgwan": ("総合行政ネットワーク（LGWAN）", "LGWAN"),
    "network": ("ネットワーク境界（ファイアウォール等）", "network perimeter"),
    "terminal": ("業務端末", "business terminal"),
    "staff_auth": ("職員認証・権限管理", "staff authentication and authorisation"),
    "audit_log": ("アクセスログ・操作ログ", "access and operation log"),
    "media_export": ("媒体出力・外部媒体管理", "media output control"),
    "backup": ("バックアップ", "backup"),
    "power_supply": ("無停電電源装置", "uninterruptible power supply"),
    "counter": ("窓口", "counter"),
}

QUOTE_MAX = 60
QUOTE_WINDOW = 3  # a quote must occur within ±3 lines of the lines it cites
ID_RE = re.compile(r"^(?P<area>[A-Z]+)-(?P<num>\d{3})$")
_ID_ANYWHERE = re.compile(r"^(?:" + "|".join(AREAS) + r")-\d{3}$")


class Kind(StrEnum):
    TECHNICAL = "technical"
    ORGANISATIONAL = "organisational"
    PHYSICAL = "physical"

    def label(self, lang: str = "ja") -> str:
        ja = {"technical": "技術的", "organisational": "組織的", "physical": "物理的"}[self.value]
        return ja if lang == "ja" else self.value


class Scope(StrEnum):
    COMMON = "common"
    PROFILE_SPECIFIC = "profile-specific"

    def label(self, lang: str = "ja") -> str:
        if lang != "ja":
            return self.value
        return "共通" if self is Scope.COMMON else "団体固有"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Source(_Strict):
    """One citation: a place in a seed text where a PIA states the control."""

    seed: str
    section: str
    item: str | None = None  # the extraction report's label, e.g. "C49" or "J-2-R1-6"
    lines: tuple[int, int]
    changelog: bool = False  # the lines are rows of the seed's change log (変更箇所)
    quote: str | None = None  # ≤ 60 characters copied from the seed (whitespace aside)
    note: str | None = None
    lines_located_by: str | None = None  # "quote": CATALOGUE.md gave no line; the quote located it
    catalogue_lines: tuple[int, int] | None = None  # CATALOGUE.md's lines, where the phrase proved to be elsewhere

    @field_validator("seed")
    @classmethod
    def _known_seed(cls, v: str) -> str:
        if v not in _PROFILE_OF_SEED:
            raise ValueError(f"unknown seed file {v!r}; expected one of {sorted(_PROFILE_OF_SEED)}")
        return v

    @field_validator("lines")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 1 or v[1] < v[0]:
            raise ValueError(f"lines must be [start, end] with 1 ≤ start ≤ end, got {list(v)}")
        return v

    @field_validator("quote")
    @classmethod
    def _short(cls, v: str | None) -> str | None:
        if v is not None and len(v) > QUOTE_MAX:
            raise ValueError(f"quote is {len(v)} characters; at most {QUOTE_MAX} are allowed")
        return v

    @property
    def profile(self) -> str:
        return _PROFILE_OF_SEED[self.seed]

    def cite(self) -> str:
        """The citation as CATALOGUE.md writes it: file, section, [item], L<lines>."""
        span = f"{self.lines[0]}" if self.lines[0] == self.lines[1] else f"{self.lines[0]}–{self.lines[1]}"
        parts = [self.seed, self.section]
        if self.item:
            parts.append(f"[{self.item}]")
        parts.append(("CL " if self.changelog else "") + "L" + span)
        return " ".join(parts)


class Param(_Strict):
    """A configurable value the control depends on (defaults live in the municipality profiles)."""

    key: str | None = None
    text: str


class Control(_Strict):
    """One claimed control. Technical ones are enforced by a component; the others are checklist items."""

    id: str
    title_ja: str
    title_en: str
    area: str
    kind: Kind
    claim_ja: str
    claim_en: str
    assert_: str | None = Field(default=None, alias="assert")
    allowed_case: str | None = None
    refused_cases: list[str] = []
    evidence_to_examine: list[str] = []
    scope: Scope
    scope_note: str | None = None
    profiles: list[str]
    enforced_by: list[str] = []
    params: list[Param] = []
    related: list[str] = []
    related_note: str | None = None
    sources: list[Source]

    @field_validator("profiles")
    @classmethod
    def _known_profiles(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if p not in PROFILES]
        if unknown:
            raise ValueError(f"unknown profile {unknown[0]!r}; expected one of {list(PROFILES)}")
        return v

    @field_validator("enforced_by")
    @classmethod
    def _known_components(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in COMPONENTS]
        if unknown:
            raise ValueError(f"unknown component {unknown[0]!r}; use an identifier from COMPONENTS")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Control:
        m = ID_RE.match(self.id)
        if not m or m.group("area") not in AREAS:
            raise ValueError(f"id {self.id!r} must look like AREA-nnn with AREA one of {', '.join(AREAS)}")
        if m.group("area") != self.area:
            raise ValueError(f"id {self.id!r} does not belong to area {self.area!r}")
        expected = {"ORG": Kind.ORGANISATIONAL, "PHY": Kind.PHYSICAL}.get(self.area, Kind.TECHNICAL)
        if self.kind is not expected:
            raise ValueError(f"{self.id}: an entry of area {self.area} must be kind {expected.value}")
        if self.kind is Kind.TECHNICAL:
            if not (self.assert_ and self.allowed_case and self.refused_cases):
                raise ValueError(f"{self.id}: a technical control needs assert, allowed_case and refused_cases")
            if not self.enforced_by:
                raise ValueError(f"{self.id}: a technical control needs enforced_by")
        elif not self.evidence_to_examine:
            raise ValueError(f"{self.id}: an {self.kind.value} item needs evidence_to_examine")
        if not self.sources:
            raise ValueError(f"{self.id}: at least one source is required")
        cited = {s.profile for s in self.sources}
        if set(self.profiles) != cited:
            raise ValueError(
                f"{self.id}: profiles {sorted(self.profiles)} must be exactly the municipalities whose seeds "
                f"are cited {sorted(cited)}"
            )
        return self

    def title(self, lang: str = "ja") -> str:
        return self.title_ja if lang == "ja" else self.title_en

    def claim(self, lang: str = "ja") -> str:
        return self.claim_ja if lang == "ja" else self.claim_en


class UnknownControlError(KeyError):
    """A control id that the catalogue does not have."""

    def __init__(self, control_id: str, suggestions: list[str]) -> None:
        self.control_id = control_id
        self.suggestions = suggestions
        super().__init__(control_id)

    def __str__(self) -> str:
        hint = f" (did you mean {', '.join(self.suggestions)}?)" if self.suggestions else ""
        return f"unknown control id {self.control_id!r}: no such entry in the control catalogue{hint}"


class CatalogueError(InputError):
    """The catalogue data is wrong; names the file, line and field of every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(f"{first.file}:{first.line or '?'} {first.field}", first.rule)

    def __str__(self) -> str:
        more = "" if len(self.problems) == 1 else f" (+{len(self.problems) - 1} more)"
        return "control catalogue: " + "\n".join(str(p) for p in self.problems) + more


class Catalogue(BaseModel):
    """All controls, in catalogue order, with lookups by id, area, kind and profile."""

    model_config = ConfigDict(frozen=True)

    controls: list[Control]
    notes: list[str] = []  # e.g. why seed line checks were skipped

    def model_post_init(self, __context: Any) -> None:
        object.__setattr__(self, "_by_id", {c.id: c for c in self.controls})

    def get(self, control_id: str) -> Control:
        by_id: dict[str, Control] = self._by_id  # type: ignore[attr-defined]
        try:
            return by_id[control_id]
        except KeyError:
            close = difflib.get_close_matches(control_id.upper(), list(by_id), n=3, cutoff=0.6)
            raise UnknownControlError(control_id, close) from None

    def __contains__(self, control_id: object) -> bool:
        return control_id in self._by_id  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[Control]:  # type: ignore[override]
        return iter(self.controls)

    def __len__(self) -> int:
        return len(self.controls)

    def filter(self, *, area: str | None = None, kind: str | None = None, profile: str | None = None) -> list[Control]:
        """Controls matching every given criterion (area id, kind value, profile key), in catalogue order."""
        if area is not None and area.upper() not in AREAS:
            raise InputError("area", f"unknown area {area!r}; expected one of {', '.join(AREAS)}")
        if kind is not None and kind not in {k.value for k in Kind}:
            raise InputError("kind", f"unknown kind {kind!r}; expected one of {', '.join(k.value for k in Kind)}")
        if profile is not None and profile not in PROFILES:
            raise InputError("profile", f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
        return [
            c
            for c in self.controls
            if (area is None or c.area == area.upper())
            and (kind is None or c.kind.value == kind)
            and (profile is None or profile in c.profiles)
        ]

    def by_area(self, area: str) -> list[Control]:
        return self.filter(area=area)

    def by_kind(self, kind: str) -> list[Control]:
        return self.filter(kind=kind)

    def by_profile(self, profile: str) -> list[Control]:
        return self.filter(profile=profile)

    def counts(self) -> dict[str, int]:
        """Number of entries per area, in catalogue order."""
        out = {a: 0 for a in AREAS}
        for c in self.controls:
            out[c.area] += 1
        return {a: n for a, n in out.items() if n}


# ------------------------------------------------------------------------------------------ locating


def project_root() -> Path:
    """The jukisim checkout (the directory that holds simulator/ and scenarios/)."""
    return Path(__file__).resolve().parents[2]


def default_catalogue_path() -> Path:
    """The packaged catalogue: scenarios/catalogue/controls/ (one YAML file per area)."""
    return Path(str(resources.files("scenarios.catalogue.controls")))


def seeds_dir() -> Path | None:
    """Where the five seed texts are: $JUKISIM_SEEDS, else ../shared/seeds next to the project."""
    env = os.environ.get("JUKISIM_SEEDS")
    candidate = Path(env) if env else project_root().parent / "shared" / "seeds"
    return candidate if candidate.is_dir() else None


# ------------------------------------------------------------------------------------------ loading


def _yaml_with_marks(text: str, name: str) -> tuple[Any, dict[tuple[object, ...], int]]:
    try:
        return load_marked(text, name)
    except YamlProblems as exc:
        raise CatalogueError(exc.problems) from None


def _line_for(marks: dict[tuple[object, ...], int], path: tuple[object, ...]) -> int | None:
    return line_for(marks, path)


def _field_name(control_id: str | None, loc: tuple[object, ...]) -> str:
    out = control_id or ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass(frozen=True)
class _Where:
    """Where a control sits in its file, so later checks can point at one of its fields."""

    file: str
    marks: dict[tuple[object, ...], int]
    base: tuple[object, ...]

    def line(self, *path: object) -> int | None:
        return _line_for(self.marks, (*self.base, *path))

    def problem(self, field: str, rule: str, *path: object) -> Problem:
        return Problem(self.file, self.line(*path), field, rule)


def _load_file(path: Path, shown: str) -> tuple[list[Control], list[Problem], dict[str, _Where]]:
    data, marks = _yaml_with_marks(path.read_text(encoding="utf-8"), shown)
    problems: list[Problem] = []
    where: dict[str, _Where] = {}
    if not isinstance(data, dict) or not isinstance(data.get("controls"), list):
        return [], [Problem(shown, 1, "controls", "the file must be a mapping with a `controls:` list")], where
    area = data.get("area")
    controls: list[Control] = []
    for i, item in enumerate(data["controls"]):
        base: tuple[object, ...] = ("controls", i)
        cid = item.get("id") if isinstance(item, dict) else None
        label = str(cid) if cid else f"controls[{i}]"
        if area and isinstance(cid, str) and not cid.startswith(f"{area}-"):
            problems.append(
                Problem(shown, _line_for(marks, (*base, "id")), f"{label}.id", f"not in this file's area {area}")
            )
        try:
            control = Control.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(p for p in err["loc"] if p not in ("function-after[_consistent(), Control]",))
                problems.append(Problem(shown, _line_for(marks, (*base, *loc)), _field_name(label, loc), err["msg"]))
            continue
        controls.append(control)
        where[control.id] = _Where(shown, marks, base)
    return controls, problems, where


def _seed_line_counts(seeds: Path) -> dict[str, int]:
    counts = {}
    for name in SEED_FILES.values():
        p = seeds / name
        if p.is_file():
            text = p.read_text(encoding="utf-8")
            counts[name] = len(text.split("\n")) - (1 if text.endswith("\n") else 0)
    return counts


def load_catalogue(path: Path | None = None, *, seeds: Path | None = None) -> Catalogue:
    """Load and check the catalogue from a directory of YAML files (default: the packaged one) or one file.

    Seed line checks use `seeds` (default: `seeds_dir()`); without seed texts they are skipped and the
    catalogue says so in `notes`. Any problem raises CatalogueError naming file, line and field.
    """
    path = path or default_catalogue_path()
    if not path.exists():
        raise CatalogueError([Problem(str(path), None, "(path)", "no such file or directory")])
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    if not files:
        raise CatalogueError([Problem(str(path), None, "(path)", "no *.yaml files in this directory")])
    controls: list[Control] = []
    problems: list[Problem] = []
    where: dict[str, _Where] = {}
    for f in files:
        got, probs, locs = _load_file(f, f.name)
        problems += probs
        for c in got:
            if c.id in where:
                first = where[c.id]
                rule = f"duplicate id; first at {first.file}:{first.line('id')}"
                problems.append(locs[c.id].problem(f"{c.id}.id", rule, "id"))
                continue
            where[c.id] = locs[c.id]
            controls.append(c)
    known = {c.id for c in controls}
    for c in controls:
        for i, r in enumerate(c.related):
            if r not in known:
                problems.append(where[c.id].problem(f"{c.id}.related", f"unknown control id {r!r}", "related", i))
    notes: list[str] = []
    seeds = seeds or seeds_dir()
    if seeds is None or not seeds.is_dir():
        notes.append(
            "seed texts not found (set JUKISIM_SEEDS or place them at ../shared/seeds): "
            "seed files and cited line numbers were not checked"
        )
    else:
        counts = _seed_line_counts(seeds)
        for c in controls:
            at = where[c.id]
            for i, s in enumerate(c.sources):
                field = f"{c.id}.sources[{i}]"
                if s.seed not in counts:
                    problems.append(at.problem(field + ".seed", f"{s.seed} not in {seeds}", "sources", i, "seed"))
                    continue
                if s.lines[1] > counts[s.seed]:
                    rule = f"line {s.lines[1]} is past the end of {s.seed} ({counts[s.seed]} lines)"
                    problems.append(at.problem(field + ".lines", rule, "sources", i, "lines"))
                cl = CHANGELOG_LINES.get(s.seed)
                if s.changelog and (cl is None or not (cl[0] <= s.lines[0] and s.lines[1] <= cl[1])):
                    rule = f"marked changelog but lines {list(s.lines)} are outside the change log {cl}"
                    problems.append(at.problem(field + ".lines", rule, "sources", i, "lines"))
    if problems:
        raise CatalogueError(problems)
    order = {a: i for i, a in enumerate(AREAS)}
    controls.sort(key=lambda c: (order[c.area], c.id))
    return Catalogue(controls=controls, notes=notes)


# ------------------------------------------------------------------------------------------ checking


def _squash(text: str) -> str:
    # Quotes are copied from the seed, so only whitespace (line wraps, PDF spacing) may differ.
    return "".join(ch for ch in text if not ch.isspace())


def verify_quotes(catalogue: Catalogue, seeds: Path) -> tuple[int, list[str]]:
    """Check that every quote occurs in its seed within ±3 lines of the cited lines (whitespace ignored).

    Returns the number of quotes verified and a description of each one that was not found.
    """
    texts: dict[str, list[str]] = {}
    verified = 0
    failures: list[str] = []
    for c in catalogue:
        for i, s in enumerate(c.sources):
            if s.quote is None:
                failures.append(f"{c.id} sources[{i}] {s.cite()}: no quote")
                continue
            if s.seed not in texts:
                texts[s.seed] = (seeds / s.seed).read_text(encoding="utf-8").split("\n")
            lines = texts[s.seed]
            lo, hi = max(1, s.lines[0] - QUOTE_WINDOW), min(len(lines), s.lines[1] + QUOTE_WINDOW)
            window = _squash("".join(lines[lo - 1 : hi]))
            if _squash(s.quote) in window:
                verified += 1
            else:
                failures.append(f"{c.id} sources[{i}] {s.cite()}: quote not found: {s.quote}")
    return verified, failures


def enforcement_sites(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Where code names a control id: every string literal that is exactly an id, as (path, line).

    Scans root/simulator (or root itself when it has no simulator/ directory). Docstrings and comments
    that mention an id in passing are not enforcement and are not counted. Files that do not parse are
    skipped.
    """
    base = root / "simulator" if (root / "simulator").is_dir() else root
    sites: dict[str, list[tuple[str, int]]] = {}
    for py in sorted(base.rglob("*.py")):
        try:
            tree = ast.parse(py.read_text(encoding="utf-8"), filename=str(py))
        except (SyntaxError, UnicodeDecodeError):
            continue
        rel = py.relative_to(root).as_posix()
        # a piece of an f-string is text being formatted, not a control named
        in_fstrings = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in in_fstrings
                and _ID_ANYWHERE.match(node.value)
            ):
                sites.setdefault(node.value, []).append((rel, node.lineno))
    for found in sites.values():
        found.sort()
    return sites
