"""Benchmark part ``decode``: batched greedy decoding vs one utterance at a time.

The paper decodes its test sets one utterance at a time with Hugging Face ``generate``
(greedy, at most 150 new tokens). This part measures what batching buys on the same
utterances and checks that it changes nothing: utterances per second of
:meth:`speechmapper_plugin.models.frozen_llm.FrozenLLM.generate_ids` over left-padded batches (sorted by
length to limit padding) against one ``generate_ids`` call per utterance with only its own
speech vectors (no padding, the paper's protocol), and how many utterances get the same
token ids both ways. Both go through the real ``generate_ids`` (left padding, speech spliced
into ``inputs_embeds`` with an attention mask, greedy ``generate`` with KV cache, cut at the
end-of-turn id).

The LLM is the random-init, frozen one of part ``stage2`` (built from a config, bf16 by
default, see ``--llm-dtype``); its prompt ids are synthetic. The speech vectors are the
outputs of a random-init projector run once per batch on random 25 Hz features of the drawn
durations; the same vectors feed both methods, so the projector's time is excluded from
both timings (it is reported on its own row). A random-init LLM rarely emits its
end-of-turn id, so nearly every utterance runs to ``max_new_tokens``: the worst case for
both methods (batched decoding also loses nothing to rows that stop early).

Outputs are compared exactly. In bf16, left padding changes the shapes of the matmuls and
attention reductions, so the logits of a padded row can differ from the unpadded ones in
the last bits, and a random-init LLM (nearly flat logits) then flips a greedy choice now and
then: the table says how many differ and at which generated position they first diverge.
In fp32 (``--llm-dtype fp32``) they are identical. Measured on CPU with a 2-layer,
4096-wide Llama config, 16 utterances of 1.7-4.5 s, 32 new tokens, one batch of 16:
11 / 16 identical in bf16 (first divergence at generated positions 1 to 30), 16 / 16 in
fp32; the tiny smoke runs (4 utterances, 8 tokens) are identical in both.

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


def decode_batched(llm, vectors, order, batch_size, max_new_tokens):
    """Batched greedy decoding in ``order``; outputs returned in the original order.

    Arguments
    ---------
    llm : FrozenLLM
        The LLM.
    vectors : list of torch.Tensor
        Per-utterance speech vectors.
    order : list of int
        Decoding order (consecutive utterances share a batch).
    batch_size : int
        Utterances per ``generate`` call.
    max_new_tokens : int
        Generation limit.

    Returns
    -------
    list of list of int
        Generated ids (end of turn excluded) of each utterance, in the original order.
    """
    speech, lens = pad_vectors([vectors[i] for i in order])
    ids = llm.generate_ids(
        speech, lens, PLACEHOLDER, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    outputs = [None] * len(vectors)
    for index, row in zip(order, ids):
        outputs[index] = row
    return outputs


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


def run_decode(args, device, rows, results):
    """Batched vs one-by-one greedy decoding throughput and output identity (fills ``rows``)."""
    config = args.llm_config_obj
    vocab = config.vocab_size
    num_utts, batch, max_new = args.decode_utterances, args.decode_batch, args.max_new_tokens
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

    # Warm-up (untimed): the first (longest) batch, and one utterance.
    llm.generate_ids(*pad_vectors([vectors[i] for i in order[:batch]]), PLACEHOLDER, max_new)
    decode_one_by_one(llm, vectors[:1], max_new)
    with PeakMemory(device) as batched_mem:
        batched, batched_seconds = _timed(
            lambda: decode_batched(llm, vectors, order, batch, max_new), device
        )
    with PeakMemory(device) as single_mem:
        single, single_seconds = _timed(lambda: decode_one_by_one(llm, vectors, max_new), device)

    batched_rate = num_utts / batched_seconds
    single_rate = num_utts / single_seconds
    speedup = batched_rate / single_rate
    divergences = [first_divergence(a, b) for a, b in zip(batched, single)]
    differing = [d for d in divergences if d is not None]
    identical = num_utts - len(differing)
    tokens = sum(len(ids) for ids in batched)
    single_tokens = sum(len(ids) for ids in single)
    at_limit = sum(len(ids) == max_new for ids in batched)
    identity = f"**{identical} / {num_utts}** (generated token ids equal per utterance)"
    if differing:
        identity += (
            f"; the {len(differing)} differing ones first diverge at generated position "
            f"min {min(differing)}, median {statistics.median(differing):g}, "
            f"max {max(differing)} (0-based, of {max_new})"
        )
        if llm_dtype != "fp32":
            identity += "; rerun with --llm-dtype fp32 to check exact identity"
    rows += [
        ("**Decoding**", ""),
        (
            "LLM",
            f"{'tiny ' if args.tiny else ''}{args.llm_config} config, random init, frozen, "
            f"{llm_dtype}, {llm_params:,} parameters, {args.attn_implementation} attention; "
            "greedy FrozenLLM.generate_ids (HF generate, do_sample=False, num_beams=1, KV cache)",
        ),
        (
            "Utterances",
            f"{num_utts}, {statistics.fmean(durations):.2f} s mean ({min(durations):.2f}-"
            f"{max(durations):.2f} s, uniform within +-50% of {args.utterance_seconds:g} s) -> "
            f"{min(counts)}-{max(counts)} speech vectors (mean {statistics.fmean(counts):.1f}); "
            f"prompt {n_before} ids + speech + {n_after} ids (synthetic)",
        ),
        (
            "Projector (excluded from both timings)",
            f"{'tiny' if args.tiny else 'SpeechMapper() defaults'}, random init, "
            f"{args.precision}; once per batch of {batch} in {projector_seconds:.3f} s, its "
            "outputs feed both methods",
        ),
        (
            "Generated tokens",
            f"max_new_tokens {max_new}: {tokens} batched / {single_tokens} one-by-one; "
            f"{at_limit} of {num_utts} batched outputs reached the limit (a random-init LLM "
            "rarely emits its end-of-turn id: the worst case for both methods)",
        ),
        (
            "Batched",
            f"{batched_seconds:.2f} s in batches of {batch} (sorted by length, left-padded), "
            f"{tokens / batched_seconds:.1f} tokens/s -> **{batched_rate:.2f} utterances/s**",
        ),
        (
            "One-by-one (paper's protocol)",
            f"{single_seconds:.2f} s, one generate_ids call per utterance, no padding, "
            f"{single_tokens / single_seconds:.1f} tokens/s -> "
            f"**{single_rate:.2f} utterances/s**",
        ),
        ("Speedup (batched / one-by-one utt/s)", f"**{speedup:.2f} x**"),
        ("Identical outputs", identity),
        (
            "Peak memory",
            f"batched: {batched_mem.describe()}; one-by-one: {single_mem.describe()}",
        ),
    ]
    results["decode"] = {
        "batched_utt_per_s": batched_rate,
        "single_utt_per_s": single_rate,
        "speedup": speedup,
        "identical": identical,
        "total": num_utts,
        "batched_s": batched_seconds,
        "single_s": single_seconds,
        "generated_tokens": tokens,
        "max_new_tokens": max_new,
        "llm_dtype": llm_dtype,
        "first_divergence": differing,
    }
