"""Common Voice English preparation: SpeechBrain CSV manifests from the official Common Voice
release layout (Mozilla Common Voice 17.0, the version of the SpeechMapper paper, Table 8).

Expected layout (the official ``cv-corpus-17.0-2024-03-15-en.tar.gz`` unpacked; the same tree is
in the ``mozilla-foundation/common_voice_17_0`` release)::

    <data_folder>/cv-corpus-17.0-2024-03-15/en/train.tsv
    <data_folder>/cv-corpus-17.0-2024-03-15/en/dev.tsv
    <data_folder>/cv-corpus-17.0-2024-03-15/en/test.tsv
    <data_folder>/cv-corpus-17.0-2024-03-15/en/clips/common_voice_en_<n>.mp3

``data_folder`` may be the folder the tarball was unpacked in (as above), the
``cv-corpus-17.0-*`` folder, or its ``en`` folder.

Verified: the tsv files are tab-separated with a header; in 17.0 the columns are ``client_id
path sentence_id sentence sentence_domain up_votes down_votes age gender accents variant locale
segment`` (older releases lack ``sentence_id``/``sentence_domain``/``variant``; only
``client_id``, ``path`` and ``sentence`` are read here, by name). ``path`` is the clip file name
in ``clips/``. Sentences contain literal, sometimes unbalanced, double quotes: the release
tsv files are written without quoting (common-voice/CorporaCreator issue #61) and readers that
honour csv quoting merge lines (pytorch/audio issue #2838), so the files are read with
``csv.QUOTE_NONE``. Clips are MP3 (read by soundfile / libsndfile >= 1.1).

Version check: when a folder on the way is named ``cv-corpus-<version>-<date>``, ``<version>``
must be ``version`` (default ``"17.0"``, the paper's); another release raises a
``FileNotFoundError`` (its test set differs). ``version=None`` accepts any release.

Splits: ``train``, ``dev``, ``test`` (the paper evaluates on ``test``; it does not say more).

Columns written (``<save_folder>/<split>.csv``): ``ID`` (clip file stem, e.g.
``common_voice_en_19664034``), ``duration``, ``wav`` (absolute path of the mp3), ``spk_id``
(``client_id``), ``wrd`` (MMS-normalized ``sentence``), ``transcript`` (``sentence`` as
released) and ``task`` (``asr``). Rows whose clip is missing or unreadable, whose sentence
normalizes to nothing, duplicate clips, malformed lines, lines that are not UTF-8 and clips
longer than ``max_duration`` are skipped, counted and listed in ``<save_folder>/<split>.skipped.tsv``.

Usage::

    python recipes/CommonVoice/commonvoice_prepare.py /path/to/cv-corpus-17.0-2024-03-15 \\
        results/commonvoice/manifests test

Authors
-------
speechmapper developers, 2026
"""

import csv
import glob
import logging
import os
import re

from speechmapper_plugin.data.preparation import (
    corpus_rows,
    layout_error,
    prepare_cli,
    run_preparation,
)
from speechmapper_plugin.utils.text import normalize_text

logger = logging.getLogger(__name__)

DATASET = "Common Voice"
LANGUAGE = "en"
PAPER_VERSION = "17.0"
SPLITS = ("train", "dev", "test")
REQUIRED_COLUMNS = ("client_id", "path", "sentence")
_CORPUS_DIR = re.compile(r"^cv-corpus-(\d+(?:\.\d+)*)-")
EXPECTED_LAYOUT = (
    "<data_folder>/cv-corpus-<version>-<date>/en/<split>.tsv (header client_id, path, "
    "sentence, ...) with the clips in <data_folder>/cv-corpus-<version>-<date>/en/clips/*.mp3 "
    "(data_folder may also be the cv-corpus-* folder or its en/ folder)"
)
HINT = (
    "Download Common Voice English 17.0 (cv-corpus-17.0-2024-03-15-en.tar.gz) from "
    "https://commonvoice.mozilla.org/en/datasets (also on the Hugging Face hub as "
    "mozilla-foundation/common_voice_17_0) and unpack it."
)


def corpus_version(folder):
    """The release of a ``cv-corpus-<version>-<date>`` folder, or None for another name.

    Example
    -------
    >>> corpus_version("/data/cv-corpus-17.0-2024-03-15")
    '17.0'
    >>> corpus_version("/data/en") is None
    True
    """
    match = _CORPUS_DIR.match(os.path.basename(os.path.normpath(folder)))
    return match.group(1) if match else None


def same_version(found, wanted):
    """``"17"`` and ``"17.0"`` are the same release."""

    def key(v):
        parts = [int(p) for p in v.split(".")]
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        return parts

    return key(found) == key(wanted)


def find_root(data_folder, split, version):
    """The ``en`` folder holding ``<split>.tsv`` (raises ``layout_error`` when there is none,
    or when it belongs to a release other than ``version``)."""
    tsv = f"{split}.tsv"
    if os.path.isfile(os.path.join(data_folder, tsv)):
        roots = [data_folder]
    elif os.path.isfile(os.path.join(data_folder, LANGUAGE, tsv)):
        roots = [os.path.join(data_folder, LANGUAGE)]
    else:
        roots = sorted(
            os.path.dirname(p)
            for p in glob.glob(os.path.join(glob.escape(data_folder), "cv-corpus-*", LANGUAGE, tsv))
        )
        if version is not None and len(roots) > 1:
            matching = [
                r
                for r in roots
                if corpus_version(os.path.dirname(r)) is not None
                and same_version(corpus_version(os.path.dirname(r)), version)
            ]
            roots = matching or roots
        if len(roots) > 1:
            raise layout_error(
                DATASET,
                data_folder,
                EXPECTED_LAYOUT,
                f"Several releases hold en/{tsv}: {[os.path.dirname(r) for r in roots]}; "
                "give the cv-corpus-* folder to use as data_folder.",
            )
    if not roots:
        raise layout_error(DATASET, data_folder, f"{tsv} in " + EXPECTED_LAYOUT, HINT)
    root = roots[0]
    if version is not None:
        for folder in (root, os.path.dirname(root)):
            found = corpus_version(folder)
            if found is not None and not same_version(found, version):
                raise layout_error(
                    DATASET,
                    data_folder,
                    f"Common Voice {version} in " + EXPECTED_LAYOUT,
                    f"{folder} is Common Voice {found}, not {version} (the SpeechMapper paper "
                    f"used {PAPER_VERSION}); pass version={found!r} (--version {found}) or "
                    "version=None to prepare it anyway. " + HINT,
                )
    if not os.path.isdir(os.path.join(root, "clips")):
        raise layout_error(
            DATASET,
            data_folder,
            EXPECTED_LAYOUT,
            f"{root} holds {tsv} but no clips/ folder. " + HINT,
        )
    return root


def clip_stem(clip):
    """``clips/common_voice_en_1.mp3`` -> ``common_voice_en_1`` (the row id)."""
    return os.path.splitext(os.path.basename(clip))[0]


def read_split(data_folder, split, skip, version):
    """Candidate manifest rows of one split (see the module docstring)."""
    root = find_root(data_folder, split, version)
    tsv = os.path.join(root, f"{split}.tsv")
    rows = corpus_rows(
        tsv,
        skip,
        REQUIRED_COLUMNS,
        "path",
        (DATASET, data_folder, EXPECTED_LAYOUT, HINT),
        id_of=clip_stem,
        delimiter="\t",
        quoting=csv.QUOTE_NONE,
    )
    for _, row in rows:
        clip = row["path"].strip()
        sentence = row["sentence"].strip()
        yield {
            "ID": clip_stem(clip),
            "wav": os.path.join(root, "clips", clip),
            "spk_id": row["client_id"].strip(),
            "wrd": normalize_text(sentence),
            "transcript": sentence,
            "task": "asr",
        }


def prepare_commonvoice(
    data_folder, save_folder, splits, max_duration=None, skip_prep=False, version=PAPER_VERSION
):
    """Write ``<save_folder>/<split>.csv`` for each Common Voice English split (nothing to do
    when the manifests are up to date).

    Arguments
    ---------
    data_folder : str
        Folder holding ``cv-corpus-17.0-*/en``, the ``cv-corpus-17.0-*`` folder, or its ``en``
        folder.
    save_folder : str
        Where the manifests, ``<split>.skipped.tsv`` and ``prepare_summary.json`` go.
    splits : list of str
        Among ``train``, ``dev``, ``test``.
    max_duration : float, optional
        Longer clips (seconds) are skipped and counted.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).
    version : str or None
        Expected release (``"17.0"``, the paper's), checked against ``cv-corpus-<version>-*``
        folder names; None accepts any release.

    Returns
    -------
    dict
        Per split: ``utterances``, ``hours``, ``skipped`` (reason -> count).
    """
    if version == "any":  # the command line's way to disable the release check
        version = None
    data_folder = os.path.abspath(data_folder)
    return run_preparation(
        DATASET,
        data_folder,
        save_folder,
        splits,
        lambda split, skip: read_split(data_folder, split, skip, version),
        required=["wrd"],
        max_duration=max_duration,
        skip_prep=skip_prep,
        valid_splits=SPLITS,
        options={"language": LANGUAGE, "version": version},
    )


if __name__ == "__main__":
    prepare_cli(
        prepare_commonvoice,
        __doc__.split("\n\n")[0],
        splits=SPLITS,
        options=[
            (
                "version",
                PAPER_VERSION,
                "expected release (cv-corpus-<version>-*); 'any' disables the check",
            )
        ],
    )
