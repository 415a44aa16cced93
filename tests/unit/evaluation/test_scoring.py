"""Tests of per-task scoring (speechmapper_plugin.evaluation.scoring.score_outputs)."""

import pytest

from speechmapper_plugin.evaluation.metrics import bleu
from speechmapper_plugin.evaluation.scoring import score_outputs


def outputs(hyps, refs, **extra):
    return [
        {"id": f"u{i}", "hypothesis": h, "reference": r, "stuck": False, **extra}
        for i, (h, r) in enumerate(zip(hyps, refs))
    ]


def test_asr_scores_normalized_wer_and_decoding_rates():
    outs = outputs(["The cat sat.", "her sister her sister her sister"], ["the cat sat", "a b"])
    outs[1]["stuck"] = True
    metrics, signatures = score_outputs("asr", outs)
    # 0 errors on 3 words + 2 substitutions and 4 insertions on 2 words: 6 / 5 words.
    assert metrics["wer"] == pytest.approx(120.0)
    assert metrics["stuck_pct"] == 50.0 and metrics["verbose_pct"] == 50.0
    assert "jiwer" in signatures["wer"]


class RecordingComet:
    """Stands in for metrics.CometScorer (tested on a real tiny COMET in test_tiny_comet)."""

    def score(self, sources, hypotheses, references):
        self.seen = (sources, hypotheses, references)
        return {"comet": 61.0, "segments": [50.0, 72.0], "model": "tiny", "signature": "tiny|x"}


def test_st_scores_bleu_comet_with_transcript_sources_and_language_id():
    hyps = ["Die Katze sitzt auf der Matte und schläft.", "The cat is sleeping on the mat."]
    refs = ["Die Katze sitzt auf der Matte und schläft.", "Die Katze schläft auf der Matte."]
    outs = outputs(hyps, refs, tgt_lang="de")
    outs[0]["source"], outs[1]["source"] = "the cat sits on the mat", "the cat sleeps"
    comet = RecordingComet()
    metrics, signatures = score_outputs("st", outs, comet=comet)
    assert metrics["bleu"] == pytest.approx(bleu(hyps, refs, "de")["bleu"])
    assert "tok:13a" in signatures["bleu"]
    # COMET's source is the reference transcription (paper Sec. 3).
    assert comet.seen == (["the cat sits on the mat", "the cat sleeps"], hyps, refs)
    assert metrics["comet"] == 61.0 and [o["comet"] for o in outs] == [50.0, 72.0]
    assert metrics["lid_target_pct"] == 50.0 and metrics["lid_en_pct"] == 50.0


def test_st_chinese_uses_the_zh_tokenizer_and_mixed_languages_are_refused():
    outs = outputs(["该镇也是香肠节的举办地。"], ["该镇也是香肠节的举办地。"], tgt_lang="zh")
    metrics, signatures = score_outputs("st", outs)
    assert metrics["bleu"] == pytest.approx(100.0) and "tok:zh" in signatures["bleu"]
    assert "comet" not in metrics  # no COMET model configured: not computed
    mixed = outs + outputs(["x"], ["y"], tgt_lang="de")
    mixed[-1]["id"] = "other"
    with pytest.raises(ValueError, match=r"mix \['de', 'zh'\]"):
        score_outputs("st", mixed)


def test_st_into_a_private_use_language_scores_bleu_without_language_id():
    """Minish (qaa, the mini-corpus' invented language) has no langdetect model: BLEU with the
    default tokenizer, no LID metrics, the signature says why; other unknown codes are errors."""
    outs = outputs(["kobami tesu", "kobami"], ["kobami tesu", "ralo"], tgt_lang="qaa")
    metrics, signatures = score_outputs("st", outs)
    assert metrics["bleu"] == pytest.approx(
        bleu(["kobami tesu", "kobami"], [o["reference"] for o in outs], "qaa")["bleu"]
    )
    assert "tok:13a" in signatures["bleu"]
    assert "lid_target_pct" not in metrics and "lid_en_pct" not in metrics
    assert "private-use" in signatures["lid"]
    with pytest.raises(ValueError, match="not a langdetect language"):
        score_outputs("st", outputs(["x y"], ["x y"], tgt_lang="xx"))


def test_undefined_metrics_are_left_out_not_stored_as_nan():
    metrics, signatures = score_outputs("asr", outputs(["a"], [""]))
    assert "wer" not in metrics and "undefined" in signatures["wer"]
    assert metrics["empty_hypotheses"] == 0


def test_sqa_without_judges_reports_language_id_only():
    outs = outputs(["Le chat dort sur le tapis."], ["le chat"], tgt_lang="fr", question="Qui?")
    metrics, _ = score_outputs("sqa", outs)
    assert "judge_accuracy" not in metrics and metrics["lid_target_pct"] == 100.0


def test_bad_task_and_empty_outputs():
    with pytest.raises(ValueError, match="Unknown task 'mt'"):
        score_outputs("mt", outputs(["a"], ["a"]))
    with pytest.raises(ValueError, match="No asr outputs"):
        score_outputs("asr", [])


def test_asr_whisper_normalizer_is_an_option_recorded_in_the_signature():
    outs = outputs(["Mr. Smith paid ten dollars."], ["mister smith paid $10"])
    mms, mms_signatures = score_outputs("asr", outs)
    whisper, whisper_signatures = score_outputs("asr", outs, wer_normalizer="whisper")
    assert mms["wer"] > 0 and whisper["wer"] == 0.0  # numbers and titles standardized
    assert "norm:mms" in mms_signatures["wer"]
    assert "norm:whisper-en" in whisper_signatures["wer"]
    assert "whisper-normalizer:" in whisper_signatures["wer"]
    with pytest.raises(ValueError, match="Unknown WER normalizer 'nfkc'"):
        score_outputs("asr", outs, wer_normalizer="nfkc")


def test_sqa_judges_give_the_mean_the_spread_and_each_judge(tmp_path):
    from speechmapper_plugin.evaluation.scoring import judge_metric
    from speechmapper_plugin.tiny.llm import build_tiny_llm

    corpus = ["Yes", "No", "Yes it is the same", "No it is not the same", "the cat sat"] * 6
    judges = [
        str(build_tiny_llm(tmp_path / f"judge{seed}", corpus, seed=seed, initializer_range=0.1))
        for seed in (0, 1)
    ]
    outs = outputs(["the cat", ""], ["a cat | the cat", "on the mat"], question="who sat?")
    metrics, signatures = score_outputs("sqa", outs, judges=judges)
    per_judge = [metrics[judge_metric(judge)] for judge in judges]
    assert per_judge[0] != per_judge[1]
    assert metrics["judge_accuracy"] == pytest.approx(sum(per_judge) / 2)
    assert metrics["judge_std"] == pytest.approx(abs(per_judge[0] - per_judge[1]) / 2)
    assert metrics["judge_invalid"] == 0  # BERGEN's rule scores every item
    assert signatures["judge"].startswith("BERGEN yes/no judge, next-token p(Yes)")
    assert "std over judges (ddof=0)" in signatures["judge"]
