"""Tests of ``speechmapper_plugin.models.embeddings`` (the frozen LLM's input-embedding table without the LLM)."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM
from transformers.modeling_utils import PreTrainedModel

from speechmapper_plugin.models import embeddings as embeddings_module
from speechmapper_plugin.models.embeddings import (
    EmbeddingTable,
    find_embedding_tensor_name,
    load_input_embeddings,
)

from .helpers import EMBED_NAME, fake_hub_cache, tokenizer_files


@pytest.fixture
def no_model_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a full model was instantiated")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(refuse))
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)


def test_load_input_embeddings_single_file(folder, no_model_loading):
    weight = load_input_embeddings(folder)
    from safetensors.torch import load_file

    assert torch.equal(weight, load_file(folder / "model.safetensors")[EMBED_NAME])


def test_load_input_embeddings_matches_model(folder, sharded):
    for source in (folder, sharded):
        model = AutoModelForCausalLM.from_pretrained(source)
        expected = model.get_input_embeddings().weight.detach()
        assert torch.equal(load_input_embeddings(source), expected)


def test_load_input_embeddings_sharded_opens_one_shard(sharded, no_model_loading, monkeypatch):
    opened = []
    real_open = embeddings_module.safe_open

    def spy(path, *args, **kwargs):
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(embeddings_module, "safe_open", spy)
    weight = load_input_embeddings(sharded)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    shard = index["weight_map"][EMBED_NAME]
    assert len(set(index["weight_map"].values())) > 2
    assert {str(sharded / shard)} == set(opened)
    assert weight.shape[1] == 128


def test_load_input_embeddings_keeps_bf16(folder, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(folder).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    weight = load_input_embeddings(tmp_path)
    assert weight.dtype == torch.bfloat16
    assert torch.equal(weight, model.get_input_embeddings().weight)


def test_load_input_embeddings_from_hub_fetches_one_shard(
    offline, sharded, tmp_path, no_model_loading
):
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    shard = index["weight_map"][EMBED_NAME]
    files = tokenizer_files(sharded) + ["model.safetensors.index.json", shard]
    snapshot = fake_hub_cache(tmp_path, "acme/tiny-sharded", sharded, files)
    weight = load_input_embeddings("acme/tiny-sharded", cache_dir=tmp_path)
    assert torch.equal(weight, load_input_embeddings(sharded))
    table = EmbeddingTable.from_pretrained("acme/tiny-sharded", cache_dir=tmp_path)
    assert table.pad_token == "<|finetune_right_pad_id|>"
    # The other shards are not there: the full model cannot be built from this cache.
    (snapshot / shard).unlink()
    with pytest.raises(OSError, match=f"huggingface-cli download acme/tiny-sharded {shard}"):
        load_input_embeddings("acme/tiny-sharded", cache_dir=tmp_path)


def test_find_embedding_tensor_name():
    names = ["lm_head.weight", "model.layers.0.mlp.up_proj.weight", EMBED_NAME]
    assert find_embedding_tensor_name(names) == EMBED_NAME
    assert find_embedding_tensor_name(["transformer.wte.weight", "lm_head.weight"]) == (
        "transformer.wte.weight"
    )
    assert find_embedding_tensor_name(names, tensor_name="lm_head.weight") == "lm_head.weight"
    with pytest.raises(ValueError, match="tensor_name"):
        find_embedding_tensor_name(["a.embed_tokens.weight", "b.embed_tokens.weight"])
    with pytest.raises(KeyError, match="ckpt"):
        find_embedding_tensor_name(["lm_head.weight"], "ckpt")
    with pytest.raises(KeyError, match="nope"):
        find_embedding_tensor_name(names, tensor_name="nope")


def test_load_input_embeddings_errors(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_input_embeddings(tmp_path)
    from safetensors.torch import save_file

    save_file({"model.embed_tokens.weight": torch.zeros(10, 4)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="hidden size is 8"):
        load_input_embeddings(tmp_path)


def test_table_is_a_frozen_non_persistent_buffer(table, folder):
    assert list(table.parameters()) == []
    assert table.state_dict() == {}
    assert table.tokenizer is not None
    assert table.pad_id == table.tokenizer.convert_tokens_to_ids("<|finetune_right_pad_id|>")
    assert torch.equal(table.weight, load_input_embeddings(folder))
    half = EmbeddingTable(table.weight.to(torch.bfloat16), table.pad_id)
    assert half.weight.dtype == torch.bfloat16
    assert half(torch.tensor([1, 2])).dtype == torch.float32


def test_nearest_chunks_match_brute_force(table):
    pred = torch.randn(3, 9, table.embed_dim, generator=torch.Generator().manual_seed(1)) * 0.05
    lens = torch.tensor([1.0, 0.5, 0.8])
    chunked = EmbeddingTable(table.weight, pad_id=table.vocab_size - 1, chunk_size=7)
    chunked_ids = chunked.nearest(pred, lens)
    for row, count in enumerate([9, 4, 7]):  # round(lens * 9), no pad in this vocab slice
        brute = torch.cdist(pred[row, :count], table.weight).argmin(-1).tolist()
        if table.vocab_size - 1 in brute:
            brute = brute[: brute.index(table.vocab_size - 1)]
        assert chunked_ids[row] == brute
