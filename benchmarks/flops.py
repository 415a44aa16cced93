"""Model FLOPs and model FLOPs utilization (MFU) for the benchmark tables.

FLOPs are counted, not estimated by hand: :func:`count_flops` runs a callable once under
``torch.utils.flop_counter.FlopCounterMode``, which adds up the matrix products,
convolutions and attention kernels of the forward and backward passes (element-wise ops,
norms and the optimizer update are not counted, as usual for MFU). MFU is then
``flops / seconds / peak`` with the device's dense peak at the run's precision
(:func:`peak_tflops`: a table of published data-sheet figures, or ``--peak-tflops``).

Attention kernels are counted by :data:`SDPA_FLOPS` instead of PyTorch's own formulas, which
fail on grouped-query attention: on CUDA, transformers calls SDPA with ``enable_gqa=True``
(8 key/value heads for 32 query heads in Llama-3.1-8B) and the fused kernels receive K/V with
fewer heads than Q, which ``sdpa_flop_count`` rejects (``query/key/value shapes are
incompatible``, the crash of the first GPU run); on CPU the SDPA kernel
(``_scaled_dot_product_flash_attention_for_cpu``) has no formula at all and counted 0. Each
query head multiplies against its shared K/V head, so a forward is 4·B·Hq·L·S·D and a backward
10·B·Hq·L·S·D (PyTorch's convention: the scores are recomputed), whatever Hkv is; a causal
mask is not taken into account (the full L x S is counted, as PyTorch does).

Authors
-------
speechmapper developers, 2026
"""

import torch
from torch.utils.flop_counter import FlopCounterMode

# Dense (no sparsity) peak TFLOP/s from the vendors' data sheets, per matmul precision.
# Keys are matched, in order, as substrings of torch.cuda.get_device_name().
PEAK_TFLOPS = (
    ("H200", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("H100 NVL", {"bf16": 835.0, "tf32": 417.5, "fp32": 60.0}),
    ("H100 PCIe", {"bf16": 756.5, "tf32": 378.0, "fp32": 51.2}),
    ("H100", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),  # SXM (e.g. "H100 80GB HBM3")
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.0, "tf32": 183.0, "fp32": 91.6}),
    ("A10G", {"bf16": 70.0, "tf32": 35.0, "fp32": 31.2}),
    ("V100", {"bf16": None, "tf32": None, "fp32": 15.7}),
)


def _sdpa_forward_flops(q, k, v, *args, out_shape=None, **kwargs):
    """Forward FLOPs of a fused SDPA kernel from the shapes (B, H, L, D) of q, k, v; the K/V
    heads may be fewer than the query heads (grouped-query attention)."""
    b, hq, lq, dqk = q
    bk, hkv, s, dk = k
    bv, hv, sv, dv = v
    if not (b == bk == bv and hkv == hv and s == sv and dqk == dk and hkv and hq % hkv == 0):
        raise ValueError(f"Attention shapes q{tuple(q)} k{tuple(k)} v{tuple(v)} do not match.")
    return 2 * b * hq * lq * s * dqk + 2 * b * hq * lq * s * dv


def _sdpa_backward_flops(grad_out, q, k, v, *args, out_shape=None, **kwargs):
    """Backward FLOPs of a fused SDPA kernel, PyTorch's convention (scores recomputed: five
    matrix products), with grouped-query K/V heads allowed."""
    b, hq, lq, dqk = q
    _, hkv, s, _ = k
    dv = v[-1]
    if not (hkv and hq % hkv == 0 and tuple(grad_out) == (b, hq, lq, dv)):
        raise ValueError(f"Attention backward shapes q{tuple(q)} k{tuple(k)} do not match.")
    return 2 * b * hq * (3 * lq * s * dqk + 2 * lq * s * dv)


def _sdpa_mapping():
    aten = torch.ops.aten
    mapping = {}
    for name in (
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_flash_attention_for_cpu",
    ):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = _sdpa_forward_flops
        if hasattr(aten, name + "_backward"):
            mapping[getattr(aten, name + "_backward")] = _sdpa_backward_flops
    return mapping


#: ``FlopCounterMode(custom_mapping=...)`` entries of the fused SDPA kernels (CUDA flash,
#: memory-efficient and cuDNN, and the CPU kernel), forward and backward, GQA-aware.
SDPA_FLOPS = _sdpa_mapping()


