"""Scoring of decoded outputs per task, as the paper reports them (Sec. 3, App. B):

- ASR: WER/CER (jiwer, MMS-style normalization of both sides);
- ST: BLEU (sacrebleu, 13a or zh), COMET (wmt22-comet-da, source = reference transcription,
  x100) and output-language ID (langdetect: % target language, % English, Table 9);
- SQA: LLM-as-judge accuracy averaged over the configured judges (and language ID of the
  answers against the question's language);
- every task: stuck-decoding, verbosity and guard counts (``decoding``).

COMET and the judges are optional (``None`` / empty: not computed, and the result says so);
they are loaded only when scoring, after decoding.

Authors
-------
speechmapper developers, 2026
"""

import logging
import math

from .data import ANSWER_SEPARATOR
from .decoding import decoding_stats
from .metrics import bleu, error_rates, language_id

__all__ = ["TASKS", "SYSTEM_MODULES", "score_outputs", "build_eval_modules", "evaluate_test_sets"]

logger = logging.getLogger(__name__)

TASKS = ("asr", "st", "sqa")


def _single_language(outputs, task):
    langs = sorted({o.get("tgt_lang") or "en" for o in outputs})
    if len(langs) > 1:
        raise ValueError(
            f"One {task} result covers one target language; the outputs mix {langs}: evaluate "
            "each language pair separately."
        )
    return langs[0] if langs else "en"


def score_outputs(task, outputs, comet=None, judges=None, guarded=0, lid_seed=0):
    """All the metrics of one (system, test set, task) from its decoded outputs.

    Arguments
    ---------
    task : str
        ``"asr"``, ``"st"`` or ``"sqa"``.
    outputs : list of dict
        One per utterance: ``id``, ``hypothesis``, ``reference`` (SQA: answers joined with
        ``data.ANSWER_SEPARATOR``), ``source`` (reference transcription), ``tgt_lang``,
        ``question``, ``context``, ``stuck`` (bool).
    comet : metrics.CometScorer, optional
        Scores ST outputs when given.
    judges : list of str, optional
        Judge LLMs (hub ids or folders) for SQA (``judge.judge_answers``).
    guarded : int
        Generations stopped by the repetition guard.
    lid_seed : int
        langdetect seed.

    Returns
    -------
    metrics : dict
        Metric name -> value.
    signatures : dict
        Metric name -> how it was computed (library, version, settings).

    Example
    -------
    >>> outs = [{"id": "a", "hypothesis": "The cat.", "reference": "the cat", "stuck": False}]
    >>> metrics, signatures = score_outputs("asr", outs)
    >>> metrics["wer"], metrics["stuck_pct"]
    (0.0, 0.0)
    """
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; expected one of {TASKS}.")
    if not outputs:
        raise ValueError(f"No {task} outputs to score (empty test set?).")
    hyps = [o["hypothesis"] for o in outputs]
    refs = [o["reference"] for o in outputs]
    metrics, signatures = {}, {}
    if task == "asr":
        rates = error_rates(hyps, refs)
        metrics.update(wer=rates["wer"], cer=rates["cer"])
        signatures["wer"] = signatures["cer"] = rates["signature"]
    elif task == "st":
        lang = _single_language(outputs, task)
        scored = bleu(hyps, refs, lang)
        metrics["bleu"] = scored["bleu"]
        signatures["bleu"] = scored["signature"]
        if comet is not None:
            sources = [o.get("source", "") for o in outputs]
            scored = comet.score(sources, hyps, refs)
            metrics["comet"] = scored["comet"]
            signatures["comet"] = scored["signature"]
            for out, value in zip(outputs, scored["segments"]):
                out["comet"] = value
    elif judges:  # sqa
        from .judge import judge_answers

        verdicts = judge_answers(
            [o.get("context", "") for o in outputs],
            [o.get("question", "") for o in outputs],
            [r.split(ANSWER_SEPARATOR) for r in refs],
            hyps,
            judges=list(judges),
        )
        metrics["judge_accuracy"] = verdicts["accuracy"]
        metrics["judge_std"] = verdicts["std"]
        metrics["judge_invalid"] = verdicts["invalid"]
        signatures["judge_accuracy"] = "BERGEN-style yes/no, judges: " + ", ".join(judges)
    if task != "asr":  # output-language ID (Table 9): ST target / SQA question language
        lid = language_id(hyps, _single_language(outputs, task), seed=lid_seed)
        metrics.update(lid_target_pct=lid["target_pct"], lid_en_pct=lid["en_pct"])
        signatures["lid"] = lid["signature"]
    stats = decoding_stats(hyps, refs, [bool(o.get("stuck")) for o in outputs], guarded=guarded)
    metrics.update(stats)
    for name in [k for k, v in metrics.items() if not math.isfinite(v)]:
        # e.g. WER over references that are all empty, a judge with no valid verdict
        logger.warning("%s is undefined on these %d outputs: left out.", name, len(outputs))
        signatures[name] = (
            signatures.get(name, "") + " | undefined on this test set (left out)"
        ).lstrip(" |")
        del metrics[name]
    return metrics, signatures


