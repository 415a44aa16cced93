"""Manifest translation with SeamlessM4T-v2 and a COMET quality filter (IWSLT25 data tools).

The IWSLT25 instruction-following system had no multilingual SQA training data: it translated
the English questions and answers of Spoken-SQuAD into German, Italian and Chinese with
SeamlessM4T-v2 and kept the translated QA pairs whose COMET score was at least 0.85 (system
paper; talk, "Question/Answering translation followed by automatic translation quality filters
using COMET"). The same tool makes ST rows from English transcripts (``transcript:tgt``).

For each input row and each target language, the chosen columns are translated with
``SeamlessM4Tv2ForTextToText`` (batched, model by hub id or local folder); a ``tgt`` column
holding several answers (``manifests.ANSWER_SEPARATOR``) is translated answer by answer. The
``(row, language)`` item is kept only if every translated text scores at least ``threshold``
(default 0.85); otherwise it is dropped with the scores of its fields. Output: one row per kept
``(row, language)``, ID ``<ID>_<lang>``, the translated columns replaced (``column``) or written
to another column (``source:destination``), ``tgt_lang`` set to the language when ``tgt`` is
written (otherwise left as it was), ``audio_id`` kept pointing at the original audio
(``audio_id`` or, when empty, the original ID), ``task`` optionally set (``--task st``).

COMET mode (the papers do not publish the exact filter): **round trip**. The translation is
translated back into the source language with the same Seamless model, and COMET scores the
back-translation against the original (source = reference = the original English text,
hypothesis = the back-translation; ``Unbabel/wmt22-comet-da`` by default, score in [0, 1]
compared with the threshold). Reasons: it only needs a reference-based COMET model, which the
project already loads (``comet.CometScorer``) and can test offline (``tiny_comet``), while
reference-free QE (CometKiwi) needs a gated QE model the project cannot build offline. Limits:
a round trip measures whether the meaning survives translation *and* back-translation, so an
error of either direction drops an item (conservative), and a translation that is wrong but
back-translates to the original (e.g. copied English) passes; a QE score of the forward
translation would be the more direct filter where CometKiwi is available.

Every decision is logged as it is made (``resumable.ResumableJob``): an interrupted run resumes
without translating again what it decided, and ``<output stem>.report.json`` /
``.dropped.tsv`` give the kept and dropped items (reasons: ``empty_source``,
``source_lang_mismatch``, ``empty_translation``, ``comet_below_<threshold>``).

Authors
-------
speechmapper developers, 2026
"""

import argparse
import json
import logging
import math

import torch

from speechmapper_plugin.data.manifests import ANSWER_SEPARATOR, read_manifest_rows, split_answers
from speechmapper_plugin.datatools.resumable import ResumableJob

logger = logging.getLogger(__name__)


TOOL = "translate_manifest"


DEFAULT_SEAMLESS_MODEL = "facebook/seamless-m4t-v2-large"


DEFAULT_COMET_MODEL = "Unbabel/wmt22-comet-da"


DEFAULT_THRESHOLD = 0.85


DEFAULT_COLUMNS = ("question", "tgt")


COMET_MODE = "round_trip"


#: ISO 639-1 codes (as in the manifests' ``tgt_lang``) -> SeamlessM4T-v2 language codes.
SEAMLESS_LANGUAGES = {
    "ar": "arb",
    "cs": "ces",
    "de": "deu",
    "en": "eng",
    "es": "spa",
    "fa": "pes",
    "fr": "fra",
    "hi": "hin",
    "it": "ita",
    "ja": "jpn",
    "ko": "kor",
    "nl": "nld",
    "pl": "pol",
    "pt": "por",
    "ro": "ron",
    "ru": "rus",
    "sv": "swe",
    "tr": "tur",
    "uk": "ukr",
    "vi": "vie",
    "zh": "cmn",
}


#: Files of a Seamless hub repository the tools need (not the fairseq2 ``*.pt`` files).
SEAMLESS_FILE_PATTERNS = [
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "sentencepiece.bpe.model",
    "*.safetensors",
    "model.safetensors.index.json",
]


def seamless_code(lang):
    """The SeamlessM4T-v2 code of an ISO 639-1 language code.

    Example
    -------
    >>> seamless_code("zh"), seamless_code("de")
    ('cmn', 'deu')
    """
    code = str(lang).strip().lower()
    if code not in SEAMLESS_LANGUAGES:
        raise ValueError(
            f"Unknown language {lang!r}: give an ISO 639-1 code among "
            f"{sorted(SEAMLESS_LANGUAGES)} (mapped to Seamless codes, e.g. zh -> cmn)."
        )
    return SEAMLESS_LANGUAGES[code]


