#!/usr/bin/env python3
"""Performance benchmark of SpeechMapper's two training stages (a script, not a test).

Part ``stage1``: training throughput of the paper-size projector
(:class:`speechmapper_plugin.projector.SpeechMapper` defaults, 279M parameters, 1024-dim
features at 25 Hz) with AdamW and the real stage-1 loss
(:class:`speechmapper_plugin.losses.SpeechMapperLoss`) against targets gathered by
:meth:`speechmapper_plugin.llm.EmbeddingTable.targets` from a random embedding table of the
LLM's size (128256 x 4096 bf16 for Llama-3.1-8B-Instruct). A step is what ``Stage1Brain``
does per batch: features to the device, projector forward, targets, loss, backward, gradient
clipping, optimizer step. Reported: step time, audio seconds per second, peak memory and the
projected time of one LibriSpeech-960 epoch.

Part ``stage2`` (GPU; on CPU only with ``--force`` or ``--tiny``): a random-init LLM built
from ``benchmarks/configs/<name>.json`` with ``AutoModelForCausalLM.from_config`` (bf16,
directly on the device; random weights cost the same as trained ones), frozen, with the
projector's outputs spliced into a prompt by the real
:class:`speechmapper_plugin.llm.FrozenLLM` splicing and cross-entropy code (the prompt and
answer token ids are synthetic, as there is no tokenizer), plus the eq.-3 loss
(:class:`speechmapper_plugin.losses.Stage2Loss`). Reported: seconds per micro-batch
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
import gc
import inspect
import json
import logging
import os
import platform
import resource
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from speechmapper_plugin.files import atomic_write_text  # noqa: E402
from speechmapper_plugin.llm import EmbeddingTable, FrozenLLM  # noqa: E402
from speechmapper_plugin.losses import SpeechMapperLoss, Stage2Loss  # noqa: E402
from speechmapper_plugin.projector import SpeechMapper  # noqa: E402

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_DOC = REPO_ROOT / "docs" / "benchmarks.md"
FEATURE_RATE = 25.0  # SFM vectors per second (SeamlessM4T 50 Hz, averaged by two)
LIBRISPEECH_HOURS = 960.0
PAPER_STAGE1_STEPS = 2_000_000
MAX_GRAD_NORM = 5.0  # hparams/stage1.yaml and stage2.yaml

# Tiny dimensions for the smoke mode (finishes in seconds on a laptop CPU).
TINY_PROJECTOR = dict(
    input_dim=32, block_dims=(32, 48), output_dims=(48, 64), num_layers=1, nhead=4
)
TINY_LLM = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=512,
)


# ----------------------------------------------------------------------------- helpers


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
        choices=["stage1", "stage2"],
        default=["stage1", "stage2"],
        help="What to measure (default: both; stage2 is skipped on CPU without --force).",
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
        "--force", action="store_true", help="Run stage 2 on CPU (needs > 40 GB of RAM)."
    )
    parser.add_argument("--tf32", action="store_true", help="Allow TF32 matmuls on GPU.")
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
    for name in ("steps", "utterances", "s2_batch", "grad_accum", "s2_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if not 0.0 <= args.sigma <= 1.0:
        parser.error("--sigma must lie in [0, 1]")
    return args


def load_llm_config(name_or_path, overrides=None):
    """A ``transformers`` config from a file of ``benchmarks/configs`` or a JSON path.

    Arguments
    ---------
    name_or_path : str
        ``llama-3.1-8b-instruct``, ``eurollm-9b-instruct`` or the path of a config.json.
    overrides : dict, optional
        Fields replaced after loading (the tiny mode shrinks the model this way).

    Returns
    -------
    transformers.PretrainedConfig
        The config.

    Example
    -------
    >>> cfg = load_llm_config("llama-3.1-8b-instruct")
    >>> cfg.hidden_size, cfg.vocab_size, cfg.num_key_value_heads
    (4096, 128256, 8)
    """
    from transformers import AutoConfig

    path = Path(name_or_path)
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise FileNotFoundError(
            f"--llm-config {name_or_path!r} is neither a file nor one of {known} in {CONFIG_DIR}."
        )
    try:
        fields = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(fields, dict) or "model_type" not in fields:
        raise ValueError(
            f"{path} must be a Hugging Face config.json object with a 'model_type' key."
        )
    fields.update(overrides or {})
    return AutoConfig.for_model(**fields)


def describe_device(device):
    """Human-readable description of the device (GPU name and memory, or CPU model).

    Arguments
    ---------
    device : torch.device
        The device.

    Returns
    -------
    str
        The description.

    Example
    -------
    >>> describe_device(torch.device("cpu")).startswith("CPU")
    True
    """
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"GPU {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _current_rss():
    """Resident set size of this process in bytes (Linux ``/proc``; else the peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakMemory:
    """Peak memory of a code section: CUDA peak allocation, or sampled peak RSS on CPU.

    On GPU the CUDA peak statistics are reset on entry and ``torch.cuda.max_memory_allocated``
    (absolute: weights, optimizer states, activations) is read on exit. On CPU a thread samples
    the process RSS every ``interval`` seconds; ``peak`` is the highest RSS seen and ``delta``
    its increase over the RSS on entry (what the section itself allocated).

    Arguments
    ---------
    device : torch.device
        The device whose memory is followed.
    interval : float
        CPU sampling period in seconds.

    Example
    -------
    >>> with PeakMemory(torch.device("cpu")) as mem:
    ...     x = torch.ones(4 * 2**20)
    >>> mem.peak >= mem.start
    True
    """

    def __init__(self, device, interval=0.005):
        self.device = device
        self.interval = interval
        self.start = self.peak = self.reserved = 0
        self._stop = threading.Event()
        self._thread = None

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _current_rss())
            self._stop.wait(self.interval)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            self.start = self.peak = _current_rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
            self.reserved = torch.cuda.max_memory_reserved(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _current_rss())
        return False

    @property
    def delta(self):
        """Peak minus the memory in use on entry (bytes)."""
        return self.peak - self.start

    def describe(self):
        """One line for the results table."""
        if self.device.type == "cuda":
            return (
                f"{_gib(self.peak)} allocated (torch.cuda.max_memory_allocated), "
                f"{_gib(self.reserved)} reserved"
            )
        return f"{_gib(self.delta)} RSS increase (peak RSS {_gib(self.peak)}, sampled)"


