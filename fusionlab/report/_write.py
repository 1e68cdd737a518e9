"""Atomic writes: a reader (or a crash) never sees half a report file."""
from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    return _replace(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_figure(figure: Figure, path: Path) -> Path:
    """Save ``figure`` in the format named by ``path``'s suffix (``.pdf`` / ``.png``)."""
    return _replace(path, lambda tmp: figure.savefig(tmp, format=path.suffix[1:], dpi=200))


def _replace(path: Path, write) -> Path:
    # A pid-named sibling rather than mkstemp: mkstemp's 0600 mode would survive os.replace.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
