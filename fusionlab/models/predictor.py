"""Prompted prediction on one image, mirroring the official EfficientViT-SAM predictor."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from fusionlab.errors import FusionlabError
from fusionlab.models.sam import EfficientViTSam


class Predictor:
    """Set an image (and its depth) once, then predict masks for prompts.

    Pre- and post-processing follow the official predictor: the image goes into the encoder
    with its long side at ``image_size[1]``; prompt coordinates, given in original pixels, are
    scaled to the prompt frame (long side ``image_size[0]``); masks come back at the original
    size.
    """

    def __init__(self, model: EfficientViTSam):
        self.model = model
        self.reset_image()

    def reset_image(self) -> None:
        self.features: Optional[torch.Tensor] = None
        self.original_size: Optional[Tuple[int, int]] = None
        self.input_size: Optional[Tuple[int, int]] = None

    @torch.no_grad()
    def set_image(self, image: np.ndarray, depth: Optional[np.ndarray] = None) -> None:
        """Encode ``image`` ``(H, W, 3)`` uint8 RGB and, for an RGB-D model, ``depth`` ``(H, W)`` in [0, 1]."""
        self.reset_image()
        images = self.model.preprocess(image)[None].to(self.model.device)
        depths = None
        if self.model.has_depth:
            if depth is None:
                raise FusionlabError("this RGB-D model needs a depth map: pass depth=(H, W) array in [0, 1]")
            depths = self.model.preprocess_depth(depth, image.shape[:2])[None].to(self.model.device)
        self.original_size = tuple(image.shape[:2])
        self.input_size = self.model.resized_shape(*self.original_size, self.model.image_size[0])
        self.features = self.model.encode(images, depths)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """``(..., 2)`` xy in original pixels → the prompt frame."""
        old_h, old_w = self.original_size
        new_h, new_w = self.input_size
        coords = np.array(coords, dtype=float, copy=True)
        coords[..., 0] *= new_w / old_w
        coords[..., 1] *= new_h / old_h
        return coords

    def apply_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """``(..., 4)`` xyxy in original pixels → the prompt frame."""
        return self.apply_coords(np.asarray(boxes, dtype=float).reshape(-1, 2, 2)).reshape(-1, 4)

    def predict(self, point_coords: Optional[np.ndarray] = None, point_labels: Optional[np.ndarray] = None,
                box: Optional[np.ndarray] = None, mask_input: Optional[np.ndarray] = None,
                multimask_output: bool = True, return_logits: bool = False
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt set, in original pixel coordinates.

        Args:
            point_coords: ``(P, 2)`` xy; point_labels: ``(P,)`` 1 foreground / 0 background.
            box: ``(4,)`` xyxy. mask_input: ``(1, 4·grid, 4·grid)`` low-res logits.
        Returns:
            masks ``(M, H, W)`` (bool, or float logits with ``return_logits``), IoU predictions
            ``(M,)`` and low-res logits ``(M, 4·grid, 4·grid)``.
        """
        if self.features is None:
            raise FusionlabError("no image is set: call set_image(image) before predict()")
        points = boxes = masks = None
        if point_coords is not None:
            if point_labels is None:
                raise FusionlabError("point_coords need point_labels (1 = foreground, 0 = background)")
            coords = np.asarray(point_coords, dtype=float).reshape(-1, 2)
            labels = np.asarray(point_labels).reshape(-1)
            if len(coords) != len(labels):
                raise FusionlabError(f"{len(coords)} points but {len(labels)} labels; expected one label per point")
            self._check_inside(coords, "point")
            points = (torch.as_tensor(self.apply_coords(coords), dtype=torch.float, device=self.model.device)[None],
                      torch.as_tensor(labels, dtype=torch.int, device=self.model.device)[None])
        if box is not None:
            box = np.asarray(box, dtype=float).reshape(-1)
            if box.shape != (4,) or box[2] < box[0] or box[3] < box[1]:
                raise FusionlabError(f"box must be x0,y0,x1,y1 with x0<=x1 and y0<=y1; got {box.tolist()}")
            self._check_inside(box.reshape(2, 2), "box corner")
            boxes = torch.as_tensor(self.apply_boxes(box), dtype=torch.float, device=self.model.device)
        if mask_input is not None:
            masks = torch.as_tensor(mask_input, dtype=torch.float, device=self.model.device)[None]
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
        masks = self.model.postprocess_masks(low_res, self.input_size, self.original_size)
        if not return_logits:
            masks = masks > self.model.mask_threshold
        return masks, iou, low_res

    def _check_inside(self, coords: np.ndarray, what: str) -> None:
        height, width = self.original_size
        outside = (coords[:, 0] < 0) | (coords[:, 0] > width) | (coords[:, 1] < 0) | (coords[:, 1] > height)
        if outside.any():
            x, y = coords[outside][0]
            raise FusionlabError(f"{what} ({x:g}, {y:g}) is outside the {width}×{height} image; "
                                 f"expected 0<=x<={width}, 0<=y<={height}")
