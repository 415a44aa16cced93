"""The trained tiny chat LM: one training run through ``FrozenLLM`` (loss falls, input
embeddings frozen), and the shipped model (copies and translates held-out text, stops, short
prompts, never trained on held-out text)."""

import json
import random

import pytest
import torch

from speechmapper_plugin.data import prompts
from speechmapper_plugin.models.frozen_llm import FrozenLLM
from speechmapper_plugin.tiny.chat_lm import (
    BUILD_MANIFEST,
    CURVE_FILE,
    DENOISE_STEPS,
    build_tiny_chat_lm,
    file_digests,
    shipped_chat_lm,
    train_chat_lm,
)
from speechmapper_plugin.tiny.chat_tasks import (
    HELDOUT_PLANS,
    chat_tasks,
    evaluate_tasks,
    heldout_sentences,
    tokenizer_texts,
)
from speechmapper_plugin.tiny.llm import build_tiny_llm, default_vocab_size
from speechmapper_plugin.tiny.minish import minish_lexicon


def test_training_steps_through_frozen_llm(tmp_path):
    """The LM trains through FrozenLLM.forward: loss falls, input embeddings do not move."""
    lexicon = minish_lexicon()
    tasks = chat_tasks(lexicon)
    sentences = ["the dog ran", "a cat sat", "my dog ate the cake", "the cat ran"] * 4
    texts = tokenizer_texts(sentences[:4], lexicon, tasks, weight=2)
    folder = build_tiny_llm(
        tmp_path / "llm", texts, num_layers=1, vocab_size=default_vocab_size(texts) + 50
    )
    llm = FrozenLLM(folder, dtype="float32")
    before = llm.model.get_input_embeddings().weight.clone()
    torch.manual_seed(0)
    curve = train_chat_lm(
        llm, sentences, tasks, lexicon, steps=12, batch_size=8, lr=3e-3, warmup=2, log_interval=4
    )
    assert curve[-1]["loss"] < curve[0]["loss"]
    assert torch.equal(llm.model.get_input_embeddings().weight, before)
    assert not any(param.requires_grad for param in llm.model.parameters())


def test_file_digests_tell_files_apart(tmp_path):
    (tmp_path / "a").write_text("x")
    (tmp_path / "b").write_text("y")
    digests = file_digests(tmp_path)
    assert sorted(digests) == ["a", "b"] and digests["a"] != digests["b"]


@pytest.fixture(scope="module")
def shipped_llm():
    return FrozenLLM(shipped_chat_lm(), dtype="float32")


def test_shipped_lm_build_records_its_settings_and_curve():
    folder = shipped_chat_lm()
    settings = json.loads((folder / BUILD_MANIFEST).read_text())["settings"]
    assert settings["heldout_plans"] == [list(plan) for plan in HELDOUT_PLANS]
    curve = json.loads((folder / CURVE_FILE).read_text())
    train = [r["loss"] for r in curve if r["split"] == "train"]
    assert len(train) >= 50 and train[-1] < 0.2 * train[0]


def test_shipped_lm_prompts_are_short(shipped_llm):
    """The tokenizer covers the prompt and template words (was ~205 tokens for Table 11)."""
    before, after = shipped_llm.prompt_ids(prompts.ZERO_SHOT_ASR)
    assert len(before) + len(after) < 100
    before, after = shipped_llm.prompt_ids(prompts.build_prompt(prompts.ASR_INSTRUCTION))
    assert len(before) + len(after) < 50


def test_shipped_lm_copies_and_translates_heldout_text(shipped_llm):
    """Topline: true embeddings + pad tail in the slot (or the text in the prompt), greedy,
    on held-out sentences of the demo's test split."""
    sentences = random.Random(0).sample(heldout_sentences()["test"], 40)
    tasks = {task.name: task for task in chat_tasks()}
    names = ["asr_table11", "asr_it", "asr_noise_injection", "st_it", "asr_table11_text"]
    scores = evaluate_tasks(shipped_llm, sentences, [tasks[n] for n in names], minish_lexicon())
    for name, score in scores.items():
        assert score["wer"] <= 10.0, (name, score)
        assert score["not_stopped_pct"] == 0.0, (name, score)


def test_shipped_lm_is_the_two_phase_build():
    """The shipped weights are those of the default build: phase 1, then the denoising phase
    (its records follow phase 1's on the curve)."""
    settings = json.loads((shipped_chat_lm() / BUILD_MANIFEST).read_text())["settings"]
    assert settings["denoise_steps"] == DENOISE_STEPS > 0
    curve = json.loads((shipped_chat_lm() / CURVE_FILE).read_text())
    phase2 = [r for r in curve if r.get("phase") == 2]
    assert phase2 and min(r["step"] for r in phase2) > settings["steps"]


def test_phase1_folder_of_other_settings_is_refused(tmp_path):
    """Reusing phase 1 from a build of other settings would ship a model that no rebuild
    reproduces: refused, naming the differing settings."""
    with pytest.raises(ValueError, match=r"other phase-1 settings.*'steps': \(3000, 5\)"):
        build_tiny_chat_lm(tmp_path / "lm", steps=5, phase1_folder=_phase1_of_shipped(tmp_path))


def _phase1_of_shipped(tmp_path):
    """The shipped build's manifest as a phase-1 build's (no weights needed to be refused)."""
    folder = tmp_path / "phase1"
    folder.mkdir()
    manifest = json.loads((shipped_chat_lm() / BUILD_MANIFEST).read_text())
    manifest["settings"]["denoise_steps"] = 0
    (folder / BUILD_MANIFEST).write_text(json.dumps(manifest))
    return folder
