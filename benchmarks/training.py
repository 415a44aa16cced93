"""Benchmark parts ``stage1`` and ``stage2``: training steps of SpeechMapper's two stages.

Authors
-------
speechmapper developers, 2026
"""

import inspect
import time

import torch

from benchmarks.common import (
    FEATURE_RATE,
    MAX_GRAD_NORM,
    TINY_PROJECTOR,
    PeakMemory,
    _autocast,
    _free,
    _sync,
    _timing_text,
    format_duration,
    random_token_ids,
    summarize,
    time_steps,
)
from benchmarks.flops import count_flops, matmul_precision, mfu_text, peak_tflops
from speechmapper_plugin.models.embeddings import EmbeddingTable
from speechmapper_plugin.models.frozen_llm import FrozenLLM
from speechmapper_plugin.models.losses import SpeechMapperLoss, Stage2Loss
from speechmapper_plugin.models.objectives import Stage1Objective
from speechmapper_plugin.models.speechmapper import SpeechMapper
from speechmapper_plugin.training.speed import compile_objective

# ----------------------------------------------------------------------------- stage 1


class Stage1Step:
    """One stage-1 training step on a fixed batch, with ``Stage1Brain``'s objective.

    The target ids are built on the host at the projector's output length and copied to the
    device with the features; projector, target gathering and the eq.-2 loss run as one
    :class:`speechmapper_plugin.models.objectives.Stage1Objective` (under bf16 autocast with
    ``precision="bf16"``, compiled as ``Stage1Brain`` compiles it with ``compile``); the loss is
    back-propagated, gradients are clipped to norm 5 and AdamW steps.

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
    fused : bool
        Fused AdamW.
    compile : bool
        ``training.speed.compile_objective`` of the objective.
    compile_mode : str
        Its torch.compile mode.

    Example
    -------
    >>> proj = SpeechMapper(**TINY_PROJECTOR)
    >>> step = Stage1Step(proj, EmbeddingTable(torch.randn(20, 64), pad_id=19), torch.device("cpu"), "fp32")
    >>> loss = step(torch.randn(2, 40, 32), [[1, 2], [3]])
    >>> bool(torch.isfinite(loss))
    True
    """

    def __init__(
        self,
        projector,
        table,
        device,
        precision,
        lr=1e-5,
        fused=False,
        compile=False,
        compile_mode="reduce-overhead",
    ):
        self.projector = projector.train()
        self.objective = Stage1Objective(projector, table, SpeechMapperLoss())
        self.model = compile_objective(self.objective, compile_mode) if compile else self.objective
        self.table = table
        self.device = device
        self.precision = precision
        self.optimizer = make_adamw(projector.parameters(), lr, 0.01, fused)
        self.last_loss = None

    def forward_backward(self, feats, tokens, eager=False):
        """Forward and backward passes on CPU features [B, T, F] and per-utterance target
        ids (the eager objective with ``eager=True``); returns the detached loss."""
        out_len = int(self.projector.output_lengths(torch.tensor([feats.shape[1]]))[0])
        ids = self.table.target_ids(tokens, out_len)
        num_tokens = torch.tensor([len(t) for t in tokens])
        lengths = torch.ones(feats.shape[0])
        inputs = [x.to(self.device, non_blocking=True) for x in (feats, lengths, ids, num_tokens)]
        model = self.objective if eager else self.model
        with _autocast(self.device, self.precision):
            loss = model(*inputs)[2]["loss"]
        loss.backward()
        return loss.detach().clone()  # a CUDA-graph output is overwritten by the next replay

    def __call__(self, feats, tokens):
        """Run one step on CPU features [B, T, F] and per-utterance target ids; returns the loss."""
        self.last_loss = self.forward_backward(feats, tokens)
        torch.nn.utils.clip_grad_norm_(self.projector.parameters(), MAX_GRAD_NORM)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return self.last_loss


