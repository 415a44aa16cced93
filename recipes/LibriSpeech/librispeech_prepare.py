"""LibriSpeech data preparation: SpeechBrain CSV manifests from the standard distribution layout.

Expected layout (as unpacked from openslr.org/12, or the project's synthetic mini-corpus)::

    <data_folder>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    <data_folder>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

(``data_folder`` may also be the ``LibriSpeech`` folder itself.) One ``<split>.csv`` per split
with columns ``ID, duration, wav, spk_id, wrd``; ``wrd`` is the MMS-normalized transcript
(paper Sec. 3). With ``translation=minish`` (the mini-corpus only), the manifests also carry
``tgt`` and ``tgt_lang``: the transcript's word-for-word translation into Minish, the invented
language of the mini-corpus' synthetic ST task (``speechmapper_plugin.tiny.minish``, code
``qaa``). Utterances whose audio is missing or unreadable, whose transcript is empty or
not UTF-8 (``bad_encoding``, with its file and line), or that are longer than ``max_duration``
seconds are skipped; every skip is counted, logged and
listed in ``<save_folder>/<split>.skipped.tsv``.

Usage (normally called by the training scripts through ``run_on_main``)::

    python recipes/LibriSpeech/librispeech_prepare.py /path/to/LibriSpeech results/manifests \
        train-clean-100 dev-clean test-clean

Authors
-------
speechmapper developers, 2026
"""

import glob
import logging
import os

from speechmapper_plugin.data.preparation import prepare_cli, run_preparation, skip_bad_encoding
from speechmapper_plugin.utils.text import normalize_text
from speechmapper_plugin.utils.textfiles import text_lines

logger = logging.getLogger(__name__)

KNOWN_SPLITS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)


def find_librispeech_root(data_folder, splits):
    """The folder that holds the split folders (``data_folder`` or ``data_folder/LibriSpeech``).

    Raises a ``FileNotFoundError`` that describes the expected layout when a split is missing.
    """
    for root in (os.path.join(data_folder, "LibriSpeech"), data_folder):
        if splits and all(os.path.isdir(os.path.join(root, s)) for s in splits):
            return root
    found = sorted(
        d
        for root in (data_folder, os.path.join(data_folder, "LibriSpeech"))
        if os.path.isdir(root)
        for d in os.listdir(root)
        if os.path.isdir(os.path.join(root, d))
    )
    raise FileNotFoundError(
        f"LibriSpeech splits {list(splits)} not found under data_folder={data_folder!r} "
        f"(it holds: {found or 'nothing'}). Expected the standard layout "
        "<data_folder>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac "
        "with <speaker>-<chapter>.trans.txt next to the audio (download from "
        "https://www.openslr.org/12, or build the mini-corpus with "
        "`python -m speechmapper_plugin.tiny.minicorpus`)."
    )


TRANSLATIONS = ("minish",)


def _translator(translation):
    """``text -> (tgt, tgt_lang)`` for a synthetic translation, or None."""
    if translation is None:
        return None
    if translation != "minish":
        raise ValueError(
            f"translation={translation!r}: the LibriSpeech recipe knows {list(TRANSLATIONS)} "
            "(or null for ASR manifests)."
        )
    from speechmapper_plugin.tiny.minish import MINISH_CODE, translate

    return lambda text: (translate(text), MINISH_CODE)


def prepare_split(root, split, skip, translator=None):
    """Candidate rows of one split (``skip(id, reason, detail)`` for empty transcripts); the
    audio checks, ``max_duration`` and the manifest writing are ``run_preparation``'s.
    ``translator`` (``text -> (tgt, tgt_lang)``) adds a translation to each row."""
    trans_files = sorted(glob.glob(os.path.join(root, split, "*", "*", "*.trans.txt")))
    if not trans_files:
        raise FileNotFoundError(
            f"No *.trans.txt file under {os.path.join(root, split)}: this is not a LibriSpeech "
            "split (expected <split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt)."
        )
    for trans in trans_files:
        folder = os.path.dirname(trans)
        bad_line = skip_bad_encoding(skip, trans, lambda text: text.split()[0])
        for line_no, line in text_lines(trans, bad_line):
            line = line.strip()
            if not line:
                continue
            utt_id, _, text = line.partition(" ")
            words = normalize_text(text)
            if not words:
                skip(utt_id, "empty_transcript", f"{trans}:{line_no}")
                continue
            row = {
                "ID": utt_id,
                "wav": os.path.join(folder, f"{utt_id}.flac"),
                "spk_id": utt_id.split("-")[0],
                "wrd": words,
            }
            if translator is not None:
                row["tgt"], row["tgt_lang"] = translator(words)
            yield row


def prepare_librispeech(
    data_folder, save_folder, splits, max_duration=None, skip_prep=False, translation=None
):
    """Write ``<save_folder>/<split>.csv`` for every split (skipped if already done with the
    same options).

    Arguments
    ---------
    data_folder : str
        Folder holding ``LibriSpeech/`` (or the ``LibriSpeech`` folder itself).
    save_folder : str
        Where the manifests go.
    splits : list of str
        Split folder names, e.g. ``["train-clean-100", "dev-clean", "test-clean"]``.
    max_duration : float, optional
        Utterances longer than this (seconds) are skipped and counted.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).
    translation : str, optional
        ``"minish"``: add the Minish translation of each transcript (``tgt``, ``tgt_lang`` =
        ``qaa``), for the mini-corpus' synthetic ST task; a word outside the mini-corpus
        grammar is an error naming it.

    Returns
    -------
    dict
        Per split: number of utterances kept, hours, and skip counts by reason.
    """
    splits = list(splits)
    root = []  # found on the first split read: all splits are checked before any is written
    translator = _translator(translation)

    def read_split(split, skip):
        if not root:
            root.append(find_librispeech_root(os.path.abspath(data_folder), splits))
        return prepare_split(root[0], split, skip, translator)

    return run_preparation(
        "LibriSpeech",
        data_folder,
        save_folder,
        splits,
        read_split,
        required=["wrd"],
        max_duration=max_duration,
        skip_prep=skip_prep,
        options={"translation": translation} if translation else None,
    )


if __name__ == "__main__":
    prepare_cli(
        prepare_librispeech,
        __doc__.split("\n\n")[0],
        splits=KNOWN_SPLITS,
        options=[("translation", None, "minish: add the mini-corpus' Minish translation")],
    )
