"""Tests of ``speechmapper_plugin.models.frozen_llm`` (the frozen LLM side of SpeechMapper)."""

import json
import logging
import shutil

import pytest
import torch

from speechmapper_plugin.models.embeddings import (
    EmbeddingTable,
    load_input_embeddings,
)
from speechmapper_plugin.models.frozen_llm import FrozenLLM

from .helpers import EMBED_NAME, fake_hub_cache, tokenizer_files


def test_frozen_llm_reports_missing_shards(offline, monkeypatch, sharded, tmp_path):
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    shard = index["weight_map"][EMBED_NAME]
    files = tokenizer_files(sharded) + ["model.safetensors.index.json", shard]
    fake_hub_cache(tmp_path, "acme/partial", sharded, files)
    with pytest.raises(FileNotFoundError, match="huggingface-cli download acme/partial"):
        FrozenLLM("acme/partial", cache_dir=tmp_path, dtype="float32")


def test_frozen_llm_from_hub_cache(offline, sharded, tmp_path):
    files = [path.name for path in sharded.iterdir() if not path.name.startswith(".")]
    fake_hub_cache(tmp_path, "acme/full", sharded, files)
    model = FrozenLLM("acme/full", cache_dir=tmp_path, dtype="float32")
    assert torch.equal(model.model.get_input_embeddings().weight, load_input_embeddings(sharded))


def test_targets_values_and_padding(table, corpus):
    ids = table.encode(corpus[:3])
    length = max(len(seq) for seq in ids) + 4
    out, kept = table.targets(ids, length, return_lengths=True)
    assert out.shape == (3, length, table.embed_dim)
    assert out.dtype == torch.float32
    assert kept.tolist() == [len(seq) for seq in ids]
    for row, seq in enumerate(ids):
        assert torch.equal(out[row, : len(seq)], table.weight[seq])
        pads = out[row, len(seq) :]
        assert torch.equal(pads, table.weight[table.pad_id].expand_as(pads))
    # Same targets from a padded tensor with integer or relative lengths.
    width = max(len(seq) for seq in ids)
    padded = torch.zeros(3, width, dtype=torch.long)
    for row, seq in enumerate(ids):
        padded[row, : len(seq)] = torch.tensor(seq)
    counts = torch.tensor([len(seq) for seq in ids])
    assert torch.equal(table.targets(padded, length, num_tokens=counts), out)
    assert torch.equal(table.targets(padded, length, num_tokens=counts / width), out)


def test_targets_truncation_is_counted_and_logged(folder, caplog):
    table = EmbeddingTable.from_pretrained(folder)
    with caplog.at_level(logging.WARNING, logger="speechmapper_plugin.models"):
        out, kept = table.targets(
            [[5, 6, 7, 8], [5], [9, 9, 9]], 2, utt_ids=["a", "b", "c"], return_lengths=True
        )
    assert table.num_truncated == 2
    assert kept.tolist() == [2, 1, 2]
    assert torch.equal(out[0], table.weight[[5, 6]])
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(messages) == 2
    assert "utterance a has 4 tokens" in messages[0]
    assert "utterance c" in messages[1]
    with pytest.raises(ValueError, match="utterance #1 of the batch"):
        table.targets([[1], [10**6]], 3)


def test_nearest_and_decode_round_trip(table, corpus):
    texts = corpus[:6]
    ids = table.encode(texts)
    length = max(len(seq) for seq in ids) + 3
    targets = table.targets(ids, length)
    noisy = targets + 1e-3 * torch.randn(targets.shape, generator=torch.Generator().manual_seed(0))
    lens = torch.ones(len(texts))
    assert table.nearest(noisy, lens) == ids
    assert table.decode(noisy, lens) == texts
    # Relative lengths cut the search; a pad cuts the sequence.
    short = torch.tensor([2 / length] + [1.0] * 5)
    assert table.nearest(targets, short)[0] == ids[0][:2]
    cut = targets.clone()
    cut[1, 1] = table.weight[table.pad_id]
    assert table.nearest(cut, lens)[1] == ids[1][:1]


PROMPTS = ["<speech>\nrepeat the text", "please say <speech> now"]


ANSWERS = ["the man said", "there was a house"]


def speech_batch(llm, seed=0, scale=0.2):
    generator = torch.Generator().manual_seed(seed)
    speech = torch.randn(2, 6, llm.embed_dim, generator=generator) * scale
    return speech, torch.tensor([1.0, 0.5])


