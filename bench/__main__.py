"""`make bench`: run every bench/bench_*.py in its own process; each prints one JSON object."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    names = sys.argv[1:] or sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    failed = 0
    for name in names:
        print(f"# {name}", file=sys.stderr, flush=True)
        result = subprocess.run([sys.executable, "-m", f"bench.{name}"])
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
