"""The SeamlessM4T-v2 speech encoder truncated after a layer (paper Sec. 3: layer 24 of
``facebook/seamless-m4t-v2-large``), loaded from the checkpoint's speech-encoder tensors only.

Authors
-------
speechmapper developers, 2026
"""

import collections
import copy
import json
import logging

import torch
from safetensors import safe_open

from speechmapper_plugin.features.encoder_base import _check_layer, _FrozenEncoder
from speechmapper_plugin.features.frames import _as_dtype, _dtype_name, relative_to_frames
from speechmapper_plugin.features.front_ends import SeamlessFrontEnd
from speechmapper_plugin.features.model_source import _ModelSource

logger = logging.getLogger(__name__)


DEFAULT_SEAMLESS_SOURCE = "facebook/seamless-m4t-v2-large"


class SeamlessSpeechEncoder(_FrozenEncoder):
    """SeamlessM4T-v2 speech encoder, truncated after conformer layer ``layer``.

    Only the speech encoder's feature projection and conformer blocks ``1..layer`` (plus the
    encoder's final layer norm when ``layer`` is the last one) are built and loaded, from the
    checkpoint's safetensors (sharded or not; keys ``speech_encoder.*`` of a full
    ``SeamlessM4Tv2Model`` checkpoint, or un-prefixed keys of a saved
    ``SeamlessM4Tv2SpeechEncoder``). Modules are created on the meta device and receive the
    checkpoint tensors directly, so the 2.3B-parameter model is never materialised; with a Hub
    id only the shards holding the needed tensors are downloaded.

    Audio goes through the model's own ``SeamlessM4TFeatureExtractor`` (80-dim Kaldi fbank,
    per-utterance normalisation, 2 frames stacked -> 160 dims, 50 frames/s, attention mask).
    The returned tensor for ``layer=k`` equals transformers' ``hidden_states[k]``: see the
    module docstring (``layer=24`` of v2-large = conformer output after the encoder's final
    layer norm, before the intermediate FFN / adapter).

    Arguments
    ---------
    source : str
        Hub id or local folder (config.json, preprocessor_config.json, *.safetensors).
    layer : int
        1-based conformer layer whose output is returned.
    dtype : torch.dtype or str
        Parameter dtype (``float32``, ``bfloat16``, ``float16``).
    cache_dir : str, optional
        Hugging Face cache folder.
    revision : str, optional
        Hub revision (Hub ids only).
    front_end : str
        ``"hf"`` (the feature extractor's numpy fbank, the reference) or ``"torchaudio"``
        (the same Kaldi fbank batched in torch ops on the model's device; see
        :class:`SeamlessFrontEnd`).

    Example
    -------
    >>> import tempfile
    >>> from transformers import SeamlessM4TFeatureExtractor, SeamlessM4Tv2Config
    >>> from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import (
    ...     SeamlessM4Tv2SpeechEncoder,
    ... )
    >>> tmp = tempfile.TemporaryDirectory()
    >>> cfg = SeamlessM4Tv2Config(
    ...     hidden_size=16, speech_encoder_layers=2, speech_encoder_attention_heads=2,
    ...     speech_encoder_intermediate_size=32,
    ... )
    >>> SeamlessM4Tv2SpeechEncoder(cfg).save_pretrained(tmp.name)
    >>> _ = SeamlessM4TFeatureExtractor().save_pretrained(tmp.name)
    >>> encoder = SeamlessSpeechEncoder(tmp.name, layer=1)
    >>> feats, lens = encoder(torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
    >>> feats.shape, lens.tolist(), encoder.frame_rate
    (torch.Size([2, 49, 16]), [1.0, 0.4897959232330322], 50.0)
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        source=DEFAULT_SEAMLESS_SOURCE,
        layer=24,
        dtype=torch.float32,
        cache_dir=None,
        revision=None,
        front_end="hf",
    ):
        super().__init__()
        from transformers import SeamlessM4TFeatureExtractor, SeamlessM4Tv2Config
        from transformers.models.seamless_m4t_v2 import modeling_seamless_m4t_v2 as sm

        files = _ModelSource(source, cache_dir=cache_dir, revision=revision)
        self.source = files.source
        self.revision = revision
        self.dtype = _as_dtype(dtype)
        config_path = files.file("config.json")
        with open(config_path, encoding="utf-8") as f:
            model_type = json.load(f).get("model_type")
        if model_type != "seamless_m4t_v2":
            raise ValueError(
                f"{self.source!r} is not a SeamlessM4T-v2 checkpoint (config.json has "
                f"model_type={model_type!r}, expected 'seamless_m4t_v2'). For wav2vec2/HuBERT "
                "models use kind 'hf' (HFSpeechEncoder)."
            )
        config = SeamlessM4Tv2Config.from_json_file(config_path)
        self.num_layers = int(config.speech_encoder_layers)
        layer = _check_layer(layer, self.num_layers, self.source)
        self.layer = layer

        self.feature_extractor = SeamlessM4TFeatureExtractor.from_json_file(
            files.file("preprocessor_config.json")
        )
        self.front_end = SeamlessFrontEnd(self.feature_extractor, front_end)
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        stride = int(self.feature_extractor.stride)
        self.output_dim = int(config.hidden_size)
        self.frame_rate = self.sample_rate / 160 / stride  # 10 ms fbank hop, frames stacked
        self.min_samples = 400 + 160 * (stride - 1)  # one stacked group of 25 ms windows

        truncated = copy.deepcopy(config)
        truncated.speech_encoder_layers = layer
        with torch.device("meta"):
            self.feature_projection = sm.SeamlessM4Tv2ConformerFeatureProjection(truncated)
            self.encoder = sm.SeamlessM4Tv2ConformerEncoder(truncated)
        if layer < self.num_layers:
            # hidden_states[k] for k < L is the raw block output: no encoder-level layer norm.
            self.encoder.layer_norm = torch.nn.Identity()

        state = _load_speech_encoder_tensors(files, self.state_dict().keys())
        try:
            self.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as err:
            raise RuntimeError(
                f"Checkpoint {self.source!r} does not match its SeamlessM4T-v2 config: {err}"
            ) from err
        if any(p.is_meta for p in self.parameters()) or any(b.is_meta for b in self.buffers()):
            raise RuntimeError(f"Some weights of {self.source!r} were not loaded.")
        self.to(self.dtype)
        self.requires_grad_(False)
        self.eval()
        logger.info(
            "Loaded SeamlessM4T-v2 speech encoder %s: conformer layers 1..%d of %d (%.1fM params)",
            self.source,
            layer,
            self.num_layers,
            sum(p.numel() for p in self.parameters()) / 1e6,
        )

    def describe(self):
        """Returns the settings that determine the features (stored in cache configs)."""
        description = {
            "kind": "seamless",
            "source": self.source,
            "revision": self.revision,
            "layer": self.layer,
            "dtype": _dtype_name(self.dtype),
        }
        if self.front_end.kind != "hf":  # caches made with the reference front-end stay valid
            description["front_end"] = self.front_end.kind
        return description

    def forward(self, wavs, wav_lens):
        """Encodes 16 kHz waveforms (:meth:`fbank`, then :meth:`encode_fbank`).

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms in [-1, 1], shape ``[B, S]``.
        wav_lens : torch.Tensor
            Relative lengths, shape ``[B]``.

        Returns
        -------
        feats : torch.Tensor
            Output of conformer layer ``layer``, shape ``[B, T, hidden_size]`` (50 frames/s),
            zero on padded frames.
        lens : torch.Tensor
            Relative lengths of ``feats``.
        """
        return self.encode_fbank(*self.fbank(wavs, wav_lens))

    def fbank(self, wavs, wav_lens):
        """The model's own front-end on a batch: stacked 160-dim fbank frames and their mask
        (:attr:`front_end` does one utterance). The ``"hf"`` front-end runs on the CPU, one
        utterance at a time; ``"torchaudio"`` runs batched on the model's device.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms in [-1, 1], shape ``[B, S]``.
        wav_lens : torch.Tensor
            Relative lengths, shape ``[B]``.

        Returns
        -------
        features : torch.Tensor
            ``[B, T, 160]`` float32, 50 frames/s (on the model's device for ``"torchaudio"``).
        mask : torch.Tensor
            ``[B, T]`` attention mask (1 on real frames).
        """
        n_samples = relative_to_frames(wav_lens, wavs.shape[1])
        if self.front_end.on_device:
            wavs = wavs.to(self.feature_projection.projection.weight.device)
        return self.front_end.batch(wavs, n_samples)

    def encode_fbank(self, features, mask):
        """Runs the conformer up to ``layer`` on :meth:`fbank` outputs (on the model's device).

        Arguments
        ---------
        features : torch.Tensor
            ``[B, T, 160]`` stacked fbank frames.
        mask : torch.Tensor
            ``[B, T]`` attention mask.

        Returns
        -------
        feats : torch.Tensor
            ``[B, T', hidden_size]``, zero on padded frames.
        lens : torch.Tensor
            Relative lengths of ``feats``.
        """
        device = self.feature_projection.projection.weight.device
        features = features.to(device=device, dtype=self.dtype)
        mask = mask.to(device)
        hidden = self.feature_projection(features)
        hidden = self.encoder(hidden, attention_mask=mask).last_hidden_state
        n_frames = mask.sum(dim=1)
        # An odd number of fbank frames leaves a half-padded stacked frame (masked): trim so the
        # longest utterance has relative length 1.0 (SpeechBrain convention).
        longest = int(n_frames.max())
        hidden = hidden[:, :longest] * mask[:, :longest, None].to(hidden.dtype)
        return hidden, n_frames.float() / longest


def _load_speech_encoder_tensors(files, wanted_keys):
    """Reads only the speech-encoder tensors named ``wanted_keys`` from the safetensors."""
    wanted_keys = set(wanted_keys)
    index_path = files.file("model.safetensors.index.json", required=False)
    if index_path is not None:
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        all_keys = weight_map.keys()
    else:
        single = files.file("model.safetensors", required=False)
        if single is None:
            raise FileNotFoundError(
                f"No safetensors weights in {files.source!r} (looked for "
                "model.safetensors.index.json and model.safetensors). Only safetensors "
                "checkpoints are supported: re-save the model with save_pretrained()."
            )
        with safe_open(single, framework="pt") as f:
            all_keys = list(f.keys())
        weight_map = dict.fromkeys(all_keys, "model.safetensors")
    if any(k.startswith("speech_encoder.") for k in all_keys):
        prefix = "speech_encoder."
    elif "feature_projection.projection.weight" in all_keys:
        prefix = ""
    else:
        raise ValueError(
            f"Checkpoint {files.source!r} holds no SeamlessM4T-v2 speech encoder weights "
            "(no 'speech_encoder.*' nor 'feature_projection.*' tensors)."
        )
    missing = sorted(k for k in wanted_keys if prefix + k not in weight_map)
    if missing:
        raise ValueError(
            f"Checkpoint {files.source!r} lacks speech encoder tensors, e.g. "
            f"{[prefix + k for k in missing[:5]]}."
        )
    by_shard = collections.defaultdict(list)
    for key in wanted_keys:
        by_shard[weight_map[prefix + key]].append(key)
    state = {}
    for shard, keys in sorted(by_shard.items()):
        path = files.file(shard)
        with safe_open(path, framework="pt") as f:
            for key in keys:
                state[key] = f.get_tensor(prefix + key)
    return state
