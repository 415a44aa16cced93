"""Tests of ``speechmapper_plugin.models.objectives.Stage1Objective``: the stage-1 step as one
graph gives the same losses and gradients as the eager step, with and without bucket padding
(fp32, CPU)."""

import pytest
import torch

from speechmapper_plugin.data.padding import BucketPaddedBatch
from speechmapper_plugin.models.embeddings import EmbeddingTable
from speechmapper_plugin.models.losses import SpeechMapperLoss
from speechmapper_plugin.models.objectives import Stage1Objective
from speechmapper_plugin.models.speechmapper import SpeechMapper
from speechmapper_plugin.training.speed import compile_objective

VOCAB, DIM, FEAT = 30, 16, 8
TOKENS = [[1, 2, 3, 4], [5], [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]]


def _setup(seed=0):
    torch.manual_seed(seed)
    proj = SpeechMapper(FEAT, [16, 24], [24, DIM], num_layers=1, nhead=2, dropout=0.0)
    table = EmbeddingTable(torch.randn(VOCAB, DIM) * 0.02, pad_id=VOCAB - 1)
    return proj, table, Stage1Objective(proj, table, SpeechMapperLoss())


def _batch(lengths, multiple, seed=1):
    gen = torch.Generator().manual_seed(seed)
    examples = [
        {"id": f"u{i}", "feats": torch.randn(n, FEAT, generator=gen), "tokens": torch.tensor(t)}
        for i, (n, t) in enumerate(zip(lengths, TOKENS))
    ]
    if multiple:
        return BucketPaddedBatch(multiple)(examples)
    from speechbrain.dataio.batch import PaddedBatch

    return PaddedBatch(examples)


def _step(objective, proj, table, batch):
    feats, lens = batch.feats
    out_len = int(proj.output_lengths(torch.tensor([feats.shape[1]]))[0])
    ids = table.target_ids(TOKENS[: len(batch.id)], out_len)
    num_tokens = torch.tensor([len(t) for t in TOKENS[: len(batch.id)]])
    proj.zero_grad(set_to_none=True)
    pred, pred_lens, parts = objective(feats, lens, ids, num_tokens)
    parts["loss"].backward()
    grads = {n: p.grad.clone() for n, p in proj.named_parameters()}
    return pred, pred_lens, parts, grads


def _assert_same(a, b, rtol=1e-5):
    """Equal up to float32 rounding (other shapes sum in another order): each tensor within
    ``rtol`` of its own largest magnitude."""
    _, _, parts_a, grads_a = a
    _, _, parts_b, grads_b = b
    for key in ("loss", "l_mse", "mse_word", "mse_pad", "cosine"):
        torch.testing.assert_close(parts_a[key], parts_b[key], rtol=rtol, atol=1e-6)
    assert int(parts_a["truncated"]) == int(parts_b["truncated"])
    for name in grads_a:
        scale = float(grads_a[name].abs().max())
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("lengths", [[45, 30, 18], [64, 10, 33]])
def test_bucket_padded_batch_gives_the_unpadded_losses_and_gradients(lengths):
    proj, table, objective = _setup()
    proj.train()
    plain = _step(objective, proj, table, _batch(lengths, 0))
    for multiple in (16, 64):
        padded = _step(objective, proj, table, _batch(lengths, multiple))
        assert padded[0].shape[1] > plain[0].shape[1] or max(lengths) % multiple == 0
        _assert_same(plain, padded)
        # The valid output vectors themselves are the same; the padded ones are ignored.
        n_valid = torch.round(plain[1] * plain[0].shape[1]).long()
        for row, n in enumerate(n_valid.tolist()):
            torch.testing.assert_close(padded[0][row, :n], plain[0][row, :n], rtol=1e-5, atol=1e-6)


def test_compiled_step_is_one_graph_with_the_eager_values():
    """``fullgraph=True`` fails on any graph break, i.e. on any host read of a device value in
    projector, target gathering or loss; the values equal the eager ones for every shape."""
    proj, table, objective = _setup()
    proj.train()
    compiled = compile_objective(objective, backend="aot_eager", fullgraph=True)
    for lengths in ([45, 30, 18], [64, 10, 33], [90, 12, 40]):
        batch = _batch(lengths, 16)
        _assert_same(_step(objective, proj, table, batch), _step(compiled, proj, table, batch))


def test_unknown_compile_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="compile_step_mode='fast'"):
        compile_objective(torch.nn.Linear(1, 1), mode="fast")
