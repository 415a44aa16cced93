"""A tiny *trained* Llama-3.1-like chat LM that follows the project's speech prompts: the
demo's frozen LLM.

The demo needs an LLM that really reads what is spliced into the ``<speech>`` slot of its
prompt. This module builds one offline, from the mini-corpus grammar alone:

* the architecture, chat template and special tokens of :mod:`speechmapper_plugin.tiny.llm`
  (``LlamaForCausalLM``, Llama-3.1 template), built by ``tiny.llm.build_tiny_llm`` and then
  trained; its sentencepiece tokenizer is trained on the corpus *and* on the chat-rendered
  prompts (weighted), so the prompt words and the template's header are whole pieces
  (``tiny.chat_tasks.tokenizer_texts``);
* instruction data made from ``tiny.grammar.generate_sentences`` text, disjoint from the
  held-out (dev + test) sentences of the demo corpora (``tiny.chat_tasks.heldout_sentences``);
* each example puts the *embeddings* of a sentence's tokens, followed by a tail of the
  reserved pad embedding (exactly a stage-1 target, ``EmbeddingTable.targets``), into the
  ``<speech>`` slot of a prompt, and is trained through the very code that feeds projector
  outputs to the LLM (``FrozenLLM.forward`` / ``build_inputs``);
* tasks (``tiny.chat_tasks.chat_tasks``): ASR (repeat the text) with the Table 11 zero-shot
  prompt, the IT prompt (with and without the zero-shot suffix) and the noise-injection prompt
  with its forced assistant prefix; and a synthetic speech translation into Minish
  (``tiny.minish``), an invented language with a fixed word-for-word lexicon, whose
  instruction is the paper's ST instruction written in the target language;
* the input embeddings are kept at their random N(0, 0.02) initialization (frozen), so the
  table that stage 1 regresses onto is the one the LM was trained with;
* slot vectors get Gaussian noise on part of the batch (std drawn in [0, ``noise_max``]
  times the embedding std per dimension), so the LM tolerates imperfect projector outputs.
  This is a deviation from a real LLM, which never saw noisy embeddings;
* a second phase corrupts most slots as a tiny stage-1 projector's outputs are (words
  replaced, dropped or repeated, vectors blurred), so the LM reads imperfect projector outputs
  through its knowledge of the language, as a large LLM does, rather than token by token
  (another deviation; ``tiny/assets/README.md`` has the figures with and without it).

Training is deterministic on CPU (one thread, seeded generators): the same torch version on the
same kind of CPU rebuilds the shipped weights bit for bit (:func:`file_digests`). The shipped
build is in ``tiny/assets/tiny_chat_lm`` (:func:`shipped_chat_lm`), with its training curve
and its evaluation (``tiny/assets/README.md``).

Command line::

    python -m speechmapper_plugin.tiny.chat_lm --output_folder DIR            # build
    python -m speechmapper_plugin.tiny.chat_lm --output_folder DIR --evaluate  # figures (JSON)

Authors
-------
speechmapper developers, 2026
"""

import argparse
import hashlib
import json
import logging
import math
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch

from speechmapper_plugin.tiny.builds import cached_build
from speechmapper_plugin.tiny.chat_tasks import (
    HELDOUT_PLANS,
    chat_tasks,
    corrupt_tokens,
    corrupt_vectors,
    evaluate_tasks,
    heldout_sentences,
    slot_targets,
    tokenizer_texts,
)
from speechmapper_plugin.tiny.grammar import generate_sentences, grammar_words
from speechmapper_plugin.tiny.llm import build_tiny_llm, default_vocab_size
from speechmapper_plugin.tiny.minish import minish_lexicon

logger = logging.getLogger(__name__)

BUILD_MANIFEST = "tiny_chat_lm_build.json"


BUILD_FORMAT_VERSION = 1


CURVE_FILE = "training_curve.json"


CURVE_PNG = "training_curve.png"


EVAL_FILE = "evaluation.json"


#: Phase-2 steps of the shipped build (corrupted slots, see :func:`build_tiny_chat_lm`).
DENOISE_STEPS = 1000


