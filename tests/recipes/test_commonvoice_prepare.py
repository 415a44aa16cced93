"""Tests for recipes/CommonVoice/commonvoice_prepare.py on a tiny Common Voice 17.0 release tree
(mp3 clips, tab-separated tsv files with literal, unbalanced quotes)."""

import pathlib
import sys

import numpy as np
import prepare_checks as pc
import pytest
import soundfile as sf

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "CommonVoice"
sys.path.insert(0, str(RECIPE))

import commonvoice_prepare as cv  # noqa: E402

SR = 48000
RELEASE = "cv-corpus-17.0-2024-03-15"
HEADER = (
    "client_id path sentence_id sentence sentence_domain up_votes down_votes age gender "
    "accents variant locale segment"
).split()
SPK_A = "a" * 64
SPK_B = "b" * 64
TEST_ROWS = [  # (client_id, clip, sentence, seconds or None)
    (SPK_A, "common_voice_en_100.mp3", '"Good-bye," said the boy.', 1.0),
    (SPK_B, "common_voice_en_101.mp3", 'He said "hello there.', 0.5),  # unbalanced quote
    (SPK_A, "common_voice_en_102.mp3", "Zo\u00eb went to the caf\u00e9 in S\u00e3o Paulo.", 0.75),
    (SPK_B, "common_voice_en_103.mp3", "Missing audio.", None),
    (SPK_B, "common_voice_en_100.mp3", "A duplicate clip.", None),
    (SPK_A, "common_voice_en_104.mp3", "", 0.5),  # empty sentence (seen in CV releases)
]
EXPECTED_TEST = [  # ID, duration, spk_id, wrd, transcript, task
    ("common_voice_en_100", "1.0", SPK_A, "good bye said the boy", TEST_ROWS[0][2], "asr"),
    ("common_voice_en_101", "0.5", SPK_B, "he said hello there", TEST_ROWS[1][2], "asr"),
    (
        "common_voice_en_102",
        "0.75",
        SPK_A,
        "zo\u00eb went to the caf\u00e9 in s\u00e3o paulo",
        TEST_ROWS[2][2],
        "asr",
    ),
]
EXPECTED_SKIPS = {
    "common_voice_en_103": "missing_audio",
    "common_voice_en_100": "duplicate_id",
    "common_voice_en_104": "empty_wrd",
    "common_voice_en_105": "malformed_row",
}


def _mp3(path, seconds):
    samples = np.random.default_rng(0).uniform(-0.3, 0.3, int(seconds * SR)).astype("float32")
    sf.write(str(path), samples, SR, format="MP3")


