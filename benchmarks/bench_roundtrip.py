"""情報照会 round trips per second through the in-process driver, against the floor of the same run.

One round trip is the whole path: 介護保険 (倉敷市) → 宛名 → 中間サーバー → NWS → 中間サーバー (桑名市) → NWS →
中間サーバー → 宛名 → 介護保険, every hop signed and verified, personal data sealed and opened, every decision and
情報提供等記録 written to SQLite. The floor is the bare cryptographic operations that one round trip performs
(counted by simulator.crypto.counters), timed alone with ``cryptography`` in the same process, same run.
Target (issue 2): the round trip reaches at least 50% of the floor's rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.crypto_floor import floor_seconds
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


if __name__ == "__main__":
    main()
