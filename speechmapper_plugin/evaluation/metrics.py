"""Evaluation metrics: WER/CER (ASR), BLEU and COMET (ST), output-language identification.

Each metric is a thin wrapper over the library the field uses, so that the numbers are
comparable with the paper's (Sec. 3 "Inference and evaluation", App. B):

- **WER/CER** (:func:`error_rates`): ``jiwer`` on MMS-normalized text (or, with
  ``normalizer="whisper"`` / ``--wer_normalizer=whisper``, on text normalized by OpenAI
  Whisper's English normalizer, as the ASR leaderboards score; recorded in the signature). The LLM's outputs carry
  casing, punctuation and sometimes newlines ("Here is the sentence:\\n..."), while the
  paper's references are MMS-normalized transcripts (lower case, no punctuation, digit-only
  words dropped). Scoring raw outputs would count every capital letter and comma as an
  error, so the *same* normalizer, :func:`speechmapper_plugin.utils.text.normalize_text` (the one
  applied to the training targets), is applied to both hypotheses and references; newlines
  become plain word separators. An empty hypothesis counts every reference word as deleted;
  an empty reference (after normalization) is skipped, counted and logged, since WER is
  undefined for it.
- **BLEU** (:func:`bleu`): ``sacrebleu`` corpus BLEU on the raw (detokenized) outputs, with
  the ``13a`` tokenizer, or ``zh`` for Chinese targets; the signature string is returned so
  that a score can be reproduced (the paper quotes
  ``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp``).
- **COMET** (``comet.CometScorer``, ``comet.comet_score``): ``Unbabel/wmt22-comet-da`` through
  ``unbabel-comet``; as in the paper the source is the reference *transcription* and scores
  are multiplied by 100. The model is a hub id or a local checkpoint (config key
  ``comet_model``); a model missing offline raises :class:`CometModelUnavailableError`,
  which says what to download.
- **Output-language ID** (:func:`language_id`): ``langdetect`` with a fixed seed, the
  percentage of outputs in the target language and in English (paper Table 9).

Authors
-------
speechmapper developers, 2026
"""

import logging
from collections import Counter

import jiwer

from speechmapper_plugin.utils.text import normalize_text

logger = logging.getLogger(__name__)


_UNKNOWN_LANGUAGE = "unknown"


def _as_texts(values, name, caller):
    """A list of str (``None`` becomes the empty string); a bare string is refused."""
    if isinstance(values, str):
        raise TypeError(f"{caller}: {name} must be a list of strings, got a single string.")
    return ["" if value is None else str(value) for value in values]


