"""Model FLOPs and model FLOPs utilization (MFU) for the benchmark tables.

FLOPs are counted, not estimated by hand: :func:`count_flops` runs a callable once under
``torch.utils.flop_counter.FlopCounterMode``, which adds up the matrix products,
convolutions and attention kernels of the forward and backward passes (element-wise ops,
norms and the optimizer update are not counted, as usual for MFU). MFU is then
``flops / seconds / peak`` with the device's dense peak at the run's precision
(:func:`peak_tflops`: a table of published data-sheet figures, or ``--peak-tflops``).

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
    """
    with FlopCounterMode(display=False) as counter:
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
