"""The interface every fusionlab dataset keeps, and the decoding they share.

A dataset is a sequence of :class:`~fusionlab.data.types.Sample`: ``len(ds)``, ``ds[i]``,
``ds.image_ids``, ``ds.image_path(i)``, ``ds.describe()``, ``ds.name``, ``ds.has_depth``,
``ds.depth_root`` and ``ds.size_thresholds``. Subclasses say where image ``i`` and its
COCO-style annotation dicts are (:meth:`InstanceDataset._record`); this base decodes the
image, the depth and the masks, drops crowd and tiny instances, and samples up to
``max_instances`` of the rest.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from pycocotools import mask as mask_utils

from fusionlab.data.io import find_depth_file, read_depth, read_image
from fusionlab.data.prompts import mask_to_box
from fusionlab.data.types import Instance, Sample
from fusionlab.errors import FusionlabError

# COCO's size buckets (annotation area in pixels): small < 32**2 <= medium < 96**2 <= large.
COCO_SIZE_THRESHOLDS: Tuple[float, float] = (32.0 ** 2, 96.0 ** 2)

# Annotation keys that become Instance fields (or are dropped); any other key is an attribute.
_STANDARD_KEYS = frozenset({"id", "image_id", "segmentation", "area", "bbox", "iscrowd"})


@dataclass
class ImageRecord:
    """Where one image is and what is annotated on it.

    Attributes:
        image_id: the image id.
        file_name: the image's path relative to the image root.
        height, width: the size the annotations were made for.
        annotations: COCO-style annotation dicts (``segmentation``, ``area``, ``bbox``, ...).
        source: the file the annotations come from, quoted in errors.
    """

    image_id: int
    file_name: str
    height: int
    width: int
    annotations: List[dict]
    source: str


class InstanceDataset:
    """Base class of the instance-segmentation datasets.

    Args:
        images: the folder image file names are relative to.
        depth_root: a folder of depth files named after the images (same relative path and
            stem, see :mod:`fusionlab.data.io` for formats and units), or None.
        depth_scale: metres per stored depth unit; None: 0.001 for integer files, 1 for float.
        max_instances: keep at most this many instances per image, drawn without replacement
            (the official training recipe uses 64); None keeps all.
        min_area: instances whose annotated area is below this (pixels) are skipped.
        seed: with the index, fixes which instances ``max_instances`` keeps.
    """

    size_thresholds: Tuple[float, float] = COCO_SIZE_THRESHOLDS

    def __init__(self, images: Path, depth_root: Optional[Path] = None, depth_scale: Optional[float] = None,
                 max_instances: Optional[int] = None, min_area: float = 1.0, seed: int = 0):
        if max_instances is not None and int(max_instances) < 1:
            raise ValueError(f"max_instances must be None or >= 1, got {max_instances}")
        self.images = Path(images)
        self.depth_root = Path(depth_root) if depth_root is not None else None
        self.depth_scale = depth_scale
        self.max_instances = None if max_instances is None else int(max_instances)
        self.min_area = float(min_area)
        self.seed = int(seed)

    # --- what subclasses provide -------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    @property
    def image_ids(self) -> List[int]:
        """The image id of every index, in index order."""
        raise NotImplementedError(f"{type(self).__name__} must implement image_ids")

    def file_name(self, index: int) -> str:
        """Image ``index``'s file name relative to :attr:`images`."""
        raise NotImplementedError(f"{type(self).__name__} must implement file_name")

    def _record(self, index: int) -> ImageRecord:
        raise NotImplementedError(f"{type(self).__name__} must implement _record")

    def describe(self) -> str:
        """One line for figure captions and logs."""
        raise NotImplementedError(f"{type(self).__name__} must implement describe")

    # --- shared behaviour ---------------------------------------------------------------
    @property
    def name(self) -> str:
        """The registry name (``"coco"``, ``"sa1b"``, ``"synthetic"``, ...)."""
        return getattr(type(self), "registry_name", type(self).__name__.lower())

    @property
    def has_depth(self) -> bool:
        """Whether the dataset brings its own depth (``Sample.depth`` is filled)."""
        return self.depth_root is not None

    def image_path(self, index: int) -> Path:
        return self.images / self.file_name(self._check_index(index))

    def __getitem__(self, index: int) -> Sample:
        """Image ``index`` decoded: RGB ``(H, W, 3)`` uint8, bool ``(H, W)`` masks, depth in metres."""
        index = self._check_index(index)
        record = self._record(index)
        hw = (record.height, record.width)
        image = read_image(self.images / record.file_name, expected_hw=hw)
        depth = None
        if self.depth_root is not None:
            depth = read_depth(find_depth_file(self.depth_root, record.file_name), hw, self.depth_scale)
        chosen = self._choose(self._eligible(record.annotations), index)
        instances = [inst for inst in (self._instance(ann, hw, record) for ann in chosen) if inst.mask.any()]
        return Sample(image_id=record.image_id, file_name=record.file_name, image=image,
                      instances=instances, depth=depth)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {self.name} dataset of {n} images")
        return index % n

    def _eligible(self, annotations: Sequence[dict]) -> List[dict]:
        return [a for a in annotations
                if not a.get("iscrowd", 0) and float(a.get("area", self.min_area)) >= self.min_area]

    def _choose(self, annotations: List[dict], index: int) -> List[dict]:
        """Up to ``max_instances`` annotations, the same ones for the same (seed, index)."""
        if self.max_instances is None or len(annotations) <= self.max_instances:
            return annotations
        rng = np.random.default_rng([self.seed, index])
        keep = np.sort(rng.choice(len(annotations), size=self.max_instances, replace=False))
        return [annotations[k] for k in keep]

    def _instance(self, ann: dict, hw: Tuple[int, int], record: ImageRecord) -> Instance:
        where = f"{record.source}: annotation {ann.get('id')!r} of image {record.file_name!r}"
        mask = decode_segmentation(ann.get("segmentation"), hw, where)
        area = float(ann["area"]) if "area" in ann else float(mask.sum())
        if "bbox" in ann and len(ann["bbox"]) == 4:
            x, y, w, h = (float(v) for v in ann["bbox"])
            box = np.array([x, y, x + w, y + h], dtype=np.float32)
        else:
            box = mask_to_box(mask) if mask.any() else np.zeros(4, np.float32)
        attributes: Dict[str, object] = {k: v for k, v in ann.items() if k not in _STANDARD_KEYS}
        return Instance(ann_id=int(ann.get("id", -1)), mask=mask, bbox_xyxy=box, area=area,
                        attributes=attributes)


