"""Municipality profiles: what each seed PIA says its municipality runs, as data that a world is built from.

One YAML file per seed municipality (scenarios/profiles/<key>.yaml): systems and hops, 提供/照会 rows, contractors,
retention, authentication, self-contradictions, and the seed lines behind each fact. Loading checks the file
strictly (an unknown key is an error naming file, line and field) and checks its rows against the
照会許可用照合リスト. This module must never build a world or decide a control; it only describes profiles.
"""

from __future__ import annotations

import difflib
import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from simulator.controls.catalogue import PROFILES, SEED_FILES, Catalogue
from simulator.errors import InputError
from simulator.model.permissions import PermissionList, PermissionRow
from simulator.yamlmarks import Problem, YamlProblems, dotted, line_for, load_marked

__all__ = [
    "ORGANISATION_KIND",
    "TABLES",
    "Auth",
    "Contractor",
    "Contradiction",
    "CsSearch",
    "Nws",
    "Population",
    "Profile",
    "ProfileError",
    "ProfileProblem",
    "ProvideRows",
    "QueryRows",
    "Source",
    "Topology",
    "claimed_controls",
    "list_profiles",
    "load_profile",
    "load_profile_file",
    "permission_list",
    "permission_list_path",
    "profiles_dir",
]

#: What NWS calls every seed municipality (第三欄 市町村長 as provider, 第一欄 市町村長 as requester).
ORGANISATION_KIND = "municipality"

#: The two numbering systems of 照会 rows; their row numbers are unrelated and never compared across tables.
TABLES: dict[str, tuple[str, str]] = {
    "shumu_2": (
        "番号法第19条第8号に基づく主務省令第2条の表",
        "table of Article 2 of the ordinance under My Number Act 19(8)",
    ),
    "beppyo_2": ("番号法別表第二", "My Number Act, Appended Table 2 (before 2024-05-27)"),
}

Table = Literal["shumu_2", "beppyo_2"]
Business = Literal["resident_register", "tax", "ltc"]

# ISO 8601 duration (P1Y, P2M, P5D, P150Y, PT30M …); a retention may add " business" to count business days.
_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")
_RETENTION = re.compile(r"^(?P<d>P\S+?)(?P<b> business)?$")
_ROW_ID = re.compile(r"^\d+(の\d+)?$")
_HANDLERS: dict[str, tuple[int, int] | None] = {
    "<10": (1, 9),
    "10-49": (10, 49),
    "50-99": (50, 99),
    "100-499": (100, 499),
    "illegible": None,  # the seed's box cannot be read; `accounts` is then a free choice
}
_EDGE = re.compile(r"^[a-z][a-z0-9_]*--[a-z][a-z0-9_]*$")


