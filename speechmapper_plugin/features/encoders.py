"""The encoder factory used from YAML: ``build_encoder("fbank" | "seamless" | "hf", ...)``.

Authors
-------
speechmapper developers, 2026
"""

from speechmapper_plugin.features.front_ends import FbankFrontend
from speechmapper_plugin.features.hf_encoder import HFSpeechEncoder
from speechmapper_plugin.features.seamless import DEFAULT_SEAMLESS_SOURCE, SeamlessSpeechEncoder

ENCODER_KINDS = ("fbank", "seamless", "hf")


def build_encoder(kind, source=None, layer=None, **kwargs):
    """Builds a feature encoder from YAML-friendly arguments.

    Arguments
    ---------
    kind : str
        ``"fbank"`` (``FbankFrontend``; no source/layer), ``"seamless"``
        (``SeamlessSpeechEncoder``; defaults: facebook/seamless-m4t-v2-large, layer 24) or
        ``"hf"`` (``HFSpeechEncoder``; source and layer required).
    source : str, optional
        Hub id or local folder.
    layer : int, optional
        1-based layer.
    **kwargs
        Passed to the encoder (``n_mels``, ``sample_rate``, ``dtype``, ``cache_dir``,
        ``revision``, ``front_end``; the weight-free ``fbank`` ignores ``dtype``,
        ``cache_dir`` and ``revision``; ``front_end`` other than ``"hf"`` is for
        ``"seamless"`` only).

    Returns
    -------
    torch.nn.Module
        The encoder.

    Example
    -------
    >>> build_encoder("fbank", n_mels=40).output_dim
    40
    """
    front_end = kwargs.pop("front_end", "hf")
    if front_end != "hf" and kind != "seamless":
        raise ValueError(
            f"front_end={front_end!r} applies to encoder kind 'seamless' only "
            f"(got kind {kind!r}); leave it at 'hf'."
        )
    if kind == "fbank":
        if source is not None or layer is not None:
            raise ValueError(
                f"Encoder kind 'fbank' takes no source/layer (got source={source!r}, "
                f"layer={layer!r}); it is a weight-free front-end."
            )
        for unused in ("dtype", "cache_dir", "revision"):  # no weights: nothing to load or cast
            kwargs.pop(unused, None)
        return FbankFrontend(**kwargs)
    if kind == "seamless":
        return SeamlessSpeechEncoder(
            front_end=front_end,
            source=DEFAULT_SEAMLESS_SOURCE if source is None else source,
            layer=24 if layer is None else layer,
            **kwargs,
        )
    if kind == "hf":
        if source is None or layer is None:
            raise ValueError(
                f"Encoder kind 'hf' needs both `source` (Hub id or folder) and `layer`; got "
                f"source={source!r}, layer={layer!r} (the paper uses layer 10 for wav2vec2 "
                "and mHuBERT-147)."
            )
        return HFSpeechEncoder(source=source, layer=layer, **kwargs)
    raise ValueError(f"Unknown encoder kind {kind!r}; valid kinds are {list(ENCODER_KINDS)}.")
