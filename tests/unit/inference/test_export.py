"""Tests of speechmapper_plugin.inference.export beyond the stage-1/2 folders of
test_pretrained: the IWSLT 2025 system (Transformer projector + LoRA adapter) exported and
reloaded, a published model loaded by hub id from a hub cache, hub ids of cached models.

The stage-C folder is made the way train_fusion.py leaves it (hyperparams resolved from
hparams/IWSLT25/stage_c_fusion.yaml with the tiny preset, the fused projector.ckpt and the
peft adapter folder), with random weights.
"""

import os
import shutil

import pytest
import speechbrain as sb
import torch
from hyperpyyaml import resolve_references
from speechbrain.utils.fetching import FetchConfig

from speechmapper_plugin.data.prompts import ASR_INSTRUCTION, IT_SUFFIX, SPEECH_PREFIX
from speechmapper_plugin.features.cache import FeatureCache
from speechmapper_plugin.inference.export import export_model
from speechmapper_plugin.inference.folders import hub_id_of
from speechmapper_plugin.inference.pretrained import SpeechMapperLLM
from speechmapper_plugin.models.frozen_llm import FrozenLLM
from speechmapper_plugin.models.lora import attach_lora, load_lora, lora_parameters, save_lora
from speechmapper_plugin.models.transformer_projector import TransformerProjector
from speechmapper_plugin.tiny.preset import preset_overrides

from .test_pretrained import CPU, HPARAMS, MAX_NEW_TOKENS, PRESET, build_tiny_setup

TRANSFORMER = {"d_model": 32, "num_layers": 1, "nhead": 2, "d_ffn": 64}


