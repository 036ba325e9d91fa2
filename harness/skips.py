"""Named skip markers, each with its reason spelled out, reused wherever they apply."""
from __future__ import annotations

import sys

import pytest

from harness.environment import cpus_available

needs_two_cpus = pytest.mark.skipif(
    cpus_available() < 2,
    reason=f"needs 2 or more CPUs to show parallelism; this process may run on {cpus_available()}",
)
needs_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="measures Linux kernel behaviour (/proc, epoll, signals)"
)