def test_frozen_llm_is_frozen_and_stays_in_eval(llm):
    assert llm.embed_dim == 128
    assert llm.pad_token == "<|finetune_right_pad_id|>"
    assert all(not p.requires_grad for p in llm.parameters())
    container = torch.nn.ModuleDict({"llm": llm, "proj": torch.nn.Linear(2, 2)})
    container.train()
    assert container["proj"].training
    assert not llm.training
    assert not any(module.training for module in llm.modules())
    eot = llm.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    end = llm.tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    assert llm.eot_id == eot
    assert llm.eos_ids == sorted([eot, end])


def test_prompt_placeholder_errors(llm):
    speech, lens = speech_batch(llm)
    for bad in ("no placeholder", "<speech> twice <speech>"):
        with pytest.raises(ValueError, match="exactly once") as error:
            llm.build_inputs(speech, lens, [bad, PROMPTS[0]])
        assert repr(bad) in str(error.value)
    with pytest.raises(ValueError, match="2 prompts|1 prompts"):
        llm.build_inputs(speech, lens, PROMPTS[:1])


def rendered_ids(llm, conversation, generation_prompt):
    """HF's own rendering, tokenized at once, split where the placeholder was."""
    tok = llm.tokenizer
    text = tok.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=generation_prompt
    )
    before, after = text.split("<speech>")
    ids_before = tok(before, add_special_tokens=False)["input_ids"]
    full = tok(before + after, add_special_tokens=False)["input_ids"]
    assert full[: len(ids_before)] == ids_before
    return ids_before, full[len(ids_before) :]


def expected_rows(llm, prompt, num_speech, answer):
    """Token ids (None for speech) of one spliced sequence, and the answer + eot ids.

    The whole conversation (user prompt + assistant answer) is rendered with the chat
    template and tokenized at once, the placeholder removed; the speech vectors go where
    the placeholder was.
    """
    tok = llm.tokenizer
    user = [{"role": "user", "content": prompt}]
    before, after = rendered_ids(llm, user, True)
    assert before[0] == tok.bos_token_id
    prompt_rows = before + [None] * num_speech + after
    if answer is None:
        return prompt_rows, []
    before, after = rendered_ids(llm, user + [{"role": "assistant", "content": answer}], False)
    rows = before + [None] * num_speech + after
    assert rows[: len(prompt_rows)] == prompt_rows
    answer_ids = rows[len(prompt_rows) :]
    assert answer_ids[-1] == llm.eot_id
    assert tok.decode(answer_ids, skip_special_tokens=True) == answer
    return rows, answer_ids


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_build_inputs_splices_speech_and_masks_labels(llm, padding_side):
    speech, lens = speech_batch(llm)
    speech.requires_grad_(True)
    inputs = llm.build_inputs(speech, lens, PROMPTS, ANSWERS, padding_side=padding_side)
    embeds, mask, labels = inputs["inputs_embeds"], inputs["attention_mask"], inputs["labels"]
    weight = llm.model.get_input_embeddings().weight
    total = embeds.shape[1]
    for row, num_speech in enumerate([6, 3]):
        ids, answer_ids = expected_rows(llm, PROMPTS[row], num_speech, ANSWERS[row])
        size = len(ids)
        start = 0 if padding_side == "right" else total - size
        assert mask[row].sum() == size
        assert mask[row, start : start + size].all()
        speech_pos = [start + i for i, tok in enumerate(ids) if tok is None]
        assert len(speech_pos) == num_speech
        assert torch.equal(embeds[row, speech_pos], speech[row, :num_speech])
        for offset, tok in enumerate(ids):
            if tok is not None:
                assert torch.equal(embeds[row, start + offset], weight[tok])
        pad_positions = [i for i in range(total) if not start <= i < start + size]
        assert torch.equal(
            embeds[row, pad_positions], weight[llm.pad_id].expand(len(pad_positions), -1)
        )
        expected_labels = torch.full((total,), -100)
        answer_start = start + size - len(answer_ids)
        expected_labels[answer_start : start + size] = torch.tensor(answer_ids)
        assert torch.equal(labels[row], expected_labels)
        positions = inputs["position_ids"][row, start : start + size]
        assert torch.equal(positions, torch.arange(size))
    # Generation inputs: the rendered prompt with the generation header, no labels.
    gen = llm.build_inputs(speech, lens, PROMPTS, padding_side="left")
    assert gen["labels"] is None
    for row, num_speech in enumerate([6, 3]):
        ids, _ = expected_rows(llm, PROMPTS[row], num_speech, None)
        assert int(gen["attention_mask"][row].sum()) == len(ids)
        tail = gen["inputs_embeds"][row, -len(ids) :]
        text_pos = [i for i, tok in enumerate(ids) if tok is not None]
        assert torch.equal(tail[text_pos], weight[[ids[i] for i in text_pos]])


