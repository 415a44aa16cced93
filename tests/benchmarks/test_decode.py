"""Part ``decode`` of benchmarks/benchmark.py: batched greedy decoding vs one by one.

The exact identity checks use ``--llm-dtype fp32``: in bf16, left padding changes the
reduction shapes, and the near-flat logits of a random-init LLM can then flip a greedy choice
(the benchmark reports it; it is not an error of batching).
"""

import pytest
import torch

from benchmarks import benchmark, decode
from benchmarks.common import TINY_LLM, load_llm_config
from benchmarks.training import ConfigBuiltLLM, build_llm

TINY = ["--tiny", "--parts", "decode", "--no-append", "--device", "cpu"]


def table_rows(text):
    """The Markdown table rows of the printed report, name -> value."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and line.count(" | ") >= 1:
            name, value = line[2:-2].split(" | ", 1)
            rows[name] = value
    return rows


@pytest.fixture(scope="module")
def tiny_llm():
    torch.manual_seed(0)
    config = load_llm_config("llama-3.1-8b-instruct", TINY_LLM)
    model = build_llm(config, torch.device("cpu"), "sdpa", dtype=torch.float32)
    vocab = config.vocab_size
    return ConfigBuiltLLM(model, [1, 2, 3, 4, 5, 6], [7, 8, 9], {}, vocab - 1, vocab - 2)


def test_left_padded_batch_equals_one_by_one(tiny_llm):
    # Lengths 17, 3, 9, 6 in one batch: three rows are left-padded, one of them by 14 vectors.
    # Right padding or an all-ones attention mask makes the padded rows differ here.
    generator = torch.Generator().manual_seed(0)
    vectors = [torch.randn(n, tiny_llm.embed_dim, generator=generator) for n in (17, 3, 9, 6)]
    speech, lens = decode.pad_vectors(vectors)
    batched = tiny_llm.generate_ids(speech, lens, "<speech>", max_new_tokens=12)
    single = decode.decode_one_by_one(tiny_llm, vectors, 12)
    assert batched == single
    assert [len(ids) for ids in batched] == [12] * 4
    assert len({tuple(ids) for ids in single}) == 4  # the speech drives the outputs
    # Sub-batches of 3 (and a last one of 1), sorted by length, map back to the original order,
    # with every engine (the static cache fills the last batch up with a copy of its row).
    for engine in ("dynamic", "static"):
        decode.set_engine(tiny_llm, engine)
        assert decode.decode_batched(tiny_llm, vectors, 3, 12) == single
    decode.set_engine(tiny_llm, "dynamic")


def test_tiny_run_fp32_identical_and_consistent(capsys):
    results = benchmark.main(TINY + ["--llm-dtype", "fp32", "--decode-engine", "static"])
    results = results["decode"]
    rows = table_rows(capsys.readouterr().out)
    assert results["total"] == 4 and results["engine"] == "static"
    assert results["identical"] == 4 and results["first_divergence"] == []
    assert results["llm_dtype"] == "fp32"
    assert results["speedup"] == pytest.approx(
        results["batched_utt_per_s"] / results["single_utt_per_s"]
    )
    assert results["batched_utt_per_s"] == pytest.approx(4 / results["batched_s"])
    assert results["single_utt_per_s"] == pytest.approx(4 / results["single_s"])
    assert results["tokens_per_s"] == pytest.approx(
        results["generated_tokens"] / results["batched_s"]
    )
    assert results["max_new_tokens"] == 8 and 0 < results["generated_tokens"] <= 4 * 8
    assert "**Decoding**" in rows
    assert rows["Identical outputs (engine vs one-by-one, first 4)"].startswith("**4 / 4**")
    assert "fp32" in rows["LLM"]
    assert f"**{results['speedup']:.2f} x**" == rows["Speedup (batched engine / one-by-one utt/s)"]
    assert "HF static KV cache (eager)" in rows["Batched, static engine"]
    assert "4 / 4 outputs identical to the engine's" in rows["Batched, dynamic cache (reference)"]
    assert (
        f"**{results['single_utt_per_s']:.2f} utterances/s**"
        in rows["One-by-one (paper's protocol)"]
    )
    for name in ("Utterances", "Generated tokens", "Peak memory"):
        assert name in rows
    assert "excluded from the timings" in " ".join(rows).lower()


def test_mismatch_is_counted_and_located(capsys, monkeypatch):
    # Default bf16 LLM; one one-by-one output is altered at generated position 2.
    real = decode.decode_one_by_one

    def altered(llm, vectors, max_new_tokens):
        outputs = real(llm, vectors, max_new_tokens)
        if len(vectors) > 1:  # not the one-utterance warm-up
            outputs[1] = outputs[1][:2] + [outputs[1][2] + 1] + outputs[1][3:]
        return outputs

    monkeypatch.setattr(decode, "decode_one_by_one", altered)
    results = benchmark.main(TINY)["decode"]
    rows = table_rows(capsys.readouterr().out)
    assert results["llm_dtype"] == "bf16"
    assert results["identical"] <= 3 and 2 in results["first_divergence"]
    identity = rows["Identical outputs (engine vs one-by-one, first 4)"]
    assert identity.startswith(f"**{results['identical']} / 4**")
    assert f"min {min(results['first_divergence'])}" in identity
