"""Fluent SQA answers: extractive answers rewritten into sentences by an LLM, then filtered by
language ID (IWSLT25 data tools, the *fluent* SQA variant).

The talk ("Creating a multilingual SQA training data") rewrote the extractive (slot) answers
with Llama followed by language identification, because "slot-based SQA is not the task we want
to learn". For each row of an SQA manifest, the LLM gets ``prompts.FLUENT_ANSWER_PROMPT`` (the
project's wording; the papers do not print theirs) filled with the question, its first
extractive answer and the English name of the row's ``tgt_lang`` (the question's language),
and its reply (whitespace collapsed) is

- dropped as ``empty`` when nothing is left;
- dropped as ``lid_mismatch`` when langdetect (``metrics.language_id``, seeded) does not
  identify it as ``tgt_lang`` (detail: the detected language, ``unknown`` when langdetect finds
  no letter);
- dropped as ``answer_lost`` when it contains none of the row's extractive answers
  (case-insensitive): the rewrite must restate the answer, not replace it (e.g. by a wrong
  entity or a paraphrase of a number). This check is the project's addition and can be turned
  off (``check_answer=False``, ``--no-answer-check``);
- otherwise kept, with ``tgt`` replaced by the rewrite.

Rows whose answer is a localized unanswerable string (``prompts.UNANSWERABLE_ANSWERS``) are
kept unchanged, without generation; a row without any answer is dropped as ``no_answer``.
The output has the input's columns: the manifest contract (``preparation.MANIFEST_FIELDS``)
has no column for a second answer, so the extractive answers stay in the input manifest (same
IDs).

Generation is batched, and the decisions of each batch are logged before the next one
(``resumable.ResumableJob``): an interrupted run resumes without regenerating what it decided.

Authors
-------
speechmapper developers, 2026
"""

import argparse
import json
import logging
import os

from speechmapper_plugin.data.manifests import split_answers
from speechmapper_plugin.data.prompts import FLUENT_ANSWER_PROMPT, LANGUAGE_NAMES
from speechmapper_plugin.datatools.resumable import ResumableJob
from speechmapper_plugin.datatools.unanswerable import (
    contains_answer,
    is_unanswerable,
    read_sqa_manifest,
)
from speechmapper_plugin.evaluation.metrics import language_id

logger = logging.getLogger(__name__)


TOOL = "fluent_answers"


_FIELDS = ("{language}", "{question}", "{answer}")


def _check_language(row):
    lang = row["tgt_lang"]
    if lang not in LANGUAGE_NAMES:
        raise ValueError(
            f"Row {row['ID']!r}: tgt_lang {lang!r} is not a supported answer language; "
            f"supported: {sorted(LANGUAGE_NAMES)} (prompts.LANGUAGE_NAMES)."
        )
    return lang


def _check_template(template):
    missing = [field for field in _FIELDS if field not in template]
    if missing:
        raise ValueError(f"The fluent-answer template lacks {missing}: {template!r}")


def fluent_prompt(row, template=FLUENT_ANSWER_PROMPT):
    """The rewriting prompt of a row: its question, first answer and language name.

    Arguments
    ---------
    row : dict
        Manifest row (``ID``, ``question``, ``tgt``, ``tgt_lang``; ``context`` when the
        template asks for it).
    template : str
        Holds ``{language}``, ``{question}`` and ``{answer}``, optionally ``{context}``.

    Returns
    -------
    str
        The user prompt.

    Example
    -------
    >>> row = {"ID": "q1", "question": "Wann?", "tgt": "1889 ||| im Jahr 1889", "tgt_lang": "de"}
    >>> print(fluent_prompt(row, "{language}: {question} -> {answer}"))
    German: Wann? -> 1889
    """
    _check_template(template)
    answers = split_answers(row["tgt"])
    if not answers:
        raise ValueError(f"Row {row['ID']!r} has no answer to rewrite.")
    return (
        template.replace("{language}", LANGUAGE_NAMES[_check_language(row)])
        .replace("{question}", str(row["question"]).strip())
        .replace("{answer}", answers[0])
        .replace("{context}", str(row.get("context", "")).strip())
    )


