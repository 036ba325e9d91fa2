"""The environment key: what a run was measured on, recorded in every run's JSON.

Whether a claim holds depends on the interpreter (the GIL claims flip on a free-threaded
build) and on the machine, so runs are grouped by this key and never merged across keys.
The key says which build this is (free-threaded or not) and whether the GIL was really off:
on a free-threaded build, importing a C extension that has not declared support turns the
GIL back on, and such a run must never count as a free-threaded result.
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
import sys
import sysconfig


def gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def free_threaded_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def cpus_available() -> int:
    """CPUs this process may run on (affinity, e.g. taskset), not CPUs in the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def jit() -> str:
    """'on', 'off' (built with the JIT, not enabled) or 'absent'."""
    state = getattr(sys, "_jit", None)
    if state is not None and hasattr(state, "is_enabled"):
        return "on" if state.is_enabled() else "off"
    return "off" if "_Py_JIT" in (sysconfig.get_config_var("PY_CORE_CFLAGS") or "") else "absent"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gil_state(enabled_now: bool | None = None) -> str:
    """'on' (a GIL build), 'off' (free-threaded, GIL off) or 're-enabled' (free-threaded, GIL came back)."""
    enabled = gil_enabled() if enabled_now is None else enabled_now
    if not free_threaded_build():
        return "on"
    return "re-enabled" if enabled else "off"


def key(gil_enabled_at_end: bool | None = None) -> dict:
    """The environment of this process. Pass the GIL state read at the end of the run."""
    return {
        "implementation": platform.python_implementation(),
        "python": platform.python_version(),
        "free_threaded": free_threaded_build(),
        "gil": gil_state(gil_enabled_at_end),
        "jit": jit(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cpus_available": cpus_available(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "system": platform.system(),
    }


# What identifies a machine: the CPU model, the cores, the architecture, the system, and the
# kernel's upstream release. A kernel release is "<upstream>[-<distributor build>]": the
# distributor's suffix ("-fc-v595", "-1-amd64", "-generic", "+deb13") names a rebuild or a VM image
# of the same kernel, which changes from one boot of the same machine to the next, so it is left
# out; the recorded key keeps the whole string. Two runs on one machine whose kernels differ only
# in that suffix land in one environment.
MACHINE_FIELDS = ("cpu_model", "cores", "kernel", "machine", "system")
_UPSTREAM = re.compile(r"^\d+(?:\.\d+)*")


def kernel_release(release: str) -> str:
    """The kernel's upstream release without the distributor's build suffix: 6.18.44-fc-v595 -> 6.18.44."""
    found = _UPSTREAM.match(release or "")
    return found.group(0) if found else (release or "")


def machine_identity(env: dict) -> tuple:
    """The fields that say which machine a run was made on (see MACHINE_FIELDS)."""
    return tuple(kernel_release(str(env.get(k, ""))) if k == "kernel" else str(env.get(k, ""))
                 for k in MACHINE_FIELDS)


def slug(env: dict) -> str:
    """A folder-safe name that differs whenever the key does: CPython-3.13.5t-x86_64-2cpu-1a2b3c."""
    build = env["python"] + ("t" if env["free_threaded"] else "")
    gil = {"on": "", "off": "", "re-enabled": "-gil-reenabled"}[env["gil"]]
    jit_part = "-jit" if env.get("jit") == "on" else ""
    digest = hashlib.sha1("|".join(machine_identity(env)).encode()).hexdigest()[:6]
    return f"{env['implementation']}-{build}{gil}{jit_part}-{env['machine']}-{env['cores']}cpu-{digest}"


def label(env: dict) -> str:
    """How an environment reads as a column heading: CPython 3.13.5t (GIL off)."""
    build = env["python"] + ("t" if env["free_threaded"] else "")
    extra = {"on": "", "off": " (GIL off)", "re-enabled": " (GIL re-enabled!)"}[env["gil"]]
    return f"{env['implementation']} {build}{extra}" + (" JIT" if env.get("jit") == "on" else "")


def traits(env: dict | None = None) -> set[str]:
    """The catalogue's environment traits this environment has (see harness.catalogue.TRAITS)."""
    gil = (env or key())["gil"]
    return {"no_gil"} if gil == "off" else set()
