"""Benchmark part ``cache``: the stage-1 data loader reading the feature cache.

Stage 1 must never wait for data. This part writes a feature cache of LibriSpeech-like
utterances (random fp16 features of the projector's input size at 25 Hz, durations as in
``--utterance-seconds``, with a manifest of synthetic transcripts and a sentencepiece
tokenizer trained on them) and reads one epoch through the recipe's own loader:
:func:`speechmapper_plugin.data.datasets.load_asr_dataset` (cache reads and tokenization in the
dynamic items), :func:`speechmapper_plugin.data.samplers.train_loader_kwargs` with the dynamic batches
of ``hparams/stage1.yaml`` (``--batch-seconds`` per batch, 40 length buckets) and
SpeechBrain's ``make_dataloader`` (``PaddedBatch``, ``--num-workers``,
``--prefetch-factor``, ``--pin-memory``), each batch moved to the device as ``Brain`` does.
The first epoch runs after the cache's files were evicted from the page cache
(``posix_fadvise(DONTNEED)``: a cold read from disk), the second from memory. Reported:
seconds of audio delivered per second, compared with what stage 1 consumes (see
``targets.py``).

Authors
-------
speechmapper developers, 2026
"""

import logging
import os
import time

import torch

from benchmarks.common import FEATURE_RATE, TINY_PROJECTOR, _sync, utterance_durations
from speechmapper_plugin.data.datasets import feature_lengths, load_asr_dataset
from speechmapper_plugin.data.manifests import write_csv
from speechmapper_plugin.data.samplers import train_loader_kwargs
from speechmapper_plugin.features.cache import FeatureCache, FeatureCacheWriter

logger = logging.getLogger(__name__)

NUM_BUCKETS = 40  # hparams/stage1.yaml
WORDS_PER_SECOND = 2.7  # read speech (LibriSpeech)


