"""Reading audio: whole files or segments (start/stop in seconds), any format soundfile or
PyAV decodes, resampled and down-mixed to the model's rate; every conversion counted and
logged once (``load_audio``, ``decode_with_av``, ``AudioError``).

Authors
-------
speechmapper developers, 2026
"""

import collections
import logging
import os

import soundfile as sf
import torch

logger = logging.getLogger(__name__)


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
