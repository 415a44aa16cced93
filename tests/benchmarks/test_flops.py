"""FLOP counting of attention (benchmarks/flops.py): grouped-query attention as transformers
calls it on CUDA (SDPA with ``enable_gqa=True``, K/V with fewer heads than Q) is counted
without the crash of the first GPU run, and as much as the same attention with K/V repeated."""

import pytest
import torch
import torch.nn.functional as F

from benchmarks.common import TINY_LLM, load_llm_config
from benchmarks.flops import count_flops
from benchmarks.training import build_llm

B, HQ, HKV, L, S, D = 2, 8, 2, 16, 12, 32


def _qkv(device="cpu", grad=False):
    gen = torch.Generator().manual_seed(0)

    def make(heads, length):
        x = torch.randn(B, heads, length, D, generator=gen).to(device)
        return x.requires_grad_(grad)

    return make(HQ, L), make(HKV, S), make(HKV, S)


def test_cpu_gqa_sdpa_is_counted_forward_and_backward():
    q, k, v = _qkv(grad=True)
    forward, out = count_flops(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    assert forward == 4 * B * HQ * L * S * D
    total, _ = count_flops(
        lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True).sum().backward()
    )
    assert total == 14 * B * HQ * L * S * D  # backward: 5 products, scores recomputed
    # The same attention with K/V repeated to every query head, counted through bmm.
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        reference, ref_out = count_flops(
            lambda: F.scaled_dot_product_attention(
                q, k.repeat_interleave(HQ // HKV, 1), v.repeat_interleave(HQ // HKV, 1)
            )
        )
    assert forward == reference
    torch.testing.assert_close(out, ref_out)


@pytest.mark.parametrize(
    "op, extra",
    [
        ("_scaled_dot_product_flash_attention", ()),
        ("_scaled_dot_product_efficient_attention", (None, False)),
        ("_scaled_dot_product_cudnn_attention", (None, False)),
    ],
)
def test_cuda_fused_kernels_with_gqa_shapes_are_counted(op, extra):
    """The CUDA kernels SDPA dispatches to, called on meta tensors with GQA shapes (what the
    H200 run hit: ``sdpa_flop_count: query/key/value shapes are incompatible``)."""
    q, k, v = _qkv("meta")
    flops, _ = count_flops(lambda: getattr(torch.ops.aten, op)(q, k, v, *extra))
    assert flops == 4 * B * HQ * L * S * D


def test_gqa_llm_forward_counts_as_much_as_eager_attention():
    """A tiny Llama with 4 query and 2 K/V heads: transformers' SDPA path (``enable_gqa=True``
    when no mask is given) counts the same forward FLOPs as its eager attention (matmuls over
    repeated K/V)."""
    config = load_llm_config("llama-3.1-8b-instruct", TINY_LLM)
    assert config.num_key_value_heads < config.num_attention_heads
    ids = torch.randint(0, 500, (2, 24), generator=torch.Generator().manual_seed(1))
    counts = {}
    for kind in ("sdpa", "eager"):
        torch.manual_seed(0)
        model = build_llm(config, torch.device("cpu"), kind, dtype=torch.float32)
        with torch.no_grad():
            counts[kind], out = count_flops(lambda m=model: m(input_ids=ids).logits)
        counts[kind + "_logits"] = out
    assert counts["sdpa"] == counts["eager"] > 0
    torch.testing.assert_close(counts["sdpa_logits"], counts["eager_logits"], rtol=1e-4, atol=1e-4)