def _gib(num_bytes):
    return f"{num_bytes / 2**30:.2f} GiB"


def format_duration(seconds):
    """Seconds as a short human duration.

    Arguments
    ---------
    seconds : float
        The duration.

    Returns
    -------
    str
        E.g. ``"2.50 s"``, ``"3.2 min"``, ``"4.1 h"``, ``"2.5 days"``.

    Example
    -------
    >>> format_duration(2.5), format_duration(192), format_duration(14760), format_duration(216000)
    ('2.50 s', '3.2 min', '4.1 h', '2.5 days')
    """
    if seconds < 100:
        return f"{seconds:.2f} s"
    if seconds < 3600 * 1.5:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def summarize(times):
    """Mean, min and standard deviation of measured times (seconds).

    Arguments
    ---------
    times : list of float
        Per-step times.

    Returns
    -------
    dict
        ``mean``, ``min``, ``std``, ``n``.

    Example
    -------
    >>> summarize([1.0, 2.0, 3.0])
    {'mean': 2.0, 'min': 1.0, 'std': 1.0, 'n': 3}
    """
    return {
        "mean": statistics.fmean(times),
        "min": min(times),
        "std": statistics.stdev(times) if len(times) > 1 else 0.0,
        "n": len(times),
    }


def _timing_text(stats, warmup):
    return (
        f"{stats['mean']:.3f} s (mean of {stats['n']} after {warmup} warm-up; "
        f"min {stats['min']:.3f}, std {stats['std']:.3f})"
    )


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device, precision):
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16"
    )


