"""`make bench`: run every benchmark in this folder, each printing its ratio against a floor of the same run."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        saved = sys.argv
        sys.argv = [name]
        try:
            module.main()
        finally:
            sys.argv = saved


if __name__ == "__main__":
    main()
