"""The speed and memory targets (one H100) and how a run measures up to each: the goals of
issue 15 (stage-1 epoch <= 4 min at >= 25% MFU, stage-2 1K steps <= 18 min, batched
decoding >= 2,000 generated tokens/s at batch >= 32 and >= 20x one-by-one, LibriSpeech-960
extraction <= 20 min, a loader delivering >= 2x what stage 1 consumes) and the stage-1 memory
bound of issue 5.

Every target is a ratio measured / target, printed with the direction that meets it, so a
run on any device says how far it is from the goal (the targets themselves are for one
H100; on another device the comparison is indicative only).

Authors
-------
speechmapper developers, 2026
"""

from benchmarks.common import format_duration

GIB = 2**30
LOADER_MARGIN = 2.0  # the loader must deliver this many times what stage 1 consumes

# (part, key in results[part], target, "max" or "min", label, formatter)
TARGETS = (
    ("extract", "ls960_s", 20 * 60, "max", "LibriSpeech-960 feature extraction", format_duration),
    ("stage1", "epoch_s", 4 * 60, "max", "Stage-1 epoch of LibriSpeech-960", format_duration),
    ("stage1", "mfu", 0.25, "min", "Stage-1 model FLOPs utilization", lambda v: f"{100 * v:.1f}%"),
    (
        "stage1",
        "peak_bytes",
        32 * GIB,
        "max",
        "Stage-1 peak memory at the paper's batch",
        lambda v: f"{v / GIB:.2f} GiB",
    ),
    ("stage2", "steps_s", 18 * 60, "max", "Stage-2 1K optimizer steps", format_duration),
    ("decode", "speedup", 20.0, "min", "Batched / one-by-one decoding", lambda v: f"{v:.1f} x"),
    (
        "decode",
        "tokens_per_s",
        2000.0,
        "min",
        "Batched decoding throughput (goal at batch >= 32)",
        lambda v: f"{v:.0f} tokens/s",
    ),
)


def target_rows(results, device):
    """Rows comparing the run's figures with the targets (nothing for parts not run).

    Arguments
    ---------
    results : dict
        Part name -> figures, as filled by the parts.
    device : torch.device
        The device (the targets are set for one H100).

    Returns
    -------
    list of tuple
        (name, value) rows, starting with a header row; empty when no figure applies.

    Example
    -------
    >>> import torch
    >>> rows = target_rows({"stage1": {"epoch_s": 600.0, "mfu": None}}, torch.device("cpu"))
    >>> rows[1]
    ('Stage-1 epoch of LibriSpeech-960', '10.0 min vs <= 4.0 min: measured / target = 2.50 (not met)')
    >>> rows[2][1].startswith("n/a")
    True
    """
    rows = []
    for part, key, target, sense, label, fmt in TARGETS:
        figures = results.get(part)
        if not figures or key not in figures:
            continue
        value = figures[key]
        if value is None:
            rows.append((label, "n/a (no peak FLOP/s for this device: pass --peak-tflops)"))
            continue
        ratio = value / target
        met = ratio <= 1 if sense == "max" else ratio >= 1
        bound = "<=" if sense == "max" else ">="
        rows.append(
            (
                label,
                f"{fmt(value)} vs {bound} {fmt(target)}: measured / target = {ratio:.2f} "
                f"({'met' if met else 'not met'})",
            )
        )
    cache, stage1 = results.get("cache"), results.get("stage1")
    if cache and stage1:
        ratio = cache["throughput"] / stage1["throughput"]
        rows.append(
            (
                "Loader vs stage-1 consumption",
                f"{cache['throughput']:.0f} vs {stage1['throughput']:.0f} s of audio per second: "
                f"read / consumed = {ratio:.2f} ("
                f"{'keeps the margin' if ratio >= LOADER_MARGIN else 'TOO CLOSE: may stall'} "
                f"training; must be >= {LOADER_MARGIN:g})",
            )
        )
    if not rows:
        return []
    where = "this run is on one H100" if "H100" in _name(device) else "indicative only here"
    return [("**Targets (one H100)**", where)] + rows


def _name(device):
    if device.type != "cuda":
        return "cpu"
    import torch

    return torch.cuda.get_device_name(device)
