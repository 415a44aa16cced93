"""ASR metrics: WER and CER with jiwer, on MMS-normalized text (``text.normalize_text``).

LLM outputs carry casing and punctuation that the (normalized) references do not, so both
sides go through the same normalizer before scoring; an empty hypothesis counts every
reference word as deleted, an empty reference is skipped and counted (WER is undefined).

Authors
-------
speechmapper developers, 2026
"""

import logging

import jiwer

from .text import normalize_text

__all__ = ["error_rates"]

logger = logging.getLogger(__name__)


def error_rates(hypotheses, references, normalize=True):
    """Corpus-level WER and CER in percent.

    Arguments
    ---------
    hypotheses : list of str
        System outputs.
    references : list of str
        Reference transcripts (same order).
    normalize : bool
        Apply ``normalize_text`` to both sides first.

    Returns
    -------
    dict
        ``wer``, ``cer`` (percent), ``num_utterances`` scored and ``skipped_empty_reference``.

    Example
    -------
    >>> out = error_rates(["The cat sat.", ""], ["the cat sat on", "a dog"])
    >>> round(out["wer"], 1), out["num_utterances"]
    (50.0, 2)
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"error_rates: {len(hypotheses)} hypotheses but {len(references)} references."
        )
    hyps, refs, skipped = [], [], 0
    for hyp, ref in zip(hypotheses, references):
        if normalize:
            hyp, ref = normalize_text(hyp), normalize_text(ref)
        if not ref.strip():
            skipped += 1
            continue
        hyps.append(hyp)
        refs.append(ref)
    if skipped:
        logger.warning("error_rates: skipped %d utterance(s) with an empty reference.", skipped)
    if not refs:
        return {
            "wer": float("nan"),
            "cer": float("nan"),
            "num_utterances": 0,
            "skipped_empty_reference": skipped,
        }
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    return {
        "wer": 100.0 * words.wer,
        "cer": 100.0 * chars.cer,
        "num_utterances": len(refs),
        "skipped_empty_reference": skipped,
    }
