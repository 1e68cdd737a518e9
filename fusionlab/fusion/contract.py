"""A check of the fusion-block contract, for the tests of built-in and third-party blocks."""
from __future__ import annotations

import torch

from fusionlab.fusion.base import FusionBlock


def check_fusion_contract(block: FusionBlock, batch: int = 2, size: int = 6, seed: int = 0) -> None:
    """Assert that ``block`` keeps the contract of :class:`FusionBlock`.

    1. At initialisation the output equals ``rgb_feats`` exactly, for two random depth maps.
    2. The output has the input's shape.
    3. After one optimiser step on a random regression target, the depth features receive
       non-zero gradient (the block can learn to use depth).

    Raises:
        AssertionError naming the clause that failed.
    """
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, block.channels, size, size)
    rgb = torch.randn(shape, generator=generator)
    depth = torch.randn(shape, generator=generator, requires_grad=True)
    other_depth = 10 * torch.randn(shape, generator=generator)
    block.train()
    fused = block(rgb, depth)
    assert fused.shape == rgb.shape, f"{type(block).__name__}: output shape {tuple(fused.shape)} != input {shape}"
    assert torch.equal(fused, rgb), f"{type(block).__name__}: at init the output must equal rgb_feats exactly"
    assert torch.equal(block(rgb, other_depth), rgb), \
        f"{type(block).__name__}: at init the output must not depend on the depth"
    target = torch.randn(shape, generator=generator)
    optimizer = torch.optim.SGD(block.parameters(), lr=0.1)
    torch.nn.functional.mse_loss(fused, target).backward()
    optimizer.step()
    depth.grad = None
    torch.nn.functional.mse_loss(block(rgb, depth), target).backward()
    assert depth.grad is not None and depth.grad.abs().sum() > 0, \
        f"{type(block).__name__}: after one step the depth features get no gradient (two zero-inits in series?)"
