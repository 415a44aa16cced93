"""Tests of the IWSLT 2025 IF official scoring: talk-level WER with Whisper's normalizer,
mweralign re-segmentation (word and character level), COMET on re-segmented hypotheses (tiny
COMET), rescaled BERTScore F1 (tiny encoder + baseline file) and the command line that adds
the metrics to result files."""

import csv
import json

import pytest

from speechmapper_plugin.evaluation import iwslt_scoring as isc
from speechmapper_plugin.evaluation.bertscore import BertScoreModelUnavailableError, bertscore_f1
from speechmapper_plugin.evaluation.comet import comet_score
from speechmapper_plugin.evaluation.results import load_results, make_result, write_result
from speechmapper_plugin.evaluation.tables import markdown_tables
from speechmapper_plugin.evaluation.talk_metrics import resegment, st_comet, talk_wer
from speechmapper_plugin.tiny.bertscore import build_tiny_bertscore
from speechmapper_plugin.tiny.comet import build_tiny_comet

# Two talks, two segments each (manifest order = spoken order).
TALKS = {
    "2022.acl-long.1": [
        ("Mr. Smith has two cats.", "Herr Smith hat zwei Katzen.", "史密斯先生有两只猫。"),
        ("He likes them.", "Er mag sie.", "他喜欢它们。"),
    ],
    "2022.acl-long.2": [
        ("The weather is nice today.", "Das Wetter ist heute schön.", "今天天气很好。"),
        ("We go out.", "Wir gehen raus.", "我们出去。"),
    ],
}


ROWS = [
    (talk, f"{talk}_sent{i:05d}", en, de, zh)
    for i, (talk, en, de, zh) in enumerate(
        ((talk, *texts) for talk, segments in TALKS.items() for texts in segments), 1
    )
]


ASR_HYPS = ["mister smith has 2 cats", "he likes them", "the whether is nice", "We go out!"]


DE_HYPS = ["Herr Smith hat zwei", "Katzen. Er mag sie.", "Das Wetter ist heute schön.", ""]


ZH_HYPS = ["史密斯先生有两只", "猫。他喜欢它们。", "今天天气很好。我们", "出去。"]


SQA = [("In Paris.", "in Paris"), ("two cats", "Two cats ||| 2 cats"), ("yes", "no idea")]


CORPUS = [t for row in ROWS for t in row[2:]] + DE_HYPS + ZH_HYPS + [t for p in SQA for t in p]


@pytest.fixture(scope="module")
def tiny_comet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_comet") / "model"
    build_tiny_comet(folder, CORPUS, seed=0)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return build_tiny_bertscore(tmp_path_factory.mktemp("tiny_bert") / "model", CORPUS)


def _manifest(folder, split, task, tgt=None):
    folder.mkdir(parents=True, exist_ok=True)
    fields = ["ID", "spk_id", "wrd", "transcript"] + (["tgt", "tgt_lang"] if tgt else [])
    with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for talk, seg, en, de, zh in ROWS:
            row = [seg + (f"-{tgt}" if tgt else ""), talk, en.lower(), en]
            if tgt:
                row += [de if tgt == "de" else zh, tgt]
            writer.writerow(row)


def _result(split, task, hyps, tgt=None, system="A.1", ids=None):
    outputs = [
        {
            "id": (ids or [r[1] + (f"-{tgt}" if tgt else "") for r in ROWS])[i],
            "hypothesis": hyp,
            "reference": "",
            "source": ROWS[i][2],
            "tgt_lang": tgt or "en",
        }
        for i, hyp in enumerate(hyps)
    ]
    metric = {"asr": {"wer": 12.0}, "st": {"bleu": 30.0}, "sqa": {"judge_accuracy": 80.0}}[task]
    return make_result(
        system, "ACL6060", split, task, metric, outputs, seed=1, target_lang=tgt or "en"
    )


def test_talk_wer_known_value_with_normalizer_effects():
    refs = [" ".join(r[2] for r in ROWS[:2]), " ".join(r[2] for r in ROWS[2:])]
    out = talk_wer([ASR_HYPS[:2], ASR_HYPS[2:]], refs)
    # talk 1: "Mr." -> "mister", "two" -> "2" on both sides: 0 errors / 8 words;
    # talk 2: "whether" for "weather" + "today" deleted; "We go out!" matches: 2 / 8 words.
    assert out["num_talks"] == 2 and out["num_reference_words"] == 16
    assert out["official_wer"] == pytest.approx(100 * 2 / 16)
    assert out["signature"].startswith(
        "whisper-normalizer:0.1.15(openai-rules=0.0.10)|english|talk-level|jiwer:"
    )
    # talk level: a word moved across a segment boundary costs nothing
    moved = talk_wer([["mister smith has", "2 cats he likes them"]], [refs[0]])
    assert moved["official_wer"] == 0.0
    # other languages: Whisper's basic normalizer (no English spelling/number rules)
    basic = talk_wer([["Mr Smith"]], ["Mr. Smith"], lang="de")
    assert basic["official_wer"] == 0.0 and "|basic|" in basic["signature"]


