"""Writing the report without ever leaving a half-written or unreadable one.

Everything is rendered in memory first; only then is each file written beside its target
and renamed over it. Files get the modes the umask gives (not mkstemp's 0600); the README
keeps its own mode. Plots and claim pages that this build did not produce are removed.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

PAGE = re.compile(r"^[A-Z]+[0-9]+\.(md|html)$")


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, content: bytes | str, mode: int | None = None) -> None:
    """Write next to the target, then rename over it: a reader never sees half a file."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode if mode is not None else 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_all(files: dict[Path, bytes | str], owned: dict[Path, re.Pattern]) -> list[Path]:
    """Write `files`; then remove, in each owned folder, files matching its pattern that were not written."""
    for path, content in files.items():
        write_atomic(path, content)
    removed = []
    for folder, pattern in owned.items():
        if not folder.is_dir():
            continue
        for old in folder.iterdir():
            if old.is_file() and pattern.match(old.name) and old not in files:
                old.unlink()
                removed.append(old)
    return removed


def write_keeping_mode(path: Path, text: str) -> None:
    write_atomic(path, text, mode=path.stat().st_mode & 0o7777)
