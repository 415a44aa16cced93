"""Spoken-SQuAD preparation: SpeechBrain CSV manifests (one row per question) from the official
Spoken-SQuAD distribution (Li et al., Interspeech 2018), the SpeechMapper paper's first SQA test
set (Sec. 3, Table 2).

Expected layout (a clone of https://github.com/chiahsuan156/Spoken-SQuAD, which holds the JSON
files, with ``Spoken-SQuAD_audio.zip`` and the two zips inside it extracted in the clone)::

    <data_folder>/spoken_train-v1.1.json
    <data_folder>/spoken_test-v1.1.json
    <data_folder>/Spoken-SQuAD_audio/train_wav/<article>_<paragraph>_<sentence>.wav
    <data_folder>/Spoken-SQuAD_audio/dev_wav/<article>_<paragraph>_<sentence>.wav

(``train_wav/`` and ``dev_wav/`` may also lie directly in ``data_folder``.) The audio zip
(``http://speech.ee.ntu.edu.tw/~chiahsuan/Spoken-SQuAD/Spoken-SQuAD_audio.zip``, ~50 GB) holds
``Spoken-SQuAD_audio/train_wav.zip`` and ``Spoken-SQuAD_audio/dev_wav.zip``; extract both so
that the wav files lie directly in ``train_wav/`` and ``dev_wav/``.

What was verified (dataset README and repository, third-party loaders): the JSON files are in
the SQuAD v1.1 format (``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
"question", "answers": [{"answer_start", "text"}]}]}]}]}``); the contexts are the CMU Sphinx ASR
transcripts of the Google-TTS audio (lower case, numbers spelled out) and the answers are spans
of them; the original SQuAD text is NOT part of the distribution. The test set was made from the
SQuAD v1.1 dev set and its audio is in ``dev_wav/``. The audio is one Google-TTS wav (24 kHz) per
context SENTENCE, named ``<article>_<paragraph>_<sentence>.wav`` after the positions in the JSON
(0-based article index in ``data``, paragraph index in ``paragraphs``, sentence index).
Not verifiable without the 50 GB archive: whether every paragraph's sentence files are complete
(a gap in the sentence indices is detected and the passage skipped; a missing LAST sentence
cannot be told from a shorter passage).

The passage audio is the concatenation of its sentence wavs in sentence order, written once per
passage to ``<save_folder>/audio/<split>/<audio_id>.wav`` (16-bit PCM at the source rate,
atomically; kept when it already exists with the right length). ``audio_id`` is
``<split>_<article>_<paragraph>`` and is shared by all the questions of the passage (features
are extracted once per passage).

Splits: ``train`` (``spoken_train-v1.1.json`` + ``train_wav/``) and ``test``
(``spoken_test-v1.1.json`` + ``dev_wav/``); the paper evaluates on ``test``.

Columns written (``<save_folder>/<split>.csv``): ``ID`` (SQuAD question id), ``duration``
(passage seconds), ``wav`` (absolute path of the passage wav), ``audio_id``, ``wrd``
(MMS-normalized context), ``transcript`` (the JSON context), ``tgt`` (the answer texts,
deduplicated in order, joined with ``speechmapper_plugin.data.manifests.ANSWER_SEPARATOR``), ``tgt_lang``
(``en``), ``question``, ``context`` (the JSON context) and ``task`` (``sqa``). The JSON context
(an ASR transcript) is both ``context`` and ``transcript`` because the distribution has no other
passage text. Questions of a passage whose sentence wavs are missing (``missing_audio``) or
unreadable / inconsistent (``unreadable_audio``), malformed entries, duplicate question ids,
empty questions or answers and passages longer than ``max_duration`` are skipped, counted and
listed in ``<save_folder>/<split>.skipped.tsv``.

Usage::

    python recipes/SpokenSQuAD/spokensquad_prepare.py /path/to/Spoken-SQuAD \\
        results/spokensquad/manifests test

Authors
-------
speechmapper developers, 2026
"""

import json
import logging
import os
import re

import numpy as np
import soundfile

from speechmapper_plugin.data.manifests import ANSWER_SEPARATOR
from speechmapper_plugin.data.preparation import layout_error, prepare_cli, run_preparation
from speechmapper_plugin.utils.text import normalize_text
from speechmapper_plugin.utils.textfiles import read_text

logger = logging.getLogger(__name__)

