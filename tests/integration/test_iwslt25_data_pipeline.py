"""The IWSLT25 data pipeline of recipes/IWSLT25/README.md end to end on tiny offline models:
SQA passages re-synthesized with Seamless TTS -> questions/answers translated (COMET filter)
-> unanswerable examples -> fluent answers -> features of the new audio -> stage A.2 trains on
the result. Each tool's own behaviour is tested in tests/unit; this test checks that what one
tool writes is what the next one and the training recipe read."""

import os
import runpy
import sys

import pytest
import soundfile as sf
from recipe_runs import PRESET, ROOT, run_recipe

from speechmapper_plugin.data.manifests import read_manifest, read_manifest_rows, write_csv
from speechmapper_plugin.data.prompts import UNANSWERABLE_ANSWERS
from speechmapper_plugin.tiny.comet import build_tiny_comet
from speechmapper_plugin.tiny.preset import preset_overrides
from speechmapper_plugin.tiny.seamless import build_tiny_seamless

TOOLS = os.path.join(ROOT, "recipes", "IWSLT25", "tools")
FIELDS = ["ID", "duration", "wav", "audio_id", "spk_id", "wrd", "transcript", "tgt", "tgt_lang"]
FIELDS += ["question", "context", "task"]


def _tool(name, *args, monkeypatch):
    script = os.path.join(TOOLS, name)
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    runpy.run_path(script, run_name="__main__")


@pytest.fixture(scope="module")
def sqa_input(tiny, tmp_path_factory):
    """An English SQA manifest in the Spoken-SQuAD recipe's shape: 8 passages of 3 mini-corpus
    sentences, one question per sentence (answer: its first word)."""
    rows = read_manifest(
        os.path.join(tiny["common"]["cache_folder"], "manifests", "train-clean-100.csv")
    )
    utts = list(rows.items())[:24]
    out = []
    for p in range(8):
        sentences = [r["wrd"].lower() for _, r in utts[3 * p : 3 * p + 3]]
        context = " ".join(s + "." for s in sentences)
        for q, sentence in enumerate(sentences):
            out.append(
                {
                    **{k: "" for k in FIELDS},
                    "ID": f"p{p}_q{q}",
                    "duration": 1.0,
                    "wav": utts[3 * p][1]["wav"],
                    "audio_id": f"p{p}",
                    "transcript": context,
                    "wrd": context.replace(".", ""),
                    "context": context,
                    "question": f"which word starts sentence {q + 1}?",
                    "tgt": sentence.split()[0],
                    "tgt_lang": "en",
                    "task": "sqa",
                }
            )
    path = tmp_path_factory.mktemp("sqa_in") / "train.csv"
    write_csv(str(path), out, FIELDS)
    texts = [r["context"] for r in out] + [r["question"] for r in out]
    models = tmp_path_factory.mktemp("tools_models")
    seamless = build_tiny_seamless(models / "seamless", texts)
    comet = build_tiny_comet(models / "comet", texts)
    return {"path": str(path), "seamless": str(seamless), "comet": str(comet), "rows": out}


