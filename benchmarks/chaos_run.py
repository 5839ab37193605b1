"""Chaos run with larger bounded counts: the services of the demo world one process each, a 情報照会 workload, and
SIGKILLs of random services at random moments; prints kills survived, exchanges in flight at each kill, records lost
and the backpressure figures. Same as ``python -m simulator.services chaos``; loopback only, bounded by --queries,
--kills and the run's deadline. It writes only into its own temporary directory (or --data).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from simulator.services.admission import AdmissionLimits
from simulator.services.chaos import ChaosSettings, run_chaos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--gap", default="1,5", help="seconds between kills: min,max")
    parser.add_argument("--targets", default="", help="services that may be killed (comma-separated; all if empty)")
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--max-backlog", type=int, default=5000)
    parser.add_argument("--port-base", type=int, default=21600)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--data", type=Path, default=None, help="an empty directory (default: a temporary one)")
    parser.add_argument("--report", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    low, high = (float(x) for x in args.gap.split(","))
    with tempfile.TemporaryDirectory(prefix="jukisim-chaos-") as tmp:
        settings = ChaosSettings(
            args.data or Path(tmp) / "world", queries=args.queries, kills=args.kills, workers=args.workers,
            kill_gap=(low, high), targets=[t for t in args.targets.split(",") if t], port_base=args.port_base,
            rng_seed=args.seed, admission=AdmissionLimits(args.max_in_flight, args.max_backlog),
        )
        report = run_chaos(settings)
        print(report.markdown())
        if args.report is not None:
            args.report.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
