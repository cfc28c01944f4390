"""The analyzer's speed: ``cnnlab.analyze`` on a large model (its first call in a fresh process, which pays
PyTorch's one-time imports, and later calls) and ``cnnlab models`` over the whole registry, as a user runs it:
the first time (an empty count cache, every model built and counted) and every later time (the counts read back
from the cache, :mod:`cnnlab.analysis.catalog`)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from cnnlab.analysis import analyze
from cnnlab.analysis.catalog import CACHE_ENV
from cnnlab.registry import create_model

_FIRST_CALL = """
import json, sys, time
import cnnlab
model = cnnlab.create_model(sys.argv[1])
start = time.perf_counter()
cnnlab.analyze(model, (3, int(sys.argv[2]), int(sys.argv[2])))
print(json.dumps({"first_s": time.perf_counter() - start}))
"""


def bench_analysis(
    model: str = "resnet152", size: int = 224, *, pattern: str = "*", repeats: int = 3, timeout_s: float = 300.0
) -> dict[str, Any]:
    """Seconds of ``analyze(create_model(model), (3, size, size))``: the first call in a fresh process and the
    median of ``repeats`` later calls here; and the wall seconds of ``cnnlab models PATTERN`` as a command
    (Python's start and cnnlab's import included), with an empty count cache and then with the one it wrote."""
    run = dict(capture_output=True, text=True, check=True, timeout=timeout_s)
    first = json.loads(subprocess.run([sys.executable, "-c", _FIRST_CALL, model, str(size)], **run).stdout)
    net = create_model(model)
    analyze(net, (3, size, size))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        analyze(net, (3, size, size))
        times.append(time.perf_counter() - start)
    listing = []
    with tempfile.TemporaryDirectory() as cache:
        env = os.environ | {CACHE_ENV: cache}
        for _ in range(2):  # counting every model, then reading the counts back
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "cnnlab", "models", pattern], env=env, **run)
            listing.append(time.perf_counter() - start)
    return {
        "model": model,
        "size": size,
        "analyze_first_s": first["first_s"],
        "analyze_s": statistics.median(times),
        "models_pattern": pattern,
        "models_cli_first_s": listing[0],
        "models_cli_s": listing[1],
    }
