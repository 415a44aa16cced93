"""The instructions of the trained tiny chat LM (``tiny.chat_lm``), its held-out text, and how
it is scored: the prompts it follows (the project's own, ``data.prompts``), the sentences it
never sees in training, the tokenizer corpus that makes the prompt words whole pieces,
stage-1-like slot vectors, and greedy-decoding scores per task.

Authors
-------
speechmapper developers, 2026
"""

import random
import re

import torch

from speechmapper_plugin.data import prompts
from speechmapper_plugin.tiny.llm import BOS_TOKEN, CHAT_TEMPLATE, SPECIAL_TOKENS
from speechmapper_plugin.tiny.minicorpus import plan_corpus
from speechmapper_plugin.tiny.minish import (
    MINISH_CODE,
    minish_st_instructions,
    translate,
)

#: The corpora whose held-out sentences the LM never sees: ``(num_train, num_valid, num_test,
#: seed, vocabulary)`` of ``minicorpus.build_minicorpus`` (the demo's defaults with seeds 0-2,
#: and the integration tests' corpus). The first one is the demo's (its dev sentences draw the
#: training curve, its test sentences are the LM's evaluation).
HELDOUT_PLANS = (
    (4000, 200, 200, 0, "small"),
    (4000, 200, 200, 1, "small"),
    (4000, 200, 200, 2, "small"),
    (48, 8, 8, 0, "full"),
)


class ChatTask:
    """One instruction of the training mix.

    Arguments
    ---------
    name : str
        Short name (curves, evaluation tables).
    prompt : str
        User prompt with the speech placeholder once.
    kind : str
        ``"asr"`` (answer: the text) or ``"st"`` (answer: its Minish translation).
    weight : float
        Relative sampling weight.
    assistant_prefix : str
        Text forced at the start of the assistant turn (not scored).
    text_input : bool
        The placeholder receives the text itself (as tokens: the cascade / "transcript"
        topline of ``evaluate.py``) rather than its embeddings followed by a pad tail.

    Example
    -------
    >>> task = ChatTask("asr", prompts.ZERO_SHOT_ASR, "asr", 1.0, text_input=True)
    >>> task.user_prompt("a cat")[:8]
    '"a cat"\\n'
    """

    def __init__(self, name, prompt, kind, weight, assistant_prefix="", text_input=False):
        if kind not in ("asr", "st"):
            raise ValueError(f"ChatTask kind must be 'asr' or 'st', got {kind!r}")
        self.name = name
        self.prompt = prompts.check_prompt(prompt)
        self.kind = kind
        self.weight = float(weight)
        self.assistant_prefix = assistant_prefix
        self.text_input = bool(text_input)

    def user_prompt(self, text):
        """The user prompt for the source ``text`` (filled in when ``text_input``)."""
        return prompts.fill_text(self.prompt, text) if self.text_input else self.prompt

    def answer(self, text, lexicon):
        """The target answer for the source ``text``."""
        return text if self.kind == "asr" else translate(text, lexicon)

    def __repr__(self):
        return f"ChatTask({self.name!r}, kind={self.kind!r}, weight={self.weight})"