def _free(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def random_token_ids(num_utts, num_tokens, vocab, generator, exclude=2):
    """Random target token ids below ``vocab - exclude`` (the last ids are pad / end of turn).

    Arguments
    ---------
    num_utts : int
        Number of utterances.
    num_tokens : int
        Tokens per utterance.
    vocab : int
        Vocabulary size.
    generator : torch.Generator
        Random generator.
    exclude : int
        Number of top ids never drawn.

    Returns
    -------
    list of list of int
        The ids.

    Example
    -------
    >>> ids = random_token_ids(2, 3, 10, torch.Generator().manual_seed(0))
    >>> len(ids), len(ids[0]), max(max(row) for row in ids) < 8
    (2, 3, True)
    """
    high = vocab - exclude
    if high < 1:
        raise ValueError(f"Vocabulary of {vocab} ids is too small (need > {exclude}).")
    return torch.randint(0, high, (num_utts, num_tokens), generator=generator).tolist()


# ----------------------------------------------------------------------------- stage 1


class Stage1Step:
    """One stage-1 training step, as ``Stage1Brain`` runs it on a batch.

    Features are moved to the device, the projector runs (under bf16 autocast with
    ``precision="bf16"``), targets are gathered by ``EmbeddingTable.targets`` at the output
    length, the eq.-2 loss is back-propagated, gradients are clipped to norm 5 and AdamW steps.

    Arguments
    ---------
    projector : SpeechMapper
        The model (already on ``device``).
    table : EmbeddingTable
        The embedding table (already on ``device``).
    device : torch.device
        The device.
    precision : str
        "fp32" or "bf16".
    lr : float
        AdamW learning rate.

    Example
    -------
    >>> proj = SpeechMapper(**TINY_PROJECTOR)
    >>> step = Stage1Step(proj, EmbeddingTable(torch.randn(20, 64), pad_id=19), torch.device("cpu"), "fp32")
    >>> loss = step(torch.randn(2, 40, 32), [[1, 2], [3]])
    >>> bool(torch.isfinite(torch.tensor(loss)))
    True
    """

    def __init__(self, projector, table, device, precision, lr=1e-5):
        self.projector = projector.train()
        self.table = table
        self.device = device
        self.precision = precision
        self.loss = SpeechMapperLoss()
        self.optimizer = torch.optim.AdamW(projector.parameters(), lr=lr, weight_decay=0.01)
        self.last_loss = None

    def __call__(self, feats, tokens):
        """Run one step on CPU features [B, T, F] and per-utterance target ids; returns the loss."""
        feats = feats.to(self.device)
        lengths = torch.ones(feats.shape[0], device=self.device)
        num_tokens = torch.tensor([len(t) for t in tokens], device=self.device)
        with _autocast(self.device, self.precision):
            pred, pred_lens = self.projector(feats, lengths)
            target = self.table.targets(tokens, pred.shape[1])
            loss = self.loss(pred, target, num_tokens, pred_lens)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.projector.parameters(), MAX_GRAD_NORM)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.last_loss = loss.detach()
        return self.last_loss


