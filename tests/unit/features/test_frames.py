"""Tests of ``speechmapper_plugin.features.frames`` (frame arithmetic shared by the encoders and the cache)."""

import pytest
import torch

from speechmapper_plugin.features.frames import average_frames, relative_to_frames


def test_average_frames_values_and_no_padding_leak():
    feats = torch.arange(20.0).view(2, 5, 2)
    feats[1, 3:] = 1e6  # padding of utterance 2 (3 valid frames) must never leak
    lens = torch.tensor([1.0, 0.6])
    out, out_lens = average_frames(feats, lens, 2)
    assert out.shape == (2, 3, 2)
    f0, f1 = feats[0], feats[1]
    expected0 = torch.stack([(f0[0] + f0[1]) / 2, (f0[2] + f0[3]) / 2, f0[4]])
    expected1 = torch.stack([(f1[0] + f1[1]) / 2, f1[2], torch.zeros(2)])
    torch.testing.assert_close(out[0], expected0)
    torch.testing.assert_close(out[1], expected1)
    torch.testing.assert_close(out_lens, torch.tensor([1.0, 2 / 3]))
    assert relative_to_frames(out_lens, 3).tolist() == [3, 2]

    out3, lens3 = average_frames(feats, lens, 3)
    torch.testing.assert_close(out3[1], torch.stack([f1[:3].mean(0), torch.zeros(2)]))
    torch.testing.assert_close(out3[0, 1], f0[3:5].mean(0))
    torch.testing.assert_close(lens3, torch.tensor([1.0, 0.5]))


def test_average_frames_identity_and_bad_k():
    feats, lens = torch.randn(2, 4, 3), torch.tensor([1.0, 0.5])
    out, out_lens = average_frames(feats, lens, 1)
    assert out is feats and out_lens is lens
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="positive integer"):
            average_frames(feats, lens, bad)
