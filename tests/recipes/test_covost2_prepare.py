"""Tests for recipes/CoVoST2/covost2_prepare.py on a tiny Common Voice 4 English folder (mp3
clips, validated.tsv) and CoVoST 2 tsv files (en-de, en-zh-CN; literal unbalanced quotes)."""

import os
import pathlib
import sys

import numpy as np
import prepare_checks as pc
import pytest
import soundfile as sf

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "CoVoST2"
sys.path.insert(0, str(RECIPE))

import covost2_prepare as cp  # noqa: E402

SR = 48000
SPK_A, SPK_B = "a" * 64, "b" * 64
CV_HEADER = "client_id path sentence up_votes down_votes age gender accent".split()
VALIDATED = [  # client_id, clip, sentence, seconds (None: no clip file)
    (SPK_A, "common_voice_en_1.mp3", 'He said "hello there.', 1.0),
    (SPK_B, "common_voice_en_2.mp3", "Zo\u00eb went to the caf\u00e9 \u2013 twice.", 0.5),
    (SPK_B, "common_voice_en_3.mp3", "Missing clip.", None),
    (SPK_A, "common_voice_en_5.mp3", "No translation.", 0.5),
    (SPK_A, "common_voice_en_6.mp3", "Extended train row.", 0.25),
    (SPK_B, "common_voice_en_7.mp3", "Train row.", 0.25),
    (SPK_A, "common_voice_en_8.mp3", "Dev row.", 0.75),
]
COVOST_HEADER = ["path", "sentence", "translation", "split"]
EN_DE = [  # clip, translation, split
    ("common_voice_en_1.mp3", 'Er sagte "hallo.', "test"),
    ("common_voice_en_2.mp3", "Zo\u00eb ging zweimal ins Caf\u00e9.", "test"),
    ("common_voice_en_3.mp3", "Fehlender Clip.", "test"),
    ("common_voice_en_1.mp3", "Doppelt.", "test"),
    ("common_voice_en_4.mp3", "Nicht in validated.tsv.", "test"),
    ("common_voice_en_5.mp3", "", "test"),
    ("common_voice_en_6.mp3", "Erweiterte Trainingszeile.", "train_covost"),
    ("common_voice_en_7.mp3", "Trainingszeile.", "train"),
    ("common_voice_en_8.mp3", "Entwicklungszeile.", "dev"),
]
EN_ZH = [
    ("common_voice_en_1.mp3", "\u4ed6\u8bf4\u201c\u4f60\u597d\u3002", "test"),
    (
        "common_voice_en_2.mp3",
        "\u4f50\u4f0a\u53bb\u4e86\u4e24\u6b21\u5496\u5561\u9986\u3002",
        "test",
    ),
    ("common_voice_en_8.mp3", "\u5f00\u53d1\u3002", "dev"),
]
EXPECTED_TEST_DE = [  # ID, duration, audio_id, spk_id, wrd, transcript, tgt, tgt_lang
    (
        "common_voice_en_1-de",
        "1.0",
        "common_voice_en_1",
        SPK_A,
        "he said hello there",
        VALIDATED[0][2],
        EN_DE[0][1],
        "de",
    ),
    (
        "common_voice_en_2-de",
        "0.5",
        "common_voice_en_2",
        SPK_B,
        "zo\u00eb went to the caf\u00e9 twice",
        VALIDATED[1][2],
        EN_DE[1][1],
        "de",
    ),
]
# Rows skipped by run_preparation carry the manifest ID (<clip stem>-<tgt>); rows the script
# drops while reading the tsv files (not_in_validated, malformed_row) the clip stem.
EXPECTED_SKIPS = {
    "common_voice_en_3-de": "missing_audio",
    "common_voice_en_1-de": "duplicate_id",
    "common_voice_en_4": "not_in_validated",
    "common_voice_en_5-de": "empty_tgt",
    "common_voice_en_9": "malformed_row",
}


def _tsv(path, header, rows):
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _mp3(path, seconds):
    samples = np.random.default_rng(0).uniform(-0.3, 0.3, int(seconds * SR)).astype("float32")
    sf.write(str(path), samples, SR, format="MP3")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("covost")
    en = root / "cv-corpus-4-2019-12-10" / "en"
    (en / "clips").mkdir(parents=True)
    for _, clip, _, seconds in VALIDATED:
        if seconds is not None:
            _mp3(en / "clips" / clip, seconds)
    _tsv(
        en / "validated.tsv",
        CV_HEADER,
        [[client, clip, sentence, "2", "0", "", "", ""] for client, clip, sentence, _ in VALIDATED],
    )
    covost = root / "covost"
    covost.mkdir()
    sentences = {clip: sentence for _, clip, sentence, _ in VALIDATED}
    de_rows = [[c, sentences.get(c, "?"), t, s] for c, t, s in EN_DE]
    de_rows.append(["common_voice_en_9.mp3", "Three fields only.", "test"])  # malformed
    _tsv(covost / "covost_v2.en_de.tsv", COVOST_HEADER, de_rows)
    _tsv(
        covost / "covost_v2.en_zh-CN.tsv",
        COVOST_HEADER,
        [[c, sentences[c], t, s] for c, t, s in EN_ZH],
    )
    return en, covost


