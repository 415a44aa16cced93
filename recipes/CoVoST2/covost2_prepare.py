"""CoVoST 2 preparation (speech translation from English, https://github.com/facebookresearch/covost):
SpeechBrain CSV manifests from the Common Voice English clips and the official CoVoST 2 tsv files.

Expected layout::

    <data_folder>/clips/common_voice_en_<n>.mp3        Common Voice English, version 4
    <data_folder>/validated.tsv                        (cv-corpus-4-2019-12-10/en, unpacked)
    <covost_folder>/covost_v2.en_<tgt>.tsv             from covost_v2.en_<tgt>.tsv.tar.gz

``data_folder`` is the Common Voice English folder (``.../en``, holding ``clips/``; its parent
``cv-corpus-4-*`` folder works too) and ``covost_folder`` the folder holding the CoVoST tsv files
(default: ``data_folder``). Instead of ``covost_v2.en_<tgt>.tsv`` + ``validated.tsv``, the
per-split files written by the official ``get_covost_splits.py``
(``<covost_folder>/covost_v2.en_<tgt>.<split>.tsv``) are read when they are there.

Verified against the facebookresearch/covost README and ``get_covost_splits.py``, and the
Hugging Face ``covost2`` loading script: CoVoST 2 is defined on Common Voice version 4 (English
clips are MP3, read by soundfile / libsndfile >= 1.1). ``covost_v2.en_<tgt>.tsv`` matches rows of
Common Voice's ``validated.tsv``; the official scripts take ``path``, ``translation`` and
``split`` from it and ``sentence`` and ``client_id`` from ``validated.tsv`` (inner join on
``path``), and so does this script (CoVoST rows whose clip is not in ``validated.tsv`` are
skipped as ``not_in_validated``). The ``train`` split is the rows whose ``split`` is ``train``
or ``train_covost`` (CoVoST 2's extended train set); ``dev`` and ``test`` are the rows with that
exact value. The per-split files have the columns ``path sentence translation client_id``. All
tsv files are tab-separated with a header and read like the official scripts read them: no
quoting (``csv.QUOTE_NONE``: sentences hold literal, sometimes unbalanced, quotes) and ``\\`` as
escape character. en->xx targets: ``de``, ``tr``, ``fa``, ``sv-SE``, ``mn``, ``zh-CN``, ``cy``,
``ca``, ``sl``, ``et``, ``id``, ``ar``, ``ta``, ``lv``, ``ja``.

Splits: ``<split>_en-<tgt>`` with ``<split>`` in ``train``, ``dev``, ``test`` and ``<tgt>`` the
ISO 639-1 code of the target (``zh`` for CoVoST's ``zh-CN``, ``sv`` for ``sv-SE``; the CoVoST
codes are accepted too, e.g. ``test_en-zh-CN``). The SpeechMapper paper (Table 1) evaluates the
en-de and en-zh test sets: ``test_en-de``, ``test_en-zh``.

Columns written (``<save_folder>/<split>.csv``): ``ID`` (``<clip stem>-<tgt>``, with ``<tgt>``
the ISO code, e.g. ``common_voice_en_19664034-zh``: unique across language pairs, so the pairs can
be trained together), ``audio_id`` (the clip file stem, e.g. ``common_voice_en_19664034``: the
same clip shares its cached features in every language pair), ``duration``, ``wav`` (absolute
path of the mp3), ``spk_id`` (``client_id``), ``wrd`` (MMS-normalized ``sentence``),
``transcript`` (``sentence`` as released), ``tgt`` (``translation``, kept exactly, e.g. Chinese),
``tgt_lang`` (ISO 639-1 code) and ``task`` (``st``). Rows whose clip is missing or unreadable,
whose sentence normalizes to nothing or whose translation is empty, duplicate clips, malformed
lines, lines that are not UTF-8 (``bad_encoding``), clips not in ``validated.tsv`` and clips
longer than ``max_duration`` are skipped, counted and listed in ``<save_folder>/<split>.skipped.tsv``.

Usage::

    python recipes/CoVoST2/covost2_prepare.py /path/to/cv-corpus-4-2019-12-10/en \\
        results/covost2/manifests test_en-de test_en-zh --covost_folder /path/to/covost

Authors
-------
speechmapper developers, 2026
"""

import csv
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

