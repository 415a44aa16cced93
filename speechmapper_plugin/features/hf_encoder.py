"""Other self-supervised speech encoders through transformers' ``AutoModel`` (wav2vec2, HuBERT,
mHuBERT-147, WavLM), truncated after a layer (``HFSpeechEncoder``).

Authors
-------
speechmapper developers, 2026
"""

import logging
import math

import torch

from speechmapper_plugin.features.audio import _log_once
from speechmapper_plugin.features.encoder_base import _check_layer, _FrozenEncoder
from speechmapper_plugin.features.frames import (
    _as_dtype,
    _dtype_name,
    _pad_features,
    relative_to_frames,
)
from speechmapper_plugin.features.model_source import (
    ModelNotAvailableError,
    _ModelSource,
    _transformers_verbosity_error,
)

logger = logging.getLogger(__name__)


class HFSpeechEncoder(_FrozenEncoder):
    """wav2vec2 / HuBERT / mHuBERT-147 / WavLM encoder (transformers ``AutoModel``).

    The model is loaded with ``num_hidden_layers=layer``: transformer layers after ``layer``
    are neither built nor loaded. ``layer=k`` returns transformers' ``hidden_states[k]`` of the
    full model (see the module docstring): the output of transformer layer ``k``, plus the
    encoder's final layer norm if ``k`` is the last layer of a "stable layer norm" model.

    Models whose feature extractor does not return attention masks (e.g. wav2vec2-base, HuBERT
    base, mHuBERT-147: group-norm CNN trained without padding) see padding in their outputs,
    so their utterances are encoded one at a time (batch composition never changes features).

    Arguments
    ---------
    source : str
        Hub id or local folder (config.json, preprocessor_config.json, weights).
    layer : int
        1-based transformer layer whose output is returned.
    dtype : torch.dtype or str
        Parameter dtype.
    cache_dir : str, optional
        Hugging Face cache folder.
    revision : str, optional
        Hub revision (Hub ids only).

    Example
    -------
    >>> import tempfile
    >>> from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model
    >>> tmp = tempfile.TemporaryDirectory()
    >>> cfg = Wav2Vec2Config(
    ...     hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
    ...     conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4),
    ...     num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2,
    ... )
    >>> Wav2Vec2Model(cfg).save_pretrained(tmp.name)
    >>> _ = Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(tmp.name)
    >>> encoder = HFSpeechEncoder(tmp.name, layer=2)
    >>> feats, lens = encoder(torch.randn(2, 1600), torch.tensor([1.0, 0.5]))
    >>> feats.shape, lens.tolist(), encoder.frame_rate
    (torch.Size([2, 79, 16]), [1.0, 0.49367088079452515], 800.0)
    >>> tmp.cleanup()
    """

    def __init__(self, source, layer, dtype=torch.float32, cache_dir=None, revision=None):
        super().__init__()
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        files = _ModelSource(source, cache_dir=cache_dir, revision=revision)
        self.source = files.source
        self.revision = revision
        self.dtype = _as_dtype(dtype)
        files.file("config.json")  # fast, clear error when the model is not reachable
        has_preprocessor = files.file("preprocessor_config.json", required=False) is not None
        hub = {"cache_dir": cache_dir, "revision": revision}
        src = files.local or files.source
        config = AutoConfig.from_pretrained(src, **hub)
        if not (hasattr(config, "conv_stride") and hasattr(config, "num_hidden_layers")):
            raise ValueError(
                f"{self.source!r} (model_type={config.model_type!r}) is not a supported "
                "CNN + transformer speech encoder (wav2vec2, HuBERT, WavLM, data2vec-audio). "
                "For SeamlessM4T-v2 use kind 'seamless'."
            )
        self.model_type = config.model_type
        self.num_layers = int(config.num_hidden_layers)
        layer = _check_layer(layer, self.num_layers, self.source)
        self.layer = layer
        self._is_last = layer == self.num_layers
        config.num_hidden_layers = layer
        try:
            with _transformers_verbosity_error():
                model, info = AutoModel.from_pretrained(
                    src, config=config, output_loading_info=True, **hub
                )
        except OSError as err:
            if files.local is None:
                raise ModelNotAvailableError(files._unreachable("the model weights", err)) from err
            raise
        missing = [k for k in info["missing_keys"] if "masked_spec_embed" not in k]
        if missing or info.get("mismatched_keys"):
            raise RuntimeError(
                f"Checkpoint {self.source!r} does not provide all encoder weights (missing: "
                f"{missing[:5]}, mismatched: {info.get('mismatched_keys', [])[:5]}); refusing "
                "to extract features with randomly initialised layers."
            )
        layers = getattr(getattr(model, "encoder", None), "layers", None)
        if layers is None or len(layers) != layer:
            raise ValueError(
                f"{self.source!r} ({type(model).__name__}) has no `encoder.layers` list of "
                f"{layer} layers after truncation; this architecture is not supported."
            )
        self.model = model.to(self.dtype)
        if has_preprocessor:
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(src, **hub)
        else:
            self.feature_extractor = _default_ssl_feature_extractor(config, self.source)
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.use_attention_mask = bool(getattr(self.feature_extractor, "return_attention_mask", 0))
        self.conv_layers = list(zip(config.conv_kernel, config.conv_stride))
        self.output_dim = int(config.hidden_size)
        self.frame_rate = self.sample_rate / math.prod(config.conv_stride)
        receptive = 1
        for kernel, stride in reversed(self.conv_layers):
            receptive = (receptive - 1) * stride + kernel
        self.min_samples = receptive
        self._captured = None
        layers[layer - 1].register_forward_hook(self._capture)
        self.requires_grad_(False)
        self.eval()
        if not self.use_attention_mask:
            _log_once(
                ("hf-unbatched", self.source),
                "%s is used without attention masks (its feature extractor has "
                "return_attention_mask=False): utterances are encoded one at a time so padding "
                "cannot change the features",
                self.source,
            )
        logger.info(
            "Loaded %s encoder %s: layers 1..%d of %d", self.model_type, self.source, layer,
            self.num_layers,
        )  # fmt: skip

    def _capture(self, module, inputs, output):
        self._captured = output[0] if isinstance(output, tuple) else output

    def describe(self):
        """Returns the settings that determine the features (stored in cache configs)."""
        return {
            "kind": "hf",
            "source": self.source,
            "revision": self.revision,
            "model_type": self.model_type,
            "layer": self.layer,
            "dtype": _dtype_name(self.dtype),
        }

    def _frames(self, n_samples):
        for kernel, stride in self.conv_layers:
            n_samples = torch.div(n_samples - kernel, stride, rounding_mode="floor") + 1
        return n_samples

    def _run(self, input_values, attention_mask):
        device = next(self.model.parameters()).device
        self._captured = None
        out = self.model(
            input_values.to(device=device, dtype=self.dtype),
            attention_mask=None if attention_mask is None else attention_mask.to(device),
            output_hidden_states=self._is_last,
        )
        hidden = out.hidden_states[-1] if self._is_last else self._captured
        self._captured = None
        return hidden

    def forward(self, wavs, wav_lens):
        """Encodes waveforms at ``self.sample_rate``.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms, shape ``[B, S]``.
        wav_lens : torch.Tensor
            Relative lengths, shape ``[B]``.

        Returns
        -------
        feats : torch.Tensor
            Output of layer ``layer``, shape ``[B, T, hidden_size]``, zero on padded frames.
        lens : torch.Tensor
            Relative lengths of ``feats``.
        """
        n_samples = relative_to_frames(wav_lens, wavs.shape[1]).tolist()
        raw = [wavs[i, :n].float().cpu().numpy() for i, n in enumerate(n_samples)]
        fe_kwargs = {"sampling_rate": self.sample_rate, "return_tensors": "pt"}
        if self.use_attention_mask:
            inputs = self.feature_extractor(
                raw, padding=True, return_attention_mask=True, **fe_kwargs
            )
            hidden = self._run(inputs["input_values"], inputs["attention_mask"])
            n_frames = self._frames(inputs["attention_mask"].sum(dim=1)).to(hidden.device)
            mask = torch.arange(hidden.shape[1], device=hidden.device)[None] < n_frames[:, None]
            return hidden * mask[..., None].to(hidden.dtype), n_frames.float() / hidden.shape[1]
        outputs = []
        for wav in raw:
            inputs = self.feature_extractor(wav, **fe_kwargs)
            outputs.append(self._run(inputs["input_values"], None)[0])
        return _pad_features(outputs)


def _default_ssl_feature_extractor(config, source):
    """Feature extractor for a checkpoint without preprocessor_config.json.

    Follows the fairseq convention of these models: checkpoints with a layer-norm CNN
    (wav2vec2 large/lv60, HuBERT large) were trained on normalised waveforms with padding masks;
    group-norm ones (base models, mHuBERT-147) on raw waveforms without masks.
    """
    from transformers import Wav2Vec2FeatureExtractor

    layer_norm_cnn = getattr(config, "feat_extract_norm", "group") == "layer"
    logger.warning(
        "%s has no preprocessor_config.json: using Wav2Vec2FeatureExtractor(sampling_rate=16000, "
        "do_normalize=%s, return_attention_mask=%s) as implied by feat_extract_norm=%r",
        source,
        layer_norm_cnn,
        layer_norm_cnn,
        getattr(config, "feat_extract_norm", None),
    )
    return Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=layer_norm_cnn, return_attention_mask=layer_norm_cnn
    )
