"""Writing a population to SQLite (the file the simulator loads), reading residents back, exporting JSONL/CSV.

The database is written to a temporary file in the target directory and renamed over the target only when
complete, so a failed or refused run leaves nothing behind. Rows go in primary-key order and JSON is written
with sorted keys, so the same population gives the same bytes. This module must never change a record.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from simulator.errors import InputError
from simulator.store.db import connect, ensure_schema, transaction

from .model import Event, Household, Population, Resident

__all__ = [
    "SCHEMA",
    "TABLES",
    "check_output_path",
    "export",
    "load_events",
    "load_households",
    "load_residents",
    "write_population",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS households (
    household_id INTEGER PRIMARY KEY, household_type TEXT NOT NULL, head_person_id INTEGER NOT NULL,
    size INTEGER NOT NULL, postal_code TEXT NOT NULL, jis_code TEXT NOT NULL, prefecture TEXT NOT NULL,
    city TEXT NOT NULL, town TEXT NOT NULL, town_kana TEXT NOT NULL, banchi TEXT NOT NULL, katagaki TEXT NOT NULL,
    address TEXT NOT NULL, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS residents (
    person_id INTEGER PRIMARY KEY, household_id INTEGER NOT NULL REFERENCES households(household_id),
    resident_code TEXT NOT NULL UNIQUE, my_number TEXT NOT NULL UNIQUE,
    family_name TEXT NOT NULL, given_name TEXT NOT NULL, family_name_kana TEXT NOT NULL,
    given_name_kana TEXT NOT NULL, name TEXT NOT NULL, name_kana TEXT NOT NULL,
    sex TEXT NOT NULL, birth_date TEXT NOT NULL, relationship TEXT NOT NULL, is_head INTEGER NOT NULL,
    nationality TEXT, residence_status TEXT, residence_card_number TEXT UNIQUE, alias_name TEXT, alias_kana TEXT,
    protective_measure TEXT, auto_reply_disabled INTEGER NOT NULL, has_my_number_card INTEGER NOT NULL,
    status TEXT NOT NULL, removal_reason TEXT, removal_date TEXT,
    resident_since TEXT NOT NULL, resident_since_reason TEXT NOT NULL,
    postal_code TEXT NOT NULL, jis_code TEXT NOT NULL, address TEXT NOT NULL, katagaki TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tax (
    business_atena_number TEXT PRIMARY KEY, person_id INTEGER NOT NULL UNIQUE, fiscal_year INTEGER NOT NULL,
    salary_income INTEGER NOT NULL, pension_income INTEGER NOT NULL, other_income INTEGER NOT NULL,
    total_income INTEGER NOT NULL, deductions INTEGER NOT NULL, taxable_income INTEGER NOT NULL,
    income_levy INTEGER NOT NULL, per_capita_levy INTEGER NOT NULL, flat_reduction INTEGER NOT NULL,
    tax_amount INTEGER NOT NULL, tax_status TEXT NOT NULL, dependants INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ltc (
    insured_number TEXT PRIMARY KEY, person_id INTEGER NOT NULL UNIQUE, insured_category INTEGER NOT NULL,
    acquired_date TEXT NOT NULL, care_level TEXT NOT NULL, certified_from TEXT, certified_to TEXT,
    premium_stage INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    person_id INTEGER NOT NULL, seq INTEGER NOT NULL, date TEXT NOT NULL, change_type TEXT NOT NULL,
    detail TEXT NOT NULL, PRIMARY KEY (person_id, seq)
);
CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY, event_date TEXT NOT NULL, effective_date TEXT NOT NULL, event_type TEXT NOT NULL,
    household_id INTEGER NOT NULL, person_ids TEXT NOT NULL, data TEXT NOT NULL
);
"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS residents_household ON residents(household_id)",
    "CREATE INDEX IF NOT EXISTS events_date ON events(event_date)",
)
TABLES = ("meta", "households", "residents", "tax", "ltc", "history", "events")
_KEYS = {"meta": "key", "households": "household_id", "residents": "person_id", "tax": "business_atena_number",
         "ltc": "insured_number", "history": "person_id, seq", "events": "event_id"}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def check_output_path(path: Path | str) -> Path:
    """The path as a Path, or InputError if it cannot be written (checked before any work is done)."""
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if out.exists() and out.is_dir():
        raise InputError("out", f"{out} is a directory; give a file path such as {out / 'population.sqlite'}")
    if not parent.is_dir():
        raise InputError("out", f"the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError("out", f"the directory {parent} is not writable")
    if out.exists() and not os.access(out, os.W_OK):
        raise InputError("out", f"{out} exists and is not writable")
    return out


def _rows(pop: Population) -> dict[str, tuple[str, Iterable[tuple[Any, ...]]]]:
    households = {hh.household_id: hh for hh in pop.households}
    by_id = {r.person_id: r for r in pop.residents}
    hh_rows = (
        (hh.household_id, hh.household_type, hh.head_person_id,
         sum(1 for p in hh.members if by_id[p].status == "active"), hh.postal_code, hh.jis_code, hh.prefecture,
         hh.city, hh.town, hh.town_kana, hh.banchi, hh.katagaki, hh.address, hh.status)
        for hh in sorted(pop.households, key=lambda h: h.household_id)
    )
    res_rows = (
        (
            r.person_id, r.household_id, r.resident_code, r.my_number, r.family_name, r.given_name,
            r.family_name_kana, r.given_name_kana, r.name, r.name_kana, r.sex, r.birth_date, r.relationship,
            int(r.is_head), r.nationality, r.residence_status, r.residence_card_number, r.alias_name, r.alias_kana,
            r.protective_measure, int(r.protective_measure is not None), int(r.has_my_number_card), r.status,
            r.removal_reason, r.removal_date, r.resident_since, r.resident_since_reason,
            households[r.household_id].postal_code, households[r.household_id].jis_code,
            households[r.household_id].address, households[r.household_id].katagaki,
        )
        for r in sorted(pop.residents, key=lambda x: x.person_id)
    )
    tax_rows = (
        (t.business_atena_number, t.person_id, t.fiscal_year, t.salary_income, t.pension_income, t.other_income,
         t.total_income, t.deductions, t.taxable_income, t.income_levy, t.per_capita_levy, t.flat_reduction,
         t.tax_amount, t.tax_status, t.dependants)
        for t in sorted(pop.tax, key=lambda x: x.business_atena_number)
    )
    ltc_rows = (
        (x.insured_number, x.person_id, x.insured_category, x.acquired_date, x.care_level, x.certified_from,
         x.certified_to, x.premium_stage)
        for x in sorted(pop.ltc, key=lambda x: x.insured_number)
    )
    seq: dict[int, int] = {}
    hist_rows = []
    for h in sorted(pop.history, key=lambda h: (h.person_id, h.date)):
        seq[h.person_id] = seq.get(h.person_id, 0) + 1
        hist_rows.append((h.person_id, seq[h.person_id], h.date, h.change_type, _json(h.detail)))
    ev_rows = (
        (e.event_id, e.event_date, e.effective_date, e.event_type, e.household_id, _json(e.person_ids), _json(e.data))
        for e in sorted(pop.events, key=lambda e: e.event_id)
    )
    meta_rows = [(k, _json(v)) for k, v in sorted(pop.meta.items())]
    return {
        "meta": ("(?, ?)", meta_rows),
        "households": ("(" + ", ".join("?" * 14) + ")", hh_rows),
        "residents": ("(" + ", ".join("?" * 31) + ")", res_rows),
        "tax": ("(" + ", ".join("?" * 15) + ")", tax_rows),
        "ltc": ("(" + ", ".join("?" * 8) + ")", ltc_rows),
        "history": ("(?, ?, ?, ?, ?)", hist_rows),
        "events": ("(?, ?, ?, ?, ?, ?, ?)", ev_rows),
    }


def write_population(
    pop: Population, path: Path | str, *, extra_meta: dict[str, Any] | None = None,
    before_commit: Callable[[sqlite3.Connection], None] | None = None, consume: bool = False,
) -> Path:
    """Write ``pop`` to the SQLite file ``path`` atomically (temp file in the same directory, then rename).

    ``before_commit`` runs on the finished temporary database (the generator validates there); if it raises,
    the temporary file is removed and ``path`` is left as it was. ``consume`` empties ``pop`` once its rows are
    written, so a city of millions is not held twice while it is validated.
    """
    out = check_output_path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent if str(out.parent) else ".")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with closing(connect(tmp)) as conn:
            # The temp file is renamed into place only when complete, so its own journal buys nothing.
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            ensure_schema(conn, SCHEMA)
            rows = _rows(pop)
            if extra_meta:
                meta = dict(pop.meta, **extra_meta)
                rows["meta"] = ("(?, ?)", [(k, _json(v)) for k, v in sorted(meta.items())])
            with transaction(conn):
                for table in TABLES:
                    placeholders, data = rows[table]
                    conn.executemany(f"INSERT INTO {table} VALUES {placeholders}", data)
                del rows
                if consume:
                    for part in (pop.residents, pop.households, pop.tax, pop.ltc, pop.history, pop.events):
                        part.clear()
                for statement in _INDEXES:
                    conn.execute(statement)
            if before_commit is not None:
                before_commit(conn)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            leftover.unlink(missing_ok=True)
        raise
    return out


def _open_readonly(path: Path | str) -> sqlite3.Connection:
    p = Path(path)
    if not p.is_file():
        raise InputError("path", f"{p} is not a population file")
    conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    try:
        conn.execute("SELECT 1 FROM residents LIMIT 1")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise InputError("path", f"{p} is not a population database ({exc})") from None
    return conn


_RESIDENT_COLUMNS = (
    "person_id, household_id, resident_code, my_number, family_name, given_name, family_name_kana, "
    "given_name_kana, sex, birth_date, relationship, nationality, residence_status, residence_card_number, "
    "alias_name, alias_kana, protective_measure, has_my_number_card, status, removal_reason, removal_date, "
    "resident_since, resident_since_reason"
)


def load_residents(path: Path | str, *, include_removed: bool = False) -> Iterator[Resident]:
    """Residents of a population file in person_id order (active only unless ``include_removed``)."""
    with closing(_open_readonly(path)) as conn:
        where = "" if include_removed else " WHERE status = 'active'"
        for row in conn.execute(f"SELECT {_RESIDENT_COLUMNS} FROM residents{where} ORDER BY person_id"):
            values = list(row)
            values[17] = bool(values[17])
            yield Resident(*values)


def load_events(path: Path | str) -> Iterator[Event]:
    """The year's 届出 of a population file in replay order (event_id)."""
    with closing(_open_readonly(path)) as conn:
        for event_id, event_date, effective, kind, household_id, person_ids, data in conn.execute(
            "SELECT event_id, event_date, effective_date, event_type, household_id, person_ids, data "
            "FROM events ORDER BY event_id"
        ):
            yield Event(event_id, event_date, effective, kind, household_id, json.loads(person_ids), json.loads(data))


