"""The embedded dataset: procedural RGB-D scenes where depth finds what RGB cannot.

Generated once per configuration (see :mod:`fusionlab.data.scenes` for the renderer), written
in COCO format, then read back through the ``coco`` loader with its depth folder::

    <cache root>/<config hash>/<split>/
        images/000000.png ...    RGB
        depth/000000.png ...     16-bit PNG, millimetres (read back as float32 metres)
        instances.json           COCO instances: compressed RLE (counts as str), area, bbox,
                                 iscrowd 0, category (shape), "camouflaged": true/false
        meta.json                the generator configuration and the size thresholds

The cache root is ``$FUSIONLAB_CACHE/synthetic`` when that variable is set, else
``~/.cache/fusionlab/synthetic``. The hash covers every option but ``split`` (train and val
of one configuration sit side by side) and the generator version, so a changed option or
renderer never reads stale files. A split is written to a temporary folder and renamed into
place: a folder that exists is complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from fusionlab.data import register_dataset
from fusionlab.data.coco import CocoDataset
from fusionlab.data.io import write_depth_png, write_rgb_png
from fusionlab.data.scenes import SHAPES, render_scene
from fusionlab.errors import FusionlabError
from fusionlab.typecheck import OutputPath

GENERATOR_VERSION = 2  # bump whenever the renderer's output changes
SPLITS: Dict[str, int] = {"train": 0, "val": 1}  # the split enters every image's seed
DEFAULT_NUM_IMAGES: Dict[str, int] = {"train": 200, "val": 50}
# COCO's buckets are absolute areas for images of about 640x480 pixels.
COCO_REFERENCE_AREA = 640 * 480


def synthetic_size_thresholds(image_size: int) -> Tuple[float, float]:
    """COCO's (32², 96²) small/large area thresholds scaled to a square ``image_size`` image.

    Scaled by image area / (640 x 480), so a bucket covers the same share of the image as it
    does on COCO: "small" keeps meaning "under 0.33 % of the picture". At 128 px the
    thresholds are (54.6, 491.5) px.
    """
    factor = image_size * image_size / COCO_REFERENCE_AREA
    return (32.0 ** 2 * factor, 96.0 ** 2 * factor)


def default_cache_root() -> Path:
    """``$FUSIONLAB_CACHE/synthetic``, else ``~/.cache/fusionlab/synthetic``."""
    base = os.environ.get("FUSIONLAB_CACHE")
    return Path(base) / "synthetic" if base else Path.home() / ".cache" / "fusionlab" / "synthetic"


@register_dataset("synthetic")
class SyntheticDataset(CocoDataset):
    """Procedural RGB-D instance segmentation, generated on first use and cached.

    Args:
        split: ``"train"`` or ``"val"`` (different scene seeds).
        num_images: images in the split; None gives 200 for train, 50 for val.
        image_size: side of the square images in pixels.
        camouflage: share of objects (in [0, 1]) that wear the background's texture and colour,
            so that only depth shows their outline; annotated ``"camouflaged": true``.
        objects_per_image: inclusive ``(min, max)`` objects placed per scene (occlusion may
            hide some entirely; those are not annotated).
        seed: the scene seed; also fixes the ``max_instances`` draw.
        root: the cache root (default :func:`default_cache_root`).
        max_instances: at most this many instances per image.
        min_area: instances with area below this (pixels) are skipped.

    ``size_thresholds`` are :func:`synthetic_size_thresholds` of ``image_size``; evaluation
    buckets small / medium / large with them instead of COCO's absolute 32² / 96².
    """

    def __init__(self, split: str = "train", num_images: Optional[int] = None, image_size: int = 128,
                 camouflage: float = 0.5, objects_per_image: Sequence[int] = (3, 8), seed: int = 0,
                 root: Optional[OutputPath] = None, max_instances: Optional[int] = None,
                 min_area: float = 1.0):
        self.config = _checked_config(split, num_images, image_size, camouflage, objects_per_image, seed)
        self.split = split
        self.folder = ensure_generated(self.config, Path(root) if root is not None else default_cache_root())
        super().__init__(self.folder / "instances.json", self.folder / "images", depth_root=self.folder / "depth",
                         max_instances=max_instances, min_area=min_area, seed=seed, skip_empty=False)
        self.size_thresholds = synthetic_size_thresholds(image_size)

    def describe(self) -> str:
        return (f"synthetic RGB-D scenes ({self.split}, {len(self)} images, {self.config['image_size']} px, "
                f"camouflage {self.config['camouflage']:g})")


def _checked_config(split: str, num_images: Optional[int], image_size: int, camouflage: float,
                    objects_per_image: Sequence[int], seed: int) -> dict:
    """The generator configuration as plain JSON values, every option checked.

    ``num_images`` stays None for the split's default, so that the default train and val sets
    share one configuration folder.
    """
    if split not in SPLITS:
        raise FusionlabError(f"synthetic dataset: split={split!r}; expected one of {', '.join(SPLITS)}")
    if num_images is not None and int(num_images) < 1:
        raise FusionlabError(f"synthetic dataset: num_images={num_images}; expected at least 1")
    if int(image_size) < 32:
        raise FusionlabError(f"synthetic dataset: image_size={image_size}; expected at least 32 pixels")
    if not 0.0 <= float(camouflage) <= 1.0:
        raise FusionlabError(f"synthetic dataset: camouflage={camouflage}; expected a share in [0, 1]")
    bounds = list(objects_per_image)
    if len(bounds) != 2 or not 1 <= int(bounds[0]) <= int(bounds[1]):
        raise FusionlabError(f"synthetic dataset: objects_per_image={objects_per_image!r}; expected "
                             f"[min, max] with 1 <= min <= max")
    return {"generator_version": GENERATOR_VERSION, "split": split,
            "num_images": None if num_images is None else int(num_images),
            "image_size": int(image_size), "camouflage": float(camouflage),
            "objects_per_image": [int(bounds[0]), int(bounds[1])], "seed": int(seed)}


def config_key(config: dict) -> str:
    """12 hex digits naming a configuration's cache folder (the split is a subfolder)."""
    shared = {k: v for k, v in config.items() if k != "split"}
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:12]