#: Tasks scored on the dev sentences during training (the curve's WER panel).
CURVE_TASKS = ("asr_table11", "asr_it", "st_it", "asr_table11_text")


#: The shipped build (package data): ``python -m speechmapper_plugin.tiny.chat_lm`` rebuilds it.
SHIPPED_FOLDER = Path(__file__).resolve().parent / "assets" / "tiny_chat_lm"


def shipped_chat_lm():
    """The folder of the shipped trained tiny chat LM (a Hugging Face model folder).

    Returns
    -------
    Path
        ``speechmapper_plugin/tiny/assets/tiny_chat_lm``.

    Raises
    ------
    FileNotFoundError
        When the package was installed without its data files.

    Example
    -------
    >>> (shipped_chat_lm() / "config.json").is_file()
    True
    """
    missing = [
        name
        for name in ("config.json", "model.safetensors", "tokenizer.json", BUILD_MANIFEST)
        if not (SHIPPED_FOLDER / name).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"The trained tiny chat LM is incomplete in {SHIPPED_FOLDER} (missing: {missing}): "
            "reinstall the package with its data files, or rebuild it with `python -m "
            "speechmapper_plugin.tiny.chat_lm --output_folder DIR` (about 26 CPU minutes) "
            "and pass DIR as --llm_folder."
        )
    return SHIPPED_FOLDER


class _Sampler:
    """Deterministic stream of training examples (sentence, task, noise level, corruption
    level); a stream without corruption draws exactly what it drew before corruption existed."""

    def __init__(
        self, sentences, task_list, seed, noise_prob, noise_max, corrupt_prob=0.0, corrupt_max=0.0
    ):
        self.sentences = list(sentences)
        self.tasks = task_list
        self.weights = [task.weight for task in task_list]
        self.rng = random.Random(seed)
        self.order = []
        self.noise_prob, self.noise_max = noise_prob, noise_max
        self.corrupt_prob, self.corrupt_max = corrupt_prob, corrupt_max

    def next(self):
        if not self.order:
            self.order = list(range(len(self.sentences)))
            self.rng.shuffle(self.order)
        text = self.sentences[self.order.pop()]
        task = self.rng.choices(self.tasks, self.weights)[0]
        noise = 0.0
        if self.rng.random() < self.noise_prob:
            noise = self.rng.uniform(0.0, self.noise_max)
        corrupt = 0.0
        if self.corrupt_prob and self.rng.random() < self.corrupt_prob:
            corrupt = self.rng.uniform(0.0, self.corrupt_max)
        return text, task, noise, corrupt

    @staticmethod
    def tail(rng, num_tokens):
        return rng.randint(0, 2 * num_tokens + 2)


def _lr_at(step, steps, lr, warmup, final_ratio=0.1):
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _step_loss(llm, table, batch, lexicon, rng, generator, emb_std, vocab_ids=None):
    slotted = [index for index, (_, task, _, _) in enumerate(batch) if not task.text_input]
    ids = table.encode([batch[i][0] for i in slotted])
    levels = [batch[i][3] for i in slotted]
    ids = [
        corrupt_tokens(seq, level, rng, vocab_ids, table.pad_id) if level else seq
        for seq, level in zip(ids, levels)
    ]
    tails = [_Sampler.tail(rng, len(seq)) for seq in ids]
    noise = torch.tensor([batch[i][2] for i in slotted], dtype=torch.float32) * emb_std
    if not slotted:
        speech = lens = None
    elif any(levels):
        speech, lens = slot_targets(table, ids, tails)
        speech = corrupt_vectors(speech, lens, torch.tensor(levels))
        speech = speech + torch.randn(speech.shape, generator=generator) * noise.view(-1, 1, 1)
    else:
        speech, lens = slot_targets(table, ids, tails, noise, generator)
    row_of = {index: row for row, index in enumerate(slotted)}
    groups = {}
    for index, (_, task, _, _) in enumerate(batch):
        groups.setdefault((task.text_input, task.assistant_prefix), []).append(index)
    total, count = 0.0, 0
    for text_input, prefix in sorted(groups):
        members = groups[(text_input, prefix)]
        rows = [row_of[i] for i in members] if not text_input else None
        out = llm(
            None if text_input else speech[rows],
            None if text_input else lens[rows],
            [batch[i][1].user_prompt(batch[i][0]) for i in members],
            [batch[i][1].answer(batch[i][0], lexicon) for i in members],
            assistant_prefix=prefix,
        )
        total = total + out["loss"] * out["num_tokens"]
        count += out["num_tokens"]
    return total / count, count


