"""VoxPopuli English (transcribed data) preparation: SpeechBrain CSV manifests from the layout
written by the official VoxPopuli scripts (https://github.com/facebookresearch/voxpopuli).

Expected layout, as written by ``python -m voxpopuli.download_audios --root <data_folder>
--subset asr`` followed by ``python -m voxpopuli.get_asr_data --root <data_folder> --lang en``::

    <data_folder>/transcribed_data/en/asr_train.tsv
    <data_folder>/transcribed_data/en/asr_dev.tsv
    <data_folder>/transcribed_data/en/asr_test.tsv
    <data_folder>/transcribed_data/en/<year>/<id>.ogg      (<year> = the first 4 characters of <id>)

``data_folder`` may be the VoxPopuli root (holding ``transcribed_data/``), the
``transcribed_data`` folder, or ``transcribed_data/en`` itself.

Verified against ``voxpopuli/get_asr_data.py`` and the README of facebookresearch/voxpopuli:
each ``asr_<split>.tsv`` is tab-separated with the header ``id raw_text normalized_text
speaker_id split gender is_gold_transcript accent`` (older revisions of the script stop at
``gender``; only ``id``, ``raw_text``, ``normalized_text`` and ``speaker_id`` are read here). The
lines are written with a plain ``"\\t".join`` (no quoting), so they are read with
``csv.QUOTE_NONE``: quotes in transcripts are kept literally. ``id`` is
``<session_id>-<segment>`` and the segment audio is ``<year>/<id>.ogg`` with
``year = session_id[:4]`` (Ogg Vorbis, 16 kHz mono, read by soundfile).

Splits: ``train``, ``dev``, ``test`` (the SpeechMapper paper reports VoxPopuli WER/CER in its
Table 8 without naming the split; the recipes evaluate on ``test``).

Columns written (``<save_folder>/<split>.csv``): ``ID`` (the tsv ``id``), ``duration``, ``wav``
(absolute path of the ``.ogg``), ``spk_id`` (``speaker_id``), ``wrd`` (MMS-normalized transcript,
``speechmapper_plugin.utils.text.normalize_text``), ``transcript`` (the raw transcript: ``raw_text``,
or ``normalized_text`` when ``raw_text`` is empty; the number of such fallbacks is logged) and
``task`` (``asr``). Rows whose audio is missing or unreadable, whose transcript normalizes to
nothing, duplicate ids, malformed tsv lines, lines that are not UTF-8 and rows longer than ``max_duration`` are skipped,
counted and listed in ``<save_folder>/<split>.skipped.tsv``.

Usage::

    python recipes/VoxPopuli/voxpopuli_prepare.py /path/to/voxpopuli results/voxpopuli/manifests test

Authors
-------
speechmapper developers, 2026
"""

import csv
import logging
import os

from speechmapper_plugin.data.preparation import (
    corpus_rows,
    layout_error,
    prepare_cli,
    run_preparation,
)
from speechmapper_plugin.utils.text import normalize_text

logger = logging.getLogger(__name__)

DATASET = "VoxPopuli"
LANGUAGE = "en"
SPLITS = ("train", "dev", "test")
REQUIRED_COLUMNS = ("id", "raw_text", "normalized_text", "speaker_id")
EXPECTED_LAYOUT = (
    "<data_folder>/transcribed_data/en/asr_<split>.tsv (columns id, raw_text, normalized_text, "
    "speaker_id, split, gender, ...) and the segments "
    "<data_folder>/transcribed_data/en/<year>/<id>.ogg (data_folder may also be "
    "transcribed_data/ or transcribed_data/en/ itself)"
)
HINT = (
    "Get the data with the official scripts of https://github.com/facebookresearch/voxpopuli: "
    "`python -m voxpopuli.download_audios --root <data_folder> --subset asr` then "
    "`python -m voxpopuli.get_asr_data --root <data_folder> --lang en`."
)


def candidate_roots(data_folder):
    """Folders that may hold ``asr_<split>.tsv``, most specific layout first."""
    return [
        os.path.join(data_folder, "transcribed_data", LANGUAGE),
        os.path.join(data_folder, LANGUAGE),
        data_folder,
    ]


def find_root(data_folder, split):
    """The folder holding ``asr_<split>.tsv`` (raises ``layout_error`` when there is none)."""
    for root in candidate_roots(data_folder):
        if os.path.isfile(os.path.join(root, f"asr_{split}.tsv")):
            return root
    hint = HINT
    for root in candidate_roots(data_folder):
        if os.path.isfile(os.path.join(root, f"asr_{LANGUAGE}.tsv.gz")):
            hint = (
                f"{root} holds asr_{LANGUAGE}.tsv.gz but no asr_{split}.tsv: "
                "voxpopuli.get_asr_data did not finish (it writes the per-split manifests "
                "after segmenting the audio); run it again. " + HINT
            )
            break
    else:
        if os.path.isdir(os.path.join(data_folder, "raw_audios")):
            hint = "data_folder holds raw_audios/ only: the sessions are not segmented yet. " + HINT
    raise layout_error(DATASET, data_folder, f"asr_{split}.tsv in " + EXPECTED_LAYOUT, hint)


def read_split(data_folder, split, skip):
    """Candidate manifest rows of one split (see the module docstring)."""
    root = find_root(data_folder, split)
    tsv = os.path.join(root, f"asr_{split}.tsv")
    fallbacks = 0
    rows = corpus_rows(
        tsv,
        skip,
        REQUIRED_COLUMNS,
        "id",
        (DATASET, data_folder, EXPECTED_LAYOUT, HINT),
        delimiter="\t",
        quoting=csv.QUOTE_NONE,
    )
    for _, row in rows:
        utt_id = row["id"].strip()
        raw = row["raw_text"].strip()
        if not raw:
            raw = row["normalized_text"].strip()
            fallbacks += bool(raw)
        yield {
            "ID": utt_id,
            "wav": os.path.join(root, utt_id[:4], f"{utt_id}.ogg"),
            "spk_id": row["speaker_id"].strip(),
            "wrd": normalize_text(raw),
            "transcript": raw,
            "task": "asr",
        }
    if fallbacks:
        logger.info(
            "%s %s: %d rows have an empty raw_text; their normalized_text is used instead.",
            DATASET,
            split,
            fallbacks,
        )


def prepare_voxpopuli(data_folder, save_folder, splits, max_duration=None, skip_prep=False):
    """Write ``<save_folder>/<split>.csv`` for each VoxPopuli English split (nothing to do when
    the manifests are up to date).

    Arguments
    ---------
    data_folder : str
        VoxPopuli root (holding ``transcribed_data/en``), or ``transcribed_data`` /
        ``transcribed_data/en`` itself.
    save_folder : str
        Where the manifests, ``<split>.skipped.tsv`` and ``prepare_summary.json`` go.
    splits : list of str
        Among ``train``, ``dev``, ``test``.
    max_duration : float, optional
        Longer segments (seconds) are skipped and counted.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).

    Returns
    -------
    dict
        Per split: ``utterances``, ``hours``, ``skipped`` (reason -> count).
    """
    data_folder = os.path.abspath(data_folder)
    return run_preparation(
        DATASET,
        data_folder,
        save_folder,
        splits,
        lambda split, skip: read_split(data_folder, split, skip),
        required=["wrd"],
        max_duration=max_duration,
        skip_prep=skip_prep,
        valid_splits=SPLITS,
        options={"language": LANGUAGE},
    )


if __name__ == "__main__":
    prepare_cli(prepare_voxpopuli, __doc__.split("\n\n")[0], splits=SPLITS)
