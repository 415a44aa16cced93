"""Tests for speechmapper_plugin.evaluation.report: seed aggregation, Markdown tables in the papers' layout,
Hugging Face model-index metadata and the command line."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from huggingface_hub.repocard_data import model_index_to_eval_results

from speechmapper_plugin.evaluation.model_index import model_card_metadata, model_index
from speechmapper_plugin.evaluation.report import main
from speechmapper_plugin.evaluation.results import load_results, make_result, write_result
from speechmapper_plugin.evaluation.tables import aggregate, iwslt25_tables, markdown_tables

OUT = [{"id": "u1", "hypothesis": "h", "reference": "r"}]


LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


MSE = "Stage 2 [ASR CE+MSE]"


BLEU_SIG = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"


LID_SIG = "langdetect 1.0.9, seed 0"


def paper_like_runs():
    """Paper-like results, in an order unlike the tables' (columns must be sorted)."""
    runs = []
    # A zero-shot SpeechMapper, two seeds.
    seeds = ((1, 3.0, 1.0, 20.0, 79.0, 75.0), (2, 4.0, 2.0, 23.0, 80.0, 78.0))
    for seed, wer, cer, bleu, comet, acc in seeds:
        for dataset, tgt in (("CoVoST2", "zh"), ("EuroParl-ST", "de"), ("EuroParl-ST", "es")):
            runs.append(
                make_result(
                    MSE,
                    dataset,
                    "test",
                    "st",
                    {
                        "bleu": bleu,
                        "comet": comet,
                        "lid_en_pct": 2.0 * seed,
                        "lid_target_pct": 90.0 + seed,
                    },
                    OUT,
                    seed=seed,
                    setting="zero-shot",
                    llm=LLAMA,
                    target_lang=tgt,
                    signatures={"bleu": BLEU_SIG, "lid": LID_SIG},
                )
            )
        runs.append(
            make_result(
                MSE,
                "LibriSpeech",
                "test-clean",
                "asr",
                {"wer": wer, "cer": cer},
                OUT,
                seed=seed,
                setting="zero-shot",
                llm=LLAMA,
                target_lang="en" if seed == 2 else None,  # for ASR, "en" -> "en" is no target
            )
        )
        runs.append(
            make_result(
                MSE,
                "LibriSQA",
                "PartI",
                "sqa",
                {
                    "judge_accuracy": acc,
                    "judge_std": 2.0,  # two judges, 2 points above and below their mean
                    "judge_accuracy[judge/a]": acc + 2.0,
                    "judge_accuracy[judge/b]": acc - 2.0,
                    "lid_en_pct": 99.0,
                    "lid_target_pct": 99.0,
                },
                OUT,
                seed=seed,
                setting="zero-shot",
                llm=LLAMA,
            )
        )
    # A baseline, one run, evaluated on fewer test sets (-> "–" cells).
    runs.append(
        make_result(
            "Seamless ASR",
            "Fleurs",
            "test",
            "asr",
            {"wer": 8.9, "cer": 5.3},
            OUT,
            setting="baseline",
        )
    )
    runs.append(
        make_result(
            "Seamless ASR",
            "LibriSpeech",
            "test-clean",
            "asr",
            {"wer": 2.7, "cer": 0.9},
            OUT,
            setting="baseline",
        )
    )
    # A topline, one run: its SQA cell still has a "±", the spread over its 4 judges.
    runs.append(
        make_result(
            "Transcripts + Llama 3.1 8B",
            "LibriSQA",
            "PartI",
            "sqa",
            {
                "judge_accuracy": 91.0,
                "judge_std": 2.236,
                **{f"judge_accuracy[judge/{k}]": v for k, v in zip("abcd", (90, 92, 94, 88))},
            },
            OUT,
            setting="topline",
            llm=LLAMA,
        )
    )
    runs.append(
        make_result(
            "Transcripts + Llama 3.1 8B",
            "EuroParl-ST",
            "test",
            "st",
            {"comet": 82.8, "bleu": 31.0},
            OUT,
            setting="topline",
            llm=LLAMA,
            target_lang="es",
        )
    )
    return runs


