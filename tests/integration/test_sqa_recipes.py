"""End-to-end test of the task-specific SQA stage 2 on the tiny preset: the mini-corpus
re-packaged in the official Spoken-SQuAD layout (SQuAD-v1.1 JSON files + one wav per context
sentence named <article>_<paragraph>_<sentence>.wav) -> SpokenSQuAD/extract_features.py (one
feature entry per passage) -> SpokenSQuAD/train_stage2.py (SQA CE with ASR batches drawn with
probability 0.5 from the LibriSpeech cache, validation on held-out training questions since
Spoken-SQuAD has no dev set) -> its in-domain test result."""

import json
import os

import pytest
import soundfile as sf
from recipe_runs import PRESET, run_recipe

from speechmapper_plugin.evaluation.results import load_results
from speechmapper_plugin.features.cache import FeatureCache
from speechmapper_plugin.tiny.preset import preset_overrides
from speechmapper_plugin.training import stage2

# mini-corpus split -> (Spoken-SQuAD split, JSON file, sentence-wav folder)
SPLITS = {
    "train-clean-100": ("train", "spoken_train-v1.1.json", "train_wav"),
    "test-clean": ("test", "spoken_test-v1.1.json", "dev_wav"),
}
UTTERANCES_PER_PASSAGE = 2
QUESTIONS = (  # (question, answer word index): deterministic answers, spans of the context
    ("what is the first word?", 0),
    ("what is the last word?", -1),
)


def _utterances(folder):
    """``[(flac path, lower-cased text)]`` of a LibriSpeech-layout split, in sorted order."""
    utterances = []
    for dirpath, _, files in sorted(os.walk(folder)):
        for name in sorted(f for f in files if f.endswith(".trans.txt")):
            with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                for line in f:
                    utt, text = line.strip().split(" ", 1)
                    utterances.append((os.path.join(dirpath, f"{utt}.flac"), text.lower()))
    return utterances