def test_the_data_tools_feed_stage_a2(tiny, sqa_input, tmp_path, monkeypatch):
    sqa = tmp_path / "sqa"
    manifests = sqa / "manifests"
    seamless = ["--model", sqa_input["seamless"], "--device", "cpu"]

    # 1. re-synthesis with random voices of the pool
    _tool("resynthesize_sqa.py", "--input", sqa_input["path"], "--output",
          manifests / "train_en.csv", "--speakers", "0-3", "--seed", 1, *seamless,
          monkeypatch=monkeypatch)  # fmt: skip
    en = read_manifest(manifests / "train_en.csv")
    assert len(en) == 24 and len({r["audio_id"] for r in en.values()}) == 8
    for row in en.values():
        info = sf.info(row["wav"])
        assert info.samplerate == 16000
        assert abs(info.frames / 16000 - row["duration"]) < 1e-3

    # 2. questions and answers into de and zh (round-trip COMET, no threshold here)
    _tool("translate_manifest.py", "--input", manifests / "train_en.csv", "--output",
          manifests / "train_xx.csv", "--columns", "question", "tgt", "--languages", "de", "zh",
          "--comet-model", sqa_input["comet"], "--threshold", -1000, "--num-beams", 1,
          *seamless, monkeypatch=monkeypatch)  # fmt: skip
    xx, fields = read_manifest_rows(str(manifests / "train_xx.csv"))
    assert len(xx) == 48 and {r["tgt_lang"] for r in xx} == {"de", "zh"}
    assert {r["audio_id"] for r in xx} == {r["audio_id"] for r in en.values()}
    en_rows, en_fields = read_manifest_rows(str(manifests / "train_en.csv"))
    assert fields == en_fields
    write_csv(str(manifests / "train_all.csv"), en_rows + xx, fields)

    # 3. unanswerable questions, with the answerable ones
    _tool("make_unanswerable.py", "--input", manifests / "train_all.csv", "--output",
          manifests / "train_extractive.csv", "--fraction", 0.25, "--with-original",
          monkeypatch=monkeypatch)  # fmt: skip
    extractive = read_manifest(manifests / "train_extractive.csv")
    unanswerable = {i: r for i, r in extractive.items() if i.endswith("_unans")}
    assert len(extractive) == 72 + len(unanswerable) and len(unanswerable) >= 12
    for row in unanswerable.values():
        assert row["tgt"] == UNANSWERABLE_ANSWERS[row["tgt_lang"]]

    # 4. fluent answers (the random tiny LLM writes no German or Chinese: LID drops those)
    _tool("fluent_answers.py", "--input", manifests / "train_extractive.csv", "--output",
          manifests / "train_fluent.csv", "--model", tiny["llm"], "--dtype", "float32",
          "--device", "cpu", "--max-new-tokens", 8, "--no-answer-check",
          monkeypatch=monkeypatch)  # fmt: skip
    fluent = read_manifest(manifests / "train_fluent.csv")
    assert set(unanswerable) <= set(fluent) and set(fluent) <= set(extractive)

    # 5. features of the re-synthesized passages, once for both variants
    run_recipe(
        "extract_features.py",
        "SpokenSQuAD/features.yaml",
        preset_overrides(
            PRESET,
            ["features"],
            data_folder=str(tmp_path),
            cache_folder=str(sqa),
            skip_prep=True,
            splits=["train_extractive"],
        ),
        recipe="SpokenSQuAD",
    )

    # 6. stage A.2 on ASR + the new SQA data (fluent variant)
    cache = tiny["common"]["cache_folder"]
    out = tmp_path / "stage_a2"
    run_recipe(
        "train_projector.py",
        "IWSLT25/stage_a2_projector.yaml",
        preset_overrides(
            PRESET,
            ["iwslt_multitask"],
            llm_source=tiny["llm"],
            output_folder=str(out),
            speech_sources=[
                {
                    "manifests": [os.path.join(cache, "manifests", "train-clean-100.csv")],
                    "feature_folder": os.path.join(cache, "features", "fbank80_avg4"),
                    "task": "asr",
                },
                {
                    "manifests": [str(manifests / "train_fluent.csv")],
                    "feature_folder": str(sqa / "features" / "fbank80_avg4"),
                    "task": "sqa",
                },
            ],
            task_weights={"asr": 0.5, "st": 0.0, "sqa": 0.5},
            lang_weights={"st": {"de": 1.0, "it": 0.0, "zh": 0.0}},
            d_model=32,
            num_layers=1,
            nhead=4,
            d_ffn=64,
            valid_holdout=2,
            max_steps=6,
        ),
        recipe="IWSLT25",
    )
    assert (out / "curve.jsonl").is_file()
    assert any(d.startswith("CKPT") for d in os.listdir(out / "save"))
