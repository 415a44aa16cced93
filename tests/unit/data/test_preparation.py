"""Tests for speechmapper_plugin.data.preparation: the shared manifest writing of the dataset
prepare scripts (skips counted by reason, segments, up-to-date check, layout errors) and
audio probing (libsndfile formats and m4a through PyAV)."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from speechmapper_plugin.data.preparation import audio_duration, layout_error, run_preparation
from speechmapper_plugin.features.audio import AudioError, load_audio

SR = 16000


def _wav(path, seconds):
    sf.write(str(path), np.zeros(int(seconds * SR), dtype="float32"), SR)
    return str(path)


def _m4a(path, seconds):
    av = pytest.importorskip("av")
    t = np.arange(int(seconds * SR)) / SR
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=SR)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
            format="flt",
            layout="mono",
        )
        frame.sample_rate = SR
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return str(path)


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    return {
        "folder": folder,
        "one": _wav(folder / "one.wav", 1.0),
        "long": _wav(folder / "long.wav", 3.0),
        "bad": str(folder / "bad.wav"),
    }


def _rows(data):
    (data["folder"] / "bad.wav").write_bytes(b"not audio" * 20)
    return [
        {"ID": "a", "wav": data["one"], "wrd": "hello", "tgt": "hallo", "tgt_lang": "de"},
        {"ID": "a", "wav": data["one"], "wrd": "again", "tgt": "noch", "tgt_lang": "de"},
        {"ID": "b", "wav": str(data["folder"] / "none.wav"), "wrd": "x", "tgt": "y"},
        {"ID": "c", "wav": data["bad"], "wrd": "x", "tgt": "y"},
        {"ID": "d", "wav": data["long"], "wrd": "long", "tgt": "lang"},
        {"ID": "e", "wav": data["long"], "start": 1.0, "stop": 1.5, "wrd": "seg", "tgt": "ment"},
        {"ID": "f", "wav": data["long"], "start": 2.0, "stop": 1.0, "wrd": "bad", "tgt": "seg"},
        {"ID": "g", "wav": data["one"], "wrd": "no target", "tgt": ""},
        {
            "ID": "h",
            "wav": data["one"],
            "wrd": "caf\u00e9",
            "tgt": "\u5496\u5561",
            "tgt_lang": "zh",
        },
    ]


def _prepare(data, save, reader, **kwargs):
    kwargs.setdefault("required", ["tgt"])
    kwargs.setdefault("max_duration", 2.0)
    return run_preparation("Toy", str(data["folder"]), str(save), ["test"], reader, **kwargs)


def test_rows_are_checked_counted_and_written(data, tmp_path):
    def reader(split, skip):
        skip("z", "malformed_line", "toy.tsv:3")
        yield from _rows(data)

    summary = _prepare(data, tmp_path / "m", reader)
    assert summary["test"]["skipped"] == {
        "malformed_line": 1,
        "duplicate_id": 1,
        "missing_audio": 1,
        "unreadable_audio": 1,
        "too_long": 1,
        "bad_segment": 1,
        "empty_tgt": 1,
    }
    with open(tmp_path / "m" / "test.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["ID"] for r in rows] == ["a", "e", "h"]
    assert list(rows[0]) == ["ID", "duration", "wav", "start", "stop", "wrd", "tgt", "tgt_lang"]
    assert rows[0]["duration"] == "1.0" and rows[0]["wrd"] == "hello"  # the first "a" is kept
    assert (rows[1]["duration"], rows[1]["start"], rows[1]["stop"]) == ("0.5", "1.0", "1.5")
    assert rows[2]["tgt"] == "\u5496\u5561" and rows[2]["wrd"] == "caf\u00e9"
    listed = (tmp_path / "m" / "test.skipped.tsv").read_text(encoding="utf-8").splitlines()
    assert len(listed) == 7 and listed[0] == "z\tmalformed_line\ttoy.tsv:3"
    stored = json.loads((tmp_path / "m" / "prepare_summary.json").read_text())
    assert stored == summary


def test_up_to_date_and_changed_options(data, tmp_path):
    calls = []

    def reader(split, skip):
        calls.append(split)
        yield {"ID": "a", "wav": data["one"], "tgt": "x"}

    save = tmp_path / "m"
    first = _prepare(data, save, reader)
    assert _prepare(data, save, reader) == first and calls == ["test"]  # up to date
    _prepare(data, save, reader, max_duration=5.0)  # other options: read again
    assert calls == ["test", "test"]
    (save / "test.csv").unlink()  # a lost manifest is prepared again
    _prepare(data, save, reader, max_duration=5.0)
    assert calls == ["test"] * 3 and (save / "test.csv").is_file()


def test_no_usable_row_and_unknown_field(data, tmp_path):
    def empty(split, skip):
        yield {"ID": "a", "wav": str(data["folder"] / "none.wav"), "tgt": "x"}

    with pytest.raises(ValueError, match=r"has no usable row \(1 skipped: \{'missing_audio': 1\}"):
        _prepare(data, tmp_path / "m", empty)

    def unknown(split, skip):
        yield {"ID": "a", "wav": data["one"], "tgt": "x", "translation": "y"}

    with pytest.raises(ValueError, match=r"unknown manifest fields \['translation'\]"):
        _prepare(data, tmp_path / "m2", unknown)


def test_missing_data_folder_and_layout_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="it does not exist"):
        run_preparation("Toy", str(tmp_path / "nowhere"), str(tmp_path / "m"), ["test"], None)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "other.txt").write_text("")
    err = layout_error(
        "Toy", str(tmp_path / "x"), "<data_folder>/toy/test.tsv", hint="Get it at X."
    )
    assert "holds: ['other.txt']" in str(err) and "expected <data_folder>/toy/test.tsv" in str(err)


def test_audio_duration_and_segments_of_m4a(tmp_path):
    path = _m4a(tmp_path / "speech.m4a", 2.0)
    assert 2.0 <= audio_duration(path) < 2.2  # AAC adds encoder priming frames
    segment = load_audio(path, start=0.5, stop=1.0)
    assert segment.shape == (8000,) and segment.abs().max() > 0.1
    with pytest.raises(AudioError, match="not found"):
        audio_duration(str(tmp_path / "none.m4a"))
    (tmp_path / "junk.m4a").write_bytes(b"\x00" * 100)
    with pytest.raises(AudioError, match="junk.m4a"):
        load_audio(str(tmp_path / "junk.m4a"))


def test_flac_segment_is_exact(tmp_path):
    path = str(tmp_path / "a.flac")
    sf.write(path, np.arange(SR, dtype="float32") / SR, SR)
    segment = load_audio(path, start=0.25, stop=0.5)
    assert segment.shape == (4000,)
    assert segment[0].item() == pytest.approx(0.25, abs=1e-4)
    with pytest.raises(AudioError, match="Bad segment start=0.5 stop=0.25"):
        load_audio(path, start=0.5, stop=0.25)


def test_unknown_split_is_named_with_the_valid_ones(data, tmp_path):
    with pytest.raises(
        ValueError, match=r"Toy: unknown split\(s\) \['test'\]; valid splits: \['dev'\]"
    ):
        _prepare(data, tmp_path / "m", None, valid_splits=("dev",))


def test_prepare_cli_forwards_arguments_and_prints_the_summary(capsys):
    from speechmapper_plugin.data.preparation import prepare_cli

    calls = []

    def prepare(data_folder, save_folder, splits, max_duration=None, extra=None):
        calls.append((data_folder, save_folder, splits, max_duration, extra))
        return {"test": {"utterances": 1}}

    argv = ["/d", "/s", "test", "--max_duration", "20", "--extra", "x"]
    prepare_cli(prepare, "Toy.", splits=["test"], options=[("extra", None, "")], argv=argv)
    assert calls == [("/d", "/s", ["test"], 20.0, "x")]
    assert json.loads(capsys.readouterr().out) == {"test": {"utterances": 1}}
    with pytest.raises(SystemExit):
        prepare_cli(prepare, "Toy.", splits=["test"], argv=["/d", "/s", "train"])
