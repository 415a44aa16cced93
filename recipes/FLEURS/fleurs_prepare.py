"""FLEURS English (``en_us``) preparation: SpeechBrain CSV manifests from the layout of the
``google/fleurs`` Hugging Face dataset repository (the SpeechMapper paper's Table 8, "Fleurs").

Expected layout (a clone / snapshot of https://huggingface.co/datasets/google/fleurs, or only its
``data/en_us`` folder, with the audio tarballs extracted in place)::

    <data_folder>/data/en_us/train.tsv
    <data_folder>/data/en_us/dev.tsv
    <data_folder>/data/en_us/test.tsv
    <data_folder>/data/en_us/audio/<split>/<file_name>.wav

The repository ships ``data/en_us/audio/<split>.tar.gz``; extract each one where it lies
(``tar -xzf data/en_us/audio/test.tar.gz -C data/en_us/audio``, which creates ``audio/test/``).
The tree under ``en_us`` is also the one of Google's original ``en_us.tar.gz``. ``data_folder``
may be the repository root (as above), its ``data`` folder, or the ``en_us`` folder itself.

Verified against the ``google/fleurs`` loading script (``data/{lang}/{split}.tsv`` and
``data/{lang}/audio/{split}.tar.gz``; lines split on tabs) and the XTREME-S TFDS builder (same
tree in the original tarballs, ``audio/<split>/<file_name>``); NeMo-speech-data-processor's FLEURS
processor confirms that extracting ``<split>.tar.gz`` creates a ``<split>/`` folder of wav files.
The tsv files have no header and 7 tab-separated columns: ``id, file_name, raw_transcription,
transcription, phonemes (character transcription), num_samples, gender``. ``id`` is the FLoRes
sentence id, shared by the several speakers who read the sentence, so the manifest ``ID`` is the
(unique) wav file stem. Lines are split on tabs only (no csv quoting).

Splits: ``train``, ``dev``, ``test`` (the paper reports FLEURS WER/CER without naming the split;
the recipes evaluate on ``test``).

Columns written (``<save_folder>/<split>.csv``): ``ID`` (wav stem), ``duration`` (probed from the
wav), ``wav`` (absolute path), ``wrd`` (MMS-normalized ``raw_transcription``), ``transcript``
(``raw_transcription``; the normalized ``transcription`` column when it is empty) and ``task``
(``asr``). FLEURS has no speaker ids, so there is no ``spk_id`` column. Rows whose audio is
missing or unreadable, whose transcript normalizes to nothing, duplicate file names, malformed
lines, lines that are not UTF-8 and rows longer than ``max_duration`` are skipped, counted and
listed in
``<save_folder>/<split>.skipped.tsv``.

Usage::

    python recipes/FLEURS/fleurs_prepare.py /path/to/fleurs results/fleurs/manifests test

Authors
-------
speechmapper developers, 2026
"""

import logging
import os

from speechmapper_plugin.data.preparation import (
    layout_error,
    prepare_cli,
    run_preparation,
    skip_bad_encoding,
)
from speechmapper_plugin.utils.text import normalize_text
from speechmapper_plugin.utils.textfiles import text_lines

logger = logging.getLogger(__name__)

DATASET = "FLEURS"
CONFIG = "en_us"
SPLITS = ("train", "dev", "test")
N_COLUMNS = 7  # id, file_name, raw_transcription, transcription, phonemes, num_samples, gender
EXPECTED_LAYOUT = (
    "<data_folder>/data/en_us/<split>.tsv (no header; id, file_name, raw_transcription, "
    "transcription, phonemes, num_samples, gender) with the audio extracted to "
    "<data_folder>/data/en_us/audio/<split>/<file_name> (data_folder may also be data/ or "
    "data/en_us/ itself)"
)
HINT = (
    "Download the en_us files of https://huggingface.co/datasets/google/fleurs "
    "(data/en_us/<split>.tsv and data/en_us/audio/<split>.tar.gz) and extract the tarballs "
    "in place: `tar -xzf data/en_us/audio/<split>.tar.gz -C data/en_us/audio`."
)
_LFS_POINTER = "version https://git-lfs.github.com/spec"


