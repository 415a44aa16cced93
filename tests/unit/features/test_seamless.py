"""Tests of ``speechmapper_plugin.features.seamless`` (the SeamlessM4T-v2 speech encoder truncated after a layer (paper Sec)."""

import os
import warnings

import pytest
import soundfile as sf
import torch

from speechmapper_plugin.features import seamless as seamless_module
from speechmapper_plugin.features.encoders import build_encoder
from speechmapper_plugin.features.extraction import extract_to_cache, loader_front_end
from speechmapper_plugin.features.frames import relative_to_frames
from speechmapper_plugin.features.seamless import SeamlessSpeechEncoder

from .helpers import _noise, _two_waves


@pytest.fixture(scope="module")
def seamless_reference(seamless_dir):
    """The untruncated HF speech encoder loaded with transformers' own loading code."""
    from transformers import SeamlessM4TFeatureExtractor, SeamlessM4Tv2Model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = SeamlessM4Tv2Model.from_pretrained(seamless_dir).speech_encoder.eval()
    return full, SeamlessM4TFeatureExtractor.from_pretrained(seamless_dir)


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_seamless_returns_hf_hidden_state_of_layer(seamless_dir, seamless_reference, layer):
    full, fe = seamless_reference
    encoder = SeamlessSpeechEncoder(str(seamless_dir), layer=layer)
    assert len(encoder.encoder.layers) == layer  # later layers are never built
    assert encoder.output_dim == 32 and encoder.frame_rate == 50.0
    wavs, wav_lens, singles = _two_waves()
    with torch.no_grad():
        feats, lens = encoder(wavs, wav_lens)
    n_frames = relative_to_frames(lens, feats.shape[1]).tolist()
    for i, wav in enumerate(singles):
        inputs = fe(wav.numpy(), sampling_rate=16000, return_tensors="pt")
        x = inputs["input_features"]
        assert n_frames[i] == inputs["attention_mask"].sum() == x.shape[1]
        with torch.no_grad():
            out = full(x, attention_mask=inputs["attention_mask"], output_hidden_states=True)
            # Manual computation through the reference modules.
            h = full.feature_projection(x)
            for block in full.encoder.layers[:layer]:
                h = block(h)[0]
            manual = full.encoder.layer_norm(h) if layer == 3 else h
        torch.testing.assert_close(feats[i, : n_frames[i]], out.hidden_states[layer][0])
        torch.testing.assert_close(feats[i, : n_frames[i]], manual[0])
        if layer == 3:  # the conformer output, not the adapter output (8x shorter)
            assert out.last_hidden_state.shape[1] < x.shape[1]
            assert not torch.allclose(manual, h)  # the encoder's final layer norm is included
    assert torch.all(feats[1, n_frames[1] :] == 0)


def test_seamless_reads_only_needed_tensors(seamless_dir, monkeypatch):
    opened, read = set(), []
    real_safe_open = seamless_module.safe_open

    class Recording:
        def __init__(self, path, framework):
            opened.add(os.path.basename(path))
            self._inner = real_safe_open(path, framework=framework)

        def __enter__(self):
            self._f = self._inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self._inner.__exit__(*exc)

        def keys(self):
            return self._f.keys()

        def get_tensor(self, key):
            read.append(key)
            return self._f.get_tensor(key)

    monkeypatch.setattr(seamless_module, "safe_open", Recording)
    encoder = SeamlessSpeechEncoder(str(seamless_dir), layer=1)
    allowed = ("speech_encoder.feature_projection.", "speech_encoder.encoder.layers.0.")
    assert read and all(k.startswith(allowed) for k in read), read
    assert len(read) == len(encoder.state_dict())
    n_shards = len(list(seamless_dir.glob("model-*.safetensors")))
    assert 0 < len(opened) < n_shards  # shards without speech-encoder tensors are not opened
    assert not hasattr(encoder, "adapter") and not hasattr(encoder, "intermediate_ffn")


def test_seamless_frozen_and_dtype(seamless_dir):
    encoder = SeamlessSpeechEncoder(str(seamless_dir), layer=3)
    encoder.train()  # e.g. Brain.modules.train(): must not enable dropout / LayerDrop
    assert not encoder.training and not encoder.encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())
    half = SeamlessSpeechEncoder(str(seamless_dir), layer=3, dtype="bfloat16")
    assert half.describe()["dtype"] == "bfloat16"
    wavs, wav_lens, _ = _two_waves()
    with torch.no_grad():
        ref, ref_lens = encoder(wavs, wav_lens)
        low, low_lens = half(wavs, wav_lens)
    assert low.dtype == torch.bfloat16 and torch.equal(low_lens, ref_lens)
    torch.testing.assert_close(low.float(), ref, atol=0.1, rtol=0.05)
    # 5000 samples = 29 fbank frames: the half-padded last stacked frame is dropped.
    with torch.no_grad():
        odd, odd_lens = encoder(wavs[:1, :5000], torch.ones(1))
    assert odd.shape[1] == 14 and odd_lens.tolist() == [1.0]


def test_torchaudio_front_end_is_recorded_and_not_mixed_into_a_cache(seamless_dir, tmp_path):
    wav_path = tmp_path / "a.wav"
    sf.write(wav_path, _noise(8000, 1), 16000, subtype="FLOAT")
    items = [("a", str(wav_path))]
    reference = SeamlessSpeechEncoder(str(seamless_dir), layer=2)
    fast = SeamlessSpeechEncoder(str(seamless_dir), layer=2, front_end="torchaudio")
    assert "front_end" not in reference.describe()  # caches of the reference stay valid
    assert fast.describe()["front_end"] == "torchaudio"
    wavs, wav_lens, _ = _two_waves()
    with torch.no_grad():
        torch.testing.assert_close(fast(wavs, wav_lens)[0], reference(wavs, wav_lens)[0],
                                   atol=2e-3, rtol=1e-3)  # fmt: skip
    # On a GPU the torchaudio fbank runs batched in the encoder's forward; on a CPU, and for
    # the reference front-end anywhere, per utterance in the loader.
    assert loader_front_end(fast, torch.device("cuda")) is None
    assert loader_front_end(fast, torch.device("cpu")) is fast.front_end
    assert loader_front_end(reference, torch.device("cuda")) is reference.front_end
    extract_to_cache(reference, items, tmp_path / "cache", {}, average=2, progress=False)
    with pytest.raises(ValueError, match="front_end"):
        extract_to_cache(fast, items, tmp_path / "cache", {}, average=2, progress=False)
    with pytest.raises(ValueError, match="applies to encoder kind 'seamless' only"):
        build_encoder("fbank", front_end="torchaudio")
    with pytest.raises(ValueError, match="front_end must be one of"):
        SeamlessSpeechEncoder(str(seamless_dir), layer=2, front_end="librosa")


def test_seamless_layer_out_of_range(seamless_dir):
    for bad in (0, 4):
        with pytest.raises(ValueError) as info:
            SeamlessSpeechEncoder(str(seamless_dir), layer=bad)
        message = str(info.value)
        assert f"layer={bad}" in message and str(seamless_dir) in message and "1..3" in message


def test_seamless_rejects_other_checkpoints(hf_dirs):
    with pytest.raises(ValueError, match="not a SeamlessM4T-v2 checkpoint"):
        SeamlessSpeechEncoder(str(hf_dirs["wav2vec2"][0]), layer=1)
