"""LiteMLA's attention keeps fp32 under bf16 autocast, as the official EfficientViT does."""
import torch

from fusionlab.models.layers import LINEAR_ATTENTION_EPS, LiteMLA


def reference_linear_attention(qkv: torch.Tensor, dim: int) -> torch.Tensor:
    """The ReLU linear attention of ``(B, 3·heads·dim, H, W)`` qkv, written out in float64."""
    batch, _, height, width = qkv.shape
    qkv = qkv.double().reshape(batch, -1, 3 * dim, height * width)
    q, k, v = qkv[:, :, :dim].relu(), qkv[:, :, dim:2 * dim].relu(), qkv[:, :, 2 * dim:]
    kv = torch.einsum("bhdn,bhen->bhde", v, k)  # (B, heads, dim, dim)
    numerator = torch.einsum("bhde,bhen->bhdn", kv, q)
    denominator = torch.einsum("bhen,bhen->bhn", k.sum(-1, keepdim=True).expand_as(k), q)[:, :, None]
    return (numerator / (denominator + LINEAR_ATTENTION_EPS)).reshape(batch, -1, height, width)


def attention_and_qkv(seed: int = 0):
    torch.manual_seed(seed)
    attention = LiteMLA(64, 64, dim=16).eval()
    qkv = torch.randn(2, 3 * 64 * 2, 12, 12)  # two scales' q, k, v of 4 heads of 16
    return attention, qkv


def test_linear_attention_is_fp32_under_bf16_autocast():
    attention, qkv = attention_and_qkv()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention._linear_attention(qkv)
    assert out.dtype == torch.float32
    # bf16 matmuls would be off by ~1e-2 relative; fp32 ones agree with float64 to ~1e-6
    torch.testing.assert_close(out.double(), reference_linear_attention(qkv, 16), rtol=1e-5, atol=1e-6)


def test_bf16_qkv_is_attended_in_fp32_then_rounded_once():
    attention, qkv = attention_and_qkv(1)
    qkv = qkv.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention._linear_attention(qkv)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, attention._linear_attention(qkv.float()).bfloat16())


def test_quadratic_attention_normalises_in_fp32_under_autocast():
    attention, qkv = attention_and_qkv(2)
    small = qkv[:, :, :2, :2].contiguous()  # 4 tokens <= dim: the quadratic form
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention._quadratic_attention(small)
    assert out.dtype == torch.float32  # fp32 in, fp32 out: autocast did not cast the matmuls
    assert torch.equal(out, attention._quadratic_attention(small))
