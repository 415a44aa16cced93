"""Benchmark part ``decode``: batched greedy decoding vs one utterance at a time.

The paper decodes its test sets one utterance at a time with Hugging Face ``generate``
(greedy, at most 150 new tokens). This part measures what batching buys on the same
utterances and checks that it changes nothing. All methods go through the real
:meth:`speechmapper_plugin.models.frozen_llm.FrozenLLM.generate_ids` (speech spliced into
``inputs_embeds`` with an attention mask, greedy ``generate``, cut at the end-of-turn id):

- the chosen batched engine (``--decode-engine``, default ``compiled``: Hugging Face's static
  KV cache with each decoding step compiled by ``torch.compile``, CUDA graphs on GPU; or
  ``static`` alone, or ``dynamic``), over all ``--decode-utterances`` in batches of
  ``--decode-batch`` sorted by length (longest first, the last batch filled up to the batch
  size for the static cache);
- the same batches with Hugging Face's default dynamic cache (eager), as the reference of
  what the engine buys;
- one ``generate_ids`` call per utterance with only its own speech vectors (no padding, the
  paper's protocol, dynamic cache), on the first ``--decode-single`` utterances: it is the
  slow one, so a subset keeps the part near a minute on one GPU; its rate is utterances per
  second on that subset.

The engine's first batch is decoded once untimed (compilation, CUDA-graph capture); the
table reports that warm-up time apart.

The LLM is the random-init, frozen one of part ``stage2`` (built from a config, bf16 by
default, see ``--llm-dtype``); its prompt ids are synthetic. The speech vectors are the
outputs of a random-init projector run once per batch on random 25 Hz features of the drawn
durations; the same vectors feed every method, so the projector's time is excluded from
the timings (it is reported on its own row). A random-init LLM rarely emits its end-of-turn
id, so nearly every utterance runs to ``max_new_tokens``: the worst case for every method.

Outputs are compared exactly with the one-by-one ones. In bf16, left padding and the static
cache change the shapes of the matmuls and attention reductions, so the logits of a padded
row can differ from the unpadded ones in the last bits, and a random-init LLM (nearly flat
logits) then flips a greedy choice now and then: the table says how many differ and at which
generated position they first diverge. In fp32 (``--llm-dtype fp32``) they are identical on
CPU (the unit tests check it with the tiny LLM, for every engine).

Authors
-------
speechmapper developers, 2026
"""

import statistics
import time

import torch

from benchmarks.common import (
    FEATURE_RATE,
    TINY_PROJECTOR,
    PeakMemory,
    _autocast,
    _sync,
    random_token_ids,
    utterance_durations,
)
from benchmarks.training import ConfigBuiltLLM, build_llm
from speechmapper_plugin.models.embeddings import speech_lengths
from speechmapper_plugin.models.speechmapper import SpeechMapper

LLM_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
PLACEHOLDER = "<speech>"


def first_divergence(a, b):
    """First position where two generated id lists differ (None if they are equal).

    A list that is a strict prefix of the other (one stopped earlier) diverges at its length.

    Arguments
    ---------
    a, b : list of int
        Generated ids.

    Returns
    -------
    int or None
        The 0-based position, or None.

    Example
    -------
    >>> first_divergence([1, 2, 3], [1, 2, 3]), first_divergence([1, 2, 3], [1, 5, 3])
    (None, 1)
    >>> first_divergence([1, 2], [1, 2, 3])
    2
    """
    if a == b:
        return None
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return min(len(a), len(b))