def write_corpus(folder, durations, dim, seed):
    """A feature cache, a manifest and a tokenizer for ``len(durations)`` utterances.

    Arguments
    ---------
    folder : pathlib.Path
        Output folder (``cache/``, ``train.csv``, ``tokenizer/``).
    durations : list of float
        Utterance durations in seconds.
    dim : int
        Feature dimension.
    seed : int
        Random seed.

    Returns
    -------
    cache : FeatureCache
        The cache.
    csv_path : str
        The manifest.
    tokenizer : transformers.PreTrainedTokenizerFast
        A tokenizer trained on the transcripts.

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> cache, csv_path, tok = write_corpus(Path(tempfile.mkdtemp()), [1.0, 2.0], dim=4, seed=0)
    >>> len(cache), cache.length("utt0001"), cache.dim
    (2, 50, 4)
    """
    from speechmapper_plugin.tiny.grammar import generate_sentences
    from speechmapper_plugin.tiny.llm import train_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    sentences = generate_sentences(max(50, len(durations)), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    rows, texts = [], []
    with FeatureCacheWriter(
        str(folder / "cache"),
        {"dim": dim, "frame_rate": FEATURE_RATE, "encoder": {"kind": "synthetic"}},
    ) as writer:
        for index, seconds in enumerate(durations):
            utt_id = f"utt{index:04d}"
            frames = max(1, round(seconds * FEATURE_RATE))
            writer.add(utt_id, torch.randn(frames, dim, generator=gen))
            words, text = round(seconds * WORDS_PER_SECOND), []
            while len(text) < words:
                text += sentences[(index + len(text)) % len(sentences)].split()
            texts.append(" ".join(text[: max(1, words)]))
            rows.append(
                {
                    "ID": utt_id,
                    "duration": f"{seconds:.2f}",
                    "wav": f"{utt_id}.flac",
                    "spk_id": "spk",
                    "wrd": texts[-1],
                }
            )
    csv_path = str(folder / "train.csv")
    write_csv(csv_path, rows, ["ID", "duration", "wav", "spk_id", "wrd"])
    tokenizer = train_tokenizer(sentences, folder / "tokenizer")
    return FeatureCache(str(folder / "cache")), csv_path, tokenizer


def evict(folder):
    """Drops the files of ``folder`` from the page cache (after syncing them); returns
    whether the platform allows it (``os.posix_fadvise``).

    Example
    -------
    >>> import tempfile
    >>> evict(tempfile.mkdtemp()) in (True, False)
    True
    """
    if not hasattr(os, "posix_fadvise"):
        return False
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return True


def read_epoch(loader, durations, device, non_blocking):
    """Iterates one epoch as ``Brain`` does (each batch moved to ``device``).

    Arguments
    ---------
    loader : torch.utils.data.DataLoader
        The loader (PaddedBatch batches with ``id`` and ``feats``).
    durations : dict
        Utterance id -> seconds.
    device : torch.device
        Where batches go.
    non_blocking : bool
        Asynchronous copies (pinned memory).

    Returns
    -------
    dict
        ``seconds`` (wall time), ``audio`` (seconds delivered), ``batches``, ``utterances``,
        ``bytes`` (feature bytes delivered).
    """
    audio = num_bytes = 0.0
    batches = utterances = 0
    start = time.perf_counter()
    for batch in loader:
        batch = batch.to(device, non_blocking=non_blocking)
        audio += sum(durations[utt] for utt in batch.id)
        num_bytes += batch.feats.data.numel() * 2  # fp16 on disk
        batches += 1
        utterances += len(batch.id)
    _sync(device)
    return {
        "seconds": time.perf_counter() - start,
        "audio": audio,
        "batches": batches,
        "utterances": utterances,
        "bytes": num_bytes,
    }


def run_cache(args, device, rows, results):
    """Feature-cache read throughput (fills ``rows`` and ``results["cache"]``)."""
    from speechbrain.dataio.dataloader import make_dataloader

    dim = TINY_PROJECTOR["input_dim"] if args.tiny else 1024
    durations = utterance_durations(args.cache_utterances, args.utterance_seconds, args.seed + 2)
    folder = args.work_path / "cache_read"
    start = time.perf_counter()
    cache, csv_path, tokenizer = write_corpus(folder, durations, dim, args.seed)
    write_seconds = time.perf_counter() - start
    dataset = load_asr_dataset(csv_path, cache, tokenizer)
    by_id = {f"utt{i:04d}": seconds for i, seconds in enumerate(durations)}
    pin = bool(args.pin_memory and device.type == "cuda")
    loader_opts = {"batch_size": 16, "num_workers": args.num_workers, "pin_memory": pin}
    if args.num_workers > 0:
        loader_opts["prefetch_factor"] = args.prefetch_factor
    hparams = {
        "dynamic_batching": True,
        "batch_vectors": round(args.batch_seconds * FEATURE_RATE),
        "batches_per_step": 1,
        "num_buckets": NUM_BUCKETS,
        "seed": args.seed,
        "train_dataloader_opts": loader_opts,
    }
    dataset, opts = train_loader_kwargs(dataset, hparams, feature_lengths(dataset, cache))
    cold_ok = evict(cache.folder)
    epochs = []
    for epoch in range(2):
        opts["batch_sampler"].set_epoch(epoch)
        loader = make_dataloader(dataset, **opts)
        epochs.append(read_epoch(loader, by_id, device, non_blocking=pin))
    size = sum(os.path.getsize(os.path.join(cache.folder, n)) for n in os.listdir(cache.folder))
    cold, warm = epochs
    rates = [e["audio"] / e["seconds"] for e in epochs]
    rows += [
        ("**Feature-cache read (stage-1 loader)**", ""),
        (
            "Cache",
            f"{len(durations)} utterances, {sum(durations) / 3600:.2f} h of audio, "
            f"{dim}-dim fp16 at {FEATURE_RATE:g} Hz, {size / 2**30:.2f} GiB "
            f"(written in {write_seconds:.1f} s)",
        ),
        (
            "Loader",
            f"load_asr_dataset + dynamic batches of {args.batch_seconds:g} s "
            f"({NUM_BUCKETS} buckets), {args.num_workers} workers, prefetch "
            f"{args.prefetch_factor if args.num_workers else '-'}, pin_memory {pin}; "
            f"{cold['batches']} batches of {cold['utterances'] / cold['batches']:.1f} "
            "utterances on average",
        ),
        (
            "Epoch 1" + (" (evicted from the page cache)" if cold_ok else " (page cache kept)"),
            f"**{rates[0]:.0f} s of audio per second** ({cold['seconds']:.2f} s, "
            f"{cold['bytes'] / cold['seconds'] / 2**20:.0f} MiB/s of features)",
        ),
        (
            "Epoch 2 (page cache warm)",
            f"{rates[1]:.0f} s of audio per second ({warm['seconds']:.2f} s)",
        ),
    ]
    if cold["utterances"] != len(durations):
        raise RuntimeError(f"The loader delivered {cold['utterances']} of {len(durations)}.")
    results["cache"] = {
        "throughput": min(rates),
        "cold_throughput": rates[0],
        "warm_throughput": rates[1],
    }
