"""SA-1B, in its released layout: one folder of ``sa_<N>.jpg`` + ``sa_<N>.json`` pairs.

Each JSON holds ``{"image": {"image_id", "width", "height", "file_name", ...},
"annotations": [{"id", "segmentation": {"size": [h, w], "counts": str}, "bbox", "area", ...}]}``.
The JSONs are read when an image is asked for, so opening a folder of 11k images is quick.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional

from fusionlab.data import register_dataset
from fusionlab.data.base import BadAnnotations, ImageRecord, InstanceDataset, InstanceFilter
from fusionlab.errors import FusionlabError
from fusionlab.typecheck import InputPath

_STEM = re.compile(r"^sa_(\d+)$")


@register_dataset("sa1b")
class Sa1bDataset(InstanceDataset):
    """SA-1B images with their (compressed RLE) masks.

    Args:
        root: the folder of ``sa_<N>.jpg`` / ``sa_<N>.json`` pairs (other files are ignored).
        depth_root: optional folder of depth files ``sa_<N>.png|.npy|.tif`` (see
            :mod:`fusionlab.data.io` for units).
        depth_scale: metres per stored depth unit, overriding the format's default.
        image_list: optional text file naming the images to use, one per line (``sa_1.jpg`` or
            ``sa_1``; ``#`` comments allowed), e.g. the paper's 11.2k-image subset.
        max_images: use only the first N images (after ``image_list``, in N order).
        max_instances: at most this many masks per image (SA-1B has ~100; the recipe uses 64).
        min_area: masks with area below this (pixels) are skipped.
        seed: fixes the ``max_instances`` draw together with the index.
        filter: ``"official"`` (default) or ``"clean"`` (see :mod:`fusionlab.data.base`; SA-1B has
            no crowd annotations, so they differ only on an empty mask).
        bad_annotations: ``"error"`` (default) or ``"skip"``; checked when an image is read, the
            skipped count logged once per image.
    """

    def __init__(self, root: InputPath, depth_root: Optional[InputPath] = None, depth_scale: Optional[float] = None,
                 image_list: Optional[InputPath] = None, max_images: Optional[int] = None,
                 max_instances: Optional[int] = None, min_area: float = 1.0, seed: int = 0,
                 filter: InstanceFilter = "official", bad_annotations: BadAnnotations = "error"):
        super().__init__(Path(root), depth_root=depth_root, depth_scale=depth_scale,
                         max_instances=max_instances, min_area=min_area, seed=seed, filter=filter,
                         bad_annotations=bad_annotations)
        if not self.images.is_dir():
            raise FusionlabError(f"{self.images}: SA-1B folder not found; expected a folder of sa_<N>.jpg + "
                                 f"sa_<N>.json pairs")
        ids = {int(m.group(1)): p.stem for p in self.images.glob("sa_*.json") if (m := _STEM.match(p.stem))}
        if image_list is not None:
            ids = self._restrict(ids, Path(image_list))
        if not ids:
            raise FusionlabError(f"{self.images}: no sa_<N>.json annotation files; expected the SA-1B layout "
                                 f"(sa_<N>.jpg + sa_<N>.json)")
        self._ids = sorted(ids)[:max_images]
        self._stems = [ids[i] for i in self._ids]

    @staticmethod
    def _restrict(ids: dict, list_file: Path) -> dict:
        if not list_file.is_file():
            raise FusionlabError(f"{list_file}: image list not found; expected a text file of sa_<N> names")
        lines = [ln.strip() for ln in list_file.read_text(encoding="utf-8").splitlines()]
        wanted = [Path(ln).stem for ln in lines if ln and not ln.startswith("#")]
        by_stem = {stem: image_id for image_id, stem in ids.items()}
        absent = [stem for stem in wanted if stem not in by_stem]
        if absent:
            raise FusionlabError(f"{list_file}: {len(absent)} listed image(s) have no JSON in the folder, first "
                                 f"{absent[0]!r}; expected sa_<N> names present in the SA-1B folder")
        return {by_stem[stem]: stem for stem in wanted}

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def image_ids(self) -> List[int]:
        return list(self._ids)

    def file_name(self, index: int) -> str:
        return f"{self._stems[index]}.jpg"

    def _record(self, index: int) -> ImageRecord:
        path = self.images / f"{self._stems[index]}.json"
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
            image, annotations = content["image"], content["annotations"]
            height, width = int(image["height"]), int(image["width"])
        except FileNotFoundError as exc:
            raise FusionlabError(f"{path}: annotation file not found") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FusionlabError(f"{path}: not valid JSON ({exc}); expected an SA-1B annotation file") from exc
        except (KeyError, TypeError) as exc:
            raise FusionlabError(f"{path}: missing key {exc}; expected 'image' (with 'height', 'width') and "
                                 f"'annotations'") from exc
        return ImageRecord(image_id=self._ids[index], file_name=self.file_name(index), height=height,
                           width=width, annotations=list(annotations), source=str(path))

    def describe(self) -> str:
        depth = f", depth from {self.depth_root}" if self.has_depth else ""
        return f"SA-1B ({self.images.name}, {len(self)} images{depth})"
