"""Tests of the Seamless translation + COMET filter data tool (IWSLT25)."""

import json
import runpy
import sys
from pathlib import Path

import pytest

from speechmapper_plugin.data.manifests import ANSWER_SEPARATOR, read_manifest, write_csv
from speechmapper_plugin.datatools.resumable import SettingsMismatchError
from speechmapper_plugin.datatools.translation import (
    SeamlessTranslator,
    parse_columns,
    seamless_code,
    translate_manifest,
)
from speechmapper_plugin.evaluation.comet import CometScorer
from speechmapper_plugin.tiny.comet import build_tiny_comet
from speechmapper_plugin.tiny.seamless import build_tiny_seamless

SCRIPT = Path(__file__).parents[3] / "recipes" / "IWSLT25" / "tools" / "translate_manifest.py"


FIELDS = ["ID", "duration", "wav", "audio_id", "transcript", "tgt", "tgt_lang", "question", "task"]


ROWS = [
    {
        "ID": "q1",
        "question": "Where is the cat?",
        "tgt": "on the mat" + ANSWER_SEPARATOR + "the mat",
        "transcript": "The cat sat on the mat.",
    },
    {"ID": "q2", "question": "Who sat?", "tgt": "the cat", "transcript": "It sat."},
    {"ID": "q3", "question": "What colour?", "tgt": "black", "transcript": "It is black."},
]


TEXTS = [r[k] for r in ROWS for k in ("question", "tgt", "transcript")]


def write_manifest(path, rows=ROWS, **overrides):
    full = [
        {
            "duration": 2.5,
            "wav": "/data/p1.wav",
            "audio_id": "p1",
            "tgt_lang": "en",
            "task": "sqa",
            **row,
            **overrides,
        }
        for row in rows
    ]
    write_csv(str(path), full, FIELDS)
    return str(path)


@pytest.fixture(scope="module")
def seamless(tmp_path_factory):
    folder = build_tiny_seamless(tmp_path_factory.mktemp("seamless") / "model", TEXTS)
    return SeamlessTranslator(str(folder), device="cpu", batch_size=2, num_beams=1)


@pytest.fixture(scope="module")
def comet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("comet") / "model"
    build_tiny_comet(folder, TEXTS)
    return CometScorer(str(folder), batch_size=4, gpus=0)


class Tagger:
    """Scripted translator: X -> "<lang>:X", back to English by removing the tag."""

    model = "tagger"

    def __init__(self, fail_after=None):
        self.calls = []
        self.fail_after = fail_after

    def translate(self, texts, src_lang, tgt_lang):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append((tuple(texts), src_lang, tgt_lang))
        if tgt_lang == "en":
            return [text.split(":", 1)[-1] for text in texts]
        return [f"{tgt_lang}:{text}" for text in texts]


class ScriptedScorer:
    """Scores (x100, as CometScorer) looked up by source text; 95 by default."""

    model = "scripted"

    def __init__(self, scores=None):
        self.scores = scores or {}

    def score(self, sources, hypotheses, references):
        assert references == sources  # round trip: the original is the reference
        return {"segments": [100.0 * self.scores.get(s, 0.95) for s in sources]}


def test_language_codes_and_columns():
    assert [seamless_code(c) for c in ("de", "it", "zh", "EN")] == ["deu", "ita", "cmn", "eng"]
    with pytest.raises(ValueError, match="Unknown language 'xx'"):
        seamless_code("xx")
    assert parse_columns(["question", "tgt"]) == [("question", "question"), ("tgt", "tgt")]
    with pytest.raises(ValueError, match="each written once"):
        parse_columns(["question", "transcript:question"])