def count_flops(fn):
    """FLOPs of one call of ``fn`` (forward and backward passes it runs), and its result.

    Arguments
    ---------
    fn : callable
        Called once, without arguments.

    Returns
    -------
    flops : int
        Floating-point operations counted by ``FlopCounterMode`` (a multiply-add is 2).
    result : object
        What ``fn`` returned.

    Example
    -------
    >>> layer = torch.nn.Linear(8, 4, bias=False)
    >>> flops, _ = count_flops(lambda: layer(torch.randn(3, 8)).sum().backward())
    >>> flops  # forward 2*3*8*4, backward as much again (weight gradient; the input needs none)
    384
    >>> q, kv = torch.randn(1, 4, 8, 16), torch.randn(1, 2, 8, 16)  # 4 query heads, 2 K/V heads
    >>> attention = torch.nn.functional.scaled_dot_product_attention
    >>> count_flops(lambda: attention(q, kv, kv, enable_gqa=True))[0]  # 4 * B*Hq*L*S*D
    16384
    """
    with FlopCounterMode(display=False, custom_mapping=SDPA_FLOPS) as counter:
        result = fn()
    return int(counter.get_total_flops()), result


def matmul_precision(device, precision):
    """The precision of the run's matrix products: ``bf16``, ``tf32`` or ``fp32``.

    Arguments
    ---------
    device : torch.device
        The device.
    precision : str
        The run's ``--precision`` (``fp32`` or ``bf16`` autocast).

    Returns
    -------
    str
        ``bf16`` under bf16 autocast; ``tf32`` for fp32 on CUDA with TF32 matmuls allowed;
        ``fp32`` otherwise.

    Example
    -------
    >>> matmul_precision(torch.device("cpu"), "bf16"), matmul_precision(torch.device("cpu"), "fp32")
    ('bf16', 'fp32')
    """
    if precision == "bf16":
        return "bf16"
    if device.type == "cuda" and torch.get_float32_matmul_precision() != "highest":
        return "tf32"
    return "fp32"


def peak_tflops(device, precision, override=None):
    """Dense peak TFLOP/s of ``device`` at ``precision`` and where the figure comes from.

    Arguments
    ---------
    device : torch.device
        The device.
    precision : str
        ``bf16``, ``tf32`` or ``fp32`` (see :func:`matmul_precision`).
    override : float, optional
        A peak given on the command line (``--peak-tflops``).

    Returns
    -------
    tuple
        ``(tflops, source)``; ``(None, reason)`` when unknown (CPUs, unlisted GPUs).

    Example
    -------
    >>> peak_tflops(torch.device("cpu"), "fp32")[0] is None
    True
    >>> peak_tflops(torch.device("cpu"), "fp32", override=1.5)
    (1.5, '--peak-tflops')
    """
    if override is not None:
        return float(override), "--peak-tflops"
    if device.type != "cuda":
        return None, "unknown for CPUs: pass --peak-tflops"
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_TFLOPS:
        if key in name:
            value = peaks.get(precision)
            if value is None:
                return None, f"{name} has no {precision} tensor cores"
            return value, f"{key} data sheet, dense {precision}"
    return None, f"{name} is not in benchmarks/flops.py: pass --peak-tflops"


def mfu_text(flops, seconds, peak, source, per="step"):
    """One table cell: achieved TFLOP/s and the MFU (or why there is none).

    Arguments
    ---------
    flops : int
        FLOPs of the measured work.
    seconds : float
        Its time.
    peak : float or None
        Peak TFLOP/s.
    source : str
        Where ``peak`` comes from (or why it is None).
    per : str
        What ``flops`` and ``seconds`` cover, for the text.

    Returns
    -------
    str
        The cell.

    Example
    -------
    >>> mfu_text(2e12, 1.0, 4.0, "test")
    '**50.0% MFU** (2 TFLOP/s achieved of 4 peak, test; 2,000.0 GFLOP per step)'
    >>> mfu_text(2e12, 1.0, None, "unknown")
    'n/a (2 TFLOP/s achieved; peak unknown; 2,000.0 GFLOP per step)'
    """
    achieved = flops / seconds / 1e12
    work = f"{flops / 1e9:,.1f} GFLOP per {per}"
    if peak is None:
        return f"n/a ({achieved:.3g} TFLOP/s achieved; peak {source}; {work})"
    return (
        f"**{100 * achieved / peak:.1f}% MFU** ({achieved:.3g} TFLOP/s achieved of {peak:g} "
        f"peak, {source}; {work})"
    )
