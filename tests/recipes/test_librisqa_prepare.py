"""Tests for recipes/LibriSQA/librisqa_prepare.py on a tiny fake LibriSQA release (JSON lists in
the Hugging Face layout) plus a separate fake LibriSpeech tree, with awkward entries: missing
audio, an exact duplicate entry, several questions on one utterance, non-ASCII text, a malformed
speech_path, an empty answer, an utterance absent from its trans.txt, a list of answers."""

import hashlib
import json
import pathlib
import sys

import numpy as np
import prepare_checks as pc
import pytest
import soundfile as sf

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "LibriSQA"
sys.path.insert(0, str(RECIPE))

import librisqa_prepare as lsqa  # noqa: E402

from speechmapper_plugin.data.manifests import ANSWER_SEPARATOR  # noqa: E402

SR = 16000
TRANS = {  # utterance -> (transcript line or None (not in trans.txt), seconds or None (no flac))
    "1089-134686-0000": ("HE HOPED THERE WOULD BE STEW FOR DINNER", 0.5),
    "1089-134686-0001": ("CAF\u00c9 NOIR AND BREAD", 0.75),
    "1089-134686-0002": (None, 0.5),  # not in trans.txt, JSON text used
    "1089-134686-0003": (None, 0.5),  # not in trans.txt, no JSON text
    "1089-134686-0004": ("A VERY LONG ONE", 3.0),
    "1089-134686-0009": ("NO AUDIO FOR THIS ONE", None),
}
MC_QUESTION = (
    "What did he hope for?\nA. Stew for dinner\nB. Caf\u00e9 au lait\nC. Bread\nD. Nothing"
)
PART1_TEST = [
    {
        "speech_path": "LibriSpeech/test-clean/1089/134686/1089-134686-0000.wav",
        "question": "What did he hope there would be?",
        "answer": "He hoped there would be stew for dinner.",
        "text": "HE HOPED THERE WOULD BE STEW FOR DINNER",
        "duration": 0.5,
    },
    {  # non-ASCII question and answer, other path prefix, .flac
        "speech_path": "/data/test-clean/1089/134686/1089-134686-0001.flac",
        "question": "Qu\u2019est-ce qu\u2019il mange\u00a0?",
        "answer": "Caf\u00e9 noir et du pain.",
        "text": "CAFE NOIR AND BREAD",
        "duration": 0.75,
    },
    {  # exact duplicate of the first entry
        "speech_path": "LibriSpeech/test-clean/1089/134686/1089-134686-0000.wav",
        "question": "What did he hope there would be?",
        "answer": "He hoped there would be stew for dinner.",
        "text": "HE HOPED THERE WOULD BE STEW FOR DINNER",
        "duration": 0.5,
    },
    {  # a second question on the first utterance; a list of answers
        "speech_path": "LibriSpeech/test-clean/1089/134686/1089-134686-0000.wav",
        "question": "When?",
        "answer": ["For dinner.", "For dinner. ", "In the evening."],
        "text": "HE HOPED THERE WOULD BE STEW FOR DINNER",
        "duration": 0.5,
    },
    {
        "speech_path": "LibriSpeech/test-clean/1089/134686/1089-134686-0009.wav",
        "question": "Where is the audio?",
        "answer": "Nowhere.",
        "text": "NO AUDIO FOR THIS ONE",
        "duration": 1.0,
    },
    {"speech_path": "LibriSpeech/test-clean/readme.wav", "question": "?", "answer": "x"},
    {
        "speech_path": "LibriSpeech/test-clean/1089/134686/1089-134686-0001.wav",
        "question": "Empty answer?",
        "answer": "  ",
        "text": "CAFE NOIR AND BREAD",
    },
    {
        "speech_path": "LibriSpeech/test-clean/1089/134686/1089-134686-0002.wav",
        "question": "Not in trans.txt?",
        "answer": "Yes.",
        "text": "Taken from the JSON.",
    },
    {
        "speech_path": "LibriSpeech/test-clean/1089/134686/1089-134686-0003.wav",
        "question": "No transcript at all?",
        "answer": "None.",
    },
    {
        "speech_path": "LibriSpeech/test-clean/1089/134686/1089-134686-0004.wav",
        "question": "Long?",
        "answer": "Yes.",
        "text": "A VERY LONG ONE",
    },
]
PART2_TEST = [
    {
        "speech_path": "LibriSpeech/test-clean/1089/134686/1089-134686-0000.wav",
        "question_and_option": MC_QUESTION,
        "answer": "A",
        "answer_and_analysis": "A. The speaker hopes for stew for dinner.",
        "text": "HE HOPED THERE WOULD BE STEW FOR DINNER",
    }
]
PART1_TRAIN = [
    {
        "speech_path": "LibriSpeech/train-clean-360/14/208/14-208-0000.wav",
        "question": "Who?",
        "answer": "Nobody.",
        "text": "NOBODY CAME",
    }
]


