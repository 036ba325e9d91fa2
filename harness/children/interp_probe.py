"""The interpreters probe (harness.interpreters.refusal): import PEP 734's module, create, exec, close.

Usage: python -m harness.children.interp_probe

Before each step it writes a STAGE line with os.write (no buffer a crash could lose), so that
a child killed by a signal or a timeout tells which step it was on. On success it reports the
module it used and the interpreter's GIL config ("own": PEP 684's GIL of its own).
"""
from __future__ import annotations

import os

from harness.children import emit
from harness.interpreters import STAGE, load


def stage(what: str) -> None:
    os.write(1, f"{STAGE} {what}\n".encode())


def gil_config(interp_id: int) -> str:
    """The interpreter's GIL config from the low-level module, where it tells ("unknown" otherwise)."""
    try:
        import _interpreters

        return str(getattr(_interpreters.get_config(interp_id), "gil", "unknown"))
    except (ImportError, AttributeError):
        return "unknown"


def main() -> None:
    stage("importing the interpreters module")
    module = load()
    stage(f"creating an interpreter with {module.__name__}")
    interp = module.create()
    stage("running a statement in the new interpreter")
    interp.exec("total = sum(range(10))")
    gil = gil_config(interp.id)
    stage("closing the interpreter")
    interp.close()
    del interp  # its __del__ runs now, not during shutdown (where the backport's would raise)
    stage("done")
    emit({"module": module.__name__, "gil": gil})


if __name__ == "__main__":
    main()