def test_talk_wer_normalizes_as_the_organizers_pinned_normalizer():
    """whisper_normalizer 0.0.10 (the organizers' pin, OpenAI's rules) leaves "kinda",
    "dunno", "'cause" as they are; 0.1.15 would rewrite them and lower this WER to 0."""
    out = talk_wer(
        [["I kinda dunno 'cause it rained"]], ["I kind of do not know because it rained"]
    )
    # 9 reference words; kinda ~ kind of: 1 sub + 1 del, dunno ~ do not know: 1 sub + 2 del,
    # cause ~ because: 1 sub
    assert out["official_wer"] == pytest.approx(100 * 6 / 9)
    same = talk_wer([["I kinda dunno 'cause it rained"]], ["i kinda dunno cause it rained"])
    assert same["official_wer"] == 0.0


def test_talk_wer_errors():
    with pytest.raises(ValueError, match="talk 0 has an empty reference after normalization"):
        talk_wer([["a"]], [", ; !"])
    with pytest.raises(ValueError, match="1 hypothesis lists and 2 references"):
        talk_wer([["a"]], ["a", "b"])
    with pytest.raises(TypeError, match="list of segment strings"):
        talk_wer(["a b"], ["a b"])


def test_resegment_one_segment_per_reference_sentence():
    refs = ["Herr Smith hat zwei Katzen.", "Er mag sie.", "Danke."]
    segments = resegment("Herr Smith hat zwei\nKatzen. Er mag sie. Danke schön.", refs)
    assert segments == ["Herr Smith hat zwei Katzen.", "Er mag sie.", "Danke schön."]
    # A talk without output is aligned as "." (the organizers' rule): one segment holds it.
    assert resegment("", refs) == [".", "", ""]
    assert resegment(" \n ", refs) == [".", "", ""]
    # more words than the references: every word lands in exactly one segment
    long = resegment("a b c Er mag sie x y", ["a b c", "Er mag sie"])
    assert len(long) == 2 and " ".join(long).split() == "a b c Er mag sie x y".split()
    assert long[1].startswith("Er mag sie")


def test_resegment_is_case_sensitive_as_mwersegmenter_usecase_1():
    # mweralign compares tokens case-insensitively; the organizers ran mwerSegmenter with
    # -usecase 1. Here "Cat" and "cat" differ, which decides where "cat" goes.
    refs = ["Cat", "the Sat the"]
    assert resegment("the cat", refs) == ["the", "cat"]
    assert resegment("the Cat", refs) == ["the Cat", ""]


def test_resegment_character_level_for_chinese():
    refs = [zh for *_, zh in ROWS[:2]]
    segments = resegment("史密斯先生 有两只猫。他喜欢它们。", refs, char_level=True)
    assert segments == ["史密斯先生有两只猫。", "他喜欢它们。"]
    # word level cannot split a text without spaces: everything lands in one segment
    words = resegment("史密斯先生有两只猫。他喜欢它们。", refs)
    assert sorted(words, key=len) == ["", "史密斯先生有两只猫。他喜欢它们。"]


def test_resegment_errors():
    with pytest.raises(ValueError, match="no reference sentence"):
        resegment("a b", [])
    with pytest.raises(TypeError, match="list of sentences"):
        resegment("a b", "a b")


def test_st_comet_scores_the_resegmented_hypotheses(tiny_comet):
    talks = [
        {
            "hypotheses": DE_HYPS[:2],
            "references": [r[3] for r in ROWS[:2]],
            "sources": [r[2] for r in ROWS[:2]],
        },
        {
            "hypotheses": DE_HYPS[2:],
            "references": [r[3] for r in ROWS[2:]],
            "sources": [r[2] for r in ROWS[2:]],
        },
    ]
    out = st_comet(talks, "de", model=tiny_comet, gpus=0)
    assert out["resegmented"] == [
        ["Herr Smith hat zwei Katzen.", "Er mag sie."],
        ["Das Wetter ist heute schön.", ""],
    ]
    assert (out["num_talks"], out["num_segments"]) == (2, 4)
    direct = comet_score(
        [r[2] for r in ROWS],
        [s for talk in out["resegmented"] for s in talk],
        [r[3] for r in ROWS],
        model=tiny_comet,
        gpus=0,
    )
    assert out["official_comet"] == pytest.approx(direct["comet"])
    assert out["signature"] == f"mweralign:1.4.1|word-level|{direct['signature']}"
    with pytest.raises(ValueError, match="talk 0 has 2 reference sentences but 1 source"):
        st_comet([{**talks[0], "sources": ["x"]}], "de", model=tiny_comet, gpus=0)


