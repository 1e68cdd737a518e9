"""Building blocks of the EfficientViT backbone and SAM neck.

Module and attribute names follow the official EfficientViT code (``conv``, ``norm``,
``main``, ``op_list``, ``spatial_conv``...), so that the released checkpoints' state
dict keys map one to one onto these modules.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

NORM_EPS = 1e-6  # every BN/LN of the released models; 1e-5 alone moves outputs by ~1e-4
LINEAR_ATTENTION_EPS = 1e-15


def _triple(value, n: int) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * n


def build_norm(name: Optional[str], channels: int) -> Optional[nn.Module]:
    if name is None:
        return None
    if name == "bn2d":
        return nn.BatchNorm2d(channels, eps=NORM_EPS)
    if name == "ln2d":
        return LayerNorm2d(channels, eps=NORM_EPS)
    raise ValueError(f"unknown norm {name!r}; expected 'bn2d', 'ln2d' or None")


def build_act(name: Optional[str]) -> Optional[nn.Module]:
    if name is None:
        return None
    if name == "gelu":
        return nn.GELU(approximate="tanh")
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown activation {name!r}; expected 'gelu', 'relu' or None")


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=1, keepdim=True)
        normed = centred / torch.sqrt(centred.square().mean(dim=1, keepdim=True) + self.eps)
        return normed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ConvLayer(nn.Module):
    """Conv2d (same padding) → optional norm → optional activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, use_bias: bool = False, norm: Optional[str] = "bn2d",
                 act_func: Optional[str] = "relu"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                              groups=groups, bias=use_bias)
        self.norm = build_norm(norm, out_channels)
        self.act = build_act(act_func)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class ResBlock(nn.Module):
    """Two 3×3 convolutions (``conv1``, ``conv2``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand_ratio: float = 1,
                 use_bias=False, norm=("bn2d", "bn2d"), act_func=("gelu", None)):
        super().__init__()
        use_bias, norm, act_func = _triple(use_bias, 2), _triple(norm, 2), _triple(act_func, 2)
        mid = round(in_channels * expand_ratio)
        self.conv1 = ConvLayer(in_channels, mid, 3, stride, use_bias=use_bias[0], norm=norm[0], act_func=act_func[0])
        self.conv2 = ConvLayer(mid, out_channels, 3, 1, use_bias=use_bias[1], norm=norm[1], act_func=act_func[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class FusedMBConv(nn.Module):
    """Fused inverted residual: a full 3×3 expansion conv (``spatial_conv``) then a 1×1 (``point_conv``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand_ratio: float = 6,
                 use_bias=False, norm=("bn2d", "bn2d"), act_func=("gelu", None)):
        super().__init__()
        use_bias, norm, act_func = _triple(use_bias, 2), _triple(norm, 2), _triple(act_func, 2)
        mid = round(in_channels * expand_ratio)
        self.spatial_conv = ConvLayer(in_channels, mid, 3, stride, use_bias=use_bias[0], norm=norm[0],
                                      act_func=act_func[0])
        self.point_conv = ConvLayer(mid, out_channels, 1, use_bias=use_bias[1], norm=norm[1], act_func=act_func[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.spatial_conv(x))


class MBConv(nn.Module):
    """Inverted residual: 1×1 expansion, 3×3 depthwise, 1×1 projection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand_ratio: float = 6,
                 use_bias=False, norm=("bn2d", "bn2d", "bn2d"), act_func=("gelu", "gelu", None)):
        super().__init__()
        use_bias, norm, act_func = _triple(use_bias, 3), _triple(norm, 3), _triple(act_func, 3)
        mid = round(in_channels * expand_ratio)
        self.inverted_conv = ConvLayer(in_channels, mid, 1, use_bias=use_bias[0], norm=norm[0], act_func=act_func[0])
        self.depth_conv = ConvLayer(mid, mid, 3, stride, groups=mid, use_bias=use_bias[1], norm=norm[1],
                                    act_func=act_func[1])
        self.point_conv = ConvLayer(mid, out_channels, 1, use_bias=use_bias[2], norm=norm[2], act_func=act_func[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


def autocast_off(device: torch.device) -> ContextManager:
    """Autocast disabled on ``device`` (a meta tensor, as in the GMAC count, has none to disable)."""
    return torch.autocast(device.type, enabled=False) if torch.amp.is_autocast_available(device.type) else nullcontext()


class LiteMLA(nn.Module):
    """Multi-scale ReLU linear attention of EfficientViT.

    ``(B, C, H, W) → (B, C, H, W)``. Queries/keys/values come from a 1×1 conv; each extra
    scale aggregates them with a depthwise ``scale×scale`` conv plus a grouped 1×1 conv. For
    ``H·W > dim`` attention is linear in tokens; for tiny maps the quadratic form is used.
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int = 32, scales: Sequence[int] = (5,),
                 norm: Optional[str] = "bn2d"):
        super().__init__()
        heads = in_channels // dim
        total_dim = heads * dim
        self.dim = dim
        self.qkv = ConvLayer(in_channels, 3 * total_dim, 1, use_bias=False, norm=None, act_func=None)
        self.aggreg = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(3 * total_dim, 3 * total_dim, scale, padding=scale // 2, groups=3 * total_dim, bias=False),
                nn.Conv2d(3 * total_dim, 3 * total_dim, 1, groups=3 * heads, bias=False),
            )
            for scale in scales
        ])
        self.proj = ConvLayer(total_dim * (1 + len(scales)), out_channels, 1, use_bias=False, norm=norm,
                              act_func=None)

    def _split(self, qkv: torch.Tensor):
        batch, _, height, width = qkv.shape
        qkv = qkv.reshape(batch, -1, 3 * self.dim, height * width)
        q, k, v = qkv[:, :, : self.dim], qkv[:, :, self.dim: 2 * self.dim], qkv[:, :, 2 * self.dim:]
        return F.relu(q), F.relu(k), v

    def _linear_attention(self, qkv: torch.Tensor) -> torch.Tensor:
        """ReLU linear attention in fp32, returned in ``qkv``'s dtype.

        Autocast is off here as in the official EfficientViT: under bf16 autocast it would cast
        the matmuls back to bf16, and the normalising division of sums over every token would
        lose the precision the fp32 copy was made for.
        """
        batch, _, height, width = qkv.shape
        with autocast_off(qkv.device):
            q, k, v = self._split(qkv.float())
            v = F.pad(v, (0, 0, 0, 1), mode="constant", value=1.0)
            out = torch.matmul(torch.matmul(v, k.transpose(-1, -2)), q)
            out = out[:, :, :-1] / (out[:, :, -1:] + LINEAR_ATTENTION_EPS)
        return out.reshape(batch, -1, height, width).to(qkv.dtype)

    def _quadratic_attention(self, qkv: torch.Tensor) -> torch.Tensor:
        """ReLU attention over few tokens: matmuls in ``qkv``'s dtype, the normalisation in fp32
        (autocast off, as in the official EfficientViT)."""
        batch, _, height, width = qkv.shape
        with autocast_off(qkv.device):
            q, k, v = self._split(qkv)
            att = torch.matmul(k.transpose(-1, -2), q)
            att = (att.float() / (att.float().sum(dim=2, keepdim=True) + LINEAR_ATTENTION_EPS)).to(att.dtype)
            return torch.matmul(v, att).reshape(batch, -1, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        qkv = torch.cat([qkv] + [op(qkv) for op in self.aggreg], dim=1)
        height, width = qkv.shape[-2:]
        if height * width > self.dim:
            out = self._linear_attention(qkv)
        else:
            out = self._quadratic_attention(qkv)
        return self.proj(out)


class ResidualBlock(nn.Module):
    """``main(x) + x`` when ``residual`` else ``main(x)`` (official name: ``main``)."""

    def __init__(self, main: nn.Module, residual: bool):
        super().__init__()
        self.main = main
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + x if self.residual else self.main(x)


class EfficientViTBlock(nn.Module):
    """Global context (LiteMLA) then local mixing (MBConv), each residual."""

    def __init__(self, channels: int, dim: int = 32, expand_ratio: float = 4, scales: Sequence[int] = (5,),
                 norm: str = "bn2d", act_func: str = "gelu"):
        super().__init__()
        self.context_module = ResidualBlock(LiteMLA(channels, channels, dim=dim, scales=scales, norm=norm), True)
        local = MBConv(channels, channels, expand_ratio=expand_ratio, use_bias=(True, True, False),
                       norm=(None, None, norm), act_func=(act_func, act_func, None))
        self.local_module = ResidualBlock(local, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


class OpSequential(nn.Module):
    """A sequence of ops kept under ``op_list`` (the official key name)."""

    def __init__(self, ops: Sequence[nn.Module]):
        super().__init__()
        self.op_list = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x


class Upsample(nn.Module):
    """Resize a ``(B, C, h, w)`` map to a fixed ``size`` (bicubic, align_corners=False); a no-op at that size."""

    def __init__(self, size: Union[int, Tuple[int, int]], mode: str = "bicubic"):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == self.size:
            return x
        return F.interpolate(x, size=self.size, mode=self.mode, align_corners=False)
