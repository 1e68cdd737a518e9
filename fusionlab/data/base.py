"""The interface every fusionlab dataset keeps, and the decoding they share.

A dataset is a sequence of :class:`~fusionlab.data.types.Sample`: ``len(ds)``, ``ds[i]``,
``ds.image_ids``, ``ds.image_path(i)``, ``ds.describe()``, ``ds.name``, ``ds.has_depth``,
``ds.depth_root`` and ``ds.size_thresholds``. Subclasses say where image ``i`` and its
COCO-style annotation dicts are (:meth:`InstanceDataset._record`); this base refuses (or
skips) bad annotations, decodes the image, the depth and the masks, filters the instances
(see ``filter``) and samples up to ``max_instances`` of the rest.

Instance filtering (``filter``):

- ``official`` (the default) keeps what the official EfficientViT-SAM evaluation
  (``applications/efficientvit_sam/eval_efficientvit_sam_model.py``) keeps: every annotation
  with ``area >= min_area`` (it skips ``area < 1``), crowd ones included, and an empty mask
  too (its IoU is 0 whatever is predicted, as there).
- ``clean`` also drops crowd annotations (``iscrowd: 1``) and empty masks: fusionlab's
  earlier behaviour, the cleaner choice for training (which skips empty masks either way).

Polygons of fewer than 3 points are dropped when decoding in both: pycocotools rasterises
them to no pixel, so no mask changes (an annotation of only such polygons is empty).

A bad annotation is one whose ``bbox`` lies entirely outside its image, or whose ``area``
or ``bbox`` is zero while its mask is not empty: with ``bad_annotations="error"`` (the
default) it is a one-line error naming the annotation, the image and the file; with
``"skip"`` it is left out and the count is logged.
"""
from __future__ import annotations

import logging
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Sequence, Set, Tuple

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
InstanceFilter = Literal["official", "clean"]
FILTERS = typing.get_args(InstanceFilter)
BadAnnotations = Literal["error", "skip"]
BAD_ANNOTATIONS = typing.get_args(BadAnnotations)

log = logging.getLogger("fusionlab.data")


