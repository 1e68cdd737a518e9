"""COCO-format instance segmentation: COCO, LVIS, or any set written in that format."""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

from fusionlab.data import register_dataset
from fusionlab.data.base import BadAnnotations, ImageRecord, InstanceDataset, InstanceFilter
from fusionlab.errors import FusionlabError
from fusionlab.typecheck import InputPath


log = logging.getLogger("fusionlab.data")


@register_dataset("coco")
class CocoDataset(InstanceDataset):
    """Images and instance masks from a COCO / LVIS instances JSON.

    LVIS images without ``file_name`` are found from their ``coco_url`` (``<split
    folder>/<name>`` under ``images``, else ``<name>``). An image entry may name its own depth
    file, ``"depth_file": "depth/0001.png"``: absolute, or relative to ``depth_root`` when
    given, else to the annotation file's folder. Images without one take the file named after
    them under ``depth_root`` (a set whose entries have ``depth_file`` only for some images
    needs ``depth_root``). Bad annotations are looked for when the file is read, so a bad
    one stops the run before it starts (see :mod:`fusionlab.data.base`).

    Args:
        annotations: the instances JSON (``images``, ``annotations``; polygons, uncompressed
            or compressed RLE).
        images: the folder the images' ``file_name`` are relative to.
        depth_root: optional folder of depth files named after the images (same relative path
            and stem; 16-bit PNG in millimetres, ``.npy`` or TIFF float metres), and the folder
            relative ``depth_file`` entries are resolved from.
        depth_scale: metres per stored depth unit, overriding those defaults.
        max_instances: at most this many instances per image (sampled, see ``seed``).
        min_area: instances with annotated area below this (pixels) are skipped.
        seed: fixes the ``max_instances`` draw together with the index.
        skip_empty: leave out images with no usable instance (after the area / crowd filter).
        filter: ``"official"`` (default: crowd annotations and empty masks are evaluated, as the
            official EfficientViT-SAM evaluation does) or ``"clean"`` (both dropped).
        bad_annotations: ``"error"`` (default) or ``"skip"`` (left out, the count logged) for
            annotations whose box lies outside the image or whose area or box is zero while
            the mask is not empty.
    """

    def __init__(self, annotations: InputPath, images: InputPath, depth_root: Optional[InputPath] = None,
                 depth_scale: Optional[float] = None, max_instances: Optional[int] = None,
                 min_area: float = 1.0, seed: int = 0, skip_empty: bool = True, filter: InstanceFilter = "official",
                 bad_annotations: BadAnnotations = "error"):
        super().__init__(Path(images), depth_root=depth_root, depth_scale=depth_scale,
                         max_instances=max_instances, min_area=min_area, seed=seed, filter=filter,
                         bad_annotations=bad_annotations)
        self.annotations = Path(annotations)
        content = _load_instances_json(self.annotations)
        by_image: Dict[int, List[dict]] = defaultdict(list)
        for ann in content["annotations"]:
            by_image[ann.get("image_id")].append(ann)
        records = [self._image_record(image, by_image.get(image.get("id"), []), position)
                   for position, image in enumerate(content["images"])]
        self._check_depth_files(records)
        self._depth_files = any(r.depth_file is not None for r in records)
        skipped = 0  # screened here, not only when read: a bad annotation stops the run before it starts
        for record in records:
            record.annotations, bad = self._screen(record)
            skipped += bad
        if skipped:
            log.warning("%s: skipped %d bad annotation(s) (box outside the image, or zero area or box with a "
                        "non-empty mask; bad_annotations: skip)", self.annotations, skipped)
        self._records = [r for r in records if not skip_empty or self._eligible(r.annotations)]

    def _image_record(self, image: dict, annotations: List[dict], position: int) -> ImageRecord:
        has_name = "file_name" in image or "coco_url" in image
        missing = [k for k in ("id", "height", "width") if k not in image] + ([] if has_name else ["file_name"])
        if missing:
            raise FusionlabError(f"{self.annotations}: images[{position}] lacks {missing[0]!r}; expected "
                                 f"'id', 'file_name' (or LVIS 'coco_url'), 'height' and 'width'")
        file_name = image.get("file_name") or self._file_name_from_url(image["coco_url"])
        depth_file = image.get("depth_file")
        if depth_file is not None and not (isinstance(depth_file, str) and depth_file):
            raise FusionlabError(f"{self.annotations}: images[{position}] (id {image['id']}): depth_file="
                                 f"{depth_file!r}; expected a non-empty path string")
        return ImageRecord(image_id=int(image["id"]), file_name=file_name, height=int(image["height"]),
                           width=int(image["width"]), annotations=annotations, source=str(self.annotations),
                           depth_file=None if depth_file is None else self._depth_path(depth_file))

    def _depth_path(self, depth_file: str) -> Path:
        """A ``depth_file`` entry as a path: absolute, or under ``depth_root``, else beside the JSON."""
        path = Path(depth_file).expanduser()
        if path.is_absolute():
            return path
        return (self.depth_root if self.depth_root is not None else self.annotations.parent) / path

    def _check_depth_files(self, records: List[ImageRecord]) -> None:
        """Without ``depth_root``, ``depth_file`` is all or nothing: an image with none would have no depth."""
        with_file = [r for r in records if r.depth_file is not None]
        lacking = next((r for r in records if r.depth_file is None), None)
        if with_file and lacking is not None and self.depth_root is None:
            raise FusionlabError(f"{self.annotations}: image {lacking.image_id} has no 'depth_file' while image "
                                 f"{with_file[0].image_id} has one; expected one for every image, or depth_root "
                                 f"(then images without one use the file named after them there)")

    @property
    def has_depth(self) -> bool:
        return self.depth_root is not None or self._depth_files

    def _file_name_from_url(self, url: str) -> str:
        parts = url.rstrip("/").split("/")
        with_folder = "/".join(parts[-2:])
        return with_folder if (self.images / with_folder).is_file() else parts[-1]

    def __len__(self) -> int:
        return len(self._records)

    @property
    def image_ids(self) -> List[int]:
        return [r.image_id for r in self._records]

    def file_name(self, index: int) -> str:
        return self._records[index].file_name

    def _record(self, index: int) -> ImageRecord:
        return self._records[index]

    def describe(self) -> str:
        depth = ""
        if self.depth_root is not None:
            depth = f", depth from {self.depth_root}"
        elif self.has_depth:
            depth = ", depth from depth_file entries"
        return f"COCO-format instances ({self.annotations.name}, {len(self)} images{depth})"


def _load_instances_json(path: Path) -> dict:
    """The parsed JSON, checked for the keys and the non-empty image list the loader needs."""
    if not path.is_file():
        raise FusionlabError(f"{path}: annotation file not found; expected a COCO/LVIS instances JSON")
    try:
        with path.open(encoding="utf-8") as f:
            content = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FusionlabError(f"{path}: not valid JSON ({exc}); expected a COCO/LVIS instances JSON") from exc
    if not isinstance(content, dict):
        raise FusionlabError(f"{path}: top level is a {type(content).__name__}; expected an object with "
                             f"'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(content.get(key), list):
            raise FusionlabError(f"{path}: missing or non-list key {key!r}; expected a COCO/LVIS instances "
                                 f"JSON with 'images' and 'annotations' lists")
    if not content["images"]:
        raise FusionlabError(f"{path}: 'images' is empty; expected at least one image")
    return content
