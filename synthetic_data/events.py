"""A year of 異動 for the simulator to replay: 転入, 転居, 転出, 出生, 死亡 and 世帯変更, in 届出 order.

Rates come from the cited statistics (人口動態統計 for births and deaths, 住民基本台帳人口移動報告 and the profile
for moves) with their monthly seasonality; every 届出 falls on a day the 市区町村 office is open (weekdays that
are not 祝日 and not 12/29–1/3). A person never has an event after their own 死亡 or 転出. This module must never
change the snapshot itself: people who arrive or are born exist only in the events.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import jpholiday

from . import tables
from .households import Member
from .model import Event, Household, Resident

if TYPE_CHECKING:
    from .generator import Builder

__all__ = ["EVENT_TYPES", "build_events", "finalize_events", "open_days", "person_record"]

EVENT_TYPES = ("move_in", "move_within", "move_out", "birth", "death", "household_change")
_ORDER = {t: i for i, t in enumerate(EVENT_TYPES)}
_CHILD_OF = {"世帯主": "子", "妻": "子", "夫": "子", "子": "孫", "子の妻": "孫", "妹": "妹の子", "姉": "姉の子"}


def open_days(start: date, end: date) -> list[int]:
    """Ordinals of the days a 市区町村 counter takes 届出 between ``start`` and ``end`` (inclusive)."""
    days: list[int] = []
    d = start
    while d <= end:
        closed = d.weekday() >= 5 or jpholiday.is_holiday(d) or (d.month, d.day) >= (12, 29) or (d.month, d.day) <= (1, 3)
        if not closed:
            days.append(d.toordinal())
        d += timedelta(days=1)
    return days


def person_record(r: Resident) -> dict[str, Any]:
    """What a 届出 (or the 転出証明書 it comes with) says about one person."""
    return {
        "person_id": r.person_id,
        "resident_code": r.resident_code,
        "my_number": r.my_number,
        "family_name": r.family_name,
        "given_name": r.given_name,
        "family_name_kana": r.family_name_kana,
        "given_name_kana": r.given_name_kana,
        "sex": r.sex,
        "birth_date": r.birth_date,
        "relationship": r.relationship,
        "nationality": r.nationality,
        "residence_status": r.residence_status,
        "residence_card_number": r.residence_card_number,
        "alias_name": r.alias_name,
        "has_my_number_card": r.has_my_number_card,
    }


def _address_record(hh: Household) -> dict[str, str]:
    return {
        "postal_code": hh.postal_code,
        "jis_code": hh.jis_code,
        "address": hh.address,
        "katagaki": hh.katagaki,
    }


def finalize_events(events: list[Event]) -> None:
    """Replace the person objects held while building with their records, now that 個人番号 are assigned."""
    for ev in events:
        people = ev.data.pop("_persons", None)
        if people is not None:
            ev.data["persons"] = [person_record(p) for p in people]


class _Calendar:
    def __init__(self, year: int) -> None:
        self.start = date(year, 1, 1).toordinal()
        self.end = date(year, 12, 31).toordinal()
        self.days = open_days(date(year, 1, 1), date(year + 1, 1, 31))
        self._next: dict[int, int] = {}
        j = len(self.days) - 1
        for ordinal in range(self.days[-1], self.start - 30, -1):
            while j > 0 and self.days[j - 1] >= ordinal:
                j -= 1
            self._next[ordinal] = self.days[j]

    def next_open(self, ordinal: int) -> int:
        return self._next[max(ordinal, self.start)]


def build_events(b: Builder) -> list[Event]:
    from .generator import _seasonal_day, death_rate, stream

    rng = stream(b.seed, b.profile.name, "events")
    cal = _Calendar(b.year)
    y0 = cal.start
    n = b.size
    by_id = {r.person_id: r for r in b.residents}
    households = [hh for hh in b.households if hh.status == "active"]
    members = {hh.household_id: [p for p in hh.members if by_id[p].status == "active"] for hh in households}
    terminal: dict[int, int] = {}  # person → 異動日 of their 死亡 or 転出
    events: list[Event] = []

    def add(day: int, notify: int, kind: str, household_id: int, person_ids: list[int], data: dict[str, Any]) -> None:
        events.append(Event(0, date.fromordinal(notify).isoformat(), date.fromordinal(day).isoformat(), kind,
                            household_id, person_ids, data))

    # 1. Deaths (人口動態統計 性・年齢別死亡率).
    deaths: list[tuple[int, int]] = []
    for hh in households:
        for pid in members[hh.household_id]:
            person = by_id[pid]
            if rng.random() < death_rate(person.sex, b.age[pid]):
                day = y0 + _seasonal_day(rng, tables.DEATH_MONTH_SHARES, b.year)
                terminal[pid] = day
                deaths.append((pid, day))

    # 2. Who moves out this year: whole 世帯, and young adults leaving their parents (the March peak).
    leavers: list[tuple[int, int]] = []
    p_leave = 0.08
    for hh in households:
        if hh.household_type in ("couple_children", "single_parent", "extended"):
            for pid in members[hh.household_id]:
                if by_id[pid].relationship == "子" and 18 <= b.age[pid] < 30 and rng.random() < p_leave:
                    day = y0 + _seasonal_day(rng, tables.MOVE_MONTH_SHARES, b.year)
                    if day < terminal.get(pid, 10**9):
                        terminal[pid] = day
                        leavers.append((pid, day))

    def mobility(hh: Household) -> float:
        head_age = b.age[hh.head_person_id]
        kind = hh.household_type
        if kind == "single":
            return 3.0 if head_age < 35 else 1.0 if head_age < 65 else 0.3
        if kind == "couple":
            return 2.0 if head_age < 40 else 0.4
        if kind == "non_relative":
            return 2.0
        if kind == "extended":
            return 0.15
        return 1.2 if head_age < 45 else 0.35

    weights = [mobility(hh) for hh in households]
    sized = sum(w * len(members[hh.household_id]) for w, hh in zip(weights, households, strict=True)) or 1.0
    out_scale = max(0.0, b.profile.move_out_rate * n - len(leavers)) / sized
    within_scale = b.profile.move_within_rate * n / sized
    moving_out: list[tuple[Household, int]] = []
    gone_with_household: set[int] = set()
    moving_within: list[tuple[Household, int]] = []
    for hh, w in zip(households, weights, strict=True):
        r = rng.random()
        if r < min(0.9, w * out_scale):
            day = y0 + _seasonal_day(rng, tables.MOVE_MONTH_SHARES, b.year)
            moving_out.append((hh, day))
            for pid in members[hh.household_id]:
                if day <= terminal.get(pid, day):
                    terminal[pid] = day  # moving away first (or the same day): a later 死亡 is elsewhere
                    gone_with_household.add(pid)
        elif r < min(0.95, w * (out_scale + within_scale)):
            moving_within.append((hh, y0 + _seasonal_day(rng, tables.MOVE_MONTH_SHARES, b.year)))

    # 3. Births (母の年齢別出生率, scaled to the crude birth rate) into the mother's 世帯.
    fertility = {lower + k: rate for lower, rate in tables.FERTILITY_BY_MOTHER_AGE for k in range(5)}
    mothers = [
        pid for hh in households for pid in members[hh.household_id]
        if by_id[pid].sex == "F" and b.age[pid] in fertility
    ]
    birth_scale = tables.CRUDE_BIRTH_RATE * n / (sum(fertility[b.age[p]] for p in mothers) or 1.0)
    newborns: dict[int, list[tuple[int, Resident]]] = {}
    household_by_id = {hh.household_id: hh for hh in households}
    for pid in mothers:
        if rng.random() >= fertility[b.age[pid]] * birth_scale:
            continue
        day = y0 + _seasonal_day(rng, tables.BIRTH_MONTH_SHARES, b.year)
        if day >= terminal.get(pid, 10**9):
            continue
        mother = by_id[pid]
        hh = household_by_id[mother.household_id]
        father = _father_of(mother, hh, members, by_id, terminal, day)
        relationship = _CHILD_OF.get(mother.relationship, "縁故者")
        sex = "M" if rng.random() < 0.512 else "F"  # 出生性比 105
        foreign = mother.nationality is not None and (father is None or by_id[father].nationality is not None)
        baby = b.new_person(
            hh, Member(sex, 0, relationship), day, (mother.family_name, mother.family_name_kana),
            nationality=mother.nationality if foreign else None,
            status="出生による経過滞在" if foreign else None,
            foreign_family_name=(mother.family_name, mother.family_name_kana) if foreign else None,
            rng=rng, register=False,
        )
        hh.members.remove(baby.person_id)  # the snapshot's 世帯 stays as it was on the reference date
        baby.resident_since, baby.resident_since_reason = date.fromordinal(day).isoformat(), "birth"
        baby.has_my_number_card = False
        notify = cal.next_open(day + rng.randint(0, 13))  # 出生届: 14日以内
        newborns.setdefault(hh.household_id, []).append((notify, baby))
        add(day, notify, "birth", hh.household_id, [baby.person_id], {
            "_persons": [baby], "mother_id": pid, "father_id": father,
            "address": _address_record(hh),
        })

    def present(hh: Household, notify: int, cutoff: int | None = None) -> list[int]:
        """Members still registered when the 届出 takes effect (alive and not gone before ``cutoff``)."""
        until = notify + 14 if cutoff is None else cutoff  # a 転出届 may precede its move by 14 days
        people = [p for p in members[hh.household_id] if terminal.get(p, 10**9) > until or p in moving_set]
        people += [baby.person_id for when, baby in newborns.get(hh.household_id, []) if when < notify]
        return people

    # 4. Deaths and the 世帯主変更 that follows when the head dies and others remain.
    for pid, day in deaths:
        if terminal[pid] != day or pid in gone_with_household:
            continue  # the 世帯 moved away before this death
        person = by_id[pid]
        hh = household_by_id[person.household_id]
        notify = cal.next_open(day + rng.randint(0, 6))  # 死亡届: 7日以内
        add(day, notify, "death", hh.household_id, [pid], {
            "death_date": date.fromordinal(day).isoformat(), "address": _address_record(hh),
        })
        if person.relationship == "世帯主":
            remaining = [p for p in members[hh.household_id] if p != pid and terminal.get(p, 10**9) > day]
            adults = [p for p in remaining if b.age[p] >= 18]
            if adults:
                spouse = [p for p in adults if by_id[p].relationship in ("妻", "夫")]
                new_head = spouse[0] if spouse else max(adults, key=lambda p: (b.age[p], -p))
                change = cal.next_open(notify + rng.randint(0, 14))
                if terminal.get(new_head, 10**9) > change + 14:
                    add(day, change, "household_change", hh.household_id, [new_head], {
                        "kind": "head_change", "previous_head": pid, "new_head": new_head,
                    })

    # 5. 転出: young adults leaving home, then whole 世帯; the 届出 may come up to 14 days before the move.
    moving_set: set[int] = set()
    for pid, day in leavers:
        if terminal[pid] != day or pid in gone_with_household:
            continue  # died first, or left with the whole 世帯
        person = by_id[pid]
        notify = cal.next_open(max(y0, day - rng.randint(0, 14)))
        add(day, notify, "move_out", person.household_id, [pid], {
            "destination": b.others.draw(rng), "address": _address_record(household_by_id[person.household_id]),
        })
    for hh, day in moving_out:
        notify = cal.next_open(max(y0, day - rng.randint(0, 14)))
        moving_set = {p for p in members[hh.household_id] if terminal.get(p) == day}
        people = present(hh, notify, max(notify, day))  # someone who dies before the move does not move
        if not people:
            continue
        add(day, notify, "move_out", hh.household_id, people, {
            "destination": b.others.draw(rng), "address": _address_record(hh),
        })
    moving_set = set()

    # 6. 転居 inside the municipality: a new address in the city, 届出 within 14 days after the move.
    for hh, day in moving_within:
        notify = cal.next_open(day + rng.randint(0, 13))
        people = present(hh, notify)
        if not people or notify > cal.days[-1]:
            continue
        new = b.addresses.new_address(rng, rng.random() < b.profile.apartment_share * 1.2)
        add(day, notify, "move_within", hh.household_id, people, {
            "from": _address_record(hh),
            "to": {"postal_code": new.postal_code, "jis_code": new.jis_code, "address": new.full,
                   "katagaki": new.katagaki, "town": new.town},
        })

    # 7. 世帯分離: an adult child forms a 世帯 of their own at the same address.
    for hh in households:
        if hh.household_type not in ("couple_children", "extended", "single_parent"):
            continue
        for pid in members[hh.household_id]:
            if by_id[pid].relationship == "子" and 25 <= b.age[pid] < 50 and rng.random() < 0.012:
                day = y0 + rng.randrange(365)
                notify = cal.next_open(day)
                if terminal.get(pid, 10**9) <= notify + 14:
                    continue
                new_id = b.next_household_id
                b.next_household_id += 1
                add(day, notify, "household_change", hh.household_id, [pid], {
                    "kind": "split", "new_household_id": new_id, "new_head": pid,
                })

    # 8. 転入: new 世帯 from elsewhere in Japan (or, for some foreign residents, from abroad).
    arrivals = round(b.profile.move_in_rate * n)
    foreign_share = min(0.5, b.profile.foreign_share * 2.5)
    while arrivals > 0:
        day = y0 + _seasonal_day(rng, tables.MOVE_MONTH_SHARES, b.year)
        notify = cal.next_open(day + rng.randint(0, 13))  # 転入届: 14日以内
        size = min(arrivals, rng.choices((1, 2, 3, 4), (0.62, 0.18, 0.10, 0.10))[0])
        arrivals -= size
        head_age = int(min(90, max(18, rng.lognormvariate(3.4, 0.3))))
        plan = [Member("M" if rng.random() < 0.55 else "F", head_age, "世帯主")]
        if size >= 2:
            plan.append(Member("F" if plan[0].sex == "M" else "M", max(18, head_age + rng.randint(-3, 3)),
                               "妻" if plan[0].sex == "M" else "夫"))
        plan.extend(Member(rng.choice("MF"), rng.randint(0, max(0, min(head_age - 20, 17))), "子")
                    for _ in range(size - 2))
        foreign = rng.random() < foreign_share
        address = b.addresses.new_address(rng, rng.random() < b.profile.apartment_share * 1.4)
        kind = {1: "single", 2: "couple"}.get(size, "couple_children")
        hh = b.new_household(kind, address, register=False)
        nationality = status = None
        if foreign:
            from .generator import _FAMILY_STATUS, _NATIONALITY_BY_STATUS, _SINGLE_STATUS
            from .names import concrete_nationality

            table = _SINGLE_STATUS if size == 1 else _FAMILY_STATUS
            status = rng.choices(list(table), list(table.values()))[0]
            by_status = _NATIONALITY_BY_STATUS[status]
            nationality = concrete_nationality(rng, rng.choices(list(by_status), list(by_status.values()))[0])
        surname = b.names.surname()
        newcomers: list[Resident] = []
        family = None
        for m in plan:
            if nationality is not None:
                from .names import foreign_family

                family = family or foreign_family(rng, nationality)
            person = b.new_person(
                hh, m, b.birth_for_age(rng, m.age), surname, nationality=nationality,
                status=(status if m.relationship == "世帯主" or status != "技術・人文知識・国際業務" else "家族滞在")
                if nationality else None,
                foreign_family_name=family, rng=rng, register=False,
            )
            person.resident_since, person.resident_since_reason = date.fromordinal(day).isoformat(), "move_in"
            person.has_my_number_card = rng.random() < tables.CARD_HOLDING_RATE * (0.7 if nationality else 1.0)
            newcomers.append(person)
        from_abroad = nationality is not None and rng.random() < 0.3
        previous = (
            {"postal_code": "", "jis_code": "", "address": f"国外 ({nationality})"} if from_abroad else b.others.draw(rng)
        )
        add(day, notify, "move_in", hh.household_id, [p.person_id for p in newcomers], {
            "_persons": newcomers,
            "household_type": kind,
            "previous_address": previous,
            "address": {"postal_code": address.postal_code, "jis_code": address.jis_code, "address": address.full,
                        "katagaki": address.katagaki, "town": address.town},
            "card_move_in": (not from_abroad) and newcomers[0].has_my_number_card and rng.random() < 0.35,
        })

    events.sort(key=lambda e: (e.event_date, e.effective_date, _ORDER[e.event_type], e.person_ids[0], e.household_id))
    for i, ev in enumerate(events, start=1):
        ev.event_id = i
    return events


def _father_of(
    mother: Resident, hh: Household, members: dict[int, list[int]], by_id: dict[int, Resident],
    terminal: dict[int, int], day: int,
) -> int | None:
    wanted = {"妻": "世帯主", "世帯主": "夫", "子の妻": "子"}.get(mother.relationship)
    if wanted is None:
        return None
    for pid in members[hh.household_id]:
        other = by_id[pid]
        if other.relationship == wanted and other.sex == "M" and terminal.get(pid, 10**9) > day - 300:
            return pid
    return None
