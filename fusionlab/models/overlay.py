"""A picture of one prediction: the image with its mask tinted and its prompts drawn on top.

``fusionlab predict --overlay FILE`` writes it, so that a prediction can be judged by eye
without opening the 0/255 mask beside the image. Torch-free: numpy and PIL only.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

MASK_COLOUR = (255, 0, 200)  # magenta: rare in photographs and in the embedded scenes' textures
MASK_ALPHA = 0.5
BOX_COLOUR = (0, 255, 255)
POSITIVE_COLOUR = (0, 230, 0)  # a disc
NEGATIVE_COLOUR = (255, 40, 40)  # a square: told apart by shape as well as by colour
RIM_COLOUR = (0, 0, 0)


def draw_overlay(image: np.ndarray, mask: np.ndarray, box: Optional[Sequence[float]] = None,
                 point_coords: Optional[np.ndarray] = None,
                 point_labels: Optional[np.ndarray] = None) -> Image.Image:
    """The image with ``mask`` blended in :data:`MASK_COLOUR` (its edge opaque), the box and the points.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool (or 0/1) mask of the same size.
        box: ``(x0, y0, x1, y1)`` in pixels, drawn as an outline in :data:`BOX_COLOUR`.
        point_coords: ``(N, 2)`` ``(x, y)`` pixels.
        point_labels: ``(N,)``, 1 for a positive point (a :data:`POSITIVE_COLOUR` disc), 0 for a
            negative one (a :data:`NEGATIVE_COLOUR` square), each with a black rim.

    Returns:
        An RGB image of the input's size. Lines and markers scale with it (1 px lines at 128 px).
    """
    mask = np.asarray(mask, dtype=bool)
    pixels = image.astype(np.float32)
    pixels[mask] = (1 - MASK_ALPHA) * pixels[mask] + MASK_ALPHA * np.array(MASK_COLOUR, np.float32)
    pixels[_edge(mask)] = MASK_COLOUR
    picture = Image.fromarray(pixels.round().astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    line = max(1, round(min(mask.shape) / 128))
    if box is not None:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        draw.rectangle((x0, y0, x1, y1), outline=BOX_COLOUR, width=line)
    if point_coords is not None:
        radius = 2 * line + 1
        for (x, y), label in zip(np.asarray(point_coords, float), np.asarray(point_labels)):
            corners = (x - radius, y - radius, x + radius, y + radius)
            if label > 0:
                draw.ellipse(corners, fill=POSITIVE_COLOUR, outline=RIM_COLOUR, width=line)
            else:
                draw.rectangle(corners, fill=NEGATIVE_COLOUR, outline=RIM_COLOUR, width=line)
    return picture


def _edge(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (the image border counts as outside)."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner
