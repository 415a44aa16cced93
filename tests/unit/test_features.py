"""Tests for speechmapper_plugin.features.extraction: audio loading, encoders, averaging, feature cache."""

import collections
import logging
import math
import os
import time
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from speechmapper_plugin import features as F
from speechmapper_plugin.features.audio import AudioError, load_audio
from speechmapper_plugin.features.cache import CacheConfigError, FeatureCache, FeatureCacheWriter
from speechmapper_plugin.features.encoders import build_encoder
from speechmapper_plugin.features.extraction import extract_to_cache
from speechmapper_plugin.features.frames import average_frames
from speechmapper_plugin.features.front_ends import FbankFrontend
from speechmapper_plugin.features.hf_encoder import HFSpeechEncoder
from speechmapper_plugin.features.model_source import ModelNotAvailableError
from speechmapper_plugin.features.seamless import SeamlessSpeechEncoder

LOGGER = "speechmapper_plugin.features.extraction"


def _sine(seconds, sr=16000, freq=440.0, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype("float32")


def _noise(n, seed):
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype("float32")


# ------------------------------------------------------------------------------------------
# Audio
# ------------------------------------------------------------------------------------------


def test_load_audio_reads_mono_16k_exactly(tmp_path):
    data = _noise(4000, 0)
    path = tmp_path / "a.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    wav = load_audio(path)
    assert wav.dtype == torch.float32 and wav.shape == (4000,)
    torch.testing.assert_close(wav, torch.from_numpy(data))


def test_load_audio_missing_file(tmp_path):
    path = tmp_path / "nope.flac"
    with pytest.raises(AudioError, match="not found") as info:
        load_audio(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, RuntimeError)


def test_load_audio_unreadable_file(tmp_path):
    path = tmp_path / "garbage.flac"
    path.write_bytes(os.urandom(2048))
    with pytest.raises(AudioError, match="Cannot decode") as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_load_audio_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype="float32"), 16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(path)


def test_load_audio_resamples_and_logs_once(tmp_path, caplog, monkeypatch):
    import torchaudio.functional

    monkeypatch.setattr(F, "_LOGGED_ONCE", set())
    data = _sine(0.5, sr=8000)
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, data, 8000, subtype="FLOAT")
    stats = collections.Counter()
    before = F.AUDIO_COUNTERS["resampled"]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        wav = load_audio(tmp_path / "a.wav", 16000, stats=stats)
        load_audio(tmp_path / "b.wav", 16000, stats=stats)
    assert wav.shape == (8000,)
    expected = torchaudio.functional.resample(torch.from_numpy(data), 8000, 16000)
    torch.testing.assert_close(wav, expected)
    assert stats["resampled"] == 2 and F.AUDIO_COUNTERS["resampled"] == before + 2
    infos = [r for r in caplog.records if r.levelno == logging.INFO and "8000 Hz" in r.message]
    assert len(infos) == 1 and "a.wav" in infos[0].message  # once per distinct condition


