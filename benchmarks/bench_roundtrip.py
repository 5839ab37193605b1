"""情報照会 round trips per second through the in-process driver, against the floor of the same run.

One round trip is the whole path: 介護保険 (倉敷市) → 宛名 → 中間サーバー → NWS → 中間サーバー (桑名市) → NWS →
中間サーバー → 宛名 → 介護保険, every hop signed and verified, personal data sealed and opened, every decision and
情報提供等記録 written to SQLite. The floor is the bare cryptographic operations that one round trip performs
(counted by simulator.crypto.counters), timed alone with ``cryptography`` in the same process, same run.
Target (issue 2): the round trip reaches at least 50% of the floor's rate.

It also measures, in the same run, what no implementation of this design can avoid: the JOSE library's own cost
over the primitives (a bare joserfc query/reply exchange against its floor) and the minimum durable evidence of nine
hops (per hop one transaction: a replay-guard row and three hash-chained audit rows). Their sum gives the ceiling the
ratio could reach with every other cost removed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.crypto_floor import _round_trips, floor_seconds
from simulator.crypto import counters
from simulator.demo import PROVIDER, REQUESTER, setup_world


def measure(round_trips: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run = setup_world(Path(tmp) / "bench", size=60)
        try:
            ltc = run.world.business(REQUESTER, "ltc")
            mover = run.population.movers[0]

            def one() -> None:
                result, _hops = run.driver.step(
                    lambda now: ltc.query(
                        "bench", mover["ltc_atena_number"], "94", ["local_tax_info", "resident_info"], PROVIDER, now
                    )
                )
                answer = ltc.answer(str(result.value))
                assert answer is not None and answer["status"] == "provided", answer

            for _ in range(5):  # warm the certificate-path caches, as a long-running server would be
                one()
            before = counters.snapshot()
            one()
            per_trip = counters.snapshot() - before
            best_trip = float("inf")
            best_floor = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                for _ in range(round_trips):
                    one()
                best_trip = min(best_trip, (time.perf_counter() - start) / round_trips)
                best_floor = min(best_floor, floor_seconds(per_trip, repeat=1))
            return {
                "round_trip_s": best_trip,
                "floor_s": best_floor,
                "round_trips_per_s": 1 / best_trip,
                "floor_per_s": 1 / best_floor,
                "ratio": best_floor / best_trip,
                **{f"ops.{k}": float(v) for k, v in per_trip.as_dict().items()},
            }
        finally:
            run.world.close()


HOPS = 9


def evidence_floor_seconds(hops: int = HOPS, repeat: int = 3, trips: int = 100) -> float:
    """Seconds per round trip for the least durable evidence ``hops`` hops need, on a WAL file like a real store."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(str(Path(tmp) / "evidence.sqlite"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(
            "CREATE TABLE seen (message_id TEXT PRIMARY KEY, nonce TEXT UNIQUE, sender TEXT, seen_at TEXT);"
            "CREATE TABLE audit (seq INTEGER PRIMARY KEY, at TEXT, kind TEXT, data TEXT, prev_hash TEXT, hash TEXT);"
            "CREATE TABLE head (tbl TEXT PRIMARY KEY, seq INTEGER, hash TEXT); INSERT INTO head VALUES ('audit', 0, '');"
        )

        def hop() -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO seen VALUES (?, ?, 'bench', 'now')", (uuid.uuid4().hex, uuid.uuid4().hex))
            seq, head = conn.execute("SELECT seq, hash FROM head WHERE tbl = 'audit'").fetchone()
            rows = []
            for kind in ("message.in", "decision", "message.out"):
                seq += 1
                data = json.dumps({"kind": kind, "id": uuid.uuid4().hex})
                digest = hashlib.sha256((head + data).encode()).hexdigest()
                rows.append((seq, "now", kind, data, head, digest))
                head = digest
            conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.execute("UPDATE head SET seq = ?, hash = ? WHERE tbl = 'audit'", (seq, head))
            conn.execute("COMMIT")

        for _ in range(hops * 10):
            hop()
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(hops * trips):
                hop()
            best = min(best, (time.perf_counter() - start) / trips)
        conn.close()
        return best


def ceiling(floor_s: float, repeat: int) -> dict[str, float]:
    """The best ratio this design allows: the floor over (floor × the JOSE library's factor + minimum evidence)."""
    elapsed, counts = _round_trips(300)
    jose_factor = elapsed / floor_seconds(counts, repeat)
    evidence = evidence_floor_seconds(repeat=repeat)
    return {
        "jose_factor": jose_factor,
        "evidence_s": evidence,
        "ceiling": floor_s / (floor_s * jose_factor + evidence),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures = measure(args.round_trips, args.repeat)
    ops = ", ".join(f"{k[4:]}={int(v)}" for k, v in figures.items() if k.startswith("ops.") and v)
    print("情報照会 round trip (in-process) vs. its cryptographic floor, measured side by side")
    print(f"  operations per round trip: {ops}")
    print(f"  round trip : {figures['round_trips_per_s']:8.1f} /s  ({figures['round_trip_s'] * 1e3:.2f} ms)")
    print(f"  floor      : {figures['floor_per_s']:8.1f} /s  ({figures['floor_s'] * 1e3:.2f} ms)")
    print(f"  ratio      : {figures['ratio']:.2f}  (target ≥ 0.50)")
    bound = ceiling(figures["floor_s"], args.repeat)
    print("what the design cannot avoid, same run:")
    print(f"  joserfc query/reply exchange : ×{bound['jose_factor']:.2f} its own floor")
    print(f"  minimum evidence, {HOPS} hops   : {bound['evidence_s'] * 1e3:.2f} ms per round trip")
    print(f"  ceiling ratio                : {bound['ceiling']:.2f}  (floor / (floor × JOSE factor + evidence))")


if __name__ == "__main__":
    main()
