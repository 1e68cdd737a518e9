"""What a dataset hands the rest of fusionlab."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np


@dataclass
class Instance:
    """One annotated object of an image.

    Attributes:
        ann_id: the annotation id (unique within the dataset).
        mask: ``(H, W)`` bool, the object's visible pixels.
        bbox_xyxy: the ground-truth box in pixel coordinates ``(x0, y0, x1, y1)``.
        area: the annotation's area in pixels (COCO ``area``; size buckets use it).
        attributes: free extra facts, e.g. ``{"camouflaged": True}`` on the embedded data.
    """

    ann_id: int
    mask: np.ndarray
    bbox_xyxy: np.ndarray
    area: float
    attributes: Dict[str, object] = field(default_factory=dict)


@dataclass
class Sample:
    """One image with its instances.

    Attributes:
        image_id: the image id (unique within the dataset).
        file_name: the image's file name relative to the dataset's image root; depth
            files of a depth folder are named after it.
        image: ``(H, W, 3)`` uint8 RGB.
        instances: the annotated objects (possibly a sampled subset).
        depth: ``(H, W)`` float32 depth that comes with the dataset (sensor or rendered,
            metres), or None when it has none.
    """

    image_id: int
    file_name: str
    image: np.ndarray
    instances: List[Instance]
    depth: Optional[np.ndarray] = None
