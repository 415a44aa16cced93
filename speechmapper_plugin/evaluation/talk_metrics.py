"""Talk-level metrics of the IWSLT 2025 official scoring: WER over the concatenated talk with
OpenAI Whisper's English normalizer (``talk_wer``; the organizers' whisper_normalizer 0.0.10
rules, ``evaluation.normalizers``), and COMET after re-segmenting the talk's output onto the
reference sentences with mweralign, case-sensitively as the organizers' ``mwerSegmenter
-usecase 1`` (``resegment``, ``st_comet``); a talk without output is aligned as ".", as the
organizers do.

Authors
-------
speechmapper developers, 2026
"""

import logging
import os
import sys
import tempfile
from contextlib import contextmanager

from speechmapper_plugin.evaluation.comet import (
    DEFAULT_COMET_MODEL,
    comet_score,
)
from speechmapper_plugin.evaluation.metrics import _language_code, _version

logger = logging.getLogger(__name__)


#: Target languages re-segmented at character level (as the organizers do).
CHAR_LEVEL_LANGS = ("zh",)


def text_normalizer(lang):
    """Whisper's text normalizer of the organizers' WER: English or basic (other languages).

    Arguments
    ---------
    lang : str
        Language code of the transcripts.

    Returns
    -------
    callable
        ``str -> str``.

    Example
    -------
    >>> text_normalizer("en")("Mr. Smith paid $25, didn't he?")
    'mister smith paid $25 did not he'
    >>> text_normalizer("en")("I kinda dunno, 'cause")  # as 0.0.10: no colloquial rewrites
    'i kinda dunno cause'
    >>> text_normalizer("de")("Größe, Herr Müller!").split()
    ['größe', 'herr', 'müller']
    """
    from speechmapper_plugin.evaluation.normalizers import (
        whisper_basic_normalizer,
        whisper_english_normalizer,
    )

    if _language_code(lang, "text_normalizer") == "en":
        return whisper_english_normalizer()
    return whisper_basic_normalizer()


def talk_wer(hypotheses, references, lang="en"):
    """Talk-level WER in percent: normalized segment hypotheses joined per talk.

    Arguments
    ---------
    hypotheses : list of list of str
        Per talk, its segment hypotheses in order.
    references : list of str
        Per talk, its reference transcript (the talk's sentences joined).
    lang : str
        Language of the speech (English normalizer for "en", basic otherwise).

    Returns
    -------
    dict
        ``official_wer`` (percent), ``num_talks``, ``num_reference_words`` (after
        normalization) and ``signature`` (e.g. "whisper-normalizer:0.1.15(openai-rules=0.0.10)
        |english|talk-level|jiwer:4.0.0").

    Example
    -------
    >>> out = talk_wer([["Hello Mr. Smith.", "It costs ten dollars"]],
    ...                ["hello mister smith it costs $10"])
    >>> out["official_wer"], out["num_talks"]
    (0.0, 1)
    """
    import jiwer

    from speechmapper_plugin.evaluation.normalizers import whisper_signature

    if isinstance(references, str) or len(hypotheses) != len(references):
        raise ValueError(
            f"talk_wer: give one list of segment hypotheses and one reference per talk; got "
            f"{len(hypotheses)} hypothesis lists and "
            f"{'a single string' if isinstance(references, str) else len(references)} references."
        )
    if not references:
        raise ValueError("talk_wer: no talk to score (the lists are empty).")
    normalize = text_normalizer(lang)
    hyps, refs = [], []
    for index, (segments, reference) in enumerate(zip(hypotheses, references)):
        if isinstance(segments, str):
            raise TypeError(
                f"talk_wer: talk {index}: the hypotheses must be a list of segment strings."
            )
        ref = normalize(reference or "")
        if not ref.split():
            raise ValueError(
                f"talk_wer: talk {index} has an empty reference after normalization; WER is "
                "undefined for it (check the manifest's transcripts)."
            )
        refs.append(" ".join(ref.split()))
        hyps.append(" ".join(" ".join(normalize(s or "") for s in segments).split()))
    words = jiwer.process_words(refs, hyps)
    kind = "english" if _language_code(lang, "talk_wer") == "en" else "basic"
    return {
        "official_wer": 100.0 * words.wer,
        "num_talks": len(refs),
        "num_reference_words": sum(len(r.split()) for r in refs),
        "signature": f"{whisper_signature(kind)}|talk-level|jiwer:{_version('jiwer')}",
    }


def _import_mweralign():
    from speechmapper_plugin.utils.imports import import_keeping_logging

    return import_keeping_logging("mweralign")


