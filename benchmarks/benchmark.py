#!/usr/bin/env python3
"""Performance benchmark of SpeechMapper's two training stages (a script, not a test).

Part ``stage1``: training throughput of the paper-size projector
(:class:`speechmapper_plugin.models.speechmapper.SpeechMapper` defaults, 279M parameters, 1024-dim
features at 25 Hz) with AdamW and the real stage-1 loss
(:class:`speechmapper_plugin.models.losses.SpeechMapperLoss`) against targets gathered by
:meth:`speechmapper_plugin.models.embeddings.EmbeddingTable.targets` from a random embedding table of the
LLM's size (128256 x 4096 bf16 for Llama-3.1-8B-Instruct). A step is what ``Stage1Brain``
does per batch: features to the device, projector forward, targets, loss, backward, gradient
clipping, optimizer step. Reported: step time, audio seconds per second, peak memory and the
projected time of one LibriSpeech-960 epoch.

Part ``stage2`` (GPU; on CPU only with ``--force`` or ``--tiny``): a random-init LLM built
from ``benchmarks/configs/<name>.json`` with ``AutoModelForCausalLM.from_config`` (bf16,
directly on the device; random weights cost the same as trained ones), frozen, with the
projector's outputs spliced into a prompt by the real
:class:`speechmapper_plugin.models.frozen_llm.FrozenLLM` splicing and cross-entropy code (the prompt and
answer token ids are synthetic, as there is no tokenizer), plus the eq.-3 loss
(:class:`speechmapper_plugin.models.losses.Stage2Loss`). Reported: seconds per micro-batch
(forward + backward through the LLM into the projector) and per optimizer step at gradient
accumulation 8, peak memory, projected time of 1K steps, and the ratio of a stage-1 step to a
stage-2 micro-batch on the same batch (the paper's core cost claim).

The result is printed as one Markdown table and appended, with the command line and the date,
to ``docs/benchmarks.md`` (see ``--append-to`` / ``--no-append``; ``--tiny`` runs append
nothing unless ``--append-to`` is given).

Usage (from the repository root)::

    python benchmarks/benchmark.py --tiny                                  # smoke test, seconds
    python benchmarks/benchmark.py --device cpu --parts stage1 --steps 3 --warmup 1
    python benchmarks/benchmark.py --device cuda --precision bf16           # both parts, H100

Authors
-------
speechmapper developers, 2026
"""

import argparse
import datetime
import logging
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.cache_read import run_cache  # noqa: E402
from benchmarks.common import (  # noqa: E402
    DEFAULT_DOC,
    FEATURE_RATE,
    TINY_LLM,
    _free,
    append_report,
    describe_device,
    load_llm_config,
    markdown_table,
    work_folder,
)
from benchmarks.decode import run_decode  # noqa: E402
from benchmarks.extraction import run_extract  # noqa: E402
from benchmarks.stage1_recipe import run_stage1  # noqa: E402
from benchmarks.targets import target_rows  # noqa: E402
from benchmarks.training import run_stage2  # noqa: E402

logger = logging.getLogger(__name__)

# Part name -> (title in the table, function, needs the full-size LLM), in run order.
PARTS = {
    "extract": ("Feature extraction", run_extract, False),
    "cache": ("Feature-cache read", run_cache, False),
    "stage1": ("Stage 1", run_stage1, False),
    "stage2": ("Stage 2", run_stage2, True),
    "decode": ("Decoding", run_decode, True),
}