def _version(distribution):
    """The installed version of a package (for the metric signatures)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def _check_lengths(caller, **lists):
    """All lists have the same length, else a ValueError naming the counts."""
    lengths = {name: len(values) for name, values in lists.items()}
    if len(set(lengths.values())) > 1:
        counts = " but ".join(f"{length} {name}" for name, length in lengths.items())
        raise ValueError(f"{caller}: {counts}; give one entry per utterance in each list.")
    return next(iter(lengths.values()))


#: The text normalizers of :func:`error_rates` (``--wer_normalizer``).
WER_NORMALIZERS = ("mms", "whisper", "none")


def wer_normalizer(name):
    """``(normalize, signature)`` of a WER normalizer name (:data:`WER_NORMALIZERS`).

    - ``mms`` (default): :func:`speechmapper_plugin.utils.text.normalize_text`, the
      normalizer of the training targets (paper Sec. 3);
    - ``whisper``: OpenAI Whisper's English normalizer (``evaluation.normalizers``), the
      one of the ASR leaderboards and of the IWSLT 2025 official scoring;
    - ``none``: texts compared as they are.

    Example
    -------
    >>> normalize, signature = wer_normalizer("whisper")
    >>> normalize("Mr. Smith's colour"), signature.split("|")[0]
    ('mister smith is color', 'norm:whisper-en')
    """
    if name == "mms":
        return normalize_text, "norm:mms"
    if name == "whisper":
        from speechmapper_plugin.evaluation.normalizers import (
            whisper_english_normalizer,
            whisper_signature,
        )

        return whisper_english_normalizer(), f"norm:whisper-en|{whisper_signature()}"
    if name in ("none", None):
        return None, "norm:none"
    raise ValueError(f"Unknown WER normalizer {name!r}; choose one of {WER_NORMALIZERS}.")


def error_rates(hypotheses, references, normalize=True, normalizer="mms"):
    """Corpus-level WER and CER in percent.

    Arguments
    ---------
    hypotheses : list of str
        System outputs.
    references : list of str
        Reference transcripts (same order).
    normalize : bool
        Normalize both sides first (False: compare the raw texts).
    normalizer : str
        Which normalizer (:func:`wer_normalizer`): ``mms`` (default) or ``whisper``.

    Returns
    -------
    dict
        ``wer``, ``cer`` (percent), ``num_utterances`` scored, ``skipped_empty_reference``
        and ``signature`` (e.g. "jiwer:4.0.0|norm:mms"). Both rates are NaN when no
        utterance has a non-empty reference.

    Example
    -------
    >>> out = error_rates(["The cat sat.", ""], ["the cat sat on", "a dog"])
    >>> round(out["wer"], 1), out["num_utterances"]
    (50.0, 2)
    >>> error_rates(["Ten dollars"], ["$10"], normalizer="whisper")["wer"]
    0.0
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"error_rates: {len(hypotheses)} hypotheses but {len(references)} references."
        )
    norm, norm_signature = wer_normalizer(normalizer if normalize else "none")
    hyps, refs, skipped = [], [], 0
    for hyp, ref in zip(hypotheses, references):
        hyp = "" if hyp is None else hyp
        ref = "" if ref is None else ref
        if norm is not None:
            hyp, ref = " ".join(norm(hyp).split()), " ".join(norm(ref).split())
        if not ref.strip():
            skipped += 1
            continue
        hyps.append(hyp)
        refs.append(ref)
    if skipped:
        logger.warning("error_rates: skipped %d utterance(s) with an empty reference.", skipped)
    signature = f"jiwer:{_version('jiwer')}|{norm_signature}"
    if not refs:
        return {
            "wer": float("nan"),
            "cer": float("nan"),
            "num_utterances": 0,
            "skipped_empty_reference": skipped,
            "signature": signature,
        }
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    return {
        "wer": 100.0 * words.wer,
        "cer": 100.0 * chars.cer,
        "num_utterances": len(refs),
        "skipped_empty_reference": skipped,
        "signature": signature,
    }


def _language_code(lang, caller):
    """Lower-case ISO code with the region dropped: "zh-CN", "zh_tw" -> "zh"."""
    if not isinstance(lang, str) or not lang.strip():
        raise ValueError(
            f"{caller}: target_lang must be a language code such as 'de', got {lang!r}."
        )
    return lang.strip().lower().replace("_", "-").split("-")[0]


def is_private_use_language(lang):
    """Whether ``lang`` is an ISO 639-2 code reserved for local use (``qaa`` to ``qtz``), e.g.
    an invented language such as the mini-corpus' Minish (``tiny.minish``, ``qaa``): BLEU
    scores it with the default tokenizer, and it has no language-identification model.

    Example
    -------
    >>> is_private_use_language("qaa"), is_private_use_language("qtz-x"), is_private_use_language("de")
    (True, True, False)
    """
    code = _language_code(lang, "is_private_use_language")
    return len(code) == 3 and "qaa" <= code <= "qtz"