@pytest.fixture(scope="module")
def results():
    # Systems first appear in the order: MSE, Seamless ASR, topline.
    return paper_like_runs()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, results):
    path = str(tmp_path_factory.mktemp("results"))
    for r in results:
        write_result(path, r)
    return path


def parse_tables(markdown):
    """{title: {"columns": [...], "rows": {label: [cells]}, "order": [labels]}}."""
    tables, title = {}, None
    for line in markdown.splitlines():
        if line.startswith("### "):
            title = line[4:]
            tables[title] = {"columns": None, "rows": {}, "order": []}
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            if tables[title]["columns"] is None:
                tables[title]["columns"] = cells[1:]
            else:
                tables[title]["rows"][cells[0]] = cells[1:]
                tables[title]["order"].append(cells[0])
    return tables


def cell(table, row, column):
    return table["rows"][row][table["columns"].index(column)]


def test_aggregate_mean_and_sample_std():
    rows = aggregate(
        [
            make_result("S", "LS", "test", "asr", {"wer": w}, [], seed=s)
            for s, w in ((1, 3.0), (2, 4.0), (3, 8.0))
        ]
        + [make_result("T", "LS", "test", "asr", {"wer": 9.0}, [])]
    )
    assert len(rows) == 2
    s_row, t_row = rows
    assert (s_row["mean"], s_row["n"], s_row["seeds"]) == (5.0, 3, [1, 2, 3])
    assert s_row["std"] == pytest.approx(2.6457513, abs=1e-6)  # sqrt(7): ddof=1
    assert (t_row["mean"], t_row["std"], t_row["n"]) == (9.0, None, 1)


def test_aggregate_rejects_a_duplicate_seed_and_an_ambiguous_system():
    r = make_result("S", "LS", "test", "asr", {"wer": 3.0}, [], seed=1)
    with pytest.raises(ValueError, match="two results describe the same run"):
        aggregate([r, dict(r)])
    other = make_result("S", "LS", "test", "asr", {"wer": 3.0}, [], seed=2, llm="other-llm")
    with pytest.raises(ValueError, match="system 'S' appears with"):
        aggregate([r, other])


def test_tables_layout_and_values(results):
    tables = parse_tables(markdown_tables(results))
    assert list(tables) == [
        "ASR: WER / CER (↓)",
        "ST: COMET (↑)",
        "ST: BLEU (↑)",
        "ST: language identification, EN % / TARGET %",
        "SQA: LLM-as-judge accuracy (↑)",
        "SQA: language identification, EN % / TARGET %",
    ]
    asr = tables["ASR: WER / CER (↓)"]
    assert asr["columns"] == ["LibriSpeech test-clean", "Fleurs test"]
    assert asr["order"] == ["Stage 2 [ASR CE+MSE] (zero-shot)", "Seamless ASR (baseline)"]
    # two seeds: WER 3,4 -> 3.5 ± 0.707; CER 1,2 -> 1.5 ± 0.707
    assert cell(asr, "Stage 2 [ASR CE+MSE] (zero-shot)", "LibriSpeech test-clean") == (
        "3.5 ± 0.7 / 1.5 ± 0.7"
    )
    assert cell(asr, "Stage 2 [ASR CE+MSE] (zero-shot)", "Fleurs test") == "–"
    assert cell(asr, "Seamless ASR (baseline)", "Fleurs test") == "8.9 / 5.3"  # one run: no ±

    bleu = tables["ST: BLEU (↑)"]
    # Table 1 order: EuroParl before CoVoST2, es before de; zh column present
    assert bleu["columns"] == ["EuroParl-ST en-es", "EuroParl-ST en-de", "CoVoST2 en-zh"]
    assert cell(bleu, "Stage 2 [ASR CE+MSE] (zero-shot)", "CoVoST2 en-zh") == "21.5 ± 2.1"
    assert cell(bleu, "Transcripts + Llama 3.1 8B (topline)", "EuroParl-ST en-es") == "31.0"
    assert cell(bleu, "Transcripts + Llama 3.1 8B (topline)", "CoVoST2 en-zh") == "–"
    comet = tables["ST: COMET (↑)"]
    assert cell(comet, "Stage 2 [ASR CE+MSE] (zero-shot)", "EuroParl-ST en-de") == "79.5 ± 0.7"

    lid = tables["ST: language identification, EN % / TARGET %"]
    assert list(lid["rows"]) == ["Stage 2 [ASR CE+MSE] (zero-shot)"]  # only systems with LID
    assert cell(lid, "Stage 2 [ASR CE+MSE] (zero-shot)", "CoVoST2 en-zh") == (
        "3.0% ± 1.4 / 91.5% ± 0.7"
    )
    # Table 2: "±" = the spread over the judges (population std of the per-judge
    # accuracies, each averaged over the seeds); the seed spread has its own column.
    sqa = tables["SQA: LLM-as-judge accuracy (↑)"]
    assert sqa["columns"] == ["LibriSQA PartI", "seeds ±"]
    assert sqa["rows"]["Stage 2 [ASR CE+MSE] (zero-shot)"] == ["76.5% ± 2.0", "2.1"]
    assert sqa["rows"]["Transcripts + Llama 3.1 8B (topline)"] == ["91.0% ± 2.2", "–"]
    assert "judge_std" not in " ".join(tables) and "judge/a" not in " ".join(tables)
    sqa_lid = tables["SQA: language identification, EN % / TARGET %"]
    assert cell(sqa_lid, "Stage 2 [ASR CE+MSE] (zero-shot)", "LibriSQA PartI") == (
        "99.0% ± 0.0 / 99.0% ± 0.0"
    )


