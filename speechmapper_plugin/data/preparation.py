"""What every dataset preparation script shares: the manifest contract, skip accounting,
audio probing, the up-to-date check and atomic manifest writing.

A preparation script only knows its dataset's distribution layout: for each split it yields
candidate rows (dicts with the manifest fields) and reports rows it cannot use through
``skip``. ``run_preparation`` then drops duplicate IDs, rows whose audio is missing or
unreadable, rows longer than ``max_duration`` and rows missing a required field; every drop is
counted by reason, logged and listed in ``<save_folder>/<split>.skipped.tsv`` (never silent),
and ``<save_folder>/prepare_summary.json`` holds the counts.

Manifest fields (columns a split does not need are left out):

``ID``          unique utterance / item id
``duration``    seconds of audio (of the segment when ``start``/``stop`` are given)
``wav``         absolute path of the audio file (wav, flac, ogg, mp3; m4a/aac through PyAV)
``start``       segment start in seconds inside ``wav`` (segmented corpora, e.g. EuroParl-ST)
``stop``        segment end in seconds
``audio_id``    key of the audio in the feature cache when several rows share one audio
                (SQA: several questions on one passage); defaults to ``ID``
``spk_id``      speaker id ("" when unknown)
``wrd``         MMS-normalized English transcript (``text.normalize_text``): ASR reference
                and stage-1 / MSE target
``transcript``  the raw transcript (cased, punctuated): COMET source and topline input
``tgt``         the task reference: ST translation, SQA answer(s) joined with
                ``manifests.ANSWER_SEPARATOR``
``tgt_lang``    ISO 639-1 code of ``tgt`` (ST target language, SQA answer language)
``question``    SQA question
``context``     SQA reference context (text shown to the LLM judges)
``task``        ``asr``, ``st`` or ``sqa``

Authors
-------
speechmapper developers, 2026
"""

import collections
import json
import logging
import os

import soundfile

from speechmapper_plugin.data.manifests import manifest_path, write_csv
from speechmapper_plugin.utils.files import atomic_write_text, write_json

logger = logging.getLogger(__name__)


MANIFEST_FIELDS = (
    "ID",
    "duration",
    "wav",
    "start",
    "stop",
    "audio_id",
    "spk_id",
    "wrd",
    "transcript",
    "tgt",
    "tgt_lang",
    "question",
    "context",
    "task",
)


class SkipLog:
    """Counts, logs and lists the rows a preparation leaves out, per split.

    Example
    -------
    >>> skips = SkipLog("test")
    >>> skips("utt1", "missing_audio", "/data/a.wav")
    >>> skips.counts
    {'missing_audio': 1}
    """

    def __init__(self, split):
        self.split = split
        self.rows = []

    def __call__(self, utt_id, reason, detail=""):
        """Record that ``utt_id`` is left out for ``reason`` (``detail``: file, line...)."""
        self.rows.append((str(utt_id), reason, str(detail)))
        logger.warning("%s: skipped %s (%s): %s", self.split, utt_id, reason, detail)

    def __len__(self):
        return len(self.rows)

    @property
    def counts(self):
        """Reason -> number of rows left out."""
        return dict(collections.Counter(reason for _, reason, _ in self.rows))

    def write(self, save_folder):
        """``<save_folder>/<split>.skipped.tsv``: one ``id <tab> reason <tab> detail`` line per
        skipped row (written even when empty, so a reader knows nothing was dropped)."""
        text = "".join(f"{u}\t{r}\t{d}\n" for u, r, d in self.rows)
        atomic_write_text(os.path.join(save_folder, f"{self.split}.skipped.tsv"), text)


def skip_bad_encoding(skip, path, id_of=None):
    """The ``on_bad_line`` callback of ``utils.textfiles.text_lines`` / ``delimited_rows`` for
    a corpus file: a line that is not UTF-8 is left out as ``bad_encoding`` (counted, logged
    and listed with its file and line), the rest of the file is still read.

    Arguments
    ---------
    skip : SkipLog
        The split's skip log.
    path : str
        The file being read (named in the detail).
    id_of : callable, optional
        ``id_of(text) -> str``: the row id read from the line (bad bytes shown as U+FFFD);
        default ``<file name>:<line>``.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.utils.textfiles import text_lines
    >>> p = os.path.join(tempfile.mkdtemp(), "t.trans.txt")
    >>> _ = open(p, "wb").write(b"1-1-1 HELLO\\n1-1-2 CAF\\xc9\\n")
    >>> skips = SkipLog("test")
    >>> [line for _, line in text_lines(p, skip_bad_encoding(skips, p, lambda t: t.split()[0]))]
    ['1-1-1 HELLO']
    >>> skips.rows[0][:2], skips.rows[0][2].endswith("t.trans.txt:2: byte 0xc9 at column 10")
    (('1-1-2', 'bad_encoding'), True)
    """

    def bad_line(line_no, text, problem):
        try:
            utt_id = str(id_of(text) if id_of is not None else "").strip()
        except (IndexError, ValueError):  # a line too broken to hold its id
            utt_id = ""
        where = f"{path}:{line_no}"
        skip(utt_id or f"{os.path.basename(path)}:{line_no}", "bad_encoding", f"{where}: {problem}")

    return bad_line