def _prepare(corpus, save, splits=("test_en-de", "test_en-zh"), **kwargs):
    en, covost = corpus
    kwargs.setdefault("covost_folder", str(covost))
    return cp.prepare_covost2(str(en), str(save), list(splits), **kwargs)


def test_manifest_rows(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save)
    header, rows = pc.read_csv(save / "test_en-de.csv")
    assert header == [
        "ID",
        "duration",
        "wav",
        "audio_id",
        "spk_id",
        "wrd",
        "transcript",
        "tgt",
        "tgt_lang",
        "task",
    ]
    assert [tuple(r[:2] + r[3:]) for r in rows] == [e + ("st",) for e in EXPECTED_TEST_DE]
    clips = corpus[0] / "clips"
    assert [r[2] for r in rows] == [
        str(clips / "common_voice_en_1.mp3"),
        str(clips / "common_voice_en_2.mp3"),
    ]
    de_rows = rows
    # Chinese targets are kept exactly (UTF-8); tgt_lang (and the ID suffix) is the ISO code
    zh_header, rows = pc.read_csv(save / "test_en-zh.csv")
    assert zh_header == header
    assert [(r[0], r[3], r[7], r[8]) for r in rows] == [
        ("common_voice_en_1-zh", "common_voice_en_1", EN_ZH[0][1], "zh"),
        ("common_voice_en_2-zh", "common_voice_en_2", EN_ZH[1][1], "zh"),
    ]
    # one clip prepared for two targets: two distinct IDs (the pairs can be trained together),
    # one audio_id (one cached feature file)
    for de_row, zh_row in zip(de_rows, rows):
        assert de_row[0] != zh_row[0]
        assert de_row[3] == zh_row[3]
        assert de_row[2] == zh_row[2]
    assert EN_ZH[1][1] in (save / "test_en-zh.csv").read_bytes().decode("utf-8")
    assert summary["test_en-zh"] == {"utterances": 2, "hours": 0.0, "skipped": {}}


def test_train_holds_the_extended_covost_rows_and_dev_its_own(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save, splits=["train_en-de", "dev_en-de", "dev_en-zh-CN"])
    _, rows = pc.read_csv(save / "train_en-de.csv")
    assert [(r[0], r[1], r[3], r[4], r[7]) for r in rows] == [
        ("common_voice_en_6-de", "0.25", "common_voice_en_6", SPK_A, "Erweiterte Trainingszeile."),
        ("common_voice_en_7-de", "0.25", "common_voice_en_7", SPK_B, "Trainingszeile."),
    ]
    _, rows = pc.read_csv(save / "dev_en-de.csv")
    assert [(r[0], r[3], r[5], r[7]) for r in rows] == [
        ("common_voice_en_8-de", "common_voice_en_8", "dev row", "Entwicklungszeile.")
    ]
    # a split named with the CoVoST code (zh-CN): the ID carries the ISO code
    _, rows = pc.read_csv(save / "dev_en-zh-CN.csv")
    assert [(r[0], r[3], r[7], r[8]) for r in rows] == [
        ("common_voice_en_8-zh", "common_voice_en_8", EN_ZH[2][1], "zh")
    ]
    # the malformed line of the tsv is reported whatever the split
    assert summary["train_en-de"]["skipped"] == {"malformed_row": 1}


def test_skips_are_counted_and_listed(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save, max_duration=0.9)
    assert summary["test_en-de"]["utterances"] == 1
    assert summary["test_en-de"]["hours"] == round(0.5 / 3600, 3)
    assert summary["test_en-de"]["skipped"] == {
        "missing_audio": 1,
        "duplicate_id": 1,
        "not_in_validated": 1,
        "empty_tgt": 1,
        "malformed_row": 1,
        "too_long": 1,
    }
    pc.assert_summary_file(save, summary)
    listed = pc.read_skipped(save, "test_en-de")
    assert {u: r for u, r, _ in listed if r != "too_long"} == EXPECTED_SKIPS
    assert [(u, d) for u, r, d in listed if r == "too_long"] == [
        ("common_voice_en_1-de", "1.0s > 0.9s")
    ]
    details = {u: d for u, r, d in listed if r != "too_long"}
    assert details["common_voice_en_3-de"].endswith("clips/common_voice_en_3.mp3")
    assert "covost_v2.en_de.tsv:6: not in " in details["common_voice_en_4"]
    assert details["common_voice_en_4"].endswith("en/validated.tsv")
    assert "covost_v2.en_de.tsv:11: 3 fields, 4 expected" in details["common_voice_en_9"]


