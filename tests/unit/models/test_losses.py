"""Tests for speechmapper_plugin.models.losses: eq. 1-3 of the paper against an independent
reference implementation (plain Python loops), hand-computed values, masking, gradients,
the truncation counter and argument errors."""

import math

import pytest
import torch

from speechmapper_plugin.models.losses import SpeechMapperLoss, Stage2Loss, pad_aware_mse


def _reference(pred, target, num_tokens, lengths, alpha=5.0, gamma=100.0, scale=1000.0):
    """Stage-1 figures computed with Python floats and loops."""
    B, T, D = target.shape
    pred = pred.double().tolist()
    target = target.double().tolist()
    word_sum = word_count = pad_sum = pad_count = 0.0
    cos_sum = cos_count = 0.0
    for b in range(B):
        valid = int(round(float(lengths[b]) * T))
        for t in range(valid):
            p, q = pred[b][t], target[b][t]
            sq = sum((pi * scale - qi * scale) ** 2 for pi, qi in zip(p, q))
            if t <= int(num_tokens[b]):
                word_sum += sq
                word_count += D
            else:
                pad_sum += sq
                pad_count += D
            dot = sum(pi * qi for pi, qi in zip(p, q))
            norm_p = math.sqrt(sum(pi * pi for pi in p))
            norm_q = math.sqrt(sum(qi * qi for qi in q))
            cos_sum += dot / (norm_p * norm_q)
            cos_count += 1
    mse_word = word_sum / word_count if word_count else 0.0
    mse_pad = pad_sum / pad_count if pad_count else 0.0
    l_mse = alpha * mse_word + (10 - alpha) * mse_pad
    cosine = cos_sum / cos_count if cos_count else 0.0
    return {
        "mse_word": mse_word,
        "mse_pad": mse_pad,
        "l_mse": l_mse,
        "cosine": cosine,
        "loss": l_mse - gamma * cosine,
    }


def _random_case(seed, B, T, D, valid, num_tokens, garbage=True):
    """Embedding-scale tensors (std 0.02) with huge finite garbage beyond the valid length."""
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(B, T, D, generator=gen) * 0.02
    target = torch.randn(B, T, D, generator=gen) * 0.02
    if garbage:
        for b, v in enumerate(valid):
            pred[b, v:] = torch.randn(T - v, D, generator=gen) * 1e3
            target[b, v:] = torch.randn(T - v, D, generator=gen) * -1e3
    lengths = torch.tensor([v / T for v in valid])
    return pred, target, torch.tensor(num_tokens), lengths


def _assert_close(out, ref, keys=("mse_word", "mse_pad", "l_mse", "cosine", "loss")):
    for key in keys:
        assert out[key].item() == pytest.approx(ref[key], rel=1e-4, abs=1e-5), key


CASES = [
    # (B, T, D, valid lengths, num_tokens)
    (1, 6, 4, [6], [2]),  # full length
    (3, 10, 5, [10, 7, 4], [3, 2, 1]),  # padding garbage beyond 7 and 4
    (2, 8, 3, [5, 8], [7, 9]),  # num_tokens >= valid length: no pad position at all
    (2, 8, 3, [5, 8], [5, 8]),  # num_tokens == valid length
    (3, 9, 6, [1, 9, 3], [0, 4, 5]),  # valid length 1, zero tokens (only the first pad)
    (4, 12, 2, [12, 11, 6, 2], [0, 11, 2, 1]),
]


@pytest.mark.parametrize("alpha, gamma, scale", [(5.0, 100.0, 1000.0), (2.0, 10.0, 100.0)])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_stage1_loss_matches_reference(case, alpha, gamma, scale):
    B, T, D, valid, num_tokens = CASES[case]
    pred, target, ntok, lengths = _random_case(case, B, T, D, valid, num_tokens)
    out = SpeechMapperLoss(alpha=alpha, gamma=gamma, scale=scale)(pred, target, ntok, lengths)
    ref = _reference(pred, target, ntok, lengths, alpha, gamma, scale)
    _assert_close(out, ref)
    if all(n >= v for n, v in zip(num_tokens, valid)):
        assert out["mse_pad"].item() == 0.0