def decode_segmentation(segmentation: object, hw: Tuple[int, int], where: str) -> np.ndarray:
    """A COCO ``segmentation`` as a ``(H, W)`` bool mask.

    Accepts the three COCO encodings: polygons (a list of flat ``[x0, y0, x1, y1, ...]``
    lists, merged), uncompressed RLE (``{"size": [h, w], "counts": [int, ...]}``) and
    compressed RLE (``counts`` a str or bytes, as in SA-1B and LVIS).

    Args:
        segmentation: the annotation's ``segmentation`` value.
        hw: ``(H, W)`` of the image.
        where: file and annotation quoted in the error of a malformed value.
    """
    height, width = hw
    try:
        if isinstance(segmentation, list):
            polygons = [p for p in segmentation if len(p) >= 6]  # fewer than 3 points has no area
            if not polygons:
                return np.zeros(hw, dtype=bool)
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
            rle = segmentation
        else:
            raise TypeError(f"got {type(segmentation).__name__}")
        with warnings.catch_warnings():
            # pycocotools' decoder trips numpy 2's __array__(copy=...) deprecation on every call.
            warnings.simplefilter("ignore", DeprecationWarning)
            mask = mask_utils.decode(rle)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise FusionlabError(f"{where}: bad 'segmentation' ({exc}); expected polygons, or RLE with "
                             f"'size' and 'counts'") from exc
    if mask.shape != (height, width):
        raise FusionlabError(f"{where}: segmentation is {mask.shape[0]}x{mask.shape[1]} (HxW) but the image is "
                             f"{height}x{width}")
    return mask.astype(bool)