def corpus_rows(path, skip, required, id_column, layout, id_of=None, **csv_format):
    """``(line_no, {column: value})`` of the well-formed rows of a corpus table with a header
    (Common Voice / CoVoST / VoxPopuli tsv files), read with ``utils.textfiles.delimited_rows``.

    Blank lines are ignored; a line that is not UTF-8 (``bad_encoding``) and a row with another
    number of fields than the header (``malformed_row``) are skipped and listed with the file
    and line; the row id of a skip is the ``id_column`` value (through ``id_of``).

    Arguments
    ---------
    path : str
        The table.
    skip : SkipLog
        The split's skip log.
    required : sequence of str
        Columns the header must have.
    id_column : str
        The column naming a row.
    layout : tuple
        ``(dataset, data_folder, expected, hint)``: the ``layout_error`` raised when required
        columns are absent (the message names the file, its header and the missing columns).
    id_of : callable, optional
        Turns the ``id_column`` value into the row id (e.g. a clip path into its stem).
    **csv_format
        ``csv.reader`` options (``delimiter``, ``quoting``...).

    Example
    -------
    >>> import csv, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "t.tsv")
    >>> _ = open(p, "wb").write(b"id\\ttext\\na\\tok\\nb\\t\\xff\\nc\\n\\nd\\tfine\\n")
    >>> skips = SkipLog("test")
    >>> rows = corpus_rows(p, skips, ["text"], "id", ("X", "/x", "x.tsv", ""), delimiter="\\t")
    >>> [(n, row["id"]) for n, row in rows]
    [(2, 'a'), (6, 'd')]
    >>> [(utt, reason) for utt, reason, _ in skips.rows]
    [('b', 'bad_encoding'), ('c', 'malformed_row')]
    """
    from speechmapper_plugin.utils.textfiles import delimited_rows

    header = []

    def row_id(fields):
        at = header.index(id_column) if id_column in header else len(fields)
        value = fields[at].strip() if at < len(fields) else ""
        return id_of(value) if value and id_of is not None else value

    delimiter = csv_format.get("delimiter", ",")
    bad_line = skip_bad_encoding(skip, path, lambda text: row_id(text.split(delimiter)))
    rows = delimited_rows(path, bad_line, **csv_format)
    header[:] = next(rows, (0, []))[1]
    missing = [c for c in required if c not in header]
    if missing:
        dataset, data_folder, expected, hint = layout
        raise layout_error(
            dataset,
            data_folder,
            expected,
            f"{path} has the header {header}, without the columns {missing}. {hint}",
        )
    for line_no, fields in rows:
        if not any(field.strip() for field in fields):
            continue  # blank line
        if len(fields) != len(header):
            skip(
                row_id(fields) or f"line{line_no}",
                "malformed_row",
                f"{path}:{line_no}: {len(fields)} fields, {len(header)} expected",
            )
            continue
        yield line_no, dict(zip(header, fields))


def audio_duration(path):
    """Duration in seconds of an audio file, read from its header.

    libsndfile formats (wav, flac, ogg, mp3) are read with ``soundfile``; others (m4a/aac,
    e.g. EuroParl-ST) with PyAV when it is installed.

    Raises
    ------
    speechmapper_plugin.features.audio.AudioError
        The file is missing or not readable audio (the message says which and why).

    Example
    -------
    >>> import numpy as np, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(p, np.zeros(8000, dtype="float32"), 16000)
    >>> audio_duration(p)
    0.5
    """
    from speechmapper_plugin.features.audio import AudioError, decode_with_av

    if not os.path.isfile(path):
        raise AudioError(f"Audio file not found: {path!r}.")
    try:
        info = soundfile.info(path)
        return info.frames / info.samplerate
    except (RuntimeError, soundfile.LibsndfileError) as err:
        sf_error = err
    try:
        wav, rate = decode_with_av(path)
    except AudioError as err:
        raise AudioError(f"Cannot read audio file {path!r}: {sf_error}; {err}") from None
    return wav.shape[0] / rate


