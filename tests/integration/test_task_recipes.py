"""End-to-end test of a dataset recipe other than LibriSpeech on the tiny preset: the
mini-corpus re-packaged in the official CoVoST 2 layout (Common Voice mp3 clips,
validated.tsv, covost_v2.en_de.tsv) -> CoVoST2/extract_features.py -> task-specific stage 2
(ST CE, with ASR batches mixed in from the LibriSpeech cache) -> its in-domain test results,
next to the zero-shot evaluation of the stage-1 projector (CoVoST2/evaluate.py), in one
report table."""

import csv
import json
import os

import pytest
from recipe_runs import PRESET, run_recipe

from speechmapper_plugin.evaluation.results import load_results
from speechmapper_plugin.evaluation.tables import markdown_tables
from speechmapper_plugin.tiny.preset import preset_overrides


def _stage2_args(tiny, covost, stage1_run, **extra):
    cache = tiny["common"]["cache_folder"]
    args = {
        "llm_source": tiny["llm"],
        "stage1_checkpoint": str(stage1_run[0] / "save"),
        "train_splits": ["train_en-de"],
        "test_splits": ["test_en-de"],
        "asr_probability": 0.5,
        "asr_manifest_folder": os.path.join(cache, "manifests"),
        "asr_feature_folder": os.path.join(cache, "features", "fbank80_avg4"),
        "asr_splits": ["train-clean-100"],
        **covost,
    }
    return preset_overrides(PRESET, ["projector", "stage2_task"], **{**args, **extra})


def test_covost2_task_specific_stage2_and_zero_shot_evaluation(tiny, covost, stage1_run):
    out = tiny["root"] / "stage2_st"
    run_recipe(
        "train_stage2.py",
        "CoVoST2/stage2_st.yaml",
        _stage2_args(tiny, covost, stage1_run, output_folder=str(out)),
        recipe="CoVoST2",
    )
    # The extraction cached every clip once; the manifests keep the Common Voice layout's IDs.
    with open(os.path.join(covost["cache_folder"], "manifests", "test_en-de.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and rows[0]["ID"].endswith("-de") and rows[0]["tgt_lang"] == "de"

    # Training learned: the loss of the last logged steps is below that of the first ones.
    with open(out / "curve.jsonl", encoding="utf-8") as f:
        train = [json.loads(line) for line in f if '"train"' in line]
    assert len(train) == 8  # 40 steps, logged every 5
    assert train[-1]["loss"] < train[0]["loss"]

    # In-domain ST result: decoded with the German IT prompt, scored with BLEU and LID.
    (in_domain,) = load_results([str(out / "results")])
    assert in_domain["split"] == "test_en-de"
    assert in_domain["task"] == "st" and in_domain["setting"] == "in-domain"
    assert in_domain["system"] == "Stage 2 [ST CE]" and in_domain["target_lang"] == "de"
    assert in_domain["num_utterances"] == 8
    assert {"bleu", "lid_target_pct", "lid_en_pct", "stuck_pct"} <= set(in_domain["metrics"])
    assert "comet" not in in_domain["metrics"]  # comet_model: null in the tiny preset
    prompt = in_domain["decoding"]["example_prompt"]
    assert "Können Sie den Inhalt der Rede in den deutschen Text übersetzen?" in prompt
    assert "without any explanation" not in prompt  # IT suffix, not the zero-shot one
    assert in_domain["outputs"][0]["reference"].endswith(".")

    # Zero-shot evaluation of the stage-1 projector on the same test set.
    zero = tiny["root"] / "eval_covost_stage1"
    run_recipe(
        "evaluate.py",
        "CoVoST2/evaluate.yaml",
        preset_overrides(
            PRESET,
            ["projector", "evaluate"],
            llm_source=tiny["llm"],
            projector_checkpoint=str(stage1_run[0] / "save"),
            system_name="Stage 1",
            test_splits=["test_en-de"],
            comet_model=None,
            output_folder=str(zero),
            **covost,
        ),
        recipe="CoVoST2",
    )
    results = load_results([str(out / "results"), str(zero / "results")])
    assert {(r["system"], r["setting"]) for r in results} == {
        ("Stage 2 [ST CE]", "in-domain"),
        ("Stage 1", "zero-shot"),
    }
    table = markdown_tables(results, metrics=["bleu"])
    assert "CoVoST2 en-de" in table
    lines = [line for line in table.splitlines() if line.startswith("| Stage")]
    assert len(lines) == 2 and any("in-domain" in line for line in lines)


def test_missing_asr_data_for_the_mixture_is_an_error_before_training(
    tiny, covost, stage1_run, tmp_path
):
    with pytest.raises(FileNotFoundError, match="asr_probability=0.5 needs the ASR manifests"):
        run_recipe(
            "train_stage2.py",
            "CoVoST2/stage2_st.yaml",
            _stage2_args(
                tiny,
                covost,
                stage1_run,
                output_folder=str(tmp_path / "out"),
                asr_manifest_folder=str(tmp_path / "nowhere"),
            ),
            recipe="CoVoST2",
        )
    assert not (tmp_path / "out" / "save").exists() or not os.listdir(tmp_path / "out" / "save")
