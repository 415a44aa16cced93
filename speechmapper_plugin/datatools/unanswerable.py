"""Unanswerable SQA examples: a question paired with the audio and context of another passage,
answered with the localized "not answerable" string (IWSLT25 data tools).

The IWSLT25 instruction-following task is a *controlled* QA setting: a question the speech
does not answer must get a specific answer, in the question's language
(``prompts.UNANSWERABLE_ANSWERS``: "Not answerable." / "Nicht zu beantworten." / "Non è
possibile rispondere." / "无法回答。"). The system made such examples by swapping questions
across passages (talk, "Creating a multilingual SQA training data").

From an SQA manifest (one row per question; the questions of a passage share ``audio_id``):

1. a seeded draw picks ``count`` questions, or a ``fraction`` of them (rows whose answer is
   already a localized unanswerable string are not drawn);
2. each picked question visits at most ``max_tries`` other passages (another ``audio_id``) in
   an order seeded by the seed and its ID, and takes the first one whose ``context`` (and
   ``transcript``) contains none of its answers (case-insensitive): a passage that holds the
   answer would make the question answerable. Without such a passage the question is dropped
   (``no_other_passage`` or ``answer_in_tried_passages``);
3. the new row takes every column of the passage (audio, duration, transcript, context...) and
   the question's ``question`` and ``tgt_lang``; its ``tgt`` is the localized answer, its ID
   ``<ID>_unans``, its ``task`` ``sqa``.

The draw and the pairing depend only on the seed and the input, so a run is reproducible and
an interrupted one resumes (``resumable.ResumableJob``) to the same output. The output holds
the new rows, or with ``with_original`` the input rows followed by the new rows.

Authors
-------
speechmapper developers, 2026
"""

import argparse
import collections
import json
import logging
import os
import random

from speechmapper_plugin.data.manifests import read_manifest_rows, split_answers, write_csv
from speechmapper_plugin.data.prompts import UNANSWERABLE_ANSWERS
from speechmapper_plugin.datatools.resumable import ResumableJob
from speechmapper_plugin.utils.files import write_json

TOOL = "make_unanswerable"


#: Columns the SQA data tools read (besides ``ID``).
SQA_COLUMNS = ("question", "tgt", "tgt_lang", "context")


#: Passage text columns searched for a question's answers.
_PASSAGE_TEXT = ("context", "transcript")


def read_sqa_manifest(path, columns=SQA_COLUMNS):
    """An SQA manifest's rows and columns (``manifests.read_manifest_rows`` with the columns the
    SQA data tools need).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "sqa.csv")
    >>> write_csv(p, [{"ID": "q1", "question": "Who?", "tgt": "Ann", "tgt_lang": "en",
    ...                "context": "Ann came."}], ["ID", "question", "tgt", "tgt_lang", "context"])
    >>> rows, fields = read_sqa_manifest(p)
    >>> rows[0]["tgt"], fields[:2]
    ('Ann', ['ID', 'question'])
    """
    return read_manifest_rows(
        path,
        columns,
        hint="An SQA manifest from a preparation script (e.g. recipes/SpokenSQuAD) has them.",
    )


def _fold(text):
    return " ".join(str(text).casefold().split())


def contains_answer(text, answers):
    """Whether ``text`` contains one of ``answers`` (case- and whitespace-insensitive).

    Example
    -------
    >>> contains_answer("The tower was built in  1889.", ["Eiffel", "In 1889"])
    True
    >>> contains_answer("The tower was built in 1889.", ["1890"])
    False
    """
    folded = _fold(text)
    return any(_fold(answer) in folded for answer in answers if _fold(answer))


def is_unanswerable(answer):
    """Whether ``answer`` is one of the localized unanswerable answers.

    Example
    -------
    >>> is_unanswerable(" 无法回答。"), is_unanswerable("Paris")
    (True, False)
    """
    return str(answer).strip() in UNANSWERABLE_ANSWERS.values()


def unanswerable_answer(lang, row_id="?"):
    """The localized unanswerable answer of a question in ``lang``.

    Arguments
    ---------
    lang : str
        The row's ``tgt_lang``.
    row_id : str
        The row's ID (for the error message).

    Example
    -------
    >>> unanswerable_answer("de")
    'Nicht zu beantworten.'
    """
    if lang not in UNANSWERABLE_ANSWERS:
        raise ValueError(
            f"Row {row_id!r}: tgt_lang {lang!r} has no localized unanswerable answer; "
            f"supported languages: {sorted(UNANSWERABLE_ANSWERS)} "
            "(prompts.UNANSWERABLE_ANSWERS)."
        )
    return UNANSWERABLE_ANSWERS[lang]


