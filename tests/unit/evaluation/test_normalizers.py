"""OpenAI Whisper's normalizers as the IWSLT 2025 organizers ran them
(speechmapper_plugin.evaluation.normalizers): whisper_normalizer 0.0.10's rules, offline."""

import pytest

from speechmapper_plugin.evaluation import normalizers
from speechmapper_plugin.evaluation.normalizers import (
    whisper_basic_normalizer,
    whisper_english_normalizer,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        # The colloquial forms whisper_normalizer >= 0.1.1 rewrites stay as OpenAI's leaves them.
        ("I kinda dunno, sorta.", "i kinda dunno sorta"),
        ("'Cause it's the cause of it", "cause it is the cause of it"),
        # OpenAI's other rules are all there.
        ("Mr. Smith paid $25, didn't he?", "mister smith paid $25 did not he"),
        ("Ten thousand dollars for the colour", "$10000 for the color"),
        ("I'm gonna do it, y'all [laughs] um", "i am going to do it you all"),
    ],
)
def test_english_normalizer_has_openais_rules(text, expected):
    assert whisper_english_normalizer()(text) == expected


def test_another_rule_set_is_refused(monkeypatch):
    from whisper_normalizer import english

    class Changed(english.EnglishTextNormalizer):
        def __init__(self):
            super().__init__()
            self.replacers[r"\bgimme\b"] = "give me"

    monkeypatch.setattr(english, "EnglishTextNormalizer", Changed)
    whisper_english_normalizer.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="pip install whisper-normalizer==0.1.15"):
            whisper_english_normalizer()
    finally:
        whisper_english_normalizer.cache_clear()


def test_basic_normalizer_and_signature():
    assert whisper_basic_normalizer()("Größe, Herr Müller!").split() == ["größe", "herr", "müller"]
    assert "openai-rules=0.0.10" in normalizers.whisper_signature()
