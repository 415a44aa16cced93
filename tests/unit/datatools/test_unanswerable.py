"""Tests of the unanswerable-SQA tool: localized answers, pairing with other passages that do
not contain the answer, seeded draws, union with the input, resume, CLI and errors."""

import json
import os
import runpy
import sys

import pytest

from speechmapper_plugin.data.manifests import split_answers, write_csv
from speechmapper_plugin.data.preparation import MANIFEST_FIELDS
from speechmapper_plugin.datatools import unanswerable as unanswerable_module
from speechmapper_plugin.datatools.resumable import SettingsMismatchError
from speechmapper_plugin.datatools.unanswerable import (
    contains_answer,
    main,
    make_unanswerable,
    read_sqa_manifest,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


SCRIPT = os.path.join(ROOT, "recipes", "IWSLT25", "tools", "make_unanswerable.py")


PASSAGES = {
    "p1": "The Eiffel Tower was built in 1889 for the World's Fair in Paris.",
    "p2": "Der Rhein fließt durch Basel, Straßburg und Köln bis in die Nordsee.",
    "p3": "Il Colosseo di Roma poteva ospitare circa cinquantamila spettatori.",
    "p4": "长城是中国古代的军事防御工程，全长两万多公里。",
    "p5": "Marie Curie won two Nobel Prizes, one in physics and one in chemistry.",
}


# ID, passage, question, answers, language
QUESTIONS = [
    ("q1", "p1", "When was the Eiffel Tower built?", "1889 ||| in 1889", "en"),
    ("q2", "p1", "Wann wurde der Eiffelturm gebaut?", "1889", "de"),
    ("q3", "p2", "Durch welche Stadt fließt der Rhein zuerst?", "Basel", "de"),
    ("q4", "p3", "Quanti spettatori poteva ospitare il Colosseo?", "circa cinquantamila", "it"),
    ("q5", "p4", "长城有多长？", "两万多公里", "zh"),
    ("q6", "p5", "How many Nobel Prizes did Marie Curie win?", "two", "en"),
    ("q7", "p5", "In quale materia vinse Marie Curie?", "chemistry", "it"),
    ("q8", "p2", "Where does the Rhine end?", "the North Sea ||| Nordsee", "en"),
]


LOCALIZED = {
    "en": "Not answerable.",
    "de": "Nicht zu beantworten.",
    "it": "Non è possibile rispondere.",
    "zh": "无法回答。",
}


def passage_row(audio_id, text):
    return {
        "duration": f"{len(text) / 8:.2f}",  # a distinct duration per passage
        "wav": f"/data/{audio_id}.wav",
        "start": "",
        "stop": "",
        "audio_id": audio_id,
        "spk_id": f"spk_{audio_id}",
        "wrd": text.lower(),
        "transcript": text,
        "context": text,
    }


def sqa_rows(questions=QUESTIONS, passages=PASSAGES):
    return [
        {
            "ID": qid,
            **passage_row(audio_id, passages[audio_id]),
            "tgt": answers,
            "tgt_lang": lang,
            "question": question,
            "task": "sqa",
        }
        for qid, audio_id, question, answers, lang in questions
    ]


def write_manifest(path, rows, fields=MANIFEST_FIELDS):
    write_csv(str(path), rows, list(fields))
    return str(path)


@pytest.fixture
def manifest(tmp_path):
    return write_manifest(tmp_path / "sqa.csv", sqa_rows())


def read(path):
    return read_sqa_manifest(str(path))[0]


def test_localized_answers_and_new_rows(manifest, tmp_path):
    report = make_unanswerable(manifest, str(tmp_path / "out.csv"), fraction=1.0, seed=3)
    assert report["kept"] == len(QUESTIONS) and report["dropped"] == {}
    assert report["output_rows"] == len(QUESTIONS)
    originals = {row["ID"]: row for row in read(manifest)}
    out = read(tmp_path / "out.csv")
    assert [row["ID"] for row in out] == [f"{qid}_unans" for qid, *_ in QUESTIONS]
    for row in out:
        original = originals[row["ID"][: -len("_unans")]]
        assert row["tgt"] == LOCALIZED[original["tgt_lang"]]
        assert row["tgt_lang"] == original["tgt_lang"]
        assert row["question"] == original["question"]
        assert row["task"] == "sqa"
    by_lang = {row["tgt_lang"]: row["tgt"] for row in out}
    assert by_lang == LOCALIZED


def test_no_question_stays_with_its_passage_or_an_answer_context(manifest, tmp_path):
    originals = {row["ID"]: row for row in read(manifest)}
    for seed in range(5):
        out = tmp_path / f"out{seed}.csv"
        make_unanswerable(manifest, str(out), fraction=1.0, seed=seed)
        for row in read(out):
            original = originals[row["ID"][: -len("_unans")]]
            assert row["audio_id"] != original["audio_id"]
            # the audio and texts all come from the new passage
            passage = passage_row(row["audio_id"], PASSAGES[row["audio_id"]])
            for column in ("wav", "spk_id", "wrd", "transcript", "context"):
                assert row[column] == passage[column]
            assert row["duration"] == float(passage["duration"])
            assert not contains_answer(row["context"], split_answers(original["tgt"]))


def test_passage_containing_the_answer_is_rejected_case_insensitively(tmp_path):
    passages = {
        "pa": "The capital of France is Paris.",
        "pb": "Many tourists visit PARIS every summer.",
        "pc": "Berlin is the capital of Germany.",
    }
    questions = [
        ("qa", "pa", "What is the capital of France?", "Paris", "en"),
        ("qb", "pb", "Who visits it?", "many tourists", "en"),
        ("qc", "pc", "What is the capital of Germany?", "Berlin", "en"),
    ]
    path = write_manifest(tmp_path / "in.csv", sqa_rows(questions, passages))
    for seed in range(6):
        make_unanswerable(path, str(tmp_path / f"o{seed}.csv"), fraction=1.0, seed=seed)
        pairs = {row["ID"]: row["audio_id"] for row in read(tmp_path / f"o{seed}.csv")}
        assert pairs["qa_unans"] == "pc"  # pb holds "PARIS"
    # With every other passage holding the answer, the question is dropped with the reason.
    passages["pc"] = "Paris and Berlin are capitals."
    path = write_manifest(tmp_path / "in2.csv", sqa_rows(questions, passages))
    report = make_unanswerable(path, str(tmp_path / "out2.csv"), fraction=1.0, seed=0)
    assert report["dropped"] == {"answer_in_tried_passages": 1}
    dropped = (tmp_path / "out2.dropped.tsv").read_text().splitlines()
    assert len(dropped) == 1 and dropped[0].startswith("qa\tanswer_in_tried_passages\ttried 2")
    assert {row["ID"] for row in read(tmp_path / "out2.csv")} == {"qb_unans", "qc_unans"}


def test_max_tries_bounds_the_search(tmp_path):
    passages = {f"p{i}": f"Passage {i} is about Paris." for i in range(1, 7)}
    passages["p7"] = "Nothing here."
    questions = [("q1", "p1", "Which city?", "Paris", "en")] + [
        (f"x{i}", f"p{i}", "Which passage?", f"Passage {i}", "en") for i in range(2, 8)
    ]
    path = write_manifest(tmp_path / "in.csv", sqa_rows(questions, passages))
    outcomes = set()
    for seed in range(8):
        out = str(tmp_path / f"o{seed}.csv")
        report = make_unanswerable(path, out, count=7, seed=seed, max_tries=1)
        outcomes.add(report["dropped"].get("answer_in_tried_passages", 0))
        if report["dropped"]:
            tsv = (tmp_path / f"o{seed}.dropped.tsv").read_text()
            assert tsv.startswith("q1\tanswer_in_tried_passages\ttried 1: p")
    assert outcomes == {0, 1}  # one try finds p7 for some seeds only


def test_single_passage_is_dropped_with_reason(tmp_path):
    questions = [q for q in QUESTIONS if q[1] == "p1"]
    path = write_manifest(tmp_path / "in.csv", sqa_rows(questions))
    report = make_unanswerable(path, str(tmp_path / "out.csv"), fraction=1.0)
    assert report["kept"] == 0 and report["dropped"] == {"no_other_passage": 2}
    assert (tmp_path / "out.csv").read_text() == ",".join(MANIFEST_FIELDS) + "\n"


def test_seeded_draw_is_reproducible(manifest, tmp_path):
    outputs = {}
    for seed in (0, 0, 1, 2, 3):
        out = tmp_path / f"s{seed}_{len(outputs)}.csv"
        report = make_unanswerable(manifest, str(out), fraction=0.5, seed=seed)
        assert report["kept"] + sum(report["dropped"].values()) == 4
        outputs.setdefault(seed, []).append(out.read_text(encoding="utf-8"))
    assert outputs[0][0] == outputs[0][1]  # same seed, same rows and pairings
    assert len({texts[0] for texts in outputs.values()}) > 1  # other seeds, other draws


def test_count_and_already_unanswerable_rows(tmp_path):
    rows = sqa_rows()
    rows[0]["tgt"] = "Not answerable."  # already unanswerable: never drawn
    path = write_manifest(tmp_path / "in.csv", rows)
    report = make_unanswerable(path, str(tmp_path / "out.csv"), count=7, seed=0)
    assert report["kept"] == 7
    assert "q1_unans" not in {row["ID"] for row in read(tmp_path / "out.csv")}
    with pytest.raises(ValueError, match=r"Cannot draw 8 question\(s\) out of 7"):
        make_unanswerable(path, str(tmp_path / "x.csv"), count=8)
    with pytest.raises(ValueError, match="either a fraction or a count"):
        make_unanswerable(path, str(tmp_path / "x.csv"), fraction=0.5, count=2)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        make_unanswerable(path, str(tmp_path / "x.csv"), fraction=1.5)


def test_with_original_writes_the_union(manifest, tmp_path):
    out = tmp_path / "union.csv"
    report = make_unanswerable(manifest, str(out), count=3, seed=1, with_original=True)
    rows = read(out)
    assert [row["ID"] for row in rows[: len(QUESTIONS)]] == [q[0] for q in QUESTIONS]
    assert rows[: len(QUESTIONS)] == read(manifest)
    assert [row["tgt"] in LOCALIZED.values() for row in rows[len(QUESTIONS) :]] == [True] * 3
    assert report["original_rows"] == len(QUESTIONS) and report["output_rows"] == len(rows)
    saved = json.loads((tmp_path / "union.report.json").read_text())
    assert saved["output_rows"] == len(QUESTIONS) + 3 and saved["kept"] == 3


def test_resume_after_interruption(manifest, tmp_path, monkeypatch):
    reference = tmp_path / "reference.csv"
    make_unanswerable(manifest, str(reference), fraction=1.0, seed=7)

    real_pair = unanswerable_module.pair_question
    calls = []

    def crashing_pair(row, *args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated interruption")
        calls.append(row["ID"])
        return real_pair(row, *args, **kwargs)

    monkeypatch.setattr(unanswerable_module, "pair_question", crashing_pair)
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        make_unanswerable(manifest, str(out), fraction=1.0, seed=7)
    assert not out.exists()
    first = list(calls)

    def counting_pair(row, *args, **kwargs):
        calls.append(row["ID"])
        return real_pair(row, *args, **kwargs)

    monkeypatch.setattr(unanswerable_module, "pair_question", counting_pair)
    report = make_unanswerable(manifest, str(out), fraction=1.0, seed=7)
    assert calls[3:] == [q[0] for q in QUESTIONS if q[0] not in first]  # no item redone
    assert report["kept"] == len(QUESTIONS)
    assert out.read_text(encoding="utf-8") == reference.read_text(encoding="utf-8")
    with pytest.raises(SettingsMismatchError, match="seed"):
        make_unanswerable(manifest, str(out), fraction=1.0, seed=8)


def test_unknown_language_error_names_row_and_languages(tmp_path):
    rows = sqa_rows()
    rows[4]["tgt_lang"] = "fr"
    path = write_manifest(tmp_path / "in.csv", rows)
    with pytest.raises(ValueError, match=r"Row 'q5': tgt_lang 'fr'.*\['de', 'en', 'it', 'zh'\]"):
        make_unanswerable(path, str(tmp_path / "out.csv"), fraction=1.0)
    assert not os.path.exists(tmp_path / "out.csv.progress.jsonl")


def test_missing_column_and_id_clash_errors(tmp_path):
    fields = [f for f in MANIFEST_FIELDS if f != "context"]
    path = write_manifest(tmp_path / "in.csv", sqa_rows(), fields)
    with pytest.raises(KeyError, match=r"in.csv lacks the column\(s\) \['context'\]"):
        make_unanswerable(path, str(tmp_path / "out.csv"), fraction=1.0)
    rows = sqa_rows()
    rows[1]["ID"] = "q1_unans"
    path = write_manifest(tmp_path / "clash.csv", rows)
    with pytest.raises(ValueError, match=r"already holds the ID\(s\) \['q1_unans'\]"):
        make_unanswerable(path, str(tmp_path / "out.csv"), fraction=1.0)


def test_main_in_process(manifest, tmp_path, capsys):
    out = tmp_path / "cli.csv"
    report = main(["--input", manifest, "--output", str(out), "--count", "2", "--seed", "5"])
    assert report["kept"] == 2 and len(read(out)) == 2
    assert json.loads(capsys.readouterr().out) == {"kept": 2, "dropped": {}, "output_rows": 2}
    with pytest.raises(SystemExit):  # --fraction or --count is required
        main(["--input", manifest, "--output", str(out)])


def test_script(manifest, tmp_path, monkeypatch, capsys):
    out = tmp_path / "script.csv"
    argv = ["--input", manifest, "--output", str(out), "--fraction", "0.5", "--with-original"]
    monkeypatch.setattr(sys, "argv", [SCRIPT, *argv])
    runpy.run_path(SCRIPT, run_name="__main__")
    assert json.loads(capsys.readouterr().out)["output_rows"] == len(QUESTIONS) + 4
    report = json.loads((tmp_path / "script.report.json").read_text())
    assert report["kept"] == 4 and report["tool"] == "make_unanswerable"
    assert len(read(out)) == len(QUESTIONS) + 4