DATASET = "Spoken-SQuAD"
SPLITS = {
    "train": ("spoken_train-v1.1.json", "train_wav"),
    "test": ("spoken_test-v1.1.json", "dev_wav"),
}
AUDIO_ROOT = "Spoken-SQuAD_audio"
EXPECTED_LAYOUT = (
    "<data_folder>/spoken_{train,test}-v1.1.json (SQuAD v1.1 format) with the sentence wavs in "
    "<data_folder>/Spoken-SQuAD_audio/{train_wav,dev_wav}/<article>_<paragraph>_<sentence>.wav "
    "(train_wav/ and dev_wav/ may also lie in <data_folder>)"
)
HINT = (
    "Clone https://github.com/chiahsuan156/Spoken-SQuAD (the JSON files), download "
    "http://speech.ee.ntu.edu.tw/~chiahsuan/Spoken-SQuAD/Spoken-SQuAD_audio.zip into the clone, "
    "unzip it, then unzip Spoken-SQuAD_audio/train_wav.zip and Spoken-SQuAD_audio/dev_wav.zip so "
    "that the wav files lie directly in Spoken-SQuAD_audio/train_wav/ and .../dev_wav/."
)
_SENTENCE_WAV = re.compile(r"^(\d+)_(\d+)_(\d+)\.wav$")


def join_answers(texts):
    """The answer texts, stripped, deduplicated in order, joined with ``ANSWER_SEPARATOR``.

    Example
    -------
    >>> join_answers(["Denver Broncos", " Denver Broncos", "the Broncos", ""])
    'Denver Broncos ||| the Broncos'
    """
    unique = []
    for text in texts:
        text = str(text or "").strip()
        if text and text not in unique:
            unique.append(text)
    return ANSWER_SEPARATOR.join(unique)


def find_files(data_folder, split):
    """``(json_path, wav_folder)`` of a split (raises ``layout_error`` when missing)."""
    json_name, wav_name = SPLITS[split]
    json_path = os.path.join(data_folder, json_name)
    if not os.path.isfile(json_path):
        raise layout_error(DATASET, data_folder, f"{json_name} in " + EXPECTED_LAYOUT, HINT)
    for folder in (
        os.path.join(data_folder, AUDIO_ROOT, wav_name),
        os.path.join(data_folder, wav_name),
    ):
        if os.path.isdir(folder):
            return json_path, folder
    zipped = [
        p
        for p in (
            os.path.join(data_folder, AUDIO_ROOT, f"{wav_name}.zip"),
            os.path.join(data_folder, f"{AUDIO_ROOT}.zip"),
        )
        if os.path.isfile(p)
    ]
    hint = f"{zipped[0]} is still zipped: extract it first. " if zipped else ""
    raise layout_error(DATASET, data_folder, f"{wav_name}/ in " + EXPECTED_LAYOUT, hint + HINT)


def index_sentence_wavs(folder):
    """``{(article, paragraph): {sentence: path}}`` of the ``<a>_<p>_<s>.wav`` files of a folder."""
    index = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _SENTENCE_WAV.match(entry.name)
            if match:
                article, paragraph, sentence = (int(g) for g in match.groups())
                index.setdefault((article, paragraph), {})[sentence] = entry.path
    return index


def load_squad_json(path, data_folder):
    """The ``data`` list of a SQuAD-format JSON file (raises ``layout_error`` otherwise)."""
    try:
        content = json.loads(read_text(path))  # a byte that is not UTF-8: its line is named
    except json.JSONDecodeError as err:
        raise layout_error(
            DATASET, data_folder, EXPECTED_LAYOUT, f"{path} is not JSON ({err}). " + HINT
        ) from None
    if not isinstance(content, dict) or not isinstance(content.get("data"), list):
        raise layout_error(
            DATASET,
            data_folder,
            EXPECTED_LAYOUT,
            f"{path} is not in the SQuAD v1.1 format (no top-level 'data' list). " + HINT,
        )
    return content["data"]


def passage_audio(sentences, out_path):
    """Concatenate the sentence wavs (list of paths, in order) into ``out_path`` unless it already
    holds the right number of samples; returns ``(duration, None)`` or ``(None, (reason,
    detail))``."""
    try:
        infos = [soundfile.info(p) for p in sentences]
    except (RuntimeError, soundfile.LibsndfileError) as err:
        return None, ("unreadable_audio", str(err))
    rate, channels = infos[0].samplerate, infos[0].channels
    odd = [p for p, i in zip(sentences, infos) if (i.samplerate, i.channels) != (rate, channels)]
    if odd:
        return None, (
            "unreadable_audio",
            f"{odd[0]} has another sampling rate / channel count than {sentences[0]} "
            f"({rate} Hz, {channels} ch)",
        )
    frames = sum(i.frames for i in infos)
    if os.path.isfile(out_path):
        try:
            done = soundfile.info(out_path)
            if done.frames == frames and done.samplerate == rate and done.channels == channels:
                return frames / rate, None
        except (RuntimeError, soundfile.LibsndfileError):
            pass  # a broken earlier file: written again
    try:
        audio = np.concatenate(
            [soundfile.read(p, dtype="float32", always_2d=True)[0] for p in sentences]
        )
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as err:
        return None, ("unreadable_audio", str(err))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    tmp = f"{out_path}.tmp{os.getpid()}"
    soundfile.write(tmp, audio, rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, out_path)
    return frames / rate, None


