"""Scoring the decoded outputs of one test set for its task (``score_outputs``): ASR
(WER/CER), ST (BLEU, COMET, output-language ID) and SQA (LLM-as-judge), plus the decoding
failure-mode statistics (stuck / verbose, App. B.2).

Authors
-------
speechmapper developers, 2026
"""

import logging
import math

from speechmapper_plugin.data.manifests import ANSWER_SEPARATOR
from speechmapper_plugin.evaluation.decoding import decoding_stats
from speechmapper_plugin.evaluation.metrics import (
    bleu,
    error_rates,
    is_private_use_language,
    language_id,
)

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


def judge_metric(judge):
    """The result-file metric of one judge's accuracy (Table 2's spread is over these).

    Example
    -------
    >>> judge_metric("google/gemma-3-12b-it")
    'judge_accuracy[google/gemma-3-12b-it]'
    """
    return f"judge_accuracy[{judge}]"


def score_outputs(
    task,
    outputs,
    comet=None,
    judges=None,
    guarded=0,
    lid_seed=0,
    judge_protocol="bergen",
    wer_normalizer="mms",
):
    """All the metrics of one (system, test set, task) from its decoded outputs.

    Arguments
    ---------
    task : str
        ``"asr"``, ``"st"`` or ``"sqa"``.
    outputs : list of dict
        One per utterance: ``id``, ``hypothesis``, ``reference`` (SQA: answers joined with
        ``manifests.ANSWER_SEPARATOR``), ``source`` (reference transcription), ``tgt_lang``,
        ``question``, ``context``, ``stuck`` (bool).
    comet : comet.CometScorer, optional
        Scores ST outputs when given.
    judges : list of str, optional
        Judge LLMs (hub ids or folders) for SQA (``judge.judge_answers``).
    judge_protocol : str
        ``bergen`` (BERGEN's next-token yes/no judge, the papers'), ``bergen-text`` or
        ``freeform`` (``judge.PROTOCOLS``). SQA metrics: ``judge_accuracy`` (mean over
        judges), ``judge_std`` (population std over judges: Table 2's "±"),
        ``judge_invalid`` and one ``judge_accuracy[<judge>]`` per judge.
    wer_normalizer : str
        ``mms`` (default) or ``whisper`` (``metrics.wer_normalizer``), for ASR.
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
        rates = error_rates(hyps, refs, normalizer=wer_normalizer)
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
        from speechmapper_plugin.evaluation.judge import judge_answers

        verdicts = judge_answers(
            [o.get("context", "") for o in outputs],
            [o.get("question", "") for o in outputs],
            [r.split(ANSWER_SEPARATOR) for r in refs],
            hyps,
            judges=list(judges),
            protocol=judge_protocol,
        )
        metrics["judge_accuracy"] = verdicts["accuracy"]
        metrics["judge_std"] = verdicts["std"]
        metrics["judge_invalid"] = verdicts["invalid"]
        for judge, result in verdicts["per_judge"].items():
            metrics[judge_metric(judge)] = result["accuracy"]
        rule = {
            "bergen": "BERGEN yes/no judge, next-token p(Yes) (default_qa prompt)",
            "bergen-text": "BERGEN yes/no judge, text mode (default_qa prompt)",
            "freeform": "freeform yes/no judge (speechmapper prompt with context)",
        }[judge_protocol]
        signatures["judge"] = (
            f"{rule}|mean over {len(judges)} judge(s), std over judges (ddof=0)|judges: "
            + ", ".join(str(j) for j in judges)
        )
    if task != "asr":  # output-language ID (Table 9): ST target / SQA question language
        target = _single_language(outputs, task)
        if is_private_use_language(target):  # e.g. the invented Minish (qaa): no LID model
            logger.info("Output-language ID left out: %r is a private-use code.", target)
            signatures["lid"] = f"not computed: {target} is a private-use language code"
        else:
            lid = language_id(hyps, target, seed=lid_seed)
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