def test_assistant_prefix_precedes_the_answer(llm):
    speech, lens = speech_batch(llm)
    tok = llm.tokenizer
    plain = llm.build_inputs(speech, lens, PROMPTS, ANSWERS)
    forced = llm.build_inputs(speech, lens, PROMPTS, ANSWERS, assistant_prefix="it is:")
    weight = llm.model.get_input_embeddings().weight
    prefix_ids = tok("\nit is:", add_special_tokens=False)["input_ids"][
        len(tok("\n", add_special_tokens=False)["input_ids"]) :
    ]
    for row in range(2):
        size = int(plain["attention_mask"][row].sum())
        answer = int((plain["labels"][row] != -100).sum())
        head = size - answer  # prompt + speech + generation header
        extra = len(prefix_ids)
        assert int(forced["attention_mask"][row].sum()) == size + extra
        assert torch.equal(forced["inputs_embeds"][row, :head], plain["inputs_embeds"][row, :head])
        assert torch.equal(forced["inputs_embeds"][row, head : head + extra], weight[prefix_ids])
        assert torch.equal(
            forced["labels"][row, head + extra : size + extra], plain["labels"][row, head:size]
        )
        assert (forced["labels"][row, : head + extra] == -100).all()


def test_system_prompt_is_rendered(folder):
    model = FrozenLLM(folder, dtype="float32", system_prompt="you transcribe")
    before, _ = model.prompt_ids(PROMPTS[0])
    assert "you transcribe<|eot_id|>" in model.tokenizer.decode(before)


def test_forward_loss_equals_hf_loss_and_reaches_speech(llm):
    speech, lens = speech_batch(llm)
    speech.requires_grad_(True)
    out = llm(speech, lens, PROMPTS, ANSWERS)
    inputs = llm.build_inputs(speech.detach(), lens, PROMPTS, ANSWERS)
    reference = llm.model(
        inputs_embeds=inputs["inputs_embeds"],
        attention_mask=inputs["attention_mask"],
        position_ids=inputs["position_ids"],
        labels=inputs["labels"],
    ).loss
    assert torch.allclose(out["loss"], reference, atol=1e-5)
    assert out["num_tokens"] == int((inputs["labels"] != -100).sum())
    full = llm(speech, lens, PROMPTS, ANSWERS, return_logits=True)
    assert torch.allclose(full["loss"], out["loss"], atol=1e-5)
    assert full["logits"].shape[:2] == inputs["labels"].shape
    out["loss"].backward()
    grad = speech.grad
    assert grad[0].abs().sum(-1).gt(0).all()  # every valid frame gets a gradient
    assert grad[1, :3].abs().sum(-1).gt(0).all()
    assert torch.equal(grad[1, 3:], torch.zeros_like(grad[1, 3:]))  # beyond the length
    assert all(p.grad is None for p in llm.parameters())


def test_bf16_llm_casts_speech_and_keeps_gradient(folder):
    model = FrozenLLM(folder, dtype="bfloat16")
    speech, lens = speech_batch(model)
    speech.requires_grad_(True)
    inputs = model.build_inputs(speech, lens, PROMPTS, ANSWERS)
    assert inputs["inputs_embeds"].dtype == torch.bfloat16
    out = model(speech, lens, PROMPTS, ANSWERS)
    assert out["loss"].dtype == torch.float32
    out["loss"].backward()
    assert speech.grad.dtype == torch.float32
    assert speech.grad[0].abs().sum() > 0


def test_batched_greedy_equals_one_by_one(llm, monkeypatch):
    generator = torch.Generator().manual_seed(5)
    speech = torch.randn(4, 7, llm.embed_dim, generator=generator) * 0.2
    lens = torch.tensor([1.0, 3 / 7, 5 / 7, 1 / 7])
    prompts = [
        "<speech>\nrepeat the text",
        "say <speech> now please",
        "<speech>",
        "the man <speech> was here and there",
    ]

    def one_by_one(**kwargs):
        return [
            llm.generate_ids(speech[i : i + 1], lens[i : i + 1], prompts[i : i + 1], **kwargs)[0]
            for i in range(4)
        ]

    batched = llm.generate_ids(speech, lens, prompts, max_new_tokens=8)
    assert batched == one_by_one(max_new_tokens=8)
    # Some sequences end on eos before the others: their rows are cut, the others go on.
    assert sorted(len(ids) for ids in batched)[0] < 8 == max(len(ids) for ids in batched)
    assert len({tuple(ids) for ids in batched}) == 4  # outputs depend on prompt and speech
    texts = llm.generate(speech, lens, prompts, max_new_tokens=8, batch_size=3)
    assert texts == [llm.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in batched]

    # Make a token generated early by one sequence an eos: it stops, the others go on.
    stop = batched[0][2]
    assert stop not in batched[1] + batched[2] + batched[3]
    monkeypatch.setattr(llm, "eos_ids", sorted(set(llm.eos_ids) | {stop}))
    stopped = llm.generate_ids(speech, lens, prompts, max_new_tokens=8)
    assert stopped[0] == batched[0][: batched[0].index(stop)]
    assert stopped[1:] == batched[1:]
    assert stopped == one_by_one(max_new_tokens=8)