def _duration(v: str) -> str:
    if not _DURATION.match(v):
        raise ValueError(f"{v!r} is not an ISO 8601 duration such as P1Y, P2M or P5D")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Seed lines that state a fact of the profile (`field` names the profile field it backs)."""

    seed: str
    lines: tuple[int, int]
    note: str
    field: str | None = None

    @field_validator("seed")
    @classmethod
    def _known_seed(cls, v: str) -> str:
        if v not in SEED_FILES.values():
            raise ValueError(f"unknown seed file {v!r}; expected one of {sorted(SEED_FILES.values())}")
        return v

    @field_validator("lines")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 1 or v[1] < v[0]:
            raise ValueError(f"lines must be [start, end] with 1 ≤ start ≤ end, got {list(v)}")
        return v


class Population(_Strict):
    bracket: tuple[int, int | None]  # the PIA's 対象人数 choice, e.g. [100000, 299999]; null = no upper bound
    synthetic_size: int = Field(gt=0, le=5000)  # default size of a verification world (a scale model)

    @model_validator(mode="after")
    def _bracket(self) -> Population:
        lo, hi = self.bracket
        if lo < 0 or (hi is not None and hi <= lo):
            raise ValueError(f"bracket must be [lo, hi] with 0 ≤ lo < hi (or hi null), got {list(self.bracket)}")
        return self


class Topology(_Strict):
    """Which systems and hops the municipality has, beyond the common spine (既存住基, 宛名, 中間サーバー, NWS)."""

    juki_net: bool  # the 事務 uses 住基ネット (市町村CS); Kurashiki's 介護保険 does not
    gateway: Literal["micjet_gw", "jukinet_chukan_server"] | None  # a hop between 既存住基 and CS (GW-*)
    relay: Literal["dc_relay_two_vpn_legs", "shi_chukan"] | None  # city-side relay before the platform (RELAY-*)
    office_link_hub: Literal["kyotsu_kiban", "kojin_kihon", "renkei_system"] | None  # 庁内連携 hub (RENKEI-*)
    convenience_store: bool  # コンビニ交付 (Kuwana)
    gov_cloud: bool  # ガバメントクラウド hosting
    extra_edges: tuple[str, ...] = ()  # "a--b": further links the seed declares (e.g. "ltc--kokuhoren")

    @field_validator("extra_edges")
    @classmethod
    def _edges(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for edge in v:
            if not _EDGE.match(edge):
                raise ValueError(f"edge {edge!r} must look like 'system_a--system_b' (snake_case ids)")
        if len(set(v)) != len(v):
            raise ValueError("an edge is listed twice")
        return v


def _rows(v: tuple[str, ...]) -> tuple[str, ...]:
    for row in v:
        if not _ROW_ID.match(row):
            raise ValueError(f"row {row!r} must be printed as the seed prints it, e.g. '48' or '56の2'")
    if len(set(v)) != len(v):
        dup = next(r for r in v if v.count(r) > 1)
        raise ValueError(f"row {dup!r} is listed twice")
    return v


class ProvideRows(_Strict):
    table: Table
    rows: tuple[str, ...]
    item: str  # item key of the 照会許可用照合リスト (e.g. resident_info for 住民票関係情報)
    declared_count: int | None = None  # the count the PIA prints, where it differs from the list (F-40)

    @field_validator("rows")
    @classmethod
    def _check_rows(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _rows(v)


class QueryRows(_Strict):
    table: Table | None = None
    rows: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    inferred: bool = False  # the seed names the rows but not the items (F-31)
    basis: str = ""

    @field_validator("rows")
    @classmethod
    def _check_rows(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _rows(v)

    @model_validator(mode="after")
    def _consistent(self) -> QueryRows:
        if bool(self.rows) != (self.table is not None):
            raise ValueError("table must be given exactly when rows are")
        if bool(self.rows) != bool(self.items):
            raise ValueError("items must be given exactly when rows are")
        if self.inferred and not self.basis:
            raise ValueError("an inferred query needs a basis")
        return self


class Nws(_Strict):
    provide: ProvideRows
    query: QueryRows = QueryRows()


class CsSearch(_Strict):
    """CS-003: the minimum of non-性別 keys of a 4情報 search, and whether 氏名 is required (F-20)."""

    search_min_keys: int = Field(default=2, ge=0, le=3)
    search_require_name: bool = True


class Auth(_Strict):
    biometric: Literal["fingerprint", "face", "none"]
    password_max_age: str | None = None
    fy_rollover_revoke: bool = False  # AUTH-008: all rights lapse on 1 April
    same_day_revoke: bool = False  # AUTH-007: rights revoked the same day
    rights_register: bool = False  # AUTH-009/010/011: rights only from approved applications, with windows
    central_authority: bool = False  # AUTH-012: the 団体内統合宛名 platform authenticates staff for every system

    @field_validator("password_max_age")
    @classmethod
    def _age(cls, v: str | None) -> str | None:
        return v if v is None else _duration(v)


class Contractor(_Strict):
    name: str
    scope: str
    handlers: str  # the PIA's 取扱者数 bracket: <10, 10-49, 50-99, 100-499, or illegible
    subcontract: bool
    chain: tuple[str, ...] = ()  # the approval documents a subcontractor needs before acting (ITAKU-005)
    systems: tuple[str, ...] = ()  # where the contractor's accounts work
    accounts: int = Field(ge=1)  # contractor accounts a verification world creates (inside the bracket)

    @model_validator(mode="after")
    def _bracket(self) -> Contractor:
        if self.handlers not in _HANDLERS:
            raise ValueError(f"handlers {self.handlers!r} must be one of {', '.join(_HANDLERS)}")
        span = _HANDLERS[self.handlers]
        if span is not None and not span[0] <= self.accounts <= span[1]:
            raise ValueError(f"accounts {self.accounts} is outside the handlers bracket {self.handlers}")
        if self.chain and not self.subcontract:
            raise ValueError("an approval chain is given but subcontract is false")
        return self


class Contradiction(_Strict):
    """A place where the PIA contradicts itself; `scenario` shows what the simulated system actually does."""

    id: str
    description_ja: str
    description_en: str
    seeds: tuple[Source, ...] = Field(min_length=1)
    controls: tuple[str, ...] = ()  # catalogue ids the scenario exercises
    scenario: str


class Profile(_Strict):
    key: str
    name_ja: str
    name_en: str
    seed: str
    prefecture: str
    prefecture_ja: str
    jis_code: str  # 全国地方公共団体コード (6 digits with check digit)
    business: Business
    business_ja: str
    form: str
    published: str | None
    population: Population
    topology: Topology
    nws: Nws
    cs: CsSearch = CsSearch()
    consistency_check_interval: str | None = None
    retention: dict[str, str] = {}
    auth: Auth
    contractors: tuple[Contractor, ...] = ()
    peer: str
    contradictions: tuple[Contradiction, ...] = ()
    sources: tuple[Source, ...] = Field(min_length=1)

    @field_validator("consistency_check_interval")
    @classmethod
    def _interval(cls, v: str | None) -> str | None:
        return v if v is None else _duration(v)

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not re.match(r"^[a-z][a-z0-9_]*$", name):
                raise ValueError(f"retention key {name!r} must be snake_case")
            if value == "never":
                continue
            m = _RETENTION.match(value)
            if not m or not _DURATION.match(m.group("d")) or (m.group("b") and not m.group("d").endswith("D")):
                raise ValueError(
                    f"retention {name}: {value!r} must be an ISO 8601 duration (P8Y), business days (P1D business) "
                    "or never"
                )
        return v

    @field_validator("jis_code")
    @classmethod
    def _jis(cls, v: str) -> str:
        if not re.match(r"^\d{6}$", v):
            raise ValueError(f"jis_code {v!r} must be 6 digits")
        total = sum(int(d) * w for d, w in zip(v[:5], (6, 5, 4, 3, 2), strict=True))
        check = (11 - total % 11) % 10
        if int(v[5]) != check:
            raise ValueError(f"jis_code {v!r}: check digit should be {check}")
        return v

    # Field validators run in declaration order, so `key` is known (in info.data) when these run; an error is
    # then located at the field itself rather than at the top of the file.
    @field_validator("key")
    @classmethod
    def _known_key(cls, v: str) -> str:
        if v not in PROFILES:
            raise ValueError(f"key {v!r} is not a seed municipality; expected one of {', '.join(PROFILES)}")
        return v

    @field_validator("seed")
    @classmethod
    def _own_seed(cls, v: str, info: ValidationInfo) -> str:
        key = info.data.get("key")
        if key in SEED_FILES and v != SEED_FILES[key]:
            raise ValueError(f"seed {v!r} is not {key}'s PIA ({SEED_FILES[key]})")
        return v

    @field_validator("peer")
    @classmethod
    def _other_profile(cls, v: str, info: ValidationInfo) -> str:
        if v not in PROFILES or v == info.data.get("key"):
            raise ValueError(f"peer {v!r} must be another profile: one of {', '.join(PROFILES)}")
        return v

    @field_validator("contradictions")
    @classmethod
    def _numbered(cls, v: tuple[Contradiction, ...], info: ValidationInfo) -> tuple[Contradiction, ...]:
        key = info.data.get("key", "?")
        for n, c in enumerate(v, start=1):
            if c.id != f"{key}-{n}":
                raise ValueError(f"contradiction {c.id!r} should be numbered {key}-{n}, in order")
            if c.scenario != f"contradiction-{key}-{n}":
                raise ValueError(
                    f"contradiction {c.id}: scenario must be 'contradiction-{key}-{n}', got {c.scenario!r}"
                )
        return v

    @field_validator("sources")
    @classmethod
    def _fields_exist(cls, v: tuple[Source, ...]) -> tuple[Source, ...]:
        for s in v:
            if s.field is not None and s.field.split(".")[0] not in cls.model_fields:
                raise ValueError(f"source field {s.field!r} is not a profile field")
        return v

    @property
    def kind(self) -> str:
        return ORGANISATION_KIND

    def query_pairs(self) -> tuple[tuple[str, str], ...]:
        """(business, row) pairs this municipality may query under, as the world's MunicipalitySpec takes them."""
        return tuple((self.business, row) for row in self.nws.query.rows)

    def row_problems(self, plist: PermissionList) -> list[tuple[tuple[object, ...], str]]:
        """Every declared row not on the list as this profile needs it: (field path, rule)."""
        out: list[tuple[tuple[object, ...], str]] = []
        p = self.nws.provide
        if p.item not in plist.items:
            out.append((("nws", "provide", "item"), f"item {p.item!r} is not defined in the list's items"))
        for i, row in enumerate(p.rows):
            if not any(e.provider_kind == self.kind and p.item in e.items for e in plist.entries(row, p.table)):
                out.append(
                    (
                        ("nws", "provide", "rows", i),
                        f"row {row!r} ({p.table}) has no entry with provider {self.kind} and item {p.item}",
                    )
                )
        q = self.nws.query
        for i, row in enumerate(q.rows):
            mine = [
                e
                for e in plist.entries(row, q.table)
                if e.requester_kind == self.kind and e.requester_business == self.business
            ]
            if not mine:
                out.append(
                    (
                        ("nws", "query", "rows", i),
                        f"row {row!r} ({q.table}) has no entry with requester {self.kind}/{self.business}",
                    )
                )
        for i, item in enumerate(q.items):
            if not any(
                item in e.items
                for row in q.rows
                for e in plist.entries(row, q.table)
                if e.requester_kind == self.kind and e.requester_business == self.business
            ):
                out.append((("nws", "query", "items", i), f"item {item!r} is allowed under none of the query rows"))
        return out

    def provide_entries(self, plist: PermissionList) -> list[PermissionRow]:
        """The list entries behind this profile's 提供 rows (one per requester kind of each row)."""
        p = self.nws.provide
        return [
            e
            for row in p.rows
            for e in plist.entries(row, p.table)
            if e.provider_kind == self.kind and p.item in e.items
        ]


