"""Tests for speechmapper_plugin.training.curves.CurveLog: records, crash tolerance, PNG output."""

import json
import os

import torch

from speechmapper_plugin.training.curves import CurveLog

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_records_in_order_with_float_values(tmp_path):
    log = CurveLog(str(tmp_path / "sub" / "curve.jsonl"))  # parent folder is created
    assert log.records() == []
    log.add(10, "train", loss=torch.tensor(2.5), lr=1e-4)
    log.add(20.0, "valid", loss=1, wer=30)
    records = log.records()
    assert records == [
        {"step": 10, "split": "train", "loss": 2.5, "lr": 1e-4},
        {"step": 20, "split": "valid", "loss": 1.0, "wer": 30.0},
    ]
    assert isinstance(records[1]["step"], int) and isinstance(records[1]["loss"], float)
    with open(log.path, encoding="utf-8") as f:
        assert [json.loads(line) for line in f] == records  # plain JSON lines


def test_a_resumed_run_keeps_appending(tmp_path):
    path = str(tmp_path / "curve.jsonl")
    CurveLog(path).add(1, "train", loss=3.0)
    CurveLog(path).add(2, "train", loss=2.0)
    assert [r["loss"] for r in CurveLog(path).records()] == [3.0, 2.0]


def test_torn_last_line_is_ignored(tmp_path):
    log = CurveLog(str(tmp_path / "curve.jsonl"))
    log.add(1, "train", loss=3.0)
    with open(log.path, "a", encoding="utf-8") as f:
        f.write('{"step": 2, "split": "tr')  # crash in the middle of a write
    assert log.records() == [{"step": 1, "split": "train", "loss": 3.0}]


def test_records_added_after_a_torn_line_are_kept(tmp_path):
    log = CurveLog(str(tmp_path / "curve.jsonl"))
    log.add(1, "train", loss=3.0)
    with open(log.path, "a", encoding="utf-8") as f:
        f.write('{"step": 2, "split": "tr')
    log.add(3, "train", loss=1.0)  # the resumed run
    assert [r["step"] for r in log.records()] == [1, 3]


def test_plot_writes_a_png_atomically(tmp_path):
    log = CurveLog(str(tmp_path / "curve.jsonl"))
    for step in range(5):
        log.add(step * 10, "train", loss=5.0 - step)
    log.add(40, "valid", loss=1.5, wer=42.0)
    png = str(tmp_path / "curve.png")
    assert log.plot(png, title="stage 1") == png
    with open(png, "rb") as f:
        first = f.read()
    assert first.startswith(PNG_MAGIC)
    assert sorted(os.listdir(tmp_path)) == ["curve.jsonl", "curve.png"]  # no temp file left
    # a single chosen metric gives a different (narrower) figure, replacing the old one
    assert log.plot(png, metrics=["wer"]) == png
    with open(png, "rb") as f:
        second = f.read()
    assert second.startswith(PNG_MAGIC) and second != first


def test_plot_without_records_writes_nothing(tmp_path):
    log = CurveLog(str(tmp_path / "curve.jsonl"))
    png = str(tmp_path / "curve.png")
    assert log.plot(png) is None
    assert not os.path.exists(png)
