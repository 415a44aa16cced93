"""Tests of ``speechmapper_plugin.features.model_source`` (the files of an SFM given as a local folder or a Hugging Face hub id, fetched one by one with messages that say how to get them offline (``ModelNotAvailableError``))."""

import time

import pytest

from speechmapper_plugin.features.encoders import build_encoder
from speechmapper_plugin.features.model_source import ModelNotAvailableError


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
