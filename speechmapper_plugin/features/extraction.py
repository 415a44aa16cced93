"""Resumable extraction of a corpus into the feature cache (``extract_to_cache``): audio
decoding (and a CPU front-end) in loader workers a window ahead, the frozen encoder in batches
of bounded padded audio seconds (``plan_batches``), frame averaging, shards written every few
seconds.

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
    encoder's per-utterance front-end output when it runs in the loader (DataLoader workers)."""

    def __init__(self, items, sample_rate, max_seconds, min_samples, front_end=None):
        self.items = items
        self.sample_rate = sample_rate
        self.max_seconds = max_seconds
        self.min_samples = min_samples
        self.front_end = front_end

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        position, (utt_id, path, *segment) = self.items[index]
        stats = collections.Counter()
        record = {"utt_id": utt_id, "path": path, "index": position, "stats": stats}
        record["error"] = None
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


def plan_batches(lengths, max_length):
    """Groups utterances into encoder batches of at most ``max_length`` padded samples.

    Utterances are sorted by decreasing length (ties by position) and cut greedily: a batch
    that starts with an utterance of ``L`` samples takes the next ``max(1, max_length // L)``
    ones, so its padded size ``count * L`` stays within ``max_length`` and a long utterance
    never pads short ones up to its length (one longer than ``max_length`` is alone). The plan
    depends only on the lengths, and re-planning any set of its whole batches (what a
    resumed run has left: the batches after an interruption, those of a damaged shard) gives
    back the same batches.

    Arguments
    ---------
    lengths : list of int
        Samples per utterance.
    max_length : int
        Padded samples per batch (``batch_seconds * sample_rate``).

    Returns
    -------
    list of list of int
        Positions in ``lengths``, batch by batch, longest first.

    Example
    -------
    >>> plan_batches([3, 10, 4, 600, 5, 4], 12)
    [[3], [1], [4, 2], [5, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches, first = [], 0
    while first < len(order):
        count = max(1, int(max_length) // max(1, lengths[order[first]]))
        batches.append(order[first : first + count])
        first += count
    return batches


def loader_front_end(encoder, device):
    """The front-end that extraction runs per utterance in the loader (CPU workers), or None
    when the encoder's forward computes it: encoders without a separate front-end, and a
    front-end that runs batched on the device (``torchaudio``) when the device is not the CPU.

    Example
    -------
    >>> from speechmapper_plugin.features.front_ends import FbankFrontend
    >>> loader_front_end(FbankFrontend(), torch.device("cpu")) is None
    True
    """
    front_end = getattr(encoder, "front_end", None)
    if front_end is None or not callable(getattr(encoder, "encode_fbank", None)):
        return None
    if getattr(front_end, "on_device", False) and torch.device(device).type != "cpu":
        return None
    return front_end


def _to_device(tensor, device):
    if device.type == "cuda":  # pinned host memory: the copy overlaps with the GPU's work
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def extract_to_cache(
    encoder,
    items,
    folder,
    config,
    *,
    average=1,
    batch_seconds=100.0,
    sort_window=256,
    device="cpu",
    max_seconds=None,
    shard_size=1000,
    flush_seconds=5.0,
    progress=True,
    amp=False,
    num_workers=0,
    lock=None,
):
    """Extracts features of a corpus into a feature cache (resumable, one writer per cache).

    Utterances already in the cache are skipped, so an interrupted run is resumed by running it
    again. The items are read in windows of ``sort_window`` consecutive items (positions in
    ``items``, whatever is already cached); each window's utterances are sorted by length
    and grouped into batches of at most ``batch_seconds`` of padded audio
    (:func:`plan_batches`), so a long file is never padded into a batch of short ones. The
    encoder runs under ``torch.no_grad()``; every ``average`` frames are averaged
    (``average_frames``) and the result is stored in fp16. Missing or unreadable audio,
    utterances longer than ``max_seconds`` and utterances shorter than the encoder's
    ``min_samples`` are skipped, logged with their id and reason, and counted.

    Interruptions: the cache writes whole batches as a shard once ``flush_seconds`` have
    passed since the oldest unwritten one (or ``shard_size`` utterances, or 512 MiB), so a
    killed run loses at most about ``flush_seconds`` plus one batch of work. Because the
    windows and batches depend only on ``items`` and the lengths, a resumed run re-forms the
    batches the interrupted one did not write, and its features are those of an
    uninterrupted run (same batch composition, hence the same padding and kernels). A damaged
    (truncated) shard is set aside as ``*.damaged`` and its utterances are extracted again.

    The cache folder is locked for the whole extraction
    (:class:`~speechmapper_plugin.utils.locks.FolderLock`): a second extraction into it stops
    at once with an error that names the running one.

    The stored cache config is ``config`` plus ``encoder`` (``encoder.describe()``),
    ``average``, ``dim``, ``frame_rate`` (after averaging) and, with ``amp``, ``autocast``;
    ``config`` may repeat these keys only with the same values.

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
    batch_seconds : float
        Padded audio seconds per encoder call (utterances x the longest one); an utterance
        longer than this is encoded alone.
    sort_window : int
        Consecutive items read ahead and sorted by length before batching. Keep it (and
        ``batch_seconds``) when resuming, so that the batches are the same.
    device : str or torch.device
        Device the encoder runs on.
    max_seconds : float, optional
        Longer utterances are skipped.
    shard_size : int
        Utterances per cache shard (at most, give or take one batch).
    flush_seconds : float, optional
        Longest time extracted features wait in memory before being written (None: write
        every ``shard_size`` utterances only).
    progress : bool
        Shows a tqdm progress bar (count, rate, ETA) when the output is a terminal.
    amp : bool
        Runs the encoder under bf16 autocast (``torch.autocast(device.type, torch.bfloat16)``).
    num_workers : int
        DataLoader worker processes that read and decode the audio of the next window while
        the main process runs the encoder; for an encoder with a per-utterance CPU
        ``front_end`` (SeamlessM4T-v2's ``hf`` fbank, or any on a CPU device) they also
        compute it; a front-end that runs on the device (``torchaudio`` on a GPU) runs
        batched in the main process. 0 does everything in the main process. The features are
        the same either way.
    lock : speechmapper_plugin.utils.locks.FolderLock, optional
        The cache folder's lock, when the caller holds it already (a recipe that locks the
        folder before preparing the data).

    Returns
    -------
    dict
        ``extracted``, ``already_cached``, ``skipped_missing`` (missing or unreadable),
        ``skipped_too_long``, ``skipped_too_short``, ``resampled``, ``downmixed``,
        ``audio_seconds`` (extracted audio), ``batches``, ``padded_seconds`` (audio seconds
        the encoder ran on, padding included), ``largest_batch_seconds``,
        ``damaged_shards`` (``[shard, set aside as, reason]`` lists), ``wall_seconds``,
        ``folder``.

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
    if isinstance(batch_seconds, bool) or not float(batch_seconds) > 0:
        raise ValueError(f"batch_seconds must be a number > 0, got {batch_seconds!r}.")
    if isinstance(sort_window, bool) or int(sort_window) != sort_window or sort_window < 1:
        raise ValueError(f"sort_window must be an integer >= 1, got {sort_window!r}.")
    if isinstance(num_workers, bool) or int(num_workers) != num_workers or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}.")
    sort_window = int(sort_window)
    device = torch.device(device)
    derived = {
        "encoder": _encoder_description(encoder),
        "average": int(average),
        "dim": int(encoder.output_dim),
        "frame_rate": float(encoder.frame_rate) / int(average),
    }
    if amp:
        derived["autocast"] = "bfloat16"
    derived = _normalize_config(derived)
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
    batch_samples = int(float(batch_seconds) * sample_rate)
    if isinstance(items, Mapping):
        items = items.items()
    items = [tuple(item) for item in items]

    front_end = loader_front_end(encoder, device)
    amp_ctx = (
        (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16))
        if amp
        else contextlib.nullcontext
    )
    summary = collections.Counter()
    audio_stats = collections.Counter()
    largest = 0.0
    bar = None

    def encode(batch, writer):
        nonlocal largest
        with torch.no_grad(), amp_ctx():
            if front_end is not None:
                fbank, mask = pad_front_end([(r["fbank"], r["mask"]) for r in batch])
                feats, lens = encoder.encode_fbank(_to_device(fbank, device), mask)
            else:
                wavs, wav_lens = _pad_waveforms([r["wav"] for r in batch])
                feats, lens = encoder(_to_device(wavs, device), wav_lens.to(device))
            feats, lens = average_frames(feats.float(), lens, average)
            n_frames = relative_to_frames(lens, feats.shape[1]).tolist()
            feats = feats.to(torch.float16).cpu()
        writer.add_batch(
            [(r["utt_id"], feats[i, :n]) for i, (r, n) in enumerate(zip(batch, n_frames))]
        )
        padded = len(batch) * batch[0]["n_samples"] / sample_rate
        largest = max(largest, padded)
        summary["batches"] += 1
        summary["padded_seconds"] += padded
        summary["extracted"] += len(batch)
        summary["audio_seconds"] += sum(r["n_samples"] for r in batch) / sample_rate
        if bar is not None:
            bar.update(len(batch))

    def encode_window(window, writer):
        plan = plan_batches([r["n_samples"] for r in window], batch_samples)
        for positions in plan:
            encode([window[i] for i in positions], writer)
        window.clear()

    with FeatureCacheWriter(
        folder, cache_config, shard_size=shard_size, flush_seconds=flush_seconds, lock=lock
    ) as writer:
        encoder = encoder.to(device)
        encoder.eval()
        done = writer.done_ids()
        seen = set()
        todo = []
        for position, item in enumerate(items):
            utt_id, path, *_ = item
            if utt_id in seen:
                raise ValueError(
                    f"Duplicate utterance id {utt_id!r} in the extraction list (second "
                    f"path: {path!r}); utterance ids must be unique."
                )
            seen.add(utt_id)
            if utt_id in done:
                summary["already_cached"] += 1
            else:
                todo.append((position, item))
        if progress:  # a tqdm bar on a terminal (utils.progress), silent in logs
            bar = progress_bar(total=len(items), desc="features", unit="utt")
            bar.update(summary["already_cached"])
        try:
            reader = _AudioReader(todo, sample_rate, max_seconds, min_samples, front_end)
            if num_workers > 0 and todo:
                records = torch.utils.data.DataLoader(
                    reader,
                    batch_size=None,
                    num_workers=int(num_workers),
                    collate_fn=_identity,
                    # the next window is read while this one is encoded
                    prefetch_factor=max(2, -(-sort_window // int(num_workers))),
                )
            else:
                records = (reader[index] for index in range(len(reader)))
            window, window_id = [], None
            for record in records:
                if record["index"] // sort_window != window_id:
                    encode_window(window, writer)
                    window_id = record["index"] // sort_window
                audio_stats.update(record["stats"])
                if _skip_reason(record, summary, sample_rate, max_seconds, min_samples):
                    if bar is not None:
                        bar.update(1)
                    continue
                window.append(record)
            encode_window(window, writer)
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
        "batches": summary["batches"],
        "padded_seconds": float(summary["padded_seconds"]),
        "largest_batch_seconds": largest,
        "damaged_shards": [
            [os.path.basename(e.path), os.path.basename(e.set_aside_as), e.reason]
            for e in writer.damaged
        ],
        "wall_seconds": time.time() - start,
        "folder": os.fspath(folder),
    }
    logger.info("Feature extraction into %s: %s", folder, result)
    return result


def _skip_reason(record, summary, sample_rate, max_seconds, min_samples):
    """Counts and logs a record that is not extracted; returns its reason (None: extract it)."""
    utt_id, path = record["utt_id"], record["path"]
    if record["error"] is not None:
        summary["skipped_missing"] += 1
        logger.warning("Skipping utterance %s: %s", utt_id, record["error"])
        return "missing"
    seconds = record["n_samples"] / sample_rate
    if max_seconds is not None and seconds > max_seconds:
        summary["skipped_too_long"] += 1
        logger.warning(
            "Skipping utterance %s: %.2f s is longer than max_seconds=%s (%s)",
            utt_id,
            seconds,
            max_seconds,
            path,
        )
        return "too long"
    if record["n_samples"] < min_samples:
        summary["skipped_too_short"] += 1
        logger.warning(
            "Skipping utterance %s: %d samples, the encoder needs at least %d (%s)",
            utt_id,
            record["n_samples"],
            min_samples,
            path,
        )
        return "too short"
    return None
