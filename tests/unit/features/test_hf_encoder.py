"""Tests of ``speechmapper_plugin.features.hf_encoder`` (other self-supervised speech encoders through transformers' ``AutoModel`` (wav2vec2, HuBERT, mHuBERT-147, WavLM), truncated after a layer (``HFSpeechEncoder``))."""

import logging

import numpy as np
import pytest
import torch

from speechmapper_plugin.features.frames import relative_to_frames
from speechmapper_plugin.features.hf_encoder import HFSpeechEncoder

from .helpers import LOGGER, _two_waves


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
        n_frames = relative_to_frames(lens, feats.shape[1]).tolist()
        for i, wav in enumerate(singles):
            inputs = fe(wav.numpy(), sampling_rate=16000, return_tensors="pt")
            with torch.no_grad():
                ref = full(inputs["input_values"], output_hidden_states=True).hidden_states[layer]
            assert n_frames[i] == ref.shape[1]
            torch.testing.assert_close(feats[i, : n_frames[i]], ref[0], atol=1e-5, rtol=1e-4)
        assert torch.all(feats[1, n_frames[1] :] == 0)


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
