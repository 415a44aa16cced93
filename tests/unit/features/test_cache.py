"""Tests of ``speechmapper_plugin.features.cache`` (the on-disk feature cache)."""

import json
import logging
import os
import shutil

import pytest
import torch

from speechmapper_plugin.features import cache as cache_module
from speechmapper_plugin.features.cache import (
    CacheConfigError,
    CacheShardError,
    FeatureCache,
    FeatureCacheWriter,
    cache_config,
)
from speechmapper_plugin.utils.locks import FolderLockedError

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


def test_a_second_writer_is_refused_until_the_first_closes(tmp_path):
    first = FeatureCacheWriter(tmp_path, {})
    with pytest.raises(FolderLockedError) as err:
        FeatureCacheWriter(tmp_path, {})
    message = str(err.value)
    assert str(tmp_path) in message and f"pid {os.getpid()}" in message
    assert "feature extraction" in message
    first.add("a", torch.ones(2, 3))
    first.close()
    with FeatureCacheWriter(tmp_path, {}) as second:
        assert second.done_ids() == {"a"}


def test_new_shards_never_replace_existing_ones(tmp_path):
    """A shard number taken after the writer opened the folder (by a process that ignored the
    lock) is skipped: both shards stay."""
    other = tmp_path / "other"
    with FeatureCacheWriter(other, {}) as writer:
        writer.add("dev1", torch.ones(2, 3))
    writer = FeatureCacheWriter(tmp_path / "cache", {})
    writer.add("train1", torch.zeros(4, 3))
    shutil.copy(other / "shard-000000.safetensors", tmp_path / "cache")
    writer.close()
    assert sorted(p.name for p in (tmp_path / "cache").glob("shard-*")) == [
        "shard-000000.safetensors",
        "shard-000001.safetensors",
    ]
    cache = FeatureCache(tmp_path / "cache")
    assert sorted(cache.ids()) == ["dev1", "train1"] and cache.length("train1") == 4


def test_shards_are_written_every_flush_seconds(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: now[0])
    writer = FeatureCacheWriter(tmp_path, {}, flush_seconds=5.0)

    def shards():
        return len(list(tmp_path.glob("shard-*.safetensors")))

    writer.add_batch([("a", torch.ones(2, 3)), ("b", torch.ones(2, 3))])
    now[0] += 4.0
    writer.add("c", torch.ones(2, 3))
    assert shards() == 0  # the oldest waited 4 s < 5 s
    now[0] += 1.5
    writer.add("d", torch.ones(2, 3))
    assert shards() == 1 and len(FeatureCache(tmp_path)) == 4
    now[0] += 1.0
    writer.add("e", torch.ones(2, 3))
    assert shards() == 1  # the clock restarts with the next buffered utterance
    writer.close()
    assert shards() == 2
    with pytest.raises(ValueError, match="flush_seconds"):
        FeatureCacheWriter(tmp_path / "x", {}, flush_seconds=-1)


def test_a_batch_is_added_whole_or_not_at_all(tmp_path):
    with FeatureCacheWriter(tmp_path, {"dim": 3}) as writer:
        with pytest.raises(ValueError, match="'bad' have dim 4"):
            writer.add_batch([("good", torch.ones(2, 3)), ("bad", torch.ones(2, 4))])
        with pytest.raises(ValueError, match="Duplicate utterance id 'x'"):
            writer.add_batch([("x", torch.ones(2, 3)), ("x", torch.ones(2, 3))])
        assert writer.done_ids() == set()


@pytest.mark.parametrize("keep", [5, 60, -100])  # inside the length, the header, the data
def test_a_damaged_shard_is_named_and_set_aside(tmp_path, caplog, keep):
    with FeatureCacheWriter(tmp_path, {}, shard_size=2) as writer:
        for key, value in _random_feats(4).items():
            writer.add(key, value)
    shard = tmp_path / "shard-000000.safetensors"
    shard.write_bytes(shard.read_bytes()[:keep])
    with pytest.raises(CacheShardError) as err:
        FeatureCache(tmp_path)
    assert str(shard) in str(err.value) and "sets damaged shards aside" in str(err.value)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        writer = FeatureCacheWriter(tmp_path, {})
    assert writer.done_ids() == {"utt2", "utt3"}  # utt0 and utt1 are to be extracted again
    assert [e.path for e in writer.damaged] == [str(shard)]
    assert (tmp_path / "shard-000000.safetensors.damaged").exists() and not shard.exists()
    assert "shard-000000.safetensors" in caplog.text
    writer.add("utt0", torch.ones(2, 6))
    writer.close()
    assert (tmp_path / "shard-000002.safetensors").exists()  # a new number, not the damaged one
    assert sorted(FeatureCache(tmp_path).ids()) == ["utt0", "utt2", "utt3"]


def _extracted(folder, average=4, **config):
    from speechmapper_plugin.features.extraction import extract_to_cache
    from speechmapper_plugin.features.front_ends import FbankFrontend

    extract_to_cache(FbankFrontend(), [], folder, config, average=average, progress=False)
    return folder


def test_cache_config_describes_how_features_were_made(tmp_path):
    recipe = {"kind": "fbank", "source": None, "layer": None, "frame_average": 4, "dim": 80}
    folder = _extracted(tmp_path / "a", frame_rate=25.0, **recipe)
    expected = {
        "encoder": {"kind": "fbank", "n_mels": 80, "sample_rate": 16000},
        "layer": None,
        "front_end": "fbank",
        "frame_rate": 25.0,
        "average": 4,
        "dim": 80,
        "dtype": "float32",
    }
    assert cache_config(folder) == expected
    for source in (str(folder), folder / "cache.json", FeatureCache(folder), expected):
        assert cache_config(source) == expected
    assert json.loads(json.dumps(cache_config(folder))) == expected  # storable in checkpoints
    seamless = {
        "encoder": {"kind": "seamless", "source": "s", "revision": None, "layer": 24,
                    "dtype": "bfloat16", "front_end": "torchaudio"},
        "average": 2, "dim": 1024, "frame_rate": 25.0, "autocast": "bfloat16",
    }  # fmt: skip
    described = cache_config({"format": "speechmapper-feature-cache", "config": seamless})
    assert described["encoder"] == {"kind": "seamless", "source": "s", "revision": None}
    assert described["layer"] == 24 and described["front_end"] == "torchaudio"
    assert described["dtype"] == "bfloat16, bfloat16 autocast"
    with pytest.raises(ValueError, match="does not say how its features were made"):
        cache_config({"dim": 80})
    with pytest.raises(FileNotFoundError, match="neither a feature cache folder"):
        cache_config(tmp_path / "nothing")