def _write_split(corpus, root, split, json_name, wav_name):
    """One Spoken-SQuAD split: a paragraph per 2 consecutive utterances (the sentences), with 2
    questions on even paragraphs and 1 on odd ones. Returns (passages, questions)."""
    wav_folder = root / "Spoken-SQuAD_audio" / wav_name
    wav_folder.mkdir(parents=True)
    utterances = _utterances(os.path.join(corpus, split))
    paragraphs, questions = [], []
    for p in range(len(utterances) // UTTERANCES_PER_PASSAGE):
        sentences = utterances[p * UTTERANCES_PER_PASSAGE : (p + 1) * UTTERANCES_PER_PASSAGE]
        for s, (flac, _) in enumerate(sentences):
            audio, rate = sf.read(flac)
            sf.write(str(wav_folder / f"0_{p}_{s}.wav"), audio, rate, subtype="PCM_16")
        context = " ".join(f"{text}." for _, text in sentences)
        words = context.replace(".", "").split()
        qas = []
        for q, (question, index) in enumerate(QUESTIONS[: 2 - p % 2]):
            answer = words[index]
            start = context.find(answer) if index == 0 else context.rfind(answer)
            qid = f"{split}-{p}-{q}"
            qas.append(
                {
                    "id": qid,
                    "question": question,
                    "answers": [{"answer_start": start, "text": answer}],
                }
            )
            questions.append((qid, question, answer))
        paragraphs.append({"context": context, "qas": qas})
    data = {"version": "1.1", "data": [{"title": "minicorpus", "paragraphs": paragraphs}]}
    (root / json_name).write_text(json.dumps(data), encoding="utf-8")
    return len(paragraphs), questions


@pytest.fixture(scope="module")
def spokensquad(tiny):
    """The mini-corpus in the Spoken-SQuAD layout (24 train passages / 36 questions, 4 test
    passages / 6 questions), its manifests and features extracted."""
    root = tiny["root"] / "spokensquad"
    corpus = os.path.join(tiny["common"]["data_folder"], "LibriSpeech")
    passages, questions = {}, {}
    for split, (name, json_name, wav_name) in SPLITS.items():
        passages[name], questions[name] = _write_split(
            corpus, root / "data", split, json_name, wav_name
        )
    paths = {"data_folder": str(root / "data"), "cache_folder": str(root / "cache")}
    run_recipe(
        "extract_features.py",
        "SpokenSQuAD/features.yaml",
        preset_overrides(PRESET, ["features"], splits=["train", "test"], **paths),
        recipe="SpokenSQuAD",
    )
    return {"paths": paths, "passages": passages, "questions": questions}


def _stage2_args(tiny, spokensquad, stage1_run, **extra):
    cache = tiny["common"]["cache_folder"]
    args = {
        "llm_source": tiny["llm"],
        "stage1_checkpoint": str(stage1_run[0] / "save"),
        "valid_holdout": 4,
        "asr_probability": 0.5,
        "asr_manifest_folder": os.path.join(cache, "manifests"),
        "asr_feature_folder": os.path.join(cache, "features", "fbank80_avg4"),
        "asr_splits": ["train-clean-100"],
        **spokensquad["paths"],
    }
    return preset_overrides(PRESET, ["projector", "stage2_task"], **{**args, **extra})


def test_spokensquad_task_specific_stage2(tiny, spokensquad, stage1_run, monkeypatch):
    # The task(s) and CE loss of every training batch, observed where the batches are consumed.
    trained = []
    forward = stage2.Stage2Brain.compute_forward

    def recording_forward(self, batch, stage):
        outputs = forward(self, batch, stage)
        if stage == stage2.sb.Stage.TRAIN:
            trained.append((set(batch.task), float(outputs[2].detach())))
        return outputs

    monkeypatch.setattr(stage2.Stage2Brain, "compute_forward", recording_forward)

    out = tiny["root"] / "stage2_sqa"
    # A tiny judge whose tokenizer has "Yes" and "No" tokens, as real judges do (BERGEN's
    # default decision reads their next-token probabilities).
    from speechmapper_plugin.tiny.llm import build_tiny_llm

    judge = str(build_tiny_llm(tiny["root"] / "judge", ["Yes", "No", "Yes it is", "No"] * 6))
    run_recipe(
        "train_stage2.py",
        "SpokenSQuAD/stage2_sqa.yaml",
        _stage2_args(tiny, spokensquad, stage1_run, output_folder=str(out), judges=[judge]),
        recipe="SpokenSQuAD",
    )

    # One manifest row per question, one feature entry per passage (shared by its questions).
    cache = spokensquad["paths"]["cache_folder"]
    features = FeatureCache(os.path.join(cache, "features", "fbank80_avg4"))
    assert len(features) == sum(spokensquad["passages"].values()) == 28
    assert "train_0_0" in features and "test_0_3" in features
    with open(os.path.join(cache, "manifests", "train.csv"), encoding="utf-8") as f:
        assert sum(1 for _ in f) - 1 == len(spokensquad["questions"]["train"]) == 36

    # Both ASR and SQA batches were drawn (40 steps x 1 batch), each batch of a single task.
    assert len(trained) == 40
    assert all(len(tasks) == 1 for tasks, _ in trained)
    losses = {}
    for tasks, loss in trained:
        losses.setdefault(tasks.pop(), []).append(loss)
    assert set(losses) == {"asr", "sqa"}
    assert min(len(v) for v in losses.values()) >= 10  # about half each

    # Training learned: the logged loss went down, and so did the SQA batches' own CE (the
    # logged means mix ASR and SQA batches, whose losses differ).
    with open(out / "curve.jsonl", encoding="utf-8") as f:
        curve = [json.loads(line) for line in f]
    train = [c for c in curve if c["split"] == "train"]
    assert len(train) == 8  # 40 steps, logged every 5
    assert train[-1]["loss"] < train[0]["loss"]
    sqa = losses["sqa"]
    assert sum(sqa[-3:]) / 3 < sum(sqa[:3]) / 3 - 0.05
    assert [c["split"] for c in curve].count("valid") == 1  # on the held-out questions

    # In-domain SQA result: decoded with the SQA IT prompt (with the question), scored.
    (result,) = load_results([str(out / "results")])
    test_questions = spokensquad["questions"]["test"]
    assert result["split"] == "test" and result["dataset"] == "SpokenSQuAD"
    assert result["task"] == "sqa" and result["setting"] == "in-domain"
    assert result["system"] == "Stage 2 [ASR/SQA CE]"
    assert result["num_utterances"] == len(test_questions) == 6
    metrics = result["metrics"]
    assert {"lid_target_pct", "stuck_pct"} <= set(metrics)
    # The tiny judge scored every answer with BERGEN's rule (p(Yes) of its next token).
    assert metrics["judge_invalid"] == 0
    assert 0.0 < metrics[f"judge_accuracy[{judge}]"] == metrics["judge_accuracy"] < 100.0
    assert metrics["judge_std"] == 0.0  # one judge: no spread
    assert result["signatures"]["judge"].startswith("BERGEN yes/no judge, next-token p(Yes)")
    prompt = result["decoding"]["example_prompt"]
    assert "Based on the speech segment" in prompt
    assert "without any explanation" not in prompt  # IT suffix, as trained, not the zero-shot one
    first_question = {qid: q for qid, q, _ in test_questions}[result["outputs"][0]["id"]]
    assert first_question in prompt
    answers = {qid: a for qid, _, a in test_questions}
    assert {o["id"]: o["reference"] for o in result["outputs"]} == answers


def test_valid_holdout_larger_than_the_training_questions_is_an_error_before_training(
    tiny, spokensquad, stage1_run, tmp_path
):
    too_many = len(spokensquad["questions"]["train"]) + 1
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"valid_holdout={too_many}"):
        run_recipe(
            "train_stage2.py",
            "SpokenSQuAD/stage2_sqa.yaml",
            _stage2_args(
                tiny, spokensquad, stage1_run, output_folder=str(out), valid_holdout=too_many
            ),
            recipe="SpokenSQuAD",
        )
    assert not (out / "curve.jsonl").exists()
    assert not (out / "save").exists() or not os.listdir(out / "save")
