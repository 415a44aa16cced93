"""Tests for recipes/FLEURS/fleurs_prepare.py on a tiny ``google/fleurs`` tree (``data/en_us``,
header-less 7-column tsv files, wav files extracted from ``audio/<split>.tar.gz``)."""

import pathlib
import sys
import tarfile

import numpy as np
import prepare_checks as pc
import pytest
import soundfile as sf

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "FLEURS"
sys.path.insert(0, str(RECIPE))

import fleurs_prepare as fl  # noqa: E402

SR = 16000
RAW1 = "Each week, the \u201cSunday Times\u201d reports 20 stories."
RAW3 = "Caf\u00e9 au lait \u2013 S\u00e3o Tom\u00e9\u2019s favourite."
TEST_ROWS = [  # (sentence id, file name, raw, transcription, seconds or None, gender)
    (
        "1871",
        "10004088536354799741.wav",
        RAW1,
        "each week the sunday times reports 20 stories",
        1.0,
        "MALE",
    ),
    # the same sentence read by another speaker: same id, another file
    (
        "1871",
        "1000455656839271811.wav",
        RAW1,
        "each week the sunday times reports 20 stories",
        0.5,
        "FEMALE",
    ),
    ("1902", "11234567890123456789.wav", RAW3, "café au lait são tomé's favourite", 0.75, "MALE"),
    ("1903", "12345678901234567890.wav", "Missing audio.", "missing audio", None, "MALE"),
    ("1904", "10004088536354799741.wav", "Duplicate file.", "duplicate file", None, "MALE"),
    ("1905", "13456789012345678901.wav", "", "fallback transcription", 0.25, "OTHER"),
]
EXPECTED_TEST = [  # ID, duration, wrd, transcript, task
    ("10004088536354799741", "1.0", "each week the sunday times reports stories", RAW1, "asr"),
    ("1000455656839271811", "0.5", "each week the sunday times reports stories", RAW1, "asr"),
    (
        "11234567890123456789",
        "0.75",
        "caf\u00e9 au lait s\u00e3o tom\u00e9's favourite",
        RAW3,
        "asr",
    ),
    ("13456789012345678901", "0.25", "fallback transcription", "fallback transcription", "asr"),
]
EXPECTED_SKIPS = {
    "12345678901234567890": "missing_audio",
    "10004088536354799741": "duplicate_id",
    "14567890123456789012": "malformed_row",
}


def _wav(path, seconds):
    samples = np.random.default_rng(0).uniform(-0.3, 0.3, int(seconds * SR)).astype("float32")
    sf.write(str(path), samples, SR, subtype="PCM_16")


