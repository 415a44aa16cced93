"""The IWSLT 2025 instruction-following (short track) official scoring, next to the team's own
metrics: talk-level WER, COMET after re-segmentation, BERTScore for SQA.

The organizers score ACL 60/60 and the SQA test sets as follows (their
``instruction_following/evaluation.py`` in ``hlt-mt/mcif``); this module reproduces that
protocol with the project's readers and scorers:

- **ASR** (:func:`talk_wer`): each segment hypothesis is normalized with Whisper's
  ``EnglishTextNormalizer`` (``BasicTextNormalizer`` for other languages), the normalized
  segments of a talk are joined with spaces and compared with the normalized talk-level
  reference; ``jiwer`` WER over the list of talks (errors of all talks / words of all talks).
- **ST** (:func:`resegment`, :func:`st_comet`): the hypotheses of a talk are concatenated and
  re-segmented onto the talk's reference sentences by minimum-WER alignment (the organizers
  ran the ``mwerSegmenter`` binary; here the ``mweralign`` package, the same algorithm as a
  library); for Chinese (``CHAR_LEVEL_LANGS``) at character level (characters space-joined
  before the alignment, spaces removed after). Each re-segmented hypothesis is scored with
  COMET ``wmt22-comet-da`` against its reference sentence, the source being the English
  transcript sentence; the system score is the mean (x100 here).
- **SQA** (:func:`bertscore_f1`): ``bert_score.score(hyps, refs, lang=...,
  rescale_with_baseline=True)``, mean F1 (x100 here), with ``bert_score``'s default model of
  the language (``roberta-large`` for English, ``bert-base-chinese`` for Chinese,
  ``bert-base-multilingual-cased`` for the others) unless another model is given.

Differences with the organizers' script, all documented where they matter: ``mweralign``
aligns case-insensitively (the organizers ran ``mwerSegmenter -usecase 1``); whitespace inside
a Chinese hypothesis is dropped before the character-level alignment (the organizers' space
removal has the same effect on the output); several SQA reference answers (joined with
``data.ANSWER_SEPARATOR``) are scored as multiple references (best F1), the organizers have
one; a segment of the test set missing from a result counts as an empty hypothesis (the
organizers' script fails on it), counted and logged.

Units follow the result schema: ``official_wer`` in percent, ``official_comet`` and
``bertscore_f1`` x100.

Command line (ASR/ST results are grouped by talk with the manifests the ACL 60/60 recipe wrote;
the metrics are added to each result file, atomically, or written to ``--output_folder``)::

    python -m speechmapper_plugin.iwslt_scoring results/eval/ --manifest_folder \\
        results/acl6060/manifests [--comet_model Unbabel/wmt22-comet-da] \\
        [--bertscore_model PATH --bertscore_num_layers N --bertscore_baseline FILE]

Authors
-------
speechmapper developers, 2026
"""

import argparse
import json
import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .data import ANSWER_SEPARATOR, manifest_path, read_manifest_rows
from .files import write_json
from .metrics import (
    DEFAULT_COMET_MODEL,
    _hf_offline,
    _language_code,
    _looks_like_path,
    _version,
    comet_score,
)
from .results import _json_files, validate_result, write_result

__all__ = [
    "CHAR_LEVEL_LANGS",
    "BertScoreModelUnavailableError",
    "bertscore_f1",
    "group_by_talk",
    "manifest_rows",
    "resegment",
    "resolve_bertscore_model",
    "score_result",
    "st_comet",
    "talk_wer",
    "text_normalizer",
    "main",
]

logger = logging.getLogger(__name__)

#: Target languages re-segmented at character level (as the organizers do).
CHAR_LEVEL_LANGS = ("zh",)
#: Metric names written into the results (see ``report``).
METRIC_OF_TASK = {"asr": "official_wer", "st": "official_comet", "sqa": "bertscore_f1"}


class BertScoreModelUnavailableError(RuntimeError):
    """The BERTScore model cannot be found offline or downloaded."""


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
    >>> text_normalizer("de")("Größe, Herr Müller!").split()
    ['größe', 'herr', 'müller']
    """
    from whisper_normalizer.basic import BasicTextNormalizer
    from whisper_normalizer.english import EnglishTextNormalizer

    if _language_code(lang, "text_normalizer") == "en":
        return EnglishTextNormalizer()
    return BasicTextNormalizer()


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
        normalization) and ``signature`` (e.g.
        "whisper-normalizer:0.1.15|english|talk-level|jiwer:4.0.0").

    Example
    -------
    >>> out = talk_wer([["Hello Mr. Smith.", "It costs ten dollars"]],
    ...                ["hello mister smith it costs $10"])
    >>> out["official_wer"], out["num_talks"]
    (0.0, 1)
    """
    import jiwer

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
        "signature": (
            f"whisper-normalizer:{_version('whisper-normalizer')}|{kind}|talk-level|"
            f"jiwer:{_version('jiwer')}"
        ),
    }


