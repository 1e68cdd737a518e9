"""Prompted prediction on one image, mirroring the official EfficientViT-SAM predictor."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from fusionlab.data import transforms
from fusionlab.errors import FusionlabError
from fusionlab.models.checkpoint import DepthPreprocessing
from fusionlab.models.sam import EfficientViTSam


class Predictor:
    """Set an image (and its depth) once, then predict masks for prompts.

    Pre- and post-processing follow the official predictor (see :mod:`fusionlab.data.transforms`):
    the image goes into the encoder with its long side at ``image_size[1]``; prompt coordinates,
    given in original pixels, are scaled to the prompt frame (long side ``image_size[0]``); masks
    come back at the original size.

    Args:
        model: the (RGB or RGB-D) model, in eval mode.
        depth_preprocessing: how the model's depth maps were made from raw maps, as its
            checkpoint records it (:func:`~fusionlab.models.checkpoint.read_depth_preprocessing`);
            default: a depth source's defaults (raw depth → disparity, min-max to [0, 1]).
    """

    def __init__(self, model: EfficientViTSam, depth_preprocessing: Optional[DepthPreprocessing] = None):
        self.model = model
        self.depth_preprocessing = depth_preprocessing or DepthPreprocessing()
        self.reset_image()

    def reset_image(self) -> None:
        self.features: Optional[torch.Tensor] = None
        self.original_size: Optional[Tuple[int, int]] = None
        self.input_size: Optional[Tuple[int, int]] = None

    @torch.no_grad()
    def set_image(self, image: np.ndarray, depth: Optional[np.ndarray] = None, *,
                  raw_depth: Optional[np.ndarray] = None, depth_kind: Optional[str] = None) -> None:
        """Encode ``image`` and, for an RGB-D model, its depth, given one of two ways.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            depth: ``(H, W)`` map as the model's depth source makes it: normalised, in [0, 1]
                (any finite values when the recorded normalisation is ``none``).
            raw_depth: ``(H, W)`` raw map instead (e.g. metres or millimetres from a sensor;
                0 or NaN = no measurement), turned into the model's kind of map by
                :attr:`depth_preprocessing` (see :meth:`DepthPreprocessing.apply`).
            depth_kind: what ``raw_depth`` holds, ``"depth"`` (larger = farther) or
                ``"disparity"``; default: the kind the model's depth source read.

        An RGB-only model ignores depth.
        """
        self.reset_image()
        images = transforms.preprocess_image(image, self.model.image_size[1])[None].to(self.model.device)
        depths = None
        if self.model.has_depth:
            depth = self._normalised_depth(depth, raw_depth, depth_kind, image.shape[:2])
            depths = transforms.preprocess_depth(depth, self.model.image_size[1])[None].to(self.model.device)
        self.original_size = tuple(image.shape[:2])
        self.input_size = transforms.resized_shape(*self.original_size, self.model.image_size[0])
        self.features = self.model.encode(images, depths)

    def _normalised_depth(self, depth: Optional[np.ndarray], raw_depth: Optional[np.ndarray],
                          depth_kind: Optional[str], image_shape: Tuple[int, int]) -> np.ndarray:
        """The ``(H, W)`` map the depth branch takes, from ``depth`` or ``raw_depth``, checked."""
        if (depth is None) == (raw_depth is None):
            given = "both depth= and raw_depth=" if depth is not None else "none"
            raise FusionlabError(f"this RGB-D model needs one depth map, got {given}: pass depth=(H, W) "
                                 "normalised to [0, 1], or raw_depth=(H, W) sensor depth with depth_kind='depth'")
        if raw_depth is not None:
            transforms.check_depth_shape(raw_depth, image_shape, "raw_depth")
            return self.depth_preprocessing.apply(raw_depth, depth_kind)
        transforms.check_depth_shape(depth, image_shape)
        low, high = self.depth_preprocessing.value_range
        bad = ~np.isfinite(depth) | (depth < low) | (depth > high)
        if bad.any():
            span = "finite values" if high == np.inf else f"values in [{low:g}, {high:g}]"
            raise FusionlabError(
                f"depth map has {int(bad.sum())} NaN/inf or out-of-range value(s) (e.g. {depth[bad][0]:g}); "
                f"expected {span}, a map normalised as by {self.depth_preprocessing.describe()}; pass raw "
                "sensor depth as set_image(image, raw_depth=..., depth_kind='depth') to have it normalised")
        return depth

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """``(..., 2)`` xy in original pixels → the prompt frame."""
        return transforms.apply_coords(coords, self.original_size, self.model.image_size[0])

    def apply_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """``(..., 4)`` xyxy in original pixels → ``(N, 4)`` in the prompt frame."""
        return transforms.apply_boxes(boxes, self.original_size, self.model.image_size[0])

    def predict(self, point_coords: Optional[np.ndarray] = None, point_labels: Optional[np.ndarray] = None,
                box: Optional[np.ndarray] = None, mask_input: Optional[np.ndarray] = None,
                multimask_output: bool = True, return_logits: bool = False
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt set, in original pixel coordinates.

        Args:
            point_coords: ``(P, 2)`` xy; point_labels: ``(P,)`` 1 foreground / 0 background.
            box: ``(4,)`` xyxy. mask_input: ``(1, 4·grid, 4·grid)`` low-res logits (one of the
                ``low_res`` masks of an earlier call, e.g. ``low_res[best][None]``).
        Returns:
            masks ``(M, H, W)`` (bool, or float logits with ``return_logits``), IoU predictions
            ``(M,)`` and low-res logits ``(M, 4·grid, 4·grid)``.
        """
        if self.features is None:
            raise FusionlabError("no image is set: call set_image(image) before predict()")
        device = self.model.device
        points = boxes = masks = None
        if point_coords is not None:
            coords, labels = self._checked_points(point_coords, point_labels)
            points = (torch.as_tensor(self.apply_coords(coords), dtype=torch.float, device=device)[None],
                      torch.as_tensor(labels, dtype=torch.int, device=device)[None])
        if box is not None:
            box = np.asarray(box, dtype=float).reshape(-1)
            if box.shape != (4,) or not np.isfinite(box).all() or box[2] < box[0] or box[3] < box[1]:
                raise FusionlabError(f"box must be 4 finite numbers x0,y0,x1,y1 with x0<=x1 and y0<=y1; "
                                     f"got {box.tolist()}")
            self._check_inside(box.reshape(2, 2), "box corner")
            boxes = torch.as_tensor(self.apply_boxes(box), dtype=torch.float, device=device)
        if mask_input is not None:
            masks = torch.as_tensor(self._checked_mask_input(mask_input), dtype=torch.float, device=device)[None]
        out_masks, iou, low_res = self.predict_torch(points, boxes, masks, multimask_output, return_logits)
        return out_masks[0].cpu().numpy(), iou[0].cpu().numpy(), low_res[0].cpu().numpy()

    @torch.no_grad()
    def predict_torch(self, points=None, boxes=None, mask_input=None, multimask_output: bool = True,
                      return_logits: bool = False):
        """Batched prompts already in the prompt frame (see :meth:`EfficientViTSam.decode`);
        returns masks ``(N, M, H, W)``, IoU ``(N, M)``, low-res logits ``(N, M, h, w)``."""
        if self.features is None:
            raise FusionlabError("no image is set: call set_image(image) before predict()")
        low_res, iou = self.model.decode(self.features, points=points, boxes=boxes, mask_input=mask_input,
                                         multimask_output=multimask_output)
        masks = transforms.postprocess_masks(low_res, self.model.image_size[0], self.input_size, self.original_size)
        if not return_logits:
            masks = masks > self.model.mask_threshold
        return masks, iou, low_res

    def _checked_points(self, point_coords: np.ndarray, point_labels: Optional[np.ndarray]
                        ) -> Tuple[np.ndarray, np.ndarray]:
        """``(P, 2)`` finite coordinates inside the image and ``(P,)`` int labels, each 0 or 1."""
        if point_labels is None:
            raise FusionlabError("point_coords need point_labels (1 = foreground, 0 = background)")
        coords = np.asarray(point_coords, dtype=float).reshape(-1, 2)
        labels = np.asarray(point_labels, dtype=float).reshape(-1)
        if len(coords) != len(labels):
            raise FusionlabError(f"{len(coords)} points but {len(labels)} labels; expected one label per point")
        unfinite = ~np.isfinite(coords).all(axis=1)
        if unfinite.any():
            raise FusionlabError(f"point {coords[unfinite][0].tolist()} is not finite; expected x,y numbers")
        wrong = (labels != 0) & (labels != 1)
        if wrong.any():
            x, y = coords[wrong][0]
            raise FusionlabError(f"point ({x:g}, {y:g}) has label {labels[wrong][0]:g}; expected 1 (foreground) "
                                 "or 0 (background)")
        self._check_inside(coords, "point")
        return coords, labels.astype(int)

    def _checked_mask_input(self, mask_input: np.ndarray) -> np.ndarray:
        """``(1, 4·grid, 4·grid)`` finite low-res logits, else a one-line error giving that shape."""
        expected = (1, *self.model.prompt_encoder.mask_input_size)
        mask_input = np.asarray(mask_input, dtype=np.float32)
        if mask_input.shape != expected:
            raise FusionlabError(f"mask_input has shape {mask_input.shape}; expected {expected}, the low-res "
                                 "logits of one mask from an earlier predict() (low_res[i][None])")
        if not np.isfinite(mask_input).all():
            raise FusionlabError(f"mask_input has {int((~np.isfinite(mask_input)).sum())} NaN/inf values; "
                                 "expected finite logits")
        return mask_input

    def _check_inside(self, coords: np.ndarray, what: str) -> None:
        height, width = self.original_size
        outside = (coords[:, 0] < 0) | (coords[:, 0] > width) | (coords[:, 1] < 0) | (coords[:, 1] > height)
        if outside.any():
            x, y = coords[outside][0]
            raise FusionlabError(f"{what} ({x:g}, {y:g}) is outside the {width}×{height} image; "
                                 f"expected 0<=x<={width}, 0<=y<={height}")