def chat_tasks(lexicon=None):
    """The instruction mix of the LM (prompts of :mod:`speechmapper_plugin.data.prompts`).

    Returns
    -------
    list of ChatTask
        Embeddings in the slot: ASR with the Table 11 zero-shot prompt, the IT prompt, the IT
        prompt with the zero-shot suffix, the noise-injection prompt (App. A.3, with its
        forced assistant prefix); Minish ST with the IT and the zero-shot prompts. Text in
        the prompt (cascade toplines): ASR with the Table 11 prompt, ASR and ST with the
        text prefix and the zero-shot suffix.

    Example
    -------
    >>> [task.name for task in chat_tasks()][:6]
    ['asr_table11', 'asr_it', 'asr_it_zs', 'asr_noise_injection', 'st_it', 'st_it_zs']
    """
    st = minish_st_instructions(lexicon)
    text = prompts.TEXT_PREFIX
    return [
        ChatTask("asr_table11", prompts.ZERO_SHOT_ASR, "asr", 3),
        ChatTask("asr_it", prompts.build_prompt(prompts.ASR_INSTRUCTION), "asr", 3),
        ChatTask("asr_it_zs", prompts.task_prompt("asr", zero_shot=True), "asr", 1),
        ChatTask(
            "asr_noise_injection",
            prompts.NOISE_INJECTION_PROMPT,
            "asr",
            1,
            assistant_prefix=prompts.NOISE_INJECTION_ASSISTANT_PREFIX,
        ),
        ChatTask(
            "st_it",
            prompts.task_prompt("st", MINISH_CODE, zero_shot=False, st_instructions=st),
            "st",
            2,
        ),
        ChatTask(
            "st_it_zs",
            prompts.task_prompt("st", MINISH_CODE, zero_shot=True, st_instructions=st),
            "st",
            1,
        ),
        ChatTask("asr_table11_text", prompts.ZERO_SHOT_ASR, "asr", 0.5, text_input=True),
        ChatTask(
            "asr_text_zs",
            prompts.task_prompt("asr", zero_shot=True, prefix=text),
            "asr",
            0.25,
            text_input=True,
        ),
        ChatTask(
            "st_text_zs",
            prompts.task_prompt("st", MINISH_CODE, zero_shot=True, prefix=text, st_instructions=st),
            "st",
            0.25,
            text_input=True,
        ),
    ]


def heldout_sentences(plans=HELDOUT_PLANS):
    """The dev and test sentences of mini-corpora (no audio is synthesized).

    Arguments
    ---------
    plans : iterable of tuple
        ``(num_train, num_valid, num_test, seed, vocabulary)`` of ``build_minicorpus``.

    Returns
    -------
    dict
        ``{"dev": [...], "test": [...]}`` for the first plan (the demo's) and ``"all"``, the
        sorted union over every plan.

    Example
    -------
    >>> held = heldout_sentences([(30, 2, 3, 0, "small")])
    >>> len(held["dev"]), len(held["test"]), len(held["all"])
    (2, 3, 5)
    """
    out, union = {}, set()
    for index, (num_train, num_valid, num_test, seed, vocabulary) in enumerate(plans):
        plan, _ = plan_corpus(num_train, num_valid, num_test, seed, vocabulary)
        dev = [utt["text"] for utt in plan if utt["split"] == "dev-clean"]
        test = [utt["text"] for utt in plan if utt["split"] == "test-clean"]
        if index == 0:
            out = {"dev": dev, "test": test}
        union.update(dev + test)
    out["all"] = sorted(union)
    return out


def template_texts(task_list, bos_token=BOS_TOKEN):
    """The chat-rendered prompts of ``task_list``, cut at special tokens and placeholders.

    These segments are what the tokenizer must cover besides the corpus: the template's
    system header, the role names, the prompt words and the assistant prefixes. The template
    is the tiny LLM's own (``tiny.llm.CHAT_TEMPLATE``), rendered as ``transformers`` does.

    Example
    -------
    >>> texts = template_texts([ChatTask("a", "Say <speech>\\nnow", "asr", 1)])
    >>> texts[:3]
    ['system', '\\n\\nCutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n', 'user']
    >>> texts[3:]
    ['\\n\\nSay ', '\\nnow', 'assistant']
    """
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
        CHAT_TEMPLATE
    )
    cut = "|".join(re.escape(token) for token in SPECIAL_TOKENS + [prompts.PLACEHOLDER])
    texts = []
    for task in task_list:
        rendered = template.render(
            messages=[{"role": "user", "content": task.prompt}],
            bos_token=bos_token,
            add_generation_prompt=True,
        )
        for piece in re.split(cut, rendered + task.assistant_prefix):
            if piece.strip() and piece not in texts:
                texts.append(piece)
    return texts


