"""Tests of ``speechmapper_plugin.features.front_ends`` (weight-free front-ends)."""

import torch

from speechmapper_plugin.features.frames import relative_to_frames
from speechmapper_plugin.features.front_ends import (
    FbankFrontend,
    SeamlessFrontEnd,
    kaldi_fbank,
    pad_front_end,
)

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


LENGTHS = [16000, 5160, 721, 560, 33333]  # even and odd frame counts, the shortest allowed


def _padded(lengths):
    wavs = [torch.from_numpy(_noise(n, n)) for n in lengths]
    batch = torch.zeros(len(wavs), max(lengths))
    for i, wav in enumerate(wavs):
        batch[i, : len(wav)] = wav
    return wavs, batch, torch.tensor(lengths)


def test_batched_kaldi_fbank_equals_torchaudio_per_utterance():
    from torchaudio.compliance import kaldi

    wavs, batch, lengths = _padded(LENGTHS)
    log_mel, n_frames = kaldi_fbank(batch, lengths)
    worst = 0.0
    for i, wav in enumerate(wavs):
        reference = kaldi.fbank(
            wav[None] * 2**15, num_mel_bins=80, sample_frequency=16000, frame_length=25.0,
            frame_shift=10.0, dither=0.0, window_type="povey", preemphasis_coefficient=0.97,
            remove_dc_offset=True, energy_floor=0.0,
        )  # fmt: skip
        assert int(n_frames[i]) == reference.shape[0]
        worst = max(worst, float((log_mel[i, : n_frames[i]] - reference).abs().max()))
    assert worst < 1e-4  # float rounding (measured: 1.9e-6)
    assert kaldi_fbank(torch.zeros(1, 300), torch.tensor([300]))[1].tolist() == [0]


def test_seamless_front_end_batch_equals_one_utterance_at_a_time_and_the_reference():
    from transformers import SeamlessM4TFeatureExtractor

    extractor = SeamlessM4TFeatureExtractor()
    wavs, batch, lengths = _padded(LENGTHS)
    fast = SeamlessFrontEnd(extractor, "torchaudio")
    reference = SeamlessFrontEnd(extractor, "hf")
    assert fast.on_device and not reference.on_device
    features, mask = fast.batch(batch, lengths)
    alone = pad_front_end([fast(wav) for wav in wavs])
    ref_features, ref_mask = reference.batch(batch, lengths)
    assert torch.equal(mask, alone[1]) and torch.equal(mask, ref_mask.long())
    assert features.shape == alone[0].shape == ref_features.shape
    torch.testing.assert_close(features, alone[0], atol=1e-4, rtol=0)  # float rounding only
    torch.testing.assert_close(features, ref_features, atol=5e-3, rtol=1e-3)
    assert torch.all(features[mask.sum(1).argmin(), -1] == 0)  # padding is zero