def make_adamw(params, lr, weight_decay, fused=False):
    """AdamW, with the fused kernel (one launch for all parameters) if ``fused``.

    Example
    -------
    >>> make_adamw(torch.nn.Linear(2, 2).parameters(), 1e-3, 0.0, fused=True).defaults["fused"]
    True
    """
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=bool(fused) or None)


def optimization_text(args):
    """The optimizations switched on, for the table's settings.

    Example
    -------
    >>> import argparse
    >>> optimization_text(argparse.Namespace(compile=True, fused_adamw=False))
    'torch.compile projector'
    """
    chosen = [
        name
        for flag, name in (
            ("compile", "torch.compile projector"),
            ("fused_adamw", "fused AdamW"),
            ("reuse_prompt_prefix", "prompt-prefix keys/values reused"),
            ("causal_mask_only", "causal mask only (no padding mask)"),
        )
        if getattr(args, flag, False)
    ]
    return ", ".join(chosen) or "none (eager projector, default AdamW, padding mask)"


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


# ----------------------------------------------------------------------------- stage 2


class ConfigBuiltLLM(FrozenLLM):
    """:class:`FrozenLLM` around a model built from a config, with synthetic token ids.

    There is no tokenizer for a config-built model, so the only overridden methods are the
    two that tokenize (:meth:`prompt_ids`, :meth:`_ids`): they return fixed id lists of the
    requested lengths. Splicing (``build_inputs``), the forward with ``logits_to_keep``, the
    cross-entropy, the frozen / eval behaviour, ``embed`` and ``generate_ids`` are FrozenLLM's
    own code (``tokenizer`` is a stand-in whose ``bos_token_id`` is None).

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
    >>> from benchmarks.common import TINY_LLM, load_llm_config
    >>> model = AutoModelForCausalLM.from_config(load_llm_config("llama-3.1-8b-instruct", TINY_LLM))
    >>> llm = ConfigBuiltLLM(model, [1, 2], [3], {"a": [5, 6]}, pad_id=511, eot_id=510)
    >>> speech = torch.randn(1, 4, 64, requires_grad=True)
    >>> out = llm(speech, torch.tensor([1.0]), "<speech>", ["a"])
    >>> out["num_tokens"]
    3
    """

    class _NoTokenizer:
        """Stand-in for the missing tokenizer: ``generate_ids`` reads its ``bos_token_id``."""

        bos_token_id = None

    def __init__(self, model, before_ids, after_ids, answers, pad_id, eot_id, source="config"):
        torch.nn.Module.__init__(self)
        self.model = model
        self.model.requires_grad_(False)
        self.model.eval()
        self.source = source
        self.placeholder = "<speech>"
        self.system_prompt = None
        self.tokenizer = self._NoTokenizer()
        self.pad_token, self.pad_id = None, int(pad_id)
        self.eot_token, self.eot_id = None, int(eot_id)
        self.embed_dim = model.get_input_embeddings().embedding_dim
        self.eos_ids = [self.eot_id]
        self._bos_id = None
        self._prompt_cache = {}
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        self.reuse_prompt_prefix = self.causal_mask_only = False
        self.static_cache = self.compile_decoding = False
        self.decoding_compile_config = None
        self._prefix_kv = {}
        self._before, self._after = list(before_ids), list(after_ids)
        self._answers = {key: list(value) for key, value in answers.items()}

    def prompt_ids(self, prompt, speech=True):
        """The fixed prompt ids (before, after) the speech, whatever ``prompt`` is."""
        return self._before, self._after

    def _ids(self, text):
        """The fixed ids of an answer text ([] for the empty assistant prefix)."""
        if not text:
            return []
        return self._answers[text]