def _audio_id(row):
    return row.get("audio_id") or row["ID"]


def select_questions(rows, fraction=None, count=None, seed=0):
    """The questions that get an unanswerable copy: a seeded draw, returned in input order.

    Rows whose answer already is a localized unanswerable string are never drawn.

    Arguments
    ---------
    rows : list of dict
        The manifest rows.
    fraction : float, optional
        Share of the (answerable) questions to draw, in (0, 1].
    count : int, optional
        Number of questions to draw (instead of ``fraction``).
    seed : int
        Seed of the draw.

    Returns
    -------
    list of dict
        The drawn rows.

    Example
    -------
    >>> rows = [{"ID": f"q{i}", "tgt": "x"} for i in range(6)] + [{"ID": "u", "tgt": "无法回答。"}]
    >>> [r["ID"] for r in select_questions(rows, fraction=0.5, seed=1)]
    ['q0', 'q1', 'q4']
    >>> select_questions(rows, count=3, seed=1) == select_questions(rows, fraction=0.5, seed=1)
    True
    """
    pool = [r for r in rows if not is_unanswerable(r["tgt"])]
    if (fraction is None) == (count is None):
        raise ValueError("Give either a fraction or a count of questions, not both or none.")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
        count = round(fraction * len(pool))
    if not 1 <= count <= len(pool):
        raise ValueError(
            f"Cannot draw {count} question(s) out of {len(pool)} answerable ones "
            f"({len(rows) - len(pool)} rows are already unanswerable): use a count in "
            f"[1, {len(pool)}] or a larger fraction."
        )
    picked = sorted(random.Random(seed).sample(range(len(pool)), count))
    return [pool[i] for i in picked]


def pair_question(row, passages, seed=0, max_tries=10):
    """Another passage for a question, whose text does not contain the question's answers.

    Arguments
    ---------
    row : dict
        The question's row (``ID``, ``tgt``, ``audio_id``).
    passages : dict
        ``audio_id`` -> a row of that passage (its audio and text columns).
    seed : int
        With the row's ID, seeds the order in which other passages are tried.
    max_tries : int
        Number of other passages tried at most.

    Returns
    -------
    passage : dict or None
        The chosen passage's row, None when no tried passage fits.
    reason : str
        ``""``, ``"no_other_passage"`` or ``"answer_in_tried_passages"``.
    detail : str
        What was tried (for the dropped list).

    Example
    -------
    >>> passages = {"p1": {"context": "Ann came."}, "p2": {"context": "Ann left."},
    ...             "p3": {"context": "Bob left."}}
    >>> passage, reason, _ = pair_question({"ID": "q1", "tgt": "Ann", "audio_id": "p1"}, passages)
    >>> passage, reason
    ({'context': 'Bob left.'}, '')
    """
    if max_tries < 1:
        raise ValueError(f"max_tries must be >= 1, got {max_tries}.")
    own = _audio_id(row)
    others = [audio_id for audio_id in passages if audio_id != own]
    if not others:
        return None, "no_other_passage", "the manifest has a single passage"
    answers = split_answers(row["tgt"])
    tried = random.Random(f"{seed}|{row['ID']}").sample(others, min(max_tries, len(others)))
    for audio_id in tried:
        passage = passages[audio_id]
        texts = [passage[c] for c in _PASSAGE_TEXT if c in passage]
        if not any(contains_answer(text, answers) for text in texts):
            return passage, "", audio_id
    return None, "answer_in_tried_passages", f"tried {len(tried)}: {', '.join(tried)}"


