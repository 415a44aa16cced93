"""Bad input through the real entry points (issue 17): each case of the issue's table is a
clear error naming what is wrong and where (or a counted skip), never a silent wrong run.

Recipe scripts run in-process as a user types them (``recipe_runs.run_recipe``), the
``speechmapper`` command through ``inference.cli.main``. The corpus-preparation cases
(non-UTF-8 transcripts, EuroParl-ST overshoot) are in tests/recipes/.
"""

import csv
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from recipe_runs import PRESET, run_recipe, stage_args

from speechmapper_plugin.data.cache_config import FeatureConfigMismatch
from speechmapper_plugin.inference import cli
from speechmapper_plugin.models.frozen_llm import FrozenLLM
from speechmapper_plugin.tiny.preset import preset_overrides


def _manifest(tiny, split="test-clean"):
    path = os.path.join(tiny["common"]["cache_folder"], "manifests", f"{split}.csv")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_manifest(folder, split, rows, fields=None):
    os.makedirs(folder, exist_ok=True)
    fields = fields or list(rows[0])
    with open(os.path.join(folder, f"{split}.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return str(folder)


def eval_args(tiny, out, **extra):
    extra.setdefault("llm_source", tiny["llm"])
    extra.setdefault("max_new_tokens", 4)
    return preset_overrides(
        PRESET, ["projector", "evaluate"], output_folder=str(out), **tiny["common"], **extra
    )


@pytest.fixture(scope="module")
def avg2_cache(tiny):
    """test-clean extracted with another frame rate (2-frame averaging: 50 Hz) into
    fbank80_avg2: the same 80-dim width as the preset's 25 Hz cache."""
    run_recipe(
        "extract_features.py",
        "features.yaml",
        preset_overrides(
            PRESET,
            ["features"],
            frame_average=2,
            feature_name="fbank80_avg2",
            splits=["test-clean"],
            **tiny["common"],
        ),
    )
    return os.path.join(tiny["common"]["cache_folder"], "features", "fbank80_avg2")


@pytest.fixture(scope="module")
def published(tiny, stage1_run, tmp_path_factory):
    """The trained stage-1 model, published with `speechmapper export`."""
    out = str(tmp_path_factory.mktemp("published") / "stage1")
    assert cli.main(["export", str(stage1_run[0]), out, "--set", "llm_dtype=float32"]) == 0
    return out


# ----------------------------------------------------------------------------------------
# A cache of another frame rate with the same width (was: exit 0, test WER 216)
# ----------------------------------------------------------------------------------------


def test_stage2_on_a_cache_of_another_frame_rate_is_refused(tiny, stage1_run, avg2_cache):
    out = tiny["root"] / "stage2_avg2"
    args = stage_args(
        tiny,
        "stage2",
        output_folder=str(out),
        stage1_checkpoint=str(stage1_run[0] / "save"),
        feature_name="fbank80_avg2",
    )
    with pytest.raises(FeatureConfigMismatch) as err:
        run_recipe("train_stage2.py", "stage2.yaml", args)
    message = str(err.value)
    assert f"The features of the cache {avg2_cache} are not those the projector" in message
    assert "frame_average 4 (trained) != 2" in message
    assert "frame_rate 25.0 (trained) != 50.0" in message
    assert not (out / "results").exists()  # nothing trained, nothing scored


def test_evaluation_and_inference_check_the_features(
    tiny, stage1_run, avg2_cache, published, tmp_path, capsys
):
    ckpt = str(stage1_run[0] / "save")
    with pytest.raises(FeatureConfigMismatch, match=r"frame_average 4 \(trained\) != 2"):
        run_recipe(
            "evaluate.py",
            "evaluate.yaml",
            eval_args(
                tiny, tmp_path / "eval", projector_checkpoint=ckpt, feature_name="fbank80_avg2"
            ),
        )
    from speechmapper_plugin.inference.pretrained import SpeechMapperLLM

    # the published model stores its training features: encoder settings overridden at load
    with open(os.path.join(published, "feature_config.json"), encoding="utf-8") as f:
        assert json.load(f)["config"]["frame_rate"] == 25.0
    with pytest.raises(FeatureConfigMismatch) as err:
        SpeechMapperLLM.from_hparams(
            source=published, overrides={"frame_average": 2}, run_opts={"device": "cpu"}
        )
    assert "frame_average 4 (trained) != 2 (encoder settings of this model)" in str(err.value)
    # exporting with the config of another cache: refused with the fields
    status = cli.main(
        ["export", str(stage1_run[0]), str(tmp_path / "pub"), "--feature-config", avg2_cache]
    )
    assert status == 2
    assert "frame_rate 25.0 (trained) != 50.0" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------
# Overrides and manifests
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "script, key, expected",
    [
        ("train_stage1.py", "lr", "a number (float), as 1e-05"),
        ("train_stage2.py", "max_steps", "an integer, as 1000"),
    ],
)
def test_an_override_of_the_wrong_type_stops_before_anything_is_written(
    tiny, stage1_run, script, key, expected
):
    stage = script[len("train_") : -len(".py")]
    out = tiny["root"] / f"bad_{key}"
    extra = {"stage1_checkpoint": str(stage1_run[0] / "save")} if stage == "stage2" else {}
    args = stage_args(tiny, stage, output_folder=str(out), **extra) + [f"--{key}=abc"]
    with pytest.raises(ValueError) as err:
        run_recipe(script, f"{stage}.yaml", args)
    assert str(err.value).startswith(f"--{key}=abc: expected {expected} in ")
    assert str(err.value).endswith(", got the string 'abc'.")
    assert not out.exists()  # the output folder is not created with `lr: abc`


def test_a_repeated_override_takes_its_last_value(tiny):
    """The preset already holds extract_batch_seconds (100): the user's own value wins."""
    args = preset_overrides(PRESET, ["features"], **tiny["common"])
    run_recipe("extract_features.py", "features.yaml", args + ["--extract_batch_seconds=40.0"])
    logs = os.path.join(tiny["common"]["cache_folder"], "features", "fbank80_avg4", "logs")
    with open(os.path.join(logs, "hyperparams.yaml"), encoding="utf-8") as f:
        saved = f.read()
    assert "\nextract_batch_seconds: 40.0\n" in saved


def test_manifest_without_wav_and_non_utf8_manifest_are_named(tiny, tmp_path):
    rows = _manifest(tiny)
    folder = _write_manifest(tmp_path / "no_wav", "test-clean", rows, ["ID", "duration", "wrd"])
    args = preset_overrides(
        PRESET,
        ["features"],
        **tiny["common"],
        manifest_folder=folder,
        splits=["test-clean"],
        skip_prep=True,
        feature_name="hand",
    )
    path = os.path.join(folder, "test-clean.csv")
    with pytest.raises(KeyError) as err:
        run_recipe("extract_features.py", "features.yaml", args)
    assert err.value.args[0].startswith(f"Manifest {path} has no column 'wav' (it has ['ID',")
    # one byte that is not UTF-8 in a manifest: file and line named
    with open(path, "wb") as f:
        f.write(b"ID,duration,wav,wrd\n" + b"a,1.0,/x.flac,caf\xe9\n")
    with pytest.raises(ValueError, match=rf"{path} line 2: not valid UTF-8 \(byte 0xe9"):
        run_recipe("extract_features.py", "features.yaml", args)


def test_an_empty_transcript_in_a_hand_written_manifest_is_refused(tiny, tmp_path):
    folder = tmp_path / "manifests"
    for split in ("train-clean-100", "dev-clean", "test-clean"):
        rows = _manifest(tiny, split)
        if split == "train-clean-100":
            rows[3]["wrd"] = ""
            empty = rows[3]["ID"]
        _write_manifest(folder, split, rows)
    args = stage_args(
        tiny, "stage1", output_folder=str(tmp_path / "out"), manifest_folder=str(folder)
    )
    with pytest.raises(ValueError) as err:
        run_recipe("train_stage1.py", "stage1.yaml", args + ["--skip_prep=True"])
    assert str(err.value) == (
        f"Manifest {folder / 'train-clean-100.csv'}: 1 row(s) have an empty 'wrd', e.g. "
        f"['{empty}']; every row needs one (fill it in or remove the row)."
    )


# ----------------------------------------------------------------------------------------
# Inference: long audio, folders, hub ids, precision
# ----------------------------------------------------------------------------------------


def test_transcribe_refuses_audio_longer_than_the_llm_positions(published, tmp_path, capsys):
    """400 s at the preset's 6.25 vectors/s: 2,500 speech vectors for a 2,048-position LLM
    (was: exit 0, no warning). The suggested length does fit."""
    rng = np.random.default_rng(0)
    long_wav = str(tmp_path / "long.wav")
    sf.write(long_wav, rng.uniform(-0.1, 0.1, 400 * 16000).astype("float32"), 16000)
    argv = ["transcribe", long_wav, "--model", published, "--device", "cpu"]
    assert cli.main([*argv, "--max-new-tokens", "2"]) == 2
    err = capsys.readouterr().err
    assert f"{long_wav} (400.0 s: " in err and " speech vectors)" in err
    assert "must fit in its 2048 positions (max_position_embeddings)" in err
    seconds = int(err.split("pieces of at most ")[1].split(" s")[0])
    assert 250 < seconds < 330
    short = str(tmp_path / "short.wav")
    sf.write(short, rng.uniform(-0.1, 0.1, seconds * 16000).astype("float32"), 16000)
    status = cli.main(["transcribe", short, "--model", published, "--device", "cpu",
                       "--max-new-tokens", "2"])  # fmt: skip
    assert status == 0, capsys.readouterr().err


def test_transcribe_a_folder_and_an_uncached_hub_id(tiny, published, capsys):
    folder = os.path.join(tiny["root"], "minicorpus")
    assert cli.main(["transcribe", folder, "--model", published]) == 2
    err = capsys.readouterr().err
    assert f"{folder} is a folder, not an audio file: give the audio files in it" in err
    wav = _manifest(tiny)[0]["wav"]
    assert cli.main(["transcribe", wav, "--model", "someone/speechmapper-uncached"]) == 2
    err = capsys.readouterr().err
    assert "not in the local hub cache" in err
    assert "huggingface-cli download someone/speechmapper-uncached" in err


def _record_autocast(monkeypatch, method):
    seen = []
    original = getattr(FrozenLLM, method)

    def wrapped(self, *args, **kwargs):
        enabled = torch.is_autocast_enabled("cpu")
        seen.append(torch.get_autocast_dtype("cpu") if enabled else None)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FrozenLLM, method, wrapped)
    return seen


