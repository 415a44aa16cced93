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
