"""Tests of ``speechmapper_plugin.models.generation``: the decoding engines (Hugging Face's
dynamic cache, its static cache, static cache + ``torch.compile``) give, batched and sorted by
length, the token ids of one-by-one decoding (fp32)."""

import pytest
import torch
from transformers.generation.configuration_utils import CompileConfig

PROMPTS = [
    "<speech>\nrepeat the text",
    "say <speech> now please",
    "<speech>",
    "the man <speech> was here and there",
    "<speech> once",
]
LENS = [1.0, 3 / 9, 5 / 9, 1 / 9, 7 / 9]


@pytest.fixture
def batch(llm):
    generator = torch.Generator().manual_seed(5)
    return torch.randn(5, 9, llm.embed_dim, generator=generator) * 0.2, torch.tensor(LENS)


def _one_by_one(llm, speech, lens, **kwargs):
    return [
        llm.generate_ids(speech[i : i + 1], lens[i : i + 1], PROMPTS[i : i + 1], **kwargs)[0]
        for i in range(len(PROMPTS))
    ]


def test_static_cache_sorted_sub_batches_equal_one_by_one(llm, batch):
    speech, lens = batch
    single = _one_by_one(llm, speech, lens, max_new_tokens=8)
    assert len({tuple(ids) for ids in single}) == 5
    order = llm._longest_first(speech, lens, PROMPTS, "")
    lengths = [sum(map(len, llm.prompt_ids(p))) + round(n * 9) for p, n in zip(PROMPTS, LENS)]
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    llm.static_cache = True
    try:
        # Sub-batches of 2 (the last one filled up with a copy of its row), in sorted order.
        assert llm.generate_ids(speech, lens, PROMPTS, max_new_tokens=8, batch_size=2) == single
        assert llm.generate_ids(speech, lens, PROMPTS, max_new_tokens=8) == single
    finally:
        llm.static_cache = False
    assert llm.generate_ids(speech, lens, PROMPTS, max_new_tokens=8, batch_size=2) == single


def test_compiled_decoding_steps_equal_one_by_one(llm, batch):
    """Each decoding step compiled (graph capture with the "eager" backend: HF compiles only on
    CUDA unless told otherwise); one graph serves every sub-batch and later call."""
    speech, lens = batch
    single = _one_by_one(llm, speech, lens, max_new_tokens=6)
    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    config = CompileConfig(backend=backend, fullgraph=True, mode=None)
    config._compile_all_devices = True  # allow compilation on CPU (private flag of transformers)
    llm.compile_decoding, llm.decoding_compile_config = True, config
    try:
        assert llm.generate_ids(speech, lens, PROMPTS, max_new_tokens=6, batch_size=2) == single
        assert llm.generate_ids(speech, lens, PROMPTS, max_new_tokens=6, batch_size=2) == single
    finally:
        llm.compile_decoding, llm.decoding_compile_config = False, None
    assert len(graphs) == 1


def test_engine_settings_turn_off_hf_auto_compilation_of_the_static_cache(llm):
    assert llm._engine_settings() == {}
    llm.static_cache = True
    try:
        assert llm._engine_settings() == {"cache_implementation": "static", "disable_compile": True}
    finally:
        llm.static_cache = False