@pytest.mark.parametrize("case", range(len(CASES)))
def test_pad_aware_mse_and_stage2_match_reference(case):
    B, T, D, valid, num_tokens = CASES[case]
    pred, target, ntok, lengths = _random_case(100 + case, B, T, D, valid, num_tokens)
    ref = _reference(pred, target, ntok, lengths, alpha=3.0)
    out = pad_aware_mse(pred, target, ntok, lengths, alpha=3.0, scale=1000.0)
    _assert_close(out, ref, keys=("mse_word", "mse_pad", "l_mse"))
    assert out["truncated"] == sum(n > v for n, v in zip(num_tokens, valid))
    ce = torch.tensor(2.5)
    out2 = Stage2Loss(sigma=0.7, alpha=3.0)(ce, pred, target, ntok, lengths)
    assert out2["mse"].item() == pytest.approx(ref["l_mse"], rel=1e-4)
    assert out2["loss"].item() == pytest.approx(0.3 * 2.5 + 0.7 * ref["l_mse"], rel=1e-4)
    assert out2["ce"] is ce


def test_padding_values_do_not_matter():
    B, T, D, valid, num_tokens = 3, 10, 4, [10, 6, 3], [2, 3, 4]
    pred, target, ntok, lengths = _random_case(7, B, T, D, valid, num_tokens, garbage=False)
    loss = SpeechMapperLoss()
    clean = loss(pred, target, ntok, lengths)
    pred2, target2 = pred.clone(), target.clone()
    pred2[1, 6:], target2[1, 6:] = 5e3, -7e3
    pred2[2, 3:] = torch.arange(7 * D, dtype=torch.float32).view(7, D)
    dirty = loss(pred2, target2, ntok, lengths)
    for key in ("loss", "mse_word", "mse_pad", "cosine"):
        assert dirty[key].item() == pytest.approx(clean[key].item(), rel=1e-6), key


def test_non_finite_padding_does_not_poison_the_loss():
    pred, target, ntok, lengths = _random_case(8, 2, 6, 3, [6, 3], [2, 1], garbage=False)
    clean = SpeechMapperLoss()(pred, target, ntok, lengths)
    pred2 = pred.clone()
    pred2[1, 3:] = float("nan")
    pred2[1, 4:] = float("inf")
    pred2.requires_grad_(True)
    dirty = SpeechMapperLoss()(pred2, target, ntok, lengths)
    assert dirty["loss"].item() == pytest.approx(clean["loss"].item(), rel=1e-6)
    dirty["loss"].backward()
    assert torch.isfinite(pred2.grad).all()


def _hand_case():
    """Two utterances, T=4, D=2 (values are given unscaled; see the expected numbers)."""
    pred = torch.zeros(2, 4, 2)
    target = torch.zeros(2, 4, 2)
    # utt 0: 1 valid position (lengths 0.25), 0 tokens -> word = {0}; rest is garbage.
    pred[0, 0], target[0, 0] = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0])  # se 1, cos 1
    pred[0, 1:], target[0, 1:] = 9.0, -9.0
    # utt 1: 4 valid positions, 2 tokens -> word = {0, 1, 2}, pad = {3}.
    pred[1, :3], target[1, :3] = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0])  # se 2, cos 0
    pred[1, 3], target[1, 3] = torch.tensor([0.0, 3.0]), torch.tensor([0.0, 1.0])  # se 4, cos 1
    return pred, target, torch.tensor([0, 2]), torch.tensor([0.25, 1.0])