DATASET = "CoVoST 2"
SOURCE = "en"
CV_VERSION = "4"
# CoVoST 2 en->xx target codes -> ISO 639-1 codes (tgt_lang and split names).
TARGETS = {
    "de": "de",
    "tr": "tr",
    "fa": "fa",
    "sv-SE": "sv",
    "mn": "mn",
    "zh-CN": "zh",
    "cy": "cy",
    "ca": "ca",
    "sl": "sl",
    "et": "et",
    "id": "id",
    "ar": "ar",
    "ta": "ta",
    "lv": "lv",
    "ja": "ja",
}
PAPER_TARGETS = ("de", "zh")
SETS = ("train", "dev", "test")
# Values of the ``split`` column of covost_v2.en_<tgt>.tsv that make up each split.
SPLIT_VALUES = {"train": ("train", "train_covost"), "dev": ("dev",), "test": ("test",)}
SPLITS = tuple(f"{s}_{SOURCE}-{iso}" for s in SETS for iso in TARGETS.values())
TSV_FORMAT = {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "escapechar": "\\"}
_CORPUS_DIR = re.compile(r"^cv-corpus-(\d+)(?:\.\d+)*-")
EXPECTED_LAYOUT = (
    "the Common Voice English 4 clips in <data_folder>/clips/*.mp3 with "
    "<data_folder>/validated.tsv, and <covost_folder>/covost_v2.en_<tgt>.tsv (columns path, "
    "translation, split, ...; or the get_covost_splits.py outputs "
    "<covost_folder>/covost_v2.en_<tgt>.<split>.tsv with columns path, sentence, translation, "
    "client_id); covost_folder defaults to data_folder"
)
HINT = (
    "Get Common Voice English version 4 (cv-corpus-4-2019-12-10, "
    "https://commonvoice.mozilla.org/en/datasets) and the CoVoST 2 translations "
    "(https://dl.fbaipublicfiles.com/covost/covost_v2.en_<tgt>.tsv.tar.gz, see "
    "https://github.com/facebookresearch/covost), and unpack both."
)


def parse_split(split):
    """``"test_en-zh"`` -> ``("test", "zh-CN", "zh")`` (split, CoVoST code, ISO code); a
    ``ValueError`` naming the valid splits else.

    Example
    -------
    >>> parse_split("test_en-zh")
    ('test', 'zh-CN', 'zh')
    >>> parse_split("dev_en-sv-SE")
    ('dev', 'sv-SE', 'sv')
    """
    set_name, _, pair = split.partition("_")
    source, _, target = pair.partition("-")
    iso_to_code = {iso: code for code, iso in TARGETS.items()}
    code = target if target in TARGETS else iso_to_code.get(target)
    if set_name not in SETS or source != SOURCE or code is None:
        raise ValueError(
            f"{DATASET}: unknown split {split!r}; valid splits: {list(SPLITS)} (the CoVoST codes "
            f"zh-CN and sv-SE are accepted for zh and sv; the paper uses "
            f"{[f'test_en-{t}' for t in PAPER_TARGETS]})."
        )
    return set_name, code, TARGETS[code]


def find_cv_root(data_folder):
    """The Common Voice English folder holding ``clips/`` (``data_folder`` or its ``en/``)."""
    for root in (data_folder, os.path.join(data_folder, SOURCE)):
        if os.path.isdir(os.path.join(root, "clips")):
            for part in os.path.abspath(root).split(os.sep):
                match = _CORPUS_DIR.match(part)
                if match and match.group(1) != CV_VERSION:
                    logger.warning(
                        "%s is defined on Common Voice %s, and %s looks like Common Voice %s: "
                        "clips or validated.tsv rows may differ (they are counted as "
                        "missing_audio / not_in_validated).",
                        DATASET,
                        CV_VERSION,
                        root,
                        match.group(1),
                    )
            return root
    raise layout_error(DATASET, data_folder, EXPECTED_LAYOUT, HINT)


def read_tsv(path, required, data_folder, skip):
    """``(line_no, {column: value})`` for the well-formed lines of a tsv file (a
    ``layout_error`` when a required column is missing; malformed lines and lines that are not
    UTF-8 are skipped)."""
    return corpus_rows(
        path,
        skip,
        required,
        "path",
        (DATASET, data_folder, EXPECTED_LAYOUT, HINT),
        id_of=clip_id,
        **TSV_FORMAT,
    )


def clip_id(clip):
    """``common_voice_en_1.mp3`` -> ``common_voice_en_1``."""
    return os.path.splitext(os.path.basename(clip))[0]


def read_validated(cv_root, data_folder, cache):
    """``path -> (sentence, client_id)`` from Common Voice's ``validated.tsv`` (read once)."""
    path = os.path.join(cv_root, "validated.tsv")
    if path not in cache:
        if not os.path.isfile(path):
            raise layout_error(
                DATASET,
                data_folder,
                EXPECTED_LAYOUT,
                f"{cv_root} holds clips/ but no validated.tsv, which gives the sentences and "
                "speakers of covost_v2.en_<tgt>.tsv (or run the official get_covost_splits.py "
                "and put its covost_v2.en_<tgt>.<split>.tsv files in covost_folder). " + HINT,
            )
        table = {}
        for _, row in read_tsv(path, ("path", "sentence", "client_id"), data_folder, _no_skip):
            table.setdefault(row["path"].strip(), (row["sentence"], row["client_id"]))
        cache[path] = table
    return path, cache[path]


def _no_skip(utt_id, reason, detail=""):
    logger.warning("validated.tsv: ignored line (%s): %s", reason, detail)