def test_precision_bf16_in_evaluation_and_inference(
    tiny, stage1_run, published, tmp_path, monkeypatch, capsys
):
    """--precision=bf16 runs the projector and the LLM under autocast, as in training."""
    seen = _record_autocast(monkeypatch, "generate_ids")
    args = eval_args(tiny, tmp_path / "bf16", projector_checkpoint=str(stage1_run[0] / "save"))
    run_recipe("evaluate.py", "evaluate.yaml", args + ["--precision=bf16", "--device=cpu"])
    assert seen and set(seen) == {torch.bfloat16}
    (result,) = (tmp_path / "bf16" / "results").glob("*.json")
    assert json.loads(result.read_text())["decoding"]["precision"] == "bf16"
    seen.clear()
    wav = _manifest(tiny)[0]["wav"]
    argv = ["transcribe", wav, "--model", published, "--device", "cpu", "--max-new-tokens", "2"]
    assert cli.main([*argv, "--precision", "bf16"]) == 0
    assert cli.main(argv) == 0
    assert seen == [torch.bfloat16, None]


# ----------------------------------------------------------------------------------------
# Evaluation: inputs longer than the LLM's positions, cascades on segments
# ----------------------------------------------------------------------------------------


def test_evaluation_refuses_utterances_longer_than_the_llm_positions(tiny, stage1_run, tmp_path):
    short_llm = tmp_path / "llm64"
    shutil.copytree(tiny["llm"], short_llm)
    config = json.loads((short_llm / "config.json").read_text())
    (short_llm / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 64}))
    args = eval_args(
        tiny,
        tmp_path / "eval",
        projector_checkpoint=str(stage1_run[0] / "save"),
        llm_source=str(short_llm),
        max_new_tokens=40,
    )
    with pytest.raises(ValueError) as err:
        run_recipe("evaluate.py", "evaluate.yaml", args)
    message = str(err.value)
    assert message.startswith("Test set test-clean: ")
    assert f"do not fit in the 64 positions of {short_llm}" in message
    assert "Lower --max_duration (the preparation then skips and counts them)" in message
    assert not (tmp_path / "eval" / "results").exists()