def test_assistant_prefix_in_generation(llm):
    speech, lens = speech_batch(llm, seed=4)
    prompts = ["<speech>\nrepeat the text", "<speech> once"]
    prefixed = llm.generate_ids(speech, lens, prompts, max_new_tokens=4, assistant_prefix="it is")
    singles = [
        llm.generate_ids(speech[i : i + 1], lens[i : i + 1], prompts[i], 4, "it is")[0]
        for i in range(2)
    ]
    assert prefixed == singles
    assert prefixed != llm.generate_ids(speech, lens, prompts, max_new_tokens=4)


def test_generate_continues_the_teacher_forced_answer(llm):
    """Greedy decoding and forward() agree: each generated token is the argmax logit."""
    speech, lens = speech_batch(llm, seed=2)
    ids = llm.generate_ids(speech[:1], lens[:1], PROMPTS[:1], max_new_tokens=5)
    inputs = llm.build_inputs(speech[:1], lens[:1], PROMPTS[:1], padding_side="left")
    generated = []
    embeds = inputs["inputs_embeds"]
    for _ in range(5):
        with torch.no_grad():
            logits = llm.model(inputs_embeds=embeds).logits[0, -1]
        token = int(logits.argmax())
        if token in llm.eos_ids:
            break
        generated.append(token)
        embeds = torch.cat([embeds, llm.embed(torch.tensor([[token]]))], dim=1)
    assert ids[0] == generated


def test_embedding_table_shares_llm_weights(llm):
    table = llm.embedding_table()
    weight = llm.model.get_input_embeddings().weight
    assert table.weight.data_ptr() == weight.data_ptr()
    assert table.pad_id == llm.pad_id
    assert torch.equal(table(torch.tensor([3])), llm.embed(torch.tensor([3])).float())


def test_bos_added_once_when_the_template_lacks_it(folder, tmp_path):
    """Templates without ``bos_token`` (the tokenizer adds one to plain text) get it once."""
    copy = tmp_path / "no_bos"
    shutil.copytree(folder, copy)
    template = (copy / "chat_template.jinja").read_text()
    assert "{{- bos_token }}" in template
    (copy / "chat_template.jinja").write_text(template.replace("{{- bos_token }}", ""))
    model = FrozenLLM(copy, dtype="float32")
    before, _ = model.prompt_ids(PROMPTS[0])
    bos = model.tokenizer.bos_token_id
    assert before[0] == bos and before.count(bos) == 1
    reference = FrozenLLM(folder, dtype="float32")
    assert reference.prompt_ids(PROMPTS[0]) == model.prompt_ids(PROMPTS[0])
    with pytest.raises(ValueError, match="answers"):
        model(*speech_batch(model), PROMPTS, None)


