"""`make matrix`: the quick suite once per interpreter, one nox session each, then one report.

Sessions are named by interpreter (`nox -l` lists them: suite-3.11.7, suite-3.13.5t, ...); the
interpreters come from tools/interpreters.py (PYTHONS="...", or found and probed). Each session
has its own venv (experiments + optional requirements), reused while the requirements are
unchanged, so a second `make matrix` installs nothing. Runs land in the environment's own
folder under MATRIX_STORAGE (results/ by default; the root conftest.py appends the environment
slug). Arguments after `--` go to pytest (`nox -- -k CO1`).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))
from tools.interpreters import FREE_THREADED_ORIGINS, discover  # noqa: E402

ROOT = Path(__file__).parent
REQUIREMENTS = ("requirements.txt", "requirements-optional.txt")
STORAGE = os.environ.get("MATRIX_STORAGE", "results")
# What the suite imports in every environment; the optional ones are checked only when installed.
IMPORTS = ("pytest", "pytest_benchmark", "pytest_asyncio", "pytest_timeout", "psutil", "aiohttp", "requests", "pyperf",
           "scipy.stats")
# interpreters_backport: the package alone, which imports nothing native (its interpreters module may crash
# on import, on CPython 3.12.1: harness/interpreters.py probes that in a child).
OPTIONAL = ("uvloop", "msgpack", "liburing", "interpreters_backport")

nox.options.sessions = None  # every session
nox.options.reuse_venv = "yes"
nox.options.download_python = "never"  # only interpreters that are here
nox.options.error_on_missing_interpreters = True


def requirements_digest() -> str:
    return hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in REQUIREMENTS)).hexdigest()[:16]


def install(session: nox.Session) -> None:
    """Experiments + optional requirements, unless this venv already has exactly these."""
    stamp = Path(session.virtualenv.location) / ".requirements-digest"
    if stamp.exists() and stamp.read_text() == requirements_digest():
        session.log("venv up to date with the requirements; nothing to install")
        return
    session.install("--quiet", "--upgrade", "pip")
    session.install("--quiet", "-r", "requirements.txt")
    session.run_install("python", "tools/install_optional.py", "-c", "requirements.txt")
    stamp.write_text(requirements_digest())


def check(session: nox.Session, interpreter) -> None:
    """Probe the venv: every import the suite needs, the optional ones it has, the GIL after them."""
    status = Path(session.virtualenv.location) / "optional-status.json"
    failed = json.loads(status.read_text()) if status.exists() else {}
    modules = IMPORTS + tuple(m for m in OPTIONAL if m not in failed)
    out = session.run("python", str(ROOT / "tools" / "probe.py"), ",".join(modules), silent=True)
    if out is None:  # --install-only
        return
    info = json.loads(out.strip().splitlines()[-1])
    if info["missing"]:
        session.error(f"{interpreter.id}: cannot import {', '.join(info['missing'])}")
    gil = "off" if not info["gil_enabled"] else ("RE-ENABLED by an import" if info["free_threaded"] else "on")
    session.log(f"{interpreter.id}: imports ok; optional missing: {', '.join(sorted(failed)) or 'none'}; GIL {gil}")


def make_session(interpreter, position: str):
    def suite(session: nox.Session) -> None:
        session.log(f"[{position}] {interpreter.describe}")
        install(session)
        check(session, interpreter)
        start = time.monotonic()
        ran = session.run("python", "-m", "pytest", "experiments", f"--benchmark-storage={STORAGE}",
                          "-p", "no:cacheprovider", *session.posargs)
        if ran is not None:  # None: skipped under --install-only
            session.log(f"{interpreter.id}: suite took {time.monotonic() - start:.0f} s")

    suite.__doc__ = interpreter.describe
    # `make free-threaded` prepares the venvs of the interpreters it provides: tagged "free-threaded".
    tags = ["free-threaded"] if interpreter.origin in FREE_THREADED_ORIGINS else []
    return nox.session(name=f"suite-{interpreter.id}", python=interpreter.path, venv_backend="venv",
                       tags=tags)(suite)


_found = discover(report=lambda line: print(f"nox > {line}", file=sys.stderr))
for _i, _interpreter in enumerate(_found, 1):
    globals()[f"suite_{_interpreter.id}"] = make_session(_interpreter, f"{_i}/{len(_found)}")
