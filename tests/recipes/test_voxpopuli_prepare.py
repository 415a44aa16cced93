"""Tests for recipes/VoxPopuli/voxpopuli_prepare.py on a tiny tree in the layout written by the
official ``voxpopuli.get_asr_data`` script (Ogg Vorbis segments, tab-separated manifests)."""

import os
import pathlib
import sys

import numpy as np
import prepare_checks as pc
import pytest
import soundfile as sf

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "VoxPopuli"
sys.path.insert(0, str(RECIPE))

import voxpopuli_prepare as vp  # noqa: E402

SR = 16000
HEADER = [
    "id",
    "raw_text",
    "normalized_text",
    "speaker_id",
    "split",
    "gender",
    "is_gold_transcript",
    "accent",
]
U1 = "20180313-0900-PLENARY-15-en_20180313-16:42:25_3"
U2 = "20180313-0900-PLENARY-15-en_20180313-16:45:10_0"
U3 = "20190114-0900-PLENARY-12-en_20190114-18:02:45_1"
U4 = "20190114-0900-PLENARY-12-en_20190114-18:05:00_2"  # no audio
U5 = "20190114-0900-PLENARY-12-en_20190114-18:07:31_4"  # no transcript at all
U6 = "20190114-0900-PLENARY-12-en_20190114-18:09:02_5"  # malformed line
DEV = "20200115-0900-PLENARY-3-en_20200115-09:12:40_7"
TEST_ROWS = [  # (id, raw_text, normalized_text, speaker_id, seconds or None)
    (
        U1,
        'Mr President, I\'d like to say "thank you".',
        "mr president i'd like to say thank you",
        "28229",
        1.0,
    ),
    (U2, "", "the committee has voted", "4542", 0.5),
    (U3, "Mr \u0160ef\u010dovi\u010d, the Commission\u2019s answer\u2026", "", "96762", 0.75),
    (U4, "Missing audio here.", "missing audio here", "96762", None),
    (U1, "A duplicate of the first row.", "a duplicate of the first row", "28229", None),
    (U5, "", "", "4542", 0.5),
]
EXPECTED_TEST = [  # ID, duration, spk_id, wrd, transcript, task
    (U1, "1.0", "28229", "mr president i'd like to say thank you", TEST_ROWS[0][1], "asr"),
    (U2, "0.5", "4542", "the committee has voted", "the committee has voted", "asr"),
    (
        U3,
        "0.75",
        "96762",
        "mr \u0161ef\u010dovi\u010d the commission's answer",
        TEST_ROWS[2][1],
        "asr",
    ),
]
EXPECTED_SKIPS = {U4: "missing_audio", U1: "duplicate_id", U5: "empty_wrd", U6: "malformed_row"}


