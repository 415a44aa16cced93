"""Frame arithmetic shared by the encoders and the cache: relative -> frame lengths, averaging
every ``k`` valid frames (paper Sec. 3: SeamlessM4T-v2 features averaged every 2 frames),
padding, and dtype names.

Authors
-------
speechmapper developers, 2026
"""

import math

import torch


def relative_to_frames(lens, total):
    """Converts SpeechBrain relative lengths into integer frame counts.

    Arguments
    ---------
    lens : torch.Tensor
        Relative lengths in (0, 1], shape ``[B]``.
    total : int
        Padded length the relative lengths refer to.

    Returns
    -------
    torch.LongTensor
        Frame counts, shape ``[B]``, within ``[0, total]``.

    Example
    -------
    >>> relative_to_frames(torch.tensor([1.0, 0.5]), 10)
    tensor([10,  5])
    """
    return torch.round(lens.float() * total).long().clamp(0, total)


def average_frames(feats, lens, k):
    """Averages every ``k`` consecutive valid frames.

    The last, partial group of an utterance averages only its valid frames and padding never
    leaks into valid outputs (padded outputs are zero). ``k=1`` returns the inputs unchanged.

    Arguments
    ---------
    feats : torch.Tensor
        Features, shape ``[B, T, D]``.
    lens : torch.Tensor
        Relative lengths (SpeechBrain convention), shape ``[B]``.
    k : int
        Number of frames averaged together (>= 1).

    Returns
    -------
    feats : torch.Tensor
        Shape ``[B, ceil(T / k), D]``, same dtype as the input.
    lens : torch.Tensor
        Relative lengths of the output: ``ceil(n / k) / ceil(T / k)`` for ``n`` valid frames.

    Example
    -------
    >>> x = torch.arange(5.0).view(1, 5, 1)
    >>> y, y_lens = average_frames(x, torch.tensor([1.0]), 2)
    >>> y.flatten().tolist(), y_lens.tolist()
    ([0.5, 2.5, 4.0], [1.0])
    """
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"average_frames: k must be a positive integer, got {k!r}.")
    k = int(k)
    if feats.dim() != 3:
        raise ValueError(f"average_frames expects feats [B, T, D], got shape {tuple(feats.shape)}.")
    if k == 1:
        return feats, lens
    batch, total, dim = feats.shape
    n_valid = relative_to_frames(lens, total).to(feats.device)
    total_out = math.ceil(total / k)
    mask = torch.arange(total, device=feats.device)[None, :] < n_valid[:, None]
    x = feats.float() * mask[..., None]
    pad = total_out * k - total
    x = torch.nn.functional.pad(x, (0, 0, 0, pad))
    mask = torch.nn.functional.pad(mask, (0, pad))
    sums = x.view(batch, total_out, k, dim).sum(dim=2)
    counts = mask.view(batch, total_out, k).sum(dim=2).clamp(min=1)
    out = (sums / counts[..., None]).to(feats.dtype)
    n_out = torch.div(n_valid + k - 1, k, rounding_mode="floor")
    return out, (n_out.float() / total_out).to(lens.device)


def _pad_waveforms(wavs):
    """Right-pads a list of 1-D waveforms into ``[B, S]`` with relative lengths."""
    lengths = torch.tensor([w.shape[0] for w in wavs], dtype=torch.long)
    longest = int(lengths.max())
    batch = torch.zeros(len(wavs), longest, dtype=torch.float32)
    for i, wav in enumerate(wavs):
        batch[i, : wav.shape[0]] = wav
    return batch, lengths.float() / longest


def _pad_features(feats_list):
    """Right-pads a list of ``[T_i, D]`` tensors into ``[B, T, D]`` with relative lengths."""
    lengths = torch.tensor([f.shape[0] for f in feats_list], dtype=torch.long)
    longest = int(lengths.max())
    first = feats_list[0]
    out = first.new_zeros(len(feats_list), longest, first.shape[1])
    for i, feats in enumerate(feats_list):
        out[i, : feats.shape[0]] = feats
    return out, lengths.float().to(first.device) / longest


def _as_dtype(dtype):
    """Parses a torch dtype given as a dtype or a string (YAML)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    key = str(dtype).replace("torch.", "").lower()
    if key not in names:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of {sorted(names)}.")
    return names[key]


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")
