"""Numbers in the catalogue's prose come from the runs: placeholders, filled in by the report.

A caveat (or a control) keeps its *why* in words; every number in it sits in a placeholder:

- ``{range:NAME}``: a figure's median, as its range over the runs the page shows (every
  environment), e.g. "1.7–1.9 cores"; one value where they agree.
- ``{figure:NAME}``: the same, but where a single run records it, with its 95% interval.
- ``{threshold:CHECK}``: the threshold a check was judged against, with its unit.
- ``{setting:NAME}``: an experiment's module constant, as the run recorded it.
- ``{env:KEY}``: a fact of the environments shown (cores, kernel, cpu, python).
- ``{fact:TEXT|SOURCE}``: a number from outside the runs (the notes, the OS, a library), with
  where it comes from: "8 MiB [glibc]".

NAME may be narrowed: ``NAME@PART`` keeps the parts whose name (test and parameters) contains
PART, and ``NAME!TRAIT`` (``!gil``, ``!no_gil``) keeps the environments with or without the
trait. A placeholder that finds nothing reads "n/m" and is listed by ``unresolved``, which
tests/test_published.py asserts is empty for the reference runs. ``bare_digits`` finds any
digit outside a placeholder; tests/test_catalogue.py asserts there is none in a caveat.

Writing a caveat: ``python -m reporting.placeholders ID [RUN_DIR_OR_JSON ...]`` prints the
claim's caveat and control filled from those runs (results/ by default), then any placeholder
they leave empty and any bare digit.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from harness import environment as envkey
from reporting.numbers import fmt, fmt_range

PLACEHOLDER = re.compile(r"\{(range|figure|threshold|setting|env|fact):([^{}]+)\}")
KINDS = ("range", "figure", "threshold", "setting", "env", "fact")
MISSING = "n/m"
ENV_FIELDS = {"cores": "cores", "kernel": "kernel", "cpu": "cpu_model", "python": "python", "arch": "machine"}


def bare_digits(text: str) -> list[str]:
    """The digits of `text` outside placeholders (an ID such as TH1 or IO3 is a name, not a number)."""
    outside = PLACEHOLDER.sub(" ", text)
    outside = re.sub(r"\b(?:EX|PR|TH|CO|CM|IO|IN|XX)\d+\b|\bPEP \d+\b", " ", outside)  # claim IDs and PEPs name things
    return re.findall(r"\S*\d\S*", outside)


def _split(arg: str) -> tuple[str, str | None, str | None]:
    """'NAME@PART!TRAIT' -> (NAME, PART, TRAIT)."""
    trait = None
    if "!" in arg:
        arg, trait = arg.split("!", 1)
    part = None
    if "@" in arg:
        arg, part = arg.split("@", 1)
    return arg.strip(), part, trait


def _cells(view, trait: str | None) -> list:
    if trait is None:
        return list(view.cells)
    if trait not in ("gil", "no_gil"):
        raise ValueError(f"unknown trait {trait!r} in a placeholder; use !gil or !no_gil")
    return [c for c in view.cells if ("no_gil" in envkey.traits(c.column.env)) == (trait == "no_gil")]


def _parts(view, part: str | None, trait: str | None) -> list[dict]:
    """The records of the parts that match: settled ones, and not-measured ones with the figures
    they measured before they stopped (a part not discriminating here still measured both worlds)."""
    found = []
    for c in _cells(view, trait):
        infos = [p.info for p in c.parts] + [m["evidence"] for m in c.missing if m.get("evidence")]
        found += [i for i in infos if part is None or part in i.get("part", "")]
    return found


def _figures(view, arg: str) -> list[dict]:
    name, part, trait = _split(arg)
    return [p["figures"][name] for p in _parts(view, part, trait) if name in (p.get("figures") or {})]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range(figs: list[dict]) -> str:
    values = [f["value"] for f in figs if _number(f.get("value"))]
    if not values:
        texts = sorted({fmt(f.get("value"), f.get("unit", "")) for f in figs})
        return ", ".join(texts) if texts else MISSING
    unit = figs[0].get("unit", "")
    low, high = min(values), max(values)
    return fmt(low, unit) if fmt(low, unit) == fmt(high, unit) else fmt_range(low, high, unit)


def _fill(kind: str, arg: str, view) -> str:
    if kind == "fact":
        text, _, source = arg.partition("|")
        return f"{text.strip()} [{source.strip()}]" if source.strip() else text.strip()
    if kind in ("range", "figure"):
        figs = _figures(view, arg)
        if kind == "figure" and len(figs) == 1 and figs[0].get("interval"):
            fig = figs[0]
            lo, hi = fig["interval"]
            return f"{fmt(fig['value'], fig.get('unit', ''))} (95% interval {fmt_range(lo, hi, fig.get('unit', ''))})"
        return _range(figs)
    if kind == "threshold":
        name, part, trait = _split(arg)
        found = sorted({fmt(c["threshold"], c.get("unit", "")) for p in _parts(view, part, trait)
                        for c in p.get("checks") or [] if c["name"] == name})
        return " and ".join(found) if found else MISSING
    if kind == "setting":
        name, part, trait = _split(arg)
        found = []
        for p in _parts(view, part, trait):
            value = (p.get("settings") or {}).get(name)
            if value is not None and fmt(value) not in found:
                found.append(fmt(value))
        return ", ".join(found) if found else MISSING
    if kind == "env":
        key = ENV_FIELDS.get(arg.strip())
        found = sorted({str(c.column.env.get(key)) for c in view.cells if key and c.column.env.get(key) is not None})
        return ", ".join(found) if found else MISSING
    raise ValueError(f"unknown placeholder kind {kind!r}")


def render(text: str, view) -> str:
    """`text` with every placeholder filled from the runs of `view` (a reporting.model.ClaimView)."""
    return PLACEHOLDER.sub(lambda m: _fill(m.group(1), m.group(2), view), text or "")


def unresolved(text: str, view) -> list[str]:
    """The placeholders of `text` that find nothing in `view`'s runs."""
    return [m.group(0) for m in PLACEHOLDER.finditer(text or "") if _fill(m.group(1), m.group(2), view) == MISSING]


