"""Benchmark part ``extract``: SFM feature extraction through the full-size Seamless-v2 encoder.

A random-init SeamlessM4T-v2-large speech encoder (``configs/seamless-m4t-v2-large.json``:
the published architecture, 24 conformer layers of width 1024) is saved as a checkpoint and
loaded by the recipes' own :class:`speechmapper_plugin.features.seamless.SeamlessSpeechEncoder`
(layer 24, ``--sfm-dtype``; random weights cost the same as trained ones). Synthetic 16 kHz
FLAC files of LibriSpeech-like durations are then extracted by
:func:`speechmapper_plugin.features.extraction.extract_to_cache`, the function ``extract_features.py``
runs: audio decoding, the model's fbank front-end (``hf``: CPU, in the workers;
``torchaudio``: batched on the device), the encoder in batches of at most
``--extract-batch-seconds`` of padded audio, averaging every 2 frames and the fp16 cache
writes, with ``--num-workers`` processes reading the audio (and computing a CPU fbank) beside
the encoder (``extract_features.py``: ``extract_num_workers``, ``extract_batch_seconds``).
Reported: end-to-end seconds of audio per second and the projected time for LibriSpeech-960,
plus the front-end and the encoder measured apart on the same batches (which one bounds the
pipeline) and the encoder's model FLOPs utilization.

Authors
-------
speechmapper developers, 2026
"""

import logging
import time

import numpy as np
import torch

from benchmarks.common import (
    LIBRISPEECH_HOURS,
    PeakMemory,
    _sync,
    format_duration,
    load_llm_config,
    utterance_durations,
)
from benchmarks.flops import count_flops, mfu_text, peak_tflops
from speechmapper_plugin.features.audio import load_audio
from speechmapper_plugin.features.cache import FeatureCache
from speechmapper_plugin.features.extraction import extract_to_cache, plan_batches
from speechmapper_plugin.features.frames import _pad_waveforms
from speechmapper_plugin.features.seamless import SeamlessSpeechEncoder

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
AVERAGE = 2  # the paper averages every 2 encoder frames
SORT_WINDOW = 128  # the features YAMLs' extract_sort_window
TINY_SFM = dict(
    hidden_size=32,
    speech_encoder_layers=2,
    speech_encoder_attention_heads=2,
    speech_encoder_intermediate_size=64,
)


def build_sfm_checkpoint(config, folder, dtype):
    """Saves a random-init SeamlessM4T-v2 speech encoder and its feature extractor.

    Arguments
    ---------
    config : transformers.SeamlessM4Tv2Config
        The architecture.
    folder : pathlib.Path
        Where the checkpoint goes (``config.json``, ``model.safetensors``,
        ``preprocessor_config.json``).
    dtype : torch.dtype
        Dtype of the saved weights.

    Returns
    -------
    int
        Number of parameters.

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> config = load_llm_config("seamless-m4t-v2-large", TINY_SFM)
    >>> build_sfm_checkpoint(config, Path(tempfile.mkdtemp()), torch.bfloat16) > 0
    True
    """
    from transformers import SeamlessM4TFeatureExtractor
    from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import (
        SeamlessM4Tv2SpeechEncoder,
    )

    model = SeamlessM4Tv2SpeechEncoder(config).to(dtype)
    model.save_pretrained(str(folder))
    SeamlessM4TFeatureExtractor().save_pretrained(str(folder))
    return sum(p.numel() for p in model.parameters())