def _trainable(llm):
    """Unfreezes every LM weight except the input embeddings; returns the parameter groups."""
    decay, no_decay = [], []
    for name, param in llm.model.named_parameters():
        if "embed_tokens" in name:
            param.requires_grad_(False)
            continue
        param.requires_grad_(True)
        (no_decay if param.ndim < 2 else decay).append(param)
    return decay, no_decay


def train_chat_lm(
    llm,
    sentences,
    task_list,
    lexicon,
    steps=3000,
    batch_size=32,
    lr=2e-3,
    warmup=200,
    weight_decay=0.01,
    max_grad_norm=1.0,
    noise_prob=0.5,
    noise_max=0.5,
    corrupt_prob=0.0,
    corrupt_max=0.0,
    seed=0,
    log_interval=50,
    eval_interval=1000,
    eval_sentences=None,
    curve=None,
):
    """Trains the LM (all weights but the input embeddings) on the instruction mix in place.

    Arguments
    ---------
    llm : models.frozen_llm.FrozenLLM
        The (random-init) LM; its weights are unfrozen here and frozen again at the end.
    sentences : list of str
        English training sentences.
    task_list : list of ChatTask
        The instructions (sampled by weight).
    lexicon : dict
        The Minish lexicon.
    steps, batch_size, lr, warmup, weight_decay, max_grad_norm : training settings
        AdamW, linear warm-up then cosine decay to 10% of ``lr``.
    noise_prob : float
        Fraction of the examples whose slot vectors get Gaussian noise.
    noise_max : float
        The noise std is drawn uniformly in [0, noise_max] times the embedding std.
    corrupt_prob : float
        Fraction of the examples whose slot is corrupted as a tiny stage-1 projector's
        outputs are (``chat_tasks.corrupt_tokens``, ``chat_tasks.corrupt_vectors``).
    corrupt_max : float
        The corruption level is drawn uniformly in [0, corrupt_max].
    seed : int
        Seed of the example stream and of the noise.
    log_interval : int
        Steps between training-loss records.
    eval_interval : int
        Steps between copy-WER checks on ``eval_sentences``.
    eval_sentences : list of str, optional
        Sentences for the periodic check (e.g. the demo's dev sentences).
    curve : list, optional
        Records (dicts) are appended to it.

    Returns
    -------
    list of dict
        The training curve.
    """
    curve = [] if curve is None else curve
    table = llm.embedding_table()
    emb_std = float(table.weight.float().std())
    decay, no_decay = _trainable(llm)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-8,
    )
    sampler = _Sampler(sentences, task_list, seed, noise_prob, noise_max, corrupt_prob, corrupt_max)
    vocab_ids = None
    if corrupt_prob:  # the word pieces of the training text replace corrupted tokens
        vocab_ids = sorted({i for seq in table.encode(sentences[:5000]) for i in seq})
    curve_tasks = [task for task in task_list if task.name in CURVE_TASKS] or task_list[:1]
    rng = random.Random(seed + 1)
    generator = torch.Generator().manual_seed(seed + 2)
    window, window_tokens, start = 0.0, 0, time.time()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, steps, lr, warmup)
        batch = [sampler.next() for _ in range(batch_size)]
        loss, count = _step_loss(llm, table, batch, lexicon, rng, generator, emb_std, vocab_ids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decay + no_decay, max_grad_norm)
        optimizer.step()
        window += loss.item() * count
        window_tokens += count
        if (step + 1) % log_interval == 0 or step + 1 == steps:
            record = {
                "step": step + 1,
                "split": "train",
                "loss": window / window_tokens,
                "lr": optimizer.param_groups[0]["lr"],
            }
            curve.append(record)
            logger.info("step %d loss %.4f (%.0f s)", step + 1, record["loss"], time.time() - start)
            window, window_tokens = 0.0, 0
        if eval_sentences and ((step + 1) % eval_interval == 0 or step + 1 == steps):
            scores = evaluate_tasks(llm, eval_sentences, curve_tasks, lexicon)
            record = {"step": step + 1, "split": "dev"}
            record.update({f"wer_{name}": value["wer"] for name, value in scores.items()})
            curve.append(record)
            logger.info("step %d dev %s", step + 1, record)
    llm.model.requires_grad_(False)
    return curve


