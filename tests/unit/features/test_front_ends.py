"""Tests of ``speechmapper_plugin.features.front_ends`` (weight-free front-ends)."""

import torch

from speechmapper_plugin.features.frames import relative_to_frames
from speechmapper_plugin.features.front_ends import FbankFrontend

from .helpers import _noise


def test_fbank_frontend_normalised_and_batch_invariant():
    frontend = FbankFrontend()
    assert frontend.output_dim == 80 and frontend.frame_rate == 100.0
    assert sum(p.numel() for p in frontend.parameters()) == 0
    a, b = torch.from_numpy(_noise(16000, 3)), torch.from_numpy(_noise(8000, 4))
    wavs = torch.zeros(2, 16000)
    wavs[0], wavs[1, :8000] = a, b
    feats, lens = frontend(wavs, torch.tensor([1.0, 0.5]))
    assert feats.shape == (2, 101, 80)
    n = relative_to_frames(lens, 101).tolist()
    assert n == [101, 51]  # samples // 160 + 1 frames each
    alone_b, _ = frontend(b[None], torch.ones(1))
    torch.testing.assert_close(feats[1, :51], alone_b[0], atol=1e-4, rtol=1e-4)
    assert torch.all(feats[1, 51:] == 0)
    valid = feats[1, :51]
    torch.testing.assert_close(valid.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(80), atol=1e-3, rtol=0)