def seamless_folder(source):
    """Local folder of a SeamlessM4T-v2 model given as a hub id or a local folder.

    A hub id is resolved in (or downloaded to) the Hugging Face cache, restricted to
    :data:`SEAMLESS_FILE_PATTERNS`, so that both kinds of source are then loaded by the same
    ``from_pretrained(folder)`` code. The folder must hold a ``seamless_m4t_v2`` config.

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text('{"model_type": "seamless_m4t_v2"}')
    >>> seamless_folder(folder) == folder
    True
    """
    from speechmapper_plugin.models.hub import resolve_source

    folder = resolve_source(source, allow_patterns=SEAMLESS_FILE_PATTERNS)
    with open(folder / "config.json", encoding="utf-8") as f:
        model_type = json.load(f).get("model_type")
    if model_type != "seamless_m4t_v2":
        raise ValueError(
            f"{source} is not a SeamlessM4T-v2 model (config.json has model_type="
            f"{model_type!r}, expected 'seamless_m4t_v2'); give e.g. {DEFAULT_SEAMLESS_MODEL}."
        )
    return folder


def parse_columns(specs):
    """``["question", "transcript:tgt"]`` -> ``[("question", "question"), ("transcript", "tgt")]``.

    Example
    -------
    >>> parse_columns(["question", "transcript:tgt"])
    [('question', 'question'), ('transcript', 'tgt')]
    """
    if isinstance(specs, str):
        specs = [specs]
    pairs = []
    for spec in specs:
        source, _, destination = str(spec).partition(":")
        source, destination = source.strip(), (destination.strip() or source.strip())
        if not source or source == "ID":
            raise ValueError(
                f"Bad column {spec!r}: give a manifest column such as 'question', or "
                "'source:destination' such as 'transcript:tgt'."
            )
        pairs.append((source, destination))
    destinations = [d for _, d in pairs]
    if not pairs or len(set(destinations)) != len(destinations):
        raise ValueError(f"Columns {list(specs)}: give at least one, each written once.")
    return pairs


def _batches(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_positive_ints(owner, **values):
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}.")


