"""Tests of ``speechmapper_plugin.features.extraction`` (resumable extraction of a corpus into the feature cache (``extract_to_cache``))."""

import logging
import math
import os
import random

import pytest
import soundfile as sf
import torch

from speechmapper_plugin.features.audio import load_audio
from speechmapper_plugin.features.cache import (
    CacheConfigError,
    CacheShardError,
    FeatureCache,
    FeatureCacheWriter,
    _scan_shards,
)
from speechmapper_plugin.features.extraction import extract_to_cache, plan_batches
from speechmapper_plugin.features.frames import average_frames
from speechmapper_plugin.features.front_ends import FbankFrontend, SeamlessFrontEnd
from speechmapper_plugin.features.seamless import SeamlessSpeechEncoder
from speechmapper_plugin.utils.locks import FolderLock, FolderLockedError

from .helpers import LOGGER, _noise


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
        encoder, items, tmp_path / "cache", {}, average=2, batch_seconds=1.0, progress=False
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
        encoder, items, tmp_path / "workers", {}, average=2, batch_seconds=1.0, progress=False,
        num_workers=2,
    )  # fmt: skip
    assert parallel["extracted"] == 3 and parallel["skipped_too_short"] == 1
    workers = FeatureCache(tmp_path / "workers")
    assert sorted(workers.ids()) == sorted(cache.ids())
    for utt_id in cache.ids():
        assert torch.equal(workers[utt_id], cache[utt_id])

    amp = extract_to_cache(
        encoder, items, tmp_path / "amp", {}, average=2, batch_seconds=1.0, progress=False, amp=True
    )
    assert amp["extracted"] == 3
    torch.testing.assert_close(
        FeatureCache(tmp_path / "amp")["s2"], cache["s2"], atol=0.1, rtol=0.05
    )


class _BatchSensitive(FbankFrontend):
    """FbankFrontend whose output also depends on the batch it is computed in (its size and
    padded length), as real encoders' numerics do; it can 'die' after a few batches."""

    def __init__(self, crash_after=None):
        super().__init__()
        self.calls, self.crash_after, self.shapes = 0, crash_after, []

    def forward(self, wavs, wav_lens):
        if self.calls == self.crash_after:
            raise RuntimeError("simulated crash")
        self.calls += 1
        self.shapes.append(tuple(wavs.shape))
        feats, lens = super().forward(wavs, wav_lens)
        return feats + 0.01 * wavs.shape[0] + 1e-5 * wavs.shape[1], lens


def _all_equal(cache_a, cache_b, ids):
    return all(torch.equal(cache_a[i], cache_b[i]) for i in ids)


def test_resume_after_crash_forms_the_same_batches(corpus, tmp_path):
    """Windows of 3 items, batches of <= 0.8 s padded: u2+u1 | u0 | u5 | u4 | u3 | u6. A crash
    in the 4th batch keeps the 3 written batches; the resumed run re-forms the others, so
    every feature equals the uninterrupted run's (bit for bit, although the encoder's output
    depends on the batch)."""
    kwargs = dict(average=2, batch_seconds=0.8, sort_window=3, flush_seconds=0, progress=False)
    ids = [u for u, _ in corpus]
    reference = tmp_path / "reference"
    full = _BatchSensitive()
    summary = extract_to_cache(full, corpus, reference, {}, **kwargs)
    assert [shape[0] for shape in full.shapes] == [2, 1, 1, 1, 1, 1] and summary["batches"] == 6

    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract_to_cache(_BatchSensitive(crash_after=3), corpus, out, {}, **kwargs)
    assert sorted(FeatureCache(out).ids()) == ["u0", "u1", "u2", "u5"]  # nothing done was lost

    resumed = _BatchSensitive()
    summary = extract_to_cache(resumed, corpus, out, {}, **kwargs)
    assert summary["already_cached"] == 4 and summary["extracted"] == 3
    assert resumed.shapes == full.shapes[3:]  # the same batches as the uninterrupted run
    assert not list(out.glob("*.tmp"))
    assert sorted(_scan_shards(str(out))) == sorted(ids)  # raises if an id were stored twice
    assert _all_equal(FeatureCache(out), FeatureCache(reference), ids)

    again = extract_to_cache(FbankFrontend(), corpus, out, {}, average=2, progress=False)
    assert again["extracted"] == 0 and again["already_cached"] == 7