def detect_language(text, expected, seed=0):
    """The language langdetect (``metrics.language_id``, seeded) finds in ``text``.

    Example
    -------
    >>> detect_language("Der Eiffelturm wurde im Jahr 1889 gebaut.", "de")
    'de'
    """
    return next(iter(language_id([text], expected, seed=seed)["counts"]))


def check_rewrite(rewrite, row, check_answer=True, lid_seed=0):
    """Why a rewrite is dropped: ``(reason, detail)``, or None when it is kept.

    Arguments
    ---------
    rewrite : str
        The LLM's reply, whitespace collapsed.
    row : dict
        The manifest row (``tgt``, ``tgt_lang``).
    check_answer : bool
        Drop a rewrite that contains none of the extractive answers (``answer_lost``).
    lid_seed : int
        langdetect's seed.

    Example
    -------
    >>> row = {"ID": "q1", "tgt": "1889", "tgt_lang": "de"}
    >>> check_rewrite("Der Eiffelturm wurde im Jahr 1889 gebaut.", row) is None
    True
    >>> check_rewrite("The Eiffel Tower was built in 1889.", row)
    ('lid_mismatch', 'en')
    >>> check_rewrite("Der Eiffelturm wurde im neunzehnten Jahrhundert gebaut.", row)
    ('answer_lost', '1889')
    """
    if not rewrite:
        return "empty", ""
    detected = detect_language(rewrite, row["tgt_lang"], seed=lid_seed)
    if detected != row["tgt_lang"]:
        return "lid_mismatch", detected
    answers = split_answers(row["tgt"])
    if check_answer and not contains_answer(rewrite, answers):
        return "answer_lost", " | ".join(answers)
    return None


def _needs_rewrite(row):
    return not is_unanswerable(row["tgt"]) and bool(split_answers(row["tgt"]))


def _decide_chunk(job, chunk, generate, template, check_answer, lid_seed):
    """Generate the rewrites of a chunk of rows in one call, then decide each row in order."""
    batch = [row for row in chunk if _needs_rewrite(row)]
    replies = list(generate([fluent_prompt(row, template) for row in batch])) if batch else []
    if len(replies) != len(batch):
        raise RuntimeError(
            f"The generator returned {len(replies)} replies for {len(batch)} prompts."
        )
    rewrites = {row["ID"]: " ".join(str(reply).split()) for row, reply in zip(batch, replies)}
    for row in chunk:
        if is_unanswerable(row["tgt"]):
            job.keep(row["ID"], [row])
        elif row["ID"] not in rewrites:
            job.drop(row["ID"], "no_answer", "empty tgt")
        else:
            rewrite = rewrites[row["ID"]]
            verdict = check_rewrite(rewrite, row, check_answer=check_answer, lid_seed=lid_seed)
            if verdict is None:
                job.keep(row["ID"], [dict(row, tgt=rewrite)])
            else:
                job.drop(row["ID"], *verdict)
    return len(batch)


