"""The benchmark script (benchmarks/benchmark.py): every part runs in tiny mode, the table is
appended once, the figures are consistent and the targets are compared."""

import re

import pytest
import torch

from benchmarks import benchmark
from benchmarks.flops import count_flops, peak_tflops
from benchmarks.targets import target_rows
from benchmarks.training import Stage1Step, random_embedding_table
from speechmapper_plugin.models.speechmapper import SpeechMapper


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    doc = folder / "benchmarks.md"
    argv = ["--tiny", "--peak-tflops", "1.0", "--append-to", str(doc)]
    argv += ["--pad-multiple", "16", "--deferred-sync", "--fused-adamw"]  # stage-1 levers
    argv += ["--reuse-prompt-prefix"]  # stage 2
    results = benchmark.main(argv)
    return results, doc.read_text(encoding="utf-8")


def test_tiny_run_measures_every_part_and_appends_one_table(tiny_run):
    results, text = tiny_run
    assert set(results) == {"extract", "cache", "stage1", "stage2", "decode"}
    assert text.count("### Run of") == 1
    assert "Command: `python benchmarks/benchmark.py --tiny --peak-tflops 1.0" in text
    for header in (
        "**Feature extraction**",
        "**Feature-cache read (stage-1 loader)**",
        "**Stage 1 (the recipe: Stage1Brain through SpeechBrain's fit)**",
        "**Stage 2**",
        "**Decoding**",
        "**Targets (one H100)**",
    ):
        assert f"| {header} |" in text
    # Every synthetic utterance went through extract_to_cache, and the loader read them all.
    assert results["extract"]["extracted"] == 4
    assert results["cache"]["throughput"] == min(
        results["cache"]["cold_throughput"], results["cache"]["warm_throughput"]
    )


def test_mfu_is_counted_flops_over_time_and_peak(tiny_run):
    results, text = tiny_run
    stage1 = results["stage1"]
    assert stage1["flops"] > 0
    assert stage1["step_mfu"] == pytest.approx(stage1["flops"] / stage1["step_s"] / 1e12)
    shown = re.search(r"\| Step-alone model FLOPs utilization \| \*\*([0-9.]+)% MFU\*\*", text)
    assert float(shown.group(1)) == pytest.approx(100 * stage1["step_mfu"], abs=0.051)
    shown = re.search(r"\| Recipe model FLOPs utilization \| \*\*([0-9.]+)% MFU\*\*", text)
    assert float(shown.group(1)) == pytest.approx(100 * stage1["mfu"], abs=0.051)
    # The recipe's epoch projection is its own measured rate (real frames, not padding).
    assert stage1["epoch_s"] == pytest.approx(960 * 3600 / stage1["throughput"])


def test_stage1_runs_the_recipe_with_the_levers_asked_for(tiny_run):
    results, text = tiny_run
    setup = re.search(r"\| Setup \| (.*) \|", text).group(1)
    assert "hparams/stage1.yaml" in setup
    assert "levers: pad_multiple 16, fused AdamW, deferred_sync" in setup
    timed = re.search(r"\| Timed epoch \(2nd\) \| (\d+) steps, .* padding ([0-9.]+)%", text)
    assert int(timed.group(1)) >= 1 and float(timed.group(2)) > 0  # padded to multiples of 16
    stage1 = results["stage1"]
    assert stage1["recipe_step_s"] > 0 and stage1["syncs_per_step"] is None  # CUDA only


def test_stage2_ratio_compares_full_steps_on_the_same_batch(tiny_run):
    results, text = tiny_run
    assert results["stage2"]["ratio"] > 0
    assert results["stage2"]["steps_s"] == pytest.approx(1000 * results["stage2"]["step_s"])
    assert "| CE step through the LLM / stage-1 step, same batch | **" in text
    assert "optimizations: fused AdamW, prompt-prefix keys/values reused" in text


def test_counted_flops_of_a_stage1_step_match_the_projector_matmuls():
    """Forward + backward of the projector: about 3x its forward FLOPs (input grads aside)."""
    projector = SpeechMapper(
        input_dim=32, block_dims=(32, 48), output_dims=(48, 64), num_layers=1, nhead=4
    )
    table = random_embedding_table(20, 64, torch.device("cpu"), 0)
    step = Stage1Step(projector, table, torch.device("cpu"), "fp32")
    feats = torch.randn(2, 40, 32)
    forward, _ = count_flops(lambda: projector(feats, torch.ones(2)))
    total, _ = count_flops(lambda: step.forward_backward(feats, [[1, 2], [3]], eager=True))
    assert 2.0 * forward < total <= 3.0 * forward


def test_targets_say_met_or_not_and_flag_a_stalling_loader():
    cpu = torch.device("cpu")
    rows = dict(
        target_rows(
            {
                "stage1": {
                    "epoch_s": 150.0,
                    "mfu": 0.5,
                    "peak_bytes": 40 * 2**30,
                    "throughput": 100.0,
                },
                "cache": {"throughput": 50.0},
                "decode": {"speedup": 10.0},
            },
            cpu,
        )
    )
    assert rows["Stage-1 epoch of LibriSpeech-960"].endswith("measured / target = 0.62 (met)")
    assert rows["Stage-1 model FLOPs utilization"].endswith("= 2.00 (met)")
    assert rows["Stage-1 peak memory at the paper's batch"].endswith("(not met)")
    assert rows["Batched / one-by-one decoding"].endswith("= 0.50 (not met)")
    assert "TOO CLOSE" in rows["Loader vs stage-1 consumption"]
    assert rows["**Targets (one H100)**"] == "indicative only here"
    assert target_rows({}, cpu) == []


def test_cpu_skips_the_llm_parts_without_force(tmp_path, caplog):
    results = benchmark.main(["--device", "cpu", "--parts", "stage2", "decode", "--no-append"])
    assert results == {}
    assert "Stage 2 skipped: it needs a GPU" in caplog.text
    assert "Decoding skipped: it needs a GPU" in caplog.text


def test_unknown_config_names_the_known_ones():
    with pytest.raises(FileNotFoundError, match=r"'llama-3\.1-8b-instruct'"):
        benchmark.main(["--tiny", "--parts", "stage1", "--llm-config", "llama-9", "--no-append"])


def test_peak_flops_unknown_on_cpu_unless_given():
    assert peak_tflops(torch.device("cpu"), "bf16")[0] is None
    assert peak_tflops(torch.device("cpu"), "bf16", override=2.0)[0] == 2.0