def write_stage_c_folder(out, tiny):
    """A finished IWSLT 2025 stage-C run: hyperparams.yaml, projector.ckpt and adapter/."""
    os.makedirs(out)
    llm = FrozenLLM(tiny["llm"], dtype="float32")
    attach_lora(llm, r=4, alpha=8)
    torch.manual_seed(7)
    with torch.no_grad():
        for p in lora_parameters(llm):
            p.copy_(0.3 * torch.randn_like(p))  # a "trained" adapter: it changes the answers
    save_lora(llm, os.path.join(out, "adapter"))
    projector = TransformerProjector(80, 128, dropout=0.0, **TRANSFORMER).eval()
    torch.save(projector.state_dict(), os.path.join(out, "projector.ckpt"))
    source = {"manifests": ["x.csv"], "feature_folder": tiny["feature_folder"], "task": "asr"}
    args = preset_overrides(
        PRESET,
        ["iwslt_multitask"],
        llm_source=tiny["llm"],
        output_folder=str(out),
        projector_init=os.path.join(out, "projector.ckpt"),
        lora_adapter=os.path.join(out, "adapter"),
        speech_sources=[source],
        text_sources=[],
        **TRANSFORMER,
    )
    yaml_file = os.path.join(HPARAMS, "IWSLT25", "stage_c_fusion.yaml")
    _, _, overrides = sb.parse_arguments([yaml_file, *args])
    with open(yaml_file, encoding="utf-8") as f:
        resolved = resolve_references(f, overrides).getvalue()
    with open(os.path.join(out, "hyperparams.yaml"), "w", encoding="utf-8") as f:
        f.write(resolved)
    return projector


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_setup(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def iwslt(tiny):
    folder = os.path.join(tiny["root"], "stage_c")
    projector = write_stage_c_folder(folder, tiny)
    published = export_model(folder, os.path.join(tiny["root"], "iwslt_published"))
    return {"folder": folder, "projector": projector, "published": published}


def read_yaml(path):
    from ruamel.yaml import YAML

    with open(path, encoding="utf-8") as f:
        return YAML().load(f)


def test_iwslt25_system_exports_its_projector_adapter_and_in_domain_prompts(tiny, iwslt):
    import json

    out = iwslt["published"]
    hparams = read_yaml(os.path.join(out, "hyperparams.yaml"))
    assert hparams["projector_type"] == "transformer"
    assert dict(hparams["transformer_projector"]) == {**TRANSFORMER, "dropout": 0.0}
    assert hparams["lora_adapter"] == "adapter"
    assert hparams["frame_average"] == 4 and hparams["feature_dim"] == 80
    # Trained with the instruction-tuning prompts: the published prompts are those.
    assert hparams["prompt_suffix"] == IT_SUFFIX
    assert hparams["asr_prompt"] == SPEECH_PREFIX + ASR_INSTRUCTION + IT_SUFFIX
    with open(os.path.join(out, "adapter", "adapter_config.json"), encoding="utf-8") as f:
        assert json.load(f)["base_model_name_or_path"] == tiny["llm"]
    assert os.path.isfile(os.path.join(out, "adapter", "adapter_model.safetensors"))
    assert os.path.isfile(os.path.join(out, "projector.safetensors"))


def test_iwslt25_system_reloads_to_the_training_path(tiny, iwslt):
    """Cached features -> Transformer projector -> LLM + adapter == the published model, and
    the adapter matters (the LLM without it answers differently)."""
    model = SpeechMapperLLM.from_hparams(
        source=iwslt["published"],
        overrides={"llm_dtype": "float32", "max_new_tokens": MAX_NEW_TOKENS},
        run_opts=CPU,
    )
    with_adapter = FrozenLLM(tiny["llm"], dtype="float32")
    load_lora(with_adapter, os.path.join(iwslt["folder"], "adapter"), trainable=False)
    without = FrozenLLM(tiny["llm"], dtype="float32")
    cache = FeatureCache(tiny["feature_folder"])
    prompt = model.asr_prompt()
    differs = False
    for i, path in enumerate(tiny["wavs"]):
        with torch.no_grad():
            speech, lens = iwslt["projector"](cache[f"utt{i}"][None], torch.ones(1))
        expected = with_adapter.generate(speech, lens, [prompt], max_new_tokens=MAX_NEW_TOKENS)
        assert model.transcribe_file(path) == expected[0]
        plain = without.generate(speech, lens, [prompt], max_new_tokens=MAX_NEW_TOKENS)
        differs |= plain != expected
    assert differs


def test_unfinished_stage_c_is_refused(tiny, iwslt, tmp_path):
    folder = tmp_path / "stage_c"
    shutil.copytree(iwslt["folder"], folder)
    shutil.rmtree(folder / "adapter")
    with pytest.raises(FileNotFoundError, match="let the run finish"):
        export_model(str(folder), str(tmp_path / "out"))


def _fake_hub_repo(folder, cache, repo="org--published"):
    """A published folder placed in a hub cache as it is after a download of its repo."""
    revision = "89abcdef0123456789abcdef0123456789abcdef"
    root = cache / f"models--{repo}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(revision)
    shutil.copytree(folder, root / "snapshots" / revision)


def test_published_model_loads_by_hub_id(tiny, iwslt, tmp_path):
    """``from_hparams("org/published")`` reads hyperparams.yaml, projector.safetensors and
    adapter/ from the hub (here: its cache, offline), exactly as from the local folder."""
    cache = tmp_path / "hub"
    _fake_hub_repo(iwslt["published"], cache)
    kwargs = {
        "overrides": {"llm_dtype": "float32", "max_new_tokens": MAX_NEW_TOKENS},
        "run_opts": CPU,
    }
    local = SpeechMapperLLM.from_hparams(source=iwslt["published"], **kwargs)
    remote = SpeechMapperLLM.from_hparams(
        source="org/published",
        savedir=str(tmp_path / "pretrained"),
        fetch_config=FetchConfig(huggingface_cache_dir=str(cache), allow_network=False),
        **kwargs,
    )
    assert (tmp_path / "pretrained" / "adapter" / "adapter_config.json").exists()
    for path in tiny["wavs"]:
        assert remote.transcribe_file(path) == local.transcribe_file(path)


def test_hub_cache_folders_are_published_as_hub_ids():
    assert hub_id_of("/c/models--utter-project--EuroLLM-9B-Instruct/snapshots/ab12/") == (
        "utter-project/EuroLLM-9B-Instruct"
    )
    assert hub_id_of("/data/my-llama") == "/data/my-llama"
    assert hub_id_of(None) is None