_WORD = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")


def tokenizer_texts(sentences, lexicon, task_list, weight=300):
    """The tokenizer corpus: sentences, their Minish translations and the prompt texts.

    Two sentencepiece habits must be worked around for the prompt words to become whole
    pieces: identical training sentences count once (so each of the ``weight`` copies of a
    prompt text gets a different corpus sentence appended), and only substrings followed by
    more than one character become candidate pieces (``Date`` is always followed by ``:``
    in the template), so each text also comes with its words spaced out. The words that
    follow a special token or a newline are added on their own after a newline, since they
    are tokenized without the word-start marker.

    Arguments
    ---------
    sentences : list of str
        English sentences.
    lexicon : dict
        The Minish lexicon.
    task_list : list of ChatTask
        The prompts to cover.
    weight : int
        Copies of each prompt text.

    Returns
    -------
    list of str
        The corpus.

    Example
    -------
    >>> lexicon = {"a": "ko", "cat": "mifa"}
    >>> texts = tokenizer_texts(["a cat"], lexicon, chat_tasks()[:1], weight=2)
    >>> texts[:2], "Date : December" in " ".join(texts)
    (['a cat', 'ko mifa'], True)
    """
    segments = template_texts(task_list)
    extra = []
    for segment in segments:
        extra.append(segment)
        extra.append(" ".join(_WORD.findall(segment)))
        for line in segment.split("\n"):
            first = _WORD.match(line)
            if first:
                extra.append("\n" + first.group(0))
    for role in ("system", "user", "assistant"):
        extra += [f"\n{role}\n{role}\n{role}", f"\n\n{role}\n\n", f"{role}\n\n", f"\n{role}:"]
    extra = list(dict.fromkeys(extra))
    texts = list(sentences) + [translate(text, lexicon) for text in sentences]
    count = 0
    for text in extra:
        for _ in range(weight):
            texts.append(f"{text} {sentences[count % len(sentences)]}")
            count += 1
    return texts


def slot_targets(table, token_ids, tails, noise_std=None, generator=None, noise_kind="gaussian"):
    """Stage-1-like slot vectors: token embeddings + a pad tail, optionally noised.

    Arguments
    ---------
    table : models.embeddings.EmbeddingTable
        The LM's input-embedding table.
    token_ids : list of list of int
        Token ids of each sentence (no special tokens).
    tails : list of int
        Number of pad vectors after each sentence.
    noise_std : torch.Tensor, optional
        [B] per-example noise level: the std of the Gaussian noise added to every slot
        vector, or with ``noise_kind="algorithm1"`` the degree d of the paper's Algorithm 1.
    generator : torch.Generator, optional
        Draws the noise.
    noise_kind : str
        ``"gaussian"`` (zero-mean, per dimension) or ``"algorithm1"`` (App. A.3: every
        dimension gets ``r * d`` with r drawn uniformly in 1..9, a positive offset).

    Returns
    -------
    tuple
        ``speech`` [B, T, D] and ``lens`` [B] relative lengths (T = longest slot).

    Example
    -------
    >>> from speechmapper_plugin.models.embeddings import EmbeddingTable
    >>> table = EmbeddingTable(torch.eye(4), pad_id=3)
    >>> speech, lens = slot_targets(table, [[0, 1], [2]], [1, 0])
    >>> speech.argmax(-1).tolist(), lens.tolist()
    ([[0, 1, 3], [2, 3, 3]], [1.0, 0.3333333432674408])
    """
    sizes = [len(ids) + int(tail) for ids, tail in zip(token_ids, tails)]
    length = max(sizes)
    speech = table.targets(token_ids, length)
    if noise_std is not None:
        if noise_kind == "gaussian":
            noise = torch.randn(speech.shape, generator=generator)
        elif noise_kind == "algorithm1":
            noise = torch.randint(1, 10, speech.shape, generator=generator).float()
        else:
            raise ValueError(f"noise_kind must be 'gaussian' or 'algorithm1', got {noise_kind!r}")
        speech = speech + noise * noise_std.view(-1, 1, 1).to(speech)
    lens = torch.tensor(sizes, dtype=torch.float32) / length
    return speech, lens


