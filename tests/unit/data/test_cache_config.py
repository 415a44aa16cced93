"""Tests of ``speechmapper_plugin.data.cache_config``: the feature-cache configuration stored
with projector checkpoints and checked where a projector meets features again."""

import logging

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechmapper_plugin.data.cache_config import (
    FeatureConfigMismatch,
    cache_description,
    check_projector_cache,
    check_same_caches,
    config_differences,
    read_beside,
    track_feature_cache,
    write_beside,
)
from speechmapper_plugin.features.cache import FeatureCacheWriter

FBANK_AVG4 = {"kind": "fbank", "source": None, "layer": None, "frame_average": 4, "dim": 80,
              "frame_rate": 25.0}  # fmt: skip


def _cache(folder, **changes):
    FeatureCacheWriter(str(folder), {**FBANK_AVG4, **changes}).close()
    return str(folder)


def test_differences_list_every_field_and_ignore_one_sided_ones():
    trained = {"dtype": "float16", "config": {**FBANK_AVG4, "front_end": "hf"}}
    found = {"dtype": "float16", "config": {**FBANK_AVG4, "frame_average": 2, "frame_rate": 50.0}}
    assert config_differences(trained, found) == [
        ("frame_average", 4, 2),
        ("frame_rate", 25.0, 50.0),
    ]
    # a local copy of a hub model is the same model
    hub = {"config": {"source": "facebook/seamless-m4t-v2-large", "layer": 24}}
    local = {"config": {"source": "/models/seamless-m4t-v2-large/", "layer": 24}}
    assert config_differences(hub, local) == []
    other = {"config": {"source": "facebook/w2v-bert-2.0", "layer": 24}}
    assert config_differences(hub, other) == [("source", "seamless-m4t-v2-large", "w2v-bert-2.0")]


def test_checkpoints_store_the_cache_and_a_resume_on_another_cache_is_refused(tmp_path):
    avg4, avg2 = (
        _cache(tmp_path / "avg4"),
        _cache(tmp_path / "avg2", frame_average=2, frame_rate=50.0),
    )
    projector = torch.nn.Linear(2, 2)
    checkpointer = Checkpointer(str(tmp_path / "save"), {"projector": projector})
    track_feature_cache(checkpointer, avg4)
    ckpt = checkpointer.save_checkpoint(meta={"loss": 1.0})
    assert read_beside(ckpt.paramfiles["projector"]) == cache_description(avg4)
    # the same run resumed on the same cache: recovered
    again = Checkpointer(str(tmp_path / "save"), {"projector": projector})
    track_feature_cache(again, avg4)
    assert again.recover_if_possible() is not None
    # resumed on a cache of another frame rate (same width): refused, fields listed
    other = Checkpointer(str(tmp_path / "save"), {"projector": projector})
    track_feature_cache(other, avg2)
    with pytest.raises(FeatureConfigMismatch) as err:
        other.recover_if_possible()
    message = str(err.value)
    assert (
        "frame_average 4 (trained) != 2" in message
        and "frame_rate 25.0 (trained) != 50.0" in message
    )
    assert avg2 in message and "--feature_folder" in message


def test_check_projector_cache(tmp_path, caplog):
    avg4, avg2 = (
        _cache(tmp_path / "avg4"),
        _cache(tmp_path / "avg2", frame_average=2, frame_rate=50.0),
    )
    projector_file = tmp_path / "out" / "projector.ckpt"
    projector_file.parent.mkdir()
    torch.save({}, projector_file)
    with caplog.at_level(logging.WARNING):  # saved before the config was stored: a warning
        assert check_projector_cache(projector_file, avg2)["config"]["frame_rate"] == 50.0
    assert "cannot be checked" in caplog.text
    write_beside(projector_file, cache_description(avg4))
    assert check_projector_cache(projector_file, avg4)["config"]["frame_average"] == 4
    with pytest.raises(FeatureConfigMismatch, match=rf"features of the cache {avg2} are not"):
        check_projector_cache(projector_file, avg2)
    with pytest.raises(FileNotFoundError, match="is not a feature cache"):
        check_projector_cache(projector_file, tmp_path)


def test_sources_of_one_run_must_share_their_features(tmp_path):
    a, b = _cache(tmp_path / "a"), _cache(tmp_path / "b")
    assert check_same_caches([a, b])["config"]["dim"] == 80
    c = _cache(tmp_path / "c", layer=12)
    with pytest.raises(
        FeatureConfigMismatch,
        match=r"caches main and asr hold .*: layer None \(cache main\) != 12 \(cache asr\)",
    ):
        check_same_caches([a, c], ["main", "asr"])


def test_front_end_and_encoder_dtype_are_compared_and_sources_by_name():
    """The extraction's encoder description (front-end, compute dtype) is part of the check."""

    def described(front_end="hf", dtype="bfloat16", source="facebook/seamless-m4t-v2-large"):
        encoder = {
            "kind": "seamless",
            "source": source,
            "revision": None,
            "layer": 24,
            "dtype": dtype,
        }
        if front_end != "hf":
            encoder["front_end"] = front_end
        config = {
            "kind": "seamless",
            "source": source,
            "layer": 24,
            "frame_average": 2,
            "dim": 1024,
            "frame_rate": 25.0,
            "encoder": encoder,
            "average": 2,
        }
        return {"dtype": "float16", "config": config}  # fmt: skip

    trained = described()
    assert config_differences(trained, described(source="/models/seamless-m4t-v2-large")) == []
    assert config_differences(trained, described(front_end="torchaudio")) == [
        ("front_end", "hf", "torchaudio")
    ]
    assert config_differences(trained, described(dtype="float32")) == [
        ("encoder_dtype", "bfloat16", "float32")
    ]
