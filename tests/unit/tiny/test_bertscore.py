"""Tests of the offline tiny BERTScore builder: a Hugging Face encoder folder bert_score loads,
with a baseline file in bert_score's format computed on unrelated sentence pairs."""

import csv
import json

import pytest

from speechmapper_plugin.tiny import bertscore as tiny_bertscore
from speechmapper_plugin.tiny.bertscore import build_tiny_bertscore

TEXTS = ["the cat sat on the mat", "we go to the park today", "die Katze sitzt", "今天天气很好"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_tiny_bertscore(tmp_path_factory.mktemp("tiny_bert") / "model", TEXTS)


def test_layout_and_baseline_format(built):
    import bert_score

    with open(built["baseline_path"]) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["LAYER", "P", "R", "F"]
    assert [int(r["LAYER"]) for r in rows] == [0, 1, 2] and built["num_layers"] == 2
    assert all(0 < float(r[k]) < 1 for r in rows for k in "PRF")
    # the baseline is the mean score of each sentence against the next one (unrelated pairs)
    _, _, f1 = bert_score.score(
        TEXTS, TEXTS[1:] + TEXTS[:1], model_type=built["model"], num_layers=2
    )
    assert float(rows[2]["F"]) == pytest.approx(float(f1.mean()), abs=1e-6)
    config = json.loads(open(f"{built['model']}/config.json").read())
    assert (config["model_type"], config["num_hidden_layers"]) == ("xlm-roberta", 2)


def test_build_is_reused_and_bad_input_refused(built, tmp_path):
    import os

    stamp = os.stat(built["baseline_path"]).st_mtime_ns
    assert build_tiny_bertscore(built["model"], TEXTS) == built
    assert os.stat(built["baseline_path"]).st_mtime_ns == stamp
    with pytest.raises(ValueError, match="at least two distinct sentences"):
        build_tiny_bertscore(tmp_path / "a", ["same", "same"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="holds no tiny BERTScore model build"):
        build_tiny_bertscore(tmp_path / "busy", TEXTS)


def test_command_line(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat\n\na dog ran\n")
    out = tiny_bertscore.main(
        ["--output_folder", str(tmp_path / "cli"), "--text_file", str(corpus)]
    )
    assert json.loads(capsys.readouterr().out.strip()) == out
    assert out["baseline_path"] == str(tmp_path / "cli" / "baseline.tsv")
