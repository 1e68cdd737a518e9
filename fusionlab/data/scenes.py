"""Procedural RGB-D scenes: a z-buffered pinhole rendering of textured primitives in a room.

The camera sits at the origin looking down +z (x right, y down, as image axes go), 0.7-1.8 m
above a floor plane and rolled by up to 15 degrees, facing a back wall 6-8 m away; the
layout varies from scene to scene so that one scene's depth says little about another's. Spheres, rotated boxes, thin slabs and
capped cylinders float or rest on the floor at 1.5 m to the wall; each pixel's ray is
intersected with every surface in closed form, and the nearest hit wins. Colour is a solid
texture times Lambertian shading from one directional light plus ambient; depth is the
hit's z (metres), what a depth camera reports.

A *camouflaged* object wears the background itself: its colour at a pixel is the colour the
wall or floor has at that pixel, modulated only faintly by the object's own shading. Its
outline is thus nearly invisible in RGB while its depth edge is as sharp as any other's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np

SHAPES: Tuple[str, ...] = ("sphere", "box", "cylinder", "slab")
TEXTURES: Tuple[str, ...] = ("solid", "stripes", "checker", "blobs")
# Shared pool of surface colours (linear RGB in [0, 1]); objects and background draw from it.
PALETTE = np.array([
    [0.80, 0.22, 0.18], [0.93, 0.58, 0.15], [0.95, 0.85, 0.30], [0.35, 0.65, 0.25],
    [0.15, 0.45, 0.35], [0.20, 0.45, 0.80], [0.30, 0.25, 0.60], [0.70, 0.35, 0.65],
    [0.55, 0.40, 0.28], [0.85, 0.80, 0.70], [0.45, 0.45, 0.45], [0.15, 0.15, 0.18],
], dtype=np.float32)

FIELD_OF_VIEW_DEG = 60.0
CAMERA_HEIGHT_M = (0.7, 1.8)
CAMERA_ROLL_RAD = 0.25
NEAREST_M = 1.5
AMBIENT = 0.35
CAMOUFLAGE_SHADING = 0.25  # how much of its own shading a camouflaged object keeps
NOISE_STD = 0.01  # sensor noise on RGB in [0, 1] units
MIN_VISIBLE_PX = 8  # objects with fewer visible pixels are left unannotated, as annotators do


@dataclass
class Scene:
    """One rendered scene.

    Attributes:
        rgb: ``(H, W, 3)`` uint8.
        depth: ``(H, W)`` float32 metres (z of the nearest surface).
        masks: ``(K, H, W)`` bool visible masks of the annotated objects (disjoint).
        shapes: K shape names (one of :data:`SHAPES`).
        camouflaged: K flags.
    """

    rgb: np.ndarray
    depth: np.ndarray
    masks: np.ndarray
    shapes: List[str]
    camouflaged: List[bool]


@dataclass
class _Hit:
    t: np.ndarray  # (N,) ray parameter = z-depth; inf where the ray misses
    normal: np.ndarray  # (N, 3) world-space unit normal
    local: np.ndarray  # (N, 3) object-space point, for solid textures


def render_scene(rng: np.random.Generator, image_size: int, camouflage: float,
                 objects_per_image: Tuple[int, int]) -> Scene:
    """Draw and render one scene; redraws until at least one object is visible enough to annotate.

    Args:
        rng: the only source of randomness (same state, same scene).
        image_size: side of the square image in pixels.
        camouflage: probability that an object wears the background.
        objects_per_image: inclusive ``(min, max)`` number of objects placed.
    """
    rays = _camera_rays(image_size)
    while True:
        scene = _render_once(rng, rays, image_size, camouflage, objects_per_image)
        if len(scene.shapes):
            return scene


def _roll(angle: float) -> np.ndarray:
    """Rotation about the optical (z) axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float32)


