"""Install the optional packages one by one; record each failure in <venv>/optional-status.json.

A pin may carry a PEP 508 environment marker (`pkg==1.0; python_version >= "3.12"`); where it is
false for this interpreter the pin is skipped, and recorded as such, never handed to pip.

Run it with the venv's own interpreter: `.venv/bin/python tools/install_optional.py`. A failed
install never stops the others and never fails the step: it is printed, and written as
{"module": "reason"} to the file harness/optional.py reads, so the experiments that need the
module skip with that reason. On a free-threaded build, a module whose import turns the GIL
back on is uninstalled and recorded the same way: keeping it would quietly make every run
there a GIL run (the environment key would say "GIL re-enabled" and the run would not count).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from harness.optional import IMPORT_NAMES, OPTIONAL_STATUS, SKIPPED  # noqa: E402  (what the experiments read)

PIP_TIMEOUT_S = 900  # a source build (uvloop on cp313t) takes a minute or two on 2 cores


def pins(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def module_of(pin: str) -> str:
    """The import name of a pinned distribution (uvloop==0.23.0 -> uvloop; see harness.optional.IMPORT_NAMES)."""
    name = re.split(r"[=<>!~\[; ]", pin, maxsplit=1)[0].lower().replace("-", "_").replace(".", "_")
    return IMPORT_NAMES.get(name, name)


def skipped(pin: str) -> str | None:
    """Why `pin` is not for this interpreter (its environment marker is false here), or None."""
    if ";" not in pin:
        return None
    from packaging.requirements import Requirement  # installed with pytest, which harness.optional needs too

    marker = Requirement(pin).marker
    if marker is None or marker.evaluate():
        return None
    return f"{SKIPPED} ({marker}) is false for this interpreter"


def pip_failure(output: str) -> str:
    """The line of pip's output that says why, without pip's prefixes."""
    errors = [line.removeprefix("ERROR: ").strip() for line in output.splitlines() if line.startswith("ERROR:")]
    useful = [e for e in errors if "Failed to build" not in e and "subprocess-exited-with-error" not in e]
    return (useful or errors or [output.strip().splitlines()[-1] if output.strip() else "pip failed"])[-1]


def reenables_gil(module: str) -> bool:
    """True when importing `module` turns the GIL back on (free-threaded builds only)."""
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return False
    probe = f"import sys, warnings; warnings.simplefilter('ignore'); import {module}; print(sys._is_gil_enabled())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return out.stdout.strip() == "True"


def install(pin: str, constraints: list[str]) -> str | None:
    """Install one pin; return why it is unavailable, or None when it imports as it should."""
    module = module_of(pin)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", pin, *constraints]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"pip install {pin} took over {PIP_TIMEOUT_S} s"
    if done.returncode != 0:
        why = pip_failure(done.stdout + done.stderr)
        if why.startswith("No matching distribution"):
            abi = sys.implementation.cache_tag + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")
            why += f" (no wheel for {abi}, and no source to build)"
        return f"pip install {pin}: {why}"
    if reenables_gil(module):
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", pin.split("=")[0]], check=False)
        return f"{pin} installs, but importing it re-enables the GIL on this free-threaded build (uninstalled)"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", nargs="?", default=str(ROOT / "requirements-optional.txt"))
    parser.add_argument("-c", "--constraint", action="append", default=[],
                        help="constraints file passed to pip (e.g. requirements.txt)")
    args = parser.parse_args()
    constraints = [arg for c in args.constraint for arg in ("-c", c)]
    status = {}
    for pin in pins(Path(args.requirements)):
        why = skipped(pin)
        if why is not None:
            print(f"optional {pin}: skipped, {why}", flush=True)
            status[module_of(pin)] = why
            continue
        why = install(pin, constraints)
        print(f"optional {pin}: " + ("installed" if why is None else f"NOT INSTALLED: {why}"), flush=True)
        if why is not None:
            status[module_of(pin)] = why
    OPTIONAL_STATUS.write_text(json.dumps(status, indent=2) + "\n")
    if status:
        print(f"{len(status)} optional package(s) missing; their experiments will skip. Recorded in {OPTIONAL_STATUS}")


if __name__ == "__main__":
    main()