def test_stage1_hand_computed_values():
    # mse_word = (1 + 3 * 2) / (4 positions * 2 dims) = 0.875 (pooled, not per utterance);
    # mse_pad = 4 / 2 = 2; L_MSE = 5 * 0.875 + 5 * 2 = 14.375;
    # cosine = (1 + 0 + 0 + 0 + 1) / 5 = 0.4 (pooled); loss = 14.375 - 100 * 0.4 = -25.625.
    pred, target, ntok, lengths = _hand_case()
    out = SpeechMapperLoss(alpha=5.0, gamma=100.0, scale=1.0)(pred, target, ntok, lengths)
    assert out["mse_word"].item() == pytest.approx(0.875)
    assert out["mse_pad"].item() == pytest.approx(2.0)
    assert out["l_mse"].item() == pytest.approx(14.375)
    assert out["cosine"].item() == pytest.approx(0.4)
    assert out["loss"].item() == pytest.approx(-25.625)
    # alpha shifts the word/pad balance: 2 * 0.875 + 8 * 2 = 17.75
    out = SpeechMapperLoss(alpha=2.0, gamma=10.0, scale=1.0)(pred, target, ntok, lengths)
    assert out["loss"].item() == pytest.approx(17.75 - 4.0)


def test_scale_multiplies_both_tensors_before_the_squared_error():
    pred, target, ntok, lengths = _hand_case()
    out = SpeechMapperLoss(scale=1000.0)(pred / 1000, target / 1000, ntok, lengths)
    assert out["l_mse"].item() == pytest.approx(14.375, rel=1e-5)
    assert out["cosine"].item() == pytest.approx(0.4, rel=1e-5)  # cosine is scale-free
    # The docstring example of App. A.3: a 1e-3 error per dim becomes an MSE of 1.
    one = pad_aware_mse(
        torch.zeros(1, 4, 2), torch.full((1, 4, 2), 1e-3), torch.tensor([1]), torch.ones(1)
    )
    assert one["mse_word"].item() == pytest.approx(1.0, rel=1e-5)
    assert one["l_mse"].item() == pytest.approx(10.0, rel=1e-5)