def test_sqa_rows_per_language_with_tiny_seamless_and_comet(seamless, comet, tmp_path):
    src = write_manifest(tmp_path / "sqa.csv")
    out = tmp_path / "all.csv"
    report = translate_manifest(src, out, ["de", "it", "zh"], seamless, comet, threshold=-1e6)
    rows = read_manifest(out)
    assert list(rows) == [f"q{i}_{lang}" for i in (1, 2, 3) for lang in ("de", "it", "zh")]
    assert report["kept"] == 9 and report["dropped"] == {} and report["output_rows"] == 9
    for utt_id, row in rows.items():
        original = next(r for r in ROWS if r["ID"] == utt_id.split("_")[0])
        assert row["tgt_lang"] == utt_id.split("_")[1]
        assert row["audio_id"] == "p1" and row["wav"] == "/data/p1.wav" and row["duration"] == 2.5
        assert row["transcript"] == original["transcript"]  # not a translated column
        assert row["question"] != original["question"]  # replaced by the translation
        answers = original["tgt"].count(ANSWER_SEPARATOR) + 1
        assert row["tgt"].count(ANSWER_SEPARATOR) + 1 == answers  # answer by answer

    # Above every score: every item is dropped, with its per-field scores.
    high = tmp_path / "none.csv"
    report = translate_manifest(src, high, ["de", "it", "zh"], seamless, comet, threshold=50.0)
    assert report["kept"] == 0 and report["dropped"] == {"comet_below_50": 9}
    assert list(read_manifest(high)) == []
    dropped = (tmp_path / "none.dropped.tsv").read_text().splitlines()
    assert len(dropped) == 9
    utt_id, reason, detail = dropped[0].split("\t")
    assert (utt_id, reason) == ("q1_de", "comet_below_50")
    scores = dict(part.split("=") for part in detail.split())
    assert sorted(scores) == ["question", "tgt"] and all(float(v) < 50 for v in scores.values())
    saved = json.loads((tmp_path / "none.report.json").read_text())
    assert saved["settings"]["comet_mode"] == "round_trip"
    assert saved["settings"]["threshold"] == 50.0


def test_filter_keeps_an_item_only_if_every_field_passes(tmp_path):
    src = write_manifest(tmp_path / "sqa.csv")
    scores = {"Who sat?": 0.99, "the cat": 0.84, "the mat": 0.80, "on the mat": 0.90}
    report = translate_manifest(
        src, tmp_path / "out.csv", ["de"], Tagger(), ScriptedScorer(scores), threshold=0.85
    )
    # q1: the second answer (0.80) fails; q2: the answer (0.84) fails; q3: everything at 0.95.
    assert list(read_manifest(tmp_path / "out.csv")) == ["q3_de"]
    assert report["dropped"] == {"comet_below_0.85": 2}
    dropped = (tmp_path / "out.dropped.tsv").read_text()
    assert "q1_de\tcomet_below_0.85\tquestion=0.9500 tgt=0.8000\n" in dropped
    assert "q2_de\tcomet_below_0.85\tquestion=0.9900 tgt=0.8400\n" in dropped
    # A score equal to the threshold passes.
    report = translate_manifest(
        src, tmp_path / "eq.csv", ["de"], Tagger(), ScriptedScorer(scores), threshold=0.80
    )
    assert report["kept"] == 3


def test_translation_into_another_column_makes_st_rows(tmp_path):
    src = write_manifest(tmp_path / "asr.csv", tgt="", tgt_lang="", task="asr")
    out = tmp_path / "st.csv"
    translate_manifest(
        src, out, ["de", "zh"], Tagger(), ScriptedScorer(), columns=["transcript:tgt"], task="st"
    )
    row = read_manifest(out)["q2_zh"]
    assert (row["transcript"], row["tgt"], row["tgt_lang"], row["task"]) == (
        "It sat.",
        "zh:It sat.",
        "zh",
        "st",
    )
    assert row["question"] == "Who sat?"  # untouched


