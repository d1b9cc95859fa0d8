"""Every benchmark, one after the other, each writing its section of benchmarks/README.md.

.venv/bin/python benchmarks/run_all.py [--runs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("startup.py", "isolation.py", "efficiency.py", "scale.py")


def main() -> int:
    """Run each script; the exit status is the first failure's, if any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    status = 0
    for script in SCRIPTS:
        runs = max(options.runs, 9) if script == "startup.py" else options.runs
        print(f"== {script}", flush=True)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(HERE / script), "--runs", str(runs)], check=False
        )
        print(f"== {script}: {time.perf_counter() - started:.0f} s", flush=True)
        status = status or result.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
