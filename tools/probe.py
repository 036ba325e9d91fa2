"""What an interpreter is, printed as one JSON line: run as `<python> tools/probe.py MODULE,MODULE,...`.

Runs on any interpreter from 3.6 on, with nothing installed (so that a too-old one can be told
apart from a broken one). The modules named are imported first, and the GIL state is read
after them: on a free-threaded build, an extension without free-threading support turns the
GIL back on at import.
"""
import importlib
import json
import sys
import sysconfig
import warnings


def main():
    missing = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the GIL-re-enabling import warns; gil_enabled says it plainly
        for name in filter(None, (sys.argv[1] if len(sys.argv) > 1 else "").split(",")):
            try:
                importlib.import_module(name)
            except Exception as exc:
                missing.append(f"{name} ({exc.__class__.__name__})")
    print(json.dumps({
        "version": ".".join(map(str, sys.version_info[:3])),
        "version_info": list(sys.version_info[:2]),
        "implementation": sys.implementation.name,
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "missing": missing,
    }))


if __name__ == "__main__":
    main()