def test_notes_give_seeds_and_signatures(results):
    text = markdown_tables(results)
    bleu_section = text.split("### ST: BLEU")[1].split("###")[0]
    assert f"_BLEU signature: `{BLEU_SIG}`_" in bleu_section
    assert "over 1–2 seed(s)" in bleu_section
    assert "signature" not in text.split("### ST: BLEU")[0]  # no BLEU note in ASR/COMET
    lid_section = text.split("### ST: language identification")[1].split("###")[0]
    # the "lid" signature covers both LID metrics, printed once
    assert lid_section.count("signature") == 1
    assert f"_LID EN % / LID target % signature: `{LID_SIG}`_" in lid_section


def test_rows_sorted_by_setting(results):
    tables = parse_tables(markdown_tables(results, sort_by_setting=True))
    assert tables["ST: BLEU (↑)"]["order"] == [
        "Transcripts + Llama 3.1 8B (topline)",
        "Stage 2 [ASR CE+MSE] (zero-shot)",
    ]
    assert tables["ASR: WER / CER (↓)"]["order"] == [
        "Seamless ASR (baseline)",
        "Stage 2 [ASR CE+MSE] (zero-shot)",
    ]


def test_metric_selection_and_decimals(results):
    tables = parse_tables(markdown_tables(results, metrics=["wer", "comet"], decimals=2))
    assert list(tables) == ["ASR: WER (↓)", "ST: COMET (↑)"]  # WER alone: no pair cell
    assert cell(tables["ASR: WER (↓)"], "Seamless ASR (baseline)", "Fleurs test") == "8.90"
    with pytest.raises(ValueError, match="metric.s. chrf not found.*available: bleu, comet"):
        markdown_tables(results, metrics=["chrf"])
    with pytest.raises(ValueError, match="no results"):
        markdown_tables([])


def test_labels_with_pipes_are_escaped_and_other_metrics_get_a_table():
    r = make_result("A|B", "Fleurs", "test", "asr", {"stuck_pct": 1.25}, [], source_lang="fr")
    text = markdown_tables([r])
    assert "### ASR: stuck decoding % (↓)" in text
    assert "| System | Fleurs test (fr) |" in text
    assert "| A\\|B | 1.2% |" in text