#: Per-token edit probabilities of :func:`corrupt_tokens` at corruption level 1.
SUBSTITUTE, DROP, REPEAT, INSERT_PAD = 0.15, 0.05, 0.5, 0.4


def corrupt_tokens(token_ids, level, rng, vocab_ids=None, pad_id=None):
    """Edits a token sequence as a tiny projector's outputs read: some tokens replaced by other
    words or dropped, others repeated, pad vectors between words (outputs not aligned to the
    tokens, as those of a projector that emits a word where the audio says it).

    Each token is, independently, replaced by a random id of ``vocab_ids`` with probability
    ``SUBSTITUTE * level`` or dropped with probability ``DROP * level``; a kept token gets
    another copy with probability ``REPEAT * level`` (again, up to 3 copies), then a pad id
    with probability ``INSERT_PAD * level`` (again, up to 2). One token is always kept.

    Arguments
    ---------
    token_ids : list of int
        The sentence's tokens.
    level : float
        Corruption level in [0, 1] (0: unchanged).
    rng : random.Random
        Draws the edits.
    vocab_ids : list of int, optional
        Replacement tokens (default: the sentence's own tokens).
    pad_id : int, optional
        The pad token inserted between words (None: no insertion).

    Returns
    -------
    list of int
        The edited sequence.

    Example
    -------
    >>> import random
    >>> corrupt_tokens([1, 2, 3], 0.0, random.Random(0))
    [1, 2, 3]
    >>> out = corrupt_tokens(list(range(1, 100)), 1.0, random.Random(0), [7], pad_id=0)
    >>> len(out) > 99, 0 in out
    (True, True)
    """
    vocab_ids = vocab_ids or token_ids
    out = []
    for token in token_ids:
        draw = rng.random()
        if draw < SUBSTITUTE * level:
            token = rng.choice(vocab_ids)
        elif draw < (SUBSTITUTE + DROP) * level:
            continue
        out.append(token)
        for _ in range(2):
            if rng.random() < REPEAT * level:
                out.append(token)
        if pad_id is not None:
            for _ in range(2):
                if rng.random() < INSERT_PAD * level:
                    out.append(pad_id)
    return out or token_ids[:1]


def corrupt_vectors(speech, lens, levels):
    """Blurs and shrinks slot vectors as a tiny stage-1 projector's outputs are: each vector
    mixed with its neighbours (weight ``level / 2``, split evenly) and scaled by
    ``1 - level / 2`` (MSE-trained outputs under uncertainty are blends of shorter norm).

    Arguments
    ---------
    speech : torch.Tensor
        [B, T, D] slot vectors (tokens + pad tail, then padding).
    lens : torch.Tensor
        [B] relative lengths.
    levels : torch.Tensor
        [B] corruption levels in [0, 1].

    Returns
    -------
    torch.Tensor
        [B, T, D] (rows of level 0 unchanged).

    Example
    -------
    >>> out = corrupt_vectors(torch.eye(3)[None], torch.ones(1), torch.ones(1))
    >>> out[0, 1].tolist()
    [0.125, 0.25, 0.125]
    """
    level = levels.to(speech).view(-1, 1, 1)
    before = torch.cat([speech[:, :1], speech[:, :-1]], dim=1)
    after = torch.cat([speech[:, 1:], speech[:, -1:]], dim=1)
    blended = (1 - level / 2) * speech + level / 4 * (before + after)
    out = blended * (1 - level / 2)
    valid = torch.arange(speech.shape[1])[None, :] < torch.round(lens * speech.shape[1])[:, None]
    return torch.where(valid[..., None] & (level > 0), out, speech)


