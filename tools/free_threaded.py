"""`make free-threaded`: a free-threaded CPython for the matrix, and its GIL twin from the same source.

Order of preference:
1. PYTHON_FT=/path/to/python3.13t, or python3.14t / python3.13t on PATH: used as it is, nothing built.
2. Builds already in .interpreters/ (kept across `make clean`): reused.
3. Otherwise one CPython source tarball, built twice out of tree: `--disable-gil` and the default
   build, same flags otherwise, so that the GIL is the only difference between the two columns.
   (pyenv's 3.13.0 against a 3.13.5t would change the patch release too.)

The tarball comes from python.org when it answers; on machines that reach only Debian's archive,
`apt-get source --download-only python3.13` against Debian 13 (trixie) yields the upstream tarball
(python3.13_<version>.orig.tar.xz). apt runs with a private sources list and private state and
cache directories; the archive's address is read from the system's apt sources, whose
configuration is never touched. apt checks the tarball against the signed trixie index with the
keys of the installed debian-archive-keyring.

Compiling takes both cores, so every build step runs under the suite's measurement lock
(BENCH_LOCK, /tmp/bench.lock): a benchmark run never shares the machine with the compiler;
`make matrix` and `make stability` wait on the same lock.

A build needs a C compiler, make, and the libssl, zlib and libffi headers (on Debian:
`apt-get install build-essential libssl-dev zlib1g-dev libffi-dev`); whatever is missing is
named before anything is built. The builds go into .interpreters/, which git ignores and
`make clean` keeps; builds.json there records the tarball and each build's duration.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools import interpreters  # noqa: E402

INTERPRETERS = ROOT / ".interpreters"
BUILDS_JSON = INTERPRETERS / "builds.json"  # what was built, from which tarball, in how long
SERIES = "3.13"  # the newest series with a free-threaded build that the pinned requirements install on
LOCK = os.environ.get("BENCH_LOCK", "/tmp/bench.lock")
JOBS = os.environ.get("JOBS", "2")
PYTHON_ORG = "https://www.python.org/ftp/python/"
PYTHON_ORG_TIMEOUT_S = 10
DEBIAN_SUITE = "trixie"  # Debian 13: the first release whose python3.13 source is 3.13.x
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
CONFIGURE_FLAGS = ["--with-ensurepip=install"]  # no PGO/LTO: both builds alike, and minutes instead of tens

# Headers the suite needs (ssl for aiohttp/requests, zlib for pip and TH4, ffi for ctypes), and the
# Debian packages that bring them. Missing optional ones only drop stdlib modules the suite never uses.
REQUIRED_HEADERS = {"openssl/ssl.h": "libssl-dev", "zlib.h": "zlib1g-dev", "ffi.h": "libffi-dev"}
OPTIONAL_HEADERS = {"bzlib.h": "libbz2-dev", "lzma.h": "liblzma-dev", "sqlite3.h": "libsqlite3-dev",
                    "readline/readline.h": "libreadline-dev", "uuid/uuid.h": "uuid-dev"}


def say(msg: str) -> None:
    print(f"[free-threaded] {msg}", flush=True)


def probe(python: str) -> dict | None:
    """Version and build of an interpreter (tools/probe.py), or None when it cannot be used."""
    try:
        return interpreters.probe(python, modules=())
    except ValueError:
        return None


def given_or_on_path() -> str | None:
    """A free-threaded interpreter the user already has: PYTHON_FT, else python3.14t/3.13t on PATH."""
    candidates = [os.environ["PYTHON_FT"]] if os.environ.get("PYTHON_FT") else []
    candidates += [p for p in (shutil.which("python3.14t"), shutil.which("python3.13t")) if p]
    for python in candidates:
        info = probe(python)
        if info and info["free_threaded"]:
            return info["executable"]
        say(f"{python}: not a working free-threaded interpreter, ignored")
    if os.environ.get("PYTHON_FT"):
        sys.exit(f"PYTHON_FT={os.environ['PYTHON_FT']} is not a working free-threaded CPython")
    return None


def built() -> list[Path]:
    """Interpreters already built under .interpreters/ (bin/python3.X or python3.Xt)."""
    return sorted(p for p in INTERPRETERS.glob("cpython-*/bin/python3.*") if re.fullmatch(r"python3\.\d+t?", p.name))


def missing_headers(headers: dict[str, str]) -> list[str]:
    cc = os.environ.get("CC", "cc")
    if not shutil.which(cc):
        return [f"a C compiler ({cc}: apt-get install build-essential)"]
    missing = []
    for header, package in headers.items():
        check = subprocess.run([cc, "-E", "-x", "c", "-"], input=f"#include <{header}>\n", text=True,
                               capture_output=True)
        if check.returncode != 0:
            missing.append(f"{header} ({package})")
    return missing


def check_build_dependencies() -> None:
    missing = missing_headers(REQUIRED_HEADERS)
    if not shutil.which("make"):
        missing.append("make (apt-get install make)")
    if missing:
        sys.exit("cannot build CPython, missing: " + ", ".join(missing)
                 + "\n  on Debian/Ubuntu: apt-get install build-essential libssl-dev zlib1g-dev libffi-dev")
    optional = missing_headers(OPTIONAL_HEADERS)
    if optional:
        say("building without (the suite does not need them): " + ", ".join(optional))


# --- the source tarball ---------------------------------------------------------------------
def from_python_org(series: str, dest: Path) -> Path | None:
    """The newest final release of the series from python.org, or None when it is unreachable."""
    try:
        with urllib.request.urlopen(PYTHON_ORG, timeout=PYTHON_ORG_TIMEOUT_S) as page:
            index = page.read().decode()
    except OSError as exc:
        say(f"python.org not reachable ({exc.__class__.__name__}); trying Debian's archive")
        return None
    releases = {tuple(map(int, v.split("."))) for v in re.findall(rf'href="({re.escape(series)}\.\d+)/"', index)}
    for release in sorted(releases, reverse=True):  # the newest directory may hold only pre-releases
        version = ".".join(map(str, release))
        url = f"{PYTHON_ORG}{version}/Python-{version}.tar.xz"
        target = dest / f"Python-{version}.tar.xz"
        try:
            with urllib.request.urlopen(url, timeout=PYTHON_ORG_TIMEOUT_S) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            return target
        except OSError:
            continue
    return None


def apt_sources() -> list[str]:
    """The text of the system's apt source files (read, never written)."""
    paths = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    return [path.read_text() for path in paths if path.suffix in (".list", ".sources") and path.is_file()]