def test_model_index_structure_and_values(results):
    index = model_index(results, "speechmapper-llama", system=MSE)
    front = model_card_metadata(index)
    assert front.startswith("---\n") and front.endswith("\n---\n")
    loaded = yaml.safe_load(front.strip().strip("-"))
    assert loaded == json.loads(json.dumps(index))
    (entry,) = loaded["model-index"]
    assert entry["name"] == "speechmapper-llama"
    by_name = {e["dataset"]["name"]: e for e in entry["results"]}
    assert list(by_name) == [
        "LibriSpeech test-clean",
        "EuroParl-ST en-es",
        "EuroParl-ST en-de",
        "CoVoST2 en-zh",
        "LibriSQA PartI",
    ]
    ls = by_name["LibriSpeech test-clean"]
    assert ls["task"] == {
        "type": "automatic-speech-recognition",
        "name": "Automatic Speech Recognition",
    }
    assert ls["dataset"] == {
        "name": "LibriSpeech test-clean",
        "type": "librispeech_asr",
        "config": "clean",
        "split": "test",
        "args": {"language": "en"},
    }
    assert ls["metrics"] == [
        {"type": "wer", "value": 3.5, "name": "WER (mean of 2 seeds, std 0.7071)"},
        {"type": "cer", "value": 1.5, "name": "CER (mean of 2 seeds, std 0.7071)"},
    ]
    zh = by_name["CoVoST2 en-zh"]
    assert zh["task"]["type"] == "translation"
    assert zh["dataset"]["type"] == "facebook/covost2"
    assert zh["dataset"]["config"] == "en_zh"
    assert zh["dataset"]["args"] == {"source_language": "en", "target_language": "zh"}
    bleu = next(m for m in zh["metrics"] if m["type"] == "bleu")
    assert bleu["value"] == 21.5 and bleu["args"] == {"signature": BLEU_SIG}
    assert by_name["EuroParl-ST en-de"]["dataset"]["type"] == "EuroParl-ST"  # unknown id: name
    sqa = by_name["LibriSQA PartI"]
    assert sqa["task"]["type"] == "question-answering"
    assert sqa["metrics"][0]["type"] == "accuracy" and sqa["metrics"][0]["value"] == 76.5
    assert "mean of 2 judges, std 2 over judges" in sqa["metrics"][0]["name"]
    assert not any("judge" in m["type"] or "[" in m["type"] for m in sqa["metrics"])
    # Hugging Face's own parser reads it.
    name, evals = model_index_to_eval_results(loaded["model-index"])
    assert name == "speechmapper-llama"
    assert {(e.dataset_type, e.metric_type, e.metric_value) for e in evals} >= {
        ("librispeech_asr", "wer", 3.5),
        ("facebook/covost2", "comet", 79.5),
    }


def test_model_index_needs_one_system(results):
    with pytest.raises(ValueError) as err:
        model_index(results, "m")
    message = str(err.value)
    assert "3 systems" in message and "--system" in message
    assert "Stage 2 [ASR CE+MSE]; Seamless ASR; Transcripts + Llama 3.1 8B" in message
    with pytest.raises(ValueError, match="system 'nope' is not in the results"):
        model_index(results, "m", system="nope")
    one = model_index(results, "m", system="Seamless ASR", metrics=["wer"])
    values = [(e["dataset"]["name"], e["metrics"]) for e in one["model-index"][0]["results"]]
    assert values == [
        ("LibriSpeech test-clean", [{"type": "wer", "value": 2.7, "name": "WER"}]),
        ("Fleurs test", [{"type": "wer", "value": 8.9, "name": "WER"}]),
    ]


def test_main_end_to_end(folder, tmp_path, capsys):
    report = tmp_path / "out" / "report.md"
    meta = tmp_path / "out" / "README_meta.md"
    (tmp_path / "extra.json").write_text('{"not": "a result"}')
    main(
        [
            folder,
            str(tmp_path / "extra.json"),
            "--output",
            str(report),
            "--model-index",
            str(meta),
            "--model-name",
            "sm",
            "--system",
            MSE,
        ]
    )
    printed = capsys.readouterr().out
    written = report.read_text(encoding="utf-8")
    assert printed == written == markdown_tables(load_results(folder))
    assert "| Stage 2 [ASR CE+MSE] (zero-shot) | 3.5 ± 0.7 / 1.5 ± 0.7 | – |" in written
    front = meta.read_text(encoding="utf-8")
    assert front.startswith("---\nmodel-index:\n- name: sm\n")
    loaded = yaml.safe_load(front.strip().strip("-"))
    assert len(loaded["model-index"][0]["results"]) == 5
    assert not [f for f in os.listdir(tmp_path / "out") if ".tmp" in f]


