"""What a model costs: parameters, multiply-accumulates, latency relative to another model, and
the encoder's throughput in images per second."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode

from fusionlab.models.sam import EfficientViTSam


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _example_inputs(model: EfficientViTSam, batch: int = 1, device: Optional[torch.device] = None
                    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
    """Images ``(B, 3, S, S)``, depths ``(B, 1, S, S)`` (RGB-D only) and one box ``(1, 4)`` in the prompt frame."""
    size, frame = model.image_size[1], model.image_size[0]
    device = device or model.device
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)
    depths = torch.rand(batch, 1, size, size, generator=generator).to(device) if model.has_depth else None
    boxes = torch.tensor([[0.25 * frame, 0.25 * frame, 0.75 * frame, 0.75 * frame]], device=device)
    return images, depths, boxes


@torch.no_grad()
def encoder_gmacs(model: EfficientViTSam) -> float:
    """Multiply-accumulates (10⁹) of one image through the encoder(s) and fusion blocks.

    Counted by ``torch.utils.flop_counter`` (FLOPs of convolutions, matmuls and attention,
    halved to MACs; element-wise ops are not counted, as in the papers' GMACs), on the meta
    device, so even XL costs no memory or time.
    """
    with torch.device("meta"):
        meta_model = type(model)(model.config).eval()
        images, depths, _ = _example_inputs(meta_model, device=torch.device("meta"))
        counter = FlopCounterMode(display=False)
        with counter:
            meta_model.encode(images, depths)
    return counter.get_total_flops() / 2 / 1e9


def _seconds(work: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of ``work()``; on a GPU, from an idle queue to its last kernel done."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    work()
    if cuda:
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


@torch.no_grad()
def forward_seconds(model: EfficientViTSam, inputs: Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]
                    ) -> float:
    """Seconds of one image through encoder(s), fusion and one box prompt's decoder (single-mask output)."""
    images, depths, boxes = inputs

    def forward() -> None:
        embedding = model.encode(images, depths)
        model.decode(embedding, boxes=boxes, multimask_output=False)

    return _seconds(forward, images.device)


@torch.no_grad()
def latency_seconds(model: EfficientViTSam, repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of :func:`forward_seconds` over ``repeats`` forwards after ``warmup`` untimed ones."""
    model.eval()
    inputs = _example_inputs(model)
    for _ in range(warmup):
        forward_seconds(model, inputs)
    return statistics.median(forward_seconds(model, inputs) for _ in range(repeats))


@torch.no_grad()
def latency_ratios(models: Dict[str, EfficientViTSam], baseline: str, runs: int = 7, warmup: int = 2
                   ) -> Dict[str, float]:
    """Median latency of each model over that of the baseline, ``models[baseline]``.

    The models take turns one forward at a time (A, B, A, B, …) for ``warmup`` untimed and
    ``runs`` timed rounds, so that load from other processes, which comes and goes, slows
    every model alike; medians drop the rounds it hit hardest.
    """
    inputs = {name: _example_inputs(model.eval()) for name, model in models.items()}
    samples: Dict[str, List[float]] = {name: [] for name in models}
    for round_index in range(warmup + runs):
        for name, model in models.items():
            seconds = forward_seconds(model, inputs[name])
            if round_index >= warmup:
                samples[name].append(seconds)
    base = statistics.median(samples[baseline])
    return {name: statistics.median(times) / base for name, times in samples.items()}


def throughput_batch(device: torch.device) -> int:
    """Images per forward when timing throughput: 8 on a CUDA GPU, which one image leaves mostly idle (the
    papers time batches too); 1 elsewhere, where the number is only indicative."""
    return 8 if device.type == "cuda" else 1


def device_name(device: torch.device) -> str:
    """What a reader knows the device by: the GPU's name (``"NVIDIA H200"``), else the device type (``"cpu"``)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


@torch.no_grad()
def encoder_throughput(model: EfficientViTSam, batch: int = 1, runs: int = 10, warmup: int = 3) -> float:
    """Images per second through the encoder(s) and fusion blocks (``model.encode``), on the model's device.

    Each forward takes ``batch`` random images (and depths) ``(batch, C, S, S)``; after ``warmup`` untimed
    forwards, it is ``batch`` over the median seconds of ``runs`` timed ones.
    """
    model.eval()
    images, depths, _ = _example_inputs(model, batch)

    def encode() -> None:
        model.encode(images, depths)

    for _ in range(warmup):
        _seconds(encode, images.device)
    return batch / statistics.median(_seconds(encode, images.device) for _ in range(runs))
