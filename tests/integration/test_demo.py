"""End-to-end tests of the demo (``recipes/LibriSpeech/run_demo.py``) and of the paper's
findings in miniature (``run_miniature.py``) on a shrunk preset: every step runs, the demo
prints its four figures from the result files, and the miniature writes its report with a
mean ± std over seeds. The thresholds of the figures are the demo's own check
(``tiny.demo.check_figures``), not asserted here: a shrunk run is too short to meet them."""

import json
import os

import pytest
import yaml
from recipe_runs import PRESET, RECIPE

from speechmapper_plugin.tiny.demo import FIGURE_LABELS

SHRINK = {
    "stage1": {"number_of_epochs": 2, "total_steps": 20, "warmup_steps": 2, "batch_vectors": 500},
    "stage2": {"max_steps": 3, "batch_size": 4},
    "evaluate": {"max_new_tokens": 12},
    "stage2_task": {"max_new_tokens": 12},
}


@pytest.fixture(scope="module")
def shrunk_preset(tmp_path_factory):
    with open(PRESET, encoding="utf-8") as f:
        preset = yaml.safe_load(f)
    for section, values in SHRINK.items():
        preset[section].update(values)
    path = tmp_path_factory.mktemp("preset") / "tiny.yaml"
    path.write_text(yaml.safe_dump(preset), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, shrunk_preset):
    import sys

    sys.path.insert(0, RECIPE)
    import run_demo

    out = tmp_path_factory.mktemp("demo")
    args = ["--output_folder", str(out), "--preset", shrunk_preset, "--jobs", "1"]
    args += ["--num_train", "24", "--num_valid", "4", "--num_test", "6"]
    return out, args, run_demo


def test_demo_prints_its_four_figures_from_the_result_files(demo_run, capsys):
    out, args, run_demo = demo_run
    figures = run_demo.main(args)
    printed = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in printed[-4:]] == list(FIGURE_LABELS.values())
    for key, line in zip(FIGURE_LABELS, printed[-4:]):
        assert line.endswith(f"{figures[key]:.1f}%")
    # each figure is the WER of a result file of its step
    for key, folder in [("topline", "topline"), ("zero_shot", "stage1_zero_shot")]:
        (result,) = [json.load(open(p)) for p in (out / folder / "results").glob("*.json")]
        assert result["metrics"]["wer"] == figures[key] and result["num_utterances"] == 6
    assert any(line.startswith(("The LLM gained ears", "Not shown")) for line in printed)
    # a second run skips every finished step and prints the same figures
    assert run_demo.main(args) == figures
    assert "stage2.log" in os.listdir(out / "logs")


def test_miniature_writes_the_report_with_seed_spread(demo_run):
    out, args, _ = demo_run
    import run_miniature

    mini_args = args[:4] + ["--num_train", "24", "--num_valid", "4", "--num_test", "6"]
    mini_args += ["--seeds", "1", "2", "--sigmas", "0.9"]
    results = run_miniature.main(mini_args)
    report = (out / "miniature" / "report.md").read_text(encoding="utf-8")
    systems = {r["system"] for r in results}
    assert systems == {
        "Stage 1 (no stage 2)",
        "Stage 2 [ASR CE+MSE] sigma 0.9",
        "Stage 2 [ST CE] (task-specific)",
    }
    # zero-shot Minish ST of the ASR-only models, scored with BLEU, one file per seed
    st = [r for r in results if r["task"] == "st" and r["system"].startswith("Stage 2 [ASR")]
    assert len(st) == 2 and all(r["target_lang"] == "qaa" and "bleu" in r["metrics"] for r in st)
    assert "Stage 2 [ST CE] (task-specific)" in report and "±" in report
    # one column per task: the task-specific runs score the same test set as the zero-shot ones
    assert {(r["dataset"], r["split"]) for r in results} == {("LibriSpeech", "test-clean")}
