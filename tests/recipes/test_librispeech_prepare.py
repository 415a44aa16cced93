"""Tests for recipes/LibriSpeech/librispeech_prepare.py on a tiny fake LibriSpeech tree with
awkward rows (missing / garbage audio, empty transcripts, too long, non-ASCII, punctuation)."""

import logging
import os
import pathlib
import sys

import numpy as np
import prepare_checks as pc
import pytest
import soundfile as sf

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "LibriSpeech"
sys.path.insert(0, str(RECIPE))

import librispeech_prepare as lp  # noqa: E402

SR = 16000
DEV = {  # (speaker, chapter): [(utt, transcript, seconds or None (no audio) or "garbage")]
    ("1272", "128104"): [
        ("0000", "MISTER QUILTER IS THE APOSTLE", 0.5),
        ("0001", 'HELLO, WORLD! IT\u2019S 42 "FINE".', 0.5),
        ("0002", "CAF\u00c9 NA\u00cfVE \u00dcBER", 0.5),
        ("0003", "MISSING AUDIO HERE", None),
        ("0004", "GARBAGE AUDIO", "garbage"),
        ("0005", "", 0.5),
        ("0006", "... !!!", 0.5),
        ("0007", "A VERY LONG ONE", 3.0),
    ],
    ("2277", "149896"): [("0000", "SECOND SPEAKER", 1.25)],
}
TEST = {("61", "70968"): [("0000", "TEST ONE", 0.75)]}
EXPECTED_DEV_ROWS = [
    ("1272-128104-0000", "0.5", "1272", "mister quilter is the apostle"),
    ("1272-128104-0001", "0.5", "1272", "hello world it's fine"),
    ("1272-128104-0002", "0.5", "1272", "caf\u00e9 na\u00efve \u00fcber"),
    ("2277-149896-0000", "1.25", "2277", "second speaker"),
]
EXPECTED_SKIPS = {
    "1272-128104-0003": "missing_audio",
    "1272-128104-0004": "unreadable_audio",
    "1272-128104-0005": "empty_transcript",
    "1272-128104-0006": "empty_transcript",
    "1272-128104-0007": "too_long",
}


def _write_split(root, split, chapters):
    for (speaker, chapter), utts in chapters.items():
        folder = root / split / speaker / chapter
        folder.mkdir(parents=True)
        lines = []
        for utt, text, audio in utts:
            utt_id = f"{speaker}-{chapter}-{utt}"
            lines.append(f"{utt_id} {text}".rstrip())
            path = folder / f"{utt_id}.flac"
            if audio == "garbage":
                path.write_bytes(b"this is not a flac file at all" * 10)
            elif audio is not None:
                samples = np.random.default_rng(0).uniform(-0.3, 0.3, int(audio * SR))
                sf.write(str(path), samples.astype("float32"), SR, format="FLAC", subtype="PCM_16")
        text = "\n".join(lines) + "\n\n"  # a trailing blank line is not an utterance
        (folder / f"{speaker}-{chapter}.trans.txt").write_text(text, encoding="utf-8")


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "data" / "LibriSpeech"
    _write_split(root, "dev-clean", DEV)
    _write_split(root, "test-clean", TEST)
    return tmp_path / "data"


def _prepare(corpus, save, **kwargs):
    return lp.prepare_librispeech(str(corpus), str(save), ["dev-clean", "test-clean"], **kwargs)


def test_manifests_rows_and_normalized_text(corpus, tmp_path, caplog):
    save = tmp_path / "manifests"
    with caplog.at_level(logging.WARNING, logger=lp.logger.name):
        summary = _prepare(corpus, save, max_duration=2.0)
    header, rows = pc.read_csv(save / "dev-clean.csv")
    assert header == ["ID", "duration", "wav", "spk_id", "wrd"]
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == EXPECTED_DEV_ROWS
    root = corpus / "LibriSpeech" / "dev-clean"
    for row in rows:
        speaker, chapter, _ = row[0].split("-")
        assert row[2] == str(root / speaker / chapter / f"{row[0]}.flac")
        assert os.path.isfile(row[2])
    _, test_rows = pc.read_csv(save / "test-clean.csv")
    assert [(r[0], r[1], r[4]) for r in test_rows] == [("61-70968-0000", "0.75", "test one")]
    for utt_id in EXPECTED_SKIPS:  # every skip is logged with its id
        assert utt_id in caplog.text
    assert summary["test-clean"] == {"utterances": 1, "hours": 0.0, "skipped": {}}


