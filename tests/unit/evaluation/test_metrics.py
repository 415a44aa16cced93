"""Tests of ``speechmapper_plugin.evaluation.metrics`` (evaluation metrics)."""

import logging
import math

import pytest

from speechmapper_plugin.evaluation.metrics import bleu, error_rates, language_id


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
    assert out["signature"].startswith("jiwer:") and out["signature"].endswith("|norm:mms")


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
    assert raw["signature"].endswith("|norm:none")


def test_empty_hypothesis_counts_every_reference_word_as_deleted():
    out = error_rates(["", "..."], ["the cat sat", "on a mat"])
    assert out["wer"] == pytest.approx(100.0)
    assert out["cer"] == pytest.approx(100.0)
    assert out["num_utterances"] == 2


def test_empty_reference_is_skipped_counted_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="speechmapper_plugin.evaluation"):
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


def test_none_entries_are_empty_texts():
    out = error_rates([None, "a b"], ["x y", None])
    assert out["wer"] == pytest.approx(100.0)  # "x y" fully deleted, the empty reference skipped
    assert out["num_utterances"] == 1 and out["skipped_empty_reference"] == 1


def test_bleu_matches_a_hand_computed_value_with_an_empty_hypothesis():
    hyps = ["the cat sat on the mat", ""]
    refs = ["the cat sat on the red mat", "hello world"]
    # Hand computation (13a leaves these lowercase words as they are):
    #   1-grams: 6 of 6 hypothesis unigrams match          -> p1 = 6/6
    #   2-grams: the cat, cat sat, sat on, on the match;
    #            "the mat" does not                          -> p2 = 4/5
    #   3-grams: 3 of 4 ("on the mat" is not in the ref)    -> p3 = 3/4
    #   4-grams: 2 of 3 ("sat on the mat" is not)           -> p4 = 2/3
    #   The empty hypothesis adds no n-gram, only 2 reference words:
    #   hyp length c = 6, ref length r = 7 + 2 = 9, BP = exp(1 - r/c) = exp(-0.5).
    #   BLEU = BP * (1 * 4/5 * 3/4 * 2/3) ** (1/4) = 0.60653 * 0.4 ** 0.25 = 0.48236
    expected = 100 * math.exp(-0.5) * (1 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25
    out = bleu(hyps, refs, "en")
    assert out["bleu"] == pytest.approx(expected, abs=1e-6)
    assert out["bleu"] == pytest.approx(48.2356, abs=1e-4)
    assert out["precisions"] == pytest.approx([100.0, 80.0, 75.0, 200 / 3])
    assert out["brevity_penalty"] == pytest.approx(math.exp(-0.5))
    assert (out["hyp_len"], out["ref_len"], out["num_utterances"]) == (6, 9, 2)
    assert out["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert out["tokenize"] == "13a"


def test_bleu_13a_splits_punctuation_and_keeps_case():
    assert bleu(["The cat sat."], ["The cat sat ."], "fr")["bleu"] == pytest.approx(100.0)
    assert bleu(["the cat sat on the mat"], ["The Cat Sat On The Mat"], "de")["bleu"] == 0.0


@pytest.mark.parametrize("lang", ["zh", "zh-CN", "zh_tw"])
def test_bleu_uses_the_zh_tokenizer_for_chinese(lang):
    # tok:zh splits every CJK character: 我 喜 欢 猫 vs 我 喜 欢 狗
    # p1 = 3/4, p2 = 2/3, p3 = 1/2; p4 = 0/1, smoothed by sacrebleu's "exp" to 1/(2 * 1).
    # BP = 1, BLEU = (3/4 * 2/3 * 1/2 * 1/2) ** (1/4) = (1/8) ** (1/4) = 0.59460
    out = bleu(["我喜欢猫"], ["我喜欢狗"], lang)
    assert "|tok:zh|" in out["signature"] and out["tokenize"] == "zh"
    assert out["bleu"] == pytest.approx(100 * (1 / 8) ** 0.25, abs=1e-6)
    # With 13a the whole sentence is one (wrong) token: no match at all.
    assert bleu(["我喜欢猫"], ["我喜欢狗"], "de")["bleu"] == 0.0


def test_bleu_empty_texts(caplog):
    assert bleu([""], ["a reference"], "en")["bleu"] == 0.0
    with caplog.at_level(logging.WARNING, logger="speechmapper_plugin.evaluation"):
        out = bleu(["the cat sat", "extra words"], ["the cat sat", ""], "en")
    # The hypothesis of the empty reference counts in the precisions' denominators.
    assert out["precisions"][0] == pytest.approx(60.0)
    assert "1 utterance(s) have an empty reference" in caplog.text


def test_bleu_bad_input():
    with pytest.raises(ValueError, match="3 hypotheses but 2 references"):
        bleu(["a", "b", "c"], ["a", "b"], "en")
    with pytest.raises(ValueError, match="no utterance to score"):
        bleu([], [], "en")
    with pytest.raises(ValueError, match="target_lang must be a language code"):
        bleu(["a"], ["a"], "")
    with pytest.raises(TypeError, match="list of strings, got a single string"):
        bleu("a b", "a b", "en")


TEXTS = {
    "en": "The weather is very nice today and we are going to the park.",
    "de": "Das Wetter ist heute sehr schön und wir gehen in den Park.",
    "fr": "Il fait très beau aujourd'hui et nous allons au parc.",
    "es": "Hace muy buen tiempo hoy y vamos a ir al parque.",
    "it": "Oggi il tempo è molto bello e andiamo al parco.",
    "zh": "今天天气很好，我们要去公园。",
}


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_language_id_recognizes_each_language(lang):
    out = language_id([TEXTS[lang]], lang)
    assert out["counts"] == {lang: 1}
    assert out["target_pct"] == 100.0
    assert out["en_pct"] == (100.0 if lang == "en" else 0.0)


def test_language_id_percentages_are_of_all_texts():
    texts = [TEXTS["de"], TEXTS["de"], TEXTS["en"], TEXTS["fr"], "", "12345", "?!...", None]
    out = language_id(texts, "de")
    assert out["num_utterances"] == 8
    assert out["target_pct"] == pytest.approx(25.0)
    assert out["en_pct"] == pytest.approx(12.5)
    assert out["undetected"] == 4
    assert out["counts"] == {"de": 2, "en": 1, "fr": 1, "unknown": 4}
    assert out["signature"].startswith("langdetect:") and out["signature"].endswith("|seed:0")


def test_language_id_maps_chinese_variants_to_zh():
    traditional = "臺灣的經濟發展與國際貿易關係密切。"  # langdetect: zh-tw
    out = language_id([TEXTS["zh"], traditional], "zh-CN")
    assert out["counts"] == {"zh": 2} and out["target_lang"] == "zh"


def test_language_id_only_undetectable_texts():
    out = language_id(["", "12345"], "de")
    assert out["counts"] == {"unknown": 2} and out["undetected"] == 2
    assert out["target_pct"] == 0.0 and out["en_pct"] == 0.0


def test_language_id_is_deterministic_and_restores_the_seed():
    from langdetect import DetectorFactory

    before = DetectorFactory.seed
    # short, ambiguous texts are where an unseeded langdetect flips between runs
    texts = ["ok", "si", "no no", "bravo", "hotel", "taxi"]
    first = language_id(texts, "it", seed=3)
    assert all(language_id(texts, "it", seed=3) == first for _ in range(3))
    assert DetectorFactory.seed == before


def test_language_id_bad_input():
    with pytest.raises(ValueError, match="no text to identify"):
        language_id([], "de")
    with pytest.raises(ValueError, match="'xx' is not a langdetect language; use one of af, "):
        language_id(["hallo"], "xx")