def _write_release(en, splits):
    (en / "clips").mkdir(parents=True, exist_ok=True)
    for split, (rows, extra) in splits.items():
        lines = ["\t".join(HEADER)]
        for n, (client, clip, sentence, seconds) in enumerate(rows):
            fields = [client, clip, f"{n:064x}", sentence, "", "2", "0", "", "", "", "", "en", ""]
            lines.append("\t".join(fields))
            if seconds is not None:
                _mp3(en / "clips" / clip, seconds)
        lines.extend(extra)
        (en / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def corpus(tmp_path):
    en = tmp_path / "cv" / RELEASE / "en"
    malformed = f"{SPK_A}\tcommon_voice_en_105.mp3\tonly four fields"
    dev = [(SPK_A, "common_voice_en_200.mp3", "Dev sentence.", 0.25)]
    _write_release(en, {"test": (TEST_ROWS, [malformed, ""]), "dev": (dev, [])})
    return tmp_path / "cv"


def _prepare(data_folder, save, splits=("test", "dev"), **kwargs):
    return cv.prepare_commonvoice(str(data_folder), str(save), list(splits), **kwargs)


def test_manifest_rows(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save)
    header, rows = pc.read_csv(save / "test.csv")
    assert header == ["ID", "duration", "wav", "spk_id", "wrd", "transcript", "task"]
    assert [tuple(r[:2] + r[3:]) for r in rows] == EXPECTED_TEST
    clips = corpus / RELEASE / "en" / "clips"
    assert [r[2] for r in rows] == [str(clips / f"{r[0]}.mp3") for r in rows]
    _, dev = pc.read_csv(save / "dev.csv")
    assert [(r[0], r[1], r[4], r[5]) for r in dev] == [
        ("common_voice_en_200", "0.25", "dev sentence", "Dev sentence.")
    ]
    assert summary["dev"] == {"utterances": 1, "hours": 0.0, "skipped": {}}


def test_skips_are_counted_and_listed(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save)
    assert summary["test"]["utterances"] == 3
    assert summary["test"]["hours"] == round(2.25 / 3600, 3)
    assert summary["test"]["skipped"] == {
        "missing_audio": 1,
        "duplicate_id": 1,
        "empty_wrd": 1,
        "malformed_row": 1,
    }
    pc.assert_summary_file(save, summary)
    listed = pc.assert_skip_reasons(save, "test", EXPECTED_SKIPS)
    assert listed["common_voice_en_103"][2].endswith("clips/common_voice_en_103.mp3")
    assert "test.tsv:8: 3 fields, 13 expected" in listed["common_voice_en_105"][2]


def test_second_call_is_a_no_op(corpus, tmp_path, monkeypatch):
    save = tmp_path / "m"
    pc.assert_second_call_is_a_no_op(
        monkeypatch, cv, "read_split", lambda: _prepare(corpus, save), save
    )


@pytest.mark.parametrize("sub", [RELEASE, f"{RELEASE}/en"])
def test_data_folder_may_be_the_release_or_en_folder(corpus, tmp_path, sub):
    _prepare(corpus, tmp_path / "a")
    _prepare(corpus / sub, tmp_path / "b")
    pc.assert_same_manifests(tmp_path / "a", tmp_path / "b", ("test", "dev"))


def test_other_release_is_refused_unless_asked(tmp_path):
    other = tmp_path / "cv" / "cv-corpus-16.1-2023-12-06"
    _write_release(
        other / "en", {"test": ([(SPK_A, "common_voice_en_1.mp3", "Old one.", 0.5)], [])}
    )
    for folder in (tmp_path / "cv", other, other / "en"):
        with pytest.raises(FileNotFoundError) as err:
            _prepare(folder, tmp_path / "m", splits=["test"])
        message = str(err.value)
        assert "is Common Voice 16.1, not 17.0" in message
        assert "<data_folder>/cv-corpus-<version>-<date>/en/<split>.tsv" in message
    summary = _prepare(other, tmp_path / "m", splits=["test"], version="16.1")
    assert summary["test"]["utterances"] == 1
    assert _prepare(other, tmp_path / "n", splits=["test"], version=None) == summary


def test_the_paper_release_is_picked_among_several(corpus, tmp_path):
    other = corpus / "cv-corpus-16.1-2023-12-06" / "en"
    _write_release(other, {"test": ([(SPK_A, "common_voice_en_1.mp3", "Old one.", 0.5)], [])})
    _prepare(corpus, tmp_path / "m", splits=["test"])
    _, rows = pc.read_csv(tmp_path / "m" / "test.csv")
    assert [r[0] for r in rows] == [r[0] for r in EXPECTED_TEST]
    with pytest.raises(FileNotFoundError, match="Several releases hold en/test.tsv"):
        _prepare(corpus, tmp_path / "n", splits=["test"], version=None)


def test_wrong_layout_names_the_expected_one(tmp_path):
    message = pc.empty_folder_error(tmp_path, lambda folder: _prepare(folder, tmp_path / "m"))
    assert "test.tsv in <data_folder>/cv-corpus-<version>-<date>/en/<split>.tsv" in message
    assert "en/clips/*.mp3" in message
    assert "common_voice_17_0" in message
    # tsv files without their clips folder
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "test.tsv").write_text("\t".join(HEADER) + "\n")
    with pytest.raises(FileNotFoundError, match="holds test.tsv but no clips/ folder"):
        _prepare(tmp_path / "en", tmp_path / "m", splits=["test"])


def test_unknown_split_and_skip_prep(corpus, tmp_path):
    with pytest.raises(ValueError, match=r"valid splits: \['train', 'dev', 'test'\]"):
        _prepare(corpus, tmp_path / "m", splits=["validated"])
    assert _prepare(tmp_path / "none", tmp_path / "m", skip_prep=True) == {}
    assert not (tmp_path / "m").exists()


def test_non_utf8_row_is_a_counted_skip(corpus, tmp_path):
    """A tsv row with a byte that is not UTF-8 (the shared reader, utils.textfiles): skipped
    with its clip id, file and line; the rows after it are read (issue 17)."""
    tsv = corpus / RELEASE / "en" / "test.tsv"
    lines = tsv.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"said", b"s\xe4id")  # line 3: common_voice_en_101
    tsv.write_bytes(b"\n".join(lines))
    summary = _prepare(corpus, tmp_path / "m")
    assert summary["test"]["utterances"] == 2
    assert summary["test"]["skipped"]["bad_encoding"] == 1
    listed = pc.assert_skip_reasons(
        tmp_path / "m", "test", {**EXPECTED_SKIPS, "common_voice_en_101": "bad_encoding"}
    )
    assert listed["common_voice_en_101"][2].startswith(f"{tsv}:3: byte 0xe4 at column")
    assert "test.tsv:8: 3 fields" in listed["common_voice_en_105"][2]  # line numbers kept