def _import_mweralign():
    from .metrics import import_keeping_logging

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


def resegment(hypothesis_text, reference_sentences, char_level=False):
    """Splits a talk's hypothesis into one segment per reference sentence (minimum-WER
    alignment with ``mweralign``).

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
    >>> resegment("hello world how are you fine thanks", ["Hello world.", "How are you?",
    ...           "Fine, thanks."])
    ['hello world', 'how are you', 'fine thanks']
    >>> resegment("你好世界我很好", ["你好，世界。", "我很好。"], char_level=True)
    ['你好世界', '我很好']
    """
    if isinstance(reference_sentences, str):
        raise TypeError("resegment: reference_sentences must be a list of sentences.")
    if not reference_sentences:
        raise ValueError("resegment: no reference sentence to align the hypothesis to.")
    mweralign = _import_mweralign()
    hypothesis_text = hypothesis_text or ""
    references = [" ".join((sentence or "").split()) for sentence in reference_sentences]
    if char_level:
        hypothesis = " ".join(c for c in hypothesis_text if not c.isspace())
        references = [" ".join(c for c in ref if not c.isspace()) for ref in references]
    else:
        hypothesis = " ".join(hypothesis_text.split())
    with _stderr_to_debug_log():
        aligned = mweralign.align_texts("\n".join(references), hypothesis)
    segments = aligned.split("\n")
    if len(segments) != len(references):
        raise RuntimeError(
            f"resegment: mweralign returned {len(segments)} segments for {len(references)} "
            "reference sentences; the alignment cannot be scored."
        )
    if char_level:
        return ["".join(segment.split()) for segment in segments]
    return [" ".join(segment.split()) for segment in segments]


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
        COMET hub id or local checkpoint (``metrics.CometScorer``).
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
    >>> from speechmapper_plugin.tiny_comet import build_tiny_comet
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


def _bertscore_message(model, reason):
    return (
        f"BERTScore model {model!r} {reason}. On a machine with internet access download it "
        f"(huggingface-cli download {model}), or point to a local copy: --bertscore_model="
        "/path/to/folder (config.json, weights, tokenizer) with --bertscore_num_layers=N (the "
        "layer bert_score uses, e.g. 17 for roberta-large, 9 for bert-base-multilingual-cased "
        "and 8 for bert-base-chinese) and --bertscore_baseline=FILE (bert_score's "
        "rescale_baseline/<lang>/<model>.tsv)."
    )


