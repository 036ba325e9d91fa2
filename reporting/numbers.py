"""Numbers people read: one unit style, no scientific notation, singular and plural right.

Every figure, threshold and interval in the pages and tables goes through ``fmt``; the CSVs
keep the raw numbers.
"""
from __future__ import annotations

import math
import re

SIGNIFICANT = 3
OP_SIGNS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "==": "=", "!=": "≠"}
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
TIME_STEPS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))
BYTE_UNITS = {"B": 1, "bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
BYTE_STEPS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1))
_WORD = re.compile(r"^[a-z][a-z-]+s$")
_METHOD = re.compile(r"^(\S+) \((.+)\)$")


def plain(value: float, significant: int = SIGNIFICANT) -> str:
    """`value` to `significant` digits in fixed notation, thousands separated: 11,500, 0.00189, 1.5."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    digits = significant - 1 - math.floor(math.log10(abs(value)))
    rounded = round(value, digits)
    if digits <= 0:
        return f"{int(rounded):,}"
    text = f"{rounded:,.{min(digits, 15)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def unit_word(unit: str, value) -> str:
    """'1 core', '2 cores': count nouns agree with their number; symbols (s, B, x) never change."""
    if unit and value == 1 and _WORD.match(unit):
        if unit.endswith("ies"):
            return unit[:-3] + "y"
        if unit.endswith(("ches", "shes", "sses", "xes")):
            return unit[:-2]
        return unit[:-1]
    return unit


def split_unit(unit: str) -> tuple[str, str]:
    """'us (batched back-to-back waits)' -> ('us', 'batched back-to-back waits'): a unit with its method."""
    match = _METHOD.match(unit or "")
    return (match.group(1), match.group(2)) if match else (unit, "")


def tick(value: float) -> str:
    """An axis tick: whole numbers exactly (1,024, not 1,020), others to three digits."""
    return f"{int(value):,}" if float(value).is_integer() else plain(value)


def scaled(value: float, unit: str) -> tuple[float, str]:
    """A time or byte figure in the largest unit it fills: (2.5e-6, 's') -> (2.5, 'µs')."""
    unit, method = split_unit(unit)
    if method:
        number, shown = scaled(value, unit)
        return number, f"{shown} ({method})"
    if unit in TIME_UNITS:
        seconds = value * TIME_UNITS[unit]
        for name, size in TIME_STEPS:
            if abs(seconds) >= size or name == "ns":
                return seconds / size, name
    if unit in BYTE_UNITS:
        count = value * BYTE_UNITS[unit]
        for name, size in BYTE_STEPS:
            if abs(count) >= size or name == "B":
                return count / size, name
    return value, unit


def fmt(value, unit: str = "") -> str:
    """A value with its unit, as a reader sees it in a table or a sentence."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return f"{value} {unit}".strip() if value is not None else "—"
    base, method = split_unit(unit)
    if method:
        return f"{fmt(value, base)} ({method})"
    number, unit = scaled(float(value), unit)
    if isinstance(value, int) and unit not in TIME_UNITS and unit not in BYTE_UNITS:
        text = f"{value:,}"
    else:
        text = plain(number)
    word = unit_word(unit, 1 if text == "1" else None)  # "1 core", also for 0.9999 shown as 1
    if word in ("x", "×"):
        return f"{text}×"
    return f"{text} {word}" if word else text


def fmt_range(low, high, unit: str = "") -> str:
    """Two ends of an interval in one unit: '1.2–1.5 ms'."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        return f"{fmt(low, unit)}–{fmt(high, unit)}"
    base, method = split_unit(unit)
    if method:
        return f"{fmt_range(low, high, base)} ({method})"
    ref = max(abs(float(low)), abs(float(high)))
    _, shown = scaled(ref, unit)
    factor = scaled(ref, unit)[0] / ref if ref else 1.0
    lo, hi = plain(float(low) * factor), plain(float(high) * factor)
    word = unit_word(shown, None)
    if word in ("x", "×"):
        return f"{lo}–{hi}×"
    return f"{lo}–{hi} {word}".strip()


def sort_key(value):
    """Params sorted as numbers where they are numbers: 100, 500, 1000, not 100, 1000, 500."""
    if isinstance(value, bool):
        return (1, str(value))
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    text = str(value)
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, text)


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun if count == 1 else noun + 's'}"
