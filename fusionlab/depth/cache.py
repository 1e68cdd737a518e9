"""The on-disk cache of raw depth maps (before normalisation), stored compactly.

Layout::

    <cache_dir>/<source>-<key>/key.json                       the recipe the key hashes, for humans
    <cache_dir>/<source>-<key>/<file_name stem>.<image>.npz   one map per image

``key`` is the first 16 hex digits of SHA-256 over the source's cache recipe plus the storage
format (:data:`FORMAT_VERSION`, :data:`STORAGE`) and the stored resolution (``long_side``),
JSON with sorted keys: everything that changes the map read back, so a changed source or format
never returns stale maps. ``<file_name stem>`` keeps the image's relative folders (``..``
dropped); ``<image>`` is 12 hex digits of BLAKE2b over the image's pixels and shape, so two
datasets that reuse a file name with other pixels get their own maps. Every write goes to a
temporary file in the same folder, then ``os.replace``: a crash never leaves half a map.

Storage: the map is shrunk (bilinear, antialiased, the model's own rounding of sizes) so that
its long side is at most ``long_side`` (default 1024, the long side of the released models'
prompt frame; the encoder never sees more than that; never enlarged), then min-max quantised to
uint16 codes (0..65535) saved with its float64 ``(min, max)`` in an uncompressed ``.npz`` (a
map's low bits are noise: zlib or 16-bit PNG saved 10-30 % for up to seconds of CPU per map).
Reading undoes both, resizing (bilinear) to the image's size.

Measured on synthetic disparity made as Depth Anything's are (a ramp and 20 sharp-edged discs
at short side 518 px, bilinearly enlarged to the image size); the error is the max abs error of
the min-max normalised map:

===========  ==============  ========================  ==========================================
image (HxW)  float32 before  stored now                round-trip error
===========  ==============  ========================  ==========================================
480 x 640    1.23 MB         615 KB (480 x 640)        7.7e-6 (half a code: 0.5 / 65535)
1500 x 2250  13.5 MB         1.40 MB (683 x 1024)      0.15 at the sharpest edges, mean 1.0e-3;
                                                       at the model's 1024-px input 0.061, mean 5.8e-4
===========  ==============  ========================  ==========================================

Above ``long_side`` the error is resampling: an edge a few pixels wide at the image's size
cannot be held by a 1024-px map; the model's 1024-px input blurs it too, so there the two
differ less.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from fusionlab.atomic import atomic_write_bytes
from fusionlab.data.transforms import resized_shape
from fusionlab.data.types import Sample
from fusionlab.errors import FusionlabError

FORMAT_VERSION = 2
STORAGE = "uint16 min-max codes + float64 (min, max), .npz, long side bounded"
DEFAULT_LONG_SIDE = 1024
CODE_MAX = np.iinfo(np.uint16).max


def default_cache_dir() -> Path:
    """``$FUSIONLAB_CACHE/depth``, else ``~/.cache/fusionlab/depth``."""
    root = os.environ.get("FUSIONLAB_CACHE")
    return Path(root) / "depth" if root else Path.home() / ".cache" / "fusionlab" / "depth"


def recipe_key(recipe: Dict[str, Any]) -> str:
    """16 hex digits of SHA-256 over the JSON of ``recipe`` (sorted keys)."""
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_fingerprint(image: np.ndarray) -> str:
    """12 hex digits of BLAKE2b over an ``(H, W, 3)`` image's shape and pixels."""
    digest = hashlib.blake2b(str(image.shape).encode(), digest_size=6)
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class DepthCache:
    """Raw maps of one source configuration, one ``.npz`` per image.

    Args:
        root: the cache folder (see :func:`default_cache_dir`).
        source: the source's registry name (readable prefix of the folder).
        recipe: everything that changes the raw map; hashed into the folder name.
        long_side: the stored maps' long side at most (never enlarged); None stores them at
            the image's size.
    """

    def __init__(self, root: Path, source: str, recipe: Dict[str, Any],
                 long_side: Optional[int] = DEFAULT_LONG_SIDE):
        self.long_side = long_side
        self.recipe = {"format": FORMAT_VERSION, "storage": STORAGE, "long_side": long_side, **recipe}
        self.key = recipe_key(self.recipe)
        self.folder = Path(root).expanduser() / f"{source}-{self.key}"

    def path(self, sample: Sample) -> Path:
        """Where ``sample``'s map lives (hashes the image: compute it once per use)."""
        stem = PurePosixPath(sample.file_name.replace("\\", "/")).with_suffix("")
        parts = [p for p in stem.parts if p not in ("..", ".", "/")]
        if not parts:
            raise FusionlabError(f"image {sample.image_id}: file_name {sample.file_name!r} cannot name a cache file")
        return self.folder.joinpath(*parts).with_name(f"{parts[-1]}.{image_fingerprint(sample.image)}.npz")

    def load(self, path: Path, size: Tuple[int, int]) -> Optional[np.ndarray]:
        """The cached raw map at ``path`` (from :meth:`path`) as float32 ``size = (H, W)``, or None if absent."""
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                codes, value_range = stored["codes"], stored["range"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise FusionlabError(f"{path}: unreadable cached depth map ({exc}); delete it to recompute") from exc
        return decode(codes, value_range, size)

    def save(self, path: Path, raw: np.ndarray) -> np.ndarray:
        """Store an ``(H, W)`` raw map at ``path``; returns it as :meth:`load` will read it back."""
        codes, value_range = encode(raw, self.long_side, str(path))
        key_file = self.folder / "key.json"
        if not key_file.is_file():
            atomic_write_bytes(key_file, json.dumps(self.recipe, indent=2, sort_keys=True, default=str).encode())
        buffer = io.BytesIO()
        np.savez(buffer, codes=codes, range=value_range)
        atomic_write_bytes(path, buffer.getvalue())
        return decode(codes, value_range, raw.shape)


def stored_size(size: Tuple[int, int], long_side: Optional[int]) -> Tuple[int, int]:
    """``(H, W)`` scaled so that the long side is at most ``long_side`` (never enlarged)."""
    if long_side is None or max(size) <= long_side:
        return tuple(size)
    return resized_shape(size[0], size[1], long_side)  # the model's own rounding: at 1024 px, its frame


def encode(raw: np.ndarray, long_side: Optional[int], where: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(codes, range)``: the ``(H, W)`` map shrunk to ``long_side`` as uint16 codes of
    ``(x - min) / (max - min)``, and float64 ``(min, max)``. A non-finite value is an error."""
    raw = np.asarray(raw, dtype=np.float32)
    bad = int((~np.isfinite(raw)).sum())
    if bad:
        raise FusionlabError(f"{where}: the raw map holds {bad} NaN/inf values; a depth model must predict "
                             f"finite maps")
    small = resize(raw, stored_size(raw.shape, long_side)).astype(np.float64)
    low, high = float(small.min()), float(small.max())
    if high > low:
        codes = np.rint((small - low) / (high - low) * CODE_MAX).astype(np.uint16)
    else:
        codes = np.zeros(small.shape, dtype=np.uint16)
    return codes, np.array([low, high], dtype=np.float64)


def decode(codes: np.ndarray, value_range: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """float32 ``size = (H, W)`` map of uint16 ``codes`` and their ``(min, max)``."""
    low, high = (float(v) for v in value_range)
    small = (low + codes.astype(np.float64) * ((high - low) / CODE_MAX)).astype(np.float32)
    return resize(small, tuple(size))


def resize(depth: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an ``(h, w)`` float32 map to ``size = (H, W)``, antialiased when shrinking."""
    if depth.shape == tuple(size):
        return depth
    shrink = size[0] < depth.shape[0] or size[1] < depth.shape[1]
    resized = F.interpolate(torch.from_numpy(np.ascontiguousarray(depth))[None, None], size=tuple(size),
                            mode="bilinear", align_corners=False, antialias=shrink)
    return resized[0, 0].numpy()