def test_bad_items_are_dropped_with_their_reason(tmp_path):
    rows = [*ROWS, {"ID": "q4", "question": " ", "tgt": "x", "transcript": "x"}]
    rows.append({"ID": "q5", "question": "Why?", "tgt": ANSWER_SEPARATOR, "transcript": "x"})
    src = write_manifest(tmp_path / "sqa.csv", rows)
    lines = (tmp_path / "sqa.csv").read_text().splitlines()
    lines[2] = lines[2].replace(",en,", ",fr,")  # q2's answer is not English
    (tmp_path / "sqa.csv").write_text("\n".join(lines) + "\n")

    class EmptyGerman(Tagger):
        def translate(self, texts, src_lang, tgt_lang):
            out = super().translate(texts, src_lang, tgt_lang)
            return ["" if t == "de:black" else t for t in out] if tgt_lang == "de" else out

    report = translate_manifest(src, tmp_path / "out.csv", ["de"], EmptyGerman(), ScriptedScorer())
    assert report["dropped"] == {
        "empty_source": 2,
        "source_lang_mismatch": 1,
        "empty_translation": 1,
    }
    assert list(read_manifest(tmp_path / "out.csv")) == ["q1_de"]


def test_resume_after_interruption_redoes_nothing_and_matches(tmp_path):
    src = write_manifest(tmp_path / "sqa.csv")
    reference = tmp_path / "ref.csv"
    translate_manifest(src, reference, ["de", "it"], Tagger(), ScriptedScorer(), chunk_size=2)

    out = tmp_path / "out.csv"
    # Chunk 1 = (q1, de), (q1, it): 4 calls (2 languages x there and back); dies in chunk 2.
    with pytest.raises(KeyboardInterrupt):
        translate_manifest(
            src, out, ["de", "it"], Tagger(fail_after=5), ScriptedScorer(), chunk_size=2
        )
    assert not out.exists()
    progress = (tmp_path / "out.csv.progress.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in progress[1:]] == ["q1_de", "q1_it"]
    resumed = Tagger()
    report = translate_manifest(src, out, ["de", "it"], resumed, ScriptedScorer(), chunk_size=2)
    assert all("Where is the cat?" not in texts for texts, _, _ in resumed.calls)
    assert report["kept"] == 6
    assert out.read_text() == reference.read_text()
    with pytest.raises(SettingsMismatchError, match="threshold"):
        translate_manifest(src, out, ["de", "it"], Tagger(), ScriptedScorer(), threshold=0.9)


def test_errors_name_the_problem(seamless, tmp_path):
    src = write_manifest(tmp_path / "sqa.csv")
    with pytest.raises(KeyError, match=r"lacks the column\(s\) \['answer'\]"):
        translate_manifest(src, tmp_path / "o.csv", ["de"], Tagger(), ScriptedScorer(), ["answer"])
    with pytest.raises(ValueError, match="Unknown language 'xx'"):
        translate_manifest(src, tmp_path / "o.csv", ["de", "xx"], Tagger(), ScriptedScorer())
    with pytest.raises(ValueError, match="other than the source language"):
        translate_manifest(src, tmp_path / "o.csv", ["en"], Tagger(), ScriptedScorer())
    with pytest.raises(ValueError, match=r"does not support \['ja \(jpn\)'\]"):
        translate_manifest(src, tmp_path / "o.csv", ["de", "ja"], seamless, ScriptedScorer())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        translate_manifest(tmp_path / "no.csv", tmp_path / "o.csv", ["de"], Tagger(), None)
    with pytest.raises(ValueError, match="not a SeamlessM4T-v2 model"):
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "config.json").write_text('{"model_type": "llama"}')
        SeamlessTranslator(str(bad), device="cpu").load()


def test_command_line_script(seamless, comet, tmp_path, monkeypatch, capsys):
    src = write_manifest(tmp_path / "sqa.csv", ROWS[:1])
    out = tmp_path / "cli.csv"
    argv = [str(SCRIPT), "--input", src, "--output", str(out), "--languages", "it"]
    argv += ["--model", seamless.model, "--comet-model", comet.model, "--threshold", "-1000"]
    argv += ["--device", "cpu", "--num-beams", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["kept"] == 1
    assert list(read_manifest(out)) == ["q1_it"]