def evaluate_folder(
    folder,
    num_sentences=200,
    noise_levels=(0.5, 1.0, 1.5, 2.0, 3.0),
    degrees=(1e-4, 1e-3, 1e-2, 1e-1),
    num_threads=1,
):
    """The figures of a chat LM on the demo's held-out test sentences.

    Arguments
    ---------
    folder : str or Path
        The LM folder.
    num_sentences : int
        How many of the 200 test sentences to use.
    noise_levels : tuple of float
        Gaussian noise std per dimension, in embedding stds.
    degrees : tuple of float
        Noise degrees of the paper's Algorithm 1 (Table 6).
    num_threads : int
        Torch CPU threads.

    Returns
    -------
    dict
        ``prompt_tokens`` (prompt + template per task), ``sentence_tokens`` (mean),
        ``clean`` (every task), ``tails`` (no pad tail / 20 pads), ``gaussian`` and
        ``algorithm1`` (WER per level for a few tasks).
    """
    from speechmapper_plugin.models.frozen_llm import FrozenLLM

    torch.set_num_threads(num_threads)
    llm = FrozenLLM(folder, dtype="float32")
    lexicon = minish_lexicon()
    tasks = chat_tasks(lexicon)
    by_name = {task.name: task for task in tasks}
    sentences = heldout_sentences()["test"][:num_sentences]
    lengths = [len(ids) for ids in llm.embedding_table().encode(sentences)]
    figures = {"num_sentences": len(sentences), "sentence_tokens": sum(lengths) / len(lengths)}
    figures["prompt_tokens"] = {
        task.name: sum(map(len, llm.prompt_ids(task.prompt)))
        for task in tasks
        if not task.text_input
    }

    def wers(results):
        return {
            name: {"wer": round(value["wer"], 2), "not_stopped_pct": value["not_stopped_pct"]}
            for name, value in results.items()
        }

    figures["clean"] = wers(evaluate_tasks(llm, sentences, tasks, lexicon))
    some = [by_name[name] for name in ("asr_table11", "asr_it", "st_it")]
    figures["tails"] = {
        str(tail): wers(evaluate_tasks(llm, sentences, some, lexicon, tail=tail))
        for tail in (0, 20)
    }
    figures["gaussian"] = {
        str(level): wers(evaluate_tasks(llm, sentences, some, lexicon, noise_std=level))
        for level in noise_levels
    }
    noise_tasks = [by_name["asr_noise_injection"], by_name["asr_table11"]]
    figures["algorithm1"] = {
        str(degree): wers(
            evaluate_tasks(
                llm, sentences, noise_tasks, lexicon, noise_std=degree, noise_kind="algorithm1"
            )
        )
        for degree in degrees
    }
    figures["embedding_std"] = float(llm.embedding_table().weight.float().std())
    return figures


def file_digests(folder):
    """SHA-256 of every file of a folder (the bit-identity check of a rebuild).

    Example
    -------
    >>> folder = Path(tempfile.mkdtemp()); _ = (folder / "a").write_text("x")
    >>> file_digests(folder)["a"][:8]
    '2d711642'
    """
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(Path(folder).iterdir())
        if path.is_file()
    }


