"""Tests for speechmapper_plugin.utils.text.normalize_text (MMS-style target normalization)."""

import pytest

from speechmapper_plugin.utils.text import normalize_text


@pytest.mark.parametrize(
    "raw, expected",
    [
        # LibriSpeech transcripts are upper-case; the targets are lower-cased (MMS)
        (
            "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES",
            "mister quilter is the apostle of the middle classes",
        ),
        # apostrophes inside words are kept, stray ones removed
        ("I DON'T KNOW O'CLOCK", "i don't know o'clock"),
        ("'QUOTED' WORDS", "quoted words"),
        ("ROCK 'N' ROLL", "rock n roll"),
        ("THE BOYS' TOYS", "the boys toys"),
        # typographic apostrophes / quotes / dashes
        ("IT\u2019S \u2018FINE\u2019", "it's fine"),
        ("\u201cQUOTED\u201d", "quoted"),
        ("IT`S", "it's"),
        ("IT\u02bcS", "it's"),
        ("WELL\u2014KNOWN WELL\u2013KNOWN", "well known well known"),
        # punctuation becomes a word boundary
        ("HELLO, WORLD! HOW? ARE: YOU; (FINE) A_B X/Y", "hello world how are you fine a b x y"),
        ("...", ""),
        # words made only of digits are removed, words with letters kept
        ("ROOM 101 HAS 2 BEDS", "room has beds"),
        ("THE 4TH OF JULY", "the 4th of july"),
        ("3.5 APPLES", "apples"),
        # bracketed spans with digits are removed, other brackets keep their content
        ("SEE [3] AND (PAGE 12) HERE", "see and here"),
        ("(LAUGHS) OK", "laughs ok"),
        # Unicode NFKC: ligatures, full-width letters, composed accents, nbsp
        ("\ufb01NE", "fine"),
        ("\uff28\uff25\uff2c\uff2c\uff2f", "hello"),
        ("CAFE\u0301 NA\u00cfVE", "caf\u00e9 na\u00efve"),
        ("A\u00a0B", "a b"),
        # whitespace collapsed and stripped
        ("  A \t B \n ", "a b"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_decomposed_and_composed_accents_normalize_identically():
    assert normalize_text("CAF\u00c9") == normalize_text("CAFE\u0301") == "caf\u00e9"


def test_is_idempotent():
    text = "HELLO, World!  It\u2019s 42 (see [3]) -- fine. \u201cYes\u201d"
    once = normalize_text(text)
    assert once == "hello world it's fine yes"
    assert normalize_text(once) == once


def test_options():
    assert normalize_text("Hello, World", lower_case=False) == "Hello World"
    assert normalize_text("ROOM 101", remove_numbers=False) == "room 101"
    assert normalize_text("(LAUGHS) OK [NOISE]", remove_brackets=True) == "ok"
    # spans with digits are removed even when remove_brackets is False
    assert normalize_text("A (1) B", remove_brackets=False) == "a b"


def test_non_string_input_is_converted():
    assert normalize_text(12.5) == ""  # "12.5" -> "12 5": only digit words
    assert normalize_text(42) == ""


def test_acute_accent_used_as_apostrophe_is_mapped():
    assert normalize_text("IT\u00b4S") == "it's"
