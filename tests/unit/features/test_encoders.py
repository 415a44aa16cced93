"""Tests of ``speechmapper_plugin.features.encoders`` (the encoder factory used from YAML)."""

import pytest

from speechmapper_plugin.features.encoders import build_encoder
from speechmapper_plugin.features.front_ends import FbankFrontend


def test_hf_layer_out_of_range(hf_dirs):
    folder = str(hf_dirs["hubert"][0])
    with pytest.raises(ValueError, match=r"layer=7 .*valid layers are 1\.\.3") as info:
        build_encoder("hf", source=folder, layer=7)
    assert folder in str(info.value)


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
