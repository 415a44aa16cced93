"""LibriSQA preparation: SpeechBrain CSV manifests (one row per question) from the official
LibriSQA release (Zhao et al., 2025) and LibriSpeech, the SpeechMapper paper's LibriSQA Part I
and Part II SQA test sets (Sec. 3, Table 2).

Expected layout (``data_folder``: a snapshot of https://huggingface.co/datasets/ZihanZhao/LibriSQA;
``librispeech_folder``, default ``data_folder``: the LibriSpeech root from openslr.org/12)::

    <data_folder>/LibriSQA-PartI/LibriSQA-PartI-train.json
    <data_folder>/LibriSQA-PartI/LibriSQA-PartI-test.json
    <data_folder>/LibriSQA-PartII/LibriSQA-PartII-train.json
    <data_folder>/LibriSQA-PartII/LibriSQA-PartII-test.json
    <librispeech_folder>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    <librispeech_folder>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

(the JSON files may also lie directly in ``data_folder``, and ``librispeech_folder`` may be the
``LibriSpeech`` folder itself; the files were named ``...-training.json`` before a rename in the
Hugging Face repository, both names are accepted.) The train JSON files use LibriSpeech
``train-clean-360`` and the test files ``test-clean`` (LibriSQA README).

What was verified (dataset card of ``ZihanZhao/LibriSQA``, its GitHub README, third-party
loaders): each file is a JSON list of objects. Part I keys: ``speech_path`` (path of the
LibriSpeech utterance), ``question``, ``answer`` (reference answer), ``text`` (transcript of the
speech), ``duration``. Part II keys: ``speech_path``, ``question_and_option`` (the question
followed by its four options, as given to the model), ``answer`` (the correct option label, e.g.
``A``), ``answer_and_analysis`` (answer with an explanation). Loaders take the utterance id as
the file stem of ``speech_path`` and swap ``.wav`` for ``.flac``; the exact directory prefix of
``speech_path`` could not be verified, so only its file stem is used (plus the subset name when
the path names one) and the file is looked up in the LibriSpeech tree.

Splits: ``partI_train``, ``partI_test``, ``partII_train``, ``partII_test`` (the Hugging Face
splits ``partI.train`` ... ); the paper evaluates on ``partI_test`` and ``partII_test``.

Columns written (``<save_folder>/<split>.csv``): ``ID`` (``<utterance id>-<first 8 hex digits
of the SHA-1 of the question>``: LibriSQA has no question ids, and an entry repeated with the
same utterance and question is a ``duplicate_id``), ``duration``, ``wav`` (absolute path of the
flac), ``audio_id`` (LibriSpeech utterance id), ``spk_id``, ``wrd`` (MMS-normalized
LibriSpeech transcript), ``transcript`` (the LibriSpeech transcript; the JSON ``text`` when the
utterance is not in its ``trans.txt``), ``tgt`` (Part I ``answer``; Part II ``answer``, the
official answer field; a list of answers is deduplicated and joined with
``speechmapper_plugin.data.manifests.ANSWER_SEPARATOR``), ``tgt_lang`` (``en``), ``question`` (Part I
``question``; Part II ``question_and_option``, i.e. with the choices), ``context`` (the
transcript) and ``task`` (``sqa``). Entries whose audio is missing or unreadable, without
transcript, question or answer, malformed entries, duplicates and utterances longer than
``max_duration`` are skipped, counted and listed in ``<save_folder>/<split>.skipped.tsv``.

Usage::

    python recipes/LibriSQA/librisqa_prepare.py /path/to/LibriSQA results/librisqa/manifests \\
        partI_test partII_test --librispeech_folder /path/to/LibriSpeech-root

Authors
-------
speechmapper developers, 2026
"""

import hashlib
import json
import logging
import os
import re

from speechmapper_plugin.data.manifests import ANSWER_SEPARATOR
from speechmapper_plugin.data.preparation import layout_error, prepare_cli, run_preparation
from speechmapper_plugin.utils.text import normalize_text
from speechmapper_plugin.utils.textfiles import read_text, text_lines

logger = logging.getLogger(__name__)

