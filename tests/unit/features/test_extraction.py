"""Tests of ``speechmapper_plugin.features.extraction`` (resumable extraction of a corpus into the feature cache (``extract_to_cache``))."""

import math

import pytest
import soundfile as sf
import torch
from safetensors import safe_open

from speechmapper_plugin.features.audio import load_audio
from speechmapper_plugin.features.cache import CacheConfigError, FeatureCache, _scan_shards
from speechmapper_plugin.features.extraction import extract_to_cache
from speechmapper_plugin.features.frames import average_frames
from speechmapper_plugin.features.front_ends import FbankFrontend, SeamlessFrontEnd
from speechmapper_plugin.features.seamless import SeamlessSpeechEncoder

from .helpers import _noise


@pytest.mark.parametrize("n_samples", [560, 721, 5000, 16000, 33333])  # >= min_samples
def test_torchaudio_front_end_matches_the_reference(n_samples):
    """Same frames and mask as SeamlessM4TFeatureExtractor (odd frame counts included),
    features equal to float rounding."""
    from transformers import SeamlessM4TFeatureExtractor

    wav = torch.from_numpy(_noise(n_samples, n_samples))
    extractor = SeamlessM4TFeatureExtractor()
    ref, ref_mask = SeamlessFrontEnd(extractor, "hf")(wav)
    fast, fast_mask = SeamlessFrontEnd(extractor, "torchaudio")(wav)
    assert fast.shape == ref.shape and torch.equal(fast_mask, ref_mask)
    torch.testing.assert_close(fast, ref, atol=2e-3, rtol=1e-3)


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
    stored = _scan_shards(str(out))  # raises if an id were stored twice
    assert sorted(stored) == sorted(u for u, _ in corpus)
    total_keys = 0
    for shard in out.glob("shard-*.safetensors"):
        with safe_open(str(shard), framework="pt") as f:
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
