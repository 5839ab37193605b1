"""Synthetic residents of a seed municipality: people, 世帯, addresses, identifiers, business data and a year of 異動.

Public API (documented in docs/population.md):
    generate(profile, size, seed) -> Population           build in memory
    write(profile, size, seed, path) -> list[Check]        build, validate and write SQLite atomically
    load_residents(path) -> Iterator[Resident]             read back (also load_households, load_events)
    validate_path(path) -> list[Check]; ensure_valid(checks)
    export(path, out_dir, "jsonl" | "csv")
This package must never re-implement an identifier formula: simulator.identifiers is the one implementation.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .generator import DEFAULT_YEAR, Progress, generate, jlis_key
from .model import Event, HistoryEntry, Household, LtcRecord, Population, Resident, TaxRecord
from .profiles import PROFILES, Profile, get_profile
from .storage import check_output_path, export, load_events, load_households, load_residents, write_population
from .validation import Check, ValidationFailed, ensure_valid, validate_connection, validate_path

__all__ = [
    "DEFAULT_YEAR",
    "PROFILES",
    "Check",
    "Event",
    "HistoryEntry",
    "Household",
    "LtcRecord",
    "Population",
    "Profile",
    "Resident",
    "TaxRecord",
    "ValidationFailed",
    "check_output_path",
    "ensure_valid",
    "export",
    "generate",
    "get_profile",
    "jlis_key",
    "load_events",
    "load_households",
    "load_residents",
    "validate_connection",
    "validate_path",
    "write",
    "write_population",
]


def write(
    profile: str,
    size: int,
    seed: int,
    path: Path | str,
    *,
    year: int = DEFAULT_YEAR,
    progress: Progress | None = None,
    validate: bool = True,
) -> list[Check]:
    """Generate, validate inside the temporary file, and rename it to ``path`` only if every check passes.

    Arguments are checked before any work (InputError naming the option); a failed validation raises
    ValidationFailed and leaves ``path`` untouched.
    """
    get_profile(profile)
    check_output_path(path)
    pop = generate(profile, size, seed, year=year, progress=progress)
    checks: list[Check] = []

    def _validate(conn: sqlite3.Connection) -> None:
        checks.extend(validate_connection(conn))
        summary = {"checks": len(checks), "failed": [f"{c.group}/{c.name}" for c in checks if not c.ok]}
        conn.execute("INSERT INTO meta VALUES ('validation', ?)", (json.dumps(summary, ensure_ascii=False),))
        if validate:
            ensure_valid(checks)

    if progress:
        progress("writing", 0.95)
    write_population(pop, path, before_commit=_validate, consume=True)
    del pop
    if progress:
        progress("done", 1.0)
    return checks