DATASET = "LibriSQA"
# split -> (part folder, file split name, LibriSpeech subset, question key)
SPLITS = {
    "partI_train": ("PartI", "train", "train-clean-360", "question"),
    "partI_test": ("PartI", "test", "test-clean", "question"),
    "partII_train": ("PartII", "train", "train-clean-360", "question_and_option"),
    "partII_test": ("PartII", "test", "test-clean", "question_and_option"),
}
LIBRISPEECH_SUBSETS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)
EXPECTED_LAYOUT = (
    "<data_folder>/LibriSQA-Part{I,II}/LibriSQA-Part{I,II}-{train,test}.json (JSON lists) and "
    "<librispeech_folder>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac "
    "with <speaker>-<chapter>.trans.txt next to the audio (train: train-clean-360, test: test-clean)"
)
HINT = (
    "Download https://huggingface.co/datasets/ZihanZhao/LibriSQA (e.g. `huggingface-cli download "
    "ZihanZhao/LibriSQA --repo-type dataset --local-dir <data_folder>`) and LibriSpeech "
    "train-clean-360 / test-clean from https://www.openslr.org/12 (pass its root as "
    "librispeech_folder when it is not data_folder)."
)
_UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def join_answers(answer):
    """The reference answer(s): a string, or a list deduplicated in order and joined with
    ``ANSWER_SEPARATOR``.

    Example
    -------
    >>> join_answers(["B", "B ", "the cat"])
    'B ||| the cat'
    >>> join_answers(" A ")
    'A'
    """
    texts = answer if isinstance(answer, list) else [answer]
    unique = []
    for text in texts:
        text = "" if text is None else str(text).strip()
        if text and text not in unique:
            unique.append(text)
    return ANSWER_SEPARATOR.join(unique)


def question_id(utt_id, question):
    """Manifest ID of a question: ``<utt_id>-<8 hex digits of SHA-1(question)>``.

    Example
    -------
    >>> question_id("1089-134686-0000", "Who speaks?")
    '1089-134686-0000-57ae000b'
    """
    return f"{utt_id}-{hashlib.sha1(question.encode('utf-8')).hexdigest()[:8]}"


def find_json(data_folder, split):
    """Path of the LibriSQA JSON file of a split (raises ``layout_error`` when missing)."""
    part, file_split, _, _ = SPLITS[split]
    names = [f"LibriSQA-{part}-{file_split}.json"]
    if file_split == "train":
        names.append(f"LibriSQA-{part}-training.json")  # name before the 2024 rename
    for folder in (os.path.join(data_folder, f"LibriSQA-{part}"), data_folder):
        for name in names:
            if os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
    raise layout_error(DATASET, data_folder, f"{names[0]} in " + EXPECTED_LAYOUT, HINT)


def find_subset(librispeech_folder, subset):
    """The folder of a LibriSpeech subset (``<root>/LibriSpeech/<subset>`` or ``<root>/<subset>``),
    or None."""
    for folder in (
        os.path.join(librispeech_folder, "LibriSpeech", subset),
        os.path.join(librispeech_folder, subset),
    ):
        if os.path.isdir(folder):
            return folder
    return None


def load_entries(path, data_folder):
    """The list of entries of a LibriSQA JSON file (a JSON list; JSON lines are accepted too)."""
    text = read_text(path)
    if text.startswith("version https://git-lfs.github.com/spec"):
        raise layout_error(
            DATASET,
            data_folder,
            EXPECTED_LAYOUT,
            f"{path} is a Git LFS pointer, not the JSON file: run `git lfs pull` in the clone. "
            + HINT,
        )
    try:
        content = json.loads(text)
    except json.JSONDecodeError:
        try:
            content = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise layout_error(
                DATASET, data_folder, EXPECTED_LAYOUT, f"{path} is not JSON ({err}). " + HINT
            ) from None
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        content = content["data"]
    if not isinstance(content, list):
        raise layout_error(
            DATASET, data_folder, EXPECTED_LAYOUT, f"{path} is not a JSON list of entries. " + HINT
        )
    return content


class TranscriptIndex:
    """LibriSpeech ``<speaker>-<chapter>.trans.txt`` transcripts, read once per chapter (a line
    that is not UTF-8 is logged with its file and line and left out: its utterance falls back
    to the JSON ``text``)."""

    def __init__(self):
        self.chapters = {}

    @staticmethod
    def _bad_line(path):
        def bad_line(line_no, text, problem):
            logger.warning(
                "%s: %s:%d is not UTF-8 (%s); the JSON 'text' of %s is used instead.",
                DATASET,
                path,
                line_no,
                problem,
                text.split(" ", 1)[0],
            )

        return bad_line

    def get(self, folder, utt_id):
        """Transcript of ``utt_id`` from the ``trans.txt`` of its chapter ``folder`` ("" if none)."""
        if folder not in self.chapters:
            speaker, chapter, _ = utt_id.split("-")
            lines = {}
            path = os.path.join(folder, f"{speaker}-{chapter}.trans.txt")
            if os.path.isfile(path):
                for _, line in text_lines(path, self._bad_line(path)):
                    key, _, text = line.strip().partition(" ")
                    if key:
                        lines[key] = text.strip()
            self.chapters[folder] = lines
        return self.chapters[folder].get(utt_id, "")


