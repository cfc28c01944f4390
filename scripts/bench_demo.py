"""Benchmark of the demo (``make demo`` = ``cnnlab train`` with no arguments): test accuracy and wall time.

Target (issue 6): at least 98.0% accuracy on the 1,000 held-out mnist5k images within 3 minutes of wall time on a
2-core machine. Runs the real command line in a subprocess (so import time counts) into a temporary folder and
prints one line of JSON. Usage: ``python scripts/bench_demo.py [extra train flags]``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_ACC, TARGET_S = 0.98, 180.0


def main(extra: list[str]) -> int:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "cnnlab", "train", "--out-dir", out, "--run-name", "demo", "--no-progress", *extra]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        rows = list(csv.DictReader((Path(out) / "demo" / "metrics.csv").open()))
    acc = float(rows[-1]["test_acc"])
    result = {
        "test_acc": acc,
        "wall_s": round(wall, 1),
        "epochs": len(rows),
        "threads": os.cpu_count(),
        "load_avg": os.getloadavg()[0],
        "meets_target": acc >= TARGET_ACC and wall <= TARGET_S,
    }
    print(json.dumps(result))
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