@dataclass
class ImageRecord:
    """Where one image is and what is annotated on it.

    Attributes:
        image_id: the image id.
        file_name: the image's path relative to the image root.
        height, width: the size the annotations were made for.
        annotations: COCO-style annotation dicts (``segmentation``, ``area``, ``bbox``, ...).
        source: the file the annotations come from, quoted in errors.
        depth_file: the image's own depth file, when its entry names one (else the depth
            file is found under ``depth_root`` by the image's name).
    """

    image_id: int
    file_name: str
    height: int
    width: int
    annotations: List[dict]
    source: str
    depth_file: Optional[Path] = None


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
        filter: ``"official"`` or ``"clean"`` (see the module docstring).
        bad_annotations: ``"error"`` or ``"skip"`` (see the module docstring).
    """

    size_thresholds: Tuple[float, float] = COCO_SIZE_THRESHOLDS

    def __init__(self, images: Path, depth_root: Optional[Path] = None, depth_scale: Optional[float] = None,
                 max_instances: Optional[int] = None, min_area: float = 1.0, seed: int = 0,
                 filter: InstanceFilter = "official", bad_annotations: BadAnnotations = "error"):
        if max_instances is not None and int(max_instances) < 1:
            raise FusionlabError(f"dataset {self.name!r}: max_instances={max_instances}; expected null or an "
                                 f"integer >= 1")
        self.images = Path(images)
        self.depth_root = Path(depth_root) if depth_root is not None else None
        self.depth_scale = depth_scale
        self.max_instances = None if max_instances is None else int(max_instances)
        self.min_area = float(min_area)
        self.seed = int(seed)
        self.instance_filter = self._choice("filter", filter, FILTERS)
        self.bad_annotations = self._choice("bad_annotations", bad_annotations, BAD_ANNOTATIONS)
        self._reported_skips: Set[int] = set()

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
        annotations, skipped = self._screen(record)
        if skipped and index not in self._reported_skips:  # once per image, not once per epoch
            self._reported_skips.add(index)
            log.warning("%s: skipped %d bad annotation(s) of image %s (bad_annotations: skip)", record.source,
                        skipped, record.image_id)
        chosen = self._choose(self._eligible(annotations), index)
        instances = [self._instance(ann, hw, record) for ann in chosen]
        if self.instance_filter == "clean":
            instances = [inst for inst in instances if inst.mask.any()]
        return Sample(image_id=record.image_id, file_name=record.file_name, image=image,
                      instances=instances, depth=self._depth(record))

    def image_sample(self, index: int) -> Sample:
        """Image ``index`` alone (no instances, no depth): what depth models and caches need, without
        decoding the masks."""
        index = self._check_index(index)
        record = self._record(index)
        image = read_image(self.images / record.file_name, expected_hw=(record.height, record.width))
        return Sample(image_id=record.image_id, file_name=record.file_name, image=image, instances=[], depth=None)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {self.name} dataset of {n} images")
        return index % n

    def _choice(self, option: str, value: str, choices: Sequence[str]) -> str:
        if value not in choices:
            raise FusionlabError(f"dataset {self.name!r}: {option}={value!r}; expected one of "
                                 f"{', '.join(choices)}")
        return value

    def _depth(self, record: ImageRecord) -> Optional[np.ndarray]:
        """The image's depth in metres: its ``depth_file``, else the file named after it under ``depth_root``."""
        hw = (record.height, record.width)
        if record.depth_file is not None:
            if not record.depth_file.is_file():
                raise FusionlabError(f"{record.source}: image {record.image_id}: depth_file {str(record.depth_file)!r} "
                                     f"not found; expected a depth file (16-bit PNG, .npy or TIFF) there")
            return read_depth(record.depth_file, hw, self.depth_scale)
        if self.depth_root is None:
            return None
        return read_depth(find_depth_file(self.depth_root, record.file_name), hw, self.depth_scale)

    def _screen(self, record: ImageRecord) -> Tuple[List[dict], int]:
        """The record's annotations less the bad ones, and how many were bad; the first bad one is
        an error unless ``bad_annotations`` is ``"skip"``."""
        kept = []
        for ann in record.annotations:
            where = (f"{record.source}: annotation {ann.get('id')!r} of image {record.image_id} "
                     f"({record.file_name!r})")
            reason = bad_annotation(ann, (record.height, record.width), where)
            if reason is None:
                kept.append(ann)
            elif self.bad_annotations == "error":
                raise FusionlabError(f"{where}: {reason}; fix the annotation, or set the dataset option "
                                     f"bad_annotations: skip to leave such annotations out")
        return kept, len(record.annotations) - len(kept)

    def _eligible(self, annotations: Sequence[dict]) -> List[dict]:
        """Annotations with ``area >= min_area``; without crowd ones when ``filter`` is ``"clean"``."""
        keep_crowd = self.instance_filter == "official"
        return [a for a in annotations
                if (keep_crowd or not a.get("iscrowd", 0)) and float(a.get("area", self.min_area)) >= self.min_area]

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


def bad_annotation(ann: dict, hw: Tuple[int, int], where: str) -> Optional[str]:
    """Why an annotation cannot be trusted, or None: its ``bbox`` ``[x, y, w, h]`` lies entirely
    outside the ``(H, W)`` image, or its ``area`` or ``bbox`` is zero while its mask is not empty.

    The mask is decoded only for a zero area or box, so screening a large set stays cheap.
    ``where`` names the annotation in a decoding error.
    """
    height, width = hw
    bbox = ann.get("bbox")
    zero_box = False
    if isinstance(bbox, (list, tuple)) and len(bbox) == 4:
        x, y, w, h = (float(v) for v in bbox)
        zero_box = w <= 0 or h <= 0
        if not zero_box and (x >= width or y >= height or x + w <= 0 or y + h <= 0):
            return f"bbox {bbox} lies entirely outside the {width}x{height} (WxH) image"
    zero_area = "area" in ann and float(ann["area"]) <= 0
    if zero_box or zero_area:
        pixels = int(decode_segmentation(ann.get("segmentation"), hw, where).sum())
        if pixels:
            what = f"bbox {bbox} has zero width or height" if zero_box else f"area is {ann['area']}"
            return f"{what} but its mask has {pixels} pixel(s)"
    return None


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


def image_sample(dataset: Any, index: int) -> Sample:
    """Image ``index`` of any dataset without its masks where the dataset can (its ``image_sample``), else whole."""
    only_image = getattr(dataset, "image_sample", None)
    return only_image(index) if only_image is not None else dataset[index]