# ------------------------------------------------------------------------------------------ errors


#: A located problem in a profile or list file (file, line, field, rule).
ProfileProblem = Problem


class ProfileError(InputError):
    """A profile (or the permission list) is wrong or unknown; names file, line and field of each problem."""

    def __init__(self, problems: list[ProfileProblem]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(f"{first.file}:{first.line or '?'} {first.field}", first.rule)

    def __str__(self) -> str:
        return "profile: " + "\n".join(str(p) for p in self.problems)


# ------------------------------------------------------------------------------------------ YAML with lines


def _parse(text: str, name: str) -> tuple[Any, dict[tuple[object, ...], int]]:
    try:
        return load_marked(text, name)
    except YamlProblems as exc:
        raise ProfileError(exc.problems) from None


def _dotted(path: tuple[object, ...]) -> str:
    return dotted(path)


def _line(marks: dict[tuple[object, ...], int], path: tuple[object, ...]) -> int | None:
    return line_for(marks, path)


def _validation_problems(
    exc: ValidationError,
    name: str,
    marks: dict[tuple[object, ...], int],
    model: type[BaseModel],
    base: tuple[object, ...] = (),
) -> list[ProfileProblem]:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-union"))))
        path = (*base, *loc)
        rule = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            rule = (
                "unknown field"
                + (f" (did you mean {close[0]!r}?)" if close else "")
                + f"; allowed: {', '.join(allowed)}"
            )
        elif rule.startswith("Value error, "):
            rule = rule[len("Value error, ") :]
        out.append(ProfileProblem(name, _line(marks, path), _dotted(path), rule))
    return out


def _allowed_keys(model: type[BaseModel], loc: tuple[object, ...]) -> list[str]:
    """The field names of the (nested) model at `loc`, for the "did you mean" of an unknown key."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = (
            current.model_fields.get(str(part))
            if isinstance(current, type) and issubclass(current, BaseModel)
            else None
        )
        if field is None:
            return []
        current = _model_in(field.annotation)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------------------------------ locating and loading


def profiles_dir() -> Path:
    """The packaged profiles: scenarios/profiles/ (one YAML file per seed municipality)."""
    return Path(str(resources.files("scenarios.profiles")))


def permission_list_path() -> Path:
    return Path(str(resources.files("scenarios").joinpath("data/permission_list.yaml")))


def list_profiles(directory: Path | None = None) -> list[str]:
    """Profile keys with a file, in catalogue order (kuwana, tsukuba, sapporo, iizuka, kurashiki)."""
    d = directory or profiles_dir()
    return [key for key in PROFILES if (d / f"{key}.yaml").is_file()]


def load_profile(key: str, *, directory: Path | None = None, plist: PermissionList | None = None) -> Profile:
    """Load and check one profile by key; its rows are checked against the permission list (default: packaged)."""
    d = directory or profiles_dir()
    known = list_profiles(d)
    if key not in known:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ProfileError(
            [ProfileProblem(str(d), None, "key", f"unknown profile {key!r}{hint}; known profiles: {', '.join(known)}")]
        )
    return load_profile_file(d / f"{key}.yaml", plist=plist, expected_key=key)


def load_profile_file(path: Path, *, plist: PermissionList | None = None, expected_key: str | None = None) -> Profile:
    """Load and check one profile file. Any problem raises ProfileError naming the file, line and field."""
    name = path.name
    if not path.is_file():
        raise ProfileError([ProfileProblem(str(path), None, "(path)", "no such file")])
    data, marks = _parse(path.read_text(encoding="utf-8"), name)
    if not isinstance(data, dict):
        raise ProfileError([ProfileProblem(name, 1, "(root)", "a profile must be a mapping")])
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_validation_problems(exc, name, marks, Profile)) from None
    if expected_key is not None and profile.key != expected_key:
        raise ProfileError(
            [ProfileProblem(name, _line(marks, ("key",)), "key", f"must be {expected_key!r}, the file's name")]
        )
    rows = profile.row_problems(plist if plist is not None else permission_list())
    if rows:
        raise ProfileError([ProfileProblem(name, _line(marks, path_), _dotted(path_), rule) for path_, rule in rows])
    return profile


def claimed_controls(profile: Profile | str, catalogue: Catalogue) -> list[str]:
    """Ids of the catalogue controls whose `profiles` contain this profile, in catalogue order."""
    key = profile if isinstance(profile, str) else profile.key
    if key not in PROFILES:
        raise ProfileError([ProfileProblem("(argument)", None, "profile", f"unknown profile {key!r}")])
    return [c.id for c in catalogue.controls if key in c.profiles]


# ------------------------------------------------------------------------------------------ permission list

_ROW_KEYS = set(PermissionRow.model_fields)
_LIST_KEYS = set(PermissionList.model_fields)


def permission_list(path: Path | None = None) -> PermissionList:
    """Load the 照会許可用照合リスト strictly: known keys, defined items/kinds/businesses, known tables, unique
    entries, and a basis on every inferred entry. Problems raise ProfileError with file, line and field."""
    path = path or permission_list_path()
    # The list is frozen, so a parse is reused until the file changes (loading every profile re-checks its rows).
    return _permission_list_cached(path.resolve(), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _permission_list_cached(path: Path, mtime_ns: int) -> PermissionList:
    data, marks = _parse(path.read_text(encoding="utf-8"), path.name)
    name = path.name
    problems: list[ProfileProblem] = []

    def problem(p: tuple[object, ...], rule: str) -> None:
        problems.append(ProfileProblem(name, _line(marks, p), _dotted(p), rule))

    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ProfileError([ProfileProblem(name, 1, "rows", "the file must be a mapping with a `rows:` list")])
    for k in data:
        if k not in _LIST_KEYS:
            problem((k,), f"unknown field; allowed: {', '.join(sorted(_LIST_KEYS))}")
    for section in ("items", "kinds", "businesses"):
        for k, v in (data.get(section) or {}).items():
            if not isinstance(v, dict) or set(v) != {"ja", "en"}:
                problem((section, k), "needs exactly ja and en")
    items, kinds, businesses = (set(data.get(v) or {}) for v in ("items", "kinds", "businesses"))
    seen: dict[tuple[str, ...], int] = {}
    for i, row in enumerate(data["rows"]):
        base: tuple[object, ...] = ("rows", i)
        if not isinstance(row, dict):
            problem(base, "an entry must be a mapping")
            continue
        for k in row:
            if k not in _ROW_KEYS:
                close = difflib.get_close_matches(str(k), sorted(_ROW_KEYS), n=1)
                problem((*base, k), "unknown field" + (f" (did you mean {close[0]!r}?)" if close else ""))
        if row.get("table") not in TABLES:
            problem((*base, "table"), f"table must be one of {', '.join(TABLES)}")
        if not _ROW_ID.match(str(row.get("row", ""))):
            problem((*base, "row"), "row must be a string as the seed prints it, e.g. '48' or '56の2'")
        for j, item in enumerate(row.get("items") or []):
            if item not in items:
                problem((*base, "items", j), f"item {item!r} is not defined under items:")
        for ref, vocab in (("requester_kind", kinds), ("provider_kind", kinds), ("requester_business", businesses)):
            if vocab and row.get(ref) not in vocab:
                where = "kinds" if ref.endswith("kind") else "businesses"
                problem((*base, ref), f"{row.get(ref)!r} is not defined under {where}:")
        if row.get("inferred") and not row.get("basis"):
            problem((*base, "basis"), "an inferred entry needs a basis")
        ident = tuple(
            str(row.get(k)) for k in ("table", "row", "requester_kind", "requester_business", "provider_kind")
        )
        if ident in seen:
            problem(base, f"same table/row/requester/provider as rows[{seen[ident]}]")
        seen.setdefault(ident, i)
        for j, s in enumerate(row.get("sources") or []):
            if not isinstance(s, dict) or s.get("seed") not in SEED_FILES.values():
                problem((*base, "sources", j), "each source needs a known seed file")
    if problems:
        raise ProfileError(problems)
    try:
        return PermissionList.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_validation_problems(exc, name, marks, PermissionList)) from None