def layout_error(dataset, data_folder, expected, hint="", found=None):
    """A ``FileNotFoundError`` that says which layout was expected where, and what is there.

    Arguments
    ---------
    dataset : str
        Dataset name (e.g. "CoVoST 2").
    data_folder : str
        The folder the user gave.
    expected : str
        The expected tree, e.g. ``"<data_folder>/v1.1/en/<tgt>/test/segments.lst"``.
    hint : str
        Where to get the data / which version.
    found : list of str, optional
        What the folder holds (listed automatically when None).

    Example
    -------
    >>> err = layout_error("X", "/nonexistent", "<data_folder>/x.tsv")
    >>> "expected <data_folder>/x.tsv" in str(err)
    True
    """
    if found is None:
        found = sorted(os.listdir(data_folder))[:20] if os.path.isdir(data_folder) else None
    holds = "it does not exist" if found is None else f"it holds: {found or 'nothing'}"
    return FileNotFoundError(
        f"{dataset}: data_folder={data_folder!r} is not in the expected layout ({holds}); "
        f"expected {expected}. {hint}".strip()
    )


def _check_row(row, split, required, max_duration, skip, probe_audio):
    """The row with its duration filled in, or None (skipped)."""
    utt_id = row["ID"]
    for field in required:
        if not str(row.get(field, "")).strip():
            skip(utt_id, f"empty_{field}", f"no {field} in the source")
            return None
    wav = row.get("wav", "")
    if not wav or not os.path.isfile(wav):
        skip(utt_id, "missing_audio", wav)
        return None
    start, stop = row.get("start"), row.get("stop")
    if start not in (None, "") and stop not in (None, ""):
        start, stop = float(start), float(stop)
        if not 0 <= start < stop:
            skip(utt_id, "bad_segment", f"start={start} stop={stop}")
            return None
        duration = stop - start
    elif row.get("duration") not in (None, ""):
        duration = float(row["duration"])
    else:
        duration = probe_audio(wav, utt_id, skip)
        if duration is None:
            return None
    if max_duration and duration > max_duration:
        skip(utt_id, "too_long", f"{duration:.1f}s > {max_duration}s")
        return None
    return {**row, "duration": round(duration, 3)}


def _probe(cache):
    from speechmapper_plugin.features.audio import AudioError

    def probe(wav, utt_id, skip):
        if wav not in cache:
            try:
                cache[wav] = audio_duration(wav)
            except AudioError as err:
                cache[wav] = err
        value = cache[wav]
        if isinstance(value, Exception):
            skip(utt_id, "unreadable_audio", value)
            return None
        return value

    return probe