def _ogg(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.random.default_rng(0).uniform(-0.3, 0.3, int(seconds * SR)).astype("float32")
    sf.write(str(path), samples, SR, format="OGG", subtype="VORBIS")


def _write_split(en, split, rows, malformed=()):
    lines = ["\t".join(HEADER)]
    for utt_id, raw, norm, spk, seconds in rows:
        lines.append("\t".join([utt_id, raw, norm, spk, split, "male", "True", "None"]))
        if seconds is not None:
            _ogg(en / utt_id[:4] / f"{utt_id}.ogg", seconds)
    lines.extend(malformed)
    (en / f"asr_{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "voxpopuli"
    en = root / "transcribed_data" / "en"
    en.mkdir(parents=True)
    _write_split(en, "test", TEST_ROWS, malformed=[f"{U6}\tonly\tfour\tfields", ""])
    _write_split(
        en, "dev", [(DEV, "Thank you, Commissioner.", "thank you commissioner", "1", 0.25)]
    )
    return root


def _prepare(data_folder, save, splits=("test", "dev"), **kwargs):
    return vp.prepare_voxpopuli(str(data_folder), str(save), list(splits), **kwargs)


def test_manifest_rows(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save)
    header, rows = pc.read_csv(save / "test.csv")
    assert header == ["ID", "duration", "wav", "spk_id", "wrd", "transcript", "task"]
    assert [tuple(r[:2] + r[3:]) for r in rows] == EXPECTED_TEST
    en = corpus / "transcribed_data" / "en"
    assert [r[2] for r in rows] == [str(en / r[0][:4] / f"{r[0]}.ogg") for r in rows]
    assert all(os.path.isabs(r[2]) and os.path.isfile(r[2]) for r in rows)
    _, dev = pc.read_csv(save / "dev.csv")
    assert dev == [
        [DEV, "0.25", str(en / "2020" / f"{DEV}.ogg"), "1", "thank you commissioner"]
        + ["Thank you, Commissioner.", "asr"]
    ]
    assert summary["dev"] == {"utterances": 1, "hours": 0.0, "skipped": {}}


def test_skips_are_counted_and_listed(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save)
    assert summary["test"]["utterances"] == 3
    assert summary["test"]["hours"] == round(2.25 / 3600, 3)
    assert summary["test"]["skipped"] == {
        "malformed_row": 1,
        "duplicate_id": 1,
        "missing_audio": 1,
        "empty_wrd": 1,
    }
    pc.assert_summary_file(save, summary)
    listed = pc.assert_skip_reasons(save, "test", EXPECTED_SKIPS)
    assert listed[U4][2].endswith(f"2019/{U4}.ogg")
    assert "asr_test.tsv:8: 4 fields, 8 expected" in listed[U6][2]
    assert (save / "dev.skipped.tsv").read_text() == ""


def test_max_duration(corpus, tmp_path):
    summary = _prepare(corpus, tmp_path / "m", splits=["test"], max_duration=0.8)
    assert summary["test"]["utterances"] == 2
    assert summary["test"]["skipped"]["too_long"] == 1
    _, rows = pc.read_csv(tmp_path / "m" / "test.csv")
    assert U1 not in [r[0] for r in rows]


def test_second_call_is_a_no_op(corpus, tmp_path, monkeypatch):
    save = tmp_path / "m"
    pc.assert_second_call_is_a_no_op(
        monkeypatch, vp, "read_split", lambda: _prepare(corpus, save), save
    )


@pytest.mark.parametrize("sub", ["transcribed_data", "transcribed_data/en"])
def test_data_folder_may_be_a_subfolder(corpus, tmp_path, sub):
    _prepare(corpus, tmp_path / "a")
    _prepare(corpus / sub, tmp_path / "b")
    pc.assert_same_manifests(tmp_path / "a", tmp_path / "b", ("test", "dev"))


def test_wrong_layout_names_the_expected_one(tmp_path):
    message = pc.empty_folder_error(tmp_path, lambda folder: _prepare(folder, tmp_path / "m"))
    assert "asr_test.tsv in <data_folder>/transcribed_data/en/asr_<split>.tsv" in message
    assert "<data_folder>/transcribed_data/en/<year>/<id>.ogg" in message
    assert "voxpopuli.get_asr_data --root <data_folder> --lang en" in message
    assert not (tmp_path / "m" / "test.csv").exists()


def test_unsegmented_or_unfinished_download(tmp_path):
    raw = tmp_path / "raw"
    (raw / "raw_audios" / "original" / "2018").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="raw_audios/ only: the sessions are not segmented"):
        _prepare(raw, tmp_path / "m")
    (raw / "transcribed_data" / "en").mkdir(parents=True)
    (raw / "transcribed_data" / "en" / "asr_en.tsv.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="get_asr_data did not finish"):
        _prepare(raw, tmp_path / "m")


def test_tsv_without_the_expected_columns(tmp_path):
    en = tmp_path / "transcribed_data" / "en"
    en.mkdir(parents=True)
    (en / "asr_test.tsv").write_text("id|raw_text|speaker_id\nx|y|z\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"without the columns \['id', 'raw_text'"):
        _prepare(tmp_path, tmp_path / "m", splits=["test"])


def test_unknown_split_and_skip_prep(corpus, tmp_path):
    with pytest.raises(ValueError, match=r"valid splits: \['train', 'dev', 'test'\]"):
        _prepare(corpus, tmp_path / "m", splits=["validation"])
    assert _prepare(tmp_path / "none", tmp_path / "m", skip_prep=True) == {}
    assert not (tmp_path / "m").exists()