def resolve_bertscore_model(lang, model=None, num_layers=None, baseline_path=None):
    """The model, layer and baseline file ``bert_score`` scores ``lang`` with, checked to be
    there (no unscaled or downloaded fallback when something is missing).

    Arguments
    ---------
    lang : str
        Language of the answers; picks ``bert_score``'s default model when ``model`` is None.
    model : str, optional
        Hub id or local folder of the encoder.
    num_layers : int, optional
        Layer used; default: ``bert_score``'s tuned layer of a known hub model (required for
        a local folder).
    baseline_path : str, optional
        Rescaling baseline file; default: the one ``bert_score`` ships for ``lang`` and a
        hub model (required for a local folder).

    Returns
    -------
    tuple
        ``(model, num_layers, baseline_path)``.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny_bertscore import build_tiny_bertscore
    >>> tiny = build_tiny_bertscore(tempfile.mkdtemp(), ["in paris", "two cats"])
    >>> resolve_bertscore_model("en", **tiny)[1]
    2
    >>> resolve_bertscore_model("en", model=tiny["model"])
    Traceback (most recent call last):
      ...
    ValueError: BERTScore model ... is a local folder: give --bertscore_num_layers and ...
    >>> resolve_bertscore_model("en", model="/nonexistent/model")
    Traceback (most recent call last):
      ...
    speechmapper_plugin.iwslt_scoring.BertScoreModelUnavailableError: BERTScore model ...
    """
    from bert_score.utils import lang2model, model2layers

    lang = _language_code(lang, "bertscore_f1")
    model = str(model) if model else lang2model[lang]
    local = _looks_like_path(model)
    if local:
        folder = Path(os.path.expanduser(model))
        if not (folder / "config.json").is_file():
            raise BertScoreModelUnavailableError(
                _bertscore_message(model, "is not a local model folder (no config.json)")
            )
        missing = [
            flag
            for flag, value in (
                ("--bertscore_num_layers", num_layers),
                ("--bertscore_baseline", baseline_path),
            )
            if value is None
        ]
        if missing:
            raise ValueError(
                f"BERTScore model {model!r} is a local folder: give {' and '.join(missing)} "
                "(bert_score knows the layer and baseline of hub models only)."
            )
    else:
        if num_layers is None:
            if model not in model2layers:
                raise ValueError(
                    f"BERTScore model {model!r} has no default layer in bert_score: give "
                    "--bertscore_num_layers."
                )
            num_layers = model2layers[model]
        if _hf_offline():
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(model, "config.json"), str):
                raise BertScoreModelUnavailableError(
                    _bertscore_message(
                        model,
                        "is not in the Hugging Face cache and HF_HUB_OFFLINE/"
                        "TRANSFORMERS_OFFLINE forbids downloads",
                    )
                )
        if baseline_path is None:
            import bert_score

            baseline_path = os.path.join(
                os.path.dirname(bert_score.__file__), "rescale_baseline", lang, f"{model}.tsv"
            )
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
        raise ValueError(f"bertscore num_layers must be an int >= 0, got {num_layers!r}.")
    if not os.path.isfile(baseline_path):
        raise FileNotFoundError(
            f"BERTScore baseline file {baseline_path} not found: the organizers rescale F1 "
            f"with the baseline of {model!r} for {lang!r}; give the file with "
            "--bertscore_baseline (format: bert_score's rescale_baseline/<lang>/<model>.tsv)."
        )
    return model, num_layers, str(baseline_path)


def bertscore_f1(
    hypotheses,
    references,
    lang,
    model=None,
    num_layers=None,
    baseline_path=None,
    batch_size=64,
    device=None,
):
    """Mean BERTScore F1 (x100), rescaled with the model's baseline, as the organizers score SQA.

    Arguments
    ---------
    hypotheses : list of str
        Generated answers.
    references : list of str
        Reference answers; several answers of one question joined with
        ``data.ANSWER_SEPARATOR`` are multiple references (the best F1 counts).
    lang : str
        Answer language.
    model, num_layers, baseline_path
        See :func:`resolve_bertscore_model`.
    batch_size : int
        ``bert_score`` batch size.
    device : str, optional
        Default: CUDA if available.

    Returns
    -------
    dict
        ``bertscore_f1`` (x100), ``num_utterances``, ``model`` and ``signature``
        (``bert_score``'s hash, e.g. "roberta-large_L17_no-idf_version=...-rescaled").

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny_bertscore import build_tiny_bertscore
    >>> tiny = build_tiny_bertscore(tempfile.mkdtemp(), ["in paris", "two cats", "yes"])
    >>> out = bertscore_f1(["in paris"], ["in paris"], "en", **tiny)
    >>> round(out["bertscore_f1"], 3), out["num_utterances"]
    (100.0, 1)
    """
    import bert_score
    import torch

    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("bertscore_f1: hypotheses and references must be lists of strings.")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"bertscore_f1: {len(hypotheses)} hypotheses but {len(references)} references."
        )
    if not hypotheses:
        raise ValueError("bertscore_f1: no answer to score (the lists are empty).")
    model, num_layers, baseline_path = resolve_bertscore_model(
        lang, model, num_layers, baseline_path
    )
    hyps = ["" if h is None else str(h) for h in hypotheses]
    refs = [[a.strip() for a in str(r or "").split(ANSWER_SEPARATOR)] for r in references]
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        (_, _, f1), signature = bert_score.score(
            hyps,
            refs,
            model_type=model,
            num_layers=num_layers,
            lang=_language_code(lang, "bertscore_f1"),
            rescale_with_baseline=True,
            baseline_path=baseline_path,
            batch_size=batch_size,
            device=device,
            return_hash=True,
        )
    except OSError as err:
        raise BertScoreModelUnavailableError(
            _bertscore_message(model, f"could not be loaded ({err})")
        ) from err
    return {
        "bertscore_f1": 100.0 * float(f1.mean()),
        "num_utterances": len(hyps),
        "model": model,
        "signature": f"{signature}|bert-score:{_version('bert-score')}|x100",
    }