def parse_args(argv=None):
    """Command-line options (see ``--help``).

    Arguments
    ---------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
        The options.

    Example
    -------
    >>> parse_args(["--tiny", "--parts", "stage1"]).parts
    ['stage1']
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=list(PARTS),
        default=list(PARTS),
        help="What to measure (default: all; stage2 and decode, which need the full LLM, are "
        "skipped on CPU without --force).",
    )
    parser.add_argument("--tiny", action="store_true", help="Tiny dimensions: smoke test.")
    parser.add_argument(
        "--device", default=None, help="cuda, cuda:N or cpu (default: cuda if available)."
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="Projector precision: fp32, or bf16 autocast as SpeechBrain's --precision=bf16.",
    )
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per measurement.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps before timing.")
    parser.add_argument(
        "--llm-config",
        default="llama-3.1-8b-instruct",
        help="A name in benchmarks/configs (llama-3.1-8b-instruct, eurollm-9b-instruct) or a "
        "config.json path: the LLM whose embedding size, vocabulary and architecture are used.",
    )
    parser.add_argument(
        "--vocab",
        type=int,
        default=None,
        help="Rows of the stage-1 embedding table (default: the LLM's vocab_size). A smaller "
        "table saves RAM on CPU; the table says so. Stage 2 always uses the LLM's own table.",
    )
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=1024 / FEATURE_RATE,
        help="Stage-1 dynamic batch in seconds of audio (default 40.96 s = 1024 vectors).",
    )
    parser.add_argument(
        "--utterances", type=int, default=3, help="Utterances sharing the stage-1 batch."
    )
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=3.5,
        help="Target tokens per second of speech (read LibriSpeech, Llama-3 tokenizer).",
    )
    parser.add_argument("--s2-batch", type=int, default=12, help="Stage-2 micro-batch size.")
    parser.add_argument(
        "--s2-seconds", type=float, default=15.0, help="Stage-2 utterance duration (s)."
    )
    parser.add_argument(
        "--prompt-tokens",
        type=int,
        default=60,
        help="Chat-prompt tokens around the speech (2/3 before, 1/3 after the speech).",
    )
    parser.add_argument(
        "--answer-tokens", type=int, default=40, help="Answer tokens (+ end of turn)."
    )
    parser.add_argument("--grad-accum", type=int, default=8, help="Stage-2 grad accumulation.")
    parser.add_argument("--sigma", type=float, default=0.9, help="Stage-2 MSE weight (eq. 3).")
    parser.add_argument(
        "--s2-steps", type=int, default=1000, help="Optimizer steps of the stage-2 projection."
    )
    parser.add_argument(
        "--attn-implementation", default="sdpa", help="LLM attention (sdpa, eager, ...)."
    )
    parser.add_argument(
        "--llm-dtype",
        choices=["bf16", "fp32"],
        default="bf16",
        help="LLM weights of part decode (fp32: batched and one-by-one outputs identical; "
        "bf16 left padding can flip a greedy choice of a random-init LLM).",
    )
    parser.add_argument(
        "--force", action="store_true", help="Run stage 2 on CPU (needs > 40 GB of RAM)."
    )
    parser.add_argument("--tf32", action="store_true", help="Allow TF32 matmuls on GPU.")
    # Optimizations, each switchable so that the table shows what it buys.
    parser.add_argument(
        "--compile",
        action="store_true",
        help="Stage 1: compile_step (projector + targets + loss as one graph); stage 2: "
        "torch.compile the projector.",
    )
    parser.add_argument(
        "--compile-mode",
        default="reduce-overhead",
        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
        help="torch.compile mode of the stage-1 step (reduce-overhead: CUDA graphs).",
    )
    parser.add_argument(
        "--fused-adamw", action="store_true", help="AdamW(fused=True) for the projector."
    )
    parser.add_argument(
        "--pad-multiple",
        type=int,
        default=0,
        help="Stage 1: pad each batch's time axis up to a multiple of this many frames "
        "(hparams pad_multiple; static shapes for --compile).",
    )
    parser.add_argument(
        "--deferred-sync",
        action="store_true",
        help="Stage 1: read losses back every log_interval steps only (hparams deferred_sync).",
    )
    parser.add_argument(
        "--stage1-utterances",
        type=int,
        default=1000,
        help="Utterances of the stage-1 recipe's synthetic corpus (one epoch warms up, one "
        "is timed; 1000 = 3.4 h of audio, ~300 steps per epoch).",
    )
    parser.add_argument(
        "--reuse-prompt-prefix",
        action="store_true",
        help="Stage 2: FrozenLLM reuses the keys/values of the shared prompt prefix.",
    )
    parser.add_argument(
        "--causal-mask-only",
        action="store_true",
        help="Stage 2: right-padded batches run without attention mask (flash SDPA).",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="Peak dense TFLOP/s of the device at the run's precision, for the model FLOPs "
        "utilization (default: known GPUs only, see benchmarks/flops.py).",
    )
    # Part "extract": the SFM encoder over synthetic wavs, through extract_to_cache.
    parser.add_argument(
        "--sfm-config",
        default="seamless-m4t-v2-large",
        help="A name in benchmarks/configs or a SeamlessM4T-v2 config.json path.",
    )
    parser.add_argument("--sfm-dtype", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument(
        "--sfm-front-end",
        choices=["hf", "torchaudio"],
        default="hf",
        help="Fbank front-end: the feature extractor's own (hf) or torchaudio's Kaldi fbank.",
    )
    parser.add_argument("--extract-utterances", type=int, default=64, help="Utterances to extract.")
    parser.add_argument(
        "--extract-batch-seconds",
        type=float,
        default=200.0,
        help="Padded audio seconds per encoder call (recipes: extract_batch_seconds).",
    )
    parser.add_argument(
        "--utterance-seconds",
        type=float,
        default=12.3,
        help="Mean utterance duration of the synthetic corpora (LibriSpeech-960: 12.3 s); "
        "durations are drawn uniformly within +-50%% of it.",
    )
    # Part "cache": the stage-1 data loader over a feature cache.
    parser.add_argument(
        "--cache-utterances", type=int, default=2000, help="Utterances in the cache."
    )
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers.")
    parser.add_argument("--prefetch-factor", type=int, default=2, help="Batches per worker.")
    parser.add_argument(
        "--pin-memory",
        action="store_true",
        help="Pinned host memory (CUDA devices): the cache part's loader and the stage-1 "
        "recipe (hparams pin_memory).",
    )
    # Part "decode": batched greedy decoding vs one utterance at a time.
    parser.add_argument("--decode-utterances", type=int, default=64, help="Utterances to decode.")
    parser.add_argument(
        "--decode-batch", type=int, default=32, help="Batch size of batched decoding."
    )
    parser.add_argument(
        "--decode-engine",
        choices=["dynamic", "static", "compiled"],
        default="compiled",
        help="Batched decoding engine measured against HF's dynamic cache: static KV cache, "
        "or static cache + torch.compile of the decoding step (CUDA graphs).",
    )
    parser.add_argument(
        "--decode-single",
        type=int,
        default=4,
        help="Utterances decoded one by one (the paper's protocol, slow: a subset).",
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=150, help="Generation limit (paper: 150)."
    )
    parser.add_argument(
        "--work-dir",
        default=None,
        help="Folder for the synthetic wavs and feature cache (default: a temporary folder, "
        "removed at the end).",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads.")
    parser.add_argument("--seed", type=int, default=1986)
    parser.add_argument("--note", default=None, help="Free text added to the table.")
    parser.add_argument(
        "--append-to",
        default=None,
        help=f"Markdown file the result is appended to (default {DEFAULT_DOC.relative_to(REPO_ROOT)}; "
        "with --tiny nothing is appended unless this is given).",
    )
    parser.add_argument("--no-append", action="store_true", help="Only print the table.")
    args = parser.parse_args(argv)
    for name in (
        "steps",
        "utterances",
        "s2_batch",
        "grad_accum",
        "s2_steps",
        "extract_utterances",
        "cache_utterances",
        "decode_utterances",
        "decode_batch",
        "decode_single",
        "stage1_utterances",
        "max_new_tokens",
        "prefetch_factor",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.num_workers < 0:
        parser.error("--num-workers must be >= 0")
    if args.pad_multiple < 0:
        parser.error("--pad-multiple must be >= 0")
    if args.utterance_seconds <= 0:
        parser.error("--utterance-seconds must be positive")
    if args.extract_batch_seconds <= 0:
        parser.error("--extract-batch-seconds must be positive")
    if not 0.0 <= args.sigma <= 1.0:
        parser.error("--sigma must lie in [0, 1]")
    return args


def main(argv=None):
    """Run the selected parts, print the table and append it to the benchmarks file."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: CUDA is not available on this machine.")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        if args.tf32:  # PyTorch's defaults otherwise (no TF32 matmuls, TF32 cuDNN convs)
            torch.set_float32_matmul_precision("high")
    if args.tiny:
        args.steps = min(args.steps, 2)
        args.warmup = min(args.warmup, 1)
        if args.vocab is None:
            args.vocab = TINY_LLM["vocab_size"]
        args.s2_batch, args.s2_seconds, args.grad_accum = 2, 4.0, 2
        args.prompt_tokens, args.answer_tokens = 9, 5
        args.extract_utterances = min(args.extract_utterances, 4)
        args.extract_batch_seconds = min(args.extract_batch_seconds, 6.0)
        args.utterance_seconds = min(args.utterance_seconds, 3.0)
        args.cache_utterances = min(args.cache_utterances, 40)
        args.num_workers = min(args.num_workers, 1)
        args.decode_utterances = min(args.decode_utterances, 4)
        args.decode_batch = min(args.decode_batch, 4)
        args.decode_single = min(args.decode_single, 4)
        args.max_new_tokens = min(args.max_new_tokens, 8)
        args.stage1_utterances = min(args.stage1_utterances, 24)
        args.utterances = min(args.utterances, 3)
        args.batch_seconds = min(args.batch_seconds, 12.0)
    args.llm_config_obj = load_llm_config(args.llm_config, TINY_LLM if args.tiny else None)
    if args.vocab is not None and not 2 < args.vocab:
        raise SystemExit(f"--vocab {args.vocab} must be larger than 2.")
    torch.manual_seed(args.seed)

    import transformers

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/benchmark.py" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    rows = [
        ("Date", date),
        ("Device", describe_device(device)),
        (
            "Versions",
            f"torch {torch.__version__}, transformers {transformers.__version__}, "
            f"Python {platform.python_version()}",
        ),
        (
            "Settings",
            f"{'TINY smoke mode (figures meaningless); ' if args.tiny else ''}"
            f"precision {args.precision}{' (autocast)' if args.precision == 'bf16' else ''}"
            f"{', TF32' if args.tf32 and device.type == 'cuda' else ''}, steps {args.steps}, "
            f"warm-up {args.warmup}, LLM config {args.llm_config}, seed {args.seed}",
        ),
    ]
    if args.note:
        rows.append(("Note", args.note))
    results = {}
    with work_folder(args.work_dir) as work_dir:
        args.work_path = work_dir
        for part in PARTS:
            if part not in args.parts:
                continue
            title, run, needs_llm = PARTS[part]
            if needs_llm and device.type == "cpu" and not (args.force or args.tiny):
                message = (
                    "skipped: it needs a GPU (a full-size 8-9B LLM in bf16 is 16-18 GB plus "
                    "activations); run with --device cuda, or --force to run it on CPU anyway"
                )
                logger.warning("%s %s.", title, message)
                rows += [(f"**{title}**", message)]
                continue
            logger.info("%s...", title)
            run(args, device, rows, results)
            _free(device)  # the part's models and optimizer go out of scope
    rows += target_rows(results, device)
    table = markdown_table(rows)
    print()
    print(f"Command: `{command}`")
    print()
    print(table)
    target = None if args.no_append else args.append_to
    if target is None and not (args.tiny or args.no_append):
        target = DEFAULT_DOC
    if target is not None:
        append_report(target, command, date, table)
        logger.info("Appended to %s", target)
    return results


if __name__ == "__main__":
    main()
