"""The model's input and output frames: the one copy of resizing, padding and normalising.

Plain functions (no model), so that DataLoader workers, the model, the training loader and
the predictor all run the same code. They follow the official EfficientViT-SAM predictor:

* the encoder input is a square of side ``size`` (``image_size[1]`` of the model): the image
  resized so its long side is ``size``, normalised with SAM's pixel mean/std, padded
  bottom-right with 0; depth and masks are resized and padded the same way;
* prompts live in the prompt frame, whose long side is ``long_side`` (``image_size[0]``);
  low-res mask logits are upsampled to that frame, cropped to the resized image and resized
  to the original image.

Raw depth (metres, disparity) becomes a normalised map in :mod:`fusionlab.depth.normalize`;
the functions here take the normalised map.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fusionlab.errors import FusionlabError

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def resized_shape(height: int, width: int, long_side: int) -> Tuple[int, int]:
    """The (h, w) of an image whose longest side is scaled to ``long_side`` (rounded half up)."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def prompt_scale(height: int, width: int, long_side: int) -> Tuple[float, float]:
    """``(sx, sy)`` taking ``(x, y)`` pixels of a ``height × width`` image to the prompt frame."""
    new_h, new_w = resized_shape(height, width, long_side)
    return new_w / width, new_h / height


def apply_coords(coords: np.ndarray, original_size: Tuple[int, int], long_side: int) -> np.ndarray:
    """``(..., 2)`` xy in pixels of an ``original_size = (H, W)`` image → float64 xy in the prompt frame."""
    scale_x, scale_y = prompt_scale(*original_size, long_side)
    coords = np.array(coords, dtype=float, copy=True)
    coords[..., 0] *= scale_x
    coords[..., 1] *= scale_y
    return coords


def apply_boxes(boxes: np.ndarray, original_size: Tuple[int, int], long_side: int) -> np.ndarray:
    """``(..., 4)`` xyxy in original pixels → ``(N, 4)`` float64 xyxy in the prompt frame."""
    corners = np.asarray(boxes, dtype=float).reshape(-1, 2, 2)
    return apply_coords(corners, original_size, long_side).reshape(-1, 4)


def preprocess_image(image: np.ndarray, size: int) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB → ``(3, size, size)`` float: resized (PIL bilinear) so the long side
    is ``size``, scaled to [0, 1], normalised with SAM's mean/std, padded bottom-right with 0."""
    check_image(image)
    height, width = image.shape[:2]
    if max(height, width) != size:
        new_h, new_w = resized_shape(height, width, size)
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    tensor = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float().div(255.0)
    mean = torch.tensor(PIXEL_MEAN).view(3, 1, 1) / 255.0
    std = torch.tensor(PIXEL_STD).view(3, 1, 1) / 255.0
    tensor = (tensor - mean) / std
    return F.pad(tensor, (0, size - tensor.shape[2], 0, size - tensor.shape[1]))


def preprocess_depth(depth: np.ndarray, size: int, image_shape: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """``(H, W)`` normalised depth map → ``(1, size, size)`` float: resized like the image (bilinear,
    antialiased when shrinking), padded with 0. ``image_shape`` ``(H, W)``: the size it must have."""
    check_depth(depth, image_shape)
    height, width = depth.shape
    tensor = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None, None]
    if max(height, width) != size:
        new_h, new_w = resized_shape(height, width, size)
        tensor = F.interpolate(tensor, size=(new_h, new_w), mode="bilinear", align_corners=False,
                               antialias=max(height, width) > size)
    return F.pad(tensor[0], (0, size - tensor.shape[3], 0, size - tensor.shape[2]))


def preprocess_masks(masks: np.ndarray, size: int) -> torch.Tensor:
    """``(K, H, W)`` bool → ``(K, size, size)`` bool in the encoder-input frame: resized like the
    image (bilinear, antialiased when shrinking), thresholded at 0.5, padded with False."""
    height, width = masks.shape[1:]
    tensor = torch.from_numpy(masks).float()[:, None]
    if max(height, width) != size:
        new_h, new_w = resized_shape(height, width, size)
        tensor = F.interpolate(tensor, size=(new_h, new_w), mode="bilinear", align_corners=False,
                               antialias=max(height, width) > size)
    tensor = tensor[:, 0] >= 0.5
    return F.pad(tensor, (0, size - tensor.shape[2], 0, size - tensor.shape[1]))


def postprocess_masks(masks: torch.Tensor, long_side: int, input_size: Tuple[int, int],
                      original_size: Tuple[int, int]) -> torch.Tensor:
    """Low-res logits ``(N, M, h, w)`` → ``(N, M, H, W)`` at ``original_size``: upsampled to the
    ``long_side`` square prompt frame, cropped to ``input_size`` (the resized image), resized to
    the original (bilinear)."""
    masks = F.interpolate(masks, (long_side, long_side), mode="bilinear", align_corners=False)
    masks = masks[..., : input_size[0], : input_size[1]]
    return F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)


def check_image(image: object) -> None:
    """An image must be a non-empty ``(H, W, 3)`` uint8 array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{type(image).__name__}" if not isinstance(image, np.ndarray) else \
            f"array of shape {image.shape} and dtype {image.dtype}"
        raise FusionlabError(f"image must be an H×W×3 uint8 RGB array; got {got}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise FusionlabError(f"image is empty (shape {image.shape})")


def check_depth_shape(depth: object, image_shape: Optional[Tuple[int, int]] = None, name: str = "depth") -> None:
    """A depth map must be a numeric ``(H, W)`` array, of the image's size when ``image_shape`` is given."""
    if not isinstance(depth, np.ndarray) or depth.ndim != 2 or depth.dtype.kind not in "biuf":
        got = type(depth).__name__ if not isinstance(depth, np.ndarray) else \
            f"array of shape {depth.shape} and dtype {depth.dtype}"
        raise FusionlabError(f"{name} must be an H×W array of numbers; got {got}")
    if image_shape is not None and tuple(depth.shape) != tuple(image_shape[:2]):
        raise FusionlabError(f"{name} map is {depth.shape[0]}×{depth.shape[1]} but the image is "
                             f"{image_shape[0]}×{image_shape[1]}; expected the same size")


def check_depth(depth: object, image_shape: Optional[Tuple[int, int]] = None) -> None:
    """A depth map must be a finite ``(H, W)`` array, of the image's size when ``image_shape`` is given."""
    check_depth_shape(depth, image_shape)
    if not np.isfinite(depth).all():
        raise FusionlabError(f"depth map has {int((~np.isfinite(depth)).sum())} NaN/inf values; expected finite values")