def manifest_rows(path):
    """The rows of a test set's manifest (dicts with ``ID``), in file order.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.data import write_csv
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> write_csv(p, [{"ID": "a", "spk_id": "t1"}], ["ID", "spk_id"])
    >>> manifest_rows(p)
    [{'ID': 'a', 'spk_id': 't1'}]
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Manifest {path} not found: give --manifest_folder, the folder where the dataset's "
            "prepare script wrote <split>.csv (e.g. results/acl6060/manifests)."
        )
    return read_manifest_rows(path)[0]


def group_by_talk(outputs, manifest_rows, talk_field="spk_id", where="result"):
    """The test set's segments grouped by talk, in manifest order, with their hypotheses.

    Arguments
    ---------
    outputs : list of dict
        The result's decoded outputs (``id``, ``hypothesis``).
    manifest_rows : list of dict
        The rows of the manifest of the result's split (``ID``, ``talk_field``, texts).
    talk_field : str
        The manifest column naming each row's talk (the ACL 60/60 recipe writes the talk id
        into ``spk_id``: one presenter per talk).
    where : str
        Name of the result (file) for error messages.

    Returns
    -------
    tuple
        ``(talks, missing)``: ``talks`` is a list of ``(talk, rows)`` where each row is the
        manifest row plus ``hypothesis`` (``""`` when the result lacks it); ``missing`` is
        the list of manifest IDs without an output.

    Example
    -------
    >>> rows = [{"ID": "a", "spk_id": "t1"}, {"ID": "b", "spk_id": "t2"},
    ...         {"ID": "c", "spk_id": "t1"}]
    >>> talks, missing = group_by_talk([{"id": "a", "hypothesis": "x"},
    ...                                 {"id": "c", "hypothesis": "z"}], rows)
    >>> [(t, [r["hypothesis"] for r in rs]) for t, rs in talks], missing
    ([('t1', ['x', 'z']), ('t2', [''])], ['b'])
    """
    if not manifest_rows:
        raise ValueError(f"{where}: the manifest holds no row.")
    for field in ("ID", talk_field):
        if field not in manifest_rows[0]:
            raise ValueError(
                f"{where}: the manifest has no column {field!r} (it has "
                f"{', '.join(manifest_rows[0])}); talk-level scoring needs each row's talk: "
                "prepare the data with recipes/ACL6060/acl6060_prepare.py or choose the column "
                "with --talk_field."
            )
    hypotheses = {o["id"]: o["hypothesis"] for o in outputs}
    known = {row["ID"] for row in manifest_rows}
    unknown = [i for i in hypotheses if i not in known]
    if unknown:
        raise ValueError(
            f"{where}: {len(unknown)} output id(s) are not in the manifest, e.g. "
            f"{', '.join(unknown[:5])}; give the manifests the result was decoded from "
            "(--manifest_folder)."
        )
    talks, missing = {}, []
    for row in manifest_rows:
        talk = (row.get(talk_field) or "").strip()
        if not talk:
            raise ValueError(f"{where}: manifest row {row['ID']} has an empty {talk_field!r}.")
        if row["ID"] not in hypotheses:
            missing.append(row["ID"])
        talks.setdefault(talk, []).append({**row, "hypothesis": hypotheses.get(row["ID"], "")})
    return list(talks.items()), missing


def _field(rows, names, where):
    """The first column of ``names`` the manifest has."""
    for name in names:
        if name in rows[0]:
            return name
    raise ValueError(f"{where}: the manifest has none of the columns {list(names)}.")


def score_result(
    result,
    manifest_rows=None,
    *,
    talk_field="spk_id",
    comet_model=DEFAULT_COMET_MODEL,
    comet_batch_size=16,
    gpus=None,
    cache_dir=None,
    bertscore_model=None,
    bertscore_num_layers=None,
    bertscore_baseline=None,
    bertscore_batch_size=64,
    where="result",
):
    """The official metric of one result (its task decides which).

    ASR and ST need ``manifest_rows`` (the manifest of the result's split): they give the
    talks, the segment order, the talk-level ASR reference (``transcript``, else ``wrd``, of
    the talk's rows joined with spaces) and the ST reference and source sentences (``tgt``,
    ``transcript``). SQA uses the result's own outputs (``reference``).

    Arguments
    ---------
    result : dict
        A validated result (``results`` schema).
    manifest_rows : list of dict, optional
        Rows of the result's manifest (:func:`manifest_rows`).
    talk_field, comet_model, comet_batch_size, gpus, cache_dir
        See :func:`group_by_talk` and :func:`st_comet`.
    bertscore_model, bertscore_num_layers, bertscore_baseline, bertscore_batch_size
        See :func:`bertscore_f1`.
    where : str
        Name of the result for error messages.

    Returns
    -------
    tuple
        ``(metrics, signatures, details)``: ``{name: value}``, ``{name: signature}`` and
        a JSON-serializable dict (talks, segments, missing hypotheses, protocol).

    Example
    -------
    >>> from speechmapper_plugin.results import make_result
    >>> rows = [{"ID": "s1", "spk_id": "talk1", "transcript": "Hello Mr. Smith."},
    ...         {"ID": "s2", "spk_id": "talk1", "transcript": "Ten cats."}]
    >>> r = make_result("S", "ACL6060", "eval_asr", "asr", {"wer": 20.0},
    ...                 [{"id": "s1", "hypothesis": "hello mister smith ten",
    ...                   "reference": "hello mr smith"},
    ...                  {"id": "s2", "hypothesis": "cats", "reference": "ten cats"}])
    >>> metrics, signatures, details = score_result(r, rows)
    >>> metrics, details["num_talks"]
    ({'official_wer': 0.0}, 1)
    """
    task = result["task"]
    outputs = result["outputs"]
    if not outputs:
        raise ValueError(f"{where}: the result holds no output to score.")
    details = {"protocol": "iwslt25-if-short", "talk_field": None}
    if task == "sqa":
        lang = result.get("target_lang") or result["source_lang"]
        scored = bertscore_f1(
            [o["hypothesis"] for o in outputs],
            [o["reference"] for o in outputs],
            lang,
            model=bertscore_model,
            num_layers=bertscore_num_layers,
            baseline_path=bertscore_baseline,
            batch_size=bertscore_batch_size,
        )
        details.update(num_utterances=scored["num_utterances"], model=scored["model"])
        return (
            {"bertscore_f1": scored["bertscore_f1"]},
            {"bertscore_f1": scored["signature"]},
            details,
        )
    if manifest_rows is None:
        raise ValueError(
            f"{where}: {task} results are scored per talk: give the manifest of split "
            f"{result['split']!r} (--manifest_folder)."
        )
    talks, missing = group_by_talk(outputs, manifest_rows, talk_field, where)
    if missing:
        logger.warning(
            "%s: %d segment(s) of the test set have no output and count as empty hypotheses, "
            "e.g. %s.",
            where,
            len(missing),
            ", ".join(missing[:5]),
        )
    details.update(
        talk_field=talk_field,
        num_talks=len(talks),
        num_segments=len(manifest_rows),
        missing_hypotheses=len(missing),
    )
    if task == "asr":
        text = _field(manifest_rows, ("transcript", "wrd"), where)
        scored = talk_wer(
            [[r["hypothesis"] for r in rows] for _, rows in talks],
            [" ".join(r[text] for r in rows) for _, rows in talks],
            lang=result["source_lang"],
        )
        return (
            {"official_wer": scored["official_wer"]},
            {"official_wer": scored["signature"]},
            details,
        )
    source = _field(manifest_rows, ("transcript", "wrd"), where)
    _field(manifest_rows, ("tgt",), where)
    scored = st_comet(
        [
            {
                "hypotheses": [r["hypothesis"] for r in rows],
                "references": [r["tgt"] for r in rows],
                "sources": [r[source] for r in rows],
            }
            for _, rows in talks
        ],
        result["target_lang"],
        model=comet_model,
        batch_size=comet_batch_size,
        gpus=gpus,
        cache_dir=cache_dir,
    )
    return (
        {"official_comet": scored["official_comet"]},
        {"official_comet": scored["signature"]},
        details,
    )


def with_official_metrics(result, metrics, signatures, details):
    """A copy of ``result`` with the official metrics, their signatures and the scoring details
    (key ``official_scoring``) added; checked with ``results.validate_result``.

    Example
    -------
    >>> from speechmapper_plugin.results import make_result
    >>> r = make_result("S", "ACL6060", "eval_asr", "asr", {"wer": 20.0}, [])
    >>> sorted(with_official_metrics(r, {"official_wer": 5.0}, {}, {})["metrics"])
    ['official_wer', 'wer']
    """
    updated = dict(result)
    updated["metrics"] = {**result["metrics"], **metrics}
    updated["signatures"] = {**result["signatures"], **signatures}
    updated["official_scoring"] = details
    validate_result(updated, where="with_official_metrics")
    return updated


def _load(paths):
    """``[(path, result)]`` of the result files under ``paths`` (other JSON files skipped)."""
    found = []
    for given in paths:
        for path in _json_files(os.fspath(given)):
            with open(path, encoding="utf-8") as f:
                try:
                    obj = json.load(f)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}: not valid JSON ({err}).") from err
            if isinstance(obj, dict) and "schema" in obj:
                validate_result(obj, where=path)
                found.append((path, obj))
    return found


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m speechmapper_plugin.iwslt_scoring",
        description="Add the IWSLT 2025 IF official metrics (talk-level WER, re-segmented COMET, "
        "BERTScore F1) to result files.",
    )
    parser.add_argument("results", nargs="+", help="result files and/or folders")
    parser.add_argument(
        "--manifest_folder", help="folder of the <split>.csv manifests (needed for ASR/ST)"
    )
    parser.add_argument(
        "--output_folder",
        help="write the updated results here (default: update the result files in place)",
    )
    parser.add_argument("--talk_field", default="spk_id", help="manifest column of the talk id")
    parser.add_argument("--tasks", nargs="+", choices=list(METRIC_OF_TASK), help="only these tasks")
    parser.add_argument("--datasets", nargs="+", help="only results of these datasets")
    parser.add_argument("--comet_model", default=DEFAULT_COMET_MODEL)
    parser.add_argument("--comet_batch_size", type=int, default=16)
    parser.add_argument("--gpus", type=int, choices=(0, 1), default=None)
    parser.add_argument("--hub_cache_dir", default=None)
    parser.add_argument(
        "--bertscore_model", default=None, help="hub id or local folder (default: per language)"
    )
    parser.add_argument("--bertscore_num_layers", type=int, default=None)
    parser.add_argument("--bertscore_baseline", default=None, help="rescaling baseline file")
    parser.add_argument("--bertscore_batch_size", type=int, default=64)
    return parser


def main(argv=None):
    """Command line: score result files and write them back with the official metrics.

    Bad input (no result, a result whose IDs are missing from its manifest, a model that is
    not available) exits with status 2 and a message naming the problem. Returns the list of
    written paths.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Example
    -------
    >>> main(["/nonexistent/results"])
    Traceback (most recent call last):
      ...
    SystemExit: 2
    """
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    written = []
    try:
        selected = [
            (path, result)
            for path, result in _load(args.results)
            if (args.tasks is None or result["task"] in args.tasks)
            and (args.datasets is None or result["dataset"] in args.datasets)
        ]
        if not selected:
            raise ValueError(f"no result to score in: {' '.join(args.results)}")
        for path, result in selected:
            rows = None
            if result["task"] in ("asr", "st"):
                if not args.manifest_folder:
                    raise ValueError(
                        f"{path}: {result['task']} results are scored per talk: give "
                        "--manifest_folder (the folder of the dataset's <split>.csv), or "
                        "leave them out with --tasks sqa / --datasets."
                    )
                rows = manifest_rows(manifest_path(args.manifest_folder, result["split"]))
            metrics, signatures, details = score_result(
                result,
                rows,
                talk_field=args.talk_field,
                comet_model=args.comet_model,
                comet_batch_size=args.comet_batch_size,
                gpus=args.gpus,
                cache_dir=args.hub_cache_dir,
                bertscore_model=args.bertscore_model,
                bertscore_num_layers=args.bertscore_num_layers,
                bertscore_baseline=args.bertscore_baseline,
                bertscore_batch_size=args.bertscore_batch_size,
                where=path,
            )
            updated = with_official_metrics(result, metrics, signatures, details)
            if args.output_folder:
                target = write_result(args.output_folder, updated)
            else:
                write_json(path, updated)
                target = path
            written.append(target)
            logger.info(
                "%s: %s",
                target,
                ", ".join(f"{name}={value:.2f}" for name, value in metrics.items()),
            )
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        parser.error(str(err))
    return written


if __name__ == "__main__":
    main()