def run_preparation(
    dataset,
    data_folder,
    save_folder,
    splits,
    read_split,
    *,
    required=(),
    max_duration=None,
    skip_prep=False,
    options=None,
    valid_splits=None,
):
    """Write ``<save_folder>/<split>.csv`` for each split (nothing to do when the manifests
    exist and were written with the same options).

    Arguments
    ---------
    dataset : str
        Dataset name, for messages and the summary.
    data_folder : str
        The dataset's root folder (stored in the options; made absolute).
    save_folder : str
        Where the manifests, ``<split>.skipped.tsv`` and ``prepare_summary.json`` go.
    splits : list of str
        Manifest names (e.g. ``["test_en-de"]``); ``read_split`` interprets them.
    read_split : callable
        ``read_split(split, skip) -> iterable of dict``: the candidate rows of a split, each
        with at least ``ID`` and ``wav`` (and ``start``/``stop`` for segments); it calls
        ``skip(utt_id, reason, detail)`` for source rows it cannot turn into a row. It raises
        ``layout_error(...)`` when the split's files are not where the layout puts them.
    required : sequence of str
        Fields that must be non-empty (rows without are skipped as ``empty_<field>``).
    max_duration : float, optional
        Longer rows are skipped (``too_long``).
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).
    options : dict, optional
        Further settings that change the manifests (part of the up-to-date check).
    valid_splits : sequence of str, optional
        The split names the dataset has; others are a ``ValueError`` naming them.

    Returns
    -------
    dict
        Per split: ``utterances``, ``hours``, ``skipped`` (reason -> count).
    """
    if skip_prep:
        return {}
    splits = list(splits)
    unknown = [sp for sp in splits if valid_splits is not None and sp not in valid_splits]
    if unknown:
        raise ValueError(
            f"{dataset}: unknown split(s) {unknown}; valid splits: {list(valid_splits)}."
        )
    if not splits:
        raise ValueError(f"{dataset}: no split to prepare (splits=[]).")
    data_folder = os.path.abspath(data_folder)
    settings = {
        "dataset": dataset,
        "data_folder": data_folder,
        "max_duration": max_duration,
        **(options or {}),
    }
    opts_file = os.path.join(save_folder, "prepare_options.json")
    summary_file = os.path.join(save_folder, "prepare_summary.json")
    stored = {}
    if os.path.isfile(opts_file) and os.path.isfile(summary_file):
        with open(opts_file, encoding="utf-8") as f:
            stored_options = json.load(f)
        with open(summary_file, encoding="utf-8") as f:
            stored = json.load(f)
        if stored_options != settings:
            stored = {}  # other options: every split is prepared again
    todo = [
        s for s in splits if s not in stored or not os.path.isfile(manifest_path(save_folder, s))
    ]
    if not todo:
        logger.info("%s manifests in %s are up to date; preparation skipped.", dataset, save_folder)
        return {s: stored[s] for s in splits}
    if not os.path.isdir(data_folder):
        raise layout_error(dataset, data_folder, "an existing folder holding the dataset")
    durations = {}
    for split in todo:
        skip = SkipLog(split)
        rows, seen = [], set()
        for row in read_split(split, skip):
            utt_id = str(row.get("ID", "")).strip()
            if not utt_id:
                skip("<no id>", "empty_ID", row.get("wav", ""))
                continue
            if utt_id in seen:
                skip(utt_id, "duplicate_id", row.get("wav", ""))
                continue
            seen.add(utt_id)
            checked = _check_row(
                {**row, "ID": utt_id}, split, required, max_duration, skip, _probe(durations)
            )
            if checked is not None:
                rows.append(checked)
        skip.write(save_folder)
        if not rows:
            raise ValueError(
                f"{dataset} split {split!r} under {data_folder} has no usable row "
                f"({len(skip)} skipped: {skip.counts}; the reasons are in "
                f"{os.path.join(save_folder, split + '.skipped.tsv')})."
            )
        present = {k for row in rows for k, v in row.items() if v not in (None, "")}
        fields = [f for f in MANIFEST_FIELDS if f in present or f in ("ID", "duration", "wav")]
        extra = sorted(present - set(MANIFEST_FIELDS))
        if extra:
            raise ValueError(f"{dataset}: rows of {split} hold unknown manifest fields {extra}.")
        write_csv(
            manifest_path(save_folder, split),
            [{f: ("" if row.get(f) is None else row.get(f)) for f in fields} for row in rows],
            fields,
        )
        stored[split] = {
            "utterances": len(rows),
            "hours": round(sum(r["duration"] for r in rows) / 3600, 3),
            "skipped": skip.counts,
        }
        logger.info(
            "%s %s: %d rows (%.2f h) kept, %d skipped %s",
            dataset,
            split,
            len(rows),
            stored[split]["hours"],
            len(skip),
            skip.counts,
        )
    write_json(summary_file, stored)
    write_json(opts_file, settings)
    return {s: stored[s] for s in splits}


def prepare_cli(prepare, description, splits=None, options=(), argv=None):
    """The command line of a preparation script:
    ``<script> DATA_FOLDER SAVE_FOLDER SPLIT... [--max_duration S] [--<option> VALUE]``;
    prints the summary as JSON.

    Arguments
    ---------
    prepare : callable
        The dataset's prepare function.
    description : str
        The script's one-line description.
    splits : sequence of str, optional
        The valid split names (None: any, checked by ``prepare``).
    options : sequence of (str, str, str)
        Further ``--name`` string options as ``(name, default, help)``, passed to ``prepare``
        as keyword arguments.
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).
    """
    import argparse

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data_folder")
    parser.add_argument("save_folder")
    parser.add_argument("splits", nargs="+", metavar="split", choices=splits)
    parser.add_argument("--max_duration", type=float, default=None)
    for name, default, help_text in options:
        parser.add_argument(f"--{name}", default=default, help=help_text)
    args = vars(parser.parse_args(argv))
    summary = prepare(args.pop("data_folder"), args.pop("save_folder"), args.pop("splits"), **args)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary
