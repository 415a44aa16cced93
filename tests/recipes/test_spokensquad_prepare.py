"""Tests for recipes/SpokenSQuAD/spokensquad_prepare.py on a tiny fake Spoken-SQuAD tree (SQuAD
v1.1 JSON + one TTS wav per context sentence) with awkward entries: a passage with a missing
sentence wav, a passage without audio, duplicate question ids, repeated answers, non-ASCII text,
an empty answer list, a too-long passage."""

import json
import os
import pathlib
import sys

import numpy as np
import prepare_checks as pc
import pytest
import soundfile as sf

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "SpokenSQuAD"
sys.path.insert(0, str(RECIPE))

import spokensquad_prepare as ssp  # noqa: E402

from speechmapper_plugin.data.manifests import ANSWER_SEPARATOR  # noqa: E402

SR = 24000  # Google TTS rate of the official wavs
CAFE_CONTEXT = "the caf\u00e9 opens at nine. it serves coffee and cr\u00eapes."
TEST_JSON = {
    "version": "1.1",
    "data": [
        {
            "title": "Caf\u00e9",
            "paragraphs": [
                {  # 3 sentence wavs: 0.25 + 0.5 + 0.25 s
                    "context": CAFE_CONTEXT,
                    "qas": [
                        {
                            "id": "q-coffee",
                            "question": "What does the caf\u00e9 serve?",
                            "answers": [
                                {"answer_start": 45, "text": "coffee"},
                                {"answer_start": 45, "text": "coffee "},
                                {"answer_start": 45, "text": "coffee and cr\u00eapes"},
                                {"answer_start": 45, "text": "coffee"},
                            ],
                        },
                        {
                            "id": "q-time",
                            "question": "\u00c0 quelle heure ouvre le caf\u00e9\u00a0?",
                            "answers": [{"answer_start": 18, "text": "nine"}],
                        },
                        {"id": "q-coffee", "question": "Duplicate id?", "answers": [{"text": "x"}]},
                        {"id": "q-noanswer", "question": "No answer?", "answers": []},
                    ],
                },
                {  # sentence 1 of 3 missing
                    "context": "one. two. three.",
                    "qas": [
                        {"id": "q-gap1", "question": "First?", "answers": [{"text": "one"}]},
                        {"id": "q-gap2", "question": "Last?", "answers": [{"text": "three"}]},
                    ],
                },
            ],
        },
        {
            "title": "Long",
            "paragraphs": [
                {  # no audio at all
                    "context": "nothing was synthesized.",
                    "qas": [{"id": "q-noaudio", "question": "What?", "answers": [{"text": "x"}]}],
                },
                {  # 2 sentences of 1.5 s: too long for max_duration=2
                    "context": "a long one. really long.",
                    "qas": [{"id": "q-long", "question": "Long?", "answers": [{"text": "long"}]}],
                },
                {"context": "no questions here.", "qas": []},
            ],
        },
    ],
}
TEST_WAVS = {"0_0": [0.25, 0.5, 0.25], "0_1": [0.5, None, 0.5], "1_1": [1.5, 1.5], "1_2": [0.5]}
TRAIN_JSON = {
    "data": [
        {
            "title": "T",
            "paragraphs": [
                {
                    "context": "train passage.",
                    "qas": [{"id": "t1", "question": "Q?", "answers": [{"text": "a"}]}],
                }
            ],
        }
    ]
}
EXPECTED_SKIPS = {
    "q-coffee": "duplicate_id",
    "q-noanswer": "empty_tgt",
    "q-gap1": "missing_audio",
    "q-gap2": "missing_audio",
    "q-noaudio": "missing_audio",
    "q-long": "too_long",
}


def _tone(seconds, seed):
    samples = np.random.default_rng(seed).uniform(-0.3, 0.3, int(round(seconds * SR)))
    return (np.round(samples * 32767) / 32767).astype("float32")  # exactly representable in 16 bit


def _write_corpus(root, split_json, wav_folder, wavs):
    root.mkdir(parents=True, exist_ok=True)
    (root / split_json[0]).write_text(json.dumps(split_json[1], ensure_ascii=False), "utf-8")
    folder = root / "Spoken-SQuAD_audio" / wav_folder
    folder.mkdir(parents=True)
    for seed, (passage, lengths) in enumerate(wavs.items()):
        for sentence, seconds in enumerate(lengths):
            if seconds is not None:
                path = folder / f"{passage}_{sentence}.wav"
                sf.write(str(path), _tone(seconds, seed * 10 + sentence), SR, subtype="PCM_16")
    (folder / "README.txt").write_text("not a sentence wav")  # ignored


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "Spoken-SQuAD"
    _write_corpus(root, ("spoken_test-v1.1.json", TEST_JSON), "dev_wav", TEST_WAVS)
    _write_corpus(root, ("spoken_train-v1.1.json", TRAIN_JSON), "train_wav", {"0_0": [0.5]})
    return root


