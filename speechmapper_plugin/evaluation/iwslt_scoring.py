"""The IWSLT 2025 instruction-following (short track) official scoring, next to the team's own
metrics: talk-level WER, COMET after re-segmentation, BERTScore for SQA.

The organizers score ACL 60/60 and the SQA test sets as follows (their
``instruction_following/evaluation.py`` in ``hlt-mt/mcif``); this module reproduces that
protocol with the project's readers and scorers:

- **ASR** (:func:`talk_wer`): each segment hypothesis is normalized with Whisper's
  ``EnglishTextNormalizer`` (``BasicTextNormalizer`` for other languages) with the rules of
  the organizers' pinned ``whisper_normalizer==0.0.10`` (OpenAI's, ``evaluation.normalizers``:
  no rewriting of "kinda", "dunno", "'cause"...), the normalized segments of a talk are
  joined with spaces and compared with the normalized talk-level reference; ``jiwer`` WER
  over the list of talks (errors of all talks / words of all talks).
- **ST** (:func:`resegment`, :func:`st_comet`): the hypotheses of a talk are concatenated and
  re-segmented onto the talk's reference sentences by minimum-WER alignment (the organizers
  ran the ``mwerSegmenter`` binary with ``-usecase 1``; here the ``mweralign`` package, the
  same algorithm as a library, made case-sensitive); for Chinese (``CHAR_LEVEL_LANGS``) at
  character level (characters space-joined before the alignment, spaces removed after). A
  talk without any output is aligned as "." (the organizers' rule since July 2025). Each
  re-segmented hypothesis is scored with COMET ``wmt22-comet-da`` against its reference
  sentence, the source being the English transcript sentence; the system score is the mean
  (x100 here).
- **SQA** (:func:`bertscore_f1`): ``bert_score.score(hyps, refs, lang=...,
  rescale_with_baseline=True)``, mean F1 (x100 here), with ``bert_score``'s default model of
  the language (``roberta-large`` for English, ``bert-base-chinese`` for Chinese,
  ``bert-base-multilingual-cased`` for the others) unless another model is given.
- **References**: every segment of the talks, as in the organizers' reference files: the
  ACL 60/60 preparation writes ``<split>.references.csv`` (all segments, those it left out of
  the manifest included) and the command line scores against it, so a segment the system
  did not decode (or the preparation skipped) counts as an empty hypothesis. Without that
  file (manifests of another preparation) the manifest's segments are the references, and a
  warning says so.

Remaining differences with the organizers' script: several SQA reference answers (joined
with ``manifests.ANSWER_SEPARATOR``) are scored as multiple references (best F1), the
organizers have one; a missing segment counts as an empty hypothesis (the organizers' script
fails on it), counted and logged; whitespace inside a Chinese hypothesis is dropped before
the character-level alignment (the organizers' space removal has the same effect on the
output); COMET runs with batch size 16 (theirs 8; no effect on the scores) and
``unbabel-comet`` 2.2.7 (theirs 2.2.4); jiwer 4 (theirs 3.0.5; the same corpus WER); the
reference and source sentences are the manifest's (``tgt``, ``transcript``), which the
preparation reads from the release's XML files.

Units follow the result schema: ``official_wer`` in percent, ``official_comet`` and
``bertscore_f1`` x100.

Command line (ASR/ST results are grouped by talk with the manifests the ACL 60/60 recipe wrote;
the metrics are added to each result file, atomically, or written to ``--output_folder``)::

    python -m speechmapper_plugin.evaluation.iwslt_scoring results/eval/ --manifest_folder \\
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

from speechmapper_plugin.data.manifests import manifest_path, read_manifest_rows
from speechmapper_plugin.evaluation.bertscore import bertscore_f1
from speechmapper_plugin.evaluation.comet import (
    DEFAULT_COMET_MODEL,
)
from speechmapper_plugin.evaluation.results import _json_files, validate_result, write_result
from speechmapper_plugin.evaluation.talk_metrics import st_comet, talk_wer
from speechmapper_plugin.utils.files import write_json

logger = logging.getLogger(__name__)


#: Metric names written into the results (see ``report``).
METRIC_OF_TASK = {"asr": "official_wer", "st": "official_comet", "sqa": "bertscore_f1"}


def references_path(folder, split):
    """Where a preparation lists every reference segment of a split's talks, skipped ones
    included: ``<folder>/<split>.references.csv`` (recipes/ACL6060 writes it).

    Example
    -------
    >>> references_path("results/acl6060/manifests", "eval_en-de")
    'results/acl6060/manifests/eval_en-de.references.csv'
    """
    return os.path.join(folder, f"{split}.references.csv")


def manifest_rows(path):
    """The rows of a test set's manifest (dicts with ``ID``), in file order.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.data.manifests import write_csv
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
    >>> from speechmapper_plugin.evaluation.results import make_result
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
    >>> from speechmapper_plugin.evaluation.results import make_result
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


class _Rows(list):
    """Manifest rows that know which file they come from."""

    source = None


def _reference_rows(folder, split):
    """Every reference segment of a split (``<split>.references.csv``), else its manifest."""
    path = references_path(folder, split)
    if not os.path.isfile(path):
        path = manifest_path(folder, split)
        logger.warning(
            "%s has no %s: the segments of %s are the references, so segments the "
            "preparation left out are not scored (the organizers score every segment of the "
            "talks; prepare the manifests with recipes/ACL6060/acl6060_prepare.py).",
            folder,
            os.path.basename(references_path(folder, split)),
            os.path.basename(path),
        )
    rows = _Rows(manifest_rows(path))
    rows.source = os.path.basename(path)
    return rows


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m speechmapper_plugin.evaluation.iwslt_scoring",
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
                rows = _reference_rows(args.manifest_folder, result["split"])
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
            if rows is not None:
                details["references"] = rows.source
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
