"""What a timing was taken on: the CPU (from ``/proc/cpuinfo`` where there is one), its cores, torch's threads
and the versions.

May import: nothing from cnnlab.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_tile")
"""The instruction-set flags that decide oneDNN's convolution kernels (reported when the CPU has them)."""


def machine_info() -> dict[str, Any]:
    """CPU model and features, cores, the threads torch uses, torch, Python and platform versions."""
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    cpu = value.strip()
                elif key.strip() == "flags":
                    flags = value.split()
                    break
    except OSError:  # not Linux
        pass
    return {
        "cpu": cpu,
        "cpu_features": [f for f in CPU_FEATURES if f in flags],
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_summary(info: dict[str, Any] | None = None) -> str:
    """One line of :func:`machine_info`: ``"<cpu>, 2 cores, torch 2.x, Python 3.x"``."""
    m = info or machine_info()
    return f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, Python {m['python']}"


def total_memory(device: torch.device) -> int | None:
    """Bytes of memory that ``device`` has: the GPU's own for CUDA, the machine's RAM for the CPU (physical pages
    times their size); None where it is not known (another device, a system without ``sysconf``)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or no such name
            return None
    return None
