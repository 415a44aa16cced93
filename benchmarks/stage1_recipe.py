"""Benchmark part ``stage1``: the stage-1 recipe's own training loop, and its step alone.

The measured loop is the recipe's: ``hparams/stage1.yaml`` loaded with overrides (the
paper-size projector, the embedding table read by ``EmbeddingTable.from_pretrained``, AdamW,
the warm-up + cosine schedule, the curve log every ``log_interval`` steps, the checkpointer),
``Stage1Brain`` through SpeechBrain's ``fit``, over a synthetic feature cache of LibriSpeech-like
utterances read by the recipe's loader (``load_asr_dataset``, ``train_loader_kwargs``: dynamic
batches of ``--batch-seconds``, 40 buckets, ``--num-workers``). The LLM is replaced by a folder
holding only what stage 1 reads: a random bf16 embedding table of the LLM's size and a
tokenizer trained on the synthetic transcripts.

Two epochs run: the first warms up (loader workers, ``torch.compile``, CUDA-graph recording
of each bucket shape), the second is timed from its ``--skip-batches``-th batch to its end,
with one device synchronization at each end. The speed levers of the recipe are set from
the command line (``--precision``, ``--pad-multiple``, ``--compile`` / ``--compile-mode``,
``--fused-adamw``, ``--pin-memory``, ``--deferred-sync``) as the YAML keys of the same names.
On CUDA the timed window also runs under ``torch.cuda.set_sync_debug_mode("warn")``, which
counts every host synchronization.

Then the step alone: ``Stage1Brain.fit_batch`` in a loop on one fixed, collated batch of the
paper's size (``--utterances`` x ``--batch-seconds``; no loader), timed over ``--steps`` steps
after ``--warmup``, and its FLOPs counted on the eager objective (MFU). The recipe's MFU uses
the FLOPs per input frame of that batch times the frames trained in the timed window (padding
frames are not useful work and are not counted).

Authors
-------
speechmapper developers, 2026
"""

import json
import shutil
import time
import warnings

import speechbrain as sb
import torch

from benchmarks.cache_read import write_corpus
from benchmarks.common import (
    FEATURE_RATE,
    LIBRISPEECH_HOURS,
    REPO_ROOT,
    TINY_PROJECTOR,
    PeakMemory,
    _sync,
    format_duration,
    random_token_ids,
    utterance_durations,
)
from benchmarks.flops import count_flops, matmul_precision, mfu_text, peak_tflops
from speechmapper_plugin.data.datasets import feature_lengths, load_asr_dataset
from speechmapper_plugin.data.padding import BucketPaddedBatch
from speechmapper_plugin.data.samplers import train_loader_kwargs
from speechmapper_plugin.training.stage1 import Stage1Brain

PAPER_STAGE1_STEPS = 2_000_000
SYNC_WARNING = "synchronizing"


