"""Fixtures of the depth-source tests: a tiny list-backed dataset and a tiny Depth Anything folder."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: tests never reach the hub

from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch

from fusionlab.data.types import Sample

torch.set_num_threads(1)


class ListDataset:
    """The dataset interface the depth sources rely on, over a list of samples."""

    def __init__(self, samples: List[Sample], name: str = "tiny"):
        self.samples = samples
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    @property
    def image_ids(self) -> List[int]:
        return [s.image_id for s in self.samples]

    def describe(self) -> str:
        return f"{self.name}: {len(self)} images"


def make_samples(sizes: Sequence[Tuple[int, int]], with_depth: bool = True, seed: int = 0) -> List[Sample]:
    """Random images of the given ``(H, W)`` sizes; image ``i``'s depth is a ramp from ``i + 1`` metres."""
    rng = np.random.default_rng(seed)
    samples = []
    for i, (height, width) in enumerate(sizes):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        depth: Optional[np.ndarray] = None
        if with_depth:
            depth = (i + 1 + np.linspace(0, 1, height * width).reshape(height, width) * (i + 1)).astype(np.float32)
        samples.append(Sample(image_id=100 + i, file_name=f"sub/img_{i}.jpg", image=image, instances=[], depth=depth))
    return samples


@pytest.fixture
def make_dataset() -> Callable[..., ListDataset]:
    """``make_dataset(sizes, with_depth=True, seed=0)``: a :class:`ListDataset` of :func:`make_samples`."""
    return lambda sizes, with_depth=True, seed=0: ListDataset(make_samples(sizes, with_depth, seed))


@pytest.fixture
def dataset() -> ListDataset:
    """Four 6x8 images with depth."""
    return ListDataset(make_samples([(6, 8)] * 4))


def save_tiny_depth_anything(folder: Path, seed: int = 0, metric: bool = False) -> Path:
    """A random-initialised Depth Anything (tiny Dinov2 backbone) and its image processor, saved to ``folder``."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTImageProcessor

    config = DepthAnythingConfig(
        backbone_config={"model_type": "dinov2", "image_size": 28, "patch_size": 14, "hidden_size": 16,
                         "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
                         "out_indices": [1, 2], "reshape_hidden_states": False},
        patch_size=14, reassemble_hidden_size=16, reassemble_factors=[2, 1], neck_hidden_sizes=[8, 16],
        fusion_hidden_size=8, head_hidden_size=4, depth_estimation_type="metric" if metric else "relative")
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(config).eval()
    # transformers' small init makes the map ~1e-8, mostly cut to 0 by the final ReLU: PyTorch's
    # default init and a positive last bias give a varied map around 1 (std ~0.01)
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            module.reset_parameters()
    with torch.no_grad():
        model.head.conv3.bias.fill_(1.0)
    model.save_pretrained(folder)
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_depth_anything(tmp_path_factory) -> Path:
    """A saved tiny relative (disparity) Depth Anything folder, shared by the session; do not modify it."""
    return save_tiny_depth_anything(tmp_path_factory.mktemp("tiny_depth_anything"))


@pytest.fixture
def save_depth_anything() -> Callable[..., Path]:
    """``save_depth_anything(folder, seed=0, metric=False)``: write a tiny Depth Anything folder."""
    return save_tiny_depth_anything
