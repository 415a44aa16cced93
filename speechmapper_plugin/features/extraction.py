"""Resumable extraction of a corpus into the feature cache (``extract_to_cache``): audio
decoding and front-end in loader workers, the frozen encoder in batches, frame averaging.

Authors
-------
speechmapper developers, 2026
"""

import collections
import contextlib
import logging
import os
import time
from collections.abc import Mapping

import torch

from speechmapper_plugin.features.audio import AudioError, load_audio
from speechmapper_plugin.features.cache import FeatureCacheWriter, _normalize_config
from speechmapper_plugin.features.frames import _pad_waveforms, average_frames, relative_to_frames
from speechmapper_plugin.features.front_ends import pad_front_end
from speechmapper_plugin.utils.progress import progress_bar

logger = logging.getLogger(__name__)


def _encoder_description(encoder):
    describe = getattr(encoder, "describe", None)
    if callable(describe):
        return describe()
    return {"class": f"{type(encoder).__module__}.{type(encoder).__qualname__}"}


def _identity(record):
    return record


class _AudioReader(torch.utils.data.Dataset):
    """Reads one extraction item: its audio, checked against the length limits, and the
    encoder's per-utterance front-end output when it has one (run in DataLoader workers)."""

    def __init__(self, items, sample_rate, max_seconds, min_samples, front_end=None):
        self.items = items
        self.sample_rate = sample_rate
        self.max_seconds = max_seconds
        self.min_samples = min_samples
        self.front_end = front_end

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        utt_id, path, *segment = self.items[index]
        stats = collections.Counter()
        record = {"utt_id": utt_id, "path": path, "stats": stats, "error": None}
        try:
            wav = load_audio(path, self.sample_rate, stats, *segment)
        except AudioError as err:
            record["error"] = str(err)
            return record
        record["n_samples"] = n = int(wav.shape[0])
        too_long = self.max_seconds is not None and n / self.sample_rate > self.max_seconds
        if too_long or n < self.min_samples:
            return record  # skipped (and logged) by the main process
        if self.front_end is not None:
            record["fbank"], record["mask"] = self.front_end(wav)
        else:
            record["wav"] = wav
        return record


