"""Shared test fixtures. Tests run on the CPU with small inputs, and nothing may reach the network."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import torch

# The CI machine has 2 cores and may share them; one intra-op thread per test process avoids the
# oversubscription that made some ops 100x slower there. Speed is measured by the benchmarks, not here.
torch.set_num_threads(1)

# `cnnlab models` caches its counts (cnnlab.analysis.catalog): a folder of this process's own, never the user's.
os.environ["CNNLAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnlab-test-cache-")

_LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost", "0.0.0.0"}
_connect = socket.socket.connect


def _local_only(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    if self.family in (socket.AF_INET, socket.AF_INET6) and host not in _LOCAL_HOSTS:
        raise OSError(f"tests may not reach the network (tried {address!r})")
    return _connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _local_only)
    yield


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