def read_split(data_folder, save_folder, split, skip):
    """Candidate manifest rows of one split (see the module docstring)."""
    json_path, wav_folder = find_files(data_folder, split)
    articles = load_squad_json(json_path, data_folder)
    sentence_wavs = index_sentence_wavs(wav_folder)
    audio_folder = os.path.join(save_folder, "audio", split)
    bad_passages = 0
    for a, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            skip(
                f"{split}_{a}",
                "malformed_entry",
                f"{json_path}: data[{a}] has no 'paragraphs' list",
            )
            continue
        for p, paragraph in enumerate(paragraphs):
            where = f"{json_path}: data[{a}].paragraphs[{p}]"
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(qas, list):
                skip(f"{split}_{a}_{p}", "malformed_entry", f"{where} has no 'qas' list")
                continue
            questions = []
            for q, qa in enumerate(qas):
                qid = str(qa.get("id", "")).strip() if isinstance(qa, dict) else ""
                if not qid or not isinstance(qa.get("answers", []), list):
                    skip(qid or f"{split}_{a}_{p}_q{q}", "malformed_entry", f"{where}.qas[{q}]")
                    continue
                questions.append((qid, qa))
            if not questions:
                continue
            audio_id = f"{split}_{a}_{p}"
            found = sentence_wavs.get((a, p), {})
            missing = [s for s in range(max(found) + 1) if s not in found] if found else [0]
            if missing:
                bad_passages += 1
                names = ", ".join(f"{a}_{p}_{s}.wav" for s in missing[:3])
                detail = f"{os.path.join(wav_folder, '')}{{{names}}} missing"
                for qid, _ in questions:
                    skip(qid, "missing_audio", detail)
                continue
            wav = os.path.join(audio_folder, f"{audio_id}.wav")
            duration, error = passage_audio([found[s] for s in sorted(found)], wav)
            if error:
                bad_passages += 1
                for qid, _ in questions:
                    skip(qid, *error)
                continue
            context = str(paragraph.get("context", "")).strip()
            for qid, qa in questions:
                yield {
                    "ID": qid,
                    "wav": wav,
                    "duration": duration,
                    "audio_id": audio_id,
                    "wrd": normalize_text(context),
                    "transcript": context,
                    "tgt": join_answers(
                        ans.get("text", "") for ans in qa["answers"] if isinstance(ans, dict)
                    ),
                    "tgt_lang": "en",
                    "question": str(qa.get("question", "")).strip(),
                    "context": context,
                    "task": "sqa",
                }
    if bad_passages:
        logger.warning(
            "%s %s: %d passage(s) without complete, readable sentence audio; their questions are skipped.",
            DATASET,
            split,
            bad_passages,
        )


def prepare_spokensquad(data_folder, save_folder, splits, max_duration=None, skip_prep=False):
    """Write ``<save_folder>/<split>.csv`` (one row per question) and the passage wavs for each
    Spoken-SQuAD split (nothing to do when the manifests are up to date).

    Arguments
    ---------
    data_folder : str
        The Spoken-SQuAD clone holding the JSON files and the extracted audio.
    save_folder : str
        Where the manifests, ``<split>.skipped.tsv``, ``prepare_summary.json`` and the
        concatenated passage audio (``audio/<split>/``) go.
    splits : list of str
        Among ``train``, ``test``.
    max_duration : float, optional
        Questions on passages longer than this (seconds) are skipped and counted.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).

    Returns
    -------
    dict
        Per split: ``utterances``, ``hours``, ``skipped`` (reason -> count).
    """
    if skip_prep:
        return {}
    data_folder = os.path.abspath(data_folder)
    save_folder = os.path.abspath(save_folder)
    return run_preparation(
        DATASET,
        data_folder,
        save_folder,
        splits,
        lambda split, skip: read_split(data_folder, save_folder, split, skip),
        required=["question", "tgt", "context"],
        max_duration=max_duration,
        skip_prep=skip_prep,
        valid_splits=SPLITS,
        options={
            "passage_audio": "concatenated sentence wavs",
            "audio_folder": os.path.join(save_folder, "audio"),
        },
    )


if __name__ == "__main__":
    prepare_cli(prepare_spokensquad, __doc__.split("\n\n")[0], splits=list(SPLITS))