def build_llm(config, device, attn_implementation, dtype=torch.bfloat16):
    """Random-init causal LM from ``config`` (bf16 by default), allocated and initialized on ``device``.

    Arguments
    ---------
    config : transformers.PretrainedConfig
        The architecture.
    device : torch.device
        Where the weights are created (no host copy).
    attn_implementation : str
        "sdpa", "eager", "flash_attention_2"...
    dtype : torch.dtype
        Weight dtype.

    Returns
    -------
    transformers.PreTrainedModel
        The model.

    Example
    -------
    >>> from benchmarks.common import TINY_LLM, load_llm_config
    >>> build_llm(load_llm_config("llama-3.1-8b-instruct", TINY_LLM), torch.device("cpu"), "sdpa").dtype
    torch.bfloat16
    """
    from transformers import AutoModelForCausalLM

    with torch.device(device):
        model = AutoModelForCausalLM.from_config(
            config, dtype=dtype, attn_implementation=attn_implementation
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
    llm.reuse_prompt_prefix = bool(getattr(args, "reuse_prompt_prefix", False))
    llm.causal_mask_only = bool(getattr(args, "causal_mask_only", False))
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
    s1 = Stage1Step(
        projector,
        table,
        device,
        args.precision,
        fused=args.fused_adamw,
        compile=args.compile,
        compile_mode=args.compile_mode,
    )
    s1_times = time_steps(lambda: s1(feats, answer_ids), device, args.steps, args.warmup)
    s1_stats = summarize(s1_times)
    s1.optimizer.state.clear()
    projector.zero_grad(set_to_none=True)
    _free(device)

    loss_fn = Stage2Loss(sigma=args.sigma)
    optimizer = make_adamw(projector.parameters(), 1e-4, 0.0, args.fused_adamw)
    lengths = torch.ones(batch)
    num_tokens = torch.full((batch,), args.answer_tokens)
    compiled = torch.compile(projector) if args.compile else projector

    def micro_batch(eager=False):
        x = feats.to(device)
        with _autocast(device, args.precision):
            pred, pred_lens = (projector if eager else compiled)(x, lengths.to(device))
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
    flops, _ = count_flops(lambda: micro_batch(eager=True))
    projector.zero_grad(set_to_none=True)
    peak, peak_source = peak_tflops(
        device, matmul_precision(device, args.precision), args.peak_tflops
    )
    micro = summarize(micro_times)
    upd = summarize(update_times)
    step_seconds = args.grad_accum * micro["mean"] + upd["mean"]
    audio = batch * frames / FEATURE_RATE
    # Like for like: one stage-1 step (fwd + bwd + update) vs one CE step on the same batch.
    ce_step = micro["mean"] + upd["mean"]
    ratio = ce_step / s1_stats["mean"]
    rows += [
        ("**Stage 2**", ""),
        (
            "Frozen LLM",
            f"{'tiny ' if args.tiny else ''}{args.llm_config} config, random init, "
            f"bf16, {llm_params:,} parameters, {args.attn_implementation} attention; "
            f"built on the device in {build_seconds:.1f} s ({build_mem.describe()}); "
            f"optimizations: {optimization_text(args)}",
        ),
        (
            "Micro-batch",
            f"{batch} x {args.s2_seconds:g} s ({frames} vectors -> {out_len} speech vectors); "
            f"sequence {seq_len} = {n_before} prompt + {out_len} speech + {n_after} prompt + "
            f"{args.answer_tokens} answer + 1 end-of-turn; loss eq. 3, sigma {args.sigma:g}",
        ),
        ("Micro-batch time (projector + LLM, fwd + bwd)", _timing_text(micro, args.warmup)),
        (
            "Model FLOPs utilization (micro-batch)",
            mfu_text(flops, micro["mean"], peak, peak_source),
        ),
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
            "CE step through the LLM / stage-1 step, same batch",
            f"**{ratio:.1f} x** ({ce_step:.3f} s = micro-batch + update, vs {s1_stats['mean']:.3f} s;"
            " both forward, backward and AdamW update of the same projector on the same "
            f"{batch} utterances; the stage-2 loss is eq. 3 with sigma {args.sigma:g}, "
            "--sigma 0 for CE alone)",
        ),
    ]
    results["stage2"] = {
        "micro_s": micro["mean"],
        "step_s": step_seconds,
        "steps_s": args.s2_steps * step_seconds,
        "ratio": ratio,
        "flops": flops,
        "peak_bytes": mem.peak if device.type == "cuda" else mem.delta,
    }