#: Modules each system of ``brains.EvalBrain`` needs.
SYSTEM_MODULES = {
    "speechmapper": ("projector", "llm"),
    "nearest": ("projector", "embeddings"),
    "transcript": ("llm",),
    "asr": ("transcriber",),
    "asr+llm": ("transcriber", "llm"),
}


def build_eval_modules(hparams):
    """Instantiate only the modules the configured system needs.

    The YAML holds factories (``!name:``) for ``projector``, ``llm``, ``embeddings`` and
    ``transcriber``, so that e.g. a cascade never loads a projector and the nearest-embedding
    diagnostic never loads the LLM weights. The projector gets ``projector_checkpoint``, the
    LLM the optional ``lora_adapter`` (checked against its base model).

    Arguments
    ---------
    hparams : dict
        The loaded evaluation hparams.

    Returns
    -------
    dict
        Module name -> module.
    """
    from .projector import check_llm_width, load_projector_checkpoint

    system = hparams["system"]
    if system not in SYSTEM_MODULES:
        raise ValueError(
            f"system={system!r} is not supported; choose one of {sorted(SYSTEM_MODULES)}."
        )
    adapter = hparams.get("lora_adapter")  # e.g. the IWSLT25 system's fused adapter
    if adapter and "llm" not in SYSTEM_MODULES[system]:
        raise ValueError(
            f"lora_adapter={adapter!r} adapts the LLM, but system={system!r} uses no LLM."
        )
    modules = {name: hparams[name]() for name in SYSTEM_MODULES[system]}
    if adapter:
        from .lora import load_lora

        load_lora(modules["llm"], adapter, trainable=False)
    if "projector" in modules:
        if not hparams.get("projector_checkpoint"):
            raise ValueError(
                f"system={system!r} needs --projector_checkpoint (a stage-1/2 `save` folder, "
                "CKPT+... folder or projector.ckpt)."
            )
        load_projector_checkpoint(modules["projector"], hparams["projector_checkpoint"])
        table = modules.get("llm") or modules.get("embeddings")
        check_llm_width(modules["projector"], table.embed_dim, hparams["llm_source"])
    return modules


def evaluate_test_sets(hparams, run_opts, test_sets, modules=None):
    """Decode and score each test set with ``brains.EvalBrain``; returns the results.

    Arguments
    ---------
    hparams : dict
        The loaded evaluation hparams.
    run_opts : dict
        SpeechBrain run options (device, precision...).
    test_sets : dict
        Split name -> dataset (``data.load_eval_dataset``).
    modules : dict, optional
        Modules already in memory (e.g. the projector a stage-2 recipe just trained and its
        LLM); default: built from the hparams factories (``build_eval_modules``).

    Returns
    -------
    dict
        Split name -> result dict (also written under ``<output_folder>/results``).
    """
    from .brains import EvalBrain

    if modules is None:
        modules = build_eval_modules(hparams)
    brain = EvalBrain(modules=modules, hparams=hparams, run_opts=run_opts)
    results = {}
    for name, data in test_sets.items():
        brain.test_name = name
        brain.evaluate(data, test_loader_kwargs=hparams["test_dataloader_opts"])
        results[name] = brain.last_result
    return results
