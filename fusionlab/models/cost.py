"""What a model costs: parameters, multiply-accumulates, and latency relative to another model."""
from __future__ import annotations

import statistics
import time
from typing import Dict, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

from fusionlab.models.sam import EfficientViTSam


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _example_inputs(model: EfficientViTSam, batch: int = 1, device: Optional[torch.device] = None):
    size = model.image_size[1]
    device = device or model.device
    images = torch.randn(batch, 3, size, size, device=device)
    depths = torch.rand(batch, 1, size, size, device=device) if model.has_depth else None
    return images, depths


def _example_prompt(model: EfficientViTSam, device) -> Dict[str, torch.Tensor]:
    frame = model.image_size[0]
    return {"boxes": torch.tensor([[0.25 * frame, 0.25 * frame, 0.75 * frame, 0.75 * frame]], device=device)}


@torch.no_grad()
def encoder_gmacs(model: EfficientViTSam) -> float:
    """Multiply-accumulates (10⁹) of one image through the encoder(s) and fusion blocks.

    Counted by ``torch.utils.flop_counter`` (FLOPs of convolutions, matmuls and attention,
    halved to MACs; element-wise ops are not counted, as in the papers' GMACs), on the meta
    device, so even XL costs no memory or time.
    """
    with torch.device("meta"):
        meta_model = EfficientViTSam(model.config).eval()
        images, depths = _example_inputs(meta_model, device=torch.device("meta"))
        counter = FlopCounterMode(display=False)
        with counter:
            meta_model.encode(images, depths)
    return counter.get_total_flops() / 2 / 1e9


@torch.no_grad()
def latency_seconds(model: EfficientViTSam, repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of one image through encoder(s), fusion and one box prompt's decoder."""
    model.eval()
    images, depths = _example_inputs(model)
    prompt = _example_prompt(model, images.device)
    for _ in range(warmup):
        model(images, depths, [prompt])
    times = []
    for _ in range(repeats):
        if images.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(images, depths, [prompt])
        if images.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency_ratios(models: Dict[str, EfficientViTSam], reference: str, rounds: int = 3, repeats: int = 3
                   ) -> Dict[str, float]:
    """Latency of each model over that of ``models[reference]``, measured interleaved in rounds
    so that a machine that is busier in one moment slows every model alike."""
    samples: Dict[str, list] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            samples[name].append(latency_seconds(model, repeats=repeats, warmup=1))
    base = statistics.median(samples[reference])
    return {name: statistics.median(times) / base for name, times in samples.items()}
