"""The embedding noise-injection experiment (SpeechMapper paper App. A.3, Algorithm 1, Table 6):
how much noise a frozen LLM tolerates on the input embeddings of a text before it can no
longer repeat that text. Its *embedding error threshold* (EET) is what the paper uses to set
the stage-1 MSE target ((EET)^2, hence the x1e3 scaling of eq. 1).

For a noise degree ``d`` the candidate offsets are ``{i x d | i = 1..9}``. The paper describes
two different draws, and both are implemented (``noise_mode``):

- ``per_dimension`` (the default, **Algorithm 1**): every dimension of every token embedding
  gets its own draw ``r ~ U{1..9}``: ``e[t, k] += r[t, k] * d``;
- ``per_token`` (the prose of App. A.3: "for each token embedding, we then selected one
  perturbation at random ... and added it to every embedding dimension"): one draw per token,
  ``e[t, :] += r[t] * d``.

Both offsets are positive (mean ``5 d``): the noise shifts the embeddings as well as scattering
them. Draws are seeded per utterance (``seed`` and the utterance id), so they depend neither on
the batch size nor on the order of the test set, and the *same* draws ``r`` are used at every
degree: two degrees differ by the scale ``d`` only.

The test-set transcripts are tokenized as stage-1 targets are (``EmbeddingTable.encode``: no
special tokens; what a perfect stage-1 projector would output, without the pad tail, since
Algorithm 1 stacks the token embeddings only). Their perturbed embeddings (float32) take the
place of projector outputs: they are spliced into the speech slot of the repeat prompt
(``prompts.NOISE_INJECTION_PROMPT``, whose placeholder ends the user message, so the user turn
reads "Repeat only the following sentence one more time and nothing else: " followed by the
vectors), the assistant turn is forced to start with ``prompts.NOISE_INJECTION_ASSISTANT_PREFIX``
and the frozen LLM decodes greedily (``FrozenLLM.build_inputs`` / ``generate_ids``, the path of
every SpeechMapper decoding; the vectors are cast to the LLM's dtype there, so with bf16
weights part of a 1e-4 offset is rounded away: ``--llm_dtype=float32`` keeps it). The WER is
computed against the transcript (``metrics.error_rates``, through ``scoring.score_outputs``).

The EET (:func:`embedding_error_threshold`) is the largest tested degree ``d`` such that every
tested degree up to ``d`` keeps the WER within ``margin`` points of the clean WER (degree 0).

Authors
-------
speechmapper developers, 2026
"""

import hashlib
import json
import logging
import math
import numbers
import os

import speechbrain as sb
import torch

from speechmapper_plugin.data.prompts import check_prompt
from speechmapper_plugin.evaluation.decoding import is_stuck
from speechmapper_plugin.evaluation.results import (
    default_file_name,
    make_result,
    validate_result,
    write_result,
)
from speechmapper_plugin.evaluation.scoring import score_outputs
from speechmapper_plugin.utils.files import write_json

logger = logging.getLogger(__name__)


#: Noise modes: Algorithm 1 (one draw per dimension, the default) and the prose of App. A.3
#: (one draw per token, added to every dimension).
NOISE_MODES = ("per_dimension", "per_token")


#: The degrees of Table 6 (0 = the clean reference).
TABLE6_DEGREES = (0.0, 1e-1, 1e-2, 1e-3, 1e-4)


#: ``decoding["experiment"]`` of the result files this module writes.
EXPERIMENT = "noise_injection"


def check_mode(mode):
    """The noise mode, checked (``ValueError`` naming the YAML key otherwise).

    Example
    -------
    >>> check_mode("per_token")
    'per_token'
    """
    if mode not in NOISE_MODES:
        raise ValueError(
            f"noise_mode={mode!r} is not one of {NOISE_MODES} (per_dimension: Algorithm 1, "
            "one draw per dimension; per_token: one draw per token, as App. A.3's text says)."
        )
    return mode


def check_degree(degree, key="noise_degrees"):
    """A noise degree as a float, checked to be finite and >= 0.

    Example
    -------
    >>> check_degree("1e-3")
    0.001
    """
    try:
        value = float(degree)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: {degree!r} is not a number (write e.g. 1.0e-3).") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{key}: {degree!r} must be a finite number >= 0 (0 = no noise).")
    return value