def _plot_curve(records, png_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in records if r["split"] == "train"]
    dev = [r for r in records if r["split"] == "dev"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].plot(*zip(*train))
    axes[0].set_yscale("log")
    axes[0].set_title("training CE (answer tokens)")
    for name in sorted({k for r in dev for k in r if k.startswith("wer_")}):
        axes[1].plot([r["step"] for r in dev], [r[name] for r in dev], marker="o", label=name)
    axes[1].set_title("dev WER (%), true embeddings in the slot")
    axes[1].legend()
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=80)
    plt.close(fig)


def build_tiny_chat_lm(
    output_folder,
    num_sentences=100000,
    vocabulary="small",
    hidden_size=128,
    num_layers=4,
    num_heads=4,
    num_kv_heads=2,
    intermediate_size=384,
    steps=3000,
    batch_size=32,
    lr=2e-3,
    warmup=200,
    noise_prob=0.5,
    noise_max=0.5,
    corrupt_prob=0.0,
    corrupt_max=0.0,
    denoise_steps=DENOISE_STEPS,
    denoise_lr=1e-3,
    denoise_corrupt_prob=0.8,
    denoise_corrupt_max=0.9,
    template_weight=300,
    vocab_margin=300,
    tokenizer_sentences=20000,
    seed=0,
    eval_interval=500,
    num_threads=1,
    phase1_folder=None,
):
    """Builds (or reuses) the trained tiny chat LM in a Hugging Face folder.

    Two phases: ``steps`` steps of the instruction mix (true embeddings, some with Gaussian
    noise), then ``denoise_steps`` more in which part of the slots are corrupted as a tiny
    stage-1 projector's outputs are (``corrupt_tokens``, ``corrupt_vectors``), so that the LM
    reads imperfect projector outputs as a large LLM does: through its knowledge of the
    language, not only token by token.

    The folder holds ``config.json``, ``model.safetensors`` (float32), the tokenizer files
    with the chat template, ``generation_config.json``, the build manifest, the training
    curve (``training_curve.json`` / ``.png``) and ``evaluation.json`` (WER of every task on
    the demo's held-out test sentences, true embeddings in the slot). With the same torch
    version, the same settings and ``num_threads=1``, every file is rebuilt bit for bit.

    Arguments
    ---------
    output_folder : str or Path
        The model folder.
    num_sentences : int
        Training sentences drawn from the grammar, none of them held out.
    vocabulary : str
        Vocabulary of the grammar (``"small"`` as the demo, or ``"full"``).
    hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size : int
        The Llama architecture (``hidden_size`` is the projector's ``llm_dim``).
    steps, batch_size, lr, warmup, noise_prob, noise_max, corrupt_prob, corrupt_max : training settings
        Phase 1, see :func:`train_chat_lm`.
    denoise_steps, denoise_lr, denoise_corrupt_prob, denoise_corrupt_max : training settings
        Phase 2 (0 steps: none), 50 warm-up steps, the same batch size and noise.
    template_weight : int
        Copies of each prompt text in the tokenizer corpus (:func:`tokenizer_texts`).
    vocab_margin : int
        Added to ``tiny.llm.default_vocab_size`` (room for the prompt words).
    tokenizer_sentences : int
        Training sentences (and their translations) in the tokenizer corpus.
    seed : int
        Seed of everything (sentences, initialization, training).
    eval_interval : int
        Steps between dev-WER points of the curve.
    num_threads : int
        Torch CPU threads during the build (1: bit-reproducible).
    phase1_folder : str or Path, optional
        A build whose phase-1 settings are these (e.g. one with ``denoise_steps=0``): phase 1
        is read from it (weights, tokenizer, curve) instead of retrained. Phase 1 is
        deterministic, so the result is the same file for file.

    Returns
    -------
    Path
        The model folder.
    """
    from speechmapper_plugin.models.frozen_llm import FrozenLLM

    output_folder = Path(output_folder)
    settings = {
        "format": BUILD_FORMAT_VERSION,
        "torch": torch.__version__,
        "num_sentences": num_sentences,
        "vocabulary": vocabulary,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "num_kv_heads": num_kv_heads,
        "intermediate_size": intermediate_size,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "warmup": warmup,
        "noise_prob": noise_prob,
        "noise_max": noise_max,
        "corrupt_prob": corrupt_prob,
        "corrupt_max": corrupt_max,
        "denoise_steps": denoise_steps,
        "denoise_lr": denoise_lr,
        "denoise_corrupt_prob": denoise_corrupt_prob,
        "denoise_corrupt_max": denoise_corrupt_max,
        "template_weight": template_weight,
        "vocab_margin": vocab_margin,
        "tokenizer_sentences": tokenizer_sentences,
        "seed": seed,
        "eval_interval": eval_interval,
        "num_threads": num_threads,
        "heldout_plans": [list(plan) for plan in HELDOUT_PLANS],
    }
    if phase1_folder is not None:
        _check_phase1(phase1_folder, settings)
    held = heldout_sentences()
    lexicon = minish_lexicon()
    task_list = chat_tasks(lexicon)
    # The key covers the held-out sentences and every prompt: a change rebuilds the LM.
    key_texts = held["all"] + [
        f"{t.name}|{t.weight}|{t.prompt}|{t.assistant_prefix}" for t in task_list
    ]

    def write(tmp_folder):
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        start = time.time()
        try:
            sentences = generate_sentences(
                num_sentences,
                seed=1_000_003 + seed,
                exclude=held["all"],
                vocabulary=grammar_words(vocabulary),
            )
            init_folder = Path(tempfile.mkdtemp(prefix=".init", dir=tmp_folder)) / "llm"
            if phase1_folder is not None:
                curve = _read_phase1(phase1_folder, init_folder)
                llm = FrozenLLM(init_folder, dtype="float32")
            else:
                tok_texts = tokenizer_texts(
                    sentences[:tokenizer_sentences], lexicon, task_list, template_weight
                )
                build_tiny_llm(
                    init_folder,
                    tok_texts,
                    hidden_size=hidden_size,
                    num_layers=num_layers,
                    num_heads=num_heads,
                    num_kv_heads=num_kv_heads,
                    intermediate_size=intermediate_size,
                    seed=seed,
                    vocab_size=default_vocab_size(tok_texts) + vocab_margin,
                )
                llm = FrozenLLM(init_folder, dtype="float32")
                torch.manual_seed(seed)
                curve = train_chat_lm(
                    llm,
                    sentences,
                    task_list,
                    lexicon,
                    steps=steps,
                    batch_size=batch_size,
                    lr=lr,
                    warmup=warmup,
                    noise_prob=noise_prob,
                    noise_max=noise_max,
                    corrupt_prob=corrupt_prob,
                    corrupt_max=corrupt_max,
                    seed=seed,
                    eval_interval=eval_interval,
                    eval_sentences=held["dev"][:100],
                )
            if denoise_steps:
                phase2 = train_chat_lm(
                    llm,
                    sentences,
                    task_list,
                    lexicon,
                    steps=denoise_steps,
                    batch_size=batch_size,
                    lr=denoise_lr,
                    warmup=50,
                    noise_prob=noise_prob,
                    noise_max=noise_max,
                    corrupt_prob=denoise_corrupt_prob,
                    corrupt_max=denoise_corrupt_max,
                    seed=seed + DENOISE_SEED_OFFSET,
                    eval_interval=eval_interval,
                    eval_sentences=held["dev"][:100],
                )
                curve += [dict(r, step=r["step"] + steps, phase=2) for r in phase2]
            train_seconds = time.time() - start
            llm.model.save_pretrained(tmp_folder, safe_serialization=True)
            for name in _TOKENIZER_FILES:
                if (init_folder / name).is_file():
                    shutil.copy2(init_folder / name, tmp_folder / name)
            shutil.rmtree(init_folder.parent)
            (tmp_folder / CURVE_FILE).write_text(json.dumps(curve, indent=1) + "\n")
            _plot_curve(curve, str(tmp_folder / CURVE_PNG))
            scores = evaluate_tasks(llm, held["test"], task_list, lexicon)
            (tmp_folder / EVAL_FILE).write_text(json.dumps(scores, indent=1) + "\n")
            logger.info(
                "Trained the tiny chat LM in %.0f s (%.0f s with the evaluation); test WER: %s",
                train_seconds,
                time.time() - start,
                {name: round(value["wer"], 2) for name, value in scores.items()},
            )
        finally:
            torch.set_num_threads(previous_threads)

    cached_build(output_folder, "chat LM", BUILD_MANIFEST, key_texts, settings, write)
    return output_folder


#: Phase 2 draws its examples and noise from ``seed`` + this offset.
DENOISE_SEED_OFFSET = 7


#: The settings that decide phase 1 (a ``phase1_folder`` must record the same).
_PHASE1_KEYS = (
    "format",
    "torch",
    "num_sentences",
    "vocabulary",
    "hidden_size",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "intermediate_size",
    "steps",
    "batch_size",
    "lr",
    "warmup",
    "noise_prob",
    "noise_max",
    "corrupt_prob",
    "corrupt_max",
    "template_weight",
    "vocab_margin",
    "tokenizer_sentences",
    "seed",
    "eval_interval",
    "num_threads",
    "heldout_plans",
)


def _check_phase1(folder, settings):
    """Raises ``ValueError`` when ``folder``'s build manifest records other phase-1 settings
    than ``settings`` (named), or a phase 2."""
    folder = Path(folder)
    recorded = json.loads((folder / BUILD_MANIFEST).read_text(encoding="utf-8"))["settings"]
    if recorded.get("denoise_steps"):
        raise ValueError(f"phase1_folder={folder} already holds a phase 2: give a phase-1 build.")
    recorded = {"corrupt_prob": 0.0, "corrupt_max": 0.0, **recorded}  # builds before corruption
    differ = {
        k: (recorded.get(k), settings[k]) for k in _PHASE1_KEYS if recorded.get(k) != settings[k]
    }
    if differ:
        raise ValueError(
            f"phase1_folder={folder} was built with other phase-1 settings "
            f"(recorded, wanted): {differ}"
        )