def source_rows(data_folder, covost_folder, split, skip, cache):
    """``(cv_root, clip, sentence, client_id, translation)`` of one split, from the per-split
    file when present, else from ``covost_v2.en_<tgt>.tsv`` joined with ``validated.tsv``."""
    set_name, code, _ = parse_split(split)
    cv_root = find_cv_root(data_folder)
    split_tsv = os.path.join(covost_folder, f"covost_v2.{SOURCE}_{code}.{set_name}.tsv")
    full_tsv = os.path.join(covost_folder, f"covost_v2.{SOURCE}_{code}.tsv")
    if os.path.isfile(split_tsv):
        columns = ("path", "sentence", "translation", "client_id")
        for _, row in read_tsv(split_tsv, columns, data_folder, skip):
            yield cv_root, row["path"], row["sentence"], row["client_id"], row["translation"]
        return
    if not os.path.isfile(full_tsv):
        found = sorted(os.listdir(covost_folder))[:20] if os.path.isdir(covost_folder) else None
        hint = (
            f"covost_folder={covost_folder!r} holds neither {os.path.basename(full_tsv)} nor "
            f"{os.path.basename(split_tsv)} ("
            + ("it does not exist" if found is None else f"it holds: {found or 'nothing'}")
            + "). "
        )
        if os.path.isfile(full_tsv + ".tar.gz"):
            hint += f"Unpack {full_tsv}.tar.gz where it lies (tar -xzf). "
        raise layout_error(DATASET, data_folder, EXPECTED_LAYOUT, hint + HINT)
    validated_tsv, validated = read_validated(cv_root, data_folder, cache)
    wanted = SPLIT_VALUES[set_name]
    known = {v for values in SPLIT_VALUES.values() for v in values}
    unknown = 0
    for line_no, row in read_tsv(full_tsv, ("path", "translation", "split"), data_folder, skip):
        value = row["split"].strip()
        if value not in wanted:
            unknown += value not in known
            continue
        clip = row["path"].strip()
        if clip not in validated:
            skip(clip_id(clip), "not_in_validated", f"{full_tsv}:{line_no}: not in {validated_tsv}")
            continue
        sentence, client_id = validated[clip]
        yield cv_root, clip, sentence, client_id, row["translation"]
    if unknown:
        logger.warning(
            "%s: %d rows of %s have a split value other than %s; they are in no split.",
            DATASET,
            unknown,
            full_tsv,
            sorted(known),
        )


def read_split(data_folder, covost_folder, split, skip, cache):
    """Candidate manifest rows of one split (see the module docstring)."""
    iso = parse_split(split)[2]
    for cv_root, clip, sentence, client_id, translation in source_rows(
        data_folder, covost_folder, split, skip, cache
    ):
        clip = clip.strip()
        if clip and not os.path.splitext(clip)[1]:
            clip += ".mp3"  # early Common Voice releases list clips without extension
        sentence = sentence.strip()
        yield {
            "ID": f"{clip_id(clip)}-{iso}",
            "audio_id": clip_id(clip),
            "wav": os.path.join(cv_root, "clips", clip),
            "spk_id": client_id.strip(),
            "wrd": normalize_text(sentence),
            "transcript": sentence,
            "tgt": translation.strip(),
            "tgt_lang": iso,
            "task": "st",
        }


def prepare_covost2(
    data_folder, save_folder, splits, max_duration=None, skip_prep=False, covost_folder=None
):
    """Write ``<save_folder>/<split>.csv`` for each CoVoST 2 split (nothing to do when the
    manifests are up to date).

    Arguments
    ---------
    data_folder : str
        Common Voice English (version 4) folder holding ``clips/`` and ``validated.tsv`` (or its
        parent ``cv-corpus-4-*`` folder).
    save_folder : str
        Where the manifests, ``<split>.skipped.tsv`` and ``prepare_summary.json`` go.
    splits : list of str
        ``<split>_en-<tgt>``, e.g. ``["test_en-de", "test_en-zh"]``.
    max_duration : float, optional
        Longer clips (seconds) are skipped and counted.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).
    covost_folder : str, optional
        Folder holding ``covost_v2.en_<tgt>.tsv`` (or the ``covost_v2.en_<tgt>.<split>.tsv``
        files); default: ``data_folder``.

    Returns
    -------
    dict
        Per split: ``utterances``, ``hours``, ``skipped`` (reason -> count).
    """
    if skip_prep:
        return {}
    for split in splits:
        parse_split(split)
    data_folder = os.path.abspath(data_folder)
    covost_folder = os.path.abspath(covost_folder or data_folder)
    cache = {}
    return run_preparation(
        DATASET,
        data_folder,
        save_folder,
        splits,
        lambda split, skip: read_split(data_folder, covost_folder, split, skip, cache),
        required=["wrd", "tgt"],
        max_duration=max_duration,
        skip_prep=skip_prep,
        options={"covost_folder": covost_folder},
    )


if __name__ == "__main__":
    prepare_cli(
        prepare_covost2,
        __doc__.split("\n\n")[0],
        options=[
            ("covost_folder", None, "folder of covost_v2.en_<tgt>.tsv (default: data_folder)")
        ],
    )