def locate_utterance(librispeech_folder, speech_path, utt_id, default_subset):
    """The chapter folder of ``utt_id``: in the subset named by ``speech_path`` when it names one,
    else in ``default_subset``, else in any other subset; the expected (missing) folder under
    the first candidate when the flac is nowhere."""
    speaker, chapter, _ = utt_id.split("-")
    named = [s for s in re.split(r"[\\/]", speech_path) if s in LIBRISPEECH_SUBSETS]
    candidates = list(dict.fromkeys(named + [default_subset] + list(LIBRISPEECH_SUBSETS)))
    first = None
    for subset in candidates:
        root = find_subset(librispeech_folder, subset)
        if root is None:
            continue
        folder = os.path.join(root, speaker, chapter)
        first = first or folder
        if os.path.isfile(os.path.join(folder, f"{utt_id}.flac")):
            return folder
    if first is None:
        first = os.path.join(librispeech_folder, "LibriSpeech", candidates[0], speaker, chapter)
    return first


def read_split(data_folder, librispeech_folder, split, skip):
    """Candidate manifest rows of one split (see the module docstring)."""
    _, _, subset, question_key = SPLITS[split]
    json_path = find_json(data_folder, split)
    if find_subset(librispeech_folder, subset) is None:
        raise layout_error(
            DATASET,
            librispeech_folder,
            f"LibriSpeech {subset} for {split}: " + EXPECTED_LAYOUT,
            HINT,
        )
    entries = load_entries(json_path, data_folder)
    transcripts = TranscriptIndex()
    fallbacks = 0
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            skip(f"{split}_entry{n}", "malformed_entry", f"{json_path}: entry {n} is not an object")
            continue
        speech_path = str(entry.get("speech_path") or "").strip()
        utt_id = os.path.splitext(os.path.basename(speech_path.replace("\\", "/")))[0]
        if not _UTT_ID.match(utt_id):
            skip(
                f"{split}_entry{n}",
                "malformed_entry",
                f"{json_path}: entry {n}: speech_path {speech_path!r} names no LibriSpeech utterance",
            )
            continue
        question = str(entry.get(question_key) or "").strip()
        folder = locate_utterance(librispeech_folder, speech_path, utt_id, subset)
        wav = os.path.join(folder, f"{utt_id}.flac")
        transcript = transcripts.get(folder, utt_id)
        if not transcript:
            transcript = str(entry.get("text") or "").strip()
            fallbacks += bool(transcript and os.path.isfile(wav))
        if os.path.isfile(wav) and not normalize_text(transcript):
            skip(question_id(utt_id, question), "empty_transcript", f"{utt_id} in {folder}")
            continue
        yield {
            "ID": question_id(utt_id, question),
            "wav": wav,
            "audio_id": utt_id,
            "spk_id": utt_id.split("-")[0],
            "wrd": normalize_text(transcript),
            "transcript": transcript,
            "tgt": join_answers(entry.get("answer")),
            "tgt_lang": "en",
            "question": question,
            "context": transcript,
            "task": "sqa",
        }
    if fallbacks:
        logger.warning(
            "%s %s: %d utterance(s) missing from their trans.txt; the JSON 'text' is used.",
            DATASET,
            split,
            fallbacks,
        )


def prepare_librisqa(
    data_folder, save_folder, splits, max_duration=None, skip_prep=False, librispeech_folder=None
):
    """Write ``<save_folder>/<split>.csv`` (one row per question) for each LibriSQA split
    (nothing to do when the manifests are up to date).

    Arguments
    ---------
    data_folder : str
        The LibriSQA release (the ``ZihanZhao/LibriSQA`` repository snapshot).
    save_folder : str
        Where the manifests, ``<split>.skipped.tsv`` and ``prepare_summary.json`` go.
    splits : list of str
        Among ``partI_train``, ``partI_test``, ``partII_train``, ``partII_test``.
    max_duration : float, optional
        Questions on utterances longer than this (seconds) are skipped and counted.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).
    librispeech_folder : str, optional
        The LibriSpeech root (holding ``LibriSpeech/<subset>/``, or the ``LibriSpeech``
        folder itself); default ``data_folder``.

    Returns
    -------
    dict
        Per split: ``utterances``, ``hours``, ``skipped`` (reason -> count).
    """
    if skip_prep:
        return {}
    data_folder = os.path.abspath(data_folder)
    librispeech_folder = os.path.abspath(librispeech_folder or data_folder)
    return run_preparation(
        DATASET,
        data_folder,
        save_folder,
        splits,
        lambda split, skip: read_split(data_folder, librispeech_folder, split, skip),
        required=["question", "tgt"],
        max_duration=max_duration,
        skip_prep=skip_prep,
        valid_splits=SPLITS,
        options={"librispeech_folder": librispeech_folder},
    )


if __name__ == "__main__":
    prepare_cli(
        prepare_librisqa,
        __doc__.split("\n\n")[0],
        splits=list(SPLITS),
        options=[("librispeech_folder", None, "LibriSpeech root (default: data_folder)")],
    )