def test_second_call_is_a_no_op(corpus, tmp_path, monkeypatch):
    save = tmp_path / "m"
    pc.assert_second_call_is_a_no_op(
        monkeypatch, cp, "read_split", lambda: _prepare(corpus, save), save
    )


def test_per_split_files_of_get_covost_splits(corpus, tmp_path):
    """The official get_covost_splits.py outputs (path sentence translation client_id) give the
    same manifest, without validated.tsv."""
    en, covost = corpus
    _prepare(corpus, tmp_path / "a")
    splits = tmp_path / "splits"
    splits.mkdir()
    rows = [[clip, s, t, c] for (c, clip, s, _), (_, t, _) in zip(VALIDATED[:2], EN_DE[:2])]
    _tsv(
        splits / "covost_v2.en_de.test.tsv", ["path", "sentence", "translation", "client_id"], rows
    )
    summary = cp.prepare_covost2(
        str(en.parent), str(tmp_path / "b"), ["test_en-de"], covost_folder=str(splits)
    )
    assert summary["test_en-de"] == {"utterances": 2, "hours": 0.0, "skipped": {}}
    pc.assert_same_manifests(tmp_path / "b", tmp_path / "a", ["test_en-de"])


def test_covost_folder_defaults_to_data_folder(corpus, tmp_path):
    en, covost = corpus
    data = tmp_path / "en"
    (data / "clips").mkdir(parents=True)
    for clip in ("common_voice_en_1.mp3", "common_voice_en_2.mp3"):
        os.symlink(en / "clips" / clip, data / "clips" / clip)
    (data / "validated.tsv").write_bytes((en / "validated.tsv").read_bytes())
    (data / "covost_v2.en_de.tsv").write_bytes((covost / "covost_v2.en_de.tsv").read_bytes())
    summary = cp.prepare_covost2(str(data), str(tmp_path / "m"), ["test_en-de"])
    assert summary["test_en-de"]["utterances"] == 2


def test_wrong_layout_names_the_expected_one(corpus, tmp_path):
    en, covost = corpus
    message = pc.empty_folder_error(
        tmp_path,
        lambda folder: cp.prepare_covost2(str(folder), str(tmp_path / "m"), ["test_en-de"]),
    )
    assert "<data_folder>/clips/*.mp3" in message
    assert "<covost_folder>/covost_v2.en_<tgt>.tsv" in message
    assert "covost_v2.en_<tgt>.tsv.tar.gz" in message
    # the Common Voice folder without the CoVoST tsv (covost_folder defaults to data_folder)
    with pytest.raises(FileNotFoundError, match=r"holds neither covost_v2.en_de.tsv nor "):
        cp.prepare_covost2(str(en), str(tmp_path / "m"), ["test_en-de"])
    # the tarball is there but not unpacked
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "covost_v2.en_de.tsv.tar.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"Unpack .*covost_v2.en_de.tsv.tar.gz"):
        _prepare(corpus, tmp_path / "m", splits=["test_en-de"], covost_folder=str(packed))
    # no validated.tsv next to the clips
    bare = tmp_path / "bare"
    (bare / "clips").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="holds clips/ but no validated.tsv"):
        cp.prepare_covost2(
            str(bare), str(tmp_path / "m"), ["test_en-de"], covost_folder=str(covost)
        )
    # a tsv of another kind (wrong header)
    other = tmp_path / "other"
    other.mkdir()
    _tsv(other / "covost_v2.en_de.tsv", ["path", "sentence"], [["a.mp3", "x"]])
    with pytest.raises(FileNotFoundError, match=r"without the columns \['translation', 'split'\]"):
        _prepare(corpus, tmp_path / "m", splits=["test_en-de"], covost_folder=str(other))


def test_unknown_split_and_skip_prep(corpus, tmp_path):
    for split in ("test_en-fr", "test_de-en", "validated_en-de", "test"):
        with pytest.raises(ValueError, match=r"valid splits: \['train_en-de'"):
            _prepare(corpus, tmp_path / "m", splits=[split])
    assert cp.parse_split("test_en-zh-CN") == ("test", "zh-CN", "zh")
    assert _prepare(corpus, tmp_path / "n", skip_prep=True) == {}
    assert not (tmp_path / "n").exists()