def time_steps(fn, device, steps, warmup):
    """Runs ``fn`` ``warmup`` times untimed, then ``steps`` times timed (device synchronized).

    Arguments
    ---------
    fn : callable
        The step (no arguments); its return value is ignored.
    device : torch.device
        Synchronized before and after every timed call.
    steps, warmup : int
        Timed and untimed calls.

    Returns
    -------
    list of float
        Seconds per timed call.

    Example
    -------
    >>> len(time_steps(lambda: None, torch.device("cpu"), steps=3, warmup=1))
    3
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def random_embedding_table(vocab, dim, device, generator_seed):
    """A random bf16 [vocab, dim] embedding table (std 0.02, like initialized LLM embeddings).

    Arguments
    ---------
    vocab, dim : int
        Table size.
    device : torch.device
        Where it is allocated.
    generator_seed : int
        Seed.

    Returns
    -------
    EmbeddingTable
        The table; the pad id is the last row.

    Example
    -------
    >>> random_embedding_table(10, 4, torch.device("cpu"), 0).weight.dtype
    torch.bfloat16
    """
    torch.manual_seed(generator_seed)
    weight = torch.empty(vocab, dim, dtype=torch.bfloat16, device=device).normal_(0.0, 0.02)
    return EmbeddingTable(weight, pad_id=vocab - 1)


def run_stage1(args, device, rows, results):
    """Stage-1 throughput at the paper's dynamic batch (fills ``rows`` and ``results``)."""
    projector_kwargs = TINY_PROJECTOR if args.tiny else {}
    llm_dim = args.llm_config_obj.hidden_size
    full_vocab = args.llm_config_obj.vocab_size
    vocab = args.vocab or full_vocab
    gen = torch.Generator().manual_seed(args.seed)
    frames = max(1, round(args.batch_seconds * FEATURE_RATE / args.utterances))
    audio_seconds = args.utterances * frames / FEATURE_RATE
    num_tokens = max(1, round(args.tokens_per_second * frames / FEATURE_RATE))

    with PeakMemory(device) as mem:
        torch.manual_seed(args.seed)
        projector = SpeechMapper(**projector_kwargs)
        if projector.llm_dim != llm_dim:
            raise ValueError(
                f"The projector outputs {projector.llm_dim}-dim vectors but the LLM config "
                f"{args.llm_config} has hidden_size {llm_dim}."
            )
        n_params = sum(p.numel() for p in projector.parameters())
        projector.to(device)
        table = random_embedding_table(vocab, llm_dim, device, args.seed)
        step = Stage1Step(projector, table, device, args.precision)
        feats = torch.randn(args.utterances, frames, projector.input_dim, generator=gen)
        tokens = random_token_ids(args.utterances, num_tokens, vocab, gen)
        out_len = int(projector.output_lengths(torch.tensor([frames]))[0])
        times = time_steps(lambda: step(feats, tokens), device, args.steps, args.warmup)
    if not torch.isfinite(step.last_loss):
        raise RuntimeError(
            f"Stage-1 loss is not finite ({float(step.last_loss)}): the benchmark is invalid."
        )
    stats = summarize(times)
    throughput = audio_seconds / stats["mean"]
    epoch_seconds = LIBRISPEECH_HOURS * 3600 / throughput
    steps_per_epoch = LIBRISPEECH_HOURS * 3600 / audio_seconds
    table_note = (
        "full size" if vocab == full_vocab else f"REDUCED with --vocab (real: {full_vocab})"
    )
    rows += [
        ("**Stage 1**", ""),
        (
            "Projector",
            f"{'tiny' if args.tiny else 'SpeechMapper() defaults'}: {n_params:,} parameters, "
            f"AdamW, grad clipping {MAX_GRAD_NORM}",
        ),
        (
            "Batch",
            f"{args.utterances} x {frames} vectors ({args.utterances} x {frames / FEATURE_RATE:.2f} s "
            f"= {audio_seconds:.2f} s of audio at {FEATURE_RATE:g} Hz, "
            f"{args.utterances * frames} input vectors) -> {out_len} output vectors/utt, "
            f"{num_tokens} target tokens/utt",
        ),
        ("Embedding table", f"{vocab} x {llm_dim} bf16 ({table_note})"),
        ("Step time", _timing_text(stats, args.warmup)),
        ("Throughput", f"**{throughput:.2f} s of audio per second**"),
        ("Peak memory", mem.describe()),
        (
            f"LibriSpeech-{LIBRISPEECH_HOURS:g} epoch",
            f"**{format_duration(epoch_seconds)}** ({steps_per_epoch:,.0f} steps of "
            f"{audio_seconds:.2f} s)",
        ),
        (
            "Paper schedule (2M steps)",
            f"{format_duration(PAPER_STAGE1_STEPS * stats['mean'])} on this one device "
            "(paper: 4 days on 4 x V100-32GB)",
        ),
    ]
    results["stage1"] = {"step_s": stats["mean"], "throughput": throughput}