def pad_vectors(vectors):
    """Right-pads per-utterance [T_i, D] vectors into [B, T, D] with relative lengths.

    Arguments
    ---------
    vectors : list of torch.Tensor
        The valid vectors of each utterance.

    Returns
    -------
    tuple
        (padded [B, max T_i, D] tensor, relative lengths [B] as ``generate_ids`` takes them).

    Example
    -------
    >>> speech, lens = pad_vectors([torch.ones(3, 2), torch.ones(1, 2)])
    >>> speech.shape, lens.tolist(), speech_lengths(lens, 3).tolist()
    (torch.Size([2, 3, 2]), [1.0, 0.3333333432674408], [3, 1])
    """
    total = max(len(v) for v in vectors)
    first = vectors[0]
    padded = first.new_zeros(len(vectors), total, first.shape[-1])
    for index, v in enumerate(vectors):
        padded[index, : len(v)] = v
    lens = torch.tensor([len(v) / total for v in vectors])
    return padded, lens


@torch.no_grad()
def project(projector, feats, order, batch_size, device, precision):
    """Runs the projector once per batch (in ``order``) and returns each utterance's vectors.

    Arguments
    ---------
    projector : SpeechMapper
        The projector (eval mode, on ``device``).
    feats : list of torch.Tensor
        Per-utterance [T_i, input_dim] features (CPU).
    order : list of int
        Utterance indices in batching order.
    batch_size : int
        Utterances per projector call.
    device : torch.device
        The device.
    precision : str
        "fp32" or "bf16" (autocast).

    Returns
    -------
    list of torch.Tensor
        The valid [N_i, llm_dim] outputs of each utterance, in the original order.

    Example
    -------
    >>> proj = SpeechMapper(**TINY_PROJECTOR).eval()
    >>> feats = [torch.randn(40, 32), torch.randn(20, 32)]
    >>> out = project(proj, feats, [0, 1], 2, torch.device("cpu"), "fp32")
    >>> [tuple(o.shape) for o in out] == [(int(proj.output_lengths(torch.tensor([len(f)]))[0]), 64) for f in feats]
    True
    """
    outputs = [None] * len(feats)
    for first in range(0, len(order), batch_size):
        indices = order[first : first + batch_size]
        x, lens = pad_vectors([feats[i] for i in indices])
        with _autocast(device, precision):
            pred, pred_lens = projector(x.to(device), lens.to(device))
        counts = speech_lengths(pred_lens.cpu(), pred.shape[1]).tolist()
        for row, index in enumerate(indices):
            outputs[index] = pred[row, : counts[row]]
    return outputs


def decode_batched(llm, vectors, batch_size, max_new_tokens):
    """Batched greedy decoding (``generate_ids`` sorts the rows by length and splits them).

    Arguments
    ---------
    llm : FrozenLLM
        The LLM (its ``static_cache`` / ``compile_decoding`` select the engine).
    vectors : list of torch.Tensor
        Per-utterance speech vectors.
    batch_size : int
        Utterances per ``generate`` call.
    max_new_tokens : int
        Generation limit.

    Returns
    -------
    list of list of int
        Generated ids (end of turn excluded) of each utterance, in the original order.
    """
    speech, lens = pad_vectors(vectors)
    return llm.generate_ids(
        speech, lens, PLACEHOLDER, max_new_tokens=max_new_tokens, batch_size=batch_size
    )


def decode_one_by_one(llm, vectors, max_new_tokens):
    """One ``generate_ids`` call per utterance with only its own vectors (no padding).

    Arguments
    ---------
    llm : FrozenLLM
        The LLM.
    vectors : list of torch.Tensor
        Per-utterance speech vectors.
    max_new_tokens : int
        Generation limit.

    Returns
    -------
    list of list of int
        Generated ids of each utterance.
    """
    one = torch.ones(1)
    return [
        llm.generate_ids(v.unsqueeze(0), one, PLACEHOLDER, max_new_tokens=max_new_tokens)[0]
        for v in vectors
    ]


def _timed(fn, device):
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


ENGINES = {
    "dynamic": "HF dynamic KV cache (eager)",
    "static": "HF static KV cache (eager)",
    "compiled": "HF static KV cache + torch.compile of the decoding step",
}


def set_engine(llm, engine):
    """Selects the decoding engine of ``llm`` (``dynamic``, ``static`` or ``compiled``).

    Example
    -------
    >>> import types
    >>> llm = types.SimpleNamespace()
    >>> set_engine(llm, "compiled"); (llm.static_cache, llm.compile_decoding)
    (True, True)
    """
    llm.static_cache = engine in ("static", "compiled")
    llm.compile_decoding = engine == "compiled"