def test_load_audio_downmixes_stereo(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(F, "_LOGGED_ONCE", set())
    left, right = _noise(3000, 1), _noise(3000, 2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    stats = collections.Counter()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        wav = load_audio(path, stats=stats)
    torch.testing.assert_close(wav, torch.from_numpy((left + right) / 2))
    assert stats["downmixed"] == 1 and stats["resampled"] == 0
    assert any("2-channel" in r.message for r in caplog.records if r.levelno == logging.INFO)


# ------------------------------------------------------------------------------------------
# Frame averaging
# ------------------------------------------------------------------------------------------


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
    assert F.relative_to_frames(out_lens, 3).tolist() == [3, 2]

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


# ------------------------------------------------------------------------------------------
# Fbank front-end
# ------------------------------------------------------------------------------------------


def test_fbank_frontend_normalised_and_batch_invariant():
    frontend = FbankFrontend()
    assert frontend.output_dim == 80 and frontend.frame_rate == 100.0
    assert sum(p.numel() for p in frontend.parameters()) == 0
    a, b = torch.from_numpy(_noise(16000, 3)), torch.from_numpy(_noise(8000, 4))
    wavs = torch.zeros(2, 16000)
    wavs[0], wavs[1, :8000] = a, b
    feats, lens = frontend(wavs, torch.tensor([1.0, 0.5]))
    assert feats.shape == (2, 101, 80)
    n = F.relative_to_frames(lens, 101).tolist()
    assert n == [101, 51]  # samples // 160 + 1 frames each
    alone_b, _ = frontend(b[None], torch.ones(1))
    torch.testing.assert_close(feats[1, :51], alone_b[0], atol=1e-4, rtol=1e-4)
    assert torch.all(feats[1, 51:] == 0)
    valid = feats[1, :51]
    torch.testing.assert_close(valid.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(80), atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------------
# Tiny pretrained models saved locally
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seamless_dir(tmp_path_factory):
    """A full (tiny, random-init) SeamlessM4Tv2Model saved as sharded safetensors."""
    from transformers import SeamlessM4TFeatureExtractor, SeamlessM4Tv2Config, SeamlessM4Tv2Model

    torch.manual_seed(0)
    cfg = SeamlessM4Tv2Config(
        vocab_size=64,
        t2u_vocab_size=32,
        char_vocab_size=32,
        hidden_size=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        speech_encoder_layers=3,
        speech_encoder_attention_heads=2,
        speech_encoder_intermediate_size=48,
        t2u_encoder_layers=1,
        t2u_decoder_layers=1,
        t2u_encoder_ffn_dim=32,
        t2u_decoder_ffn_dim=32,
        t2u_encoder_attention_heads=2,
        t2u_decoder_attention_heads=2,
        unit_hifi_gan_vocab_size=32,
        unit_embed_dim=16,
        lang_embed_dim=4,
        spkr_embed_dim=4,
        vocoder_num_langs=2,
        vocoder_num_spkrs=2,
        upsample_initial_channel=16,
        upsample_rates=[5, 4, 4, 2, 2],
        upsample_kernel_sizes=[11, 8, 8, 4, 4],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3, 5]],
        variance_predictor_embed_dim=16,
        variance_predictor_hidden_dim=16,
        max_position_embeddings=64,
        t2u_max_position_embeddings=64,
        conv_depthwise_kernel_size=5,
        left_max_position_embeddings=8,
        right_max_position_embeddings=4,
    )
    folder = tmp_path_factory.mktemp("tiny_seamless")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SeamlessM4Tv2Model(cfg)
    with torch.no_grad():  # non-trivial layer norms, so a missing/extra norm changes the output
        for name, param in model.speech_encoder.named_parameters():
            if "layer_norm" in name:
                param.normal_(1.0 if name.endswith("weight") else 0.0, 0.3)
    model.save_pretrained(folder, max_shard_size="100KB")
    SeamlessM4TFeatureExtractor().save_pretrained(folder)
    assert (folder / "model.safetensors.index.json").exists()
    return folder


@pytest.fixture(scope="module")
def seamless_reference(seamless_dir):
    """The untruncated HF speech encoder loaded with transformers' own loading code."""
    from transformers import SeamlessM4TFeatureExtractor, SeamlessM4Tv2Model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = SeamlessM4Tv2Model.from_pretrained(seamless_dir).speech_encoder.eval()
    return full, SeamlessM4TFeatureExtractor.from_pretrained(seamless_dir)


def _two_waves():
    # 5160 samples = 30 fbank frames (even), so no half-padded stacked frame in the reference.
    a, b = torch.from_numpy(_noise(8000, 5)), torch.from_numpy(_noise(5160, 6))
    wavs = torch.zeros(2, 8000)
    wavs[0], wavs[1, :5160] = a, b
    return wavs, torch.tensor([1.0, 5160 / 8000]), [a, b]


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_seamless_returns_hf_hidden_state_of_layer(seamless_dir, seamless_reference, layer):
    full, fe = seamless_reference
    encoder = SeamlessSpeechEncoder(str(seamless_dir), layer=layer)
    assert len(encoder.encoder.layers) == layer  # later layers are never built
    assert encoder.output_dim == 32 and encoder.frame_rate == 50.0
    wavs, wav_lens, singles = _two_waves()
    with torch.no_grad():
        feats, lens = encoder(wavs, wav_lens)
    n_frames = F.relative_to_frames(lens, feats.shape[1]).tolist()
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
    real_safe_open = F.safe_open

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

    monkeypatch.setattr(F, "safe_open", Recording)
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


@pytest.mark.parametrize("n_samples", [560, 721, 5000, 16000, 33333])  # >= min_samples
def test_torchaudio_front_end_matches_the_reference(n_samples):
    """Same frames and mask as SeamlessM4TFeatureExtractor (odd frame counts included),
    features equal to float rounding."""
    from transformers import SeamlessM4TFeatureExtractor

    wav = torch.from_numpy(_noise(n_samples, n_samples))
    extractor = SeamlessM4TFeatureExtractor()
    ref, ref_mask = F.SeamlessFrontEnd(extractor, "hf")(wav)
    fast, fast_mask = F.SeamlessFrontEnd(extractor, "torchaudio")(wav)
    assert fast.shape == ref.shape and torch.equal(fast_mask, ref_mask)
    torch.testing.assert_close(fast, ref, atol=2e-3, rtol=1e-3)


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
    extract_to_cache(reference, items, tmp_path / "cache", {}, average=2, progress=False)
    with pytest.raises(ValueError, match="front_end"):
        extract_to_cache(fast, items, tmp_path / "cache", {}, average=2, progress=False)
    with pytest.raises(ValueError, match="applies to encoder kind 'seamless' only"):
        F.build_encoder("fbank", front_end="torchaudio")
    with pytest.raises(ValueError, match="front_end must be one of"):
        SeamlessSpeechEncoder(str(seamless_dir), layer=2, front_end="librosa")


def test_seamless_layer_out_of_range(seamless_dir):
    for bad in (0, 4):
        with pytest.raises(ValueError) as info:
            SeamlessSpeechEncoder(str(seamless_dir), layer=bad)
        message = str(info.value)
        assert f"layer={bad}" in message and str(seamless_dir) in message and "1..3" in message


def test_seamless_extraction_with_averaging(seamless_dir, tmp_path):
    encoder = SeamlessSpeechEncoder(str(seamless_dir), layer=2)
    items = []
    for i, n in enumerate([8000, 6000, 4500, 300]):  # 300 samples: shorter than one frame group
        path = tmp_path / f"s{i}.wav"
        sf.write(path, _noise(n, 10 + i), 16000, subtype="FLOAT")
        items.append((f"s{i}", str(path)))
    summary = extract_to_cache(
        encoder, items, tmp_path / "cache", {}, average=2, batch_size=2, progress=False
    )
    assert summary["extracted"] == 3 and summary["skipped_too_short"] == 1
    cache = FeatureCache(tmp_path / "cache")
    assert cache.config["frame_rate"] == 25.0 and cache.config["encoder"]["layer"] == 2
    wav = load_audio(items[2][1])
    with torch.no_grad():
        feats, lens = encoder(wav[None], torch.ones(1))
    expected, _ = average_frames(feats, lens, 2)
    assert cache.length("s2") == math.ceil(feats.shape[1] / 2)
    torch.testing.assert_close(cache["s2"], expected[0], atol=2e-3, rtol=2e-3)

    # Audio and fbank in 2 worker processes, encoder in the main one: the same cache.
    parallel = extract_to_cache(
        encoder, items, tmp_path / "workers", {}, average=2, batch_size=2, progress=False,
        num_workers=2,
    )  # fmt: skip
    assert parallel["extracted"] == 3 and parallel["skipped_too_short"] == 1
    workers = FeatureCache(tmp_path / "workers")
    assert sorted(workers.ids()) == sorted(cache.ids())
    for utt_id in cache.ids():
        assert torch.equal(workers[utt_id], cache[utt_id])

    amp = extract_to_cache(
        encoder, items, tmp_path / "amp", {}, average=2, batch_size=2, progress=False, amp=True
    )
    assert amp["extracted"] == 3
    torch.testing.assert_close(
        FeatureCache(tmp_path / "amp")["s2"], cache["s2"], atol=0.1, rtol=0.05
    )


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """Tiny wav2vec2 (stable layer norm, attention mask) and HuBERT (post-LN, group norm)."""
    from transformers import (
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
    )

    common = dict(
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2,
    )
    torch.manual_seed(0)
    w2v = tmp_path_factory.mktemp("tiny_w2v2")
    Wav2Vec2Model(
        Wav2Vec2Config(do_stable_layer_norm=True, feat_extract_norm="layer", **common)
    ).save_pretrained(w2v)
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(w2v)
    hubert = tmp_path_factory.mktemp("tiny_hubert")
    HubertModel(HubertConfig(feat_extract_norm="group", **common)).save_pretrained(hubert)
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(hubert)
    return {"wav2vec2": (w2v, Wav2Vec2Model), "hubert": (hubert, HubertModel)}


@pytest.mark.parametrize("name", ["wav2vec2", "hubert"])
def test_hf_encoder_returns_hidden_state_of_layer(hf_dirs, name):
    from transformers import AutoFeatureExtractor

    folder, model_cls = hf_dirs[name]
    full = model_cls.from_pretrained(folder).eval()
    fe = AutoFeatureExtractor.from_pretrained(folder)
    wavs, wav_lens, singles = _two_waves()
    for layer in (1, 2, 3):
        encoder = HFSpeechEncoder(str(folder), layer=layer)
        assert len(encoder.model.encoder.layers) == layer
        assert encoder.frame_rate == 800.0 and encoder.min_samples == 25
        with torch.no_grad():
            feats, lens = encoder(wavs, wav_lens)
        n_frames = F.relative_to_frames(lens, feats.shape[1]).tolist()
        for i, wav in enumerate(singles):
            inputs = fe(wav.numpy(), sampling_rate=16000, return_tensors="pt")
            with torch.no_grad():
                ref = full(inputs["input_values"], output_hidden_states=True).hidden_states[layer]
            assert n_frames[i] == ref.shape[1]
            torch.testing.assert_close(feats[i, : n_frames[i]], ref[0], atol=1e-5, rtol=1e-4)
        assert torch.all(feats[1, n_frames[1] :] == 0)


def test_hf_layer_out_of_range(hf_dirs):
    folder = str(hf_dirs["hubert"][0])
    with pytest.raises(ValueError, match=r"layer=7 .*valid layers are 1\.\.3") as info:
        build_encoder("hf", source=folder, layer=7)
    assert folder in str(info.value)


def test_hf_without_preprocessor_config(hf_dirs, tmp_path, caplog):
    import shutil

    folder = tmp_path / "no_preprocessor"
    shutil.copytree(hf_dirs["hubert"][0], folder)
    (folder / "preprocessor_config.json").unlink()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        encoder = HFSpeechEncoder(str(folder), layer=np.int64(2))  # YAML/numpy ints are fine
    assert "no preprocessor_config.json" in caplog.text
    fe = encoder.feature_extractor
    assert not fe.do_normalize and not fe.return_attention_mask and encoder.layer == 2


def test_seamless_rejects_other_checkpoints(hf_dirs):
    with pytest.raises(ValueError, match="not a SeamlessM4T-v2 checkpoint"):
        SeamlessSpeechEncoder(str(hf_dirs["wav2vec2"][0]), layer=1)


# ------------------------------------------------------------------------------------------
# Model sources and the factory
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,source",
    [("seamless", "facebook/seamless-m4t-v2-large"), ("hf", "utter-project/mHuBERT-147")],
)
def test_offline_uncached_hub_id_is_a_clear_fast_error(tmp_path, kind, source):
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE  # set by tests/conftest.py
    start = time.time()
    with pytest.raises(ModelNotAvailableError) as info:
        build_encoder(kind, source=source, layer=10, cache_dir=str(tmp_path / "hf"))
    assert time.time() - start < 5
    message = str(info.value)
    assert "offline" in message and f"huggingface-cli download {source}" in message
    assert "local folder" in message


