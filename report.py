#!/usr/bin/env python3
"""Turn pytest-benchmark runs of the experiment suite into published pages and tables.

    python report.py                         # every run under results/, report into results/
    python report.py DIR_A DIR_B --out OUT   # runs gathered from several machines, side by side
    python report.py --readme README.md      # also fill README's verdict block (leaves stale runs out)
    python report.py --compare A B           # two run files or environments: verdict flips first

Writes into --out (default results/): REPORT.md (index: environments, verdict matrix,
contents), claims/<ID>.md, the same pages as a static site in site/ (plots in site/plots/),
verdicts.csv, figures.csv and comparison.csv. Runs are grouped by the environment key in
each JSON and never merged (reporting/runs.py). Bad input (a missing path, truncated or
foreign JSON, a malformed extra_info, an unknown verdict, no catalogued claim at all) stops
the report with one line on stderr and exit status 2; no output file is touched.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import catalogue
from reporting import build
from reporting.compare_cli import compare
from reporting.schema import InputError

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="run files or folders (default: results/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="where the report goes (default: results/)")
    parser.add_argument("--readme", type=Path, help="also fill this file's verdicts block; implies --exclude-stale")
    parser.add_argument("--exclude-stale", action="store_true",
                        help="leave out runs whose commit predates changes to experiments/ or harness/")
    parser.add_argument("--include-stale", action="store_true", help="with --readme, keep stale runs (marked)")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"),
                        help="compare two run files or environments (slug or column key); prints Markdown")
    args = parser.parse_args(argv)
    paths = args.paths or [DEFAULT_RESULTS]
    exclude_stale = (args.exclude_stale or args.readme is not None) and not args.include_stale
    try:
        if args.compare:
            print(compare(paths, *args.compare))
            return 0
        report = build.prepare(paths, args.out, args.readme, exclude_stale)
        removed = build.write(report, args.out)
    except (InputError, catalogue.CatalogueError) as exc:
        print(f"report.py: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"report.py: {exc.filename or args.out}: cannot write: {exc.strerror}", file=sys.stderr)
        return 2
    measured = sum(1 for v in report.views if any(c.decided for c in v.cells))
    print(f"report.py: {measured}/{len(report.views)} claims decided in {len(report.cols)} environment(s); "
          f"wrote {args.out / 'REPORT.md'}, claims/, site/, verdicts.csv, figures.csv, comparison.csv"
          + (f"; removed {len(removed)} stale file(s)" if removed else "")
          + (f"; filled {args.readme}" if args.readme else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