def _identity_text(divergences, subset, max_new, llm_dtype):
    differing = [d for d in divergences if d is not None]
    text = f"**{subset - len(differing)} / {subset}**"
    if differing:
        text += (
            f" (the {len(differing)} differing ones first diverge at generated position "
            f"min {min(differing)}, median {statistics.median(differing):g}, max "
            f"{max(differing)}, 0-based of {max_new})"
        )
        if llm_dtype != "fp32":
            text += "; rerun with --llm-dtype fp32 to check exact identity"
    return text, differing


def run_decode(args, device, rows, results):
    """Batched engines vs one-by-one greedy decoding: throughput and output identity."""
    config = args.llm_config_obj
    vocab = config.vocab_size
    num_utts, batch, max_new = args.decode_utterances, args.decode_batch, args.max_new_tokens
    subset = min(getattr(args, "decode_single", num_utts), num_utts)
    engine = getattr(args, "decode_engine", "dynamic")
    llm_dtype = getattr(args, "llm_dtype", "bf16")
    gen = torch.Generator().manual_seed(args.seed + 2)
    pad_id, eot_id = vocab - 1, vocab - 2
    n_before = (2 * args.prompt_tokens) // 3
    n_after = args.prompt_tokens - n_before

    torch.manual_seed(args.seed)
    model = build_llm(config, device, args.attn_implementation, dtype=LLM_DTYPES[llm_dtype])
    llm_params = sum(p.numel() for p in model.parameters())
    before, after = random_token_ids(2, max(n_before, n_after, 1), vocab, gen)
    llm = ConfigBuiltLLM(
        model, before[:n_before], after[:n_after], {}, pad_id, eot_id, args.llm_config
    )
    projector = SpeechMapper(**(TINY_PROJECTOR if args.tiny else {}))
    if projector.llm_dim != llm.embed_dim:
        raise ValueError(
            f"Projector output dim {projector.llm_dim} != LLM hidden size {llm.embed_dim}."
        )
    projector.to(device).eval()

    durations = utterance_durations(num_utts, args.utterance_seconds, args.seed + 2)
    frames = [max(1, round(s * FEATURE_RATE)) for s in durations]
    feats = [torch.randn(n, projector.input_dim, generator=gen) for n in frames]
    order = sorted(range(num_utts), key=lambda i: -frames[i])  # longest first
    vectors, projector_seconds = _timed(
        lambda: project(projector, feats, order, batch, device, args.precision), device
    )
    counts = [len(v) for v in vectors]

    # The engine: its first (longest) batch untimed (compilation, graph capture), then all.
    set_engine(llm, engine)
    longest = [vectors[i] for i in order[:batch]]
    _, warmup_seconds = _timed(lambda: decode_batched(llm, longest, batch, max_new), device)
    with PeakMemory(device) as engine_mem:
        batched, batched_seconds = _timed(
            lambda: decode_batched(llm, vectors, batch, max_new), device
        )
    # The same batches with HF's dynamic cache (eager), and the paper's one-by-one protocol.
    set_engine(llm, "dynamic")
    reference = None
    if engine != "dynamic":
        decode_batched(llm, longest[:2], batch, 2)  # warm-up
        reference, reference_seconds = _timed(
            lambda: decode_batched(llm, vectors, batch, max_new), device
        )
    decode_one_by_one(llm, vectors[:1], 2)  # warm-up
    with PeakMemory(device) as single_mem:
        single, single_seconds = _timed(
            lambda: decode_one_by_one(llm, vectors[:subset], max_new), device
        )

    batched_rate = num_utts / batched_seconds
    single_rate = subset / single_seconds
    speedup = batched_rate / single_rate
    tokens = sum(len(ids) for ids in batched)
    single_tokens = sum(len(ids) for ids in single)
    at_limit = sum(len(ids) == max_new for ids in batched)
    divergences = [first_divergence(a, b) for a, b in zip(batched[:subset], single)]
    identity, differing = _identity_text(divergences, subset, max_new, llm_dtype)
    compiled_note = ""
    if engine == "compiled" and device.type != "cuda":
        compiled_note = " (Hugging Face compiles only on CUDA: here the static cache alone ran)"
    rows += [
        ("**Decoding**", ""),
        (
            "LLM",
            f"{'tiny ' if args.tiny else ''}{args.llm_config} config, random init, frozen, "
            f"{llm_dtype}, {llm_params:,} parameters, {args.attn_implementation} attention; "
            "greedy FrozenLLM.generate_ids (HF generate, do_sample=False, num_beams=1)",
        ),
        (
            "Utterances",
            f"{num_utts}, {statistics.fmean(durations):.2f} s mean ({min(durations):.2f}-"
            f"{max(durations):.2f} s, uniform within +-50% of {args.utterance_seconds:g} s) -> "
            f"{min(counts)}-{max(counts)} speech vectors (mean {statistics.fmean(counts):.1f}); "
            f"prompt {n_before} ids + speech + {n_after} ids (synthetic)",
        ),
        (
            "Projector (excluded from the timings)",
            f"{'tiny' if args.tiny else 'SpeechMapper() defaults'}, random init, "
            f"{args.precision}; once per batch of {batch} in {projector_seconds:.3f} s, its "
            "outputs feed every method",
        ),
        (
            "Generated tokens",
            f"max_new_tokens {max_new}: {tokens} batched; {at_limit} of {num_utts} outputs "
            "reached the limit (a random-init LLM rarely emits its end-of-turn id: the worst "
            "case for every method)",
        ),
        (
            f"Batched, {engine} engine",
            f"{ENGINES[engine]}{compiled_note}; batches of {batch} sorted by length: "
            f"{batched_seconds:.2f} s, **{tokens / batched_seconds:.0f} generated tokens/s**, "
            f"{batched_rate:.2f} utterances/s (untimed warm-up on the first batch: "
            f"{warmup_seconds:.1f} s)",
        ),
    ]
    if reference is not None:
        ref_tokens = sum(len(ids) for ids in reference)
        same = sum(a == b for a, b in zip(batched, reference))
        rows.append(
            (
                "Batched, dynamic cache (reference)",
                f"{ENGINES['dynamic']}, same batches: {reference_seconds:.2f} s, "
                f"{ref_tokens / reference_seconds:.0f} generated tokens/s; engine / dynamic "
                f"**{reference_seconds / batched_seconds:.2f} x**; {same} / {num_utts} outputs "
                "identical to the engine's",
            )
        )
    rows += [
        (
            "One-by-one (paper's protocol)",
            f"first {subset} utterances, one generate_ids call each, dynamic cache, no "
            f"padding: {single_seconds:.2f} s, {single_tokens / single_seconds:.1f} tokens/s "
            f"-> **{single_rate:.2f} utterances/s**",
        ),
        ("Speedup (batched engine / one-by-one utt/s)", f"**{speedup:.2f} x**"),
        (f"Identical outputs (engine vs one-by-one, first {subset})", identity),
        (
            "Peak memory",
            f"batched engine: {engine_mem.describe()}; one-by-one: {single_mem.describe()}",
        ),
    ]
    results["decode"] = {
        "batched_utt_per_s": batched_rate,
        "single_utt_per_s": single_rate,
        "speedup": speedup,
        "tokens_per_s": tokens / batched_seconds,
        "identical": subset - len(differing),
        "total": subset,
        "batched_s": batched_seconds,
        "single_s": single_seconds,
        "reference_s": None if reference is None else reference_seconds,
        "generated_tokens": tokens,
        "max_new_tokens": max_new,
        "llm_dtype": llm_dtype,
        "engine": engine,
        "first_divergence": differing,
        "batch": batch,
    }
