"""TH4: the "pure-Python" work becomes hashing, which releases the GIL, so threads run it in parallel."""
import hashlib

import harness.workloads


def spin(iterations: int) -> int:
    return hashlib.sha256(bytes(64 * iterations)).digest()[0]


def pytest_configure(config):
    harness.workloads.spin = spin  # before the experiment imports it