def test_skips_are_counted_and_listed(corpus, tmp_path):
    save = tmp_path / "manifests"
    summary = _prepare(corpus, save, max_duration=2.0)
    assert summary["dev-clean"]["utterances"] == 4
    assert summary["dev-clean"]["hours"] == round(2.75 / 3600, 3)
    assert summary["dev-clean"]["skipped"] == {
        "missing_audio": 1,
        "unreadable_audio": 1,
        "empty_transcript": 2,
        "too_long": 1,
    }
    pc.assert_summary_file(save, summary)
    listed = pc.assert_skip_reasons(save, "dev-clean", EXPECTED_SKIPS)
    assert all(len(v) == 3 for v in listed.values())
    assert listed["1272-128104-0003"][2].endswith("1272-128104-0003.flac")
    assert listed["1272-128104-0005"][2].endswith("1272-128104.trans.txt:6")
    assert listed["1272-128104-0007"][2] == "3.0s > 2.0s"
    assert (save / "test-clean.skipped.tsv").read_text() == ""


def test_rerun_with_same_options_does_not_rewrite(corpus, tmp_path, monkeypatch):
    save = tmp_path / "manifests"
    _, inodes = pc.assert_second_call_is_a_no_op(
        monkeypatch, lp, "prepare_split", lambda: _prepare(corpus, save, max_duration=2.0), save
    )

    # other options: prepared again (the long utterance is now kept)
    second = _prepare(corpus, save, max_duration=None)
    assert second["dev-clean"]["utterances"] == 5
    assert "too_long" not in second["dev-clean"]["skipped"]
    _, rows = pc.read_csv(save / "dev-clean.csv")
    assert "1272-128104-0007" in [r[0] for r in rows]
    assert (save / "dev-clean.csv").stat().st_ino != inodes["dev-clean.csv"]


def test_missing_manifest_is_prepared_again(corpus, tmp_path):
    save = tmp_path / "manifests"
    _prepare(corpus, save)
    expected = (save / "test-clean.csv").read_text()
    (save / "test-clean.csv").unlink()
    _prepare(corpus, save)
    assert (save / "test-clean.csv").read_text() == expected


def test_data_folder_may_be_the_librispeech_folder_itself(corpus, tmp_path):
    _prepare(corpus, tmp_path / "a")
    _prepare(corpus / "LibriSpeech", tmp_path / "b")
    pc.assert_same_manifests(tmp_path / "a", tmp_path / "b", ("dev-clean", "test-clean"))


def test_wrong_layout_describes_the_expected_one(tmp_path, corpus):
    message = pc.empty_folder_error(tmp_path, lambda folder: _prepare(folder, tmp_path / "m"))
    assert "['dev-clean', 'test-clean']" in message
    assert (
        "<data_folder>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac"
        in message
    )
    assert "<speaker>-<chapter>.trans.txt" in message
    # one split missing: the folders that do exist are listed
    with pytest.raises(
        FileNotFoundError, match=r"\['dev-clean', 'test-other'\].*holds: \['LibriSpeech'"
    ):
        lp.prepare_librispeech(str(corpus), str(tmp_path / "m"), ["dev-clean", "test-other"])
    assert not (tmp_path / "m" / "dev-clean.csv").exists()


def test_split_without_transcripts(tmp_path):
    (tmp_path / "LibriSpeech" / "dev-clean" / "1" / "2").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"No \*.trans.txt file under .*dev-clean"):
        lp.prepare_librispeech(str(tmp_path), str(tmp_path / "m"), ["dev-clean"])