def extract_to_cache(
    encoder,
    items,
    folder,
    config,
    *,
    average=1,
    batch_size=8,
    device="cpu",
    max_seconds=None,
    shard_size=1000,
    progress=True,
    amp=False,
    num_workers=0,
):
    """Extracts features of a corpus into a feature cache (resumable).

    Utterances already in the cache are skipped, so an interrupted run is resumed by running it
    again. Audio is read ``batch_size * 16`` utterances at a time and batched by decreasing
    length to limit padding; the encoder runs under ``torch.no_grad()``; every ``average``
    frames are averaged (``average_frames``) and the result is stored in fp16. Missing or
    unreadable audio, utterances longer than ``max_seconds`` and utterances shorter than the
    encoder's ``min_samples`` are skipped, logged with their id and reason, and counted.

    The stored cache config is ``config`` plus ``encoder`` (``encoder.describe()``),
    ``average``, ``dim`` and ``frame_rate`` (after averaging); ``config`` may repeat these
    keys only with the same values.

    Arguments
    ---------
    encoder : torch.nn.Module
        An encoder with the interface of this module (``FbankFrontend``...).
    items : iterable of tuple, or dict
        ``(utt_id, wav_path)`` pairs, or ``(utt_id, wav_path, start, stop)`` for segments in
        seconds (or a ``{utt_id: wav_path}`` dict).
    folder : str
        Cache folder.
    config : dict
        Extra JSON-serialisable settings to store (e.g. the YAML encoder section).
    average : int
        Frames averaged together (the paper uses 2).
    batch_size : int
        Utterances per encoder call.
    device : str or torch.device
        Device the encoder runs on.
    max_seconds : float, optional
        Longer utterances are skipped.
    shard_size : int
        Utterances per cache shard.
    progress : bool
        Shows a tqdm progress bar (count, rate, ETA) when the output is a terminal.
    amp : bool
        Runs the encoder under bf16 autocast (``torch.autocast(device.type, torch.bfloat16)``).
    num_workers : int
        DataLoader worker processes that read and decode the audio and, for encoders with a
        per-utterance ``front_end`` (SeamlessM4T-v2's fbank), compute it, while the main
        process runs the encoder; 0 does everything in the main process. The features are
        the same either way.

    Returns
    -------
    dict
        ``extracted``, ``already_cached``, ``skipped_missing`` (missing or unreadable),
        ``skipped_too_long``, ``skipped_too_short``, ``resampled``, ``downmixed``,
        ``audio_seconds`` (extracted audio), ``wall_seconds``, ``folder``.

    Example
    -------
    >>> import numpy as np, soundfile, tempfile, torch
    >>> from speechmapper_plugin.features.cache import FeatureCache
    >>> from speechmapper_plugin.features.front_ends import FbankFrontend
    >>> tmp = tempfile.TemporaryDirectory()
    >>> wav = os.path.join(tmp.name, "a.wav")
    >>> soundfile.write(wav, np.zeros(16000, dtype="float32"), 16000)
    >>> out = os.path.join(tmp.name, "cache")
    >>> summary = extract_to_cache(
    ...     FbankFrontend(), [("a", wav), ("b", "missing.wav")], out, {}, average=2,
    ...     progress=False,
    ... )
    >>> summary["extracted"], summary["skipped_missing"], FeatureCache(out)["a"].shape
    (1, 1, torch.Size([51, 80]))
    >>> tmp.cleanup()
    """
    start = time.time()
    if isinstance(average, bool) or int(average) != average or average < 1:
        raise ValueError(f"average must be a positive integer, got {average!r}.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
    if isinstance(num_workers, bool) or int(num_workers) != num_workers or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}.")
    device = torch.device(device)
    encoder = encoder.to(device)
    encoder.eval()
    derived = _normalize_config(
        {
            "encoder": _encoder_description(encoder),
            "average": int(average),
            "dim": int(encoder.output_dim),
            "frame_rate": float(encoder.frame_rate) / int(average),
        }
    )
    user_config = _normalize_config(config)
    for key, value in derived.items():
        if key in user_config and user_config[key] != value:
            raise ValueError(
                f"config[{key!r}]={user_config[key]!r} contradicts the extraction settings "
                f"({value!r})."
            )
    cache_config = {**user_config, **derived}
    sample_rate = int(getattr(encoder, "sample_rate", 16000))
    min_samples = int(getattr(encoder, "min_samples", 1))
    window = int(batch_size) * 16
    if isinstance(items, Mapping):
        items = items.items()
    total = len(items) if hasattr(items, "__len__") else None

    summary = collections.Counter()
    audio_stats = collections.Counter()
    bar = None
    if progress:  # a tqdm bar on a terminal (utils.progress), silent in logs
        bar = progress_bar(total=total, desc="features", unit="utt")

    front_end = getattr(encoder, "front_end", None)
    if front_end is not None and not callable(getattr(encoder, "encode_fbank", None)):
        front_end = None

    def encode(pending, writer):
        pending.sort(key=lambda record: record["n_samples"], reverse=True)
        for first in range(0, len(pending), batch_size):
            chunk = pending[first : first + batch_size]
            amp_ctx = (
                torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                if amp
                else contextlib.nullcontext()
            )
            with torch.no_grad(), amp_ctx:
                if front_end is not None:
                    fbank, mask = pad_front_end([(r["fbank"], r["mask"]) for r in chunk])
                    feats, lens = encoder.encode_fbank(fbank, mask)
                else:
                    wavs, wav_lens = _pad_waveforms([r["wav"] for r in chunk])
                    feats, lens = encoder(wavs.to(device), wav_lens.to(device))
            feats, lens = average_frames(feats.float(), lens, average)
            n_frames = relative_to_frames(lens, feats.shape[1]).tolist()
            for i, (record, n) in enumerate(zip(chunk, n_frames)):
                writer.add(record["utt_id"], feats[i, :n])
                summary["extracted"] += 1
                summary["audio_seconds"] += record["n_samples"] / sample_rate
            if bar is not None:
                bar.update(len(chunk))
        pending.clear()

    try:
        with FeatureCacheWriter(folder, cache_config, shard_size=shard_size) as writer:
            done = writer.done_ids()
            seen = set()
            todo = []
            for item in items:
                utt_id, path, *_ = item
                if utt_id in seen:
                    raise ValueError(
                        f"Duplicate utterance id {utt_id!r} in the extraction list (second "
                        f"path: {path!r}); utterance ids must be unique."
                    )
                seen.add(utt_id)
                if utt_id in done:
                    summary["already_cached"] += 1
                    if bar is not None:
                        bar.update(1)
                    continue
                todo.append(tuple(item))
            reader = _AudioReader(todo, sample_rate, max_seconds, min_samples, front_end)
            if num_workers > 0 and todo:
                records = torch.utils.data.DataLoader(
                    reader,
                    batch_size=None,
                    num_workers=int(num_workers),
                    collate_fn=_identity,
                    prefetch_factor=max(2, window // int(num_workers)),
                )
            else:
                records = (reader[index] for index in range(len(reader)))
            pending = []
            for record in records:
                utt_id, path = record["utt_id"], record["path"]
                audio_stats.update(record["stats"])
                reason = None
                if record["error"] is not None:
                    summary["skipped_missing"] += 1
                    logger.warning("Skipping utterance %s: %s", utt_id, record["error"])
                    reason = "missing"
                elif max_seconds is not None and record["n_samples"] / sample_rate > max_seconds:
                    summary["skipped_too_long"] += 1
                    logger.warning(
                        "Skipping utterance %s: %.2f s is longer than max_seconds=%s (%s)",
                        utt_id,
                        record["n_samples"] / sample_rate,
                        max_seconds,
                        path,
                    )
                    reason = "too long"
                elif record["n_samples"] < min_samples:
                    summary["skipped_too_short"] += 1
                    logger.warning(
                        "Skipping utterance %s: %d samples, the encoder needs at least %d (%s)",
                        utt_id,
                        record["n_samples"],
                        min_samples,
                        path,
                    )
                    reason = "too short"
                if reason is not None:
                    if bar is not None:
                        bar.update(1)
                    continue
                pending.append(record)
                if len(pending) >= window:
                    encode(pending, writer)
            encode(pending, writer)
    finally:
        if bar is not None:
            bar.close()

    result = {
        "extracted": summary["extracted"],
        "already_cached": summary["already_cached"],
        "skipped_missing": summary["skipped_missing"],
        "skipped_too_long": summary["skipped_too_long"],
        "skipped_too_short": summary["skipped_too_short"],
        "resampled": audio_stats["resampled"],
        "downmixed": audio_stats["downmixed"],
        "audio_seconds": float(summary["audio_seconds"]),
        "wall_seconds": time.time() - start,
        "folder": os.fspath(folder),
    }
    logger.info("Feature extraction into %s: %s", folder, result)
    return result