def test_missing_local_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_encoder("seamless", source=str(tmp_path / "no" / "model"))


def test_build_encoder_kinds():
    assert isinstance(build_encoder("fbank", n_mels=40), FbankFrontend)
    with pytest.raises(ValueError, match=r"Unknown encoder kind 'whisper'.*'fbank'"):
        build_encoder("whisper")
    with pytest.raises(ValueError, match="needs both `source`"):
        build_encoder("hf", source="facebook/wav2vec2-base")
    with pytest.raises(ValueError, match="takes no source/layer"):
        build_encoder("fbank", layer=3)


# ------------------------------------------------------------------------------------------
# Feature cache
# ------------------------------------------------------------------------------------------


def _random_feats(n, dim=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {f"utt{i}": torch.randn(3 + i, dim, generator=gen) * 4 for i in range(n)}


def test_cache_round_trip(tmp_path):
    data = _random_feats(5)
    with FeatureCacheWriter(tmp_path, {"dim": 6, "layer": 24}, shard_size=2) as writer:
        for key, value in data.items():
            writer.add(key, value)
    assert len(list(tmp_path.glob("shard-*.safetensors"))) == 3
    cache = FeatureCache(tmp_path)
    assert len(cache) == 5 and set(cache.ids()) == set(data) and "utt3" in cache
    assert "other" not in cache and cache.dim == 6 and cache.config["layer"] == 24
    for key, value in data.items():
        got = cache[key]
        assert got.dtype == torch.float32 and cache.length(key) == value.shape[0]
        torch.testing.assert_close(got, value.half().float(), atol=0, rtol=0)
        torch.testing.assert_close(got, value, atol=1e-2, rtol=1e-3)


def test_cache_missing_id_names_id_and_folder(tmp_path):
    FeatureCacheWriter(tmp_path, {}).close()
    cache = FeatureCache(tmp_path)
    for access in (cache.__getitem__, cache.length):
        with pytest.raises(KeyError) as info:
            access("spk1-0001")
        assert "spk1-0001" in str(info.value) and str(tmp_path) in str(info.value)


def test_cache_config_mismatch(tmp_path):
    with FeatureCacheWriter(tmp_path, {"source": "m", "layer": 24}) as writer:
        writer.add("a", torch.ones(2, 3))
    with pytest.raises(CacheConfigError, match=r"layer: cache has 24, requested 10") as info:
        FeatureCacheWriter(tmp_path, {"source": "m", "layer": 10})
    assert "another cache folder" in str(info.value)
    FeatureCacheWriter(tmp_path, {"layer": 24, "source": "m"}).close()  # same config: fine


def test_cache_duplicate_ids(tmp_path):
    with FeatureCacheWriter(tmp_path, {}, shard_size=10) as writer:
        writer.add("dup", torch.ones(2, 3))
        with pytest.raises(ValueError, match="Duplicate utterance id 'dup'"):
            writer.add("dup", torch.ones(2, 3))
    with FeatureCacheWriter(tmp_path, {}) as writer:
        with pytest.raises(ValueError, match="Duplicate utterance id 'dup'"):
            writer.add("dup", torch.zeros(4, 3))
    assert FeatureCache(tmp_path)["dup"].shape == (2, 3)


def test_cache_rejects_bad_features(tmp_path):
    with FeatureCacheWriter(tmp_path, {"dim": 3}) as writer:
        with pytest.raises(ValueError, match="'x' have dim 4"):
            writer.add("x", torch.ones(2, 4))
        with pytest.raises(ValueError, match="'y' contain NaN/inf"):
            writer.add("y", torch.full((2, 3), 1e6))  # overflows fp16
        with pytest.raises(ValueError, match=r"'z' must be a \[T>=1, D\]"):
            writer.add("z", torch.ones(0, 3))


def test_cache_interrupted_write_leaves_no_corrupt_shard(tmp_path, caplog):
    writer = FeatureCacheWriter(tmp_path, {}, shard_size=2)
    for key, value in _random_feats(3).items():
        writer.add(key, value)  # utt0, utt1 -> shard 0; utt2 buffered
    # Simulate a process killed while writing the next shard: a partial tmp file, no close().
    (tmp_path / "shard-000001.safetensors.tmp").write_bytes(b"\x00partial")
    del writer
    reader = FeatureCache(tmp_path)  # readers ignore incomplete files
    assert sorted(reader.ids()) == ["utt0", "utt1"]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        writer = FeatureCacheWriter(tmp_path, {}, shard_size=2)
    assert writer.done_ids() == {"utt0", "utt1"}
    assert not list(tmp_path.glob("*.tmp")) and "interrupted" in caplog.text
    writer.add("utt2", torch.ones(2, 6))
    writer.close()
    assert len(FeatureCache(tmp_path)) == 3


class _CacheDataset(torch.utils.data.Dataset):
    def __init__(self, cache):
        self.cache, self.keys = cache, sorted(cache.ids())

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, i):
        return self.keys[i], self.cache[self.keys[i]]