class SeamlessModel:
    """A SeamlessM4T-v2 model (by hub id or local folder) and its tokenizer, loaded once on
    first use: what the translation and the TTS tools share. Subclasses name the
    ``transformers`` class (``model_class``) and what it does (``kind``, for the log).

    Example
    -------
    >>> SeamlessModel("facebook/seamless-m4t-v2-large", device="cpu", batch_size=0)
    Traceback (most recent call last):
    ...
    ValueError: SeamlessModel: batch_size must be a positive int, got 0.
    """

    model_class = None
    kind = "model"

    def __init__(self, model=DEFAULT_SEAMLESS_MODEL, device=None, dtype="float32", batch_size=8):
        from speechmapper_plugin.models.frozen_llm import _parse_dtype

        _check_positive_ints(type(self).__name__, batch_size=batch_size)
        self.model = str(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = _parse_dtype(dtype)
        self.batch_size = batch_size
        self._model = None
        self._tokenizer = None

    def load(self):
        """Loads the tokenizer and model (once); returns the model."""
        if self._model is None:
            import transformers

            folder = seamless_folder(self.model)
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
            model_class = getattr(transformers, self.model_class)
            model = model_class.from_pretrained(folder, dtype=self.dtype)
            self._model = model.to(self.device).eval()
            logger.info("Loaded %s (%s) on %s", self.model, self.kind, self.device)
        return self._model


class SeamlessTranslator(SeamlessModel):
    """Batched text-to-text translation with ``SeamlessM4Tv2ForTextToText``.

    Arguments
    ---------
    model : str
        Hub id (default ``facebook/seamless-m4t-v2-large``) or local folder.
    device : str, optional
        e.g. ``cuda:0``; default: CUDA when available, else the CPU.
    dtype : str
        ``float32``, ``bfloat16``, ``float16`` or ``auto``.
    batch_size : int
        Texts per ``generate`` call (texts are sorted by length first).
    num_beams : int
        Beam size (1: greedy).
    max_new_tokens : int, optional
        Length cap of a translation (default: the model's generation config).

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny.seamless import build_tiny_seamless
    >>> folder = build_tiny_seamless(tempfile.mkdtemp(), ["Where is the cat?"])
    >>> translator = SeamlessTranslator(str(folder), device="cpu", num_beams=1)
    >>> out = translator.translate(["Where is the cat?", "the cat"], "en", "de")
    >>> len(out), all(isinstance(text, str) for text in out)
    (2, True)
    """

    model_class = "SeamlessM4Tv2ForTextToText"
    kind = "text-to-text"

    def __init__(
        self,
        model=DEFAULT_SEAMLESS_MODEL,
        device=None,
        dtype="float32",
        batch_size=16,
        num_beams=5,
        max_new_tokens=None,
    ):
        super().__init__(model, device, dtype, batch_size)
        _check_positive_ints(type(self).__name__, num_beams=num_beams)
        self.num_beams = num_beams
        self.max_new_tokens = max_new_tokens

    @property
    def languages(self):
        """Seamless codes the model translates into."""
        return sorted(self.load().generation_config.text_decoder_lang_to_code_id)

    def check_languages(self, langs):
        """Raises ValueError naming the model if it cannot translate from/into ``langs``."""
        supported = set(self.languages)
        missing = [
            f"{lang} ({seamless_code(lang)})"
            for lang in langs
            if seamless_code(lang) not in supported
        ]
        if missing:
            raise ValueError(
                f"Model {self.model} does not support {missing}; it knows {sorted(supported)}."
            )

    @torch.no_grad()
    def translate(self, texts, src_lang, tgt_lang):
        """Translations of ``texts`` from ``src_lang`` into ``tgt_lang`` (ISO codes), in order."""
        model = self.load()
        src, tgt = seamless_code(src_lang), seamless_code(tgt_lang)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [None] * len(texts)
        kwargs = {"num_beams": self.num_beams}
        if self.max_new_tokens is not None:
            kwargs["max_new_tokens"] = self.max_new_tokens
        for batch in _batches(order, self.batch_size):
            inputs = self._tokenizer(
                [texts[i] for i in batch], src_lang=src, padding=True, return_tensors="pt"
            ).to(self.device)
            tokens = model.generate(**inputs, tgt_lang=tgt, **kwargs)
            decoded = self._tokenizer.batch_decode(tokens, skip_special_tokens=True)
            for i, text in zip(batch, decoded):
                out[i] = text.strip()
        return out


def round_trip_scores(translator, scorer, texts, src_lang, tgt_lang):
    """Translations of ``texts`` and their round-trip COMET scores (in [0, 1] for wmt22).

    Each text is translated into ``tgt_lang``, translated back into ``src_lang``, and COMET
    scores the back-translation with the text as source and reference.

    Arguments
    ---------
    translator : object
        With ``translate(texts, src_lang, tgt_lang) -> list of str``.
    scorer : object
        With ``score(sources, hypotheses, references) -> {"segments": [x100 scores]}``
        (``comet.CometScorer``).
    texts : list of str
        Source texts.
    src_lang, tgt_lang : str
        ISO 639-1 codes.

    Returns
    -------
    translations : list of str
    scores : list of float

    Example
    -------
    >>> class Upper:
    ...     def translate(self, texts, src, tgt):
    ...         return [t.upper() if tgt == "de" else t.lower() for t in texts]
    >>> class Exact:
    ...     def score(self, sources, hypotheses, references):
    ...         return {"segments": [100.0 * (h == r) for h, r in zip(hypotheses, references)]}
    >>> round_trip_scores(Upper(), Exact(), ["the cat", "The Cat"], "en", "de")
    (['THE CAT', 'THE CAT'], [1.0, 0.0])
    """
    translations = translator.translate(list(texts), src_lang, tgt_lang)
    back = translator.translate(translations, tgt_lang, src_lang)
    segments = scorer.score(list(texts), back, list(texts))["segments"]
    return translations, [float(value) / 100.0 for value in segments]


def _read(path, columns):
    return read_manifest_rows(
        path, columns, hint="Choose existing columns to translate with --columns."
    )


def _segments(row, columns):
    """``[(label, destination, index, text)]``: the texts of a row to translate."""
    segments = []
    for source, destination in columns:
        value = str(row[source])
        parts = split_answers(value) if source == "tgt" else [value.strip()]
        for index, text in enumerate(parts):
            label = f"{source}[{index}]" if len(parts) > 1 else source
            segments.append((label, destination, index, text))
    return segments


def _output_row(row, lang, segments, translations, task):
    out = dict(row, ID=f"{row['ID']}_{lang}", audio_id=row.get("audio_id") or row["ID"])
    written = {}
    for (_, destination, _, _), translation in zip(segments, translations):
        written.setdefault(destination, []).append(translation)
    for destination, parts in written.items():
        out[destination] = ANSWER_SEPARATOR.join(parts)
    if "tgt" in written:
        out["tgt_lang"] = lang
    if task:
        out["task"] = task
    return out


def _decide_chunk(job, chunk, columns, translator, scorer, threshold, source_lang, task):
    """Translates and scores a chunk of (row, language) items, then records the decisions."""
    todo = {}  # lang -> unique source texts
    plans = []
    for item in chunk:
        row, lang = item["row"], item["lang"]
        segments = _segments(row, columns)
        filled = {label.split("[")[0] for label, _, _, text in segments if text}
        empty = [source for source, _ in columns if source not in filled]
        row_lang = str(row.get("tgt_lang", "")).strip().lower()
        if empty:
            plans.append((item, "empty_source", f"empty column(s) {empty}"))
        elif any(s == "tgt" for s, _ in columns) and row_lang and row_lang != source_lang:
            plans.append((item, "source_lang_mismatch", f"tgt_lang {row_lang} != {source_lang}"))
        else:
            plans.append((item, segments, None))
            todo.setdefault(lang, {}).update({text: None for _, _, _, text in segments})
    results = {}  # (lang, text) -> (translation, score)
    for lang, texts in todo.items():
        texts = list(texts)
        translations, scores = round_trip_scores(translator, scorer, texts, source_lang, lang)
        results.update({(lang, t): r for t, r in zip(texts, zip(translations, scores))})
    for item, plan, detail in plans:
        if detail is not None:
            job.drop(item["ID"], plan, detail)
            continue
        lang = item["lang"]
        outcome = [results[(lang, text)] for _, _, _, text in plan]
        empty = [label for (label, *_), (translation, _) in zip(plan, outcome) if not translation]
        fields = {}
        for (label, *_), (_, score) in zip(plan, outcome):
            field = label.split("[")[0]
            fields[field] = min(fields.get(field, math.inf), score)
        scores = " ".join(f"{field}={score:.4f}" for field, score in fields.items())
        if empty:
            job.drop(item["ID"], "empty_translation", f"{empty} ({scores})")
        elif min(fields.values()) < threshold:
            job.drop(item["ID"], f"comet_below_{threshold:g}", scores)
        else:
            translations = [translation for translation, _ in outcome]
            job.keep(item["ID"], [_output_row(item["row"], lang, plan, translations, task)])


def translate_manifest(
    input,
    output,
    languages,
    translator,
    scorer,
    columns=DEFAULT_COLUMNS,
    threshold=DEFAULT_THRESHOLD,
    source_lang="en",
    task=None,
    chunk_size=64,
    settings=None,
):
    """Translates manifest columns into ``languages`` and keeps what passes the COMET filter.

    Arguments
    ---------
    input, output : str
        Input and output manifests (CSV).
    languages : list of str
        Target ISO 639-1 codes (e.g. ``["de", "it", "zh"]``).
    translator : SeamlessTranslator or object with ``translate(texts, src_lang, tgt_lang)``
    scorer : comet.CometScorer or object with ``score(sources, hypotheses, references)``
    columns : list of str
        Columns to translate in place, or ``source:destination`` (:func:`parse_columns`).
    threshold : float
        Minimum round-trip COMET score (0-1) of every translated text of an item.
    source_lang : str
        ISO code of the columns' language.
    task : str, optional
        Value of the ``task`` column of the output rows (e.g. ``st``); default: unchanged.
    chunk_size : int
        Items translated and scored together before their decisions are logged.
    settings : dict, optional
        Model settings recorded in the job (resuming with others is refused); default: the
        translator's and scorer's ``model`` attributes.

    Returns
    -------
    dict
        The report (``resumable.ResumableJob.finish``).

    Example
    -------
    >>> import os, tempfile
    >>> from speechmapper_plugin.data.manifests import write_csv
    >>> folder = tempfile.mkdtemp()
    >>> src, out = os.path.join(folder, "in.csv"), os.path.join(folder, "out.csv")
    >>> write_csv(src, [{"ID": "q1", "question": "Who?", "tgt": "Ann ||| Anna",
    ...                  "tgt_lang": "en"}], ["ID", "question", "tgt", "tgt_lang"])
    >>> class Tag:
    ...     model = "tag"
    ...     def translate(self, texts, src, tgt):
    ...         return [t.split(":")[-1] if tgt == "en" else f"{tgt}:{t}" for t in texts]
    >>> class Exact:
    ...     model = "exact"
    ...     def score(self, sources, hypotheses, references):
    ...         return {"segments": [100.0 * (h == r) for h, r in zip(hypotheses, references)]}
    >>> report = translate_manifest(src, out, ["de"], Tag(), Exact())
    >>> report["kept"], open(out).read().splitlines()[1]
    (1, 'q1_de,de:Who?,de:Ann ||| de:Anna,de,q1')
    """
    columns = parse_columns(columns)
    source_lang = str(source_lang).strip().lower()
    seamless_code(source_lang)
    langs = [str(lang).strip().lower() for lang in languages]
    for lang in langs:
        seamless_code(lang)
    if not langs or len(set(langs)) != len(langs) or source_lang in langs:
        raise ValueError(
            f"languages {list(languages)}: give distinct target languages other than the "
            f"source language {source_lang!r}."
        )
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold must be a number (COMET score, e.g. 0.85), got {threshold!r}.")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}.")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}.")
    rows, fieldnames = _read(input, [source for source, _ in columns])
    if hasattr(translator, "check_languages"):
        translator.check_languages([source_lang, *langs])
    if settings is None:
        settings = {
            "model": getattr(translator, "model", type(translator).__name__),
            "comet_model": getattr(scorer, "model", type(scorer).__name__),
        }
    job = ResumableJob(
        output,
        TOOL,
        {
            **settings,
            "comet_mode": COMET_MODE,
            "threshold": threshold,
            "languages": langs,
            "columns": [f"{s}:{d}" for s, d in columns],
            "source_lang": source_lang,
            "task": task,
        },
    )
    items = [
        {"ID": f"{row['ID']}_{lang}", "row": row, "lang": lang} for row in rows for lang in langs
    ]
    pending = list(job.pending(items))
    logger.info(
        "%s: %d items (%d rows x %d languages), %d to do",
        TOOL,
        len(items),
        len(rows),
        len(langs),
        len(pending),
    )
    for chunk in _batches(pending, chunk_size):
        _decide_chunk(job, chunk, columns, translator, scorer, threshold, source_lang, task)
    extra = [name for name in ("audio_id", "tgt_lang", "task") if name not in fieldnames]
    extra += [d for _, d in columns if d not in fieldnames and d not in extra]
    if "task" in extra and not task:
        extra.remove("task")
    return job.finish(fieldnames + extra, input_items=len(items))