def _prepare(corpus, save, splits=("test",), **kwargs):
    return ssp.prepare_spokensquad(str(corpus), str(save), list(splits), **kwargs)


def test_manifest_rows(corpus, tmp_path):
    save = tmp_path / "manifests"
    summary = _prepare(corpus, save, splits=["test", "train"], max_duration=2.0)
    with open(save / "test.csv", encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    assert header == [
        "ID",
        "duration",
        "wav",
        "audio_id",
        "wrd",
        "transcript",
        "tgt",
        "tgt_lang",
        "question",
        "context",
        "task",
    ]
    rows = pc.read_csv_dicts(save / "test.csv")
    assert [r["ID"] for r in rows] == ["q-coffee", "q-time"]
    wav = str(save / "audio" / "test" / "test_0_0.wav")
    common = {
        "duration": "1.0",
        "wav": wav,
        "audio_id": "test_0_0",
        "wrd": "the caf\u00e9 opens at nine it serves coffee and cr\u00eapes",
        "transcript": CAFE_CONTEXT,
        "tgt_lang": "en",
        "context": CAFE_CONTEXT,
        "task": "sqa",
    }
    assert rows[0] == {
        "ID": "q-coffee",
        **common,
        "tgt": f"coffee{ANSWER_SEPARATOR}coffee and cr\u00eapes",
        "question": "What does the caf\u00e9 serve?",
    }
    assert rows[1] == {
        "ID": "q-time",
        **common,
        "tgt": "nine",
        "question": "\u00c0 quelle heure ouvre le caf\u00e9\u00a0?",
    }
    assert summary["test"] == {
        "utterances": 2,
        "hours": 0.001,
        "skipped": {"duplicate_id": 1, "empty_tgt": 1, "missing_audio": 3, "too_long": 1},
    }
    train = pc.read_csv_dicts(save / "train.csv")
    assert [(r["ID"], r["audio_id"], r["duration"], r["tgt"]) for r in train] == [
        ("t1", "train_0_0", "0.5", "a")
    ]
    assert train[0]["wav"] == str(save / "audio" / "train" / "train_0_0.wav")


def test_passage_audio_is_the_concatenation_of_its_sentences(corpus, tmp_path):
    save = tmp_path / "m"
    _prepare(corpus, save, max_duration=2.0)
    audio, rate = sf.read(str(save / "audio" / "test" / "test_0_0.wav"), dtype="float32")
    assert rate == SR
    expected = np.concatenate([_tone(0.25, 0), _tone(0.5, 1), _tone(0.25, 2)])
    np.testing.assert_allclose(audio, expected, atol=1e-4)
    # passages whose questions are all skipped before the length check get no audio
    assert sorted(os.listdir(save / "audio" / "test")) == ["test_0_0.wav", "test_1_1.wav"]
    assert not [n for n in os.listdir(save / "audio" / "test") if ".tmp" in n]


def test_skips_are_counted_and_listed(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save, max_duration=2.0)
    pc.assert_summary_file(save, summary)
    listed = pc.read_skipped(save, "test")
    assert sorted((u, r) for u, r, _ in listed) == sorted(EXPECTED_SKIPS.items())
    details = {u: d for u, _, d in listed}
    assert details["q-gap1"].endswith("dev_wav/{0_1_1.wav} missing")
    assert details["q-noaudio"].endswith("dev_wav/{1_0_0.wav} missing")
    assert details["q-long"] == "3.0s > 2.0s"


def test_rerun_is_a_noop_and_audio_is_reused(corpus, tmp_path, monkeypatch):
    save = tmp_path / "m"
    passage = save / "audio" / "test" / "test_0_0.wav"
    # the no-op check covers every file under save, the passage wavs in audio/ included
    _, inodes = pc.assert_second_call_is_a_no_op(
        monkeypatch, ssp, "read_split", lambda: _prepare(corpus, save, max_duration=2.0), save
    )
    passage_inode = inodes[os.path.join("audio", "test", "test_0_0.wav")]

    # manifest lost: prepared again, the passage wav (right length) is not rewritten
    expected = (save / "test.csv").read_text()
    (save / "test.csv").unlink()
    _prepare(corpus, save, max_duration=2.0)
    assert (save / "test.csv").read_text() == expected
    assert passage.stat().st_ino == passage_inode

    # a truncated passage wav is written again
    sf.write(str(passage), np.zeros(10, dtype="float32"), SR)
    second = _prepare(corpus, save, max_duration=None)  # other options: prepared again
    assert sf.info(str(passage)).frames == SR
    assert second["test"]["utterances"] == 3  # the long passage is now kept
    assert "too_long" not in second["test"]["skipped"]


def test_wrong_layout_describes_the_expected_one(tmp_path, corpus):
    message = pc.empty_folder_error(tmp_path, lambda folder: _prepare(folder, tmp_path / "m"))
    assert "spoken_test-v1.1.json in <data_folder>/spoken_{train,test}-v1.1.json" in message
    assert "Spoken-SQuAD_audio/{train_wav,dev_wav}/<article>_<paragraph>_<sentence>.wav" in message

    # JSON present, audio still zipped
    zipped = tmp_path / "zipped"
    (zipped / "Spoken-SQuAD_audio").mkdir(parents=True)
    (zipped / "spoken_test-v1.1.json").write_text(json.dumps(TEST_JSON))
    (zipped / "Spoken-SQuAD_audio" / "dev_wav.zip").write_bytes(b"PK")
    with pytest.raises(FileNotFoundError, match=r"dev_wav/ in .*dev_wav\.zip is still zipped"):
        _prepare(zipped, tmp_path / "m")

    # a JSON file that is not in the SQuAD format (e.g. another dataset's file)
    other = tmp_path / "other"
    (other / "dev_wav").mkdir(parents=True)
    (other / "spoken_test-v1.1.json").write_text(json.dumps([{"question": "q"}]))
    with pytest.raises(FileNotFoundError, match="not in the SQuAD v1.1 format"):
        _prepare(other, tmp_path / "m")
    assert not (tmp_path / "m" / "test.csv").exists()


def test_wav_folders_directly_in_data_folder(corpus, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "spoken_test-v1.1.json").write_text((corpus / "spoken_test-v1.1.json").read_text())
    (corpus / "Spoken-SQuAD_audio" / "dev_wav").rename(flat / "dev_wav")
    summary = _prepare(flat, tmp_path / "m", max_duration=2.0)
    assert summary["test"]["utterances"] == 2


def test_unknown_split_and_skip_prep(corpus, tmp_path):
    with pytest.raises(
        ValueError, match=r"unknown split\(s\) \['dev'\]; valid splits: \['train', 'test'\]"
    ):
        _prepare(corpus, tmp_path / "m", splits=["dev"])
    assert _prepare(tmp_path / "none", tmp_path / "m", skip_prep=True) == {}
    assert not (tmp_path / "m").exists()


def test_inconsistent_sentence_audio_is_skipped(tmp_path):
    root = tmp_path / "c"
    data = {
        "data": [
            {
                "paragraphs": [
                    {
                        "context": "a. b.",
                        "qas": [{"id": "q", "question": "?", "answers": [{"text": "a"}]}],
                    }
                ]
            }
        ]
    }
    _write_corpus(root, ("spoken_test-v1.1.json", data), "dev_wav", {"0_0": [0.5]})
    sf.write(
        str(root / "Spoken-SQuAD_audio" / "dev_wav" / "0_0_1.wav"), np.zeros(800, "float32"), 16000
    )
    with pytest.raises(ValueError, match=r"no usable row \(1 skipped: \{'unreadable_audio': 1\}"):
        _prepare(root, tmp_path / "m")
    line = (tmp_path / "m" / "test.skipped.tsv").read_text().strip().split("\t")
    assert line[:2] == ["q", "unreadable_audio"] and "another sampling rate" in line[2]


def test_non_utf8_json_names_the_file_and_line(corpus, tmp_path):
    """A JSON file cannot be partly read: a byte that is not UTF-8 is an error naming the file,
    the line and the column (not a bare UnicodeDecodeError; issue 17)."""
    path = corpus / "spoken_test-v1.1.json"
    lines = json.dumps(TEST_JSON, ensure_ascii=False, indent=1).encode("utf-8").split(b"\n")
    lines[3] = b" \xff" + lines[3]  # a latin-1 byte on line 4
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError) as err:
        _prepare(corpus, tmp_path / "m")
    assert str(err.value).startswith(f"{path} line 4: not valid UTF-8 (byte 0xff at column 2)")
