"""Tests for speechmapper_plugin.evaluation.noise_injection: the perturbation of Algorithm 1
(per dimension) and of App. A.3's text (per token), its seeding, the transcript embeddings
fed to the LLM, and the embedding-error-threshold rule."""

import pytest
import torch

from speechmapper_plugin.evaluation.noise_injection import (
    check_degrees,
    degree_label,
    eet_label,
    embedding_error_threshold,
    noise_generator,
    noisy_transcript_embeddings,
    perturb,
    system_label,
)
from speechmapper_plugin.models.embeddings import EmbeddingTable
from speechmapper_plugin.tiny.llm import train_tokenizer

# ----------------------------------------------------------------------------------------
# The perturbation
# ----------------------------------------------------------------------------------------


def offsets(mode, degree=1e-2, tokens=400, dim=64, seed=0):
    """The integer multiples r drawn by ``perturb`` on [tokens, dim] embeddings."""
    base = torch.randn(tokens, dim, generator=torch.Generator().manual_seed(123))
    noisy = perturb(base, degree, mode, torch.Generator().manual_seed(seed))
    return (noisy - base) / degree


@pytest.mark.parametrize("mode", ["per_dimension", "per_token"])
def test_offsets_are_multiples_one_to_nine_of_the_degree(mode):
    r = offsets(mode)
    assert torch.allclose(r, r.round(), atol=1e-3)
    values = set(r.round().long().unique().tolist())
    assert values == set(range(1, 10))  # every candidate i x d, i = 1..9, and only those


def test_per_dimension_draws_every_dimension_independently():
    r = offsets("per_dimension").round()
    # Algorithm 1: a new draw for each dimension, uniform over 1..9 (mean 5, variance 20/3)
    assert (r.std(dim=1) > 1.5).all()  # every token's dimensions differ
    assert abs(r.mean().item() - 5.0) < 0.05
    assert abs(r.var().item() - 20 / 3) < 0.15
    counts = torch.bincount(r.long().flatten(), minlength=10)[1:].float()
    assert (counts / counts.sum() - 1 / 9).abs().max() < 0.01
    # neighbouring dimensions are uncorrelated
    first, second = r[:, :-1].flatten(), r[:, 1:].flatten()
    assert abs(torch.corrcoef(torch.stack([first, second]))[0, 1].item()) < 0.03


def test_per_token_adds_one_offset_to_every_dimension():
    r = offsets("per_token", tokens=2000).round()
    assert torch.equal(r, r[:, :1].expand_as(r))  # one offset per token, on all dimensions
    per_token = r[:, 0]
    assert per_token.std() > 2.0  # tokens get different offsets
    assert abs(per_token.mean().item() - 5.0) < 0.2


@pytest.mark.parametrize("mode", ["per_dimension", "per_token"])
def test_degree_zero_is_the_identity(mode):
    base = torch.randn(3, 5, 16)
    assert torch.equal(perturb(base, 0.0, mode, torch.Generator().manual_seed(1)), base)


