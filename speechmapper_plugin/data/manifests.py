"""Manifests: CSV files with one row per utterance or segment, written atomically
(``write_csv``), read verbatim (``read_manifest``: no ``$variable`` substitution) and checked
for their columns; answer lists and the extraction items of a manifest.

Authors
-------
speechmapper developers, 2026
"""

import csv
import io
import os

from speechmapper_plugin.utils.files import atomic_write_text
from speechmapper_plugin.utils.textfiles import delimited_rows


def write_csv(path, rows, fieldnames):
    """Write a SpeechBrain CSV manifest atomically (tmp file + rename).

    Arguments
    ---------
    path : str
        Destination file.
    rows : list of dict
        One dict per utterance; must hold every field of ``fieldnames``.
    fieldnames : list of str
        Column order; the first must be ``ID``.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.csv")
    >>> write_csv(p, [{"ID": "a", "duration": 1.5}], ["ID", "duration"])
    >>> open(p).read().splitlines()
    ['ID,duration', 'a,1.5']
    """
    if not fieldnames or fieldnames[0] != "ID":
        raise ValueError(f"write_csv: the first column must be 'ID', got {fieldnames}.")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in fieldnames})
    atomic_write_text(path, buffer.getvalue())


def read_manifest(path, required=(), nonempty=()):
    """Read a manifest written by ``write_csv``: ``{ID: row}``, with ``duration`` as a float.

    Unlike SpeechBrain's ``load_data_csv``, text is read verbatim: no ``$variable``
    substitution (a transcript such as "It costs $5." is data, not a variable) and no
    stripping of leading spaces.

    Arguments
    ---------
    path : str
        The manifest.
    required : sequence of str
        Columns that must be present (besides ``ID``).
    nonempty : sequence of str
        Columns that must be present and hold a non-blank value in every row (e.g. the
        transcript a model is trained on).

    Raises
    ------
    ValueError
        No ``ID`` column, a repeated ID, a row with another number of fields than the header,
        a ``duration`` that is not a number, an empty ``nonempty`` value, or a line that is
        not UTF-8 (``utils.textfiles.TextEncodingError``); the message names the file and
        the line.
    KeyError
        A ``required`` or ``nonempty`` column is missing (the message names the file, the
        columns and those it has).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> write_csv(p, [{"ID": "a", "duration": 1.5, "wrd": "It costs $5, not $ 6."}],
    ...           ["ID", "duration", "wrd"])
    >>> read_manifest(p)
    {'a': {'duration': 1.5, 'wrd': 'It costs $5, not $ 6.'}}
    >>> read_manifest(p, required=["wav"])
    Traceback (most recent call last):
    ...
    KeyError: "Manifest ... has no column 'wav' (it has ['ID', 'duration', 'wrd']): re-run the dataset's prepare script, or add the column."
    """
    rows = {}
    reader = delimited_rows(path)
    _, header = next(reader, (1, []))
    if "ID" not in header:
        raise ValueError(f"Manifest {path} has no ID column (columns: {header or None}).")
    missing = [c for c in (*required, *nonempty) if c not in header]
    if missing:
        what = f"column {missing[0]!r}" if len(missing) == 1 else f"columns {missing}"
        raise KeyError(
            f"Manifest {path} has no {what} (it has {header}): re-run the dataset's prepare "
            "script, or add the column."
        )
    for line, fields in reader:
        if not fields:
            continue  # blank line
        if len(fields) != len(header):
            raise ValueError(
                f"Manifest {path} line {line}: {len(fields)} fields, the header has "
                f"{len(header)} ({header})."
            )
        row = dict(zip(header, fields))
        utt_id = row.pop("ID")
        if utt_id in rows:
            raise ValueError(f"Manifest {path} line {line}: repeated ID {utt_id!r}.")
        if "duration" in row:
            try:
                row["duration"] = float(row["duration"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"Manifest {path} line {line} ({utt_id}): duration "
                    f"{row['duration']!r} is not a number."
                ) from None
        for column in nonempty:
            if not row[column].strip():
                raise ValueError(
                    f"Manifest {path} line {line} ({utt_id}): empty {column!r}; every row "
                    f"needs one (fill it in or remove the row)."
                )
        rows[utt_id] = row
    return rows


def read_manifest_rows(path, columns=(), hint=""):
    """A manifest as the data tools rewrite it: its rows (dicts with ``ID``, file order) and
    its columns (``ID`` first); read verbatim like ``read_manifest``.

    Arguments
    ---------
    path : str
        The manifest.
    columns : sequence of str
        Columns that must be present.
    hint : str
        What to do when some are missing (appended to the error).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The manifest holds no row.
    KeyError
        Columns are missing (the message names them, the file and its columns).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "sqa.csv")
    >>> write_csv(p, [{"ID": "q1", "question": "Who?", "tgt": "Ann"}], ["ID", "question", "tgt"])
    >>> read_manifest_rows(p, ["question"])
    ([{'ID': 'q1', 'question': 'Who?', 'tgt': 'Ann'}], ['ID', 'question', 'tgt'])
    >>> read_manifest_rows(p, ["context"], hint="An SQA manifest has it.")
    Traceback (most recent call last):
    ...
    KeyError: "Manifest ... lacks the column(s) ['context'] (it has ['ID', 'question', 'tgt']). An SQA manifest has it."
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Input manifest {path} does not exist.")
    data = read_manifest(path)
    if not data:
        raise ValueError(f"Manifest {path} holds no row.")
    first = next(iter(data.values()))
    fieldnames = ["ID", *first]
    missing = [c for c in columns if c not in first]
    if missing:
        raise KeyError(
            f"Manifest {path} lacks the column(s) {missing} (it has {fieldnames}). {hint}".rstrip()
        )
    return [{"ID": utt_id, **row} for utt_id, row in data.items()], fieldnames


def split_answers(tgt):
    """The non-empty answers of a ``tgt`` field (joined by ``ANSWER_SEPARATOR``).

    Example
    -------
    >>> split_answers("1889 ||| in 1889 ||| ")
    ['1889', 'in 1889']
    """
    return [a.strip() for a in str(tgt).split(ANSWER_SEPARATOR.strip()) if a.strip()]


def manifest_path(folder, split):
    """Path of a split's manifest: ``<folder>/<split>.csv``."""
    return os.path.join(folder, f"{split}.csv")


def extraction_items(csv_path):
    """What feature extraction reads from a manifest: ``(audio_id, wav)`` per audio, or
    ``(audio_id, wav, start, stop)`` for segments; rows sharing an ``audio_id`` (SQA questions
    on one passage) give one item. A manifest without a ``wav`` column, or a row with an empty
    one, is a ``KeyError`` / ``ValueError`` naming the file (and line).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> write_csv(p, [{"ID": "q1", "wav": "a.wav", "audio_id": "p1"},
    ...               {"ID": "q2", "wav": "a.wav", "audio_id": "p1"}], ["ID", "wav", "audio_id"])
    >>> extraction_items(p)
    [('p1', 'a.wav')]
    """
    items, seen = [], set()
    for utt_id, row in read_manifest(csv_path, nonempty=["wav"]).items():
        key = row.get("audio_id") or utt_id
        if key in seen:
            continue
        seen.add(key)
        if row.get("start", "") != "" and row.get("stop", "") != "":
            items.append((key, row["wav"], float(row["start"]), float(row["stop"])))
        else:
            items.append((key, row["wav"]))
    return items


#: Manifest columns an evaluation reads (besides ``ID`` and ``wav``): ``wrd`` the normalized
#: source transcript, ``transcript`` the raw one (COMET source, topline input; defaults to
#: ``wrd``), ``tgt`` the task's reference (translation, answer; the transcript for ASR;
#: several SQA answers separated by ``ANSWER_SEPARATOR``), ``tgt_lang``, ``question``, ``context``.
EVAL_FIELDS = ("wrd", "transcript", "tgt", "tgt_lang", "question", "context")


ANSWER_SEPARATOR = " ||| "