def check_degrees(degrees, key="noise_degrees"):
    """The list of degrees, each checked, without repeats; order kept.

    Example
    -------
    >>> check_degrees([0, "1e-1", 1.0e-2])
    [0.0, 0.1, 0.01]
    """
    if isinstance(degrees, (str, numbers.Number)) or not degrees:
        raise ValueError(f"{key}: expected a non-empty list of degrees, got {degrees!r}.")
    values = [check_degree(d, key) for d in degrees]
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{key}: degree(s) {repeated} listed twice in {list(degrees)}.")
    return values


def degree_label(degree):
    """Short label of a degree, as Table 6 writes it ("no noise", "1e-3", "2.5e-2").

    Example
    -------
    >>> [degree_label(d) for d in (0, 0.1, 1e-4, 0.025, 2)]
    ['no noise', '1e-1', '1e-4', '2.5e-2', '2e0']
    """
    degree = check_degree(degree)
    if degree == 0:
        return "no noise"
    mantissa, exponent = f"{degree:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def mode_label(mode):
    """Human label of a noise mode.

    Example
    -------
    >>> mode_label("per_dimension")
    'per dimension'
    """
    return check_mode(mode).replace("_", " ")


def noise_generator(seed, utt_id):
    """A CPU ``torch.Generator`` seeded from (``seed``, utterance id), stable across runs,
    processes and Python versions (SHA-256, not ``hash``).

    Example
    -------
    >>> a = torch.randint(1, 10, (3,), generator=noise_generator(1986, "u1"))
    >>> b = torch.randint(1, 10, (3,), generator=noise_generator(1986, "u1"))
    >>> torch.equal(a, b)
    True
    """
    digest = hashlib.sha256(f"{int(seed)}\x00{utt_id}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def perturb(embeddings, degree, mode="per_dimension", generator=None):
    """Algorithm 1: add ``r x degree``, ``r ~ U{1..9}``, to token embeddings.

    Arguments
    ---------
    embeddings : torch.Tensor
        [..., T, D] token embeddings (floating point).
    degree : float
        The noise degree ``d`` (0: the embeddings are returned unchanged, as a copy).
    mode : str
        ``"per_dimension"`` (Algorithm 1: one ``r`` per token and dimension) or
        ``"per_token"`` (one ``r`` per token, added to each of its dimensions).
    generator : torch.Generator, optional
        A CPU generator (:func:`noise_generator`); the global one if None.

    Returns
    -------
    torch.Tensor
        The perturbed embeddings, same shape, dtype and device.

    Example
    -------
    >>> x = torch.zeros(2, 4)
    >>> offsets = perturb(x, 1e-2, "per_token", torch.Generator().manual_seed(0)) / 1e-2
    >>> offsets.shape, bool((offsets == offsets[:, :1]).all())
    (torch.Size([2, 4]), True)
    >>> torch.equal(perturb(x + 3, 0.0), x + 3)
    True
    """
    degree = check_degree(degree, "degree")
    check_mode(mode)
    if not embeddings.is_floating_point():
        raise TypeError(f"perturb: embeddings must be floating point, got {embeddings.dtype}.")
    shape = embeddings.shape if mode == "per_dimension" else embeddings.shape[:-1] + (1,)
    draws = torch.randint(1, 10, shape, generator=generator)
    return embeddings + (draws.to(embeddings.dtype) * degree).to(embeddings.device)


def noisy_transcript_embeddings(table, texts, utt_ids, degree, mode="per_dimension", seed=0):
    """The perturbed token embeddings of transcripts, padded into a batch for the speech slot.

    Each transcript is tokenized as a stage-1 target (``table.encode``); its token embeddings
    (float32) are perturbed with :func:`perturb` and the generator of (``seed``, its id), so an
    utterance gets the same draws whatever its batch and whatever the degree.

    Arguments
    ---------
    table : speechmapper_plugin.models.embeddings.EmbeddingTable
        The LLM's input embeddings (``FrozenLLM.embedding_table()``), with its tokenizer.
    texts : list of str
        Transcripts.
    utt_ids : list of str
        Their utterance ids (seed the draws).
    degree : float
        Noise degree.
    mode : str
        ``"per_dimension"`` or ``"per_token"``.
    seed : int
        Experiment seed.

    Returns
    -------
    speech : torch.Tensor
        [B, T, D] float32 vectors (T = most tokens; rows after an utterance's tokens hold the
        pad embedding and are not fed to the LLM).
    lens : torch.Tensor
        [B] relative lengths (tokens / T).

    Example
    -------
    >>> from speechmapper_plugin.models.embeddings import EmbeddingTable
    >>> from speechmapper_plugin.tiny.llm import train_tokenizer
    >>> tok = train_tokenizer(["the cat sat", "the dog ran"])
    >>> pad = tok.convert_tokens_to_ids("<|finetune_right_pad_id|>")
    >>> table = EmbeddingTable(torch.randn(len(tok), 8), pad_id=pad, tokenizer=tok)
    >>> speech, lens = noisy_transcript_embeddings(table, ["the cat sat", "the dog"],
    ...                                            ["a", "b"], 0.0)
    >>> table.decode(speech, lens)
    ['the cat sat', 'the dog']
    """
    if len(texts) != len(utt_ids):
        raise ValueError(f"Got {len(texts)} transcripts for {len(utt_ids)} utterance ids.")
    token_ids = table.encode(list(texts))
    counts = [len(ids) for ids in token_ids]
    length = max([1, *counts])
    clean = table.targets(token_ids, length)
    speech = clean.clone()
    for row, (utt_id, count) in enumerate(zip(utt_ids, counts)):
        speech[row, :count] = perturb(
            clean[row, :count], degree, mode, noise_generator(seed, utt_id)
        )
    lens = torch.tensor(counts, dtype=torch.float32) / length
    return speech, lens


def embedding_error_threshold(wers, margin):
    """The embedding error threshold (EET) from the WER at each degree (Table 6).

    A degree is *tolerated* when its WER is at most ``clean WER + margin`` (WER points). The
    EET is the largest tested degree ``d`` such that every tested degree in ``(0, d]`` is
    tolerated: scanning from the smallest degree up, the last one before the first degree
    that is not. A larger degree tolerated above that first failure (a lucky draw) does not
    raise the EET; it is listed in ``tolerated_above``.

    Arguments
    ---------
    wers : dict
        Degree -> WER (%); must hold degree 0 (the clean WER) and at least one other.
    margin : float
        WER points above the clean WER still counted as "not substantially degraded".

    Returns
    -------
    dict
        ``eet`` (a degree, or None when even the smallest degree is not tolerated),
        ``clean_wer``, ``margin``, ``degrees`` (the tested degrees > 0, ascending),
        ``tolerated`` (those tolerated), ``tolerated_above`` and ``censored`` (True when
        every tested degree is tolerated: the EET is then at least the largest degree
        tested, not an estimate of it).

    Example
    -------
    >>> table6 = {0: 1.4, 1e-1: 207.2, 1e-2: 180.0, 1e-3: 1.6, 1e-4: 1.4}  # Llama 3.1 8B
    >>> embedding_error_threshold(table6, margin=1.0)["eet"]
    0.001
    >>> eurollm = {0: 3.9, 1e-1: 239.3, 1e-2: 13.4, 1e-3: 3.8, 1e-4: 3.8}
    >>> embedding_error_threshold(eurollm, margin=1.0)["eet"]
    0.001
    """
    margin = float(margin)
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"eet_margin={margin!r} must be a finite number of WER points >= 0.")
    values = {check_degree(d): float(w) for d, w in wers.items()}
    if 0.0 not in values:
        raise ValueError(
            f"The EET needs the clean WER: add degree 0 to noise_degrees (got {sorted(values)})."
        )
    noisy = sorted(d for d in values if d > 0)
    if not noisy:
        raise ValueError("The EET needs at least one noise degree > 0 in noise_degrees.")
    clean = values[0.0]
    tolerated = [d for d in noisy if values[d] <= clean + margin]
    eet = None
    for degree in noisy:
        if degree not in tolerated:
            break
        eet = degree
    return {
        "eet": eet,
        "clean_wer": clean,
        "margin": margin,
        "degrees": noisy,
        "tolerated": tolerated,
        "tolerated_above": [d for d in tolerated if eet is None or d > eet],
        "censored": len(tolerated) == len(noisy),
    }