def test_a_talk_without_output_scores_a_dot_against_its_references(tiny_comet):
    talk = {
        "hypotheses": ["", ""],
        "references": [r[3] for r in ROWS[:2]],
        "sources": [r[2] for r in ROWS[:2]],
    }
    out = st_comet([talk], "de", model=tiny_comet, gpus=0)
    assert out["resegmented"] == [[".", ""]]
    direct = comet_score(talk["sources"], [".", ""], talk["references"], model=tiny_comet, gpus=0)
    assert out["official_comet"] == pytest.approx(direct["comet"])
    assert st_comet([talk], "zh", model=tiny_comet, gpus=0)["resegmented"] == [[".", ""]]


def test_bertscore_identical_beats_unrelated_and_uses_the_baseline(tiny_bert, tmp_path):
    import bert_score

    same = bertscore_f1(["in Paris", "two cats"], ["in Paris", "two cats"], "en", **tiny_bert)
    other = bertscore_f1(["in Paris", "two cats"], ["no idea", "Er mag sie."], "en", **tiny_bert)
    assert same["bertscore_f1"] == pytest.approx(100.0)
    assert other["bertscore_f1"] < same["bertscore_f1"] - 10
    assert same["signature"].endswith("-rescaled|bert-score:0.3.13|x100")
    # rescaling: (F - b) / (1 - b) with b the F column of the baseline file at num_layers
    hyps, refs = [h for h, _ in SQA], [r.split(" ||| ")[0] for _, r in SQA]
    _, _, raw = bert_score.score(
        hyps, refs, model_type=tiny_bert["model"], num_layers=tiny_bert["num_layers"]
    )
    with open(tiny_bert["baseline_path"]) as f:
        rows = list(csv.DictReader(f))
    b = float(rows[tiny_bert["num_layers"]]["F"])
    single = bertscore_f1(hyps, refs, "en", **tiny_bert)
    expected = 100 * float(((raw - b) / (1 - b)).mean())
    assert single["bertscore_f1"] == pytest.approx(expected, abs=1e-3)
    changed = tmp_path / "baseline.tsv"
    changed.write_text("LAYER,P,R,F\n" + "".join(f"{i},0.5,0.5,0.5\n" for i in range(3)))
    halved = bertscore_f1(hyps, refs, "en", **{**tiny_bert, "baseline_path": str(changed)})
    assert halved["bertscore_f1"] == pytest.approx(
        100 * float(((raw - 0.5) / 0.5).mean()), abs=1e-3
    )
    # several reference answers: the best one counts
    multi = bertscore_f1(["2 cats"], ["Two cats ||| 2 cats"], "en", **tiny_bert)
    assert multi["bertscore_f1"] == pytest.approx(100.0)


