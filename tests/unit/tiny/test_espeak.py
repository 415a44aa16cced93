"""Tests of ``speechmapper_plugin.tiny.espeak`` (speech synthesis for the mini-corpus with eSpeak NG through ``espeakng-loader``'s shared library (``synthesize``))."""

import numpy as np
import pytest
import soundfile as sf

from speechmapper_plugin.tiny.espeak import synthesize
from speechmapper_plugin.tiny.grammar import _spoken_form

from .helpers import read_corpus, speakers_table


# ---- synthesis ----------------------------------------------------------------------------
def test_synthesize_rates_voices_and_sample_rate():
    text = "the small dog saw a red ball near the old house."
    slow = synthesize(text, "en-us", rate=140)
    fast = synthesize(text, "en-us", rate=200)
    assert slow.dtype == np.float32 and slow.ndim == 1
    assert 0.05 < np.abs(slow).max() <= 1.0
    assert 2.0 < len(slow) / 16000 < 5.0 and len(fast) < 0.85 * len(slow)
    native = synthesize(text, "en-us", rate=140, sample_rate=22050)
    assert abs(len(native) * 16000 / 22050 - len(slow)) < 400  # same speech, resampled
    female = synthesize(text, "en-us+f2", rate=140)
    assert not np.array_equal(female[: len(slow)], slow[: len(female)])


def test_synthesize_rejects_bad_input():
    with pytest.raises(ValueError, match="'en-us\\+nope'"):
        synthesize("hello.", "en-us+nope")
    with pytest.raises(ValueError, match="'xx-nowhere'"):
        synthesize("hello.", "xx-nowhere")
    with pytest.raises(ValueError, match="non-empty"):
        synthesize("  ", "en-us")
    with pytest.raises(ValueError, match="rate"):
        synthesize("hello.", "en-us", rate=20)


def test_audio_matches_text_voice_and_rate_of_its_speaker(corpus_dir):
    out, _ = corpus_dir
    root = out / "LibriSpeech"
    table = speakers_table(root)
    for utts in read_corpus(root).values():
        text, path = next(iter(utts.values()))
        _, voice, rate, pitch = table[path.parent.parent.name]
        wav, _ = sf.read(str(path), dtype="float32")
        again = synthesize(_spoken_form(text.lower()), voice, rate, pitch)
        assert abs(len(wav) - len(again)) < 0.03 * len(again), path