@torch.no_grad()
def evaluate_tasks(
    llm,
    sentences,
    task_list,
    lexicon,
    noise_std=0.0,
    tail="realistic",
    noise_kind="gaussian",
    max_new_tokens=40,
    batch_size=50,
    seed=0,
):
    """Greedy-decodes each task with the sentences' embeddings in the slot (``generate_ids``).

    Arguments
    ---------
    llm : models.frozen_llm.FrozenLLM
        The LM.
    sentences : list of str
        Source sentences.
    task_list : list of ChatTask
        Tasks to score.
    lexicon : dict
        The Minish lexicon (references of ST tasks).
    noise_std : float
        Gaussian noise std per dimension, in units of the embedding std; with
        ``noise_kind="algorithm1"``, the absolute degree d of the paper's Algorithm 1.
    tail : str or int
        Pad tail per sentence: ``"realistic"`` (seeded draw in [1, 1.5 n + 2], like the
        projector lengths of the demo corpus), or a fixed number of pads.
    noise_kind : str
        ``"gaussian"`` or ``"algorithm1"`` (:func:`slot_targets`).
    max_new_tokens : int
        Generation limit; an output reaching it counts as not stopped.
    batch_size : int
        Decoding batch size.
    seed : int
        Seed of the tails and the noise.

    Returns
    -------
    dict
        Task name -> ``{"wer", "cer", "not_stopped_pct", "examples"}``.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.models.frozen_llm import FrozenLLM
    >>> from speechmapper_plugin.tiny.llm import build_tiny_llm
    >>> folder = build_tiny_llm(tempfile.mkdtemp(), ["the cat sat", "the dog ran"])
    >>> llm = FrozenLLM(folder, dtype="float32")  # random init: it does not copy
    >>> out = evaluate_tasks(llm, ["the cat ran"], chat_tasks()[:1], {}, max_new_tokens=3)
    >>> sorted(out["asr_table11"])
    ['cer', 'examples', 'not_stopped_pct', 'wer']
    """
    from speechmapper_plugin.evaluation.metrics import error_rates

    table = llm.embedding_table()
    emb_std = float(table.weight.float().std())
    ids = table.encode(sentences)
    rng = random.Random(seed)
    if tail == "realistic":
        tails = [rng.randint(1, int(1.5 * len(seq)) + 2) for seq in ids]
    else:
        tails = [int(tail)] * len(ids)
    scale = emb_std if noise_kind == "gaussian" else 1.0
    noise = torch.full((len(ids),), float(noise_std) * scale) if noise_std else None
    results = {}
    for task in task_list:
        hyps, stuck = [], 0
        generator = torch.Generator().manual_seed(seed)  # the same noise for every task
        for first in range(0, len(ids), batch_size):
            part = slice(first, first + batch_size)
            if task.text_input:
                speech = lens = None
                user = [task.user_prompt(text) for text in sentences[part]]
            else:
                speech, lens = slot_targets(
                    table,
                    ids[part],
                    tails[part],
                    None if noise is None else noise[part],
                    generator,
                    noise_kind,
                )
                user = task.prompt
            out = llm.generate_ids(
                speech,
                lens,
                user,
                max_new_tokens=max_new_tokens,
                assistant_prefix=task.assistant_prefix,
            )
            stuck += sum(len(row) >= max_new_tokens for row in out)
            hyps += llm.decode_ids(out)
        refs = [task.answer(text, lexicon) for text in sentences]
        rates = error_rates(hyps, refs)
        results[task.name] = {
            "wer": rates["wer"],
            "cer": rates["cer"],
            "not_stopped_pct": 100.0 * stuck / max(1, len(sentences)),
            "examples": [{"ref": r, "hyp": h} for r, h in list(zip(refs, hyps))[:3]],
        }
    return results