def test_bertscore_model_errors_are_clear(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(BertScoreModelUnavailableError) as err:
        bertscore_f1(["a"], ["a"], "en")
    message = str(err.value)
    assert "'roberta-large' is not in the Hugging Face cache" in message
    assert "--bertscore_model=/path/to/folder" in message and "--bertscore_baseline" in message
    with pytest.raises(BertScoreModelUnavailableError, match="no config.json"):
        bertscore_f1(["a"], ["a"], "en", model=str(tmp_path), num_layers=1, baseline_path="x")
    with pytest.raises(ValueError, match="give --bertscore_baseline"):
        bertscore_f1(["a"], ["a"], "en", model=tiny_bert["model"], num_layers=2)
    with pytest.raises(FileNotFoundError, match="baseline file .*missing.tsv not found"):
        bertscore_f1(
            ["a"], ["a"], "en", **{**tiny_bert, "baseline_path": str(tmp_path / "missing.tsv")}
        )


def _cli_setup(tmp_path):
    manifests = tmp_path / "manifests"
    _manifest(manifests, "eval_asr", "asr")
    _manifest(manifests, "eval_en-de", "st", "de")
    _manifest(manifests, "eval_en-zh", "st", "zh")
    results = tmp_path / "results"
    paths = {
        "asr": write_result(results, _result("eval_asr", "asr", ASR_HYPS)),
        "de": write_result(results, _result("eval_en-de", "st", DE_HYPS, "de")),
        "zh": write_result(results, _result("eval_en-zh", "st", ZH_HYPS, "zh")),
    }
    sqa = make_result(
        "A.1",
        "SpokenSQuAD",
        "test",
        "sqa",
        {"judge_accuracy": 66.7},
        [{"id": f"q{i}", "hypothesis": h, "reference": r} for i, (h, r) in enumerate(SQA)],
        seed=1,
        target_lang="en",
    )
    paths["sqa"] = write_result(results, sqa)
    return manifests, results, paths


def test_command_line_adds_the_official_metrics(tiny_comet, tiny_bert, tmp_path):
    manifests, results, paths = _cli_setup(tmp_path)
    args = [
        str(results),
        "--manifest_folder",
        str(manifests),
        "--comet_model",
        tiny_comet,
        "--gpus",
        "0",
        "--bertscore_model",
        tiny_bert["model"],
        "--bertscore_num_layers",
        str(tiny_bert["num_layers"]),
        "--bertscore_baseline",
        tiny_bert["baseline_path"],
    ]
    written = isc.main(args)
    assert sorted(written) == sorted(paths.values())
    scored = {k: json.loads(open(p).read()) for k, p in paths.items()}
    assert scored["asr"]["metrics"]["official_wer"] == pytest.approx(100 * 2 / 16)
    assert scored["asr"]["metrics"]["wer"] == 12.0  # the team's metric is kept
    assert scored["asr"]["official_scoring"] == {
        "protocol": "iwslt25-if-short",
        "talk_field": "spk_id",
        "num_talks": 2,
        "num_segments": 4,
        "missing_hypotheses": 0,
        "references": "eval_asr.csv",  # no <split>.references.csv: the manifest (warned)
    }
    for key in ("de", "zh"):
        assert set(scored[key]["metrics"]) == {"bleu", "official_comet"}
    assert scored["zh"]["signatures"]["official_comet"].startswith("mweralign:1.4.1|char-level|")
    assert scored["de"]["signatures"]["official_comet"].startswith("mweralign:1.4.1|word-level|")
    assert set(scored["sqa"]["metrics"]) == {"judge_accuracy", "bertscore_f1"}
    # the report shows them next to the team's metrics
    text = markdown_tables(load_results(str(results)))
    assert "### ASR: official WER (↓)" in text and "| A.1 | 12.5 |" in text
    assert "### ST: official COMET (↑)" in text and "### SQA: BERTScore F1 (↑)" in text
    # re-scoring replaces the values (no duplicate metric, same files)
    assert sorted(isc.main(args + ["--tasks", "asr"])) == [paths["asr"]]
    assert json.loads(open(paths["asr"]).read())["metrics"] == scored["asr"]["metrics"]
    # --output_folder writes copies and leaves the originals alone
    out = isc.main(args[:3] + ["--tasks", "asr", "--output_folder", str(tmp_path / "copy")])
    assert [p.startswith(str(tmp_path / "copy")) for p in out] == [True]


def test_missing_hypotheses_count_as_empty(tmp_path):
    manifests, results, paths = _cli_setup(tmp_path)
    partial = _result("eval_asr", "asr", ASR_HYPS[:3], ids=[r[1] for r in ROWS[:3]])
    path = write_result(tmp_path / "partial", partial)
    isc.main([path, "--manifest_folder", str(manifests)])
    result = json.loads(open(path).read())
    assert result["official_scoring"]["missing_hypotheses"] == 1
    assert result["metrics"]["official_wer"] == pytest.approx(100 * 5 / 16)  # + "we go out"


def test_command_line_errors_name_the_problem(tmp_path, capsys):
    manifests, results, paths = _cli_setup(tmp_path)
    bad = _result("eval_asr", "asr", ["x", "y"], ids=["nope_1", ROWS[0][1]])
    bad_path = write_result(tmp_path / "bad", bad)

    def error(argv):
        with pytest.raises(SystemExit) as exit_info:
            isc.main(argv)
        assert exit_info.value.code == 2
        return capsys.readouterr().err

    message = error([bad_path, "--manifest_folder", str(manifests)])
    assert f"{bad_path}: 1 output id(s) are not in the manifest, e.g. nope_1" in message
    message = error([paths["asr"]])
    assert "give --manifest_folder" in message
    message = error([paths["asr"], "--manifest_folder", str(tmp_path / "none")])
    assert "Manifest " + str(tmp_path / "none" / "eval_asr.csv") + " not found" in message
    (manifests / "eval_asr.csv").write_text("ID,wrd\nx,y\n")
    message = error([paths["asr"], "--manifest_folder", str(manifests)])
    assert "the manifest has no column 'spk_id'" in message and "--talk_field" in message
    message = error([str(tmp_path / "nothing_here.json")])
    assert "neither a file nor a folder" in message
