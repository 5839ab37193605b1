"""Assembling 世帯 from an age-and-sex quota, so the age pyramid is exact and every family is plausible.

The quota is the cited pyramid scaled to the requested size. Children (and the adult children who still live
with their parents) are taken first and given a mother whose age fits every child, then a father, sometimes
grandparents; couples without children and the few non-relative households follow; every adult left over
lives alone. Household-type shares then land near 令和2年国勢調査. This module must never draw an age outside
the remaining quota, and must never give a child a parent less than 16 years older.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from .tables import HOUSEHOLD_TYPE_SHARES, MAX_AGE, POPULATION_BY_AGE_SEX, single_year_weights

__all__ = ["Member", "PlannedHousehold", "allocate_quota", "plan_households"]

# Share of each age that still lives as a 子 in its parents' household (令和2年国勢調査: 親と同居の未婚者; rounded).
_LIVES_WITH_PARENTS: tuple[tuple[int, float], ...] = (
    (0, 1.0),
    (18, 0.82),
    (20, 0.70),
    (25, 0.46),
    (30, 0.32),
    (35, 0.25),
    (40, 0.20),
    (45, 0.17),
    (50, 0.13),
    (55, 0.08),
    (60, 0.03),
    (65, 0.0),
)
MIN_PARENT_GAP = 16
MAX_MOTHER_GAP = 46


def _lives_with_parents(age: int) -> float:
    share = 0.0
    for lower, value in _LIVES_WITH_PARENTS:
        if age >= lower:
            share = value
    return share


def _gauss_table(mean: float, sd: float, size: int, offset: int = 0) -> list[float]:
    return [math.exp(-0.5 * ((i + offset - mean) / sd) ** 2) for i in range(size)]


_MOTHER_GAP = _gauss_table(31.0, 5.5, MAX_AGE + 1)  # mother's age at the birth of her youngest child
_FATHER_GAP = _gauss_table(33.0, 6.0, MAX_AGE + 1)
_SPOUSE_DIFF = _gauss_table(2.5, 3.5, 31, offset=-10)  # husband's age minus wife's, -10 .. +20
_SIBLING_GAP = _gauss_table(2.5, 2.0, 10)
_GRANDPARENT_GAP = _gauss_table(29.0, 4.5, MAX_AGE + 1)
_COUPLE_WEIGHT = [
    0.0 if a < 20 else 0.5 if a < 30 else 0.35 if a < 40 else 0.3 if a < 55 else 0.9 if a < 65 else 1.4
    if a < 80 else 0.6
    for a in range(MAX_AGE + 1)
]


@dataclass(slots=True)
class Member:
    sex: str
    age: int
    relationship: str  # 続柄 to the head
    surname_group: int = 0  # members with the same group share a surname


@dataclass(slots=True)
class PlannedHousehold:
    household_type: str
    members: list[Member] = field(default_factory=list)  # the head is members[0]


def allocate_quota(size: int) -> dict[str, list[int]]:
    """Exact counts per (sex, single year of age) summing to ``size``: largest remainder, ties by position."""
    male, female = single_year_weights(POPULATION_BY_AGE_SEX)
    cells = [("M", a, w) for a, w in enumerate(male)] + [("F", a, w) for a, w in enumerate(female)]
    total = sum(w for _s, _a, w in cells)
    exact = [(size * w / total) for _s, _a, w in cells]
    counts = [int(x) for x in exact]
    short = size - sum(counts)
    order = sorted(range(len(cells)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:short]:
        counts[i] += 1
    quota = {"M": [0] * (MAX_AGE + 1), "F": [0] * (MAX_AGE + 1)}
    for (sex, age, _w), n in zip(cells, counts, strict=True):
        quota[sex][age] = n
    return quota


class _Pool:
    """Remaining counts per sex and age, drawn from with an optional weight per age."""

    def __init__(self, counts: dict[str, list[int]]) -> None:
        self.counts = counts

    def draw(
        self, rng: random.Random, sex: str, low: int, high: int, weight: list[float] | None = None, base: int = 0
    ) -> int | None:
        low = max(low, 0)
        high = min(high, MAX_AGE)
        if low > high:
            return None
        arr = self.counts[sex]
        weights: list[float] | list[int]
        if weight is None:
            weights = arr[low : high + 1]
        else:
            weights = [arr[a] * weight[a - base] if 0 <= a - base < len(weight) else 0.0 for a in range(low, high + 1)]
        total = sum(weights)
        if total <= 0:
            return None
        r = rng.random() * total
        age = high
        for i, w in enumerate(weights):
            r -= w
            if r < 0 and w > 0:
                age = low + i
                break
        else:
            while weights[age - low] <= 0:
                age -= 1
        arr[age] -= 1
        return age

    def draw_any_sex(
        self, rng: random.Random, low: int, high: int, weight: list[float] | None = None, base: int = 0
    ) -> tuple[str, int] | None:
        m = sum(self.counts["M"][max(low, 0) : high + 1])
        f = sum(self.counts["F"][max(low, 0) : high + 1])
        if m + f == 0:
            return None
        first = "M" if rng.random() * (m + f) < m else "F"
        for sex in (first, "F" if first == "M" else "M"):
            age = self.draw(rng, sex, low, high, weight, base)
            if age is not None:
                return sex, age
        return None

    def total(self) -> int:
        return sum(self.counts["M"]) + sum(self.counts["F"])


def _sibling_relationship(sex: str, age: int, head_age: int) -> str:
    if age >= head_age:
        return "兄" if sex == "M" else "姉"
    return "弟" if sex == "M" else "妹"


def _family(rng: random.Random, children: _Pool, adults: _Pool, anchor: tuple[str, int]) -> PlannedHousehold | None:
    kids: list[tuple[str, int]] = [anchor]
    # ひとり親 households are smaller and, past childhood, often an old parent with one grown-up child.
    single_parent = rng.random() < (0.13 if anchor[1] < 18 else 0.30)
    sizes = (0.66, 0.28, 0.055, 0.005) if single_parent else (0.48, 0.41, 0.105, 0.005)
    wanted = rng.choices((1, 2, 3, 4), sizes)[0]
    for _ in range(wanted - 1):
        young, old = min(k[1] for k in kids), max(k[1] for k in kids)
        sib = children.draw_any_sex(rng, old - 9, young + 9)
        if sib is None:
            break
        if max(old, sib[1]) - min(young, sib[1]) > 14:
            children.counts[sib[0]][sib[1]] += 1  # too far apart to be siblings: give it back
            break
        kids.append(sib)
    kids.sort(key=lambda k: -k[1])
    eldest, youngest = kids[0][1], kids[-1][1]

    kind = "single_parent" if single_parent else "couple_children"
    if kind == "couple_children" and rng.random() < (0.27 if youngest < 18 else 0.08):
        kind = "extended"

    low = eldest + MIN_PARENT_GAP
    father_only = kind == "single_parent" and rng.random() < 0.15
    mother = None if father_only else adults.draw(rng, "F", low, youngest + MAX_MOTHER_GAP, _MOTHER_GAP, youngest)
    if mother is None:
        father = adults.draw(rng, "M", low, youngest + 55, _FATHER_GAP, youngest)
        if father is None:
            for sex, age in kids:
                children.counts[sex][age] += 1
            return None
        kind = "single_parent"
    elif kind != "single_parent":
        father = adults.draw(rng, "M", max(low, mother - 10), mother + 20, _SPOUSE_DIFF, mother - 10)
        if father is None:
            kind = "single_parent"
    else:
        father = None

    hh = PlannedHousehold(kind)
    parent_age = father if father is not None else mother
    assert parent_age is not None
    if kind == "single_parent" and parent_age >= 78 and eldest >= 45:
        # An old parent living with a middle-aged child: the child is usually the 世帯主.
        head_sex, head_age = kids[0]
        hh.members.append(Member(head_sex, head_age, "世帯主"))
        if mother is not None:
            hh.members.append(Member("F", mother, "母"))
        if father is not None:
            hh.members.append(Member("M", father, "父"))
        hh.members.extend(Member(s, a, _sibling_relationship(s, a, head_age)) for s, a in kids[1:])
        return hh

    grandparents: list[Member] = []
    head_is_grandfather = False
    if kind == "extended":
        paternal = father is not None and rng.random() < 0.7
        ref = father if paternal and father is not None else mother
        assert ref is not None
        gm = adults.draw(rng, "F", ref + MIN_PARENT_GAP, ref + 45, _GRANDPARENT_GAP, ref)
        gf = None
        if gm is not None and rng.random() < 0.55:
            gf = adults.draw(rng, "M", max(gm - 5, ref + MIN_PARENT_GAP), gm + 12, _SPOUSE_DIFF, gm - 10)
        if gm is None:
            gf = adults.draw(rng, "M", ref + MIN_PARENT_GAP, ref + 50, _GRANDPARENT_GAP, ref)
        if gm is None and gf is None:
            kind = hh.household_type = "couple_children" if father is not None and mother is not None else "single_parent"
        else:
            group = 0 if paternal else 1
            head_is_grandfather = paternal and gf is not None and gf < 75
            if head_is_grandfather:
                assert gf is not None
                hh.members.append(Member("M", gf, "世帯主"))
                if gm is not None:
                    grandparents.append(Member("F", gm, "妻"))
            else:
                prefix = "" if paternal or father is None else "妻の"
                if gf is not None:
                    grandparents.append(Member("M", gf, f"{prefix}父", group))
                if gm is not None:
                    grandparents.append(Member("F", gm, f"{prefix}母", group))

    if head_is_grandfather:
        hh.members.extend(grandparents)
        if father is not None:
            hh.members.append(Member("M", father, "子"))
            if mother is not None:
                hh.members.append(Member("F", mother, "子の妻"))
        elif mother is not None:
            hh.members.append(Member("F", mother, "子"))
        hh.members.extend(Member(s, a, "孫") for s, a in kids)
        return hh

    if father is not None and (mother is None or rng.random() < 0.95):
        hh.members.append(Member("M", father, "世帯主"))
        if mother is not None:
            hh.members.append(Member("F", mother, "妻"))
    else:
        assert mother is not None
        hh.members.append(Member("F", mother, "世帯主"))
        if father is not None:
            hh.members.append(Member("M", father, "夫"))
    hh.members.extend(Member(s, a, "子") for s, a in kids)
    hh.members.extend(grandparents)
    return hh


def plan_households(size: int, rng: random.Random) -> list[PlannedHousehold]:
    """Households whose members use up exactly the quota for ``size`` people."""
    quota = allocate_quota(size)
    child_counts = {s: [0] * (MAX_AGE + 1) for s in "MF"}
    adult_counts = {s: [0] * (MAX_AGE + 1) for s in "MF"}
    for sex in "MF":
        for age in range(MAX_AGE + 1):
            n = quota[sex][age]
            k = round(n * _lives_with_parents(age))
            child_counts[sex][age] = k
            adult_counts[sex][age] = n - k
    children, adults = _Pool(child_counts), _Pool(adult_counts)

    tokens = [(s, a) for s in "MF" for a in range(MAX_AGE + 1) for _ in range(child_counts[s][a])]
    rng.shuffle(tokens)
    households: list[PlannedHousehold] = []
    orphans: list[tuple[str, int]] = []
    for sex, age in tokens:
        if children.counts[sex][age] <= 0:
            continue  # already taken as somebody's sibling
        children.counts[sex][age] -= 1
        hh = _family(rng, children, adults, (sex, age))
        if hh is None:
            children.counts[sex][age] -= 1  # _family gave the anchor back; it is handled below
            orphans.append((sex, age))
        else:
            households.append(hh)

    families = len(households)
    # Solve for the couple count that gives 令和2年国勢調査's share of 夫婦のみ, the rest living alone.
    shares = HOUSEHOLD_TYPE_SHARES
    couple_share = shares["couple"] / 100
    other_share = shares["non_relative"] / 100
    for sex, age in orphans:
        if age >= 18:
            adults.counts[sex][age] += 1
    remaining = adults.total()
    total_households = (families + remaining) / (1 + couple_share + other_share)
    wanted_couples, misses = round(couple_share * total_households), 0
    while wanted_couples > 0 and misses < 200:
        wife = adults.draw(rng, "F", 18, MAX_AGE, _COUPLE_WEIGHT)
        if wife is None:
            break
        husband = adults.draw(rng, "M", wife - 10, wife + 20, _SPOUSE_DIFF, wife - 10)
        if husband is None:
            adults.counts["F"][wife] += 1  # no man of a fitting age is left: she stays single
            misses += 1
            continue
        wanted_couples -= 1
        if rng.random() < 0.95:
            households.append(PlannedHousehold("couple", [Member("M", husband, "世帯主"), Member("F", wife, "妻")]))
        else:
            households.append(PlannedHousehold("couple", [Member("F", wife, "世帯主"), Member("M", husband, "夫")]))
    for _ in range(round(other_share * total_households)):
        a = adults.draw_any_sex(rng, 20, 79)
        b = adults.draw_any_sex(rng, 20, 79)
        if a is None or b is None:
            for got in (a, b):
                if got is not None:
                    adults.counts[got[0]][got[1]] += 1
            break
        households.append(
            PlannedHousehold("non_relative", [Member(a[0], a[1], "世帯主"), Member(b[0], b[1], "同居人", 2)])
        )

    # Minors nobody could parent (rare, at the edges of the quota) join a family whose mother fits.
    minors = [(s, a) for s, a in orphans if a < 18]
    if minors:
        fits: dict[int, list[PlannedHousehold]] = {}
        for hh in households:
            if hh.household_type in ("couple_children", "single_parent") and hh.members[0].relationship == "世帯主":
                parent = hh.members[0].age
                fits.setdefault(parent, []).append(hh)
        for sex, age in minors:
            options = [h for pa in range(age + 20, age + 41) for h in fits.get(pa, [])[:3]]
            if options:
                rng.choice(options).members.append(Member(sex, age, "子"))
            else:
                households.append(PlannedHousehold("single", [Member(sex, age, "世帯主")]))

    singles = [(s, a) for s in "MF" for a in range(MAX_AGE + 1) for _ in range(adults.counts[s][a])]
    households.extend(PlannedHousehold("single", [Member(s, a, "世帯主")]) for s, a in singles)
    rng.shuffle(households)
    return households
