"""Speech synthesis for the mini-corpus with eSpeak NG through ``espeakng-loader``'s shared
library (``synthesize``).

Authors
-------
speechmapper developers, 2026
"""

import ctypes
import math
import os
import threading

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2


_INITIALIZE_DONT_EXIT = 0x8000


_POS_CHARACTER = 1


_CHARS_UTF8 = 1


_PARAM_RATE, _PARAM_PITCH = 1, 3


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _ESpeak:
    """Process-global libespeak-ng (its state is global: one instance per process)."""

    _instance = None
    _instance_lock = threading.Lock()

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as err:
            raise ImportError(
                "minicorpus needs the PyPI package 'espeakng-loader' (pip install "
                "espeakng-loader), which bundles libespeak-ng and its voice data."
            ) from err
        self.library_path = espeakng_loader.get_library_path()
        self.data_path = espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(self.library_path)
        except OSError as err:
            raise RuntimeError(f"Cannot load libespeak-ng from {self.library_path}: {err}") from err
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            raise RuntimeError(
                f"espeak_Initialize failed (returned {self.sample_rate}) with library "
                f"{self.library_path} and data {self.data_path}; reinstall espeakng-loader."
            )
        self.version = (lib.espeak_Info(None) or b"unknown").decode()
        self._chunks = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: C holds it
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib
        self.lock = threading.Lock()
        self.variants = frozenset(os.listdir(os.path.join(self.data_path, "voices", "!v")))

    @classmethod
    def get(cls):
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _collect(self, wav, num_samples, events):
        if num_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def synth(self, text, voice, rate, pitch):
        """Returns int16 samples at ``self.sample_rate``."""
        _, _, variant = voice.partition("+")
        if variant and variant not in self.variants:
            raise ValueError(
                f"Unknown eSpeak NG voice variant {variant!r} in voice {voice!r}; available "
                f"variants: {', '.join(sorted(self.variants))}."
            )
        data = text.encode("utf-8")
        with self.lock:
            err = self.lib.espeak_SetVoiceByName(voice.encode())
            if err != 0:
                raise ValueError(
                    f"eSpeak NG does not know the voice {voice!r} (error {err}); use a "
                    f"language name of {os.path.join(self.data_path, 'lang')} such as "
                    "'en-us', optionally with a '+variant' such as '+f2'."
                )
            self.lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
            self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            self._chunks = []
            err = self.lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with error {err} for text {text!r}")
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks)


def _resample(wav, orig_freq, new_freq):
    """Resamples a float32 numpy waveform with a polyphase FIR filter.

    SciPy's single-threaded ``resample_poly`` is used rather than torchaudio: torch's
    intra-op threads made in-process synthesis several times slower on small shared
    machines, and worker processes then need not import torch at all.
    """
    if orig_freq == new_freq or wav.size == 0:
        return wav
    from scipy.signal import resample_poly

    g = math.gcd(orig_freq, new_freq)
    return resample_poly(wav, new_freq // g, orig_freq // g).astype(np.float32, copy=False)


def synthesize(text, voice, rate=175, pitch=50, sample_rate=16000):
    """Synthesizes English speech with eSpeak NG (bundled in ``espeakng-loader``).

    Arguments
    ---------
    text : str
        Text to speak; final punctuation (``.`` or ``?``) controls the intonation.
    voice : str
        eSpeak NG voice: a language such as ``"en-us"``, optionally with a variant,
        e.g. ``"en-us+f2"``.
    rate : int
        Speaking rate in words per minute (80 to 450).
    pitch : int
        Base pitch, 0 to 100 (espeak's default is 50).
    sample_rate : int
        Output sample rate in Hz (espeak synthesizes at 22050 Hz, then it is resampled).

    Returns
    -------
    numpy.ndarray
        Mono float32 waveform in [-1, 1).

    Example
    -------
    >>> wav = synthesize("the small dog saw a red ball.", "en-us", rate=175)
    >>> wav.dtype, wav.ndim, 1.0 < len(wav) / 16000 < 3.0
    (dtype('float32'), 1, True)
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"synthesize: text must be a non-empty string, got {text!r}")
    if not 80 <= rate <= 450:
        raise ValueError(f"synthesize: rate must be 80-450 words per minute, got {rate!r}")
    if not 0 <= pitch <= 100:
        raise ValueError(f"synthesize: pitch must be 0-100, got {pitch!r}")
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"synthesize: sample_rate must be a positive int, got {sample_rate!r}")
    engine = _ESpeak.get()
    samples = engine.synth(text, voice, rate, pitch)
    if samples.size == 0:
        raise RuntimeError(f"eSpeak NG produced no audio for {text!r} with voice {voice!r}")
    wav = samples.astype(np.float32) / 32768.0
    wav = _resample(wav, engine.sample_rate, sample_rate)
    return np.clip(wav, -1.0, 32767.0 / 32768.0).astype(np.float32, copy=False)