def load_households(path: Path | str, *, include_removed: bool = False) -> Iterator[Household]:
    """世帯 of a population file in household_id order, with their members (active ones unless asked)."""
    with closing(_open_readonly(path)) as conn:
        status = "" if include_removed else " AND r.status = 'active'"
        members: dict[int, list[int]] = {}
        for hid, pid in conn.execute(
            f"SELECT r.household_id, r.person_id FROM residents r WHERE 1 = 1{status} ORDER BY r.person_id"
        ):
            members.setdefault(hid, []).append(pid)
        where = "" if include_removed else " WHERE status = 'active'"
        for row in conn.execute(
            "SELECT household_id, household_type, head_person_id, postal_code, jis_code, prefecture, city, town, "
            f"town_kana, banchi, katagaki, status FROM households{where} ORDER BY household_id"
        ):
            hid, kind, head, postal, jis, pref, city, town, kana, banchi, katagaki, hh_status = row
            yield Household(hid, kind, head, members.get(hid, []), postal, jis, pref, city, town, kana, banchi,
                            katagaki, hh_status)


def export(path: Path | str, out_dir: Path | str, fmt: str) -> list[Path]:
    """Write every table of a population file as ``<table>.jsonl`` or ``<table>.csv`` into ``out_dir``."""
    if fmt not in ("jsonl", "csv"):
        raise InputError("format", "must be jsonl or csv")
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    if not os.access(target, os.W_OK):
        raise InputError("out", f"the directory {target} is not writable")
    written: list[Path] = []
    with closing(_open_readonly(path)) as conn:
        for table in TABLES:
            cur = conn.execute(f"SELECT * FROM {table} ORDER BY {_KEYS[table]}")
            columns = [d[0] for d in cur.description]
            dest = target / f"{table}.{fmt}"
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=target)
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                    if fmt == "csv":
                        writer = csv.writer(fh, lineterminator="\n")
                        writer.writerow(columns)
                        writer.writerows(cur)
                    else:
                        for row in cur:
                            record = dict(zip(columns, row, strict=True))
                            for key in ("person_ids", "data", "detail", "value"):
                                if key in record and isinstance(record[key], str):
                                    record[key] = json.loads(record[key])
                            fh.write(_json(record) + "\n")
                os.chmod(tmp_name, 0o644)
                os.replace(tmp_name, dest)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
            written.append(dest)
    return written