def write_wavs(folder, durations, seed):
    """Writes one 16 kHz FLAC file of noise per duration (as LibriSpeech, FLAC).

    Arguments
    ---------
    folder : pathlib.Path
        Output folder.
    durations : list of float
        Seconds.
    seed : int
        Random seed.

    Returns
    -------
    list of tuple
        ``(utt_id, path)`` pairs for ``extract_to_cache``.

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> items = write_wavs(Path(tempfile.mkdtemp()), [0.5, 1.0], seed=0)
    >>> [utt for utt, _ in items], load_audio(items[1][1]).shape
    (['utt0000', 'utt0001'], torch.Size([16000]))
    """
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    items = []
    for index, seconds in enumerate(durations):
        samples = (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype("float32")
        path = folder / f"utt{index:04d}.flac"
        soundfile.write(str(path), samples, SAMPLE_RATE, format="FLAC")
        items.append((f"utt{index:04d}", str(path)))
    return items


def _batches(items, batch_seconds):
    """The audio of ``items`` in the encoder batches ``extract_to_cache`` forms."""
    batches = []
    for first in range(0, len(items), SORT_WINDOW):
        wavs = [load_audio(path) for _, path in items[first : first + SORT_WINDOW]]
        plan = plan_batches([len(w) for w in wavs], int(batch_seconds * SAMPLE_RATE))
        batches += [_pad_waveforms([wavs[i] for i in batch]) for batch in plan]
    return batches


def run_extract(args, device, rows, results):
    """Feature-extraction throughput (fills ``rows`` and ``results["extract"]``)."""
    config = load_llm_config(args.sfm_config, TINY_SFM if args.tiny else None)
    dtype = torch.bfloat16 if args.sfm_dtype == "bf16" else torch.float32
    layer = min(24, int(config.speech_encoder_layers))
    work = args.work_path / "extract"
    start = time.perf_counter()
    n_params = build_sfm_checkpoint(config, work / "sfm", dtype)
    encoder = SeamlessSpeechEncoder(
        str(work / "sfm"), layer=layer, dtype=dtype, front_end=args.sfm_front_end
    )
    build_seconds = time.perf_counter() - start
    durations = utterance_durations(args.extract_utterances, args.utterance_seconds, args.seed)
    items = write_wavs(work / "wavs", durations, args.seed)
    audio_seconds = sum(durations)

    def extract(folder, subset):
        return extract_to_cache(
            encoder,
            subset,
            str(folder),
            {},
            average=AVERAGE,
            batch_seconds=args.extract_batch_seconds,
            sort_window=SORT_WINDOW,
            device=device,
            progress=False,
            num_workers=args.num_workers,
        )

    extract(work / "warmup", items[:4])  # CUDA context, kernels, autotuning
    _sync(device)
    with PeakMemory(device) as mem:
        summary = extract(work / "cache", items)
        _sync(device)
    if summary["extracted"] != len(items):
        raise RuntimeError(f"Only {summary['extracted']} of {len(items)} utterances extracted.")
    cache = FeatureCache(str(work / "cache"))
    e2e = audio_seconds / summary["wall_seconds"]

    # The two halves of the encoder apart, on the same audio and batches.
    batches = _batches(items, args.extract_batch_seconds)
    on_device = encoder.front_end.on_device and device.type != "cpu"
    _sync(device)
    start = time.perf_counter()
    fbanks = [encoder.fbank(wavs, lens) for wavs, lens in batches]
    _sync(device)
    fbank_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        for features, mask in fbanks:
            encoder.encode_fbank(features, mask)
    _sync(device)
    encoder_seconds = time.perf_counter() - start
    with torch.no_grad():
        flops = sum(count_flops(lambda f=f, m=m: encoder.encode_fbank(f, m))[0] for f, m in fbanks)
    peak, peak_source = peak_tflops(device, args.sfm_dtype, args.peak_tflops)
    fbank_rate = audio_seconds / fbank_seconds
    encoder_rate = audio_seconds / encoder_seconds
    ls960 = LIBRISPEECH_HOURS * 3600 / e2e
    where = "device, batched" if on_device else "CPU, one process"
    bound = f"the fbank front-end ({where})" if fbank_rate < encoder_rate else "the encoder"
    rows += [
        ("**Feature extraction**", ""),
        (
            "Encoder",
            f"{'tiny ' if args.tiny else ''}{args.sfm_config} speech encoder, random init, "
            f"layer {layer} of {config.speech_encoder_layers} ({n_params:,} parameters saved, "
            f"{sum(p.numel() for p in encoder.parameters()):,} loaded), "
            f"{args.sfm_dtype}; checkpoint built and loaded in {build_seconds:.1f} s",
        ),
        (
            "Audio",
            f"{len(items)} FLAC files, {audio_seconds:.0f} s ({min(durations):.1f}-"
            f"{max(durations):.1f} s), {summary['batches']} batches of at most "
            f"{args.extract_batch_seconds:g} s of padded audio sorted by length "
            f"({summary['padded_seconds']:.0f} s padded); {args.num_workers} worker processes "
            f"decode the audio{'' if on_device else ' and compute the fbank'}",
        ),
        (
            "End to end (extract_to_cache)",
            f"**{e2e:.1f} s of audio per second** ({summary['wall_seconds']:.2f} s: decoding, "
            f"fbank, encoder, average by {AVERAGE}, fp16 cache of {cache.dim} dims at "
            f"{cache.config['frame_rate']:g} Hz)",
        ),
        (
            f"Front-end alone ({args.sfm_front_end} fbank, {where})",
            f"{fbank_rate:.1f} s of audio per second ({fbank_seconds:.2f} s)",
        ),
        (
            "Encoder alone (device)",
            f"{encoder_rate:.1f} s of audio per second ({encoder_seconds:.2f} s); bound by {bound}",
        ),
        (
            "Encoder FLOPs utilization",
            mfu_text(flops, encoder_seconds, peak, peak_source, per="all the audio"),
        ),
        ("Peak memory", mem.describe()),
        (
            f"LibriSpeech-{LIBRISPEECH_HOURS:g} extraction",
            f"**{format_duration(ls960)}** at the end-to-end rate",
        ),
    ]
    results["extract"] = {
        "throughput": e2e,
        "ls960_s": ls960,
        "fbank_throughput": fbank_rate,
        "encoder_throughput": encoder_rate,
        "extracted": summary["extracted"],
    }