def _camera_rays(size: int) -> np.ndarray:
    """``(size*size, 3)`` ray directions through pixel centres, scaled so that z = 1."""
    focal = (size / 2) / np.tan(np.radians(FIELD_OF_VIEW_DEG) / 2)
    coords = (np.arange(size, dtype=np.float32) + 0.5 - size / 2) / focal
    ys, xs = np.meshgrid(coords, coords, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel(), np.ones(size * size, np.float32)], axis=1)


def _render_once(rng: np.random.Generator, rays: np.ndarray, size: int, camouflage: float,
                 objects_per_image: Tuple[int, int]) -> Scene:
    wall_z = rng.uniform(6.0, 8.0)
    height = rng.uniform(*CAMERA_HEIGHT_M)
    roll = _roll(rng.uniform(-CAMERA_ROLL_RAD, CAMERA_ROLL_RAD))
    rays = rays @ roll.T  # world-frame directions; a roll about z keeps each ray's z, so t is still depth
    light = _unit(np.array([rng.uniform(-0.7, 0.7), -rng.uniform(0.6, 1.2), -rng.uniform(0.4, 1.0)]))
    bg_t, bg_normal, bg_albedo = _background(rng, rays, wall_z, height)
    bg_shade = _lambert(bg_normal, light)
    bg_colour = bg_albedo * bg_shade[:, None]

    count = int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))
    hits, shapes, camo, albedos = [], [], [], []
    for _ in range(count):
        shape = SHAPES[rng.choice(len(SHAPES), p=[0.3, 0.3, 0.25, 0.15])]
        hit = _place_and_intersect(rng, rays, shape, size, wall_z, height, roll)
        hits.append(hit)
        shapes.append(shape)
        camo.append(bool(rng.random() < camouflage))
        albedos.append(_texture(rng, hit.local, scale=rng.uniform(0.08, 0.3)))

    depth = bg_t.copy()
    label = np.zeros(len(rays), dtype=np.int32)  # 0: background, k + 1: object k
    colour = bg_colour.copy()
    for k, hit in enumerate(hits):
        nearer = hit.t < depth
        depth[nearer] = hit.t[nearer]
        label[nearer] = k + 1
    for k, hit in enumerate(hits):
        own = label == k + 1
        shade = _lambert(hit.normal[own], light)
        if camo[k]:
            colour[own] = bg_colour[own] * (1 + CAMOUFLAGE_SHADING * (shade - bg_shade[own]))[:, None]
        else:
            colour[own] = albedos[k][own] * shade[:, None]

    colour = colour + rng.normal(0.0, NOISE_STD, size=colour.shape).astype(np.float32)
    rgb = np.clip(np.rint(colour * 255), 0, 255).astype(np.uint8).reshape(size, size, 3)
    kept = [k for k in range(count) if (label == k + 1).sum() >= MIN_VISIBLE_PX]
    masks = np.stack([(label == k + 1).reshape(size, size) for k in kept]) if kept else \
        np.zeros((0, size, size), dtype=bool)
    return Scene(rgb=rgb, depth=depth.reshape(size, size).astype(np.float32), masks=masks,
                 shapes=[shapes[k] for k in kept], camouflaged=[camo[k] for k in kept])


