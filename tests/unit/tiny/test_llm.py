"""Tests of the offline tiny-LLM builder (tokenizer, HF folder, sharding, idempotence, CLI)."""

import json
import random

import pytest
import torch

from speechmapper_plugin.tiny import llm as tiny_llm
from speechmapper_plugin.tiny.llm import (
    BOS_TOKEN,
    END_OF_TEXT_TOKEN,
    EOT_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    build_tiny_llm,
    train_tokenizer,
)

WORDS = (
    "the of and to in he was that it his her you as had with for she not at but be my on "
    "have him is said me which by so this all from they no were if would or when what there "
    "been one could very an who them mister we now more out do are up their your will little "
    "than then some into any well much about time know should man did like upon such never "
    "only good how before other see must am own come down say after think made might being "
    "mistress again great two can go over too without where first long house old hand eyes "
    "day away nothing head yet life though heard once night door looked always face young"
).split()


def make_corpus(num_sentences=150, seed=0):
    """Lowercase English-like sentences, as MMS-normalized LibriSpeech transcripts."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(num_sentences)
    ]


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


@pytest.fixture(scope="module")
def tokenizer(corpus, tmp_path_factory):
    return train_tokenizer(corpus, tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def model_folder(corpus, tmp_path_factory):
    return build_tiny_llm(tmp_path_factory.mktemp("tiny") / "llm", corpus)


def test_tokenizer_round_trip_and_whole_words(tokenizer, corpus):
    assert tokenizer.is_fast
    for sentence in corpus:
        ids = tokenizer(sentence)["input_ids"]
        assert ids[0] == tokenizer.convert_tokens_to_ids(BOS_TOKEN)
        assert tokenizer.decode(ids, skip_special_tokens=True) == sentence
    words = sorted({word for sentence in corpus for word in sentence.split()})
    single = [w for w in words if len(tokenizer(w, add_special_tokens=False)["input_ids"]) == 1]
    assert len(single) >= 0.9 * len(words)


def test_tokenizer_encodes_any_text_with_byte_fallback(tokenizer):
    text = 'Repeat "THIS" text:\n\nÜber 1234 <b>!'
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_tokenizer_special_tokens_like_llama31(tokenizer):
    ids = [tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS]
    assert len(set(ids)) == len(SPECIAL_TOKENS)
    # Appended after the sentencepiece vocabulary, in Llama-3.1 order.
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert ids[-1] == len(tokenizer) - 1
    assert tokenizer.bos_token == BOS_TOKEN
    assert tokenizer.eos_token == EOT_TOKEN
    assert tokenizer.pad_token is None  # the reserved pad is not the tokenizer's pad
    for token in (PAD_TOKEN, EOT_TOKEN, END_OF_TEXT_TOKEN):
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [
            tokenizer.convert_tokens_to_ids(token)
        ]


def test_chat_template_renders_llama31_turns(tokenizer):
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "<speech> repeat "},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith(BOS_TOKEN + "<|start_header_id|>system<|end_header_id|>\n\n")
    assert "be brief<|eot_id|>" in text
    assert "<|start_header_id|>user<|end_header_id|>\n\n<speech> repeat<|eot_id|>" in text
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    no_prompt = tokenizer.apply_chat_template(messages[1:], tokenize=False)
    assert not no_prompt.endswith("<|end_header_id|>\n\n")
    answer = tokenizer.apply_chat_template(
        messages[1:] + [{"role": "assistant", "content": "the man"}], tokenize=False
    )
    assert answer.endswith("assistant<|end_header_id|>\n\nthe man<|eot_id|>")


def test_bpe_tokenizer_round_trip(corpus):
    tokenizer = train_tokenizer(corpus, model_type="bpe")
    for sentence in corpus[:50]:
        ids = tokenizer(sentence)["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == sentence
    with pytest.raises(ValueError, match="model_type"):
        train_tokenizer(corpus, model_type="word")


def test_empty_corpus_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        train_tokenizer(["", "  "])
    with pytest.raises(ValueError, match="empty"):
        build_tiny_llm(tmp_path / "llm", [])


def test_build_loads_offline_with_auto_classes(model_folder, corpus):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(model_folder)
    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    assert tokenizer.is_fast
    assert model.config.model_type == "llama"
    assert model.config.hidden_size == 128
    assert model.config.num_hidden_layers == 2
    assert model.config.num_attention_heads == 4
    assert model.config.num_key_value_heads == 2
    assert model.config.intermediate_size == 256
    assert model.config.vocab_size == len(tokenizer)
    assert not model.config.tie_word_embeddings
    assert model.dtype == torch.float32
    assert (model_folder / "model.safetensors").is_file()
    assert tokenizer.chat_template is not None
    generation = GenerationConfig.from_pretrained(model_folder)
    assert sorted(generation.eos_token_id) == sorted(
        [
            tokenizer.convert_tokens_to_ids(EOT_TOKEN),
            tokenizer.convert_tokens_to_ids(END_OF_TEXT_TOKEN),
        ]
    )
    assert (
        tokenizer.decode(tokenizer(corpus[0])["input_ids"], skip_special_tokens=True) == corpus[0]
    )
    # The model runs on the tokenizer's ids.
    ids = tokenizer(corpus[:1], return_tensors="pt")["input_ids"]
    assert model(ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_build_is_idempotent_and_deterministic(model_folder, corpus, tmp_path):
    weights = model_folder / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert build_tiny_llm(model_folder, corpus) == model_folder
    assert weights.stat().st_mtime_ns == stamp  # reused, not rebuilt

    from safetensors.torch import load_file

    other = build_tiny_llm(tmp_path / "same", corpus)
    first, second = load_file(weights), load_file(other / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)

    rebuilt = build_tiny_llm(tmp_path / "same", corpus, seed=1)
    third = load_file(rebuilt / "model.safetensors")
    key = "model.embed_tokens.weight"
    assert not torch.equal(first[key], third[key])
    assert json.loads((rebuilt / tiny_llm.BUILD_MANIFEST).read_text())["settings"]["seed"] == 1
    leftovers = [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]
    assert leftovers == []


def test_build_refuses_foreign_folder(tmp_path, corpus):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        build_tiny_llm(tmp_path, corpus)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_sharded_build_matches_single_file(model_folder, corpus, tmp_path):
    from transformers import AutoModelForCausalLM

    sharded = build_tiny_llm(tmp_path / "sharded", corpus, max_shard_size="200KB")
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) > 1
    assert all((sharded / shard).is_file() for shard in shards)
    assert not (sharded / "model.safetensors").exists()
    single = AutoModelForCausalLM.from_pretrained(model_folder).state_dict()
    multi = AutoModelForCausalLM.from_pretrained(sharded).state_dict()
    assert all(torch.equal(single[key], multi[key]) for key in single)


def test_cli_builds_from_text_file(tmp_path, corpus):
    text_file = tmp_path / "corpus.txt"
    text_file.write_text("\n".join(corpus[:40]) + "\n\n")
    folder = tiny_llm.main(
        [
            "--output_folder",
            str(tmp_path / "cli"),
            "--text_file",
            str(text_file),
            "--hidden_size",
            "32",
            "--num_heads",
            "2",
            "--num_kv_heads",
            "1",
        ]
    )
    config = json.loads((folder / "config.json").read_text())
    assert config["hidden_size"] == 32
    assert config["num_key_value_heads"] == 1
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        tiny_llm.main(
            ["--output_folder", str(tmp_path / "x"), "--text_file", str(tmp_path / "missing.txt")]
        )
