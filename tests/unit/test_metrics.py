"""Tests for speechmapper_plugin.metrics.error_rates (corpus WER/CER on normalized text)."""

import logging
import math

import pytest

from speechmapper_plugin.metrics import error_rates


@pytest.mark.parametrize(
    "hyp, ref, wer, cer",
    [
        ("the cat sat", "the cat sat", 0.0, 0.0),
        # 3 deleted words of 6; 11 deleted characters (" on the mat") of 22
        ("the cat sat", "the cat sat on the mat", 50.0, 50.0),
        # 1 substituted word of 3; 3 substituted characters of 11
        ("the dog sat", "the cat sat", 100 / 3, 300 / 11),
        # 1 inserted word of 2; 2 inserted characters ("a ") of 7
        ("a the cat", "the cat", 50.0, 200 / 7),
        # insertions can exceed 100 %
        ("one two three four", "one", 300.0, 1500 / 3),
    ],
)
def test_exact_rates_for_crafted_pairs(hyp, ref, wer, cer):
    out = error_rates([hyp], [ref])
    assert out["wer"] == pytest.approx(wer)
    assert out["cer"] == pytest.approx(cer)
    assert out["num_utterances"] == 1
    assert out["skipped_empty_reference"] == 0


def test_rates_are_pooled_over_the_corpus():
    # 1 error in a 2-word reference, 0 in a 4-word one: 1 / 6, not mean(50 %, 0 %)
    out = error_rates(["a x", "b c d e"], ["a b", "b c d e"])
    assert out["wer"] == pytest.approx(100 / 6)
    # characters: 1 substitution of 3 + 0 of 7
    assert out["cer"] == pytest.approx(100 / 10)
    assert out["num_utterances"] == 2


def test_normalization_removes_case_and_punctuation_differences():
    hyp, ref = "The Cat, sat! It\u2019s 3 (OK).", "THE CAT SAT IT'S OK"
    assert error_rates([hyp], [ref])["wer"] == 0.0
    assert error_rates([hyp], [ref])["cer"] == 0.0
    raw = error_rates(["The Cat, sat!"], ["THE CAT SAT"], normalize=False)
    assert raw["wer"] == pytest.approx(100.0)  # every word differs by case/punctuation


def test_empty_hypothesis_counts_every_reference_word_as_deleted():
    out = error_rates(["", "..."], ["the cat sat", "on a mat"])
    assert out["wer"] == pytest.approx(100.0)
    assert out["cer"] == pytest.approx(100.0)
    assert out["num_utterances"] == 2


def test_empty_reference_is_skipped_counted_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="speechmapper_plugin.metrics"):
        out = error_rates(["the cat", "anything", "more"], ["the dog", "", "42 !"])
    assert out["num_utterances"] == 1  # "42 !" normalizes to nothing as well
    assert out["skipped_empty_reference"] == 2
    assert out["wer"] == pytest.approx(50.0)
    assert "skipped 2 utterance(s) with an empty reference" in caplog.text


def test_only_empty_references_give_nan():
    out = error_rates(["a"], [""])
    assert math.isnan(out["wer"]) and math.isnan(out["cer"])
    assert out["num_utterances"] == 0
    assert out["skipped_empty_reference"] == 1


def test_length_mismatch_is_a_value_error():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        error_rates(["a", "b"], ["a"])