def test_perfect_prediction_gives_minus_gamma():
    target = torch.randn(2, 5, 8) * 0.01
    out = SpeechMapperLoss(gamma=100.0)(
        target.clone(), target, torch.tensor([2, 4]), torch.tensor([1.0, 0.6])
    )
    assert out["l_mse"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["cosine"].item() == pytest.approx(1.0, abs=1e-6)
    assert out["loss"].item() == pytest.approx(-100.0, abs=1e-4)


def test_stage2_hand_computed_values():
    pred, target, ntok, lengths = _hand_case()
    ce = torch.tensor(3.0)
    out = Stage2Loss(sigma=0.9, alpha=5.0, scale=1.0)(ce, pred, target, ntok, lengths)
    assert out["mse"].item() == pytest.approx(14.375)
    assert out["mse_word"].item() == pytest.approx(0.875)
    assert out["mse_pad"].item() == pytest.approx(2.0)
    assert out["loss"].item() == pytest.approx(0.1 * 3.0 + 0.9 * 14.375)
    assert "cosine" not in out  # eq. 3 has no cosine term
    out = Stage2Loss(sigma=1.0, scale=1.0)(ce, pred, target, ntok, lengths)
    assert out["loss"].item() == pytest.approx(14.375)


def test_stage2_sigma_zero_is_plain_ce_without_mse_inputs():
    ce = torch.tensor(1.7, requires_grad=True)
    out = Stage2Loss(sigma=0.0)(ce)
    assert out["loss"] is ce
    assert out["mse"].item() == 0.0
    pred, target, ntok, lengths = _hand_case()
    out = Stage2Loss(sigma=0.0, scale=1.0)(ce, pred, target, ntok, lengths)
    assert out["loss"].item() == pytest.approx(1.7)
    assert out["mse"].item() == pytest.approx(14.375)


def test_half_precision_inputs_are_computed_in_float32():
    pred, target, ntok, lengths = _random_case(3, 2, 6, 4, [6, 4], [2, 1], garbage=False)
    pred_bf, target_bf = pred.bfloat16(), target.bfloat16()
    out = SpeechMapperLoss()(pred_bf, target_bf, ntok, lengths)
    assert out["loss"].dtype == torch.float32
    _assert_close(out, _reference(pred_bf.float(), target_bf.float(), ntok, lengths))


@pytest.mark.parametrize("stage", [1, 2])
def test_gradients_reach_pred_only_through_valid_positions(stage):
    pred, target, ntok, lengths = _random_case(11, 3, 8, 4, [8, 5, 1], [3, 1, 0])
    pred.requires_grad_(True)
    if stage == 1:
        loss = SpeechMapperLoss()(pred, target, ntok, lengths)["loss"]
    else:
        ce = torch.tensor(2.0, requires_grad=True)
        loss = Stage2Loss(sigma=0.5)(ce, pred, target, ntok, lengths)["loss"]
        loss.backward(retain_graph=True)
        assert ce.grad.item() == pytest.approx(0.5)
        pred.grad = None
    loss.backward()
    grad = pred.grad
    for b, v in enumerate([8, 5, 1]):
        assert torch.all(grad[b, v:] == 0), f"utterance {b}: gradient leaks into padding"
        assert torch.all(grad[b, :v].abs().sum(-1) > 0), (
            f"utterance {b}: valid position without gradient"
        )


def test_truncation_counter_counts_targets_longer_than_the_output():
    loss = SpeechMapperLoss()
    pred, target, _, lengths = _random_case(5, 3, 6, 2, [6, 3, 2], [0, 0, 0], garbage=False)
    loss(pred, target, torch.tensor([7, 3, 3]), lengths)  # 7 > 6, 3 == 3 (not truncated), 3 > 2
    assert (loss.truncated, loss.seen) == (2, 3)
    loss(pred, target, torch.tensor([1, 4, 1]), lengths)  # 4 > 3
    assert (loss.truncated, loss.seen) == (3, 6)
    stage2 = Stage2Loss(sigma=0.5)
    stage2(torch.tensor(1.0), pred, target, torch.tensor([9, 9, 0]), lengths)
    assert (stage2.truncated, stage2.seen) == (2, 3)


def test_shape_mismatch_is_a_value_error_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 5, 4\).*\(2, 6, 4\)"):
        SpeechMapperLoss()(
            torch.zeros(2, 5, 4), torch.zeros(2, 6, 4), torch.tensor([1, 1]), torch.ones(2)
        )
    with pytest.raises(ValueError, match="differ"):
        Stage2Loss()(
            torch.tensor(1.0),
            torch.zeros(1, 3, 4),
            torch.zeros(1, 3, 5),
            torch.tensor([1]),
            torch.ones(1),
        )


@pytest.mark.parametrize("alpha", [-1.0, 10.5])
def test_alpha_outside_range_is_a_value_error(alpha):
    args = torch.zeros(1, 3, 2), torch.zeros(1, 3, 2), torch.tensor([1]), torch.ones(1)
    with pytest.raises(ValueError, match=f"alpha={alpha}"):
        SpeechMapperLoss(alpha=alpha)(*args)
    with pytest.raises(ValueError, match=f"alpha={alpha}"):
        Stage2Loss(alpha=alpha)(torch.tensor(1.0), *args)


@pytest.mark.parametrize("sigma", [-0.1, 1.5])
def test_sigma_outside_range_is_a_value_error(sigma):
    with pytest.raises(ValueError, match=f"sigma={sigma}"):
        Stage2Loss(sigma=sigma)


def test_stage2_with_mse_weight_needs_the_mse_inputs():
    with pytest.raises(ValueError, match="pred, target, num_tokens and lengths"):
        Stage2Loss(sigma=0.9)(torch.tensor(1.0))