def debian_archive_uri(texts: list[str]) -> str | None:
    """The Debian archive address in these apt sources (not the security archive), or None."""
    for text in texts:
        # one-line format: deb [opts] URI suite ...; deb822: URIs: URI
        for uri in re.findall(r"^\s*deb(?:-src)?\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M) + \
                re.findall(r"^\s*URIs:\s*(\S+)", text, re.M):
            if re.search(r"/debian/?$", uri) and "security" not in uri:
                return uri.rstrip("/")
    return None


def from_debian(series: str, dest: Path) -> Path:
    """Upstream's tarball as Debian 13 ships it, via apt with private sources, lists and cache."""
    if not shutil.which("apt-get"):
        sys.exit("neither python.org nor apt-get is available: set PYTHON_FT or fetch a tarball by hand")
    if not Path(KEYRING).exists():
        sys.exit(f"{KEYRING} is missing: apt-get install debian-archive-keyring")
    uri = debian_archive_uri(apt_sources())
    if uri is None:
        sys.exit("no Debian archive found in /etc/apt/sources.list{,.d/}: cannot fetch the CPython source")
    state = dest / "apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    sources = state / "sources.list"
    sources.write_text(f"deb-src [signed-by={KEYRING}] {uri} {DEBIAN_SUITE} main\n")
    private = ["-o", f"Dir::Etc::sourcelist={sources}", "-o", "Dir::Etc::sourceparts=-",
               "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
               "-o", "APT::Sandbox::User=root"]  # _apt cannot write into a root-owned private dir
    say(f"fetching python{series} source from {uri} ({DEBIAN_SUITE}) with a private apt state in {state}")
    subprocess.run(["apt-get", "-qq", *private, "update"], check=True)
    subprocess.run(["apt-get", "-qq", *private, "source", "--download-only", f"python{series}"], cwd=dest, check=True)
    tarballs = sorted(dest.glob(f"python{series}_{series}.*.orig.tar.xz"))
    if not tarballs:
        sys.exit(f"apt-get source gave no python{series}_*.orig.tar.xz in {dest}")
    return tarballs[-1]


def source_tarball(series: str, dest: Path) -> Path:
    return from_python_org(series, dest) or from_debian(series, dest)


# --- building -------------------------------------------------------------------------------
def locked(cmd: list[str], **kwargs) -> None:
    """Run one build step under the measurement lock (waits while a benchmark run holds it)."""
    subprocess.run(["flock", LOCK, *cmd], check=True, **kwargs)


def build(source: Path, prefix: Path, free_threaded: bool, log: Path) -> float:
    """Configure, compile and install one interpreter out of tree; return the seconds it took."""
    build_dir = prefix.parent / "build" / prefix.name
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    flags = [f"--prefix={prefix}", *CONFIGURE_FLAGS] + (["--disable-gil"] if free_threaded else [])
    say(f"building {prefix.name} ({' '.join(flags[1:])}), log in {log}")
    start = time.monotonic()
    with open(log, "w") as out:
        for step in ([str(source / "configure"), *flags], ["make", f"-j{JOBS}"], ["make", "install"]):
            try:
                locked(step, cwd=build_dir, stdout=out, stderr=subprocess.STDOUT)
            except subprocess.CalledProcessError:
                sys.exit(f"{' '.join(step[:2])} failed for {prefix.name}; see {log}")
    seconds = time.monotonic() - start
    shutil.rmtree(build_dir, ignore_errors=True)
    return seconds


def existing(series: str, with_gil_twin: bool) -> list[Path] | None:
    """A working earlier build of the series (and its GIL twin), so that nothing is fetched again."""
    newest_first = sorted(INTERPRETERS.glob(f"cpython-{series}.*t"), reverse=True,
                          key=lambda prefix: [int(n) for n in re.findall(r"\d+", prefix.name)])
    for ft_prefix in newest_first:
        pythons = [ft_prefix / "bin" / f"python{series}t"]
        if with_gil_twin:
            pythons.append(ft_prefix.with_name(ft_prefix.name[:-1]) / "bin" / f"python{series}")
        if all(probe(str(python)) for python in pythons):
            return pythons
    return None


def build_pair(series: str, with_gil_twin: bool = True) -> list[Path]:
    found = existing(series, with_gil_twin)
    if found:
        say(f"already built: {', '.join(str(p.relative_to(ROOT)) for p in found)}")
        return found
    check_build_dependencies()
    INTERPRETERS.mkdir(exist_ok=True)
    downloads = INTERPRETERS / "downloads"
    downloads.mkdir(exist_ok=True)
    tarball = source_tarball(series, downloads)
    version = re.search(rf"({re.escape(series)}\.\d+)", tarball.name).group(1)
    say(f"source: {tarball.name} (CPython {version})")
    src_root = INTERPRETERS / "src"
    src = src_root / f"Python-{version}"
    if not (src / "configure").exists():
        src_root.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir=src_root) as tmp, tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
            shutil.rmtree(src, ignore_errors=True)
            (Path(tmp) / f"Python-{version}").rename(src)
    records = json.loads(BUILDS_JSON.read_text()) if BUILDS_JSON.exists() else {}
    pythons = []
    for free_threaded in (True, False) if with_gil_twin else (True,):
        name = f"cpython-{version}" + ("t" if free_threaded else "")
        prefix = INTERPRETERS / name
        python = prefix / "bin" / f"python{series}{'t' if free_threaded else ''}"
        if probe(str(python)) is None:
            seconds = build(src, prefix, free_threaded, INTERPRETERS / f"{name}.build.log")
            records[name] = {"python": str(python.relative_to(ROOT)), "version": version,
                             "free_threaded": free_threaded, "source": tarball.name,
                             "configure": CONFIGURE_FLAGS + (["--disable-gil"] if free_threaded else []),
                             "build_seconds": round(seconds),
                             "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            BUILDS_JSON.write_text(json.dumps(records, indent=2) + "\n")
            say(f"{name} built in {seconds:.0f} s: {python}")
        else:
            say(f"{name} already built: {python}")
        pythons.append(python)
    return pythons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default=SERIES, help=f"CPython series to build (default {SERIES})")
    parser.add_argument("--build", action="store_true", help="build even when a free-threaded python is given or found")
    parser.add_argument("--free-threaded-only", action="store_true", help="skip the GIL twin (CI: one build, not two)")
    args = parser.parse_args()
    existing = None if args.build else given_or_on_path()
    if existing:
        say(f"using {existing} (nothing to build; the matrix picks it up from PYTHON_FT or PATH)")
        return
    for python in build_pair(args.series, with_gil_twin=not args.free_threaded_only):
        info = probe(str(python))
        say(f"ready: {python} (CPython {info['version']}, free-threaded: {info['free_threaded']})")


if __name__ == "__main__":
    main()