def find_root(data_folder, split):
    """The ``en_us`` folder holding ``<split>.tsv`` and ``audio/<split>/`` (raises
    ``layout_error`` otherwise, telling to extract ``audio/<split>.tar.gz`` when only the
    tarball is there)."""
    tsv = f"{split}.tsv"
    for root in (
        os.path.join(data_folder, "data", CONFIG),
        os.path.join(data_folder, CONFIG),
        data_folder,
    ):
        if os.path.isfile(os.path.join(root, tsv)):
            break
    else:
        raise layout_error(DATASET, data_folder, f"{tsv} in " + EXPECTED_LAYOUT, HINT)
    with open(os.path.join(root, tsv), encoding="utf-8", errors="replace") as f:
        if f.readline().startswith(_LFS_POINTER):
            raise layout_error(
                DATASET,
                data_folder,
                EXPECTED_LAYOUT,
                f"{os.path.join(root, tsv)} is a Git LFS pointer, not the tsv: run "
                "`git lfs pull --include data/en_us` in the clone. " + HINT,
            )
    audio = os.path.join(root, "audio", split)
    if not os.path.isdir(audio):
        tarball = os.path.join(root, "audio", f"{split}.tar.gz")
        if os.path.isfile(tarball):
            hint = (
                f"The audio of {split} is still in {tarball}: extract it first with "
                f"`tar -xzf {tarball} -C {os.path.dirname(tarball)}` (creates {audio}/)."
            )
        else:
            hint = f"{root} holds {tsv} but neither {audio}/ nor {tarball}. " + HINT
        raise layout_error(DATASET, data_folder, f"audio/{split}/ in " + EXPECTED_LAYOUT, hint)
    return root


def read_split(data_folder, split, skip):
    """Candidate manifest rows of one split (see the module docstring)."""
    root = find_root(data_folder, split)
    tsv = os.path.join(root, f"{split}.tsv")
    audio = os.path.join(root, "audio", split)
    fallbacks = 0

    def file_id(text):  # the row id of a line that is not UTF-8
        return os.path.splitext(text.split("\t")[1].strip())[0]

    for line_no, line in text_lines(tsv, skip_bad_encoding(skip, tsv, file_id)):
        if not line.strip():
            continue
        fields = line.split("\t")
        file_name = fields[1].strip() if len(fields) > 1 else ""
        utt_id = os.path.splitext(file_name)[0]
        if len(fields) != N_COLUMNS or not file_name:
            skip(
                utt_id or f"line{line_no}",
                "malformed_row",
                f"{tsv}:{line_no}: {len(fields)} fields, {N_COLUMNS} expected",
            )
            continue
        raw = fields[2].strip()
        if not raw:
            raw = fields[3].strip()
            fallbacks += bool(raw)
        yield {
            "ID": utt_id,
            "wav": os.path.join(audio, file_name),
            "wrd": normalize_text(raw),
            "transcript": raw,
            "task": "asr",
        }
    if fallbacks:
        logger.info(
            "%s %s: %d rows have an empty raw_transcription; their transcription is used.",
            DATASET,
            split,
            fallbacks,
        )


def prepare_fleurs(data_folder, save_folder, splits, max_duration=None, skip_prep=False):
    """Write ``<save_folder>/<split>.csv`` for each FLEURS ``en_us`` split (nothing to do when
    the manifests are up to date).

    Arguments
    ---------
    data_folder : str
        The ``google/fleurs`` repository root, its ``data`` folder, or ``data/en_us``.
    save_folder : str
        Where the manifests, ``<split>.skipped.tsv`` and ``prepare_summary.json`` go.
    splits : list of str
        Among ``train``, ``dev``, ``test``.
    max_duration : float, optional
        Longer utterances (seconds) are skipped and counted.
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
        options={"config": CONFIG},
    )


if __name__ == "__main__":
    prepare_cli(prepare_fleurs, __doc__.split("\n\n")[0], splits=SPLITS)
