"""Speech-foundation-model (SFM) features, extracted once into a cache (core layer).

The SFM is frozen in SpeechMapper, so its features are extracted ONCE into a cache that
stage-1 and stage-2 training read (paper Sec. 3: SeamlessM4T-v2-large, 24th speech-encoder
layer, every 2 frames averaged).

- ``audio``: reading files and segments, resampling and down-mixing (counted, logged once).
- ``front_ends``: the weight-free fbank stand-in and the Seamless Kaldi fbank (two backends:
  transformers' numpy reference on the CPU, or batched torch ops on the encoder's device).
- Encoders, all ``torch.nn.Module`` with the interface ``forward(wavs [B, S], wav_lens [B]
  relative) -> (feats [B, T, D], lens [B] relative)`` and the attributes ``output_dim``,
  ``frame_rate``, ``sample_rate`` and ``min_samples``: ``seamless.SeamlessSpeechEncoder``,
  ``hf_encoder.HFSpeechEncoder`` (wav2vec2 / HuBERT / mHuBERT-147 / WavLM),
  ``front_ends.FbankFrontend``; ``encoders.build_encoder`` is the YAML factory;
  ``model_source`` and ``encoder_base`` hold what they share.
- ``frames``: relative lengths to frames, averaging every ``k`` frames.
- ``cache``: fp16 safetensors shards indexed by utterance id, atomic and resumable, one locked
  writer per folder, damaged shards set aside; ``cache_config`` describes how a cache's features were
  made (``data.cache_config`` stores it with projectors and compares it).
- ``extraction``: ``extract_to_cache``, the resumable extraction loop (batches of bounded
  padded seconds, ``plan_batches``, written every few seconds).

Layer index convention (both transformer encoders): ``layer=k`` (1-based) returns exactly
what transformers returns as ``hidden_states[k]`` when the full model is run with
``output_hidden_states=True``: for ``k < L`` the raw output of block ``k``; for ``k == L``
the encoder's last entry, i.e. after the encoder-level final ``layer_norm`` where the
architecture has one (SeamlessM4T-v2 conformer encoder; "stable layer norm" wav2vec2/HuBERT
variants). For SeamlessM4T-v2-large (``L = 24``), ``layer=24`` is therefore
``speech_encoder.encoder.layer_norm(<output of conformer block 24>)``: the conformer encoder
output (1024 dims, 50 frames/s), not the speech encoder's ``last_hidden_state`` (after the
length adapter). Blocks after ``layer`` are never built nor loaded.
"""

from speechmapper_plugin.features.audio import AudioError, load_audio
from speechmapper_plugin.features.cache import (
    CacheConfigError,
    CacheShardError,
    FeatureCache,
    FeatureCacheWriter,
    cache_config,
)
from speechmapper_plugin.features.encoders import build_encoder
from speechmapper_plugin.features.extraction import extract_to_cache, plan_batches
from speechmapper_plugin.features.frames import average_frames, relative_to_frames
from speechmapper_plugin.features.front_ends import FbankFrontend, SeamlessFrontEnd
from speechmapper_plugin.features.hf_encoder import HFSpeechEncoder
from speechmapper_plugin.features.model_source import ModelNotAvailableError
from speechmapper_plugin.features.seamless import SeamlessSpeechEncoder

__all__ = [
    "AudioError",
    "CacheConfigError",
    "CacheShardError",
    "FbankFrontend",
    "FeatureCache",
    "FeatureCacheWriter",
    "HFSpeechEncoder",
    "ModelNotAvailableError",
    "SeamlessFrontEnd",
    "SeamlessSpeechEncoder",
    "average_frames",
    "build_encoder",
    "cache_config",
    "extract_to_cache",
    "load_audio",
    "plan_batches",
    "relative_to_frames",
]
