"""Tests of the fluent-answer tool: prompts, language-ID / empty / lost-answer filters with a
scripted generator, unanswerable rows kept as they are, batching, resume without regenerating,
the real FrozenLLM path (tiny LLM) through the script, and errors."""

import json
import os
import runpy
import sys

import pytest

from speechmapper_plugin.data.manifests import write_csv
from speechmapper_plugin.data.preparation import MANIFEST_FIELDS
from speechmapper_plugin.data.prompts import FLUENT_ANSWER_PROMPT
from speechmapper_plugin.datatools.fluent import check_rewrite, fluent_answers, fluent_prompt
from speechmapper_plugin.datatools.resumable import SettingsMismatchError
from speechmapper_plugin.datatools.unanswerable import read_sqa_manifest
from speechmapper_plugin.tiny.llm import build_tiny_llm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


SCRIPT = os.path.join(ROOT, "recipes", "IWSLT25", "tools", "fluent_answers.py")


# ID, language, question, extractive answer(s), scripted LLM reply (None: not generated)
ROWS = [
    ("f1", "en", "When was the Eiffel Tower built?", "1889 ||| in 1889",
     "The Eiffel Tower was built in 1889."),
    ("f2", "de", "Wann wurde der Eiffelturm gebaut?", "1889",
     "  Der Eiffelturm wurde im Jahr\n1889 gebaut. "),
    ("f3", "de", "Durch welche Stadt fließt der Rhein zuerst?", "Basel",
     "The Rhine flows through Basel first."),
    ("f8", "en", "How do I cook spaghetti?", "Not answerable.", None),
    ("f4", "it", "Quanti spettatori poteva ospitare il Colosseo?", "circa cinquantamila",
     "Il Colosseo poteva ospitare circa cinquantamila spettatori."),
    ("f5", "zh", "长城有多长？", "两万多公里", "长城全长两万多公里。"),
    ("f6", "en", "How many Nobel Prizes did Marie Curie win?", "two",
     "Marie Curie won several Nobel Prizes in science."),
    ("f9", "zh", "我怎么做意大利面？", "无法回答。", None),
    ("f7", "it", "In quale materia vinse Marie Curie?", "chimica", "   "),
    ("f10", "de", "Wo endet der Rhein?", "in der Nordsee", "Der Rhein mündet in der Nordsee."),
]  # fmt: skip


KEPT = ["f1", "f2", "f8", "f4", "f5", "f9", "f10"]


DROPPED = {"f3": ("lid_mismatch", "en"), "f6": ("answer_lost", "two"), "f7": ("empty", "")}


GENERATED = [r[0] for r in ROWS if r[4] is not None]


def manifest_rows():
    return [
        {
            "ID": qid,
            "duration": "12.5",
            "wav": f"/data/{qid}.wav",
            "start": "",
            "stop": "",
            "audio_id": f"p_{qid}",
            "spk_id": "",
            "wrd": "some passage",
            "transcript": "Some passage.",
            "tgt": answers,
            "tgt_lang": lang,
            "question": question,
            "context": "Some passage.",
            "task": "sqa",
        }
        for qid, lang, question, answers, _ in ROWS
    ]


def write_manifest(path, rows=None, fields=MANIFEST_FIELDS):
    write_csv(str(path), manifest_rows() if rows is None else rows, list(fields))
    return str(path)


class Scripted:
    """A generator that answers each prompt with the reply scripted for its question, counts
    what it generates and can crash after a number of calls."""

    def __init__(self, fail_on_call=None):
        self.calls = []
        self.fail_on_call = fail_on_call

    def __call__(self, prompts):
        if self.fail_on_call is not None and len(self.calls) + 1 == self.fail_on_call:
            raise RuntimeError("simulated crash")
        ids = []
        for prompt in prompts:
            (qid,) = [r[0] for r in ROWS if f"Question: {r[2]}\n" in prompt]
            ids.append(qid)
        self.calls.append(ids)
        return [next(r[4] for r in ROWS if r[0] == qid) for qid in ids]

    @property
    def generated(self):
        return [qid for call in self.calls for qid in call]


@pytest.fixture
def manifest(tmp_path):
    return write_manifest(tmp_path / "sqa.csv")


def read(path):
    return read_sqa_manifest(str(path))[0]


def test_prompt_holds_question_first_answer_and_language():
    row = dict(manifest_rows()[0])
    prompt = fluent_prompt(row)
    assert "in English." in prompt
    assert "Question: When was the Eiffel Tower built?\nShort answer: 1889\n" in prompt
    assert "in German." in fluent_prompt(manifest_rows()[1])
    assert "in Chinese." in fluent_prompt(manifest_rows()[5])
    assert fluent_prompt(row, "{context}|{language}|{question}|{answer}") == (
        "Some passage.|English|When was the Eiffel Tower built?|1889"
    )
    with pytest.raises(ValueError, match=r"lacks \['\{answer\}'\]"):
        fluent_prompt(row, "{language} {question}")


def test_check_rewrite_decisions():
    de = {"ID": "x", "tgt": "1889", "tgt_lang": "de"}
    assert check_rewrite("Der Eiffelturm wurde im Jahr 1889 gebaut.", de) is None
    assert check_rewrite("The Eiffel Tower was built in 1889.", de) == ("lid_mismatch", "en")
    assert check_rewrite("", de) == ("empty", "")
    assert check_rewrite("1889 !!!", de) == ("lid_mismatch", "unknown")
    lost = "Der Eiffelturm wurde im neunzehnten Jahrhundert gebaut."
    assert check_rewrite(lost, de) == ("answer_lost", "1889")
    assert check_rewrite(lost, de, check_answer=False) is None


