"""Reading runs: files in, validated runs out, grouped into columns that are never merged.

A column is one environment (harness.environment's key) on one machine folder at one scale
(a full-scale run, saved under full-scale/, is a column of its own): runs are
grouped by the key recorded in each JSON, never by folder name, and when results from
several machines are gathered (one folder each), each folder keeps its own columns. Within
a column, each claim is reported from the newest run that selected it.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import catalogue, record, scale
from harness import environment as envkey
from reporting import schema
from reporting.schema import InputError

WATCHED = ("experiments", "harness")  # a run is stale once these changed after its commit


def full_scale_key(key: str) -> str:
    """The key of the full-scale column beside the quick column `key` (same machine folder and environment)."""
    return f"{key}@full"


@dataclass
class Run:
    path: Path
    data: dict
    origin: str = ""  # the machine folder it was gathered from ("" when there is one)
    stale: str = ""  # why the run is older than the code, or ""

    @property
    def env(self) -> dict:
        return self.data["environment"]

    @property
    def slug(self) -> str:
        return envkey.slug(self.env)

    @property
    def scale(self) -> str:
        """quick or full: the run's own word, else its parts' settings; quick when none says."""
        if self.data.get("scale") in scale.SCALES:
            return self.data["scale"]
        said = {(b.get("extra_info") or {}).get("settings", {}).get("scale") for b in self.benchmarks}
        return "full" if "full" in said else "quick"

    @property
    def column(self) -> str:
        key = f"{self.origin}/{self.slug}" if self.origin else self.slug
        return full_scale_key(key) if self.scale == "full" else key

    @property
    def datetime(self) -> str:
        return str(self.data.get("datetime", ""))

    @property
    def commit(self) -> str:
        return str((self.data.get("commit_info") or {}).get("id") or "")

    @property
    def benchmarks(self) -> list[dict]:
        return self.data["benchmarks"]

    @property
    def not_measured(self) -> list[dict]:
        return self.data.get("not_measured") or []

    def claims(self) -> set[str]:
        """Claims this run selected or recorded anything for."""
        found = set(self.data.get("claims_selected") or [])
        found |= {b["extra_info"]["claim"] for b in self.benchmarks if "claim" in (b.get("extra_info") or {})}
        found |= {m["claim"] for m in self.not_measured}
        return found


@dataclass
class Column:
    key: str
    env: dict
    origin: str
    runs: list[Run] = field(default_factory=list)  # oldest first
    scale: str = "quick"  # a full-scale column (a scaling run) never merges with a quick one

    @property
    def label(self) -> str:
        return envkey.label(self.env) + (", full scale" if self.scale == "full" else "")

    @property
    def anchor(self) -> str:
        return "env-" + "".join(ch if ch.isalnum() else "-" for ch in self.key.lower())

    @property
    def stale(self) -> bool:
        return any(r.stale for r in self.runs)

    @property
    def machine(self) -> str:
        e = self.env
        return f"{e['cpu_model']}, {e['cores']} cores, {e['system']} {e['kernel']} {e['machine']}"

    def newest_for(self, claim_id: str) -> Run | None:
        for run in reversed(self.runs):
            if claim_id in run.claims():
                return run
        return None


IDENTITY_WORDS = {"cpu_model": "{}", "cores": "{} cores", "kernel": "kernel {}", "machine": "{}", "system": "{}"}


def heading(col: Column, cols: list[Column]) -> str:
    """A column's name among others, never shared with another column's.

    Its environment, its machine folder when there are several, and, where two columns would
    still read alike (same interpreter on two machines in one folder), the machine fields that
    tell them apart (harness.environment.MACHINE_FIELDS).
    """
    def base(c: Column) -> str:
        machines = {x.origin for x in cols}
        return f"{c.label} ({c.origin})" if len(machines) > 1 and c.origin else c.label

    text = base(col)
    alike = [c for c in cols if base(c) == text]
    if len(alike) > 1:
        identities = [envkey.machine_identity(c.env) for c in alike]
        mine = envkey.machine_identity(col.env)
        words = [IDENTITY_WORDS[name].format(value) for i, (name, value) in enumerate(zip(envkey.MACHINE_FIELDS, mine))
                 if len({ident[i] for ident in identities}) > 1]
        text += f" ({', '.join(words)})" if words else f" ({col.key})"
    return text


def find_files(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(file, the root it was found under) for every run file named or under a named folder."""
    files = []
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.json") if p.is_file())
            files += [(p, path) for p in found]
        else:
            files.append((path, path.parent))
    if not files:
        raise InputError(f"{', '.join(map(str, paths))}: no pytest-benchmark JSON files here")
    return files