def write_embedding_folder(folder, tokenizer_folder, vocab, dim, seed):
    """A model folder with only what stage 1 reads: ``config.json``, a random bf16 input-
    embedding table ``model.embed_tokens.weight`` [vocab, dim] (std 0.02) and the tokenizer.

    Arguments
    ---------
    folder : pathlib.Path
        The folder to write.
    tokenizer_folder : pathlib.Path
        A saved tokenizer (its files are copied).
    vocab, dim : int
        Table size.
    seed : int
        Seed of the random table.

    Returns
    -------
    pathlib.Path
        The folder (``EmbeddingTable.from_pretrained`` loads it).

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from speechmapper_plugin.tiny.llm import train_tokenizer
    >>> from speechmapper_plugin.models.embeddings import EmbeddingTable
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = train_tokenizer(["the cat sat", "the dog ran"], root / "tok")
    >>> table = EmbeddingTable.from_pretrained(write_embedding_folder(root / "m", root / "tok", 300, 8, 0))
    >>> tuple(table.weight.shape), table.weight.dtype
    ((300, 8), torch.bfloat16)
    """
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for path in tokenizer_folder.iterdir():
        if path.is_file():
            shutil.copy(path, folder / path.name)
    gen = torch.Generator().manual_seed(seed)
    weight = (torch.randn(vocab, dim, generator=gen) * 0.02).to(torch.bfloat16)
    save_file({"model.embed_tokens.weight": weight}, str(folder / "model.safetensors"))
    config = {"model_type": "llama", "hidden_size": dim, "vocab_size": vocab}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def recipe_overrides(args, paths, llm_dim):
    """``hparams/stage1.yaml`` overrides of the benchmark run (levers from the command line).

    Example
    -------
    >>> import argparse
    >>> args = argparse.Namespace(tiny=True, batch_seconds=40.96, num_workers=0, precision="bf16",
    ...     pad_multiple=64, compile=True, compile_mode="default", fused_adamw=True,
    ...     pin_memory=False, deferred_sync=True, seed=1)
    >>> o = recipe_overrides(args, {"out": "o", "llm": "l", "features": "f", "manifests": "m"}, 64)
    >>> o["compile_step"], o["pad_multiple"], o["fused_adamw"], o["block_dims"]
    (True, 64, True, [32, 48])
    """
    overrides = {
        "seed": args.seed,
        "data_folder": paths["out"],
        "output_folder": paths["out"],
        "cache_folder": paths["out"],
        "manifest_folder": paths["manifests"],
        "feature_folder": paths["features"],
        "llm_source": paths["llm"],
        "llm_dim": llm_dim,
        "number_of_epochs": 2,
        # one micro-batch of the benchmark's size per optimizer step (issue 14's global keys)
        "batch_vectors": int(round(args.batch_seconds * FEATURE_RATE)),
        "batches_per_step": 1,
        "num_workers": args.num_workers,
        "precision": args.precision,
        "pad_multiple": args.pad_multiple,
        "compile_step": bool(args.compile),
        "compile_step_mode": args.compile_mode,
        "fused_adamw": True if args.fused_adamw else None,
        "pin_memory": bool(args.pin_memory),
        "deferred_sync": bool(args.deferred_sync),
    }
    if args.tiny:
        overrides.update(
            feature_dim=TINY_PROJECTOR["input_dim"],
            block_dims=list(TINY_PROJECTOR["block_dims"]),
            output_dims=list(TINY_PROJECTOR["output_dims"]),
            num_layers=TINY_PROJECTOR["num_layers"],
            nhead=TINY_PROJECTOR["nhead"],
            d_ffn=list(TINY_PROJECTOR["block_dims"]),
            log_interval=4,
        )
    return overrides


def levers_text(args):
    """The recipe's speed levers of the run, for the table.

    Example
    -------
    >>> import argparse
    >>> levers_text(argparse.Namespace(precision="fp32", pad_multiple=0, compile=False,
    ...     compile_mode="reduce-overhead", fused_adamw=False, pin_memory=False, deferred_sync=False))
    'none (YAML defaults: fp32, eager, unpadded, foreach AdamW, pageable memory, per-batch host reads)'
    """
    chosen = []
    if args.precision == "bf16":
        chosen.append("bf16 autocast")
    if args.pad_multiple:
        chosen.append(f"pad_multiple {args.pad_multiple}")
    if args.compile:
        chosen.append(f"compile_step ({args.compile_mode})")
    if args.fused_adamw:
        chosen.append("fused AdamW")
    if args.pin_memory:
        chosen.append("pin_memory")
    if args.deferred_sync:
        chosen.append("deferred_sync")
    return ", ".join(chosen) or (
        "none (YAML defaults: fp32, eager, unpadded, foreach AdamW, pageable memory, "
        "per-batch host reads)"
    )


class TimedStage1Brain(Stage1Brain):
    """``Stage1Brain`` that times its last training epoch from its ``skip``-th batch to its end
    (one device synchronization at each end) and counts what it trained meanwhile."""

    timed_epoch = 2
    skip = 5

    window = timed = None

    def on_stage_start(self, stage, epoch=None):
        super().on_stage_start(stage, epoch)
        self._epoch, self._batch_index = epoch, 0
        self.window = None

    def on_fit_batch_start(self, batch, should_step):
        super().on_fit_batch_start(batch, should_step)
        if self._epoch == self.timed_epoch and self._batch_index == self.skip:
            _sync(torch.device(self.device))
            self.window = {"start": time.perf_counter(), "steps": 0, "frames": 0, "padded": 0}
            self.window["utterances"] = 0
            if torch.device(self.device).type == "cuda":
                torch.cuda.set_sync_debug_mode("warn")
        if self.window is not None:
            feats, lens = batch.feats
            self.window["steps"] += 1
            self.window["utterances"] += feats.shape[0]
            self.window["frames"] += int(torch.round(lens * feats.shape[1]).sum())
            self.window["padded"] += feats.shape[0] * feats.shape[1]
        self._batch_index += 1

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN and self.window is not None:
            if torch.device(self.device).type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
            _sync(torch.device(self.device))
            self.window["seconds"] = time.perf_counter() - self.window["start"]
            self.timed, self.window = self.window, None
        super().on_stage_end(stage, stage_loss, epoch)