# ----------------------------------------------------------------------------- stage 2


class ConfigBuiltLLM(FrozenLLM):
    """:class:`FrozenLLM` around a model built from a config, with synthetic token ids.

    There is no tokenizer for a config-built model, so the only overridden methods are the
    two that tokenize (:meth:`prompt_ids`, :meth:`_ids`): they return fixed id lists of the
    requested lengths. Splicing (``build_inputs``), the forward with ``logits_to_keep``, the
    cross-entropy, the frozen / eval behaviour and ``embed`` are FrozenLLM's own code.

    Arguments
    ---------
    model : transformers.PreTrainedModel
        The causal LM (frozen here).
    before_ids, after_ids : list of int
        Prompt ids before and after the speech placeholder.
    answers : dict
        Answer text -> answer ids (without the end-of-turn id).
    pad_id, eot_id : int
        Pad and end-of-turn ids.
    source : str
        Name used in messages.

    Example
    -------
    >>> from transformers import AutoModelForCausalLM
    >>> model = AutoModelForCausalLM.from_config(load_llm_config("llama-3.1-8b-instruct", TINY_LLM))
    >>> llm = ConfigBuiltLLM(model, [1, 2], [3], {"a": [5, 6]}, pad_id=511, eot_id=510)
    >>> speech = torch.randn(1, 4, 64, requires_grad=True)
    >>> out = llm(speech, torch.tensor([1.0]), "<speech>", ["a"])
    >>> out["num_tokens"]
    3
    """

    def __init__(self, model, before_ids, after_ids, answers, pad_id, eot_id, source="config"):
        torch.nn.Module.__init__(self)
        self.model = model
        self.model.requires_grad_(False)
        self.model.eval()
        self.source = source
        self.placeholder = "<speech>"
        self.system_prompt = None
        self.tokenizer = None
        self.pad_token, self.pad_id = None, int(pad_id)
        self.eot_token, self.eot_id = None, int(eot_id)
        self.embed_dim = model.get_input_embeddings().embedding_dim
        self.eos_ids = [self.eot_id]
        self._bos_id = None
        self._prompt_cache = {}
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._before, self._after = list(before_ids), list(after_ids)
        self._answers = {key: list(value) for key, value in answers.items()}

    def prompt_ids(self, prompt):
        """The fixed prompt ids (before, after) the speech, whatever ``prompt`` is."""
        return self._before, self._after

    def _ids(self, text):
        """The fixed ids of an answer text ([] for the empty assistant prefix)."""
        if not text:
            return []
        return self._answers[text]


def build_llm(config, device, attn_implementation):
    """Random-init causal LM from ``config``, bf16, allocated and initialized on ``device``.

    Arguments
    ---------
    config : transformers.PretrainedConfig
        The architecture.
    device : torch.device
        Where the weights are created (no host copy).
    attn_implementation : str
        "sdpa", "eager", "flash_attention_2"...

    Returns
    -------
    transformers.PreTrainedModel
        The model.

    Example
    -------
    >>> build_llm(load_llm_config("llama-3.1-8b-instruct", TINY_LLM), torch.device("cpu"), "sdpa").dtype
    torch.bfloat16
    """
    from transformers import AutoModelForCausalLM

    with torch.device(device):
        model = AutoModelForCausalLM.from_config(
            config, dtype=torch.bfloat16, attn_implementation=attn_implementation
        )
    return model