def fluent_answers(
    input,
    output,
    generate,
    *,
    template=FLUENT_ANSWER_PROMPT,
    batch_size=8,
    check_answer=True,
    lid_seed=0,
    generator_settings=None,
):
    """Rewrite the answers of an SQA manifest into fluent sentences and filter them (resumable).

    Arguments
    ---------
    input : str
        SQA manifest (``question``, ``tgt``, ``tgt_lang``, ``context``).
    output : str
        Output manifest; ``<output stem>.report.json`` and ``.dropped.tsv`` go beside it.
    generate : callable
        ``generate(prompts) -> replies`` (one reply per prompt), e.g. a ``FrozenLLM``'s
        ``generate_text``.
    template : str
        The rewriting prompt (see :func:`fluent_prompt`).
    batch_size : int
        Prompts per ``generate`` call; the decisions are logged after each call.
    check_answer : bool
        Drop rewrites that lost the extractive answer (``answer_lost``).
    lid_seed : int
        langdetect's seed.
    generator_settings : dict, optional
        What determines the replies (model, dtype, max new tokens), recorded in the report;
        resuming with other settings is refused.

    Returns
    -------
    dict
        The report (kept, dropped by reason, output rows...).

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.data.manifests import write_csv
    >>> folder = tempfile.mkdtemp()
    >>> rows = [{"ID": "q1", "question": "When was it built?", "tgt": "1889", "tgt_lang": "en",
    ...          "context": "It was built in 1889."},
    ...         {"ID": "q2", "question": "Wo?", "tgt": "Nicht zu beantworten.", "tgt_lang": "de",
    ...          "context": "Es regnet."}]
    >>> write_csv(os.path.join(folder, "in.csv"), rows, list(rows[0]))
    >>> scripted = lambda prompts: ["The tower was built in the year 1889."] * len(prompts)
    >>> report = fluent_answers(os.path.join(folder, "in.csv"), os.path.join(folder, "out.csv"),
    ...                         scripted)
    >>> report["kept"], report["dropped"]
    (2, {})
    >>> [r["tgt"] for r in read_sqa_manifest(os.path.join(folder, "out.csv"))[0]]
    ['The tower was built in the year 1889.', 'Nicht zu beantworten.']
    """
    rows, fieldnames = read_sqa_manifest(input)
    for row in rows:
        _check_language(row)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    _check_template(template)
    settings = {
        "input": os.path.abspath(input),
        "template": template,
        "check_answer": check_answer,
        "lid_seed": lid_seed,
        **(generator_settings or {}),
    }
    job = ResumableJob(output, TOOL, settings)
    pending = list(job.pending(rows))
    todo = sum(_needs_rewrite(row) for row in pending)
    logger.info("%s: %d rows to decide, %d answers to rewrite", TOOL, len(pending), todo)
    chunk, needed, done = [], 0, 0
    for position, row in enumerate(pending):  # decided in input order, batch by batch
        chunk.append(row)
        needed += _needs_rewrite(row)
        if needed == batch_size or position == len(pending) - 1:
            done += _decide_chunk(job, chunk, generate, template, check_answer, lid_seed)
            chunk, needed = [], 0
            logger.info("%s: %d / %d rewritten", TOOL, done, todo)
    return job.finish(fieldnames, input_items=len(rows))


def main(argv=None):
    """Command line: ``python recipes/IWSLT25/tools/fluent_answers.py --help``."""
    parser = argparse.ArgumentParser(
        description="Rewrite extractive SQA answers into fluent sentences with an LLM, then "
        "drop rewrites in another language (language ID) or without the answer."
    )
    parser.add_argument("--input", required=True, help="SQA manifest (CSV)")
    parser.add_argument("--output", required=True, help="output manifest (CSV)")
    parser.add_argument(
        "--model",
        default="meta-llama/Llama-3.1-8B-Instruct",
        help="LLM hub id or local folder (default: %(default)s)",
    )
    parser.add_argument("--dtype", default="bfloat16", help="bfloat16, float16, float32, auto")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: CUDA if any)")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per generate call")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="reply length limit")
    parser.add_argument(
        "--no-answer-check",
        action="store_true",
        help="keep rewrites that no longer contain the extractive answer",
    )
    parser.add_argument("--lid-seed", type=int, default=0, help="langdetect's seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from speechmapper_plugin.models.frozen_llm import FrozenLLM

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    llm = FrozenLLM(args.model, dtype=args.dtype, device=device)

    def generate(prompts):
        return llm.generate_text(
            prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
        )

    report = fluent_answers(
        args.input,
        args.output,
        generate,
        batch_size=args.batch_size,
        check_answer=not args.no_answer_check,
        lid_seed=args.lid_seed,
        generator_settings={
            "model": args.model,
            "dtype": args.dtype,
            "max_new_tokens": args.max_new_tokens,
        },
    )
    print(json.dumps({k: report[k] for k in ("kept", "dropped", "output_rows")}))
    return report
