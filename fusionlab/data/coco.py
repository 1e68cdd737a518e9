"""COCO-format instance segmentation: COCO, LVIS, or any set written in that format."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Union

from fusionlab.data import register_dataset
from fusionlab.data.base import ImageRecord, InstanceDataset
from fusionlab.errors import FusionlabError

PathLike = Union[str, Path]


@register_dataset("coco")
class CocoDataset(InstanceDataset):
    """Images and instance masks from a COCO / LVIS instances JSON.

    Crowd annotations (``iscrowd: 1``) are skipped; LVIS images without ``file_name`` are
    found from their ``coco_url`` (``<split folder>/<name>`` under ``images``, else ``<name>``).

    Args:
        annotations: the instances JSON (``images``, ``annotations``; polygons, uncompressed
            or compressed RLE).
        images: the folder the images' ``file_name`` are relative to.
        depth_root: optional folder of depth files named after the images (same stem; 16-bit
            PNG in millimetres, ``.npy`` or TIFF float metres).
        depth_scale: metres per stored depth unit, overriding those defaults.
        max_instances: at most this many instances per image (sampled, see ``seed``).
        min_area: instances with annotated area below this (pixels) are skipped.
        seed: fixes the ``max_instances`` draw together with the index.
        skip_empty: leave out images with no usable instance (after crowd / area filtering).
    """

    def __init__(self, annotations: PathLike, images: PathLike, depth_root: Optional[PathLike] = None,
                 depth_scale: Optional[float] = None, max_instances: Optional[int] = None,
                 min_area: float = 1.0, seed: int = 0, skip_empty: bool = True):
        super().__init__(Path(images), depth_root=depth_root, depth_scale=depth_scale,
                         max_instances=max_instances, min_area=min_area, seed=seed)
        self.annotations = Path(annotations)
        content = _load_instances_json(self.annotations)
        by_image: Dict[int, List[dict]] = defaultdict(list)
        for ann in content["annotations"]:
            by_image[ann.get("image_id")].append(ann)
        self._records: List[ImageRecord] = []
        for position, image in enumerate(content["images"]):
            record = self._image_record(image, by_image.get(image.get("id"), []), position)
            if not skip_empty or self._eligible(record.annotations):
                self._records.append(record)

    def _image_record(self, image: dict, annotations: List[dict], position: int) -> ImageRecord:
        has_name = "file_name" in image or "coco_url" in image
        missing = [k for k in ("id", "height", "width") if k not in image] + ([] if has_name else ["file_name"])
        if missing:
            raise FusionlabError(f"{self.annotations}: images[{position}] lacks {missing[0]!r}; expected "
                                 f"'id', 'file_name' (or LVIS 'coco_url'), 'height' and 'width'")
        file_name = image.get("file_name") or self._file_name_from_url(image["coco_url"])
        return ImageRecord(image_id=int(image["id"]), file_name=file_name, height=int(image["height"]),
                           width=int(image["width"]), annotations=annotations, source=str(self.annotations))

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
        depth = f", depth from {self.depth_root}" if self.has_depth else ""
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
