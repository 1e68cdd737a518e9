"""Report files are written atomically: a reader (or a crash) never sees half a file."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from fusionlab.atomic import atomic_write, atomic_write_text


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write_text(path, text)


def save_figure(figure: Figure, path: Path) -> Path:
    """Save ``figure`` in the format named by ``path``'s suffix (``.pdf`` / ``.png``), atomically."""
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format=path.suffix[1:], dpi=200))