def eet_label(summary):
    """The EET cell: "1e-3", "< 1e-4" (none tolerated), ">= 1e-1" (all tolerated).

    Example
    -------
    >>> eet_label(embedding_error_threshold({0: 5.0, 1e-4: 90.0, 1e-3: 95.0}, margin=1.0))
    '< 1e-4'
    >>> eet_label(embedding_error_threshold({0: 5.0, 1e-4: 5.0, 1e-3: 5.5}, margin=1.0))
    '≥ 1e-3'
    """
    if summary["censored"]:
        return f"≥ {degree_label(summary['eet'])}"
    if summary["eet"] is None:
        return f"< {degree_label(summary['degrees'][0])}"
    return degree_label(summary["eet"])


def llm_label(source, label=None):
    """Row label of an LLM: ``label``, else the last part of its hub id or folder.

    Example
    -------
    >>> llm_label("meta-llama/Llama-3.1-8B-Instruct"), llm_label("/models/eurollm/", "EuroLLM")
    ('Llama-3.1-8B-Instruct', 'EuroLLM')
    """
    if label:
        return str(label)
    return os.path.basename(os.path.normpath(str(source))) or str(source)


def system_label(label, degree, mode):
    """The result files' system name: the LLM, the degree and the mode.

    Example
    -------
    >>> system_label("Llama-3.1-8B-Instruct", 1e-3, "per_dimension")
    'Llama-3.1-8B-Instruct + noise 1e-3 (per dimension)'
    """
    noise = "no noise" if check_degree(degree) == 0 else f"noise {degree_label(degree)}"
    return f"{label} + {noise} ({mode_label(mode)})"


