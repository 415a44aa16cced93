"""The tiny chat LM's instructions, held-out text, tokenizer corpus and slot vectors."""

import torch

from speechmapper_plugin.data import prompts
from speechmapper_plugin.models.embeddings import EmbeddingTable
from speechmapper_plugin.tiny.chat_tasks import (
    HELDOUT_PLANS,
    ChatTask,
    chat_tasks,
    heldout_sentences,
    slot_targets,
    tokenizer_texts,
)
from speechmapper_plugin.tiny.minicorpus import plan_corpus
from speechmapper_plugin.tiny.minish import (
    MINISH_CODE,
    minish_lexicon,
    minish_st_instructions,
    translate,
)


def test_heldout_sentences_are_the_corpus_splits():
    held = heldout_sentences([(40, 3, 4, 0, "small")])
    plan, _ = plan_corpus(40, 3, 4, 0, "small")
    assert held["dev"] == [u["text"] for u in plan if u["split"] == "dev-clean"]
    assert held["test"] == [u["text"] for u in plan if u["split"] == "test-clean"]
    assert sorted(held["dev"] + held["test"]) == held["all"]


def test_the_demo_and_test_corpora_are_held_out():
    assert HELDOUT_PLANS[0] == (4000, 200, 200, 0, "small")  # run_demo.py's defaults
    assert (48, 8, 8, 0, "full") in HELDOUT_PLANS  # tests/integration/conftest.py


def test_tasks_use_the_project_prompts():
    tasks = {task.name: task for task in chat_tasks()}
    assert tasks["asr_table11"].prompt == prompts.ZERO_SHOT_ASR
    assert tasks["asr_it"].prompt == prompts.build_prompt(prompts.ASR_INSTRUCTION)
    noise = tasks["asr_noise_injection"]
    assert noise.prompt == prompts.NOISE_INJECTION_PROMPT
    assert noise.assistant_prefix == prompts.NOISE_INJECTION_ASSISTANT_PREFIX
    assert tasks["st_it"].prompt == prompts.task_prompt(
        "st", MINISH_CODE, zero_shot=False, st_instructions=minish_st_instructions()
    )
    lexicon = minish_lexicon()
    assert tasks["st_it"].answer("the dog", lexicon) == f"{lexicon['the']} {lexicon['dog']}"


def test_text_input_task_fills_the_prompt():
    task = ChatTask("t", prompts.ZERO_SHOT_ASR, "asr", 1, text_input=True)
    assert task.user_prompt("a cat").startswith('"a cat"\n')


def test_tokenizer_corpus_weights_each_prompt_text_with_distinct_lines():
    texts = tokenizer_texts(["a cat", "the dog"], minish_lexicon(), chat_tasks()[:1], weight=3)
    assert texts[:4] == ["a cat", "the dog"] + [translate("a cat"), translate("the dog")]
    # the Table 11 instruction, as written and spaced out, 3 copies each with corpus lines
    # appended in turn (sentencepiece counts identical lines once)
    repeat = [t for t in texts if "Repeat the previous text between the quotes in its" in t]
    assert len(repeat) == 6 and len(set(repeat)) == 4


def test_slot_targets_are_stage1_targets_plus_noise():
    table = EmbeddingTable(torch.randn(6, 4), pad_id=5)
    speech, lens = slot_targets(table, [[0, 1, 2], [3]], [1, 2])
    assert torch.equal(speech[0, :4], table.targets([[0, 1, 2]], 4)[0])
    assert torch.equal(speech[1, :3], table.targets([[3]], 3)[0])
    assert lens.tolist() == [1.0, 0.75]
    noisy, _ = slot_targets(
        table, [[0]], [0], torch.tensor([0.5]), torch.Generator().manual_seed(0)
    )
    assert 0 < (noisy - table.targets([[0]], 1)).abs().max() < 5
    offset, _ = slot_targets(
        table, [[0]], [0], torch.tensor([0.1]), torch.Generator().manual_seed(0), "algorithm1"
    )
    delta = offset - table.targets([[0]], 1)  # Algorithm 1: r * d with r in 1..9
    assert (delta > 0.099).all() and (delta < 0.901).all()