@contextmanager
def _stderr_to_debug_log():
    """The C++ aligner's progress lines (written to file descriptor 2) go to the debug log."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace").strip()
            if text:
                logger.debug("mweralign: %s", text)


#: What the organizers align for a talk without output (MCIF ``evaluation.py``, 2025-07).
EMPTY_TALK = "."


def _as_token_ids(references, hypothesis):
    """Every distinct (case-sensitive) token as an opaque lower-case id, so that mweralign,
    which compares tokens case-insensitively, aligns them as ``mwerSegmenter -usecase 1``."""
    vocab = {}

    def encode(text):
        return " ".join(vocab.setdefault(token, f"w{len(vocab)}") for token in text.split())

    encoded = [encode(reference) for reference in references], encode(hypothesis)
    return encoded, {identifier: token for token, identifier in vocab.items()}


def resegment(hypothesis_text, reference_sentences, char_level=False):
    """Splits a talk's hypothesis into one segment per reference sentence (minimum-WER
    alignment with ``mweralign``, case-sensitive as the organizers' ``-usecase 1``).

    A talk without output (a blank hypothesis) is aligned as :data:`EMPTY_TALK`, as the
    organizers do: "." lands in one segment, the others are empty.

    Arguments
    ---------
    hypothesis_text : str
        The talk's hypotheses, concatenated (newlines are plain word separators).
    reference_sentences : list of str
        The talk's reference sentences, in order.
    char_level : bool
        Align characters instead of words (languages written without spaces, e.g. Chinese):
        whitespace is dropped, the characters aligned one by one and joined back without
        spaces.

    Returns
    -------
    list of str
        Exactly ``len(reference_sentences)`` segments (possibly empty), stripped.

    Example
    -------
    >>> resegment("hello world how are you fine thanks", ["hello world.", "how are you?",
    ...           "fine, thanks."])
    ['hello world', 'how are you', 'fine thanks']
    >>> resegment("你好世界我很好", ["你好，世界。", "我很好。"], char_level=True)
    ['你好世界', '我很好']
    >>> resegment("", ["Hello world.", "How are you?"])
    ['.', '']
    """
    if isinstance(reference_sentences, str):
        raise TypeError("resegment: reference_sentences must be a list of sentences.")
    if not reference_sentences:
        raise ValueError("resegment: no reference sentence to align the hypothesis to.")
    mweralign = _import_mweralign()
    hypothesis_text = hypothesis_text or ""
    if not hypothesis_text.strip():
        hypothesis_text = EMPTY_TALK
    references = [" ".join((sentence or "").split()) for sentence in reference_sentences]
    if char_level:
        hypothesis = " ".join(c for c in hypothesis_text if not c.isspace())
        references = [" ".join(c for c in ref if not c.isspace()) for ref in references]
    else:
        hypothesis = " ".join(hypothesis_text.split())
    (references, hypothesis), tokens = _as_token_ids(references, hypothesis)
    with _stderr_to_debug_log():
        aligned = mweralign.align_texts("\n".join(references), hypothesis)
    segments = [[tokens[i] for i in segment.split()] for segment in aligned.split("\n")]
    if len(segments) != len(references):
        raise RuntimeError(
            f"resegment: mweralign returned {len(segments)} segments for {len(references)} "
            "reference sentences; the alignment cannot be scored."
        )
    if char_level:
        return ["".join(segment) for segment in segments]
    return [" ".join(segment) for segment in segments]


def st_comet(
    talks, target_lang, model=DEFAULT_COMET_MODEL, batch_size=16, gpus=None, cache_dir=None
):
    """COMET (x100) of a test set's talks after re-segmenting each talk's hypotheses onto its
    reference sentences.

    Arguments
    ---------
    talks : list of dict
        Per talk: ``hypotheses`` (its segment hypotheses, in order), ``references`` (its
        reference sentences) and ``sources`` (the English transcript sentences, as many as
        references).
    target_lang : str
        Language of the translations (character-level alignment for ``CHAR_LEVEL_LANGS``).
    model : str
        COMET hub id or local checkpoint (``comet.CometScorer``).
    batch_size : int
        COMET batch size.
    gpus : int, optional
        0 or 1; default: 1 if CUDA is available.
    cache_dir : str, optional
        Hugging Face cache folder for the COMET model.

    Returns
    -------
    dict
        ``official_comet`` (mean segment score x100), ``num_talks``, ``num_segments``,
        ``resegmented`` (per talk, the re-segmented hypotheses) and ``signature`` (e.g.
        "mweralign:1.4.1|word-level|Unbabel/wmt22-comet-da|unbabel-comet:2.2.7|x100").

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny.comet import build_tiny_comet
    >>> folder = tempfile.mkdtemp()
    >>> _ = build_tiny_comet(folder, ["the cat sat", "die Katze sitzt", "ja"])
    >>> out = st_comet([{"hypotheses": ["die Katze", "sitzt ja"],
    ...                  "references": ["die Katze sitzt", "ja"],
    ...                  "sources": ["the cat sat", "yes"]}], "de", model=folder, gpus=0)
    >>> out["num_segments"], out["resegmented"]
    (2, [['die Katze sitzt', 'ja']])
    """
    if not talks:
        raise ValueError("st_comet: no talk to score (the list is empty).")
    char_level = _language_code(target_lang, "st_comet") in CHAR_LEVEL_LANGS
    sources, hypotheses, references, resegmented = [], [], [], []
    for index, talk in enumerate(talks):
        refs, srcs = list(talk["references"]), list(talk["sources"])
        if len(refs) != len(srcs):
            raise ValueError(
                f"st_comet: talk {index} has {len(refs)} reference sentences but {len(srcs)} "
                "source sentences; they must be parallel."
            )
        segments = resegment(" ".join(talk["hypotheses"]), refs, char_level=char_level)
        resegmented.append(segments)
        sources += [s.strip() for s in srcs]
        hypotheses += segments
        references += [r.strip() for r in refs]
    scored = comet_score(
        sources,
        hypotheses,
        references,
        model=model,
        batch_size=batch_size,
        gpus=gpus,
        cache_dir=cache_dir,
    )
    level = "char-level" if char_level else "word-level"
    return {
        "official_comet": scored["comet"],
        "num_talks": len(talks),
        "num_segments": len(references),
        "resegmented": resegmented,
        "signature": f"mweralign:{_version('mweralign')}|{level}|{scored['signature']}",
    }
