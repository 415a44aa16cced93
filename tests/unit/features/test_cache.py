"""Tests of ``speechmapper_plugin.features.cache`` (the on-disk feature cache)."""

import logging

import pytest
import torch

from speechmapper_plugin.features.cache import CacheConfigError, FeatureCache, FeatureCacheWriter

from .helpers import LOGGER


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
