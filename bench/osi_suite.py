"""Run the OSI compliance suite's own harness against this project's CLI and print its pass count.

    python bench/osi_suite.py /path/to/ossie/compliance [--suite foundation-v0.1]

The suite (harness, tests, datasets) is a checkout of the OSI repository's `compliance/` folder; nothing of it is
kept here. Every test runs, planned ones included (`--include-planned`), through `bench/osi_adapter.py`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ADAPTER = Path(__file__).resolve().parent / "osi_adapter.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("compliance", type=Path, help="the OSI repository's compliance/ folder")
    parser.add_argument("--suite", default="foundation-v0.1")
    args = parser.parse_args()
    suite = args.compliance / args.suite
    env = {**os.environ, "PYTHONPATH": str(args.compliance / "harness" / "src")}
    command = [sys.executable, "-m", "harness.runner", "--adapter", str(ADAPTER), "--tests", "tests",
               "--datasets", "datasets", "--include-planned", "--verbose", "--output", "results/semantic"]
    sys.exit(subprocess.run(command, cwd=suite, env=env, check=False).returncode)


if __name__ == "__main__":
    main()
