"""The report side of the suite: runs in, pages, tables, plots and CSVs out (see report.py)."""
