"""LoRA adapters on the frozen LLM (``speechmapper_plugin.models.lora``): which weights train, what
DDP synchronizes, the saved adapter and the adapter-only checkpoint."""

import pytest
import torch

from speechmapper_plugin.models.frozen_llm import FrozenLLM
from speechmapper_plugin.models.lora import (
    LoraCheckpoint,
    attach_lora,
    load_lora,
    lora_parameters,
    save_lora,
)
from speechmapper_plugin.tiny.llm import build_tiny_llm

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "birds sing in the morning"] * 4


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_llm(tmp_path_factory.mktemp("lora") / "llm", TEXTS, seed=0)


def _lora_llm(base):
    llm = FrozenLLM(base, dtype="float32")
    attach_lora(llm, r=4, alpha=8, target_modules=["q_proj", "v_proj"])
    return llm


def test_only_the_adapters_train_and_only_they_are_synchronized_under_ddp(base):
    llm = _lora_llm(base)
    trainable = {n for n, p in llm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    ignored = set(llm._ddp_params_and_buffers_to_ignore)
    every = {n for n, _ in llm.named_parameters()} | {n for n, _ in llm.named_buffers()}
    assert ignored == every - trainable  # DDP broadcasts and all-reduces the adapters only
    with pytest.raises(ValueError, match="already carries LoRA adapters"):
        attach_lora(llm)


def test_saved_adapter_reloads_to_the_same_outputs(base, tmp_path):
    llm = _lora_llm(base)
    with torch.no_grad():
        for p in lora_parameters(llm):
            p.add_(0.05 * torch.randn_like(p))  # a "trained" adapter
    prompt, target = ["Text segment: the cat\nTranslate."], ["the mat"]
    loss = llm(None, None, prompt, target)["loss"].item()
    save_lora(llm, str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()

    reloaded = FrozenLLM(base, dtype="float32")
    assert load_lora(reloaded, str(tmp_path / "adapter"), trainable=False) == []
    assert reloaded(None, None, prompt, target)["loss"].item() == pytest.approx(loss, abs=1e-6)
    assert not any(p.requires_grad for p in reloaded.parameters())


def test_checkpoint_holds_and_restores_the_adapters_only(base, tmp_path):
    llm = _lora_llm(base)
    saved = {n: p.detach().clone() for n, p in llm.named_parameters() if "lora_" in n}
    ckpt = LoraCheckpoint(llm)
    ckpt.save(tmp_path / "adapter.ckpt")
    state = torch.load(tmp_path / "adapter.ckpt")
    assert state and all("lora_" in k for k in state)  # never the frozen base weights
    with torch.no_grad():
        for p in lora_parameters(llm):
            p.zero_()
    ckpt.load(tmp_path / "adapter.ckpt")
    for n, p in llm.named_parameters():
        if n in saved:
            assert torch.equal(p, saved[n])


def test_adapter_dropout_follows_train_mode_while_the_base_stays_in_eval(base):
    llm = FrozenLLM(base, dtype="float32")
    attach_lora(llm, r=4, alpha=8, dropout=0.5, target_modules=["q_proj", "v_proj"])
    with torch.no_grad():
        for p in lora_parameters(llm):
            p.add_(0.5 * torch.randn_like(p))
    prompt, target = ["Text segment: the cat\nTranslate."], ["the mat"]

    def losses():
        return {round(llm(None, None, prompt, target)["loss"].item(), 6) for _ in range(4)}

    assert len(losses()) == 1  # after attach_lora: eval mode, deterministic
    llm.train()
    dropouts = [m for n, m in llm.model.named_modules() if n.endswith("lora_dropout.default")]
    assert dropouts and all(m.training for m in dropouts)
    assert not any(
        m.training for n, m in llm.model.named_modules() if "lora_dropout" not in n and n
    )
    assert len(losses()) > 1  # the adapters' dropout is active in training
    llm.eval()
    assert len(losses()) == 1


def _fake_hub_cache(base, cache):
    """``base`` placed in a Hugging Face hub cache as the repository ``org/tiny-llm`` (what a
    download leaves: refs/main and a snapshot folder), so that it loads offline by hub id."""
    import shutil

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--org--tiny-llm"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(base, repo / "snapshots" / revision)
    return repo / "snapshots" / revision


def test_adapter_names_its_base_by_hub_id_and_loads_with_plain_peft(base, tmp_path, monkeypatch):
    """The adapter of an LLM loaded by hub id records that id, not the hub-cache folder it was
    read from, so peft alone loads it on another machine (here: from another folder)."""
    import json

    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM

    cache = tmp_path / "hub"
    snapshot = _fake_hub_cache(base, cache)
    llm = FrozenLLM("org/tiny-llm", dtype="float32", cache_dir=str(cache))
    attach_lora(llm, r=4, alpha=8)
    with torch.no_grad():
        for p in lora_parameters(llm):
            p.add_(0.05 * torch.randn_like(p))
    adapter = tmp_path / "adapter"
    save_lora(llm, str(adapter))
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "org/tiny-llm"
    assert str(snapshot) not in (adapter / "adapter_config.json").read_text()
    assert (adapter / "adapter_model.safetensors").is_file()

    ids = torch.tensor([[1, 5, 9, 13, 17]])
    with torch.no_grad():
        expected = llm.model(input_ids=ids).logits
    monkeypatch.chdir(tmp_path)  # nothing relative to the training run's folder
    plain = AutoModelForCausalLM.from_pretrained("org/tiny-llm", cache_dir=str(cache))
    peft_model = PeftModel.from_pretrained(plain, str(adapter)).eval()
    auto = AutoPeftModelForCausalLM.from_pretrained(str(adapter), cache_dir=str(cache)).eval()
    with torch.no_grad():
        assert torch.allclose(peft_model(input_ids=ids).logits, expected, atol=1e-5)
        assert torch.allclose(auto(input_ids=ids).logits, expected, atol=1e-5)
        fresh = AutoModelForCausalLM.from_pretrained("org/tiny-llm", cache_dir=str(cache))
        assert not torch.allclose(fresh(input_ids=ids).logits, expected, atol=1e-5)
