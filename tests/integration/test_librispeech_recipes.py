"""End-to-end tests of the LibriSpeech recipes on the tiny preset (hparams/tiny.yaml):
mini-corpus -> tiny LLM -> extract_features.py -> train_stage1.py -> train_stage2.py, run
in-process with the same command-line arguments a user types (SpeechBrain debug flags where
a run only has to prove the path works)."""

import json
import os

import pytest
from recipe_runs import PRESET, run_recipe, stage_args

from speechmapper_plugin.tiny.llm import build_tiny_llm
from speechmapper_plugin.tiny.preset import preset_overrides


def read_curve(folder):
    with open(os.path.join(folder, "curve.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_extraction_cached_every_utterance(tiny):
    from speechmapper_plugin.features.cache import FeatureCache

    cache = FeatureCache(os.path.join(tiny["common"]["cache_folder"], "features", "fbank80_avg4"))
    assert len(cache) == 48 + 8 + 8
    assert cache.dim == 80
    # Re-running the extraction resumes: nothing is extracted twice.
    run_recipe(
        "extract_features.py",
        "features.yaml",
        preset_overrides(PRESET, ["features"], **tiny["common"]),
    )
    assert len(FeatureCache(cache.folder)) == 64


def test_stage1_learns_and_reports(stage1_run):
    out, _ = stage1_run
    valid = [r for r in read_curve(out) if r["split"] == "valid"]
    assert len(valid) == 3
    assert valid[-1]["loss"] < valid[0]["loss"]  # a learned improvement
    with open(out / "results" / "test-clean.json", encoding="utf-8") as f:
        result = json.load(f)
    assert result["split"] == "test-clean" and result["num_utterances"] == 8
    assert result["schema"] == "speechmapper-result/1" and result["task"] == "asr"
    assert 0 <= result["metrics"]["wer"] and "nearest-embedding" in result["decoding"]["method"]
    assert len(result["outputs"]) == 8 and {"id", "hypothesis", "reference"} <= set(
        result["outputs"][0]
    )
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    lines = (out / "decode" / "test-clean.nearest.tsv").read_text().splitlines()
    assert lines[0] == "ID\thypothesis\treference" and len(lines) == 9


def test_stage1_resume_runs_no_extra_epoch(stage1_run):
    out, args = stage1_run
    before = len(read_curve(out))
    run_recipe("train_stage1.py", "stage1.yaml", args)
    after = read_curve(out)
    # The epoch counter was recovered: no training record was added by the second run.
    assert [r for r in after[before:] if r["split"] in ("train", "valid")] == []


@pytest.mark.parametrize("levers", [False, True], ids=["defaults", "speed-levers"])
def test_stage1_debug_flags(tiny, levers):
    """Also the GPU speed levers of hparams/stage1.yaml (their equivalence with the default
    loop is tested in tests/unit/training/test_speed.py), set from the command line."""
    out = tiny["root"] / f"stage1_debug_{levers}"
    extra = ["--pad_multiple=16", "--deferred_sync=True", "--fused_adamw=True"] if levers else []
    run_recipe(
        "train_stage1.py",
        "stage1.yaml",
        stage_args(tiny, "stage1", output_folder=str(out))
        + ["--debug", "--debug_batches=2", "--debug_epochs=1"]
        + extra,
    )
    assert (out / "results" / "test-clean.json").is_file()
    log = (out / "train_log.txt").read_text()
    assert "train loss" in log


@pytest.mark.parametrize("sigma", [0.9, 0.0])
def test_stage2_from_stage1_checkpoint(tiny, stage1_run, sigma):
    out = tiny["root"] / f"stage2_sigma{sigma}"
    run_recipe(
        "train_stage2.py",
        "stage2.yaml",
        stage_args(
            tiny,
            "stage2",
            output_folder=str(out),
            sigma=sigma,
            stage1_checkpoint=str(stage1_run[0] / "save"),
            max_new_tokens=8,
        )
        + ["--debug", "--debug_batches=2", "--debug_epochs=1"],
    )
    with open(out / "results" / "test-clean.json", encoding="utf-8") as f:
        result = json.load(f)
    metrics = result["metrics"]
    assert metrics["sigma"] == sigma and result["num_utterances"] == 8
    assert result["system"] == (
        "SpeechMapper stage 2 [ASR CE+MSE]" if sigma else "SpeechMapper stage 2 [ASR CE]"
    )
    assert result["decoding"]["prompt"].startswith('"<speech>"\nRepeat the previous text')
    assert metrics["wer"] >= 0 and metrics["cer"] >= 0 and 0 <= metrics["stuck_pct"] <= 100
    if sigma == 0:
        assert metrics["mse"] == 0.0  # CE-only IT: the MSE term is not computed
    else:
        assert metrics["mse"] > 0 and metrics["loss"] == pytest.approx(
            (1 - sigma) * metrics["ce"] + sigma * metrics["mse"], rel=1e-4
        )


def test_misspelled_key_names_the_key(tiny):
    with pytest.raises(KeyError, match=r"--lrr .*Did you mean --lr\?"):
        run_recipe(
            "train_stage1.py",
            "stage1.yaml",
            stage_args(tiny, "stage1", output_folder=str(tiny["root"] / "x")) + ["--lrr=0.1"],
        )


def test_unreachable_hub_id_suggests_local_path(tiny):
    args = stage_args(tiny, "stage1", output_folder=str(tiny["root"] / "hub"))
    args = [a for a in args if not a.startswith("--llm_source=")]
    args.append("--llm_source=meta-llama/Llama-3.1-8B-Instruct")
    with pytest.raises(Exception, match=r"(?s)meta-llama/Llama-3\.1-8B-Instruct.*local"):
        run_recipe("train_stage1.py", "stage1.yaml", args)


def test_wrong_layout_describes_expected_layout(tiny, tmp_path):
    (tmp_path / "not_librispeech").mkdir()
    args = stage_args(tiny, "stage1", output_folder=str(tmp_path / "out"))
    args = [a for a in args if not a.startswith(("--data_folder=", "--cache_folder="))]
    args += [f"--data_folder={tmp_path / 'not_librispeech'}", f"--cache_folder={tmp_path / 'c'}"]
    with pytest.raises(FileNotFoundError, match=r"<speaker>-<chapter>\.trans\.txt"):
        run_recipe("train_stage1.py", "stage1.yaml", args)


# ----------------------------------------------------------------------------------------
# Evaluation recipe (hparams/evaluate.yaml): every system on the tiny preset
# ----------------------------------------------------------------------------------------


def eval_args(tiny, name, **extra):
    extra.setdefault("llm_source", tiny["llm"])
    return preset_overrides(
        PRESET,
        ["projector", "evaluate"],
        output_folder=str(tiny["root"] / "eval" / name),
        **tiny["common"],
        **extra,
    )


def read_result(folder):
    files = sorted((folder / "results").glob("*.json"))
    assert len(files) == 1, files
    with open(files[0], encoding="utf-8") as f:
        return json.load(f)


def test_evaluate_stage1_projector_through_the_llm(tiny, stage1_run):
    """Stage-1 zero-shot through the LLM (Table 11 prompt) and the nearest-embedding
    diagnostic, which must reproduce stage 1's own test WER."""
    ckpt = str(stage1_run[0] / "save")
    run_recipe(
        "evaluate.py",
        "evaluate.yaml",
        eval_args(tiny, "nearest", system="nearest", projector_checkpoint=ckpt),
    )
    nearest = read_result(tiny["root"] / "eval" / "nearest")
    with open(stage1_run[0] / "results" / "test-clean.json", encoding="utf-8") as f:
        stage1 = json.load(f)
    assert nearest["metrics"]["wer"] == pytest.approx(stage1["metrics"]["wer"])
    assert [o["hypothesis"] for o in nearest["outputs"]] == [
        o["hypothesis"] for o in stage1["outputs"]
    ]
    run_recipe(
        "evaluate.py",
        "evaluate.yaml",
        eval_args(
            tiny,
            "llm",
            projector_checkpoint=ckpt,
            system_name="Stage 1",
            repetition_guard=None,
        ),
    )
    result = read_result(tiny["root"] / "eval" / "llm")
    assert result["system"] == "Stage 1" and result["task"] == "asr"
    assert result["num_utterances"] == 8 and len(result["outputs"]) == 8
    assert result["decoding"]["example_prompt"].startswith('"<speech>"\nRepeat the previous')
    for key in ("wer", "cer", "stuck_pct", "verbose_pct"):
        assert result["metrics"][key] >= 0
    # A stuck output is one that hit the 40-token limit on a repetition.
    stuck = sum(o["stuck"] for o in result["outputs"])
    assert result["metrics"]["stuck_pct"] == pytest.approx(100 * stuck / 8)


def test_evaluate_transcript_topline_and_asr_cascade(tiny, tiny_asr):
    """Baselines through the same prompts and metrics: transcripts + LLM, ASR alone, ASR + LLM."""
    run_recipe(
        "evaluate.py",
        "evaluate.yaml",
        eval_args(tiny, "topline", system="transcript", system_name="Transcripts + LLM"),
    )
    topline = read_result(tiny["root"] / "eval" / "topline")
    assert topline["decoding"]["example_prompt"].startswith('"<transcript>"\nRepeat')
    assert topline["num_utterances"] == 8
    for system in ("asr", "asr+llm"):
        name = system.replace("+", "_")
        run_recipe(
            "evaluate.py",
            "evaluate.yaml",
            eval_args(
                tiny,
                name,
                system=system,
                asr_source=tiny_asr,
                asr_generate_kwargs=None,
                system_name=f"tiny {system}",
            ),
        )
        result = read_result(tiny["root"] / "eval" / name)
        assert result["num_utterances"] == 8 and result["metrics"]["wer"] >= 0
        if system == "asr":  # the ASR model's own transcripts, no LLM prompt
            from speechbrain.dataio.dataio import load_data_csv

            from speechmapper_plugin.evaluation.cascade import HFTranscriber

            assert result["decoding"]["example_prompt"] is None
            rows = load_data_csv(
                os.path.join(tiny["common"]["cache_folder"], "manifests", "test-clean.csv")
            )
            direct = HFTranscriber(tiny_asr)([rows[o["id"]]["wav"] for o in result["outputs"]])
            assert [o["hypothesis"] for o in result["outputs"]] == direct
        else:
            assert result["decoding"]["example_prompt"].startswith('"<transcript>"')


def test_evaluate_rejects_a_projector_for_another_llm(tiny, stage1_run, tmp_path):
    other = build_tiny_llm(str(tmp_path / "wide_llm"), ["the cat sat"], hidden_size=64)
    with pytest.raises(ValueError, match="128-dim vectors but .* 64-dim embeddings"):
        run_recipe(
            "evaluate.py",
            "evaluate.yaml",
            eval_args(
                tiny,
                "wrong",
                projector_checkpoint=str(stage1_run[0] / "save"),
                llm_source=str(other),
            ),
        )


def test_inference_interface_and_cli_on_the_trained_stage1_model(
    tiny, stage1_run, tmp_path, capsys
):
    """The Pretrained interface and `speechmapper` on the preset's trained stage-1 model: from
    raw audio it reproduces what the recipe decoded from the feature cache."""
    from speechbrain.dataio.dataio import load_data_csv

    from speechmapper_plugin.inference.cli import main as cli_main
    from speechmapper_plugin.inference.pretrained import SpeechMapperLLM

    with open(stage1_run[0] / "results" / "test-clean.json", encoding="utf-8") as f:
        decoded = {o["id"]: o["hypothesis"] for o in json.load(f)["outputs"]}
    rows = load_data_csv(
        os.path.join(tiny["common"]["cache_folder"], "manifests", "test-clean.csv")
    )
    model = SpeechMapperLLM.from_training_folder(
        str(stage1_run[0]), savedir=str(tmp_path / "published")
    )
    for utt_id in list(decoded)[:4]:
        assert model.nearest_decode_file(rows[utt_id]["wav"]) == decoded[utt_id]
    wavs = [rows[utt_id]["wav"] for utt_id in list(decoded)[:2]]
    assert cli_main(["transcribe", *wavs, "--model", str(tmp_path / "published")]) in (0, None)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == wavs