def _corpus(args, dim):
    """The synthetic feature cache, manifest and tokenizer of the ``stage1`` part."""
    durations = utterance_durations(args.stage1_utterances, args.utterance_seconds, args.seed + 3)
    folder = args.work_path / "stage1_corpus"
    cache, csv_path, tokenizer = write_corpus(folder, durations, dim, args.seed)
    return folder, durations, cache, csv_path, tokenizer


def _fixed_batch(args, dim, vocab, frames, collate):
    gen = torch.Generator().manual_seed(args.seed)
    num_tokens = max(1, round(args.tokens_per_second * frames / FEATURE_RATE))
    tokens = random_token_ids(args.utterances, num_tokens, vocab, gen)
    examples = [
        {
            "id": f"fixed{i}",
            "feats": torch.randn(frames, dim, generator=gen),
            "wrd": "",
            "tokens": torch.LongTensor(tokens[i]),
            "num_tokens": num_tokens,
        }
        for i in range(args.utterances)
    ]
    return collate(examples), num_tokens


def run_stage1(args, device, rows, results):
    """The stage-1 recipe loop and its step alone (fills ``rows`` and ``results["stage1"]``)."""
    from speechmapper_plugin.utils.hparams import load_hparams

    llm_dim = args.llm_config_obj.hidden_size
    full_vocab = args.llm_config_obj.vocab_size
    vocab = args.vocab or full_vocab
    dim = TINY_PROJECTOR["input_dim"] if args.tiny else 1024
    start = time.perf_counter()
    folder, durations, cache, csv_path, tokenizer = _corpus(args, dim)
    llm_folder = write_embedding_folder(
        args.work_path / "stage1_llm", folder / "tokenizer", vocab, llm_dim, args.seed
    )
    setup_seconds = time.perf_counter() - start
    paths = {
        "out": str(args.work_path / "stage1_run"),
        "llm": str(llm_folder),
        "features": cache.folder,
        "manifests": str(folder),
    }
    hparams = load_hparams(
        str(REPO_ROOT / "hparams" / "stage1.yaml"), recipe_overrides(args, paths, llm_dim)
    )
    train_data = load_asr_dataset(csv_path, cache, tokenizer)
    train_data, loader_opts = train_loader_kwargs(
        train_data, hparams, feature_lengths(train_data, cache)
    )
    brain = TimedStage1Brain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts={"device": str(device), "noprogressbar": True},
        checkpointer=hparams["checkpointer"],
    )
    brain.tokenizer = tokenizer
    brain.skip = min(TimedStage1Brain.skip, max(0, len(loader_opts["batch_sampler"]) - 2))
    with warnings.catch_warnings(record=True) as caught, PeakMemory(device) as mem:
        warnings.simplefilter("always")
        fit_start = time.perf_counter()
        brain.fit(hparams["epoch_counter"], train_data, None, train_loader_kwargs=loader_opts)
        fit_seconds = time.perf_counter() - fit_start
    window = brain.timed
    syncs = sum(SYNC_WARNING in str(w.message) for w in caught)

    # The step alone: fit_batch on one fixed batch of the paper's size.
    frames = max(1, round(args.batch_seconds * FEATURE_RATE / args.utterances))
    collate = BucketPaddedBatch(args.pad_multiple) if args.pad_multiple else None
    if collate is None:
        from speechbrain.dataio.batch import PaddedBatch as collate
    batch, num_tokens = _fixed_batch(args, dim, min(vocab, len(tokenizer)), frames, collate)
    if args.pin_memory and device.type == "cuda":
        batch = batch.pin_memory()
    brain.modules.train()
    for _ in range(args.warmup):
        brain.step += 1
        brain.fit_batch(batch)
    _sync(device)
    step_start = time.perf_counter()
    for _ in range(args.steps):
        brain.step += 1
        last = brain.fit_batch(batch)
    _sync(device)
    step_seconds = (time.perf_counter() - step_start) / args.steps
    if not torch.isfinite(last):
        raise RuntimeError(f"Stage-1 loss is not finite ({float(last)}): the benchmark is invalid.")

    def eager_step():
        feats, lens = batch.feats
        out_len = int(brain.modules.projector.output_lengths(torch.tensor([feats.shape[1]]))[0])
        ids = brain.modules.embeddings.target_ids(batch.tokens.data, out_len, batch.num_tokens)
        inputs = [x.to(device) for x in (feats, lens, ids, torch.as_tensor(batch.num_tokens))]
        with brain.training_ctx:
            loss = brain._objective(*inputs)[2]["loss"]
        loss.backward()

    flops, _ = count_flops(eager_step)
    brain.optimizer.zero_grad(set_to_none=True)
    flops_per_frame = flops / (args.utterances * frames)
    peak, peak_source = peak_tflops(
        device, matmul_precision(device, args.precision), args.peak_tflops
    )

    # Figures.
    by_frames = window["frames"] / FEATURE_RATE
    recipe_rate = by_frames / window["seconds"]
    recipe_step = window["seconds"] / window["steps"]
    epoch_seconds = LIBRISPEECH_HOURS * 3600 / recipe_rate
    recipe_flops = flops_per_frame * window["frames"]
    step_audio = args.utterances * frames / FEATURE_RATE
    step_rate = step_audio / step_seconds
    padding = 1 - window["frames"] / window["padded"]
    n_params = sum(p.numel() for p in brain.modules.projector.parameters())
    table_note = (
        "full size" if vocab == full_vocab else f"REDUCED with --vocab (real: {full_vocab})"
    )
    sync_text = (
        f"{syncs} in {window['steps']} steps ({syncs / window['steps']:.2f} per step; "
        "torch.cuda.set_sync_debug_mode)"
        if device.type == "cuda"
        else "n/a (counted on CUDA only)"
    )
    rows += [
        ("**Stage 1 (the recipe: Stage1Brain through SpeechBrain's fit)**", ""),
        (
            "Setup",
            f"hparams/stage1.yaml; {'tiny projector' if args.tiny else 'paper-size projector'} "
            f"({n_params:,} parameters), embedding table {vocab} x {llm_dim} bf16 "
            f"({table_note}); levers: {levers_text(args)}",
        ),
        (
            "Data",
            f"{len(durations)} synthetic utterances ({sum(durations) / 3600:.2f} h, "
            f"{min(durations):.1f}-{max(durations):.1f} s) in a feature cache; dynamic batches "
            f"of {args.batch_seconds:g} s ({hparams['num_buckets']} buckets), "
            f"{args.num_workers} loader workers; corpus and table written in "
            f"{setup_seconds:.1f} s",
        ),
        (
            "Timed epoch (2nd)",
            f"{window['steps']} steps, {window['utterances']} utterances, "
            f"{by_frames:.0f} s of audio in {window['seconds']:.2f} s "
            f"(from batch {brain.skip + 1}; whole fit incl. warm-up epoch {fit_seconds:.1f} s); "
            f"padding {100 * padding:.1f}% of the frames",
        ),
        ("Recipe step time", f"{recipe_step * 1000:.1f} ms per step on average"),
        ("Recipe throughput", f"**{recipe_rate:.0f} s of audio per second**"),
        (
            "Recipe model FLOPs utilization",
            mfu_text(recipe_flops, window["seconds"], peak, peak_source, per="timed epoch"),
        ),
        ("Host synchronizations (timed epoch)", sync_text),
        (
            f"LibriSpeech-{LIBRISPEECH_HOURS:g} epoch",
            f"**{format_duration(epoch_seconds)}** at the recipe's rate",
        ),
        ("Peak memory (fit)", mem.describe()),
        (
            "Step alone (fit_batch, fixed batch, no loader)",
            f"{args.utterances} x {frames} vectors ({step_audio:.2f} s): "
            f"{step_seconds * 1000:.1f} ms per step (mean of {args.steps} after "
            f"{args.warmup} warm-up, one synchronization at each end), "
            f"**{step_rate:.0f} s of audio per second**",
        ),
        (
            "Step-alone model FLOPs utilization",
            mfu_text(flops, step_seconds, peak, peak_source),
        ),
        (
            "Paper schedule (2M steps)",
            f"{format_duration(PAPER_STAGE1_STEPS * step_seconds)} at the step-alone time "
            "(paper: 4 days on 4 x V100-32GB)",
        ),
    ]
    results["stage1"] = {
        "step_s": step_seconds,
        "throughput": recipe_rate,
        "step_throughput": step_rate,
        "recipe_step_s": recipe_step,
        "epoch_s": epoch_seconds,
        "flops": flops,
        "mfu": None if peak is None else recipe_flops / window["seconds"] / (peak * 1e12),
        "step_mfu": None if peak is None else flops / step_seconds / (peak * 1e12),
        "peak_bytes": mem.peak if device.type == "cuda" else mem.delta,
        "syncs_per_step": syncs / window["steps"] if device.type == "cuda" else None,
        "num_tokens": num_tokens,
    }
