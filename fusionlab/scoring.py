"""What evaluation scores per instance beyond the mask IoU: Boundary IoU per prompt kind and the
instance's attributes, from masks alone (no model, no torch).

Evaluation (:mod:`fusionlab.evaluate`) calls :func:`score_image` with the masks it has just
predicted; rescoring (:mod:`fusionlab.rescore`) calls it with the masks a finished evaluation
saved, so both give the same numbers.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from fusionlab.attributes import instance_attributes
from fusionlab.boundary import band_width, boundary_iou

# Depth sources that are controls: they show the model other depth, so their maps are not the
# real depth that the attributes describe.
CONTROL_DEPTH_SOURCES = ("constant", "noise", "shuffled", "rgb")


def attribute_depth(dataset_depth: Optional[np.ndarray], model_depth: Optional[np.ndarray],
                    source: Optional[str]) -> Optional[np.ndarray]:
    """The real depth map of an image for the attributes: the dataset's own, else the one the model
    received when its ``source`` is not a control (:data:`CONTROL_DEPTH_SOURCES`), else None."""
    if dataset_depth is not None:
        return dataset_depth
    return model_depth if source is not None and source not in CONTROL_DEPTH_SOURCES else None


def score_image(image: np.ndarray, gt_masks: Sequence[np.ndarray], predicted: Dict[str, np.ndarray],
                depth: Optional[np.ndarray]) -> Dict[str, List[Dict[str, float]]]:
    """Per prompt kind, one ``{"biou", "rgb_edge", "depth_edge", "depth_contrast"}`` per instance.

    Args:
        image: ``(H, W, 3)`` uint8 RGB at its original size.
        gt_masks: N ``(H, W)`` bool ground-truth masks.
        predicted: prompt kind -> ``(N, h, w)`` bool predicted masks, in ``gt_masks`` order
            (``(h, w)`` below ``(H, W)`` is upsampled, see :func:`fusionlab.boundary.boundary_iou`).
        depth: ``(H, W)`` real depth for the attributes (:func:`attribute_depth`), or None.
    """
    width = band_width(*image.shape[:2])
    attributes = instance_attributes(image, gt_masks, depth)
    return {prompt: [{"biou": boundary_iou(gt, pred, width), **attrs}
                     for gt, pred, attrs in zip(gt_masks, masks, attributes)]
            for prompt, masks in predicted.items()}
