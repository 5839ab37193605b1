"""Cost-model simulation: SimPy events per wall-clock second against the floor of the same run, and year-long runs.

The floor is bare SimPy processing the same number of timeout events with no work (100 processes each yielding
``env.timeout`` in turn), measured in the same process right before and after the engine run; the best of each is
kept, so a busy neighbour on a shared machine skews neither side alone. Target (issue 5): the engine reaches at
least 30% of the floor's rate. ``--full`` adds the wall time of one year of a 300,000-resident city and of one
year at the FY2022 national volume (target: under 15 minutes each on the project's 2-core machine).
"""

from __future__ import annotations

import argparse
import time

import simpy

from simulator.simulation.runner import SimulationConfig, simulate


def floor_seconds(events: int, processes: int = 100) -> float:
    env = simpy.Environment()
    per = events // processes

    def ticker(n: int):  # type: ignore[no-untyped-def]
        for _ in range(n):
            yield env.timeout(1)

    for i in range(processes):
        env.process(ticker(per + (1 if i < events % processes else 0)))
    start = time.perf_counter()
    env.run()
    return time.perf_counter() - start


def ratio(days: int, repeat: int) -> dict[str, float]:
    best_run = best_floor = float("inf")
    events = 0
    for _ in range(repeat):
        result = simulate(SimulationConfig(days=days, national=True, seed=1, unit=1))
        events = int(result["performance"]["events"])
        best_run = min(best_run, float(result["performance"]["simulate_wall_s"]))
        best_floor = min(best_floor, floor_seconds(events))
    return {"events": events, "run_s": best_run, "floor_s": best_floor, "ratio": best_floor / best_run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3, help="national days for the ratio (unit 1)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also time a city year and a national year")
    parser.add_argument("--city-size", type=int, default=300_000)
    args = parser.parse_args()
    figures = ratio(args.days, args.repeat)
    print("cost-model engine vs bare SimPy (same number of timeout events), measured side by side")
    print(f"  events        : {figures['events']:,}")
    print(f"  engine        : {figures['events'] / figures['run_s']:>10,.0f} events/s  ({figures['run_s']:.2f} s)")
    print(f"  bare SimPy    : {figures['events'] / figures['floor_s']:>10,.0f} events/s  ({figures['floor_s']:.2f} s)")
    print(f"  ratio         : {figures['ratio']:.2f}  (target ≥ 0.30)")
    if not args.full:
        print("  (--full: one year of a 300,000-resident city and of the FY2022 national volume)")
        return
    started = time.perf_counter()
    city = simulate(SimulationConfig(days=365, profile="kuwana", size=args.city_size, seed=1))
    city_wall = time.perf_counter() - started
    print(f"city year ({args.city_size:,} residents, cost model): {city_wall:.1f} s wall "
          f"(population {city_wall - city['performance']['simulate_wall_s']:.1f} s, simulation "
          f"{city['performance']['simulate_wall_s']:.1f} s, {city['performance']['events']:,} events), "
          f"lost_messages={city['lost_messages']}  (target < 900 s)")
    started = time.perf_counter()
    national = simulate(SimulationConfig(days=365, national=True, seed=1))
    national_wall = time.perf_counter() - started
    queries = sum(v for k, v in national["throughput"]["completed"].items() if k.startswith("query"))
    print(f"national FY2022 year ({national['run']['municipalities']} municipalities, unit "
          f"{national['run']['unit']}, {queries:,} 情報照会): {national_wall:.1f} s wall, "
          f"{national['performance']['events']:,} events, lost_messages={national['lost_messages']}  "
          f"(target < 900 s)")


if __name__ == "__main__":
    main()
