"""Reading and writing the image and depth files datasets are made of.

Depth units convention (everything fusionlab hands on is metres, float32):

- integer files (16-bit PNG, integer ``.npy`` / TIFF) hold millimetres by default
  (the Kinect / NYU / ScanNet habit): metres = value * 0.001;
- float files (``.npy``, ``.tif`` / ``.tiff``) hold metres by default: metres = value;
- ``depth_scale`` (metres per stored unit) overrides both defaults, e.g. 1/5000 for
  TUM RGB-D's 5000-per-metre PNGs, or 0.001 for float files in millimetres;
- 0 means "no measurement" and is kept as 0; NaN is rejected (a NaN would poison
  every normalisation downstream).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from fusionlab.atomic import atomic_write
from fusionlab.errors import FusionlabError

DEPTH_SUFFIXES: Tuple[str, ...] = (".png", ".npy", ".tif", ".tiff")
MM_PER_METRE = 1000.0


def read_image(path: Path, expected_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8 RGB (grey and RGBA are converted).

    Args:
        path: the image file.
        expected_hw: ``(H, W)`` the annotations were made for; a different size is an error.
    """
    if not path.is_file():
        raise FusionlabError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise FusionlabError(f"{path}: cannot decode image ({exc}); expected a readable PNG/JPEG") from exc
    if expected_hw is not None and rgb.shape[:2] != tuple(expected_hw):
        raise FusionlabError(f"{path}: image is {rgb.shape[0]}x{rgb.shape[1]} (HxW) but its annotation "
                             f"says {expected_hw[0]}x{expected_hw[1]}")
    return rgb


def find_depth_file(depth_root: Path, file_name: str) -> Path:
    """The depth file named after an image: same relative path and stem, any of :data:`DEPTH_SUFFIXES`."""
    stem = Path(file_name).with_suffix("")
    for suffix in DEPTH_SUFFIXES:
        candidate = depth_root / stem.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    raise FusionlabError(f"{depth_root / stem}.*: no depth file for image {file_name!r}; expected one of "
                         f"{', '.join(DEPTH_SUFFIXES)} with the image's stem")


def read_depth(path: Path, expected_hw: Optional[Tuple[int, int]] = None,
               depth_scale: Optional[float] = None) -> np.ndarray:
    """Read a depth file to ``(H, W)`` float32 metres (see the module docstring for units).

    Args:
        path: a ``.png`` (16-bit), ``.npy`` or ``.tif``/``.tiff`` file holding one channel.
        expected_hw: ``(H, W)`` of the image it belongs to; a different size is an error.
        depth_scale: metres per stored unit; None picks 0.001 for integer data, 1.0 for float.
    """
    raw = read_depth_array(path)
    if expected_hw is not None and raw.shape != tuple(expected_hw):
        raise FusionlabError(f"{path}: depth is {raw.shape[0]}x{raw.shape[1]} (HxW) but its image is "
                             f"{expected_hw[0]}x{expected_hw[1]}")
    if depth_scale is None:
        depth_scale = 1.0 / MM_PER_METRE if np.issubdtype(raw.dtype, np.integer) else 1.0
    depth = raw.astype(np.float32) * np.float32(depth_scale)
    if np.isnan(depth).any():
        raise FusionlabError(f"{path}: depth holds {int(np.isnan(depth).sum())} NaN values; "
                             f"expected finite depth (0 for no measurement)")
    return depth


def read_depth_array(path: Path) -> np.ndarray:
    """The raw 2-D numeric array of a depth file (16-bit or 8-bit grey PNG, ``.npy``, TIFF), unscaled."""
    if not path.is_file():
        raise FusionlabError(f"{path}: depth file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile
            array = tifffile.imread(path)
        else:
            with Image.open(path) as im:
                if im.mode not in ("I;16", "I;16B", "I", "L", "F"):
                    raise FusionlabError(f"{path}: PNG mode {im.mode}; expected a single-channel (16-bit or "
                                         f"8-bit grey) PNG")
                array = np.asarray(im)
    except FusionlabError:
        raise
    except Exception as exc:  # every decoder has its own exception types; all mean "unreadable"
        raise FusionlabError(f"{path}: cannot read depth ({type(exc).__name__}: {exc}); expected a 16-bit "
                             f"PNG, .npy or TIFF") from exc
    array = np.squeeze(array)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise FusionlabError(f"{path}: depth holds a {array.dtype} array of shape {array.shape}; expected one "
                             f"channel (H, W)")
    return array


def write_depth_png(path: Path, depth_m: np.ndarray) -> None:
    """Write ``(H, W)`` metres as a 16-bit PNG of millimetres (rounded, clipped to 0..65.535 m)."""
    mm = np.clip(np.rint(depth_m * MM_PER_METRE), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    atomic_write(path, lambda tmp: Image.fromarray(mm).save(tmp, format="PNG"))


def write_rgb_png(path: Path, rgb: np.ndarray) -> None:
    """Write ``(H, W, 3)`` uint8 RGB as PNG."""
    atomic_write(path, lambda tmp: Image.fromarray(rgb).save(tmp, format="PNG"))