def test_main_reports_bad_input_clearly(folder, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "speechmapper-result/1", "system": "S"}')
    with pytest.raises(SystemExit) as exit_info:
        main([str(bad)])
    assert exit_info.value.code == 2
    assert f"{bad}: missing key 'setting'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([folder, "--model-index", str(tmp_path / "m.md")])
    assert "--model-index needs --model-name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([folder, "--model-index", str(tmp_path / "m.md"), "--model-name", "m"])
    assert "choose it with system=... (--system)" in capsys.readouterr().err
    assert not (tmp_path / "m.md").exists()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "empty_dir_missing")])
    assert "empty_dir_missing is neither a file nor a folder" in capsys.readouterr().err


def test_python_dash_m_entry_point(folder):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    command = [sys.executable, "-m", "speechmapper_plugin.evaluation.report", folder]
    proc = subprocess.run(
        command + ["--metrics", "judge_accuracy"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| Stage 2 [ASR CE+MSE] (zero-shot) | 76.5% ± 2.0 | 2.1 |" in proc.stdout
    assert "result file(s) loaded" in proc.stderr


A1B_FLUENT = "A.1 + B (ASR/ST/MT/fluent SQA/fluent QA)"


SEAMLESS = "SeamlessM4T-v2-large"


TEXT_LLAMA = "Llama-3.1-8B-Instruct (zero-shot)"


def iwslt25_runs(split_prefix="eval"):
    """Talk-like results, systems first appearing in an order unlike the talk's."""
    runs = []
    for seed, shift in ((1, 0.0), (2, 1.0)):  # the fused model: two seeds
        runs.append(
            make_result(
                A1B_FLUENT,
                "ACL6060",
                f"{split_prefix}_asr",
                "asr",
                {"wer": 18.0 + shift, "official_wer": 20.0 + shift},
                OUT,
                seed=seed,
            )
        )
        for tgt, bleu, comet in (("de", 30.75, 75.5), ("it", 40.48, 78.8), ("zh", 42.51, 78.9)):
            runs.append(
                make_result(
                    A1B_FLUENT,
                    "ACL6060",
                    f"{split_prefix}_en-{tgt}",
                    "st",
                    {"bleu": bleu + shift, "comet": comet, "official_comet": comet - 1},
                    OUT,
                    seed=seed,
                    target_lang=tgt,
                )
            )
        for lang, acc in (("en", 90.3), ("de", 85.2), ("it", 82.9), ("zh", 76.4)):
            runs.append(
                make_result(
                    A1B_FLUENT,
                    "SpokenSQuAD",
                    "test",
                    "sqa",
                    {
                        "judge_accuracy": acc + shift,
                        "judge_accuracy[j/1]": acc + shift + 1.0,
                        "judge_accuracy[j/2]": acc + shift - 1.0,
                        "bertscore_f1": 50.0,
                    },
                    OUT,
                    seed=seed,
                    target_lang=lang,
                )
            )
    runs.append(
        make_result("My new system", "ACL6060", f"{split_prefix}_asr", "asr", {"wer": 30.0}, OUT)
    )
    runs.append(make_result(SEAMLESS, "ACL6060", f"{split_prefix}_asr", "asr", {"wer": 17.6}, OUT))
    runs.append(make_result(SEAMLESS, "LibriSpeech", "test-clean", "asr", {"wer": 2.0}, OUT))
    runs.append(
        make_result(
            TEXT_LLAMA,
            "ACL6060",
            f"{split_prefix}_en-de",
            "st",
            {"bleu": 23.88, "comet": 77.9},
            OUT,
            target_lang="de",
        )
    )
    runs.append(
        make_result(
            TEXT_LLAMA,
            "SpokenSQuAD",
            "test",
            "sqa",
            {"judge_accuracy": 91.8},
            OUT,
            target_lang="en",
        )
    )
    return runs


def test_iwslt25_layout_rows_columns_and_cells():
    text = iwslt25_tables(iwslt25_runs())
    tables = parse_tables(text)
    team, official = list(tables.values())
    assert team["columns"] == [
        "WER en",
        "BLEU en-de",
        "BLEU en-it",
        "BLEU en-zh",
        "COMET en-de",
        "COMET en-it",
        "COMET en-zh",
        "SQA en-en",
        "SQA en-de",
        "SQA en-it",
        "SQA en-zh",
    ]
    # the talk's order (text-only Llama, Seamless, ..., A+B fluent), unknown systems last
    assert team["order"] == [TEXT_LLAMA, SEAMLESS, A1B_FLUENT, "My new system"]
    assert team["rows"][A1B_FLUENT] == [
        "18.5 ± 0.7",
        "31.25 ± 0.71",
        "40.98 ± 0.71",
        "43.01 ± 0.71",
        "75.5 ± 0.0",
        "78.8 ± 0.0",
        "78.9 ± 0.0",
        "90.8% ± 1.0",
        "85.7% ± 1.0",
        "83.4% ± 1.0",
        "76.9% ± 1.0",
    ]
    # ACL 60/60 only: Seamless' LibriSpeech WER is not the talk's ASR column
    assert team["rows"][SEAMLESS] == ["17.6"] + ["–"] * 10
    assert (
        cell(team, TEXT_LLAMA, "WER en") == "–" and cell(team, TEXT_LLAMA, "SQA en-en") == "91.8%"
    )
    assert official["columns"] == [
        "official WER en",
        "official COMET en-de",
        "official COMET en-it",
        "official COMET en-zh",
        "BERTScore en-en",
        "BERTScore en-de",
        "BERTScore en-it",
        "BERTScore en-zh",
    ]
    assert official["order"] == [A1B_FLUENT]  # the only system scored officially
    assert official["rows"][A1B_FLUENT][:2] == ["20.5 ± 0.7", "74.5 ± 0.0"]
    assert "COMET/BERTScore x100; ASR: ACL6060, ST: ACL6060, SQA: SpokenSQuAD" in text
    assert (
        "_Cells: mean ± sample std (ddof=1) over 1–2 seed(s); SQA LLM-as-judge: ± over the "
        "judges (population std); –: not evaluated;" in text
    )
    assert "_Cells: mean ± sample std (ddof=1) over 2 seed(s);" in text


def test_iwslt25_system_order_option_and_name_matching():
    runs = iwslt25_runs()
    text = iwslt25_tables(runs, system_order=["my new  SYSTEM", A1B_FLUENT])
    assert parse_tables(text)[next(iter(parse_tables(text)))]["order"] == [
        "My new system",
        A1B_FLUENT,
        SEAMLESS,  # then order of appearance
        TEXT_LLAMA,
    ]


def test_iwslt25_several_splits_need_a_choice():
    runs = iwslt25_runs("eval") + [r for r in iwslt25_runs("dev") if r["dataset"] == "ACL6060"]
    with pytest.raises(
        ValueError,
        match=r"on several test sets \(ACL6060 eval_asr and ACL6060 "
        r"dev_asr\); choose one split per cell .*--splits",
    ):
        iwslt25_tables(runs)
    splits = ["eval_asr", "eval_en-de", "eval_en-it", "eval_en-zh", "test"]
    assert iwslt25_tables(runs, splits=splits) == iwslt25_tables(iwslt25_runs("eval"))


def test_iwslt25_command_line(tmp_path, capsys):
    folder = tmp_path / "results"
    for run in iwslt25_runs():
        write_result(str(folder), run)
    main([str(folder), "--layout", "iwslt25", "--output", str(tmp_path / "t.md")])
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "t.md").read_text() == iwslt25_tables(load_results(str(folder)))
    main([str(folder), "--layout", "iwslt25", "--system-order", "My new system"])
    assert "| My new system | 30.0 |" in capsys.readouterr().out.split("\n")[4]
    for bad, message in (
        (["--layout", "iwslt25", "--metrics", "wer"], "apply to --layout papers only"),
        (["--splits", "eval_asr"], "apply to --layout iwslt25 only"),
    ):
        with pytest.raises(SystemExit):
            main([str(folder)] + bad)
        assert message in capsys.readouterr().err
