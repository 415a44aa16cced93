"""Tests of speechmapper_plugin.inference.pretrained: export of training folders, SpeechMapperLLM.

The training folders are made the way the recipes make them, without training: the
stage YAML resolved with the tiny preset's command-line overrides (as
``sb.create_experiment_directory`` writes ``hyperparams.yaml``), a real feature cache made by
``extract_to_cache`` and SpeechBrain checkpoints of a random-init projector of the preset's
shape. The tiny LLM has large random weights so that its answers depend on the input.
"""

import datetime
import json
import logging
import os
import shutil

import numpy as np
import pytest
import soundfile
import speechbrain as sb
import torch
from hyperpyyaml import resolve_references
from speechbrain.utils.checkpoints import Checkpointer

from speechmapper_plugin.data.prompts import (
    SPEECH_PREFIX,
    ST_INSTRUCTIONS,
    ZERO_SHOT_ASR,
    ZERO_SHOT_SUFFIX,
)
from speechmapper_plugin.features.audio import AudioError
from speechmapper_plugin.features.cache import FeatureCache
from speechmapper_plugin.features.extraction import extract_to_cache
from speechmapper_plugin.features.front_ends import FbankFrontend
from speechmapper_plugin.inference.export import export_model, fill_template
from speechmapper_plugin.inference.folders import (
    find_best_checkpoint,
    folder_kind,
    read_feature_config,
)
from speechmapper_plugin.inference.pretrained import SpeechMapperLLM, load_model
from speechmapper_plugin.models.embeddings import EmbeddingTable
from speechmapper_plugin.models.frozen_llm import FrozenLLM
from speechmapper_plugin.models.speechmapper import SpeechMapper
from speechmapper_plugin.tiny.llm import build_tiny_llm
from speechmapper_plugin.tiny.preset import preset_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


HPARAMS = os.path.join(ROOT, "hparams")


PRESET = os.path.join(HPARAMS, "tiny.yaml")


TEXTS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "birds sing at dawn",
    "she reads a long book",
    "we walk to the river",
]


MAX_NEW_TOKENS = 8


CPU = {"device": "cpu"}  # the reference computations of the tests run on the CPU


def tiny_projector(seed):
    """A random projector with the shape of the tiny preset (hparams/tiny.yaml)."""
    torch.manual_seed(seed)
    return SpeechMapper(
        80,
        [128, 192],
        [192, 128],
        llm_dim=128,
        num_layers=2,
        nhead=4,
        d_ffn=[256, 384],
        dropout=0.0,
        final_init_gain=0.1,
    ).eval()


def write_training_folder(out, stage, llm, cache_folder, checkpoints, **extra):
    """A training output folder as train_stage<stage>.py leaves it (without training).

    ``checkpoints`` is a list of (projector, meta) saved in that order.
    """
    sections = ["projector", "both_stages", f"stage{stage}"]
    args = preset_overrides(
        PRESET,
        sections,
        llm_source=str(llm),
        data_folder=str(out) + "_data",
        cache_folder=str(cache_folder),
        output_folder=str(out),
        **extra,
    )
    yaml_file = os.path.join(HPARAMS, f"stage{stage}.yaml")
    _, _, overrides = sb.parse_arguments([yaml_file, *args])
    os.makedirs(out, exist_ok=True)
    with open(yaml_file, encoding="utf-8") as f:
        resolved = resolve_references(f, overrides).getvalue()
    with open(os.path.join(out, "hyperparams.yaml"), "w", encoding="utf-8") as f:
        f.write(f"# Generated {datetime.date.today()} from:\n# {yaml_file}\n# yamllint disable\n")
        f.write(resolved)
    for index, (projector, meta) in enumerate(checkpoints):
        saver = Checkpointer(os.path.join(out, "save"), {"projector": projector})
        saver.save_checkpoint(meta=meta, name=f"{index}")
    return str(out)