class NoiseInjectionBrain(sb.Brain):
    """Decodes a test set from its perturbed transcript embeddings at one degree and writes
    its result file (task ``asr``: WER/CER against the transcript).

    ``modules``: ``llm`` (a ``FrozenLLM``). Hparams: ``noise_mode``, ``seed``, ``prompt``,
    ``assistant_prefix``, ``max_new_tokens``, ``repetition_guard``, ``dataset``,
    ``llm_source``, ``eet_margin``, ``output_folder``, ``train_logger``. Set ``degree``,
    ``test_name`` (the split) and ``label`` (the LLM's row label) before ``evaluate``;
    ``last_result`` then holds the result written under ``<output_folder>/results``.
    """

    degree = 0.0
    test_name = "test"
    label = "LLM"

    def settings(self):
        """What defines a run besides the data: compared before reusing a result file."""
        hp = self.hparams
        return {
            "experiment": EXPERIMENT,
            "noise_degree": check_degree(self.degree),
            "noise_mode": check_mode(hp.noise_mode),
            "noise_seed": int(hp.seed),
            "slot": "transcript token embeddings (stage-1 tokenization, no pad tail)",
            "prompt": check_prompt(hp.prompt, name="prompt"),
            "assistant_prefix": hp.assistant_prefix,
            "max_new_tokens": int(hp.max_new_tokens),
            "repetition_guard": hp.repetition_guard is not None,
            "llm_dtype": str(self.modules.llm.dtype).replace("torch.", ""),
        }

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Check the settings, take the embedding table (on the LLM's device), reset the guard."""
        self.settings()
        self.table = self.modules.llm.embedding_table()
        if self.hparams.repetition_guard is not None:
            self.hparams.repetition_guard.reset()

    def on_stage_start(self, stage, epoch=None):
        """Reset the decoded outputs."""
        self.outputs = []

    def compute_forward(self, batch, stage):
        """Greedy decoding of the repeat prompt with the perturbed embeddings in its slot."""
        hp = self.hparams
        speech, lens = noisy_transcript_embeddings(
            self.table, list(batch.transcript), list(batch.id), self.degree, hp.noise_mode, hp.seed
        )
        return self.modules.llm.generate_ids(
            speech.to(self.device),
            lens,
            hp.prompt,
            max_new_tokens=hp.max_new_tokens,
            assistant_prefix=hp.assistant_prefix,
            guard=hp.repetition_guard,
        )

    def evaluate_batch(self, batch, stage):
        """Decode only: collect the outputs."""
        with torch.no_grad():
            ids = self.compute_forward(batch, stage)
        for i, hyp in enumerate(self.modules.llm.decode_ids(ids)):
            self.outputs.append(
                {
                    "id": batch.id[i],
                    "hypothesis": hyp,
                    "reference": batch.transcript[i],
                    "stuck": is_stuck(ids[i], self.hparams.max_new_tokens),
                }
            )
        return torch.tensor(0.0)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Score the outputs and write the result file."""
        hp = self.hparams
        guard = hp.repetition_guard
        metrics, signatures = score_outputs(
            "asr", self.outputs, guarded=guard.stopped if guard is not None else 0
        )
        decoding = {**self.settings(), "llm_label": self.label, "eet_margin": hp.eet_margin}
        result = make_result(
            system_label(self.label, self.degree, hp.noise_mode),
            hp.dataset,
            self.test_name,
            "asr",
            metrics,
            self.outputs,
            seed=hp.seed,
            llm=hp.llm_source,
            signatures=signatures,
            decoding=decoding,
        )
        if sb.utils.distributed.if_main_process():
            path = write_result(os.path.join(hp.output_folder, "results"), result)
            logger.info("Result written to %s", path)
        hp.train_logger.log_stats(
            stats_meta={"split": self.test_name, "noise": result["system"]},
            test_stats={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        )
        self.last_result = result


def _finished_result(brain, hparams, split, utt_ids):
    """The result file of this (split, degree) if an earlier run wrote it with the same
    settings, LLM and utterances; else None (the degree is decoded again)."""
    probe = {
        "system": system_label(brain.label, brain.degree, hparams["noise_mode"]),
        "dataset": hparams["dataset"],
        "split": split,
        "task": "asr",
        "source_lang": "en",
        "target_lang": None,
        "seed": hparams["seed"],
    }
    path = os.path.join(hparams["output_folder"], "results", default_file_name(probe))
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
        validate_result(result, where=path)
    except (OSError, ValueError) as err:
        logger.warning("%s is unreadable (%s): decoding this degree again.", path, err)
        return None
    settings = brain.settings()
    same = (
        {k: result["decoding"].get(k) for k in settings} == settings
        and result["llm"] == str(hparams["llm_source"])
        and sorted(o["id"] for o in result["outputs"]) == sorted(utt_ids)
    )
    if not same:
        logger.info("%s was made with other settings: decoding this degree again.", path)
        return None
    logger.info("%s %s: reusing %s (delete it to decode again).", split, probe["system"], path)
    if result["decoding"].get("eet_margin") != hparams["eet_margin"]:  # the table reads it
        result["decoding"]["eet_margin"] = hparams["eet_margin"]
        if sb.utils.distributed.if_main_process():
            write_result(path, result)
    return result


def run_noise_injection(hparams, run_opts, test_sets):
    """The noise-injection experiment on each test set, one result file per degree, then
    the EET of each test set (``<output_folder>/eet.json``); ``noise_table.noise_tables``
    turns the results into Table 6.

    A degree whose result file an earlier run wrote with the same settings is not decoded
    again (a stopped run resumes degree by degree).

    Arguments
    ---------
    hparams : dict
        The loaded ``hparams/noise_injection.yaml``.
    run_opts : dict
        SpeechBrain run options (``--device`` ...).
    test_sets : dict
        Split name -> dataset with ``id`` and ``transcript`` (``datasets.load_eval_dataset``).

    Returns
    -------
    results : list of dict
        The result of every (split, degree).
    summary : dict
        Split name -> EET summary (:func:`embedding_error_threshold`) with ``wer`` (degree
        label -> WER).
    """
    degrees = check_degrees(hparams["noise_degrees"])
    check_mode(hparams["noise_mode"])
    margin = hparams["eet_margin"]
    if 0.0 not in degrees:
        raise ValueError(f"noise_degrees={degrees} needs 0 (the clean WER the EET compares to).")
    brain = NoiseInjectionBrain(modules={"llm": hparams["llm"]}, hparams=hparams, run_opts=run_opts)
    brain.label = llm_label(hparams["llm_source"], hparams["llm_label"])
    results, summary = [], {}
    for split, data in test_sets.items():
        wers = {}
        for degree in degrees:
            brain.degree, brain.test_name = degree, split
            result = _finished_result(brain, hparams, split, data.data_ids)
            if result is None:
                brain.evaluate(data, test_loader_kwargs=hparams["test_dataloader_opts"])
                result = brain.last_result
            if "wer" not in result["metrics"]:
                raise ValueError(f"{split}: no WER could be computed (every transcript empty?).")
            wers[degree] = result["metrics"]["wer"]
            results.append(result)
        eet = embedding_error_threshold(wers, margin)
        eet["wer"] = {degree_label(d): w for d, w in wers.items()}
        summary[split] = eet
        logger.info(
            "%s %s (%s): WER %s; EET %s (margin %.2f WER points)",
            brain.label,
            split,
            mode_label(hparams["noise_mode"]),
            ", ".join(f"{k} {v:.1f}" for k, v in eet["wer"].items()),
            eet_label(eet),
            eet["margin"],
        )
    if sb.utils.distributed.if_main_process():
        write_json(
            os.path.join(hparams["output_folder"], "eet.json"),
            {
                "llm": str(hparams["llm_source"]),
                "llm_label": brain.label,
                "noise_mode": hparams["noise_mode"],
                "splits": summary,
            },
        )
    return results, summary