def _read_phase1(folder, init_folder):
    """Copies the phase-1 model of ``folder`` into ``init_folder``; returns its curve."""
    folder = Path(folder)
    init_folder.mkdir(parents=True)
    for name in _TOKENIZER_FILES + ("config.json", "model.safetensors"):
        if (folder / name).is_file():
            shutil.copy2(folder / name, init_folder / name)
    curve = json.loads((folder / CURVE_FILE).read_text(encoding="utf-8"))
    return [r for r in curve if r.get("phase", 1) == 1]


_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
    "spm.model",
)


def main(argv=None):
    """Command-line entry point (``python -m speechmapper_plugin.tiny.chat_lm --help``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_folder", required=True)
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="do not build: print the figures of the LM in output_folder (JSON)",
    )
    for name, default in (
        ("num_sentences", 100000),
        ("num_layers", 4),
        ("hidden_size", 128),
        ("intermediate_size", 384),
        ("steps", 3000),
        ("batch_size", 32),
        ("seed", 0),
        ("eval_interval", 500),
        ("num_threads", 1),
    ):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--noise_max", type=float, default=0.5)
    parser.add_argument("--corrupt_prob", type=float, default=0.0)
    parser.add_argument("--corrupt_max", type=float, default=0.0)
    parser.add_argument("--denoise_steps", type=int, default=DENOISE_STEPS)
    parser.add_argument("--denoise_lr", type=float, default=1e-3)
    parser.add_argument("--denoise_corrupt_prob", type=float, default=0.8)
    parser.add_argument("--denoise_corrupt_max", type=float, default=0.9)
    parser.add_argument("--vocabulary", default="small", choices=["small", "full"])
    parser.add_argument(
        "--phase1_folder", default=None, help="read phase 1 from this build (no retraining)"
    )
    args = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.pop("evaluate"):
        figures = evaluate_folder(args["output_folder"], num_threads=args["num_threads"])
        print(json.dumps(figures, indent=1))
        return figures
    start = time.time()
    folder = build_tiny_chat_lm(args.pop("output_folder"), **args)
    print(f"{folder} ({time.time() - start:.0f} s)")
    for name, digest in file_digests(folder).items():
        print(f"{digest}  {name}")
    return folder


if __name__ == "__main__":
    main()