def build_tiny_setup(root):
    """Tiny LLM, 3 audio files, their feature cache and a stage-1 and a stage-2 run."""
    root = str(root)
    llm = build_tiny_llm(os.path.join(root, "llm"), TEXTS, initializer_range=0.5)
    rng = np.random.default_rng(0)
    wavs = []
    for i, seconds in enumerate([0.6, 1.0, 0.8]):
        n = int(16000 * seconds)
        t = np.arange(n) / 16000
        wav = 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.05 * rng.standard_normal(n)
        path = os.path.join(root, "audio", f"utt{i}.wav")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        soundfile.write(path, wav.astype("float32"), 16000)
        wavs.append(path)
    cache_folder = os.path.join(root, "cache")
    feature_folder = os.path.join(cache_folder, "features", "fbank80_avg4")
    extract_to_cache(
        FbankFrontend(),
        [(f"utt{i}", path) for i, path in enumerate(wavs)],
        feature_folder,
        {"kind": "fbank", "source": None, "layer": None, "frame_average": 4},
        average=4,
        batch_seconds=1e-3,  # one utterance per encoder call
        progress=False,
    )
    best, other, third = tiny_projector(1), tiny_projector(2), tiny_projector(3)
    stage1 = write_training_folder(
        os.path.join(root, "stage1"),
        1,
        llm,
        cache_folder,
        [(best, {"WER": 80.0}), (other, {"WER": 95.0})],  # the latest is not the best
    )
    stage2 = write_training_folder(
        os.path.join(root, "stage2"),
        2,
        llm,
        cache_folder,
        [(other, {"loss": 3.0}), (third, {"loss": 1.5}), (best, {"loss": 2.0})],
        stage1_checkpoint=os.path.join(stage1, "save"),
        system_prompt="Be brief.",
    )
    return {
        "root": root,
        "llm": str(llm),
        "wavs": wavs,
        "feature_folder": feature_folder,
        "stage1": stage1,
        "stage2": stage2,
        "best": best,
        "third": third,
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_setup(tmp_path_factory.mktemp("inference"))


@pytest.fixture(scope="module")
def published(tiny):
    out = os.path.join(tiny["root"], "published1")
    return export_model(tiny["stage1"], out, overrides={"llm_dtype": "float32"})


@pytest.fixture(scope="module")
def model(published):
    return SpeechMapperLLM.from_hparams(
        source=published, overrides={"max_new_tokens": MAX_NEW_TOKENS}, run_opts=CPU
    )


def read_yaml(path):
    from ruamel.yaml import YAML

    with open(path, encoding="utf-8") as f:
        return YAML().load(f)


def same_state(path, module):
    from safetensors.torch import load_file

    state = load_file(path)
    return state.keys() == module.state_dict().keys() and all(
        torch.equal(state[k], v) for k, v in module.state_dict().items()
    )


def test_export_stage1_takes_lowest_wer_checkpoint_and_cache_encoder(tiny, published):
    assert same_state(os.path.join(published, "projector.safetensors"), tiny["best"])
    hparams = read_yaml(os.path.join(published, "hyperparams.yaml"))
    assert hparams["sfm_kind"] == "fbank" and hparams["sfm_source"] is None
    assert hparams["frame_average"] == 4 and hparams["feature_dim"] == 80
    assert list(hparams["block_dims"]) == [128, 192] and hparams["llm_dim"] == 128
    assert hparams["llm_source"] == tiny["llm"] and hparams["llm_dtype"] == "float32"
    assert "pretrainer" in hparams
    with open(os.path.join(published, "export.json"), encoding="utf-8") as f:
        info = json.load(f)
    assert info["stage"] == "stage1" and info["selected_by"] == "min WER"
    assert info["meta"]["WER"] == 80.0


def test_export_stage2_takes_lowest_loss_and_llm_settings(tiny, tmp_path):
    out = export_model(tiny["stage2"], str(tmp_path / "pub2"))
    assert same_state(os.path.join(out, "projector.safetensors"), tiny["third"])
    hparams = read_yaml(os.path.join(out, "hyperparams.yaml"))
    assert hparams["llm_dtype"] == "float32"  # stage-2 preset value, not the template's bf16
    assert hparams["system_prompt"] == "Be brief."
    # Self-contained: the prompts are written out, not references to plugin constants.
    assert hparams["asr_prompt"] == ZERO_SHOT_ASR
    assert hparams["speech_prefix"] == SPEECH_PREFIX
    assert hparams["prompt_suffix"] == ZERO_SHOT_SUFFIX
    assert dict(hparams["st_instructions"]) == ST_INSTRUCTIONS
    text = open(os.path.join(out, "hyperparams.yaml"), encoding="utf-8").read()
    assert "speechmapper_plugin.data.prompts" not in text


def test_reexport_keeps_the_copied_checkpoint(tiny, published):
    ckpt = os.path.join(published, "projector.safetensors")
    before = os.stat(ckpt).st_mtime_ns
    export_model(tiny["stage1"], published, overrides={"llm_dtype": "float32"})
    assert os.stat(ckpt).st_mtime_ns == before


def test_export_of_a_published_folder_copies_it(published, tmp_path):
    out = export_model(published, str(tmp_path / "copy"), overrides={"max_new_tokens": 5})
    assert read_yaml(os.path.join(out, "hyperparams.yaml"))["max_new_tokens"] == 5
    assert folder_kind(out) == "published"


def test_export_errors_say_what_to_do(tiny, tmp_path):
    with pytest.raises(ValueError, match="into itself"):
        export_model(tiny["stage1"], tiny["stage1"])
    with pytest.raises(KeyError, match="'lr_typo' is not a top-level key"):
        export_model(tiny["stage1"], str(tmp_path / "a"), overrides={"lr_typo": 1})
    with pytest.raises(FileNotFoundError, match="neither a training output folder"):
        export_model(str(tmp_path), str(tmp_path / "b"))
    # A run whose feature cache is not reachable: the error points to feature_config.
    moved = str(tmp_path / "stage1")
    shutil.copytree(tiny["stage1"], moved)
    text = open(os.path.join(moved, "hyperparams.yaml"), encoding="utf-8").read()
    text = text.replace(tiny["feature_folder"], str(tmp_path / "gone"))
    open(os.path.join(moved, "hyperparams.yaml"), "w", encoding="utf-8").write(text)
    with pytest.raises(FileNotFoundError, match="feature_config"):
        export_model(moved, str(tmp_path / "c"))
    out = export_model(moved, str(tmp_path / "c"), feature_config=tiny["feature_folder"])
    assert read_yaml(os.path.join(out, "hyperparams.yaml"))["frame_average"] == 4
    # A checkpoint of another projector shape is refused at export time.
    text = text.replace("num_layers: 2", "num_layers: 3")
    open(os.path.join(moved, "hyperparams.yaml"), "w", encoding="utf-8").write(text)
    with pytest.raises(ValueError, match="does not match the projector settings"):
        export_model(moved, str(tmp_path / "d"), feature_config=tiny["feature_folder"])


def test_find_best_checkpoint_falls_back_to_latest(tiny, tmp_path):
    save = str(tmp_path / "save")
    shutil.copytree(os.path.join(tiny["stage1"], "save"), save)
    best = find_best_checkpoint(save, "loss")  # no checkpoint has "loss"
    assert best["selected_by"] == "latest" and best["checkpoint"].endswith("CKPT+1")
    with pytest.raises(FileNotFoundError, match="--debug"):
        find_best_checkpoint(str(tmp_path / "none"), "WER")


def test_export_skips_a_torn_checkpoint(tiny, tmp_path, caplog):
    """A checkpoint torn by a kill during its save is never exported: the best complete one is
    (issue 14: every use of a checkpoint folder skips torn checkpoints)."""
    save = tmp_path / "save"
    shutil.copytree(os.path.join(tiny["stage1"], "save"), save)
    complete = find_best_checkpoint(str(save), "WER")
    torn = save / "CKPT+torn"
    shutil.copytree(complete["checkpoint"], torn)
    meta = (torn / "CKPT.yaml").read_text()
    (torn / "CKPT.yaml").write_text(meta.replace(f"WER: {complete['meta']['WER']}", "WER: 0.0"))
    assert "WER: 0.0" in (torn / "CKPT.yaml").read_text()  # it would be the best one
    (torn / "projector.ckpt").write_bytes(b"")  # the save was cut here
    with caplog.at_level(logging.WARNING, logger="speechmapper_plugin"):
        best = find_best_checkpoint(str(save), "WER")
    assert best["checkpoint"] == complete["checkpoint"]
    assert "CKPT+torn" in caplog.text and "projector.ckpt is empty" in caplog.text


def test_read_feature_config_rejects_unknown_caches(tmp_path):
    path = tmp_path / "cache.json"
    path.write_text(json.dumps({"config": {"dim": 80}}))
    with pytest.raises(ValueError, match="'kind' and 'frame_average'"):
        read_feature_config(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="cache.json"):
        read_feature_config(str(tmp_path / "missing"))


def test_fill_template_replaces_only_named_keys():
    text = "a: 1 # old\nb:\n    a: 2\nc: x # kept\n"
    assert fill_template(text, {"a": "two words", "c": "x"}) == (
        'a: "two words"\nb:\n    a: 2\nc: x # kept\n'
    )


def test_published_model_matches_the_training_path(tiny, model):
    """Features of the training cache -> projector -> FrozenLLM == transcribe_file."""
    llm = FrozenLLM(tiny["llm"], dtype="float32")
    table = EmbeddingTable.from_pretrained(tiny["llm"])
    cache = FeatureCache(tiny["feature_folder"])
    projector = tiny["best"]
    for i, path in enumerate(tiny["wavs"]):
        feats = cache[f"utt{i}"][None]
        with torch.no_grad():
            speech, lens = projector(feats, torch.ones(1))
        wav, wav_lens = model.load_batch([path])
        speech_model, lens_model = model.encode_batch(wav, wav_lens)
        assert torch.equal(speech_model, speech) and torch.equal(lens_model, lens)
        expected = llm.generate(speech, lens, [ZERO_SHOT_ASR], max_new_tokens=MAX_NEW_TOKENS)
        assert model.transcribe_file(path) == expected[0]
        assert model.nearest_decode_file(path) == table.decode(speech, lens, metric="cosine")[0]


def test_batch_outputs_equal_per_file_outputs(tiny, model):
    wavs = tiny["wavs"]
    singles = [model.transcribe_file(path) for path in wavs]
    assert len(set(singles)) == len(singles)  # the answers depend on the audio
    assert model.generate_files(wavs, model.asr_prompt(), batch_size=3) == singles
    assert model.generate_files(wavs, model.asr_prompt(), batch_size=2) == singles
    mixed = [model.asr_prompt(), model.st_prompt("de"), "Describe the sound."]
    expected = [
        model.transcribe_file(wavs[0]),
        model.translate_file(wavs[1], "de"),
        model.generate_file(wavs[2], "Describe the sound."),
    ]
    assert model.generate_files(wavs, mixed, batch_size=3) == expected
    batch, lens = model.load_batch(wavs)
    assert model.nearest_decode_batch(batch, lens) == [
        model.nearest_decode_file(path) for path in wavs
    ]


def test_prompts(model):
    assert model.prompt("Summarize.") == SPEECH_PREFIX + "Summarize." + ZERO_SHOT_SUFFIX
    assert model.prompt("<speech> as is") == "<speech> as is"
    assert model.st_prompt("de") == SPEECH_PREFIX + ST_INSTRUCTIONS["de"] + ZERO_SHOT_SUFFIX
    assert "Who came?" in model.sqa_prompt("Who came?")
    assert model.asr_prompt() == ZERO_SHOT_ASR
    with pytest.raises(ValueError, match="exactly once"):
        model.prompt("<speech> <speech>")


def test_unknown_language_lists_supported_ones(tiny, model):
    with pytest.raises(ValueError, match=r"'xx'; supported: \['de', 'es', 'fr', 'it', 'zh'\]"):
        model.translate_file(tiny["wavs"][0], "xx")


def test_unreadable_audio_names_the_file(tiny, model, tmp_path):
    with pytest.raises(AudioError, match="nope.wav"):
        model.transcribe_file(str(tmp_path / "nope.wav"))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(AudioError, match="bad.wav"):
        model.generate_files([tiny["wavs"][0], str(bad)], model.asr_prompt())


def test_from_training_folder_and_load_model(tiny, model, tmp_path):
    savedir = str(tmp_path / "pub")
    loaded = load_model(
        tiny["stage1"],
        savedir=savedir,
        overrides={"llm_dtype": "float32", "max_new_tokens": MAX_NEW_TOKENS},
        run_opts=CPU,
    )
    assert folder_kind(savedir) == "published"
    path = tiny["wavs"][1]
    assert loaded.transcribe_file(path) == model.transcribe_file(path)


def test_incomplete_or_wrong_folders_are_refused(tiny, published, tmp_path):
    folder = tmp_path / "no_ckpt"
    folder.mkdir()
    shutil.copy(os.path.join(published, "hyperparams.yaml"), folder)
    with pytest.raises(FileNotFoundError, match="has no projector.safetensors"):
        SpeechMapperLLM.from_hparams(source=str(folder))
    with pytest.raises(ValueError, match="from_training_folder"):
        SpeechMapperLLM.from_hparams(source=tiny["stage1"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "missing"))
