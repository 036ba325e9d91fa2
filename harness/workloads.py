"""Workloads shared by several experiments; module-level so that processes can unpickle them."""
from __future__ import annotations


def spin(iterations: int) -> int:
    """Pure-Python CPU work that holds the GIL throughout (no calls into C that release it)."""
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def split(total: int, parts: int) -> list[int]:
    """`total` units of work in `parts` near-equal shares that add up to `total`."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
