"""Speech-foundation-model (SFM) feature extraction and the on-disk feature cache.

The SFM is frozen in SpeechMapper, so its features are extracted ONCE into a cache that stage-1
and stage-2 training read (paper Sec. 3: SeamlessM4T-v2-large, 24th speech-encoder layer,
every 2 frames averaged).

Contents
--------
- ``load_audio``: soundfile reader with resampling / down-mixing (counted and logged).
- Encoders, all ``torch.nn.Module`` with the interface
  ``forward(wavs [B, S], wav_lens [B] relative) -> (feats [B, T, D], lens [B] relative)`` and the
  attributes ``output_dim``, ``frame_rate`` (output frames per second), ``sample_rate`` (expected
  input rate) and ``min_samples`` (shortest input that yields one output frame):

  * ``FbankFrontend``: weight-free log-mel filterbanks (stands in for the SFM offline).
  * ``SeamlessSpeechEncoder``: the SeamlessM4T-v2 speech encoder only, truncated after ``layer``.
  * ``HFSpeechEncoder``: wav2vec2 / HuBERT / mHuBERT-147 / WavLM (transformers ``AutoModel``),
    truncated after ``layer``.
  * ``build_encoder``: factory used from YAML.
- ``average_frames``: mean of every ``k`` consecutive valid frames.
- ``FeatureCacheWriter`` / ``FeatureCache``: fp16 safetensors shards indexed by utterance id,
  atomic and resumable.
- ``extract_to_cache``: resumable batch extraction of a corpus into a cache.

Layer index convention (both transformer encoders)
--------------------------------------------------
``layer=k`` (1-based) returns exactly what transformers returns as ``hidden_states[k]`` when the
full model is run with ``output_hidden_states=True``:

- for ``k < L`` (``L`` = number of layers) the raw output of transformer/conformer block ``k``;
- for ``k == L`` the encoder's last entry, i.e. after the encoder-level final ``layer_norm``
  where the architecture has one (SeamlessM4T-v2 conformer encoder; "stable layer norm"
  wav2vec2/HuBERT variants); post-LN wav2vec2/HuBERT have none, so it is block ``L``'s output.

For SeamlessM4T-v2-large (``L = 24``), ``layer=24`` is therefore
``speech_encoder.encoder.layer_norm(<output of conformer block 24>)``: the conformer encoder
output (1024 dims, 50 frames/s), NOT the speech encoder's ``last_hidden_state`` which comes after
the intermediate FFN, the length-downsampling adapter (8x) and ``inner_layer_norm``. Blocks after
``layer`` are never built nor loaded (and neither are the adapter, the text/unit decoders nor the
vocoder of the checkpoint).

Authors
 * SpeechMapper plugin contributors 2026
"""

import collections
import contextlib
import copy
import json
import logging
import math
import operator
import os
import re
import time
from collections.abc import Mapping

import soundfile as sf
import torch
from safetensors import safe_open
from safetensors.torch import save_file

logger = logging.getLogger(__name__)

DEFAULT_SEAMLESS_SOURCE = "facebook/seamless-m4t-v2-large"

# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------


class AudioError(RuntimeError):
    """An audio file is missing or cannot be decoded (the message names the file and why)."""


# Process-wide counters of the audio conversions done by ``load_audio`` ("resampled",
# "downmixed"). Callers that need their own tally pass a ``stats`` Counter instead.
AUDIO_COUNTERS = collections.Counter()
_LOGGED_ONCE = set()
_LAST_AV_DECODE = {}  # the last file decoded by PyAV (segmented corpora read it many times)


def _log_once(key, msg, *args):
    """Logs ``msg`` at INFO the first time ``key`` is seen in this process, at DEBUG after."""
    if key in _LOGGED_ONCE:
        logger.debug(msg, *args)
    else:
        _LOGGED_ONCE.add(key)
        logger.info(msg + " (logged once per condition; counted in the summary)", *args)