def test_text_only_generation_matches_the_chat_rendered_text(llm):
    """Cascades and judges: a text prompt (no placeholder) is decoded like the same text
    fed through the tokenizer's chat template, batched = one by one."""
    prompts = ["repeat the man was here", "say the house is old", "the"]
    batched = llm.generate_ids(None, None, prompts, max_new_tokens=6)
    singles = [llm.generate_ids(None, None, [p], max_new_tokens=6)[0] for p in prompts]
    assert batched == singles
    text = llm.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompts[0]}], tokenize=False, add_generation_prompt=True
    )
    ids = torch.tensor([llm.tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        first = int(llm.model(input_ids=ids).logits[0, -1].argmax())
    assert batched[0][:1] == ([] if first in llm.eos_ids else [first])
    assert llm.generate_text(prompts, max_new_tokens=6) == llm.decode_ids(batched)
    with pytest.raises(ValueError, match="still holds the speech placeholder"):
        llm.generate_text(["<speech> repeat"], max_new_tokens=2)


def test_repetition_guard_stops_and_trims_stuck_generations(llm, monkeypatch):
    """A model stuck on one token (App. B.2) is stopped by the guard and trimmed to one copy."""
    from speechmapper_plugin.evaluation.decoding import RepetitionGuard, is_stuck

    speech, lens = speech_batch(llm, seed=4)
    stuck_token = llm.tokenizer("house", add_special_tokens=False)["input_ids"][-1]
    bias = torch.zeros(llm.model.config.vocab_size)
    bias[stuck_token] = 1e4  # every step's argmax: the model is stuck on "house"

    def forced(module, args, output):
        return output + bias

    handle = llm.model.lm_head.register_forward_hook(forced)
    try:
        free = llm.generate_ids(speech, lens, "<speech> repeat", max_new_tokens=20)
        guard = RepetitionGuard(max_repeats=5, max_ngram=4, min_tokens=5)
        guarded = llm.generate_ids(speech, lens, "<speech> repeat", max_new_tokens=20, guard=guard)
    finally:
        handle.remove()
    assert free == [[stuck_token] * 20] * len(free)
    assert all(is_stuck(ids, 20) for ids in free)
    assert guarded == [[stuck_token]] * len(free)
    assert guard.stopped == len(free)


def test_check_positions_refuses_what_does_not_fit(llm):
    """Prompt + speech vectors + new tokens beyond max_position_embeddings: refused, listing
    every input over the limit (issue 17: 3,750 vectors fed to 2,048 positions)."""
    from speechmapper_plugin.models.frozen_llm import InputTooLong

    limit = llm.max_positions
    assert limit == llm.model.config.max_position_embeddings
    before, after = llm.prompt_ids("<speech>\nrepeat")
    room = limit - len(before) - len(after) - 10
    llm.check_positions(["<speech>\nrepeat"] * 2, [room, 5], max_new_tokens=10)  # fits exactly
    with pytest.raises(InputTooLong) as err:
        llm.check_positions(["<speech>\nrepeat"] * 3, [5, room + 1, 3750], max_new_tokens=10)
    tokens = len(before) + len(after)
    assert err.value.rows == [(1, room + 1, tokens), (2, 3750, tokens)]
    assert (err.value.limit, err.value.max_new_tokens) == (limit, 10)
    assert str(err.value).startswith(
        f"2 input(s) do not fit in the {limit} positions of {llm.source} "
        f"(max_position_embeddings), e.g. input 1: {room + 1} speech vectors + {tokens} prompt "
        f"tokens + 10 new tokens = {limit + 1}."
    )
    # text-only prompts (cascades, topline) are checked too
    with pytest.raises(InputTooLong, match="input 0: 0 speech vectors"):
        llm.check_positions(["word " * limit], None, max_new_tokens=1)


@pytest.mark.parametrize("lever", ["reuse_prompt_prefix", "causal_mask_only"])
def test_training_speed_levers_keep_loss_and_gradients(llm, lever):
    """Reusing the shared prompt prefix's keys/values, or no attention mask for right-padded
    batches: the same CE and speech gradients as the plain forward (fp32)."""
    prompts = ["<speech>\nrepeat", "<speech>\nrepeat the text", "<speech> now"]
    answers = ["the cat sat", "the dog", "ran far away on the mat"]
    speech = torch.randn(3, 7, llm.embed_dim, generator=torch.Generator().manual_seed(3))
    lens = torch.tensor([1.0, 0.6, 0.3])

    def run():
        x = speech.clone().requires_grad_(True)
        out = llm(x, lens, prompts, answers)
        out["loss"].backward()
        return out["loss"].detach(), x.grad

    ref_loss, ref_grad = run()
    setattr(llm, lever, True)
    try:
        for _ in range(2):  # the second call reuses the cached prefix
            loss, grad = run()
            torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-7)
        if lever == "reuse_prompt_prefix":
            prefix = llm._shared_prefix(prompts, True, 3)
            assert len(prefix) >= 2 and list(llm._prefix_kv) == [(prefix, speech.device, llm.dtype)]
            llm.train()  # a new stage forgets the cached prefixes
            assert llm._prefix_kv == {}
    finally:
        setattr(llm, lever, False)


def test_prefix_is_not_reused_with_trainable_llm_weights(llm):
    llm.reuse_prompt_prefix = True
    try:
        assert llm._shared_prefix(["<speech>"], True, 1)
        weight = llm.model.get_input_embeddings().weight
        weight.requires_grad_(True)  # e.g. trainable LoRA adapters
        assert llm._shared_prefix(["<speech>"], True, 1) == ()
    finally:
        weight.requires_grad_(False)
        llm.reuse_prompt_prefix = False
