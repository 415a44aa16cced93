"""Tests of ``speechmapper_plugin.data.padding``: training batches padded to bucket lengths
keep their utterances and valid frames, and feed the same losses as unpadded batches."""

import pickle

import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch

from speechmapper_plugin.data.padding import BucketPaddedBatch, bucket_length, pad_right_to_bucket


def _examples(lengths, dim=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        {
            "id": f"u{i}",
            "feats": torch.randn(n, dim, generator=gen),
            "tokens": torch.arange(1 + i),
            "num_tokens": 1 + i,
        }
        for i, n in enumerate(lengths)
    ]


@pytest.mark.parametrize("lengths", [[37], [37, 12, 5], [64, 64], [65, 1]])
def test_bucket_padding_keeps_the_valid_frames_and_rescales_lengths(lengths):
    examples = _examples(lengths)
    plain = PaddedBatch(examples)
    padded = BucketPaddedBatch(32)(examples)
    feats, rel = padded.feats
    assert feats.shape[1] == bucket_length(max(lengths), 32) and feats.shape[1] % 32 == 0
    valid = torch.round(rel * feats.shape[1]).long().tolist()
    assert valid == lengths  # the absolute lengths survive the rescaling exactly
    for row, n in enumerate(lengths):
        assert torch.equal(feats[row, :n], examples[row]["feats"])
        assert torch.all(feats[row, n:] == 0)
    # The other keys are collated exactly as SpeechBrain does.
    assert padded.id == plain.id
    assert torch.equal(padded.tokens.data, plain.tokens.data)
    assert torch.equal(torch.as_tensor(padded.num_tokens), torch.as_tensor(plain.num_tokens))


def test_collate_is_picklable_for_loader_workers_and_moves_like_a_padded_batch():
    collate = pickle.loads(pickle.dumps(BucketPaddedBatch(16)))
    batch = collate(_examples([20, 9])).to("cpu", non_blocking=True)
    assert batch.feats.data.shape == (2, 32, 3) and "multiple=16" in repr(collate)


def test_pad_function_without_a_multiple_is_speechbrains():
    tensors = [torch.ones(5, 2), torch.ones(2, 2)]
    ours, theirs = pad_right_to_bucket(tensors), PaddedBatch([{"x": t} for t in tensors]).x
    assert torch.equal(ours[0], theirs.data) and torch.equal(ours[1], theirs.lengths)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="pad_multiple must be a positive"):
        BucketPaddedBatch(0)
    with pytest.raises(ValueError, match="differ beyond the first axis"):
        pad_right_to_bucket([torch.ones(3, 2), torch.ones(3, 4)], multiple=4)