def make_unanswerable(
    input,
    output,
    fraction=None,
    count=None,
    seed=0,
    max_tries=10,
    with_original=False,
    suffix="_unans",
):
    """Write unanswerable SQA rows made from ``input`` to ``output`` (resumable).

    Arguments
    ---------
    input : str
        SQA manifest (``question``, ``tgt``, ``tgt_lang``, ``context``; ``audio_id`` groups
        the questions of a passage, a row without it is its own passage).
    output : str
        Output manifest; ``<output stem>.report.json`` and ``.dropped.tsv`` go beside it.
    fraction, count : float, int
        How many questions get an unanswerable copy (see :func:`select_questions`).
    seed : int
        Seed of the draw and of the pairing.
    max_tries : int
        Other passages tried per question before it is dropped.
    with_original : bool
        Write the input rows, then the new rows (otherwise the new rows only).
    suffix : str
        Appended to a question's ID to make the new row's ID.

    Returns
    -------
    dict
        The report (kept, dropped by reason, output rows...).

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> rows = [{"ID": "q1", "audio_id": "p1", "question": "Who came?", "tgt": "Ann",
    ...          "tgt_lang": "en", "context": "Ann came.", "task": "sqa"},
    ...         {"ID": "q2", "audio_id": "p2", "question": "Wer ging?", "tgt": "Bob",
    ...          "tgt_lang": "de", "context": "Bob ging.", "task": "sqa"}]
    >>> write_csv(os.path.join(folder, "in.csv"), rows, list(rows[0]))
    >>> report = make_unanswerable(os.path.join(folder, "in.csv"),
    ...                            os.path.join(folder, "out.csv"), fraction=1.0)
    >>> report["kept"], report["dropped"]
    (2, {})
    >>> out, _ = read_sqa_manifest(os.path.join(folder, "out.csv"))
    >>> [(r["ID"], r["audio_id"], r["tgt"]) for r in out]
    [('q1_unans', 'p2', 'Not answerable.'), ('q2_unans', 'p1', 'Nicht zu beantworten.')]
    """
    rows, fieldnames = read_sqa_manifest(input)
    for row in rows:  # every question must have a localized answer, drawn or not
        unanswerable_answer(row["tgt_lang"], row["ID"])
    if not suffix:
        raise ValueError("The ID suffix of the unanswerable rows must not be empty.")
    selected = select_questions(rows, fraction=fraction, count=count, seed=seed)
    ids = {row["ID"] for row in rows}
    clashes = [row["ID"] + suffix for row in selected if row["ID"] + suffix in ids]
    if clashes:
        raise ValueError(
            f"{input} already holds the ID(s) {clashes[:3]} the new rows would get (is it an "
            f"output of {TOOL}?): pass another suffix, or the manifest without them."
        )
    passages = collections.OrderedDict()
    for row in rows:
        passages.setdefault(_audio_id(row), row)
    settings = {
        "input": os.path.abspath(input),
        "fraction": fraction,
        "count": count,
        "seed": seed,
        "max_tries": max_tries,
        "with_original": with_original,
        "suffix": suffix,
    }
    job = ResumableJob(output, TOOL, settings)
    for row in job.pending(selected):
        passage, reason, detail = pair_question(row, passages, seed=seed, max_tries=max_tries)
        if passage is None:
            job.drop(row["ID"], reason, detail)
            continue
        new = dict(passage)
        new.update(
            ID=row["ID"] + suffix,
            question=row["question"],
            tgt=unanswerable_answer(row["tgt_lang"], row["ID"]),
            tgt_lang=row["tgt_lang"],
        )
        if "task" in new:
            new["task"] = "sqa"
        job.keep(row["ID"], [new])
    report = job.finish(fieldnames, input_items=len(selected))
    if with_original:
        new_rows = [r for d in job.decisions.values() for r in d.get("rows", ())]
        write_csv(output, rows + new_rows, fieldnames)
        report.update(original_rows=len(rows), output_rows=len(rows) + len(new_rows))
        write_json(job.report_path, report)
    return report


def main(argv=None):
    """Command line: ``python recipes/IWSLT25/tools/make_unanswerable.py --help``."""
    parser = argparse.ArgumentParser(
        description="Make unanswerable SQA rows by pairing questions with other passages; "
        "the answer is the localized 'not answerable' string of the question's language."
    )
    parser.add_argument("--input", required=True, help="SQA manifest (CSV)")
    parser.add_argument("--output", required=True, help="output manifest (CSV)")
    how_many = parser.add_mutually_exclusive_group(required=True)
    how_many.add_argument("--fraction", type=float, help="share of the questions, in (0, 1]")
    how_many.add_argument("--count", type=int, help="number of questions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw and pairing")
    parser.add_argument(
        "--max-tries", type=int, default=10, help="other passages tried per question"
    )
    parser.add_argument(
        "--with-original",
        action="store_true",
        help="write the input rows followed by the new rows",
    )
    parser.add_argument("--suffix", default="_unans", help="ID suffix of the new rows")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = make_unanswerable(
        args.input,
        args.output,
        fraction=args.fraction,
        count=args.count,
        seed=args.seed,
        max_tries=args.max_tries,
        with_original=args.with_original,
        suffix=args.suffix,
    )
    print(json.dumps({k: report[k] for k in ("kept", "dropped", "output_rows")}))
    return report