def qid(utt, question):
    return f"{utt}-{hashlib.sha1(question.encode('utf-8')).hexdigest()[:8]}"


def _write_librispeech(root, subset, speaker, chapter, utts):
    folder = root / "LibriSpeech" / subset / speaker / chapter
    folder.mkdir(parents=True)
    lines = []
    for n, (utt, (text, seconds)) in enumerate(utts.items()):
        if text is not None:
            lines.append(f"{utt} {text}")
        if seconds is not None:
            samples = np.random.default_rng(n).uniform(-0.3, 0.3, int(seconds * SR))
            sf.write(str(folder / f"{utt}.flac"), samples.astype("float32"), SR, format="FLAC")
    (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n", "utf-8")


@pytest.fixture
def corpus(tmp_path):
    data = tmp_path / "LibriSQA"
    for part, split, entries in (
        ("PartI", "test", PART1_TEST),
        ("PartII", "test", PART2_TEST),
        ("PartI", "train", PART1_TRAIN),
    ):
        (data / f"LibriSQA-{part}").mkdir(parents=True, exist_ok=True)
        path = data / f"LibriSQA-{part}" / f"LibriSQA-{part}-{split}.json"
        path.write_text(json.dumps(entries, ensure_ascii=False, indent=1), "utf-8")
    ls = tmp_path / "ls"
    _write_librispeech(ls, "test-clean", "1089", "134686", TRANS)
    _write_librispeech(ls, "train-clean-360", "14", "208", {"14-208-0000": ("NOBODY CAME", 0.25)})
    return data, ls


def _prepare(corpus, save, splits=("partI_test", "partII_test"), **kwargs):
    data, ls = corpus
    kwargs.setdefault("librispeech_folder", str(ls))
    return lsqa.prepare_librisqa(str(data), str(save), list(splits), **kwargs)


def test_part1_rows(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save, max_duration=2.0)
    folder = corpus[1] / "LibriSpeech" / "test-clean" / "1089" / "134686"
    with open(save / "partI_test.csv", encoding="utf-8") as f:
        assert f.readline().strip().split(",") == [
            "ID",
            "duration",
            "wav",
            "audio_id",
            "spk_id",
            "wrd",
            "transcript",
            "tgt",
            "tgt_lang",
            "question",
            "context",
            "task",
        ]
    rows = pc.read_csv_dicts(save / "partI_test.csv")
    stew = "HE HOPED THERE WOULD BE STEW FOR DINNER"
    cafe = "CAF\u00c9 NOIR AND BREAD"

    def row(utt, seconds, transcript, wrd, tgt, question):
        return {
            "ID": qid(utt, question),
            "duration": seconds,
            "wav": str(folder / f"{utt}.flac"),
            "audio_id": utt,
            "spk_id": "1089",
            "wrd": wrd,
            "transcript": transcript,
            "tgt": tgt,
            "tgt_lang": "en",
            "question": question,
            "context": transcript,
            "task": "sqa",
        }

    assert rows == [
        row(
            "1089-134686-0000",
            "0.5",
            stew,
            "he hoped there would be stew for dinner",
            "He hoped there would be stew for dinner.",
            "What did he hope there would be?",
        ),
        row(
            "1089-134686-0001",
            "0.75",
            cafe,
            "caf\u00e9 noir and bread",
            "Caf\u00e9 noir et du pain.",
            "Qu\u2019est-ce qu\u2019il mange\u00a0?",
        ),
        row(
            "1089-134686-0000",
            "0.5",
            stew,
            "he hoped there would be stew for dinner",
            f"For dinner.{ANSWER_SEPARATOR}In the evening.",
            "When?",
        ),
        row(
            "1089-134686-0002",
            "0.5",
            "Taken from the JSON.",
            "taken from the json",
            "Yes.",
            "Not in trans.txt?",
        ),
    ]
    assert summary["partI_test"]["utterances"] == 4
    assert summary["partI_test"]["hours"] == round(2.25 / 3600, 3)


def test_part2_question_holds_the_choices_and_tgt_the_answer_field(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save)
    rows = pc.read_csv_dicts(save / "partII_test.csv")
    assert len(rows) == 1
    assert rows[0]["ID"] == qid("1089-134686-0000", MC_QUESTION)
    assert rows[0]["question"] == MC_QUESTION
    assert rows[0]["tgt"] == "A"
    assert rows[0]["context"] == rows[0]["transcript"] == "HE HOPED THERE WOULD BE STEW FOR DINNER"
    assert rows[0]["audio_id"] == "1089-134686-0000"
    assert summary["partII_test"]["skipped"] == {}


def test_skips_are_counted_and_listed(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save, max_duration=2.0)
    assert summary["partI_test"]["skipped"] == {
        "duplicate_id": 1,
        "missing_audio": 1,
        "malformed_entry": 1,
        "empty_tgt": 1,
        "empty_transcript": 1,
        "too_long": 1,
    }
    pc.assert_summary_file(save, summary)
    listed = {fields[0]: fields[1:] for fields in pc.read_skipped(save, "partI_test")}
    assert listed == {
        qid("1089-134686-0000", "What did he hope there would be?"): [
            "duplicate_id",
            str(corpus[1] / "LibriSpeech/test-clean/1089/134686/1089-134686-0000.flac"),
        ],
        qid("1089-134686-0009", "Where is the audio?"): [
            "missing_audio",
            str(corpus[1] / "LibriSpeech/test-clean/1089/134686/1089-134686-0009.flac"),
        ],
        "partI_test_entry5": [
            "malformed_entry",
            f"{corpus[0] / 'LibriSQA-PartI' / 'LibriSQA-PartI-test.json'}: entry 5: speech_path "
            "'LibriSpeech/test-clean/readme.wav' names no LibriSpeech utterance",
        ],
        qid("1089-134686-0001", "Empty answer?"): ["empty_tgt", "no tgt in the source"],
        qid("1089-134686-0003", "No transcript at all?"): [
            "empty_transcript",
            f"1089-134686-0003 in {corpus[1] / 'LibriSpeech/test-clean/1089/134686'}",
        ],
        qid("1089-134686-0004", "Long?"): ["too_long", "3.0s > 2.0s"],
    }


def test_rerun_is_a_noop(corpus, tmp_path, monkeypatch):
    save = tmp_path / "m"
    pc.assert_second_call_is_a_no_op(
        monkeypatch, lsqa, "read_split", lambda: _prepare(corpus, save, max_duration=2.0), save
    )
    second = _prepare(corpus, save, max_duration=None)  # other options: prepared again
    assert second["partI_test"]["utterances"] == 5


def test_train_split_default_librispeech_folder_and_old_file_name(corpus, tmp_path):
    data, ls = corpus
    # LibriSpeech under data_folder (the default librispeech_folder); the file under its old name
    (ls / "LibriSpeech").rename(data / "LibriSpeech")
    old = data / "LibriSQA-PartI" / "LibriSQA-PartI-training.json"
    (data / "LibriSQA-PartI" / "LibriSQA-PartI-train.json").rename(old)
    summary = lsqa.prepare_librisqa(str(data), str(tmp_path / "m"), ["partI_train"])
    assert summary["partI_train"]["utterances"] == 1
    row = pc.read_csv_dicts(tmp_path / "m" / "partI_train.csv")[0]
    assert row["wav"] == str(data / "LibriSpeech/train-clean-360/14/208/14-208-0000.flac")
    assert (row["audio_id"], row["spk_id"], row["wrd"]) == ("14-208-0000", "14", "nobody came")


def test_wrong_layout_describes_the_expected_one(corpus, tmp_path):
    message = pc.empty_folder_error(
        tmp_path,
        lambda folder: lsqa.prepare_librisqa(str(folder), str(tmp_path / "m"), ["partI_test"]),
    )
    assert "LibriSQA-PartI-test.json in <data_folder>/LibriSQA-Part{I,II}/" in message
    assert "<librispeech_folder>/LibriSpeech/<subset>/<speaker>/<chapter>/" in message
    assert "huggingface.co/datasets/ZihanZhao/LibriSQA" in message

    # the LibriSQA files without LibriSpeech (librispeech_folder defaults to data_folder)
    with pytest.raises(FileNotFoundError, match=r"LibriSpeech test-clean for partI_test"):
        lsqa.prepare_librisqa(str(corpus[0]), str(tmp_path / "m"), ["partI_test"])

    # a Git LFS pointer instead of the JSON file
    lfs = tmp_path / "lfs" / "LibriSQA-PartII"
    lfs.mkdir(parents=True)
    (lfs / "LibriSQA-PartII-test.json").write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(FileNotFoundError, match="Git LFS pointer"):
        _prepare((tmp_path / "lfs", corpus[1]), tmp_path / "m", splits=["partII_test"])
    assert not (tmp_path / "m" / "partI_test.csv").exists()


def test_unknown_split_and_skip_prep(corpus, tmp_path):
    with pytest.raises(
        ValueError, match=r"unknown split\(s\) \['test'\]; valid splits: \['partI_train'"
    ):
        _prepare(corpus, tmp_path / "m", splits=["test"])
    assert lsqa.prepare_librisqa("/nonexistent", str(tmp_path / "m"), ["x"], skip_prep=True) == {}
    assert not (tmp_path / "m").exists()