def test_perturbation_keeps_dtype_and_device():
    base = torch.randn(4, 8, dtype=torch.float64)
    out = perturb(base, 1e-3, "per_dimension", torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64 and out.shape == base.shape


def test_bad_mode_and_degrees_name_the_key():
    with pytest.raises(ValueError, match=r"noise_mode='gaussian'.*per_dimension"):
        perturb(torch.zeros(2, 2), 1e-3, "gaussian")
    with pytest.raises(ValueError, match=r"noise_degrees: -0\.1 must be a finite number >= 0"):
        check_degrees([0, -0.1])
    with pytest.raises(ValueError, match=r"noise_degrees: 'big' is not a number"):
        check_degrees([0, "big"])
    with pytest.raises(ValueError, match=r"listed twice"):
        check_degrees([0, 1e-3, 0.001])
    with pytest.raises(TypeError, match="floating point"):
        perturb(torch.zeros(2, 2, dtype=torch.long), 1e-3)


def test_seeds_reproduce_and_differ():
    def draw(seed, utt):
        return perturb(torch.zeros(6, 32), 1e-2, "per_dimension", noise_generator(seed, utt))

    assert torch.equal(draw(1986, "1-2-3"), draw(1986, "1-2-3"))
    assert not torch.equal(draw(1986, "1-2-3"), draw(1987, "1-2-3"))
    assert not torch.equal(draw(1986, "1-2-3"), draw(1986, "1-2-4"))


# ----------------------------------------------------------------------------------------
# The transcript embeddings that go into the speech slot
# ----------------------------------------------------------------------------------------

TEXTS = ["the cat sat on the mat", "a dog ran", "the old man saw the dog"]


@pytest.fixture(scope="module")
def table():
    tokenizer = train_tokenizer(TEXTS + ["the cat ran on a mat", "an old dog sat"])
    pad = tokenizer.convert_tokens_to_ids("<|finetune_right_pad_id|>")
    weight = 0.02 * torch.randn(len(tokenizer), 32, generator=torch.Generator().manual_seed(0))
    return EmbeddingTable(weight, pad_id=pad, tokenizer=tokenizer)


def test_slot_holds_the_stage1_target_tokens_without_pad_tail(table):
    speech, lens = noisy_transcript_embeddings(table, TEXTS, ["a", "b", "c"], 0.0)
    ids = table.encode(TEXTS)
    counts = [len(seq) for seq in ids]
    assert speech.shape == (3, max(counts), 32) and speech.dtype == torch.float32
    assert (lens * speech.shape[1]).round().long().tolist() == counts
    for row, seq in enumerate(ids):  # exactly the stage-1 targets' token rows
        assert torch.equal(speech[row, : len(seq)], table.targets([seq], len(seq))[0])
    assert table.decode(speech, lens) == TEXTS


@pytest.mark.parametrize("mode", ["per_dimension", "per_token"])
def test_noise_of_an_utterance_depends_on_its_id_not_on_its_batch(table, mode):
    together, _ = noisy_transcript_embeddings(table, TEXTS, ["a", "b", "c"], 1e-2, mode, 7)
    alone, lens = noisy_transcript_embeddings(table, TEXTS[1:2], ["b"], 1e-2, mode, 7)
    count = int(round(lens[0].item() * alone.shape[1]))
    assert torch.equal(together[1, :count], alone[0, :count])


def test_every_degree_uses_the_same_draws(table):
    clean, lens = noisy_transcript_embeddings(table, TEXTS, ["a", "b", "c"], 0.0)
    small, _ = noisy_transcript_embeddings(table, TEXTS, ["a", "b", "c"], 1e-3)
    large, _ = noisy_transcript_embeddings(table, TEXTS, ["a", "b", "c"], 1e-1)
    count = int(round(lens[0].item() * clean.shape[1]))
    ratio = (large - clean)[0, :count] / (small - clean)[0, :count]
    assert torch.allclose(ratio, torch.full_like(ratio, 100.0), rtol=1e-3)


def test_only_token_rows_are_perturbed(table):
    clean, lens = noisy_transcript_embeddings(table, TEXTS, ["a", "b", "c"], 0.0)
    noisy, _ = noisy_transcript_embeddings(table, TEXTS, ["a", "b", "c"], 1e-2)
    count = int(round(lens[1].item() * clean.shape[1]))
    assert count < clean.shape[1]
    assert torch.equal(noisy[1, count:], clean[1, count:])  # pad rows (never fed) untouched
    assert ((noisy[1, :count] - clean[1, :count]) >= 1e-2 - 1e-6).all()


# ----------------------------------------------------------------------------------------
# The embedding error threshold
# ----------------------------------------------------------------------------------------


def test_eet_reads_table6_as_the_paper_does():
    llama = {0: 1.4, 1e-1: 207.2, 1e-2: 180.0, 1e-3: 1.6, 1e-4: 1.4}
    eurollm = {0: 3.9, 1e-1: 239.3, 1e-2: 13.4, 1e-3: 3.8, 1e-4: 3.8}
    for wers in (llama, eurollm):
        summary = embedding_error_threshold(wers, margin=1.0)
        assert summary["eet"] == 1e-3 and eet_label(summary) == "1e-3"
        assert summary["tolerated"] == [1e-4, 1e-3] and not summary["censored"]
    # a tight margin: Llama's 1e-3 (+0.2 points) is no longer tolerated
    assert embedding_error_threshold(llama, margin=0.1)["eet"] == 1e-4


def test_eet_stops_at_the_first_degree_not_tolerated():
    # 1e-1 happens to be within the margin, but 1e-2 is not: the EET stays 1e-3
    wers = {0: 10.0, 1e-1: 10.5, 1e-2: 60.0, 1e-3: 10.2, 1e-4: 10.0}
    summary = embedding_error_threshold(wers, margin=1.0)
    assert summary["eet"] == 1e-3 and summary["tolerated_above"] == [1e-1]


def test_eet_when_no_degree_or_every_degree_is_tolerated():
    none = embedding_error_threshold({0: 5.0, 1e-4: 50.0, 1e-3: 90.0}, margin=1.0)
    assert none["eet"] is None and eet_label(none) == "< 1e-4"
    every = embedding_error_threshold({0: 5.0, 1e-4: 5.0, 1e-2: 5.9}, margin=1.0)
    assert every["eet"] == 1e-2 and every["censored"] and eet_label(every) == "≥ 1e-2"
    # a lower WER than the clean one is tolerated too
    assert embedding_error_threshold({0: 5.0, 1e-3: 3.0}, margin=0.0)["eet"] == 1e-3


def test_eet_needs_the_clean_wer_and_a_valid_margin():
    with pytest.raises(ValueError, match="add degree 0 to noise_degrees"):
        embedding_error_threshold({1e-3: 2.0, 1e-4: 1.0}, margin=1.0)
    with pytest.raises(ValueError, match="at least one noise degree > 0"):
        embedding_error_threshold({0: 2.0}, margin=1.0)
    with pytest.raises(ValueError, match="eet_margin=-1.0"):
        embedding_error_threshold({0: 2.0, 1e-3: 2.0}, margin=-1)


def test_labels():
    assert [degree_label(d) for d in (0.0, 1e-1, 1.0e-2, 3e-4)] == [
        "no noise",
        "1e-1",
        "1e-2",
        "3e-4",
    ]
    assert system_label("EuroLLM-9B-Instruct", 0, "per_token") == (
        "EuroLLM-9B-Instruct + no noise (per token)"
    )