def bleu(hypotheses, references, target_lang):
    """Corpus BLEU with sacrebleu (one reference per utterance).

    The tokenizer is ``13a`` (sacrebleu's default, WMT's mteval-v13a), or ``zh`` (one token
    per Chinese character) when ``target_lang`` is Chinese. Texts are scored as given:
    sacrebleu expects detokenized, cased text, which is what the LLM produces.

    Arguments
    ---------
    hypotheses : list of str
        System outputs; an empty hypothesis adds no n-gram and lowers the brevity penalty.
    references : list of str
        Reference translations (same order).
    target_lang : str
        Target-language code ("de", "zh", "zh-CN", ...), which picks the tokenizer.

    Returns
    -------
    dict
        ``bleu`` (score, 0-100), ``signature`` (sacrebleu's, e.g.
        "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"), ``num_utterances``,
        ``precisions`` (1- to 4-gram, percent), ``brevity_penalty``, ``hyp_len``, ``ref_len``
        (in tokens) and ``tokenize``.

    Example
    -------
    >>> out = bleu(["the cat sat on the mat"], ["the cat sat on the mat"], "en")
    >>> round(out["bleu"], 2), out["signature"].split("|version")[0]
    (100.0, 'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp')
    """
    from sacrebleu.metrics import BLEU

    hyps = _as_texts(hypotheses, "hypotheses", "bleu")
    refs = _as_texts(references, "references", "bleu")
    num = _check_lengths("bleu", hypotheses=hyps, references=refs)
    if num == 0:
        raise ValueError(
            "bleu: no utterance to score (the hypothesis and reference lists are empty)."
        )
    tokenize = "zh" if _language_code(target_lang, "bleu") == "zh" else "13a"
    empty_refs = sum(1 for ref in refs if not ref.strip())
    if empty_refs:
        logger.warning(
            "bleu: %d utterance(s) have an empty reference; their hypothesis n-grams all "
            "count as unmatched.",
            empty_refs,
        )
    metric = BLEU(tokenize=tokenize)
    score = metric.corpus_score(hyps, [refs])
    return {
        "bleu": float(score.score),
        "signature": str(metric.get_signature()),
        "num_utterances": num,
        "precisions": [float(p) for p in score.precisions],
        "brevity_penalty": float(score.bp),
        "hyp_len": int(score.sys_len),
        "ref_len": int(score.ref_len),
        "tokenize": tokenize,
    }


def language_id(texts, target_lang, seed=0):
    """Output-language identification with langdetect (paper Table 9).

    ``langdetect`` is made deterministic by ``DetectorFactory.seed`` (restored afterwards).
    Its "zh-cn" / "zh-tw" are reported as "zh". A text without any letter (empty, digits
    or punctuation only), on which langdetect raises ``LangDetectException``, is counted as
    "unknown".

    Arguments
    ---------
    texts : list of str
        The system outputs.
    target_lang : str
        The expected output language ("de", "zh", ...; one of langdetect's languages).
    seed : int
        langdetect's seed.

    Returns
    -------
    dict
        ``target_pct`` and ``en_pct`` (percent of *all* texts, undetected ones included),
        ``counts`` (detected language -> number of texts, "unknown" included),
        ``undetected`` (number of "unknown"), ``num_utterances``, ``target_lang`` and
        ``signature`` (e.g. "langdetect:1.0.9|seed:0").

    Example
    -------
    >>> out = language_id(["Das Wetter ist heute sehr schön.", "The weather is nice.", ""], "de")
    >>> round(out["target_pct"], 1), round(out["en_pct"], 1), out["undetected"]
    (33.3, 33.3, 1)
    """
    from langdetect import DetectorFactory, detect, detector_factory
    from langdetect.lang_detect_exception import LangDetectException

    texts = _as_texts(texts, "texts", "language_id")
    if not texts:
        raise ValueError("language_id: no text to identify (the list is empty).")
    target = _language_code(target_lang, "language_id")
    detector_factory.init_factory()
    known = sorted(
        {_language_code(lang, "language_id") for lang in detector_factory._factory.get_lang_list()}
    )
    if target not in known:
        raise ValueError(
            f"language_id: target_lang {target_lang!r} is not a langdetect language; "
            f"use one of {', '.join(known)}."
        )
    previous_seed = DetectorFactory.seed
    DetectorFactory.seed = seed
    counts = Counter()
    try:
        for text in texts:
            try:
                lang = _language_code(detect(text), "language_id")
            except LangDetectException:
                lang = _UNKNOWN_LANGUAGE
            counts[lang] += 1
    finally:
        DetectorFactory.seed = previous_seed
    num = len(texts)
    return {
        "target_pct": 100.0 * counts[target] / num,
        "en_pct": 100.0 * counts["en"] / num,
        "counts": dict(sorted(counts.items())),
        "undetected": counts[_UNKNOWN_LANGUAGE],
        "num_utterances": num,
        "target_lang": target,
        "signature": f"langdetect:{_version('langdetect')}|seed:{seed}",
    }
