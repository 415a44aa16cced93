"""Fixtures shared by the tests of ``speechmapper_plugin.features``."""

import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from .helpers import _noise


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