def _background(rng: np.random.Generator, rays: np.ndarray, wall_z: float, height: float
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth ``(N,)``, normals ``(N, 3)`` and albedo ``(N, 3)`` of the back wall and the floor
    ``height`` metres below the camera."""
    with np.errstate(divide="ignore"):
        floor_t = np.where(rays[:, 1] > 0, height / rays[:, 1], np.inf)
    on_floor = floor_t < wall_z
    t = np.where(on_floor, floor_t, wall_z).astype(np.float32)
    points = rays * t[:, None]
    normal = np.where(on_floor[:, None], np.float32([0, -1, 0]), np.float32([0, 0, -1]))
    # The wall's texture lives on (x, y), the floor's on (x, z): each looks painted on its plane.
    wall_albedo = _texture(rng, points * np.float32([1, 1, 0]), scale=rng.uniform(0.25, 0.8))
    floor_albedo = _texture(rng, points * np.float32([1, 0, 1]), scale=rng.uniform(0.25, 0.8))
    return t, normal.astype(np.float32), np.where(on_floor[:, None], floor_albedo, wall_albedo)


def _place_and_intersect(rng: np.random.Generator, rays: np.ndarray, shape: str, size: int,
                         wall_z: float, height: float, roll: np.ndarray) -> _Hit:
    """Draw a pose and size for ``shape`` somewhere in view and intersect every (world-frame) ray
    with it; the camera is ``height`` above the floor and rolled by ``roll``."""
    scale = float(np.exp(rng.uniform(np.log(0.08), np.log(0.7))))
    rotation = _rotation(rng)  # for a sphere it only turns the texture
    if shape == "sphere":
        half = np.full(3, scale)
    elif shape == "box":
        half = scale * rng.uniform(0.5, 1.0, size=3)
    elif shape == "slab":
        half = scale * np.array([rng.uniform(0.7, 1.0), rng.uniform(0.6, 1.0), 0.08])
    else:  # cylinder: half = (radius, half-height, radius)
        radius = scale * rng.uniform(0.4, 0.8)
        half = np.array([radius, scale * rng.uniform(0.6, 1.2), radius])
    reach = float(np.linalg.norm(half))  # bounding-sphere radius: keeps camera and wall outside
    z = rng.uniform(NEAREST_M + reach, max(NEAREST_M + reach, wall_z - reach - 0.05))
    pixel = rng.uniform(0.05, 0.95, size=2) * size
    focal = (size / 2) / np.tan(np.radians(FIELD_OF_VIEW_DEG) / 2)
    centre = roll @ np.array([(pixel[0] - size / 2) / focal * z, (pixel[1] - size / 2) / focal * z, z])
    half_height = float(np.abs(rotation[1]) @ half)  # y half-extent of the rotated box bounds
    centre[1] = min(centre[1], height - half_height)  # nothing sinks into the floor
    intersect: Dict[str, Callable[..., _Hit]] = {
        "sphere": _intersect_sphere, "box": _intersect_box, "slab": _intersect_box,
        "cylinder": _intersect_cylinder}
    return intersect[shape](rays, centre.astype(np.float32), rotation.astype(np.float32),
                            half.astype(np.float32))


def _intersect_sphere(rays: np.ndarray, centre: np.ndarray, rotation: np.ndarray, half: np.ndarray) -> _Hit:
    radius = half[0]
    along = _rowwise(rays, centre)
    a = np.einsum("ij,ij->i", rays, rays)
    disc = along ** 2 - a * (centre @ centre - radius ** 2)
    t = np.where(disc >= 0, (along - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
    offset = rays * np.where(np.isfinite(t), t, 0)[:, None] - centre
    return _Hit(t=t.astype(np.float32), normal=offset / radius, local=_rowwise(offset, rotation))


def _intersect_box(rays: np.ndarray, centre: np.ndarray, rotation: np.ndarray, half: np.ndarray) -> _Hit:
    origin = -centre @ rotation  # camera in the box frame (R^T (0 - c))
    direction = _rowwise(rays, rotation)
    direction = np.where(np.abs(direction) < 1e-9, 1e-9, direction)
    t1 = (-half - origin) / direction
    t2 = (half - origin) / direction
    t_near = np.minimum(t1, t2)
    entry = t_near.max(axis=1)
    exit_ = np.maximum(t1, t2).min(axis=1)
    hit = (exit_ >= entry) & (entry > 0)
    axis = t_near.argmax(axis=1)
    normal_local = np.zeros_like(direction)
    normal_local[np.arange(len(rays)), axis] = -np.sign(direction[np.arange(len(rays)), axis])
    t = np.where(hit, entry, np.inf).astype(np.float32)
    local = origin + direction * np.where(hit, entry, 0)[:, None]
    return _Hit(t=t, normal=_rowwise(normal_local, rotation.T), local=local)


def _intersect_cylinder(rays: np.ndarray, centre: np.ndarray, rotation: np.ndarray, half: np.ndarray) -> _Hit:
    radius, half_height = half[0], half[1]
    o = -centre @ rotation
    d = _rowwise(rays, rotation)
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (o[0] * d[:, 0] + o[2] * d[:, 2])
    c = o[0] ** 2 + o[2] ** 2 - radius ** 2
    disc = b ** 2 - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
        side_ok = (disc >= 0) & (t_side > 0) & (np.abs(o[1] + t_side * d[:, 1]) <= half_height)
        t_caps = [(s * half_height - o[1]) / d[:, 1] for s in (-1.0, 1.0)]
    candidates = [np.where(side_ok, t_side, np.inf)]
    for t_cap in t_caps:
        px, pz = o[0] + t_cap * d[:, 0], o[2] + t_cap * d[:, 2]
        candidates.append(np.where((t_cap > 0) & (px ** 2 + pz ** 2 <= radius ** 2), t_cap, np.inf))
    stacked = np.stack(candidates)
    which = stacked.argmin(axis=0)
    t = stacked.min(axis=0)
    local = o + d * np.where(np.isfinite(t), t, 0)[:, None]
    normal_local = np.where((which == 0)[:, None], local * np.float32([1, 0, 1]) / radius,
                            np.where((which == 1)[:, None], np.float32([0, -1, 0]), np.float32([0, 1, 0])))
    return _Hit(t=t.astype(np.float32), normal=_rowwise(normal_local, rotation.T), local=local)


def _texture(rng: np.random.Generator, points: np.ndarray, scale: float) -> np.ndarray:
    """Albedo ``(N, 3)`` of a solid texture drawn from the pool, evaluated at ``(N, 3)`` points (metres)."""
    first, second = rng.choice(len(PALETTE), size=2, replace=False)
    kind = TEXTURES[rng.integers(len(TEXTURES))]
    if kind == "solid":
        weight = np.zeros(len(points), np.float32)
    elif kind == "stripes":
        direction = _unit(rng.normal(size=3))
        weight = (np.sin(2 * np.pi * _rowwise(points, direction) / scale) > 0).astype(np.float32)
    elif kind == "checker":
        weight = (np.floor(points / (scale / 2)).sum(axis=1) % 2).astype(np.float32)
    else:  # blobs: a few random plane waves, squashed into soft-edged patches
        waves = sum(np.sin(_rowwise(points, _unit(rng.normal(size=3))) * (2 * np.pi / scale) * rng.uniform(0.5, 1.5)
                           + rng.uniform(0, 2 * np.pi)) for _ in range(3))
        weight = 1 / (1 + np.exp(-3 * waves))
    weight = weight[:, None].astype(np.float32)
    return PALETTE[first] * (1 - weight) + PALETTE[second] * weight


def _lambert(normal: np.ndarray, light: np.ndarray) -> np.ndarray:
    return (AMBIENT + (1 - AMBIENT) * np.clip(_rowwise(normal, light.astype(np.float32)), 0, None)).astype(np.float32)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A pose that keeps most objects upright-ish: any yaw, modest pitch and roll."""
    yaw, pitch, roll = rng.uniform(0, 2 * np.pi), rng.uniform(-0.6, 0.6), rng.uniform(-0.4, 0.4)
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


def _rowwise(rows: np.ndarray, operand: np.ndarray) -> np.ndarray:
    """``rows @ operand`` for ``(N, 3)`` rows and a ``(3,)`` or ``(3, K)`` operand, without BLAS.

    A BLAS matmul spreads these thin products over threads, which on a busy machine made
    rendering 5x slower at 256 px; einsum's own loop stays on one core.
    """
    return np.einsum("ni,i...->n...", rows, operand)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)