def test_cache_reader_in_dataloader_workers(tmp_path):
    data = _random_feats(6)
    with FeatureCacheWriter(tmp_path, {}, shard_size=2) as writer:
        for key, value in data.items():
            writer.add(key, value)
    cache = FeatureCache(tmp_path)
    cache["utt0"]  # open a handle in the parent before forking
    loader = torch.utils.data.DataLoader(
        _CacheDataset(cache), batch_size=None, num_workers=2, shuffle=False
    )
    got = dict(loader)
    assert set(got) == set(data)
    for key, value in data.items():
        torch.testing.assert_close(got[key], value.half().float(), atol=0, rtol=0)


# ------------------------------------------------------------------------------------------
# Extraction
# ------------------------------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path):
    """Seven readable utterances (one 8 kHz, one stereo) of various lengths."""
    folder = tmp_path / "wavs"
    folder.mkdir()
    items = []
    for i in range(7):
        path = folder / f"u{i}.flac"
        n = 3000 + 1100 * i
        if i == 2:
            sf.write(path, _noise(n // 2, i), 8000)
        elif i == 4:
            sf.write(path, np.stack([_noise(n, i), _noise(n, 50 + i)], axis=1), 16000)
        else:
            sf.write(path, _noise(n, i), 16000)
        items.append((f"u{i}", str(path)))
    return items


@pytest.mark.parametrize("num_workers", [0, 2])
def test_extract_to_cache_values_and_skips(corpus, tmp_path, caplog, num_workers):
    garbage = tmp_path / "bad.flac"
    garbage.write_bytes(os.urandom(1000))
    long_path = tmp_path / "long.wav"
    sf.write(long_path, _noise(32000, 99), 16000)
    items = corpus + [
        ("missing", str(tmp_path / "missing.flac")),
        ("garbage", str(garbage)),
        ("long", str(long_path)),
    ]
    frontend = FbankFrontend()
    out = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger=LOGGER):
        summary = extract_to_cache(
            frontend, items, out, {"recipe": "test"}, average=2, batch_size=3, max_seconds=1.5,
            progress=False, num_workers=num_workers,
        )  # fmt: skip
    assert summary["extracted"] == 7 and summary["already_cached"] == 0
    assert summary["skipped_missing"] == 2 and summary["skipped_too_long"] == 1
    assert summary["resampled"] == 1 and summary["downmixed"] == 1
    expected_seconds = sum(load_audio(p).shape[0] for _, p in corpus) / 16000
    assert summary["audio_seconds"] == pytest.approx(expected_seconds)
    for utt_id in ("missing", "garbage", "long"):
        assert any(utt_id in r.message for r in caplog.records if r.levelno >= logging.WARNING)

    cache = FeatureCache(out)
    assert sorted(cache.ids()) == [f"u{i}" for i in range(7)]
    config = cache.config
    assert config["recipe"] == "test" and config["average"] == 2 and config["dim"] == 80
    assert config["encoder"]["kind"] == "fbank" and config["frame_rate"] == 50.0
    for utt_id, path in corpus:
        wav = load_audio(path)
        feats, lens = frontend(wav[None], torch.ones(1))
        expected, _ = average_frames(feats, lens, 2)
        assert cache.length(utt_id) == math.ceil(feats.shape[1] / 2)
        torch.testing.assert_close(cache[utt_id], expected[0], atol=5e-3, rtol=2e-3)


class _CrashingFbank(FbankFrontend):
    """Same features as FbankFrontend, but the process 'dies' after a few batches."""

    def __init__(self, crash_after):
        super().__init__()
        self.calls, self.crash_after = 0, crash_after

    def forward(self, wavs, wav_lens):
        if self.calls == self.crash_after:
            raise RuntimeError("simulated crash")
        self.calls += 1
        return super().forward(wavs, wav_lens)


def test_extract_resume_after_crash(corpus, tmp_path):
    kwargs = dict(average=2, batch_size=2, shard_size=3, progress=False)
    reference = tmp_path / "reference"
    extract_to_cache(FbankFrontend(), corpus, reference, {}, **kwargs)

    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract_to_cache(_CrashingFbank(crash_after=2), corpus, out, {}, **kwargs)
    partial = len(FeatureCache(out))
    assert partial == 4  # the two completed batches survived the crash

    summary = extract_to_cache(FbankFrontend(), corpus, out, {}, **kwargs)
    assert summary["already_cached"] == partial and summary["extracted"] == 7 - partial
    assert not list(out.glob("*.tmp"))
    stored = F._scan_shards(str(out))  # raises if an id were stored twice
    assert sorted(stored) == sorted(u for u, _ in corpus)
    total_keys = 0
    for shard in out.glob("shard-*.safetensors"):
        with F.safe_open(str(shard), framework="pt") as f:
            total_keys += len(list(f.keys()))
    assert total_keys == 7
    resumed, ref = FeatureCache(out), FeatureCache(reference)
    for utt_id, _ in corpus:
        torch.testing.assert_close(resumed[utt_id], ref[utt_id], atol=2e-3, rtol=1e-3)

    again = extract_to_cache(FbankFrontend(), corpus, out, {}, **kwargs)
    assert again["extracted"] == 0 and again["already_cached"] == 7


def test_extract_refuses_other_settings_and_duplicate_ids(corpus, tmp_path):
    out = tmp_path / "cache"
    extract_to_cache(FbankFrontend(), corpus[:2], out, {}, average=2, progress=False)
    with pytest.raises(CacheConfigError, match="average: cache has 2, requested 1"):
        extract_to_cache(FbankFrontend(), corpus, out, {}, average=1, progress=False)
    with pytest.raises(CacheConfigError, match="n_mels"):
        extract_to_cache(FbankFrontend(n_mels=40), corpus, out, {}, average=2, progress=False)
    with pytest.raises(ValueError, match="contradicts"):
        extract_to_cache(FbankFrontend(), corpus, out, {"average": 3}, average=2, progress=False)
    dup = corpus[2:4] + [(corpus[2][0], corpus[5][1])]
    with pytest.raises(ValueError, match=f"Duplicate utterance id '{corpus[2][0]}'"):
        extract_to_cache(FbankFrontend(), dup, out, {}, average=2, progress=False)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_extract_rejects_a_bad_worker_count(corpus, tmp_path, bad):
    with pytest.raises(ValueError, match=f"num_workers must be an integer >= 0, got {bad!r}"):
        extract_to_cache(FbankFrontend(), corpus, tmp_path / "c", {}, num_workers=bad)