def malformed(text: str) -> list[str]:
    """Braced words that look like a placeholder but are not one (a misspelt kind, no argument)."""
    return [m for m in re.findall(r"\{[a-z_]+:[^{}]*\}", text or "") if not PLACEHOLDER.fullmatch(m)]


def texts(claim) -> Iterable[tuple[str, str]]:
    """The catalogue prose that may carry placeholders: (field, text)."""
    for name in ("caveat", "control"):
        value = getattr(claim, name, "")
        if value:
            yield name, value


def main(argv: list[str] | None = None) -> int:
    import argparse
    from pathlib import Path

    from harness import catalogue
    from reporting import model, runs

    parser = argparse.ArgumentParser(prog="python -m reporting.placeholders", description=main.__doc__)
    parser.add_argument("claim")
    parser.add_argument("runs", nargs="*", type=Path, default=[Path("results")])
    parser.add_argument("--catalogue", type=Path, default=catalogue.CATALOGUE_PATH)
    args = parser.parse_args(argv)
    paths = [p for arg in args.runs for p in (sorted(arg.rglob("*.json")) if arg.is_dir() else [arg])]
    claims = catalogue.load(args.catalogue)
    claim = claims[args.claim]
    loaded = runs.load_runs(paths, None)
    view = next(v for v in model.views(claims, runs.columns(loaded)) if v.id == claim.id)
    problems = 0
    for field, text in texts(claim):
        print(f"{field}: {render(text, view)}\n")
        for p in unresolved(text, view) + malformed(text):
            print(f"  not filled: {p}")
            problems += 1
        if field == "caveat":
            for d in bare_digits(text):
                print(f"  bare number: {d}")
                problems += 1
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
