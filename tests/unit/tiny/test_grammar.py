"""Tests of ``speechmapper_plugin.tiny.grammar`` (the mini-corpus grammar)."""

import re

import pytest

from speechmapper_plugin.tiny.grammar import generate_sentences, grammar_words

SENTENCE_RE = re.compile(r"^[a-z]+( [a-z]+){3,13}$")


# ---- sentences ----------------------------------------------------------------------------
def test_sentences_form_vocabulary_and_determinism():
    sentences = generate_sentences(3000, seed=11)
    assert len(set(sentences)) == 3000
    assert all(SENTENCE_RE.match(s) for s in sentences), "lowercase words, 4-14 of them"
    vocab = set(grammar_words())
    assert 250 <= len(vocab) <= 400
    used = {w for s in sentences for w in s.split()}
    assert used <= vocab
    assert len(used) >= 0.95 * len(vocab), "the grammar should use nearly all its words"
    assert any(s.split()[0] in ("did", "who", "where", "can") for s in sentences), "questions"
    assert generate_sentences(50, seed=11) == sentences[:50]
    assert generate_sentences(50, seed=12) != sentences[:50]


def test_many_thousands_of_distinct_sentences():
    assert len(set(generate_sentences(20000, seed=0))) == 20000


def test_held_out_sentences_are_new_and_covered():
    train = generate_sentences(200, seed=0)
    words = {w for s in train for w in s.split()}
    held = generate_sentences(100, seed=1, exclude=train, vocabulary=words)
    assert len(set(held)) == 100 and not set(held) & set(train)
    assert {w for s in held for w in s.split()} <= words


def test_impossible_request_is_a_clear_error():
    with pytest.raises(ValueError, match="found only 0 of the 3"):
        generate_sentences(3, vocabulary={"the", "dog"})
    with pytest.raises(ValueError, match="non-negative int"):
        generate_sentences(-1)