def decode_with_av(path):
    """Decode an audio file that libsndfile cannot read (m4a/aac...) with PyAV.

    Returns
    -------
    wav : torch.Tensor
        float32, shape ``[samples, channels]``.
    sample_rate : int

    Raises
    ------
    AudioError
        PyAV is not installed (``pip install av``), or the file does not decode.
    """
    try:
        import av
    except ImportError:
        raise AudioError(
            f"{path!r} is in a format libsndfile does not read; decoding it needs PyAV "
            "(`pip install av`, in requirements.txt)."
        ) from None
    import numpy as np

    try:
        with av.open(os.fspath(path)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioError(f"{path!r} holds no audio stream.")
            rate = stream.codec_context.sample_rate
            chunks = []
            for frame in container.decode(stream):
                array = frame.to_ndarray().astype(np.float32)
                if frame.format.is_planar:
                    chunks.append(array.T)  # [channels, samples] -> [samples, channels]
                else:
                    chunks.append(array.reshape(-1, len(frame.layout.channels)))
                if frame.format.name.startswith(("s16", "s32")):  # integer PCM
                    chunks[-1] = chunks[-1] / float(2 ** (8 * frame.format.bytes - 1))
    except AudioError:
        raise
    except Exception as err:  # PyAV raises its own error classes (av.error.*)
        raise AudioError(f"Cannot decode audio file {path!r} with PyAV: {err}") from err
    if not chunks:
        raise AudioError(f"Audio file {path!r} contains no samples.")
    return torch.from_numpy(np.concatenate(chunks).astype(np.float32)), rate


def load_audio(path, sample_rate=16000, stats=None, start=None, stop=None):
    """Reads an audio file (or a segment of it) as a mono float waveform at ``sample_rate``.

    Multichannel audio is down-mixed (mean over channels) and a different sampling rate is
    resampled with ``torchaudio.functional.resample``; both are logged (INFO, once per distinct
    condition) and counted in ``AUDIO_COUNTERS`` and, if given, in ``stats``.

    Arguments
    ---------
    path : str or os.PathLike
        Audio file (any format libsndfile reads: wav, flac, ogg, mp3...).
    sample_rate : int
        Target sampling rate.
    stats : collections.Counter, optional
        Incremented with the keys ``"resampled"`` and ``"downmixed"``.
    start, stop : float, optional
        Segment bounds in seconds (segmented corpora such as EuroParl-ST); the whole file
        when None.

    Returns
    -------
    torch.Tensor
        float32 waveform, shape ``[samples]``.

    Raises
    ------
    AudioError
        The file is missing, is not decodable audio, is empty or holds NaN/inf samples.

    Example
    -------
    >>> import numpy as np, soundfile, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "a.wav")
    >>> soundfile.write(path, np.zeros((800, 2), dtype="float32"), 8000)
    >>> load_audio(path, sample_rate=16000).shape
    torch.Size([1600])
    >>> load_audio(path, sample_rate=16000, start=0.025, stop=0.075).shape
    torch.Size([800])
    >>> tmp.cleanup()
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(
            f"Audio file not found: {path!r} (relative paths are resolved from {os.getcwd()!r}). "
            "Check the path in the data manifest."
        )
    if os.path.isdir(path):
        raise AudioError(f"Audio path {path!r} is a directory, not an audio file.")
    try:
        info = sf.info(path)
        first, last = _segment_frames(path, info.samplerate, start, stop)
        data, orig_sr = sf.read(path, dtype="float32", always_2d=True, start=first, stop=last)
        wav = torch.from_numpy(data)
    except (RuntimeError, OSError, ValueError, TypeError) as err:
        if isinstance(err, AudioError):
            raise
        try:  # m4a/aac and other containers libsndfile does not read
            if _LAST_AV_DECODE.get("path") != path:  # segments of one file come in a row
                _LAST_AV_DECODE.clear()
                _LAST_AV_DECODE.update(zip(("path", "wav", "rate"), (path, *decode_with_av(path))))
            wav, orig_sr = _LAST_AV_DECODE["wav"], _LAST_AV_DECODE["rate"]
        except AudioError as av_err:
            raise AudioError(
                f"Cannot decode audio file {path!r}: {err}. The file is corrupt, truncated or "
                f"not in a format libsndfile reads (wav, flac, ogg, mp3); {av_err}"
            ) from err
        first, last = _segment_frames(path, orig_sr, start, stop)
        wav = wav[first:last].clone()
    if wav.shape[0] == 0:
        raise AudioError(
            f"Audio file {path!r} contains no samples"
            + (f" between {start} s and {stop} s." if start is not None else ".")
        )
    n_channels = wav.shape[1]
    if n_channels > 1:
        wav = wav.mean(dim=1)
        _count("downmixed", stats)
        _log_once(
            ("downmix", n_channels),
            "Down-mixing %d-channel audio to mono (mean over channels), first file: %s",
            n_channels,
            path,
        )
    else:
        wav = wav[:, 0]
    if orig_sr != sample_rate:
        import torchaudio.functional

        wav = torchaudio.functional.resample(wav, orig_sr, sample_rate)
        _count("resampled", stats)
        _log_once(
            ("resample", orig_sr, sample_rate),
            "Resampling audio from %d Hz to %d Hz, first file: %s",
            orig_sr,
            sample_rate,
            path,
        )
    if not torch.isfinite(wav).all():
        raise AudioError(f"Audio file {path!r} contains NaN or infinite samples.")
    return wav.contiguous()


def _segment_frames(path, rate, start, stop):
    """Frame bounds of a ``[start, stop)`` segment in seconds (None: whole file)."""
    if start is None and stop is None:
        return 0, None
    first = int(round(float(start or 0.0) * rate))
    last = None if stop is None else int(round(float(stop) * rate))
    if first < 0 or (last is not None and last <= first):
        raise AudioError(f"Bad segment start={start} stop={stop} for {path!r}.")
    return first, last


def _count(key, stats):
    AUDIO_COUNTERS[key] += 1
    if stats is not None:
        stats[key] += 1


# --------------------------------------------------------------------------------------------
# Lengths and frame averaging
# --------------------------------------------------------------------------------------------


def relative_to_frames(lens, total):
    """Converts SpeechBrain relative lengths into integer frame counts.

    Arguments
    ---------
    lens : torch.Tensor
        Relative lengths in (0, 1], shape ``[B]``.
    total : int
        Padded length the relative lengths refer to.

    Returns
    -------
    torch.LongTensor
        Frame counts, shape ``[B]``, within ``[0, total]``.

    Example
    -------
    >>> relative_to_frames(torch.tensor([1.0, 0.5]), 10)
    tensor([10,  5])
    """
    return torch.round(lens.float() * total).long().clamp(0, total)


def average_frames(feats, lens, k):
    """Averages every ``k`` consecutive valid frames.

    The last, partial group of an utterance averages only its valid frames and padding never
    leaks into valid outputs (padded outputs are zero). ``k=1`` returns the inputs unchanged.

    Arguments
    ---------
    feats : torch.Tensor
        Features, shape ``[B, T, D]``.
    lens : torch.Tensor
        Relative lengths (SpeechBrain convention), shape ``[B]``.
    k : int
        Number of frames averaged together (>= 1).

    Returns
    -------
    feats : torch.Tensor
        Shape ``[B, ceil(T / k), D]``, same dtype as the input.
    lens : torch.Tensor
        Relative lengths of the output: ``ceil(n / k) / ceil(T / k)`` for ``n`` valid frames.

    Example
    -------
    >>> x = torch.arange(5.0).view(1, 5, 1)
    >>> y, y_lens = average_frames(x, torch.tensor([1.0]), 2)
    >>> y.flatten().tolist(), y_lens.tolist()
    ([0.5, 2.5, 4.0], [1.0])
    """
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"average_frames: k must be a positive integer, got {k!r}.")
    k = int(k)
    if feats.dim() != 3:
        raise ValueError(f"average_frames expects feats [B, T, D], got shape {tuple(feats.shape)}.")
    if k == 1:
        return feats, lens
    batch, total, dim = feats.shape
    n_valid = relative_to_frames(lens, total).to(feats.device)
    total_out = math.ceil(total / k)
    mask = torch.arange(total, device=feats.device)[None, :] < n_valid[:, None]
    x = feats.float() * mask[..., None]
    pad = total_out * k - total
    x = torch.nn.functional.pad(x, (0, 0, 0, pad))
    mask = torch.nn.functional.pad(mask, (0, pad))
    sums = x.view(batch, total_out, k, dim).sum(dim=2)
    counts = mask.view(batch, total_out, k).sum(dim=2).clamp(min=1)
    out = (sums / counts[..., None]).to(feats.dtype)
    n_out = torch.div(n_valid + k - 1, k, rounding_mode="floor")
    return out, (n_out.float() / total_out).to(lens.device)


def _pad_waveforms(wavs):
    """Right-pads a list of 1-D waveforms into ``[B, S]`` with relative lengths."""
    lengths = torch.tensor([w.shape[0] for w in wavs], dtype=torch.long)
    longest = int(lengths.max())
    batch = torch.zeros(len(wavs), longest, dtype=torch.float32)
    for i, wav in enumerate(wavs):
        batch[i, : wav.shape[0]] = wav
    return batch, lengths.float() / longest


def _pad_features(feats_list):
    """Right-pads a list of ``[T_i, D]`` tensors into ``[B, T, D]`` with relative lengths."""
    lengths = torch.tensor([f.shape[0] for f in feats_list], dtype=torch.long)
    longest = int(lengths.max())
    first = feats_list[0]
    out = first.new_zeros(len(feats_list), longest, first.shape[1])
    for i, feats in enumerate(feats_list):
        out[i, : feats.shape[0]] = feats
    return out, lengths.float().to(first.device) / longest


def _as_dtype(dtype):
    """Parses a torch dtype given as a dtype or a string (YAML)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    key = str(dtype).replace("torch.", "").lower()
    if key not in names:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of {sorted(names)}.")
    return names[key]


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


# --------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------


class FbankFrontend(torch.nn.Module):
    """Weight-free log-mel filterbank front-end (stands in for the SFM in offline presets).

    SpeechBrain ``Fbank`` (25 ms window, 10 ms hop, centred frames) followed by a
    per-utterance mean/variance normalisation over the valid frames; padded frames are zero.
    Each utterance gets ``samples // hop + 1`` frames, exactly as if it were processed alone.

    Arguments
    ---------
    n_mels : int
        Number of mel filters (the output dimension).
    sample_rate : int
        Input sampling rate.

    Example
    -------
    >>> frontend = FbankFrontend(n_mels=40)
    >>> feats, lens = frontend(torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
    >>> feats.shape, lens.tolist(), frontend.frame_rate
    (torch.Size([2, 101, 40]), [1.0, 0.5049505233764648], 100.0)
    """

    def __init__(self, n_mels=80, sample_rate=16000):
        super().__init__()
        from speechbrain.lobes.features import Fbank

        self.n_mels = int(n_mels)
        self.sample_rate = int(sample_rate)
        self.hop_length = int(round(self.sample_rate * 10 / 1000))
        self.fbank = Fbank(n_mels=self.n_mels, sample_rate=self.sample_rate, hop_length=10)
        self.output_dim = self.n_mels
        self.frame_rate = self.sample_rate / self.hop_length
        self.min_samples = 1

    def describe(self):
        """Returns the settings that determine the features (stored in cache configs).

        Example
        -------
        >>> FbankFrontend().describe()["kind"]
        'fbank'
        """
        return {"kind": "fbank", "n_mels": self.n_mels, "sample_rate": self.sample_rate}

    def forward(self, wavs, wav_lens):
        """Computes normalised log-mel features.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms, shape ``[B, S]``.
        wav_lens : torch.Tensor
            Relative lengths, shape ``[B]``.

        Returns
        -------
        feats : torch.Tensor
            Shape ``[B, T, n_mels]`` with ``T = S // hop + 1``.
        lens : torch.Tensor
            Relative lengths of ``feats``.
        """
        n_samples = relative_to_frames(wav_lens, wavs.shape[1]).to(wavs.device)
        feats = self.fbank(wavs.float())
        total = feats.shape[1]
        n_frames = (torch.div(n_samples, self.hop_length, rounding_mode="floor") + 1).clamp(
            max=total
        )
        mask = (torch.arange(total, device=wavs.device)[None, :] < n_frames[:, None])[..., None]
        count = n_frames.float()[:, None, None]
        mean = (feats * mask).sum(dim=1, keepdim=True) / count
        var = (((feats - mean) * mask) ** 2).sum(dim=1, keepdim=True) / count
        feats = (feats - mean) / torch.sqrt(var + 1e-10) * mask
        return feats, n_frames.float() / total


class ModelNotAvailableError(OSError):
    """A model could not be found locally nor fetched from the Hugging Face Hub."""


def _looks_like_path(source):
    return (
        source.startswith(("/", "./", "../", "~", "."))
        or "\\" in source
        or source.count("/") > 1
        or os.path.isabs(source)
    )


class _ModelSource:
    """Resolves the files of a model given as a local folder or a Hub id."""

    def __init__(self, source, cache_dir=None, revision=None):
        if not isinstance(source, (str, os.PathLike)) or not str(source):
            raise ValueError(f"Model source must be a Hub id or a folder path, got {source!r}.")
        self.source = os.fspath(source)
        self.cache_dir = cache_dir
        self.revision = revision
        expanded = os.path.expanduser(self.source)
        if os.path.isdir(expanded):
            self.local = expanded
            if revision is not None:
                raise ValueError(
                    f"revision={revision!r} only applies to Hub ids, but {self.source!r} is a "
                    "local folder: remove `revision`."
                )
        elif os.path.exists(expanded):
            raise ValueError(
                f"Model source {self.source!r} is a file; pass the folder that holds "
                "config.json and the weights (or a Hub id)."
            )
        elif _looks_like_path(self.source):
            raise FileNotFoundError(
                f"Model folder {self.source!r} does not exist. Pass an existing local folder or "
                "a Hugging Face Hub id such as 'facebook/seamless-m4t-v2-large'."
            )
        else:
            self.local = None

    def _unreachable(self, filename, err):
        from huggingface_hub import constants

        offline = bool(constants.HF_HUB_OFFLINE)
        why = "offline mode is on (HF_HUB_OFFLINE=1)" if offline else "the Hub is unreachable"
        cache = self.cache_dir or constants.HF_HUB_CACHE
        return (
            f"Model {self.source!r} could not be loaded: {filename!r} is not in the local "
            f"Hugging Face cache ({cache}) and {why}. Download the model first on a machine with "
            f"network access, e.g. `huggingface-cli download {self.source}` (into the same cache: "
            f"set HF_HOME/HF_HUB_CACHE accordingly), or pass the path of a local folder holding "
            f"the model (config.json, preprocessor_config.json, *.safetensors) as the source. "
            f"[{type(err).__name__}: {err}]"
        )

    def file(self, filename, required=True):
        """Returns the local path of ``filename`` (downloading it if needed), or ``None``."""
        if self.local is not None:
            path = os.path.join(self.local, filename)
            if os.path.isfile(path):
                return path
            if required:
                raise FileNotFoundError(
                    f"Model folder {self.local!r} has no {filename!r}; it must contain the "
                    "files of a saved Hugging Face model (save_pretrained or a Hub snapshot)."
                )
            return None
        import requests
        from huggingface_hub import errors, hf_hub_download

        try:
            return hf_hub_download(
                self.source, filename, cache_dir=self.cache_dir, revision=self.revision
            )
        except errors.LocalEntryNotFoundError as err:
            if not required:
                return None
            raise ModelNotAvailableError(self._unreachable(filename, err)) from err
        except errors.EntryNotFoundError as err:
            if not required:
                return None
            raise FileNotFoundError(
                f"Hub repository {self.source!r} has no file {filename!r}."
            ) from err
        except errors.RevisionNotFoundError as err:
            raise ModelNotAvailableError(
                f"Revision {self.revision!r} of Hub repository {self.source!r} does not exist."
            ) from err
        except errors.RepositoryNotFoundError as err:
            raise ModelNotAvailableError(
                f"Hub repository {self.source!r} was not found (or it is private/gated: run "
                "`huggingface-cli login` and accept its licence). If it is meant to be a local "
                "folder, that folder does not exist."
            ) from err
        except (errors.OfflineModeIsEnabled, requests.ConnectionError, requests.Timeout) as err:
            raise ModelNotAvailableError(self._unreachable(filename, err)) from err


def _check_layer(layer, num_layers, source):
    """Returns ``layer`` as an int if it is a valid 1-based layer index, else ValueError."""
    try:
        index = operator.index(layer) if not isinstance(layer, bool) else None
    except TypeError:
        index = None
    if index is None or not 1 <= index <= num_layers:
        raise ValueError(
            f"layer={layer!r} is out of range for model {source!r}, which has {num_layers} "
            f"layers: valid layers are 1..{num_layers} (1-based; {num_layers} = last layer)."
        )
    return index


class _FrozenEncoder(torch.nn.Module):
    """Common behaviour of the pretrained encoders: always in eval mode, no gradients."""

    def train(self, mode=True):
        """Keeps the frozen encoder in eval mode (dropout / LayerDrop off) whatever ``mode``."""
        return super().train(False)


FRONT_ENDS = ("hf", "torchaudio")


class SeamlessFrontEnd:
    """SeamlessM4T-v2's front-end for one utterance (picklable, CPU, no weights).

    80-dim Kaldi fbank of the 16-bit-scaled waveform, normalization of each mel bin over the
    utterance and 2 frames stacked into 160 dims (an odd last frame is zero-padded and
    masked), as ``SeamlessM4TFeatureExtractor`` computes them. Padding per-utterance outputs
    with zeros (features and mask) gives exactly the extractor's batched output, so
    extraction runs it in DataLoader workers, in parallel with the encoder
    (``extract_to_cache(num_workers=...)``).

    Arguments
    ---------
    feature_extractor : transformers.SeamlessM4TFeatureExtractor
        The checkpoint's feature extractor (sampling rate, stride, mel bins).
    kind : str
        ``"hf"``: the extractor itself (numpy, the reference). ``"torchaudio"``:
        ``torchaudio.compliance.kaldi.fbank`` with the same settings, vectorized (about 3x
        faster on a CPU core); its log-mel energies differ from the reference by at most
        ~5e-4 (float rounding), and the feature cache records the choice.

    Example
    -------
    >>> from transformers import SeamlessM4TFeatureExtractor
    >>> wav = torch.randn(16000) / 10
    >>> features, mask = SeamlessFrontEnd(SeamlessM4TFeatureExtractor())(wav)
    >>> features.shape, int(mask.sum())
    (torch.Size([49, 160]), 49)
    >>> fast, _ = SeamlessFrontEnd(SeamlessM4TFeatureExtractor(), "torchaudio")(wav)
    >>> bool((fast - features).abs().max() < 1e-3)
    True
    """

    def __init__(self, feature_extractor, kind="hf"):
        if kind not in FRONT_ENDS:
            raise ValueError(f"front_end must be one of {FRONT_ENDS}, got {kind!r}.")
        self.feature_extractor = feature_extractor
        self.kind = kind
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.stride = int(feature_extractor.stride)

    def __call__(self, wav):
        """Features ``[T, 80 * stride]`` and mask ``[T]`` of a 1-D waveform."""
        if self.kind == "hf":
            inputs = self.feature_extractor(
                [wav.float().cpu().numpy()],
                sampling_rate=self.sample_rate,
                padding=True,
                return_attention_mask=True,
                return_tensors="pt",
            )
            return inputs["input_features"][0], inputs["attention_mask"][0]
        from torchaudio.compliance import kaldi

        fbank = kaldi.fbank(
            wav.float().cpu()[None] * 2**15,  # Kaldi compliance: 16-bit signed range
            num_mel_bins=int(self.feature_extractor.num_mel_bins),
            sample_frequency=self.sample_rate,
            frame_length=25.0,
            frame_shift=10.0,
            dither=0.0,
            window_type="povey",
            preemphasis_coefficient=0.97,
            remove_dc_offset=True,
            energy_floor=0.0,
        )
        fbank = (fbank - fbank.mean(0)) / torch.sqrt(fbank.var(0, unbiased=True) + 1e-7)
        frames = fbank.shape[0]
        rest = -frames % self.stride
        mask = torch.ones(frames + rest, dtype=torch.long)
        if rest:
            fbank = torch.cat([fbank, fbank.new_zeros(rest, fbank.shape[1])])
            mask[frames:] = 0
        stacked = fbank.reshape(-1, fbank.shape[1] * self.stride)
        return stacked, mask[self.stride - 1 :: self.stride]


def pad_front_end(outputs):
    """Right-pads per-utterance front-end outputs into a batch (zeros, mask 0).

    Arguments
    ---------
    outputs : list of tuple
        ``(features [T_i, F], mask [T_i])`` pairs.

    Returns
    -------
    features : torch.Tensor
        ``[B, T, F]``.
    mask : torch.Tensor
        ``[B, T]``.

    Example
    -------
    >>> feats, mask = pad_front_end([(torch.ones(3, 2), torch.ones(3)), (torch.ones(1, 2), torch.ones(1))])
    >>> feats.shape, mask.tolist()
    (torch.Size([2, 3, 2]), [[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    """
    features, _ = _pad_features([f for f, _ in outputs])
    mask, _ = _pad_features([m[:, None] for _, m in outputs])
    return features, mask[..., 0]


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
        (the same Kaldi fbank vectorized, ~3x faster; see :class:`SeamlessFrontEnd`).

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
        """The model's own front-end on the CPU: stacked 160-dim fbank frames and their mask
        (a whole batch; :attr:`front_end` does one utterance).

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms in [-1, 1], shape ``[B, S]``.
        wav_lens : torch.Tensor
            Relative lengths, shape ``[B]``.

        Returns
        -------
        features : torch.Tensor
            ``[B, T, 160]`` float32 (CPU), 50 frames/s.
        mask : torch.Tensor
            ``[B, T]`` attention mask (1 on real frames).
        """
        n_samples = relative_to_frames(wav_lens, wavs.shape[1]).tolist()
        return pad_front_end([self.front_end(wavs[i, :n]) for i, n in enumerate(n_samples)])

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


@contextlib.contextmanager
def _transformers_verbosity_error():
    """Silences transformers' own load reports (we check loading info ourselves)."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


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


# --------------------------------------------------------------------------------------------
# Feature cache
# --------------------------------------------------------------------------------------------

CACHE_FORMAT = "speechmapper-feature-cache"
CACHE_VERSION = 1
_CACHE_JSON = "cache.json"
_SHARD_RE = re.compile(r"^shard-(\d{6})\.safetensors$")
_TMP_SUFFIX = ".tmp"


class CacheConfigError(ValueError):
    """A feature cache is reopened with a configuration different from the stored one."""


def _normalize_config(config):
    if not isinstance(config, Mapping):
        raise TypeError(f"Cache config must be a dict, got {type(config).__name__}.")
    try:
        return json.loads(json.dumps(dict(config), sort_keys=True))
    except (TypeError, ValueError) as err:
        raise ValueError(f"Cache config must be JSON-serialisable: {err}") from err


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems / platforms cannot fsync (e.g. directories)
        pass
    finally:
        os.close(fd)


def _atomic_write_json(path, obj):
    tmp = path + _TMP_SUFFIX
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_cache_meta(folder):
    path = os.path.join(folder, _CACHE_JSON)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"Feature cache description {path!r} is not valid JSON: {err}") from err
    if meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"{path!r} is not a {CACHE_FORMAT} description.")
    if meta.get("version") != CACHE_VERSION:
        raise ValueError(
            f"Feature cache {folder!r} has format version {meta.get('version')!r}; this code "
            f"reads version {CACHE_VERSION}. Re-extract the features into a new folder."
        )
    return meta


def _list_shards(folder):
    """Sorted ``(number, filename)`` of the complete shards of a cache folder."""
    shards = []
    for name in os.listdir(folder):
        match = _SHARD_RE.match(name)
        if match:
            shards.append((int(match.group(1)), name))
    return sorted(shards)


def _scan_shards(folder):
    """Reads the shard headers: ``{utt_id: (shard_filename, n_frames)}``."""
    where = {}
    for _, name in _list_shards(folder):
        with safe_open(os.path.join(folder, name), framework="pt") as f:
            for key in f.keys():
                if key in where:
                    raise RuntimeError(
                        f"Corrupt feature cache {folder!r}: utterance {key!r} is stored in both "
                        f"{where[key][0]} and {name}."
                    )
                where[key] = (name, int(f.get_slice(key).get_shape()[0]))
    return where


def _config_diff(stored, requested):
    keys = sorted(set(stored) | set(requested))
    lines = []
    for key in keys:
        if stored.get(key, "<absent>") != requested.get(key, "<absent>"):
            lines.append(
                f"  {key}: cache has {stored.get(key, '<absent>')!r}, "
                f"requested {requested.get(key, '<absent>')!r}"
            )
    return "\n".join(lines)


class FeatureCacheWriter:
    """Writes features into a sharded, resumable fp16 cache folder.

    Features are buffered and written as safetensors shards ``shard-NNNNNN.safetensors`` (one
    fp16 tensor ``[T, D]`` per utterance, key = utterance id). A shard is written under a
    ``.tmp`` name, fsynced and renamed only when complete, so an interruption never leaves a
    corrupt shard; leftover ``.tmp`` files are removed when the folder is reopened. ``config``
    is stored in ``cache.json``; reopening with a different config raises ``CacheConfigError``.
    Used as a context manager, the buffered utterances are written on exit (also when an
    exception interrupts the caller: they are complete, so resuming does not redo them).

    Arguments
    ---------
    folder : str
        Cache folder (created if needed).
    config : dict
        JSON-serialisable description of how the features were made (encoder, layer,
        averaging, dim...). If it has a ``"dim"`` key, every added tensor must have that dim.
    shard_size : int
        Utterances per shard.
    max_shard_bytes : int
        A shard is also written once its buffered tensors reach this size.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with FeatureCacheWriter(tmp.name, {"dim": 4}) as writer:
    ...     writer.add("utt1", torch.ones(3, 4))
    ...     sorted(writer.done_ids())
    ['utt1']
    >>> FeatureCache(tmp.name)["utt1"].shape
    torch.Size([3, 4])
    >>> tmp.cleanup()
    """

    def __init__(self, folder, config, shard_size=1000, max_shard_bytes=512 * 2**20):
        if int(shard_size) < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size!r}.")
        self.folder = os.fspath(folder)
        self.config = _normalize_config(config)
        self.shard_size = int(shard_size)
        self.max_shard_bytes = int(max_shard_bytes)
        os.makedirs(self.folder, exist_ok=True)
        for name in os.listdir(self.folder):
            if name.endswith(_TMP_SUFFIX):
                os.remove(os.path.join(self.folder, name))
                logger.warning(
                    "Removed incomplete file %s left by an interrupted write in %s",
                    name,
                    self.folder,
                )
        meta_path = os.path.join(self.folder, _CACHE_JSON)
        if os.path.exists(meta_path):
            stored = _read_cache_meta(self.folder)["config"]
            if stored != self.config:
                raise CacheConfigError(
                    f"Feature cache {self.folder!r} was made with a different configuration:\n"
                    f"{_config_diff(stored, self.config)}\n"
                    "Features of different models/layers/settings must not be mixed: use another "
                    "cache folder (or delete this one to re-extract)."
                )
        else:
            if _list_shards(self.folder):
                raise ValueError(
                    f"Folder {self.folder!r} holds feature shards but no {_CACHE_JSON}: it is "
                    "not a usable feature cache. Use an empty folder."
                )
            meta = {
                "format": CACHE_FORMAT,
                "version": CACHE_VERSION,
                "dtype": "float16",
                "config": self.config,
            }
            _atomic_write_json(meta_path, meta)
        self._stored = {k: v[0] for k, v in _scan_shards(self.folder).items()}
        shards = _list_shards(self.folder)
        self._next_shard = shards[-1][0] + 1 if shards else 0
        self._pending = {}
        self._pending_bytes = 0
        self._closed = False
        if self._stored:
            logger.info(
                "Resuming feature cache %s: %d utterances already stored",
                self.folder,
                len(self._stored),
            )

    def done_ids(self):
        """Returns the set of utterance ids already stored or buffered.

        Example
        -------
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> FeatureCacheWriter(tmp.name, {}).done_ids()
        set()
        >>> tmp.cleanup()
        """
        return set(self._stored) | set(self._pending)

    def add(self, utt_id, feats):
        """Adds the features of one utterance (converted to fp16).

        Arguments
        ---------
        utt_id : str
            Unique utterance id.
        feats : torch.Tensor
            Features ``[T, D]`` with ``T >= 1``.
        """
        if self._closed:
            raise RuntimeError(f"FeatureCacheWriter for {self.folder!r} is closed.")
        if not isinstance(utt_id, str) or not utt_id:
            raise ValueError(f"Utterance ids must be non-empty strings, got {utt_id!r}.")
        if utt_id in self._stored or utt_id in self._pending:
            raise ValueError(
                f"Duplicate utterance id {utt_id!r}: it is already in the feature cache "
                f"{self.folder!r}. Utterance ids must be unique across the corpus."
            )
        if not isinstance(feats, torch.Tensor) or feats.dim() != 2 or feats.shape[0] == 0:
            shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats)
            raise ValueError(f"Features of {utt_id!r} must be a [T>=1, D] tensor, got {shape}.")
        dim = self.config.get("dim")
        if dim is not None and feats.shape[1] != dim:
            raise ValueError(
                f"Features of {utt_id!r} have dim {feats.shape[1]}, the cache config says {dim}."
            )
        half = feats.detach().to(device="cpu", dtype=torch.float16, copy=True).contiguous()
        if not torch.isfinite(half).all():
            raise ValueError(
                f"Features of {utt_id!r} contain NaN/inf (in fp16, |values| must stay below "
                "65504): check the encoder output for this utterance."
            )
        self._pending[utt_id] = half
        self._pending_bytes += half.numel() * 2
        if len(self._pending) >= self.shard_size or self._pending_bytes >= self.max_shard_bytes:
            self.flush()

    def flush(self):
        """Writes the buffered utterances as one complete shard (atomic)."""
        if not self._pending:
            return
        name = f"shard-{self._next_shard:06d}.safetensors"
        final = os.path.join(self.folder, name)
        tmp = final + _TMP_SUFFIX
        save_file(self._pending, tmp, metadata={"format": "pt"})
        _fsync_path(tmp)
        os.replace(tmp, final)
        _fsync_path(self.folder)
        for key in self._pending:
            self._stored[key] = name
        logger.debug("Wrote %s (%d utterances)", final, len(self._pending))
        self._next_shard += 1
        self._pending = {}
        self._pending_bytes = 0

    def close(self):
        """Writes the buffered utterances; the writer cannot be used afterwards."""
        if not self._closed:
            self.flush()
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception:  # keep the original exception; the shard was not renamed
            logger.exception("Could not write buffered features to %s", self.folder)


class FeatureCache:
    """Read-only access to a feature cache made by ``FeatureCacheWriter``.

    Only the shard headers are read at construction; tensors are memory-mapped on access.
    Shard handles are opened lazily and per process, so the object can be handed to
    DataLoader workers (fork or spawn).

    Arguments
    ---------
    folder : str
        Cache folder.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with FeatureCacheWriter(tmp.name, {"dim": 2}) as writer:
    ...     writer.add("a", torch.zeros(5, 2))
    >>> cache = FeatureCache(tmp.name)
    >>> len(cache), "a" in cache, cache.length("a"), cache.dim, cache["a"].dtype
    (1, True, 5, 2, torch.float32)
    >>> tmp.cleanup()
    """

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        if not os.path.isdir(self.folder):
            raise FileNotFoundError(f"Feature cache folder {self.folder!r} does not exist.")
        if not os.path.exists(os.path.join(self.folder, _CACHE_JSON)):
            raise FileNotFoundError(
                f"{self.folder!r} is not a feature cache (no {_CACHE_JSON}); extract the "
                "features first (extract_to_cache)."
            )
        meta = _read_cache_meta(self.folder)
        self.config = meta["config"]
        index = _scan_shards(self.folder)
        self._shard = {k: v[0] for k, v in index.items()}
        self._lengths = {k: v[1] for k, v in index.items()}
        self._handles = {}
        self._pid = os.getpid()
        dim = self.config.get("dim")
        if dim is None and index:
            first = next(iter(index))
            dim = self[first].shape[1]
        self.dim = dim

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def _handle(self, shard):
        if self._pid != os.getpid():  # forked worker: never share file handles with the parent
            self._handles = {}
            self._pid = os.getpid()
        handle = self._handles.get(shard)
        if handle is None:
            handle = safe_open(os.path.join(self.folder, shard), framework="pt")
            self._handles[shard] = handle
        return handle

    def _missing(self, utt_id):
        return KeyError(
            f"Utterance {utt_id!r} is not in the feature cache {self.folder!r} "
            f"({len(self)} utterances): it was skipped during extraction (see the extraction "
            "log) or the cache was built for another data set."
        )

    def __getitem__(self, utt_id):
        shard = self._shard.get(utt_id)
        if shard is None:
            raise self._missing(utt_id)
        return self._handle(shard).get_tensor(utt_id).float()

    def __contains__(self, utt_id):
        return utt_id in self._shard

    def __len__(self):
        return len(self._shard)

    def ids(self):
        """Returns the stored utterance ids (shard order).

        Example
        -------
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> FeatureCacheWriter(tmp.name, {}).close()
        >>> FeatureCache(tmp.name).ids()
        []
        >>> tmp.cleanup()
        """
        return list(self._shard)

    def length(self, utt_id):
        """Returns the number of frames of ``utt_id`` without reading its data.

        Example
        -------
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> with FeatureCacheWriter(tmp.name, {}) as writer:
        ...     writer.add("a", torch.zeros(7, 3))
        >>> FeatureCache(tmp.name).length("a")
        7
        >>> tmp.cleanup()
        """
        if utt_id not in self._lengths:
            raise self._missing(utt_id)
        return self._lengths[utt_id]


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


def _encoder_description(encoder):
    describe = getattr(encoder, "describe", None)
    if callable(describe):
        return describe()
    return {"class": f"{type(encoder).__module__}.{type(encoder).__qualname__}"}


def _identity(record):
    return record


class _AudioReader(torch.utils.data.Dataset):
    """Reads one extraction item: its audio, checked against the length limits, and the
    encoder's per-utterance front-end output when it has one (run in DataLoader workers)."""

    def __init__(self, items, sample_rate, max_seconds, min_samples, front_end=None):
        self.items = items
        self.sample_rate = sample_rate
        self.max_seconds = max_seconds
        self.min_samples = min_samples
        self.front_end = front_end

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        utt_id, path, *segment = self.items[index]
        stats = collections.Counter()
        record = {"utt_id": utt_id, "path": path, "stats": stats, "error": None}
        try:
            wav = load_audio(path, self.sample_rate, stats, *segment)
        except AudioError as err:
            record["error"] = str(err)
            return record
        record["n_samples"] = n = int(wav.shape[0])
        too_long = self.max_seconds is not None and n / self.sample_rate > self.max_seconds
        if too_long or n < self.min_samples:
            return record  # skipped (and logged) by the main process
        if self.front_end is not None:
            record["fbank"], record["mask"] = self.front_end(wav)
        else:
            record["wav"] = wav
        return record


def extract_to_cache(
    encoder,
    items,
    folder,
    config,
    *,
    average=1,
    batch_size=8,
    device="cpu",
    max_seconds=None,
    shard_size=1000,
    progress=True,
    amp=False,
    num_workers=0,
):
    """Extracts features of a corpus into a feature cache (resumable).

    Utterances already in the cache are skipped, so an interrupted run is resumed by running it
    again. Audio is read ``batch_size * 16`` utterances at a time and batched by decreasing
    length to limit padding; the encoder runs under ``torch.no_grad()``; every ``average``
    frames are averaged (``average_frames``) and the result is stored in fp16. Missing or
    unreadable audio, utterances longer than ``max_seconds`` and utterances shorter than the
    encoder's ``min_samples`` are skipped, logged with their id and reason, and counted.

    The stored cache config is ``config`` plus ``encoder`` (``encoder.describe()``),
    ``average``, ``dim`` and ``frame_rate`` (after averaging); ``config`` may repeat these
    keys only with the same values.

    Arguments
    ---------
    encoder : torch.nn.Module
        An encoder with the interface of this module (``FbankFrontend``...).
    items : iterable of tuple, or dict
        ``(utt_id, wav_path)`` pairs, or ``(utt_id, wav_path, start, stop)`` for segments in
        seconds (or a ``{utt_id: wav_path}`` dict).
    folder : str
        Cache folder.
    config : dict
        Extra JSON-serialisable settings to store (e.g. the YAML encoder section).
    average : int
        Frames averaged together (the paper uses 2).
    batch_size : int
        Utterances per encoder call.
    device : str or torch.device
        Device the encoder runs on.
    max_seconds : float, optional
        Longer utterances are skipped.
    shard_size : int
        Utterances per cache shard.
    progress : bool
        Shows a tqdm progress bar.
    amp : bool
        Runs the encoder under bf16 autocast (``torch.autocast(device.type, torch.bfloat16)``).
    num_workers : int
        DataLoader worker processes that read and decode the audio and, for encoders with a
        per-utterance ``front_end`` (SeamlessM4T-v2's fbank), compute it, while the main
        process runs the encoder; 0 does everything in the main process. The features are
        the same either way.

    Returns
    -------
    dict
        ``extracted``, ``already_cached``, ``skipped_missing`` (missing or unreadable),
        ``skipped_too_long``, ``skipped_too_short``, ``resampled``, ``downmixed``,
        ``audio_seconds`` (extracted audio), ``wall_seconds``, ``folder``.

    Example
    -------
    >>> import numpy as np, soundfile, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> wav = os.path.join(tmp.name, "a.wav")
    >>> soundfile.write(wav, np.zeros(16000, dtype="float32"), 16000)
    >>> out = os.path.join(tmp.name, "cache")
    >>> summary = extract_to_cache(
    ...     FbankFrontend(), [("a", wav), ("b", "missing.wav")], out, {}, average=2,
    ...     progress=False,
    ... )
    >>> summary["extracted"], summary["skipped_missing"], FeatureCache(out)["a"].shape
    (1, 1, torch.Size([51, 80]))
    >>> tmp.cleanup()
    """
    start = time.time()
    if isinstance(average, bool) or int(average) != average or average < 1:
        raise ValueError(f"average must be a positive integer, got {average!r}.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
    if isinstance(num_workers, bool) or int(num_workers) != num_workers or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}.")
    device = torch.device(device)
    encoder = encoder.to(device)
    encoder.eval()
    derived = _normalize_config(
        {
            "encoder": _encoder_description(encoder),
            "average": int(average),
            "dim": int(encoder.output_dim),
            "frame_rate": float(encoder.frame_rate) / int(average),
        }
    )
    user_config = _normalize_config(config)
    for key, value in derived.items():
        if key in user_config and user_config[key] != value:
            raise ValueError(
                f"config[{key!r}]={user_config[key]!r} contradicts the extraction settings "
                f"({value!r})."
            )
    cache_config = {**user_config, **derived}
    sample_rate = int(getattr(encoder, "sample_rate", 16000))
    min_samples = int(getattr(encoder, "min_samples", 1))
    window = int(batch_size) * 16
    if isinstance(items, Mapping):
        items = items.items()
    total = len(items) if hasattr(items, "__len__") else None

    summary = collections.Counter()
    audio_stats = collections.Counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="features", unit="utt", dynamic_ncols=True)

    front_end = getattr(encoder, "front_end", None)
    if front_end is not None and not callable(getattr(encoder, "encode_fbank", None)):
        front_end = None

    def encode(pending, writer):
        pending.sort(key=lambda record: record["n_samples"], reverse=True)
        for first in range(0, len(pending), batch_size):
            chunk = pending[first : first + batch_size]
            amp_ctx = (
                torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                if amp
                else contextlib.nullcontext()
            )
            with torch.no_grad(), amp_ctx:
                if front_end is not None:
                    fbank, mask = pad_front_end([(r["fbank"], r["mask"]) for r in chunk])
                    feats, lens = encoder.encode_fbank(fbank, mask)
                else:
                    wavs, wav_lens = _pad_waveforms([r["wav"] for r in chunk])
                    feats, lens = encoder(wavs.to(device), wav_lens.to(device))
            feats, lens = average_frames(feats.float(), lens, average)
            n_frames = relative_to_frames(lens, feats.shape[1]).tolist()
            for i, (record, n) in enumerate(zip(chunk, n_frames)):
                writer.add(record["utt_id"], feats[i, :n])
                summary["extracted"] += 1
                summary["audio_seconds"] += record["n_samples"] / sample_rate
            if bar is not None:
                bar.update(len(chunk))
        pending.clear()

    try:
        with FeatureCacheWriter(folder, cache_config, shard_size=shard_size) as writer:
            done = writer.done_ids()
            seen = set()
            todo = []
            for item in items:
                utt_id, path, *_ = item
                if utt_id in seen:
                    raise ValueError(
                        f"Duplicate utterance id {utt_id!r} in the extraction list (second "
                        f"path: {path!r}); utterance ids must be unique."
                    )
                seen.add(utt_id)
                if utt_id in done:
                    summary["already_cached"] += 1
                    if bar is not None:
                        bar.update(1)
                    continue
                todo.append(tuple(item))
            reader = _AudioReader(todo, sample_rate, max_seconds, min_samples, front_end)
            if num_workers > 0 and todo:
                records = torch.utils.data.DataLoader(
                    reader,
                    batch_size=None,
                    num_workers=int(num_workers),
                    collate_fn=_identity,
                    prefetch_factor=max(2, window // int(num_workers)),
                )
            else:
                records = (reader[index] for index in range(len(reader)))
            pending = []
            for record in records:
                utt_id, path = record["utt_id"], record["path"]
                audio_stats.update(record["stats"])
                reason = None
                if record["error"] is not None:
                    summary["skipped_missing"] += 1
                    logger.warning("Skipping utterance %s: %s", utt_id, record["error"])
                    reason = "missing"
                elif max_seconds is not None and record["n_samples"] / sample_rate > max_seconds:
                    summary["skipped_too_long"] += 1
                    logger.warning(
                        "Skipping utterance %s: %.2f s is longer than max_seconds=%s (%s)",
                        utt_id,
                        record["n_samples"] / sample_rate,
                        max_seconds,
                        path,
                    )
                    reason = "too long"
                elif record["n_samples"] < min_samples:
                    summary["skipped_too_short"] += 1
                    logger.warning(
                        "Skipping utterance %s: %d samples, the encoder needs at least %d (%s)",
                        utt_id,
                        record["n_samples"],
                        min_samples,
                        path,
                    )
                    reason = "too short"
                if reason is not None:
                    if bar is not None:
                        bar.update(1)
                    continue
                pending.append(record)
                if len(pending) >= window:
                    encode(pending, writer)
            encode(pending, writer)
    finally:
        if bar is not None:
            bar.close()

    result = {
        "extracted": summary["extracted"],
        "already_cached": summary["already_cached"],
        "skipped_missing": summary["skipped_missing"],
        "skipped_too_long": summary["skipped_too_long"],
        "skipped_too_short": summary["skipped_too_short"],
        "resampled": audio_stats["resampled"],
        "downmixed": audio_stats["downmixed"],
        "audio_seconds": float(summary["audio_seconds"]),
        "wall_seconds": time.time() - start,
        "folder": os.fspath(folder),
    }
    logger.info("Feature extraction into %s: %s", folder, result)
    return result