def _write_split(en_us, split, rows, extra=()):
    audio = en_us / "audio" / split
    audio.mkdir(parents=True)
    lines = []
    for sid, name, raw, norm, seconds, gender in rows:
        samples = str(int((seconds or 1.0) * SR))
        lines.append("\t".join([sid, name, raw, norm, "e a c h | w e e k", samples, gender]))
        if seconds is not None:
            _wav(audio / name, seconds)
    lines.extend(extra)
    (en_us / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def corpus(tmp_path):
    en_us = tmp_path / "fleurs" / "data" / "en_us"
    malformed = "1906\t14567890123456789012.wav\tonly\tfive\tfields"
    _write_split(en_us, "test", TEST_ROWS, extra=[malformed, ""])
    _write_split(en_us, "dev", [("7", "15.wav", "Dev sentence.", "dev sentence", 0.25, "FEMALE")])
    return tmp_path / "fleurs"


def _prepare(data_folder, save, splits=("test", "dev"), **kwargs):
    return fl.prepare_fleurs(str(data_folder), str(save), list(splits), **kwargs)


def test_manifest_rows(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save)
    header, rows = pc.read_csv(save / "test.csv")
    assert header == ["ID", "duration", "wav", "wrd", "transcript", "task"]
    assert [tuple(r[:2] + r[3:]) for r in rows] == EXPECTED_TEST
    audio = corpus / "data" / "en_us" / "audio" / "test"
    assert [r[2] for r in rows] == [str(audio / f"{r[0]}.wav") for r in rows]
    _, dev = pc.read_csv(save / "dev.csv")
    assert dev == [
        ["15", "0.25", str(corpus / "data/en_us/audio/dev/15.wav"), "dev sentence"]
        + ["Dev sentence.", "asr"]
    ]
    assert summary["dev"] == {"utterances": 1, "hours": 0.0, "skipped": {}}


def test_skips_are_counted_and_listed(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save)
    assert summary["test"]["utterances"] == 4
    assert summary["test"]["hours"] == round(2.5 / 3600, 3)
    assert summary["test"]["skipped"] == {
        "missing_audio": 1,
        "duplicate_id": 1,
        "malformed_row": 1,
    }
    pc.assert_summary_file(save, summary)
    listed = pc.assert_skip_reasons(save, "test", EXPECTED_SKIPS)
    assert listed["12345678901234567890"][2].endswith("audio/test/12345678901234567890.wav")
    assert "test.tsv:7: 5 fields, 7 expected" in listed["14567890123456789012"][2]


def test_second_call_is_a_no_op(corpus, tmp_path, monkeypatch):
    save = tmp_path / "m"
    pc.assert_second_call_is_a_no_op(
        monkeypatch, fl, "read_split", lambda: _prepare(corpus, save), save
    )


@pytest.mark.parametrize("sub", ["data", "data/en_us"])
def test_data_folder_may_be_data_or_en_us(corpus, tmp_path, sub):
    _prepare(corpus, tmp_path / "a")
    _prepare(corpus / sub, tmp_path / "b")
    pc.assert_same_manifests(tmp_path / "a", tmp_path / "b", ("test", "dev"))


def test_tarball_not_extracted(corpus, tmp_path):
    audio = corpus / "data" / "en_us" / "audio"
    with tarfile.open(audio / "dev.tar.gz", "w:gz") as tar:
        tar.add(audio / "dev", arcname="dev")
    for wav in (audio / "dev").iterdir():
        wav.unlink()
    (audio / "dev").rmdir()
    with pytest.raises(FileNotFoundError) as err:
        _prepare(corpus, tmp_path / "m")
    message = str(err.value)
    assert f"still in {audio / 'dev.tar.gz'}: extract it first" in message
    assert f"tar -xzf {audio / 'dev.tar.gz'} -C {audio}" in message
    assert "<data_folder>/data/en_us/audio/<split>/<file_name>" in message
    with tarfile.open(audio / "dev.tar.gz") as tar:  # what the hint says works
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(audio, **safe)
    assert _prepare(corpus, tmp_path / "m")["dev"]["utterances"] == 1


def test_wrong_layout_names_the_expected_one(tmp_path):
    message = pc.empty_folder_error(tmp_path, lambda folder: _prepare(folder, tmp_path / "m"))
    assert "test.tsv in <data_folder>/data/en_us/<split>.tsv" in message
    assert "huggingface.co/datasets/google/fleurs" in message
    # a clone without `git lfs pull`: the tsv is a pointer file
    en_us = tmp_path / "clone" / "data" / "en_us"
    en_us.mkdir(parents=True)
    (en_us / "test.tsv").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n"
    )
    with pytest.raises(FileNotFoundError, match="is a Git LFS pointer"):
        _prepare(tmp_path / "clone", tmp_path / "m", splits=["test"])


def test_unknown_split_and_skip_prep(corpus, tmp_path):
    with pytest.raises(ValueError, match=r"valid splits: \['train', 'dev', 'test'\]"):
        _prepare(corpus, tmp_path / "m", splits=["validation"])
    assert _prepare(tmp_path / "none", tmp_path / "m", skip_prep=True) == {}
    assert not (tmp_path / "m").exists()
