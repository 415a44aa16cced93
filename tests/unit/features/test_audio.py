"""Tests of ``speechmapper_plugin.features.audio`` (reading audio)."""

import collections
import logging
import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from speechmapper_plugin.features import audio as audio_module
from speechmapper_plugin.features.audio import AudioError, load_audio
from speechmapper_plugin.features.cache import FeatureCache
from speechmapper_plugin.features.extraction import extract_to_cache
from speechmapper_plugin.features.frames import average_frames
from speechmapper_plugin.features.front_ends import FbankFrontend

from .helpers import LOGGER, _noise


def _sine(seconds, sr=16000, freq=440.0, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype("float32")


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

    monkeypatch.setattr(audio_module, "_LOGGED_ONCE", set())
    data = _sine(0.5, sr=8000)
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, data, 8000, subtype="FLOAT")
    stats = collections.Counter()
    before = audio_module.AUDIO_COUNTERS["resampled"]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        wav = load_audio(tmp_path / "a.wav", 16000, stats=stats)
        load_audio(tmp_path / "b.wav", 16000, stats=stats)
    assert wav.shape == (8000,)
    expected = torchaudio.functional.resample(torch.from_numpy(data), 8000, 16000)
    torch.testing.assert_close(wav, expected)
    assert stats["resampled"] == 2 and audio_module.AUDIO_COUNTERS["resampled"] == before + 2
    infos = [r for r in caplog.records if r.levelno == logging.INFO and "8000 Hz" in r.message]
    assert len(infos) == 1 and "a.wav" in infos[0].message  # once per distinct condition


def test_load_audio_downmixes_stereo(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(audio_module, "_LOGGED_ONCE", set())
    left, right = _noise(3000, 1), _noise(3000, 2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    stats = collections.Counter()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        wav = load_audio(path, stats=stats)
    torch.testing.assert_close(wav, torch.from_numpy((left + right) / 2))
    assert stats["downmixed"] == 1 and stats["resampled"] == 0
    assert any("2-channel" in r.message for r in caplog.records if r.levelno == logging.INFO)


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
            frontend, items, out, {"recipe": "test"}, average=2, batch_seconds=1.0, max_seconds=1.5,
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
