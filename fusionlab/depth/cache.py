"""The on-disk cache of raw depth maps (before normalisation).

Layout::

    <cache_dir>/<source>-<key>/key.json                       the recipe the key hashes, for humans
    <cache_dir>/<source>-<key>/<file_name stem>.<image>.npy   (H, W) raw map at the image's size

``key`` is the first 16 hex digits of SHA-256 over the source's cache recipe (JSON, sorted
keys): everything that changes the raw map, so a changed source never returns stale maps.
``<file_name stem>`` keeps the image's relative folders (``..`` dropped); ``<image>`` is
12 hex digits of BLAKE2b over the image's pixels and shape, so two datasets that reuse a
file name with other pixels get their own maps. Maps are float16 unless that loses more
than 0.1 % of the map's largest magnitude (tiny or huge raw scales), then float32. Every write goes to
a temporary file in the same folder, then ``os.replace``: a crash never leaves half a map.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Optional

import numpy as np

from fusionlab.atomic import atomic_write_bytes
from fusionlab.data.types import Sample
from fusionlab.errors import FusionlabError

FORMAT_VERSION = 1
FLOAT16_TOLERANCE = 1e-3


def default_cache_dir() -> Path:
    """``$FUSIONLAB_CACHE/depth``, else ``~/.cache/fusionlab/depth``."""
    root = os.environ.get("FUSIONLAB_CACHE")
    return Path(root) / "depth" if root else Path.home() / ".cache" / "fusionlab" / "depth"


def recipe_key(recipe: Dict[str, Any]) -> str:
    """16 hex digits of SHA-256 over the JSON of ``recipe`` (sorted keys) plus the format version."""
    text = json.dumps({"format": FORMAT_VERSION, **recipe}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_fingerprint(image: np.ndarray) -> str:
    """12 hex digits of BLAKE2b over an ``(H, W, 3)`` image's shape and pixels."""
    digest = hashlib.blake2b(str(image.shape).encode(), digest_size=6)
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class DepthCache:
    """Raw maps of one source configuration, one ``.npy`` per image.

    Args:
        root: the cache folder (see :func:`default_cache_dir`).
        source: the source's registry name (readable prefix of the folder).
        recipe: everything that changes the raw map; hashed into the folder name.
    """

    def __init__(self, root: Path, source: str, recipe: Dict[str, Any]):
        self.recipe = recipe
        self.key = recipe_key(recipe)
        self.folder = Path(root).expanduser() / f"{source}-{self.key}"

    def path(self, sample: Sample) -> Path:
        """Where ``sample``'s map lives (hashes the image: compute it once per use)."""
        stem = PurePosixPath(sample.file_name.replace("\\", "/")).with_suffix("")
        parts = [p for p in stem.parts if p not in ("..", ".", "/")]
        if not parts:
            raise FusionlabError(f"image {sample.image_id}: file_name {sample.file_name!r} cannot name a cache file")
        return self.folder.joinpath(*parts).with_name(f"{parts[-1]}.{image_fingerprint(sample.image)}.npy")

    def load(self, path: Path) -> Optional[np.ndarray]:
        """The cached ``(H, W)`` float32 raw map at ``path`` (from :meth:`path`), or None if there is none."""
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise FusionlabError(f"{path}: unreadable cached depth map ({exc}); delete it to recompute") from exc

    def save(self, path: Path, raw: np.ndarray) -> np.ndarray:
        """Store an ``(H, W)`` raw map at ``path``; returns it as read back (float16-rounded when stored so)."""
        stored = compact(raw)
        key_file = self.folder / "key.json"
        if not key_file.is_file():
            recipe = {"format": FORMAT_VERSION, **self.recipe}
            atomic_write_bytes(key_file, json.dumps(recipe, indent=2, sort_keys=True, default=str).encode())
        buffer = io.BytesIO()
        np.save(buffer, stored, allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())
        return stored.astype(np.float32)


def compact(raw: np.ndarray) -> np.ndarray:
    """``raw`` as float16 if that keeps every pixel within 0.1 % of the map's largest magnitude, else float32."""
    raw = np.asarray(raw, dtype=np.float32)
    half = raw.astype(np.float16)
    span = float(np.abs(raw).max()) if raw.size else 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        error = float(np.abs(half.astype(np.float32) - raw).max()) if raw.size else 0.0
    if np.isfinite(half).all() and error <= FLOAT16_TOLERANCE * span:
        return half
    return raw
