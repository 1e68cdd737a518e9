"""``file``: depth maps from a folder, one per image, named after the image."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Dict, Tuple

import numpy as np

from fusionlab.data.io import read_depth_array
from fusionlab.data.types import Sample
from fusionlab.depth.base import DepthSource, register_depth_source
from fusionlab.depth.normalize import Normalization, RawKind
from fusionlab.typecheck import InputPath
from fusionlab.errors import FusionlabError

EXTENSIONS = (".png", ".npy", ".tif", ".tiff")


@register_depth_source("file")
class FileDepth(DepthSource):
    """Maps read from ``<folder>/<file_name without extension>.<png|npy|tif|tiff>``.

    The image's relative folders are kept (``train/a.jpg`` -> ``<folder>/train/a.png``); when
    several extensions exist the first of png, npy, tif, tiff wins. PNGs are single-channel
    (16-bit or 8-bit); ``.npy`` and TIFF hold one 2-D array (singleton axes are dropped). A 0
    marks a pixel with no value (see :mod:`fusionlab.depth.normalize`); NaN or inf in a file
    is an error, since it means the file was written wrongly. The map must have the image's size.

    Args:
        folder: the folder of maps.
        raw: what the files hold, ``"depth"`` (larger = farther) or ``"disparity"``.
        scale: multiplies the stored values (e.g. 0.001 for millimetre PNGs); only
            ``normalize="none"`` sees it, the other normalisations are scale-free.
        output: ``"disparity"`` (near is bright) or ``"depth"``.
        normalize: ``"minmax"``, ``"median_mad"`` or ``"none"``.
    """

    def __init__(self, folder: InputPath, raw: RawKind = "depth", scale: float = 1.0, output: RawKind = "disparity",
                 normalize: Normalization = "minmax"):
        super().__init__(raw=raw, output=output, normalize=normalize)
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise FusionlabError(f"depth source 'file': folder {str(self.folder)!r} does not exist")
        self.scale = self.check_number("scale", scale, 0.0, low_open=True)

    def path(self, sample: Sample) -> Path:
        """The first existing candidate file of ``sample``; a missing file names the expected path."""
        stem = PurePosixPath(sample.file_name.replace("\\", "/")).with_suffix("")
        base = self.folder.joinpath(*[p for p in stem.parts if p not in ("..", ".", "/")])
        for extension in EXTENSIONS:
            candidate = base.with_name(base.name + extension)
            if candidate.is_file():
                return candidate
        raise FusionlabError(f"depth file missing for image {sample.file_name!r}: expected {base}.png "
                             f"(or {', '.join(EXTENSIONS[1:])})")

    def raw_map(self, sample: Sample, index: int) -> Tuple[np.ndarray, str]:
        path = self.path(sample)
        depth = read_depth_array(path).astype(np.float32)
        bad = int((~np.isfinite(depth)).sum())
        if bad:
            raise FusionlabError(f"{path}: {bad} NaN/inf values; depth files must be finite (write 0 where "
                                 f"there is no value)")
        return depth * np.float32(self.scale), str(path)

    def options(self) -> Dict[str, Any]:
        return {"folder": str(self.folder.resolve()), "raw": self.raw, "scale": self.scale,
                "output": self.output, "normalize": self.normalize}

    def describe(self) -> str:
        return f"{self.raw} files from {self.folder.name} ({self.output}, {self.normalize})"