def run_stage2(args, device, rows, results):
    """Stage-2 micro-batch / optimizer-step time on the frozen LLM (fills ``rows``)."""
    config = args.llm_config_obj
    vocab = config.vocab_size
    gen = torch.Generator().manual_seed(args.seed + 1)
    frames = max(1, round(args.s2_seconds * FEATURE_RATE))
    batch = args.s2_batch
    n_before = (2 * args.prompt_tokens) // 3
    n_after = args.prompt_tokens - n_before
    pad_id, eot_id = vocab - 1, vocab - 2

    with PeakMemory(device) as build_mem:
        _sync(device)
        start = time.perf_counter()
        model = build_llm(config, device, args.attn_implementation)
        _sync(device)
        build_seconds = time.perf_counter() - start
    llm_params = sum(p.numel() for p in model.parameters())
    answer_ids = random_token_ids(batch, args.answer_tokens, vocab, gen)
    answers = {f"answer {i}": ids for i, ids in enumerate(answer_ids)}
    before, after = random_token_ids(2, max(n_before, n_after), vocab, gen)
    llm = ConfigBuiltLLM(
        model, before[:n_before], after[:n_after], answers, pad_id, eot_id, args.llm_config
    )
    table = EmbeddingTable(model.get_input_embeddings().weight, pad_id)

    torch.manual_seed(args.seed)
    projector = SpeechMapper(**(TINY_PROJECTOR if args.tiny else {}))
    if projector.llm_dim != llm.embed_dim:
        raise ValueError(
            f"Projector output dim {projector.llm_dim} != LLM hidden size {llm.embed_dim}."
        )
    projector.to(device)
    feats = torch.randn(batch, frames, projector.input_dim, generator=gen)
    texts = list(answers)
    out_len = int(projector.output_lengths(torch.tensor([frames]))[0])
    seq_len = n_before + out_len + n_after + args.answer_tokens + 1

    # Stage-1 step on the same batch and the real-size table (the LLM's own embeddings).
    s1 = Stage1Step(projector, table, device, args.precision)
    s1_times = time_steps(lambda: s1(feats, answer_ids), device, args.steps, args.warmup)
    s1_stats = summarize(s1_times)
    s1.optimizer.state.clear()
    projector.zero_grad(set_to_none=True)
    _free(device)

    loss_fn = Stage2Loss(sigma=args.sigma)
    optimizer = torch.optim.AdamW(projector.parameters(), lr=1e-4, weight_decay=0.0)
    lengths = torch.ones(batch)
    num_tokens = torch.full((batch,), args.answer_tokens)

    def micro_batch():
        x = feats.to(device)
        with _autocast(device, args.precision):
            pred, pred_lens = projector(x, lengths.to(device))
            ce = llm(pred, pred_lens, "<speech>", texts)["loss"]
            if args.sigma > 0:
                target = table.targets(answer_ids, pred.shape[1])
                loss = loss_fn(ce, pred, target, num_tokens.to(device), pred_lens)["loss"]
            else:
                loss = loss_fn(ce)["loss"]
        (loss / args.grad_accum).backward()
        return loss.detach()

    def update():
        torch.nn.utils.clip_grad_norm_(projector.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    projector.train()
    with PeakMemory(device) as mem:
        for _ in range(args.warmup):
            micro_batch()
        update()  # also allocates the AdamW states, outside the timed updates
        _sync(device)
        micro_times, update_times = [], []
        last = None
        for index in range(args.steps):
            _sync(device)
            start = time.perf_counter()
            last = micro_batch()
            _sync(device)
            micro_times.append(time.perf_counter() - start)
            if (index + 1) % args.grad_accum == 0 or index + 1 == args.steps:
                start = time.perf_counter()
                update()
                _sync(device)
                update_times.append(time.perf_counter() - start)
    if not torch.isfinite(last):
        raise RuntimeError(f"Stage-2 loss is not finite ({float(last)}): the benchmark is invalid.")
    micro = summarize(micro_times)
    upd = summarize(update_times)
    step_seconds = args.grad_accum * micro["mean"] + upd["mean"]
    audio = batch * frames / FEATURE_RATE
    ratio = s1_stats["mean"] / micro["mean"]
    rows += [
        ("**Stage 2**", ""),
        (
            "Frozen LLM",
            f"{'tiny ' if args.tiny else ''}{args.llm_config} config, random init, "
            f"bf16, {llm_params:,} parameters, {args.attn_implementation} attention; "
            f"built on the device in {build_seconds:.1f} s ({build_mem.describe()})",
        ),
        (
            "Micro-batch",
            f"{batch} x {args.s2_seconds:g} s ({frames} vectors -> {out_len} speech vectors); "
            f"sequence {seq_len} = {n_before} prompt + {out_len} speech + {n_after} prompt + "
            f"{args.answer_tokens} answer + 1 end-of-turn; loss eq. 3, sigma {args.sigma:g}",
        ),
        ("Micro-batch time (projector + LLM, fwd + bwd)", _timing_text(micro, args.warmup)),
        (
            "Optimizer update",
            f"{upd['mean']:.3f} s (clip + AdamW, mean of {upd['n']})",
        ),
        (
            f"Optimizer step (accumulation {args.grad_accum})",
            f"**{step_seconds:.2f} s** ({batch * args.grad_accum} utterances, "
            f"{audio * args.grad_accum:.0f} s of audio)",
        ),
        ("Peak memory", mem.describe()),
        (
            f"{args.s2_steps} optimizer steps",
            f"**{format_duration(args.s2_steps * step_seconds)}** "
            "(paper: ~1.5 h for 1K steps on 1 x A100-80GB)",
        ),
        (
            "Stage-1 step, same batch",
            f"{s1_stats['mean']:.3f} s (projector + {vocab} x {llm.embed_dim} table, no LLM; "
            f"mean of {s1_stats['n']})",
        ),
        (
            "Ratio stage-1 step / stage-2 micro-batch",
            f"**{ratio:.3f}** (a stage-2 micro-batch costs {1 / ratio:.1f} x a stage-1 step; "
            "the stage-1 step includes its AdamW update, the micro-batch does not)",
        ),
    ]
    results["stage2"] = {"micro_s": micro["mean"], "step_s": step_seconds, "ratio": ratio}


# ----------------------------------------------------------------------------- report


def markdown_table(rows):
    """Rows of (name, value) as a two-column Markdown table.

    Arguments
    ---------
    rows : list of tuple
        (name, value) pairs.

    Returns
    -------
    str
        The table.

    Example
    -------
    >>> print(markdown_table([("a", "1"), ("b", "x|y")]))
    | Quantity | Value |
    |---|---|
    | a | 1 |
    | b | x\\|y |
    """
    lines = ["| Quantity | Value |", "|---|---|"]
    for name, value in rows:
        lines.append(f"| {name} | {str(value).replace('|', chr(92) + '|')} |")
    return "\n".join(lines)


def append_report(path, command, date, table):
    """Append a dated result section to a Markdown file (atomically).

    Arguments
    ---------
    path : str or Path
        The Markdown file (created with a title if missing).
    command : str
        The exact command line.
    date : str
        The run date.
    table : str
        The Markdown table.

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "b.md"
    >>> append_report(f, "python x.py", "2026-01-01", "| a | b |")
    >>> "`python x.py`" in f.read_text()
    True
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    if not text.endswith("\n"):
        text += "\n"
    text += f"\n### Run of {date}\n\nCommand: `{command}`\n\n{table}\n"
    atomic_write_text(str(path), text)


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
    if "stage1" in args.parts:
        logger.info("Stage 1: %d timed steps after %d warm-up...", args.steps, args.warmup)
        run_stage1(args, device, rows, results)
        _free(device)  # the stage-1 model, optimizer and table go out of scope
    if "stage2" in args.parts:
        if device.type == "cpu" and not (args.force or args.tiny):
            message = (
                "skipped: stage 2 needs a GPU (a full-size 8-9B LLM in bf16 is 16-18 GB plus "
                "activations); run with --device cuda, or --force to run it on CPU anyway"
            )
            logger.warning("Stage 2 %s.", message)
            rows += [("**Stage 2**", message)]
        else:
            logger.info("Stage 2: building the LLM from %s...", args.llm_config)
            run_stage2(args, device, rows, results)
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