def test_asr_cascade_reads_segments_and_follows_the_module_device(tiny, tiny_asr, tmp_path):
    """A manifest row that is a segment of a longer recording (EuroParl-ST style): the ASR
    baseline transcribes the segment, not the whole file (was: start/stop ignored)."""
    from speechmapper_plugin.evaluation.cascade import HFTranscriber

    first, second = _manifest(tiny)[:2]
    a, rate = sf.read(first["wav"], dtype="float32")
    b, _ = sf.read(second["wav"], dtype="float32")
    speech = str(tmp_path / "speech.wav")
    sf.write(speech, np.concatenate([a, b]), rate, subtype="FLOAT")
    row = {
        **second,
        "wav": speech,
        "start": len(a) / rate,
        "stop": (len(a) + len(b)) / rate,
    }
    folder = _write_manifest(tmp_path / "manifests", "test-clean", [row])
    args = eval_args(
        tiny,
        tmp_path / "asr",
        system="asr",
        asr_source=tiny_asr,
        asr_generate_kwargs=None,
        manifest_folder=folder,
        skip_prep=True,
    )
    run_recipe("evaluate.py", "evaluate.yaml", args + ["--device=cpu"])
    (result,) = (tmp_path / "asr" / "results").glob("*.json")
    (output,) = json.loads(result.read_text())["outputs"]
    transcriber = HFTranscriber(tiny_asr)
    (alone,), (whole,) = transcriber([second["wav"]]), transcriber([speech])  # unbatched
    assert alone != whole  # the test tells a segment from its whole recording
    assert output["hypothesis"] == alone
    # the ASR model is a submodule: EvalBrain's move to --device moves it, and the pipeline
    # feeds its inputs to wherever the model is
    assert sum(p.numel() for p in transcriber.parameters()) > 0
    transcriber.pipe.device = torch.device("meta")  # stale
    assert transcriber([(speech, row["start"], row["stop"])]) == [alone]
    assert transcriber.pipe.device == torch.device("cpu")