def ensure_generated(config: dict, cache_root: Path) -> Path:
    """The split folder of ``config`` under ``cache_root``, generated first if absent."""
    folder = cache_root / config_key(config) / config["split"]
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = folder.parent / f".{config['split']}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            write_split(config, temporary)
            os.rename(temporary, folder)
        except OSError:
            if not folder.is_dir():  # not a concurrent writer finishing first: a real failure
                raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    meta_path = folder / "meta.json"
    try:
        stored = json.loads(meta_path.read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError) as exc:
        raise FusionlabError(f"{meta_path}: unreadable synthetic-set metadata ({exc}); delete {folder} "
                             f"to regenerate it") from exc
    if stored != config:
        raise FusionlabError(f"{meta_path}: holds config {stored} but {config} was asked for; delete {folder} "
                             f"to regenerate it")
    return folder


def write_split(config: dict, folder: Path) -> None:
    """Render the scenes of ``config`` and write them in COCO format to ``folder``."""
    (folder / "images").mkdir(parents=True)
    (folder / "depth").mkdir()
    size = config["image_size"]
    images, annotations = [], []
    count = config["num_images"] or DEFAULT_NUM_IMAGES[config["split"]]
    for index in tqdm(range(count), desc=f"synthetic {config['split']}", leave=False):
        rng = np.random.default_rng([config["seed"], SPLITS[config["split"]], index])
        scene = render_scene(rng, size, config["camouflage"], tuple(config["objects_per_image"]))
        file_name = f"{index:06d}.png"
        write_rgb_png(folder / "images" / file_name, scene.rgb)
        write_depth_png(folder / "depth" / file_name, scene.depth)
        images.append({"id": index, "file_name": file_name, "height": size, "width": size})
        for mask, shape, camouflaged in zip(scene.masks, scene.shapes, scene.camouflaged):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            annotations.append({
                "id": len(annotations) + 1, "image_id": index, "category_id": SHAPES.index(shape) + 1,
                "segmentation": {"size": [size, size], "counts": rle["counts"].decode("ascii")},
                "area": int(mask.sum()), "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "iscrowd": 0, "camouflaged": camouflaged})
    thresholds = list(synthetic_size_thresholds(size))
    instances = {
        "info": {"description": "fusionlab synthetic RGB-D scenes", "size_thresholds": thresholds},
        "images": images, "annotations": annotations,
        "categories": [{"id": i + 1, "name": shape} for i, shape in enumerate(SHAPES)]}
    (folder / "instances.json").write_text(json.dumps(instances), encoding="utf-8")
    meta = {"config": config, "size_thresholds": thresholds, "depth_units": "16-bit PNG, millimetres"}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
