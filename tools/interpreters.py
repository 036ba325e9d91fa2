"""The interpreters of the matrix: given (PYTHONS="..."), or found and probed before use.

Found, in this order: the default python3; pyenv's versions, resolved with `pyenv prefix`
(pyenv's `python3.12` shim fails unless a version is selected); the builds of
`make free-threaded` in .interpreters/; PYTHON_FT; python3.13t and python3.14t on PATH.
Each is probed in a subprocess (version, free-threaded build, GIL state, the stdlib modules a
venv and the suite need); one that fails the probe is listed with its reason and left out.
Two names for one executable (the python3 shim and pyenv's 3.11.7) count once.

`python tools/interpreters.py` prints the table.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILT = ROOT / ".interpreters"
MIN_VERSION = (3, 11)  # tomllib, and the suite's typing
PROBE_TIMEOUT_S = 30
# stdlib modules the suite cannot do without: venv/ensurepip to build its venv, ssl for pip and
# aiohttp, ctypes and zlib for the experiments; a source build missing a header lacks one.
NEEDED_MODULES = ("venv", "ensurepip", "ssl", "ctypes", "zlib")
# Origins of the interpreters that `make free-threaded` provides (its builds, or the one it was given).
FREE_THREADED_ORIGINS = ("make free-threaded", "PYTHON_FT", "PATH")

PROBE = Path(__file__).with_name("probe.py")  # a file, so that any interpreter can run it


@dataclass(frozen=True)
class Interpreter:
    id: str  # the session's name: 3.13.5t, 3.12.1, ...
    path: str  # the real executable
    version: str
    free_threaded: bool
    gil_enabled: bool
    origin: str  # where it was found

    @property
    def describe(self) -> str:
        build = "free-threaded, GIL " + ("ON (re-enabled)" if self.gil_enabled else "off") if self.free_threaded \
            else "GIL build"
        return f"{self.id:10} {build:30} {self.path}  ({self.origin})"


def probe(python: str, modules: tuple[str, ...] = NEEDED_MODULES) -> dict:
    """What `python` is (tools/probe.py); raises ValueError saying why it cannot be used."""
    try:
        done = subprocess.run([python, str(PROBE), ",".join(modules)], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ValueError(f"does not run ({exc.__class__.__name__})") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise ValueError(f"does not run: {lines[-1] if lines else f'exit {done.returncode}'}")
    info = json.loads(done.stdout)
    if info["implementation"] != "cpython":
        raise ValueError(f"is {info['implementation']}, not CPython")
    if tuple(info["version_info"]) < MIN_VERSION:
        raise ValueError(f"is {info['version']}; the suite needs {'.'.join(map(str, MIN_VERSION))} or newer")
    if info["missing"]:
        raise ValueError(f"lacks {', '.join(info['missing'])}")
    return info


def pyenv_pythons() -> list[tuple[str, str]]:
    pyenv = shutil.which("pyenv")
    if not pyenv:
        return []
    versions = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True).stdout.split()
    found = []
    for version in versions:
        prefix = subprocess.run([pyenv, "prefix", version], capture_output=True, text=True).stdout.strip()
        if prefix and (Path(prefix) / "bin" / "python3").exists():
            found.append((str(Path(prefix) / "bin" / "python3"), f"pyenv {version}"))
    return found


def built_pythons() -> list[tuple[str, str]]:
    """One executable per build: python3.13t in cpython-3.13.5t/ (which also holds python3.13, a hard link)."""
    found = []
    for prefix in sorted(BUILT.glob("cpython-*")):
        series = ".".join(prefix.name.removeprefix("cpython-").rstrip("t").split(".")[:2])
        python = prefix / "bin" / f"python{series}{'t' if prefix.name.endswith('t') else ''}"
        if python.exists():
            found.append((str(python), "make free-threaded"))
    return found


def candidates() -> list[tuple[str, str]]:
    given = os.environ.get("PYTHONS", "").split()
    if given:
        return [(shutil.which(p) or p, "PYTHONS") for p in given]
    found = [(shutil.which("python3") or "python3", "default python3")]
    found += pyenv_pythons() + built_pythons()
    if os.environ.get("PYTHON_FT"):
        found.append((os.environ["PYTHON_FT"], "PYTHON_FT"))
    found += [(p, "PATH") for p in (shutil.which("python3.13t"), shutil.which("python3.14t")) if p]
    return found


def session_id(info: dict, taken: set[str]) -> str:
    base = info["version"] + ("t" if info["free_threaded"] else "")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def discover(report=print) -> list[Interpreter]:
    """Every usable interpreter, each once; `report` hears about the ones left out."""
    seen: dict[tuple[int, int], Interpreter] = {}
    for python, origin in candidates():
        try:
            info = probe(python)
        except ValueError as why:
            report(f"left out: {python} ({origin}) {why}")
            continue
        stat = os.stat(info["executable"])
        real = (stat.st_dev, stat.st_ino)  # symlinks and hard links (python3.13 beside python3.13t) count once
        if real in seen:
            continue
        ident = session_id(info, {i.id for i in seen.values()})
        seen[real] = Interpreter(ident, info["executable"], info["version"], info["free_threaded"],
                                 info["gil_enabled"], origin)
    return list(seen.values())


if __name__ == "__main__":
    for interpreter in discover(report=lambda line: print(line, file=sys.stderr)):
        print(interpreter.describe)