def test_split_without_usable_utterance(tmp_path):
    _write_split(tmp_path / "LibriSpeech", "dev-clean", {("1", "2"): [("0000", "NO AUDIO", None)]})
    with pytest.raises(ValueError, match="split 'dev-clean' .* has no usable row \\(1 skipped"):
        lp.prepare_librispeech(str(tmp_path), str(tmp_path / "m"), ["dev-clean"])


def test_skip_prep_does_nothing(tmp_path):
    assert (
        lp.prepare_librispeech(
            str(tmp_path / "none"), str(tmp_path / "m"), ["dev-clean"], skip_prep=True
        )
        == {}
    )
    assert not (tmp_path / "m").exists()


def test_wav_paths_are_absolute_for_a_relative_data_folder(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(corpus)
    lp.prepare_librispeech(".", str(tmp_path / "m"), ["test-clean"])
    _, rows = pc.read_csv(tmp_path / "m" / "test-clean.csv")
    assert os.path.isabs(rows[0][2])
    monkeypatch.chdir(tmp_path)  # same data, another working folder: manifests reused
    lp.prepare_librispeech(str(corpus), str(tmp_path / "m"), ["test-clean"])
    _, rows = pc.read_csv(tmp_path / "m" / "test-clean.csv")
    assert os.path.isfile(rows[0][2])


def test_non_utf8_transcript_line_is_a_counted_skip(corpus, tmp_path):
    """One byte that is not UTF-8 in one transcript: that utterance is skipped and listed with
    its file and line; the rest of the file and the split are prepared (issue 17)."""
    trans = corpus / "LibriSpeech" / "dev-clean" / "1272" / "128104" / "1272-128104.trans.txt"
    lines = trans.read_bytes().split(b"\n")
    lines[1] = b"1272-128104-0001 HELLO W\xd6RLD"  # latin-1 O with diaeresis
    trans.write_bytes(b"\n".join(lines))
    save = tmp_path / "manifests"
    summary = _prepare(corpus, save, max_duration=2.0)
    assert summary["dev-clean"]["utterances"] == 3
    assert summary["dev-clean"]["skipped"]["bad_encoding"] == 1
    listed = pc.assert_skip_reasons(
        save, "dev-clean", {**EXPECTED_SKIPS, "1272-128104-0001": "bad_encoding"}
    )
    assert listed["1272-128104-0001"][2] == f"{trans}:2: byte 0xd6 at column 25"
    _, rows = pc.read_csv(save / "dev-clean.csv")
    assert "1272-128104-0001" not in [r[0] for r in rows]
    assert "1272-128104-0002" in [r[0] for r in rows]  # the lines after it are read


def test_minish_translation_adds_the_st_columns(tmp_path):
    """translation=minish: the mini-corpus as a synthetic ST set (tgt in Minish, tgt_lang qaa);
    a word outside the mini-corpus grammar is an error naming it; ASR manifests are untouched."""
    from speechmapper_plugin.tiny.minish import translate

    _write_split(tmp_path / "LibriSpeech", "test-clean", {("61", "7"): [("0000", "THE DOG", 0.5)]})
    lp.prepare_librispeech(
        str(tmp_path), str(tmp_path / "st"), ["test-clean"], translation="minish"
    )
    header, rows = pc.read_csv(tmp_path / "st" / "test-clean.csv")
    assert header[-2:] == ["tgt", "tgt_lang"]
    assert rows[0][-3:] == ["the dog", translate("the dog"), "qaa"]
    _write_split(
        tmp_path / "LS2" / "LibriSpeech",
        "test-clean",
        {("61", "7"): [("0000", "MISTER QUILTER", 0.5)]},
    )
    with pytest.raises(ValueError, match="No Minish word for 'mister'"):
        lp.prepare_librispeech(
            str(tmp_path / "LS2"), str(tmp_path / "st2"), ["test-clean"], translation="minish"
        )
    with pytest.raises(ValueError, match="translation='klingon'"):
        lp.prepare_librispeech(
            str(tmp_path), str(tmp_path / "x"), ["test-clean"], translation="klingon"
        )