def test_filters_keep_and_drop_with_reasons(manifest, tmp_path):
    generate = Scripted()
    out = tmp_path / "fluent.csv"
    report = fluent_answers(manifest, str(out), generate, batch_size=3)
    assert report["kept"] == len(KEPT) and report["items"] == len(ROWS)
    assert report["dropped"] == {"lid_mismatch": 1, "answer_lost": 1, "empty": 1}
    rows = read(out)
    assert [row["ID"] for row in rows] == KEPT  # input order
    tgt = {row["ID"]: row["tgt"] for row in rows}
    assert tgt["f2"] == "Der Eiffelturm wurde im Jahr 1889 gebaut."  # whitespace collapsed
    assert tgt["f5"] == "长城全长两万多公里。"
    assert tgt["f8"] == "Not answerable." and tgt["f9"] == "无法回答。"
    inputs = {row["ID"]: row for row in read(manifest)}
    for row in rows:  # only tgt changes
        assert {k: v for k, v in row.items() if k != "tgt"} == {
            k: v for k, v in inputs[row["ID"]].items() if k != "tgt"
        }
    dropped = (tmp_path / "fluent.dropped.tsv").read_text(encoding="utf-8").splitlines()
    assert dropped == [f"{qid}\t{reason}\t{detail}" for qid, (reason, detail) in DROPPED.items()]
    # unanswerable rows are never sent to the LLM; batches hold at most 3 prompts
    assert sorted(generate.generated) == sorted(GENERATED)
    assert [len(call) for call in generate.calls] == [3, 3, 2]


def test_answer_check_can_be_switched_off(manifest, tmp_path):
    report = fluent_answers(manifest, str(tmp_path / "o.csv"), Scripted(), check_answer=False)
    assert report["kept"] == len(KEPT) + 1 and "answer_lost" not in report["dropped"]
    assert report["settings"]["check_answer"] is False
    tgt = {row["ID"]: row["tgt"] for row in read(tmp_path / "o.csv")}
    assert tgt["f6"] == "Marie Curie won several Nobel Prizes in science."


def test_resume_does_not_regenerate(manifest, tmp_path):
    reference = tmp_path / "reference.csv"
    fluent_answers(manifest, str(reference), Scripted(), batch_size=2)

    out = tmp_path / "out.csv"
    crashing = Scripted(fail_on_call=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fluent_answers(manifest, str(out), crashing, batch_size=2)
    assert crashing.generated == GENERATED[:4] and not out.exists()
    resumed = Scripted()
    report = fluent_answers(manifest, str(out), resumed, batch_size=2)
    assert resumed.generated == GENERATED[4:]  # nothing decided before is regenerated
    assert report["kept"] + sum(report["dropped"].values()) == len(ROWS)
    assert out.read_text(encoding="utf-8") == reference.read_text(encoding="utf-8")
    assert (tmp_path / "out.dropped.tsv").read_text(encoding="utf-8") == (
        tmp_path / "reference.dropped.tsv"
    ).read_text(encoding="utf-8")
    with pytest.raises(SettingsMismatchError, match="model"):
        fluent_answers(manifest, str(out), Scripted(), generator_settings={"model": "other"})


def test_unknown_language_and_missing_column_errors(tmp_path):
    rows = manifest_rows()
    rows[2]["tgt_lang"] = "xx"
    path = write_manifest(tmp_path / "bad.csv", rows)
    with pytest.raises(ValueError, match=r"Row 'f3': tgt_lang 'xx' .*supported: \['de'"):
        fluent_answers(path, str(tmp_path / "o.csv"), Scripted())
    fields = [f for f in MANIFEST_FIELDS if f != "question"]
    path = write_manifest(tmp_path / "noq.csv", fields=fields)
    with pytest.raises(KeyError, match=r"noq.csv lacks the column\(s\) \['question'\]"):
        fluent_answers(path, str(tmp_path / "o.csv"), Scripted())
    with pytest.raises(FileNotFoundError, match="missing.csv does not exist"):
        fluent_answers(str(tmp_path / "missing.csv"), str(tmp_path / "o.csv"), Scripted())
    with pytest.raises(RuntimeError, match="returned 0 replies for 2 prompts"):
        fluent_answers(write_manifest(tmp_path / "ok.csv"), str(tmp_path / "o.csv"),
                       lambda prompts: [], batch_size=2)  # fmt: skip


def test_script_with_tiny_llm(manifest, tmp_path, monkeypatch, capsys):
    corpus = [row[2] for row in ROWS] + [row[4] for row in ROWS if row[4]]
    llm = build_tiny_llm(tmp_path / "llm", corpus * 3)
    out = tmp_path / "tiny.csv"
    argv = ["--input", manifest, "--output", str(out), "--model", str(llm), "--dtype",
            "float32", "--device", "cpu", "--batch-size", "4", "--max-new-tokens", "4"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", [SCRIPT, *argv])
    runpy.run_path(SCRIPT, run_name="__main__")  # the script, in-process (no re-import)
    report = json.loads((tmp_path / "tiny.report.json").read_text(encoding="utf-8"))
    assert json.loads(capsys.readouterr().out)["kept"] == report["kept"]
    assert report["kept"] + sum(report["dropped"].values()) == len(ROWS) == report["input_items"]
    rows = read(out)
    assert report["output_rows"] == report["kept"] == len(rows)
    assert report["settings"]["model"] == str(llm)
    assert report["settings"]["template"] == FLUENT_ANSWER_PROMPT
    tgt = {row["ID"]: row["tgt"] for row in rows}
    assert tgt["f8"] == "Not answerable." and tgt["f9"] == "无法回答。"