def main(argv=None):
    """Command line: ``python recipes/IWSLT25/tools/translate_manifest.py --help``."""
    parser = argparse.ArgumentParser(
        description="Translate manifest columns with SeamlessM4T-v2 into several languages and "
        "keep the (row, language) items whose round-trip COMET score passes a threshold."
    )
    parser.add_argument("--input", required=True, help="input manifest (CSV)")
    parser.add_argument("--output", required=True, help="output manifest (CSV)")
    parser.add_argument(
        "--languages", nargs="+", default=["de", "it", "zh"], help="target ISO codes (%(default)s)"
    )
    parser.add_argument(
        "--columns",
        nargs="+",
        default=list(DEFAULT_COLUMNS),
        help="columns to translate, or source:destination (e.g. transcript:tgt); %(default)s",
    )
    parser.add_argument("--source-lang", default="en", help="language of the columns (en)")
    parser.add_argument("--task", default=None, help="task column of the output rows (e.g. st)")
    parser.add_argument("--model", default=DEFAULT_SEAMLESS_MODEL, help="Seamless hub id or folder")
    parser.add_argument("--comet-model", default=DEFAULT_COMET_MODEL, help="COMET hub id or folder")
    parser.add_argument(
        "--threshold", type=float, default=DEFAULT_THRESHOLD, help="min COMET (0.85)"
    )
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16, float16, auto")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: CUDA if any)")
    parser.add_argument("--batch-size", type=int, default=16, help="texts per generate call")
    parser.add_argument("--num-beams", type=int, default=5, help="beam size (1: greedy)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="translation length cap")
    parser.add_argument("--comet-batch-size", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=256, help="items per logged chunk")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from speechmapper_plugin.evaluation.comet import comet_scorer

    translator = SeamlessTranslator(
        args.model,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        num_beams=args.num_beams,
        max_new_tokens=args.max_new_tokens,
    )
    gpus = 1 if str(translator.device).startswith("cuda") else 0
    scorer = comet_scorer(args.comet_model, batch_size=args.comet_batch_size, gpus=gpus)
    report = translate_manifest(
        args.input,
        args.output,
        args.languages,
        translator,
        scorer,
        columns=args.columns,
        threshold=args.threshold,
        source_lang=args.source_lang,
        task=args.task,
        chunk_size=args.chunk_size,
        settings={
            "model": args.model,
            "comet_model": args.comet_model,
            "dtype": args.dtype,
            "num_beams": args.num_beams,
            "max_new_tokens": args.max_new_tokens,
        },
    )
    print(json.dumps({k: report[k] for k in ("kept", "dropped", "output_rows")}))
    return report