def read_json(path: Path) -> dict:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (binary data), so not pytest-benchmark JSON") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (truncated?): {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list) or "machine_info" not in data:
        raise InputError(f"{path}: JSON, but not a pytest-benchmark run (no 'benchmarks' list or 'machine_info')")
    return data


def load_run(path: Path, root: Path, several_roots: bool) -> Run | None:
    """The run, validated; None (with a warning) for a run of the older format without an environment."""
    data = read_json(path)
    try:
        fmt = record.format_of(data)
    except record.FormatError as exc:
        raise InputError(f"{path}: {exc}") from None
    if fmt is None:
        warn(f"{path}: ignored: an older run without an environment key (remake it with the current suite)")
        return None
    schema.environment(data["environment"], str(path))
    if not isinstance(data.get("not_measured", []), list):
        raise InputError(f"{path}: not_measured: must be a list")
    for bench in data["benchmarks"]:
        schema.benchmark(bench, str(path))
    for entry in data.get("not_measured") or []:
        schema.not_measured(entry, str(path))
    run = Run(path, data)
    run.origin = origin_of(path, root, run.slug, several_roots)
    return run


def origin_of(path: Path, root: Path, slug: str, several_roots: bool) -> str:
    """The machine folder a run was gathered from: the folders above its environment's folder."""
    try:
        parts = list(path.parent.relative_to(root).parts)
    except ValueError:
        parts = []
    prefix = parts[: parts.index(slug)] if slug in parts else []
    if prefix and prefix[-1] == scale.FULL_SCALE_FOLDER:  # a full-scale run's folder is not a machine's
        prefix = prefix[:-1]
    if several_roots:
        prefix = [root.resolve().name, *prefix]
    return "/".join(prefix)


def changed_since(commit: str, repo: Path) -> str:
    """Why a run at `commit` is stale ('' when experiments/ and harness/ are unchanged since)."""
    if not commit:
        return "the run names no commit"
    try:
        result = subprocess.run(["git", "-C", str(repo), "diff", "--quiet", commit, "HEAD", "--", *WATCHED],
                                capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""  # no git here: staleness cannot be judged, and is not claimed
    if result.returncode == 0:
        return ""
    if result.returncode == 1:
        return f"{'/ or '.join(WATCHED)}/ changed since its commit {commit[:10]}"
    if b"not a git repository" in result.stderr:
        return ""
    return f"its commit {commit[:10]} is not in this repository"


def load_runs(paths: list[Path], repo: Path | None) -> list[Run]:
    files = find_files(paths)
    several = len({root for _, root in files}) > 1
    runs = [r for r in (load_run(p, root, several) for p, root in files) if r is not None]
    if repo is not None:
        verdicts: dict[str, str] = {}
        for run in runs:
            if run.commit not in verdicts:
                verdicts[run.commit] = changed_since(run.commit, repo)
            run.stale = verdicts[run.commit]
    return sorted(runs, key=lambda r: (r.datetime, str(r.path)))


def columns(runs: list[Run]) -> list[Column]:
    """One column per (machine folder, environment key), in a stable order."""
    found: dict[str, Column] = {}
    for run in runs:
        col = found.setdefault(run.column, Column(run.column, run.env, run.origin, scale=run.scale))
        col.runs.append(run)
    order = lambda c: (c.scale != "quick", c.origin, c.env["implementation"], _version(c.env["python"]),
                       c.env["free_threaded"], c.env["gil"], c.key)
    return sorted(found.values(), key=order)


def _version(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in text.replace("+", ".").split(".")[:3])


def check_catalogued(runs: list[Run], claims: dict[str, catalogue.Claim], where: str) -> None:
    """Refuse a run that records claims the catalogue lacks, and a set of runs with no catalogued claim.

    A renamed or split claim must not publish every claim as not measured over a good report:
    the run is refused with the unknown IDs named, and nothing is written.
    """
    for run in runs:
        unknown = sorted(run.claims() - set(claims))
        if unknown:
            raise InputError(f"{run.path}: records claims not in catalogue.toml: {', '.join(unknown)}; "
                             "remake the run or restore the claims; nothing written")
    recorded = set().union(*(r.claims() for r in runs)) if runs else set()
    if not recorded & set(claims):
        raise InputError(f"{where}: no run records any claim of catalogue.toml; nothing written")


def warn(message: str) -> None:
    print(f"report.py: warning: {message}", file=sys.stderr)