def test_a_truncated_shard_is_named_set_aside_and_reextracted(corpus, tmp_path, caplog):
    kwargs = dict(average=2, batch_seconds=0.8, sort_window=3, flush_seconds=0, progress=False)
    reference, out = tmp_path / "reference", tmp_path / "cache"
    extract_to_cache(_BatchSensitive(), corpus, reference, {}, **kwargs)
    extract_to_cache(_BatchSensitive(), corpus, out, {}, **kwargs)
    shard = out / "shard-000000.safetensors"  # the first batch: u2 and u1
    shard.write_bytes(shard.read_bytes()[:-100])  # a copy cut short, a full disk...
    with pytest.raises(CacheShardError) as err:
        FeatureCache(out)
    assert str(shard) in str(err.value) and "truncated" in str(err.value)
    assert "Run the feature extraction again" in str(err.value)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        summary = extract_to_cache(_BatchSensitive(), corpus, out, {}, **kwargs)
    assert summary["extracted"] == 2 and summary["already_cached"] == 5
    assert summary["damaged_shards"][0][:2] == [shard.name, shard.name + ".damaged"]
    assert (out / (shard.name + ".damaged")).exists()  # set aside, not deleted
    assert "shard-000000.safetensors" in caplog.text and "(2: u1, u2)" in caplog.text
    ids = [u for u, _ in corpus]
    assert _all_equal(FeatureCache(out), FeatureCache(reference), ids)


def test_batches_hold_at_most_batch_seconds_of_padded_audio(corpus, tmp_path):
    long_path = tmp_path / "long.wav"
    sf.write(long_path, _noise(16000 * 6, 7), 16000)  # 6 s among 0.2-0.6 s utterances
    items = corpus[:3] + [("long", str(long_path))] + corpus[3:]
    encoder = _BatchSensitive()
    summary = extract_to_cache(
        encoder, items, tmp_path / "cache", {}, batch_seconds=1.5, progress=False
    )
    assert summary["extracted"] == 8
    sizes = [(n, s / 16000) for n, s in encoder.shapes]
    assert sizes[0] == (1, 6.0)  # the long file alone, longer than the budget
    assert all(n * s <= 1.5 for n, s in sizes[1:]) and sum(n for n, _ in sizes) == 8
    assert summary["largest_batch_seconds"] == 6.0
    assert summary["padded_seconds"] < summary["audio_seconds"] * 1.2  # sorted: little padding
    wrapped = [n for n, _ in sizes[1:]]
    assert max(wrapped) > 1  # short utterances still share batches


def test_plan_batches_depends_only_on_the_lengths():
    rng = random.Random(0)
    lengths = [rng.randint(1, 50) for _ in range(200)]
    plan = plan_batches(lengths, 120)
    assert sorted(i for batch in plan for i in batch) == list(range(200))
    for batch in plan:
        longest = lengths[batch[0]]
        assert all(lengths[i] <= longest for i in batch) and len(batch) * longest <= 120
    # Re-planning any set of whole batches (what a resumed run has left to do: the batches
    # after an interruption, those of a damaged shard) gives back the same batches.
    for _ in range(20):
        kept = [batch for batch in plan if rng.random() < 0.5] or plan[-1:]
        left = sorted(i for batch in kept for i in batch)
        replanned = plan_batches([lengths[i] for i in left], 120)
        assert [[left[j] for j in batch] for batch in replanned] == kept
    assert plan_batches([300, 2], 100) == [[0], [1]]


def test_a_second_extraction_stops_and_leaves_the_first_alone(corpus, tmp_path):
    out = tmp_path / "cache"
    with FeatureCacheWriter(out, {}) as first:
        first.add("other", torch.ones(2, 3))
        (out / "shard-000007.safetensors.tmp").write_bytes(b"being written")
        with pytest.raises(FolderLockedError) as err:
            extract_to_cache(FbankFrontend(), corpus, out, {}, progress=False)
        assert f"pid {os.getpid()}" in str(err.value) and "feature extraction" in str(err.value)
        assert (out / "shard-000007.safetensors.tmp").exists()  # not removed by the second
    other = tmp_path / "other"
    lock = FolderLock(other, "feature extraction").acquire()  # a recipe holding the folder
    try:
        summary = extract_to_cache(FbankFrontend(), corpus, other, {}, progress=False, lock=lock)
        assert lock.held and summary["extracted"] == 7
    finally:
        lock.release()


def test_extract_rejects_bad_batching(corpus, tmp_path):
    for key, bad in (("batch_seconds", 0), ("batch_seconds", True), ("sort_window", 0)):
        with pytest.raises(ValueError, match=key):
            extract_to_cache(FbankFrontend(), corpus, tmp_path / "c", {}, **{key: bad})


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
