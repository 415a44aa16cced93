"""End-to-end tests of the IWSLT25 system's recipes on the tiny preset: stage B (text LoRA on
MT and QA text from dataset manifests) saved as a standard peft adapter, and the errors a
user gets before any training step (an adapter of another base model, a task without data)."""

import json
import os

import pytest
from recipe_runs import PRESET, read_batch_log, run_recipe, run_torchrun

from speechmapper_plugin.data.manifests import write_csv
from speechmapper_plugin.models.frozen_llm import FrozenLLM
from speechmapper_plugin.models.lora import load_lora
from speechmapper_plugin.tiny.llm import build_tiny_llm
from speechmapper_plugin.tiny.preset import preset_overrides


def _texts(tiny, n):
    corpus = os.path.join(tiny["common"]["data_folder"], "LibriSpeech", "train-clean-100")
    texts = []
    for dirpath, _, files in sorted(os.walk(corpus)):
        for name in sorted(f for f in files if f.endswith(".trans.txt")):
            with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                texts += [line.split(" ", 1)[1].strip().lower() for line in f]
    return texts[:n]


@pytest.fixture(scope="module")
def text_manifests(tiny, tmp_path_factory):
    """An MT manifest (ST rows) and a QA manifest (SQA rows) as the dataset recipes write."""
    root = tmp_path_factory.mktemp("iwslt_text")
    texts = _texts(tiny, 40)
    mt = [
        {
            "ID": f"mt{i}",
            "transcript": t.capitalize() + ".",
            "tgt": " ".join(reversed(t.split())) + ".",
            "tgt_lang": "de",
        }
        for i, t in enumerate(texts[:24])
    ]
    qa = [
        {
            "ID": f"qa{i}",
            "transcript": t,
            "question": "what is the first word?",
            "tgt": t.split()[0],
            "tgt_lang": "en",
        }
        for i, t in enumerate(texts[24:40])
    ]
    write_csv(str(root / "mt.csv"), mt, ["ID", "transcript", "tgt", "tgt_lang"])
    write_csv(str(root / "qa.csv"), qa, ["ID", "transcript", "question", "tgt", "tgt_lang"])
    return {"mt": str(root / "mt.csv"), "qa": str(root / "qa.csv")}


def _lora_args(tiny, manifests, out, **extra):
    sources = [
        {"manifests": [manifests["mt"]], "task": "st"},
        {"manifests": [manifests["qa"]], "task": "sqa"},
    ]
    args = {"llm_source": tiny["llm"], "text_sources": sources, "output_folder": str(out)}
    return preset_overrides(PRESET, ["iwslt_lora"], **{**args, **extra})


@pytest.fixture(scope="module")
def lora_run(tiny, text_manifests, tmp_path_factory):
    out = tmp_path_factory.mktemp("stage_b")
    run_recipe(
        "train_lora.py",
        "IWSLT25/stage_b_lora.yaml",
        _lora_args(tiny, text_manifests, out),
        recipe="IWSLT25",
    )
    return out


def test_stage_b_trains_and_saves_a_standard_peft_adapter(tiny, lora_run):
    with open(lora_run / "curve.jsonl", encoding="utf-8") as f:
        curve = [json.loads(line) for line in f]
    train = [r for r in curve if r["split"] == "train"]
    assert len(train) == 6 and train[-1]["ce"] < train[0]["ce"] - 0.2  # learned
    assert [r for r in curve if r["split"] == "valid"]
    adapter = lora_run / "adapter"
    with open(adapter / "adapter_config.json", encoding="utf-8") as f:
        config = json.load(f)
    assert config["r"] == 4 and config["lora_alpha"] == 8 and config["peft_type"] == "LORA"
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    assert (adapter / "adapter_model.safetensors").is_file()

    # peft loads it as any adapter; with it the LLM scores the MT targets better than without
    prompt = [
        "Text segment: The cat sat.\nKönnen Sie den Inhalt der Rede in den deutschen Text übersetzen?"
    ]
    base = FrozenLLM(tiny["llm"], dtype="float32")
    before = base(None, None, prompt, ["sat cat the."])["loss"].item()
    load_lora(base, str(adapter), trainable=False)
    after = base(None, None, prompt, ["sat cat the."])["loss"].item()
    assert after < before


def test_adapter_of_another_base_model_is_refused(tiny, lora_run, tmp_path):
    other = build_tiny_llm(str(tmp_path / "other"), _texts(tiny, 40), seed=1)
    llm = FrozenLLM(other, dtype="float32")
    with pytest.raises(ValueError, match="trained for another base model .* embedding_sha1"):
        load_lora(llm, str(lora_run / "adapter"))
    with pytest.raises(FileNotFoundError, match="not a LoRA adapter folder"):
        load_lora(llm, str(tmp_path))


def test_task_without_data_under_the_weights_is_an_error_before_training(
    tiny, text_manifests, tmp_path
):
    args = _lora_args(
        tiny,
        text_manifests,
        tmp_path / "out",
        text_sources=[{"manifests": [text_manifests["mt"]], "task": "st"}],
    )
    with pytest.raises(ValueError, match=r"name group\(s\) \['sqa'\] that have no data"):
        run_recipe("train_lora.py", "IWSLT25/stage_b_lora.yaml", args, recipe="IWSLT25")
    assert not (tmp_path / "out" / "curve.jsonl").exists()


def _multitask_args(tiny, covost, out, **extra):
    cache = tiny["common"]["cache_folder"]
    args = {
        "llm_source": tiny["llm"],
        "output_folder": str(out),
        "speech_sources": [
            {
                "manifests": [os.path.join(cache, "manifests", "train-clean-100.csv")],
                "feature_folder": os.path.join(cache, "features", "fbank80_avg4"),
                "task": "asr",
            },
            {
                "manifests": [os.path.join(covost["cache_folder"], "manifests", "train_en-de.csv")],
                "feature_folder": os.path.join(covost["cache_folder"], "features", "fbank80_avg4"),
                "task": "st",
            },
        ],
        "task_weights": {"asr": 0.5, "st": 0.5, "sqa": 0.0},
        "lang_weights": {"st": {"de": 1.0, "it": 0.0, "zh": 0.0}},  # (YAML dicts merge)
        **_TRANSFORMER,
        "max_steps": 20,
        "lr": 0.001,
        "lora_lr": 0.003,
    }
    return preset_overrides(PRESET, ["iwslt_multitask"], **{**args, **extra})


def _train_ce(folder):
    with open(folder / "curve.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["ce"] for line in f if '"train"' in line]


_TRANSFORMER = {"d_model": 64, "num_layers": 2, "nhead": 4, "d_ffn": 128}


def _pseudo(text, lang):
    """A deterministic stand-in 'translation' of ``text`` into ``lang`` (the tiny LLM is
    random: only the data flow matters)."""
    words = text.lower().rstrip(".").split()
    return {
        "en": " ".join(words),
        "de": " ".join(reversed(words)),
        "it": " ".join(w + "a" for w in words),
        "zh": "".join(words),
    }[lang]


@pytest.fixture(scope="module")
def multilingual(tiny, covost, tmp_path_factory):
    """Tiny multilingual IWSLT25 data made from the mini-corpus: ASR (en), ST en->de/it/zh
    on the CoVoST 2 clips, SQA with questions and answers in en/de/it/zh on the LibriSpeech
    utterances (features shared with the recipes' caches through ``audio_id``), and the text
    counterparts (MT, text QA)."""
    from speechmapper_plugin.data.manifests import read_manifest

    root = tmp_path_factory.mktemp("multilingual")
    cache = tiny["common"]["cache_folder"]
    fields = ["ID", "duration", "wav", "audio_id", "wrd", "transcript", "tgt", "tgt_lang"]
    sqa_fields = fields + ["question", "context", "task"]
    st = read_manifest(os.path.join(covost["cache_folder"], "manifests", "train_en-de.csv"))
    asr = read_manifest(os.path.join(cache, "manifests", "train-clean-100.csv"))
    test = read_manifest(os.path.join(cache, "manifests", "test-clean.csv"))
    paths = {}
    for lang in ("de", "it", "zh"):
        rows = [
            {
                **r,
                "ID": f"{i}-{lang}",
                "audio_id": r["audio_id"],
                "tgt": _pseudo(r["transcript"], lang),
                "tgt_lang": lang,
            }
            for i, r in st.items()
        ]
        paths[f"st-{lang}"] = str(root / f"st_{lang}.csv")
        write_csv(paths[f"st-{lang}"], rows, fields)

    def sqa_rows(rows, langs):
        out = []
        for n, (i, r) in enumerate(rows.items()):
            lang = langs[n % len(langs)]
            text = r["wrd"].lower()
            out.append(
                {
                    **r,
                    "ID": f"{i}-q{lang}",
                    "audio_id": r.get("audio_id") or i,
                    "transcript": text,
                    "context": text,
                    "question": f"({lang}) what is the first word?",
                    "tgt": _pseudo(text.split()[0], lang),
                    "tgt_lang": lang,
                    "task": "sqa",
                }
            )
        return out

    paths["sqa"] = str(root / "sqa.csv")
    write_csv(paths["sqa"], sqa_rows(asr, ["en", "de", "it", "zh"]), sqa_fields)
    paths["sqa_test"] = str(root / "manifests" / "test_de.csv")
    write_csv(paths["sqa_test"], sqa_rows(test, ["de"]), sqa_fields)
    features = os.path.join(cache, "features", "fbank80_avg4")
    st_features = os.path.join(covost["cache_folder"], "features", "fbank80_avg4")
    st_csvs = [paths[f"st-{lang}"] for lang in ("de", "it", "zh")]
    return {
        "speech_sources": [
            {
                "manifests": [os.path.join(cache, "manifests", "train-clean-100.csv")],
                "feature_folder": features,
                "task": "asr",
            },
            {"manifests": st_csvs, "feature_folder": st_features, "task": "st"},
            {"manifests": [paths["sqa"]], "feature_folder": features, "task": "sqa"},
        ],
        "text_sources": [
            {"manifests": st_csvs, "task": "st"},
            {"manifests": [paths["sqa"]], "task": "sqa"},
        ],
        "sqa_manifest_folder": str(root / "manifests"),
        "features": features,
    }


@pytest.fixture(scope="module")
def fusion_run(tiny, multilingual, lora_run):
    """Stage A.2 (Transformer projector alone, ASR + ST + SQA) then stage C (A + the stage-B
    adapter), both with the YAML's task and language weights (ASR/ST/SQA 0.3/0.4/0.3, ST
    de:it:zh 0.4:0.4:0.2)."""
    common = {
        "llm_source": tiny["llm"],
        "speech_sources": multilingual["speech_sources"],
        **_TRANSFORMER,
        "max_steps": 20,
        "lr": 0.001,
        "lora_lr": 0.003,
    }
    stage_a = tiny["root"] / "iwslt_stage_a"
    run_recipe(
        "train_projector.py",
        "IWSLT25/stage_a2_projector.yaml",
        preset_overrides(PRESET, ["iwslt_multitask"], output_folder=str(stage_a), **common),
        recipe="IWSLT25",
    )
    # Stage C: projector A + adapter B, two optimizers, each speech batch followed by the
    # matching text batch (ST en-it speech, then MT en-it text...)
    stage_c = tiny["root"] / "iwslt_stage_c"
    run_recipe(
        "train_fusion.py",
        "IWSLT25/stage_c_fusion.yaml",
        preset_overrides(
            PRESET,
            ["iwslt_multitask"],
            output_folder=str(stage_c),
            projector_init=str(stage_a / "save"),
            lora_adapter=str(lora_run / "adapter"),
            text_sources=multilingual["text_sources"],
            **common,
        ),
        recipe="IWSLT25",
    )
    return stage_a, stage_c


def test_stage_a_then_fusion_with_the_stage_b_adapter(fusion_run, lora_run):
    import torch
    from safetensors.torch import load_file

    stage_a, stage_c = fusion_run
    ce = _train_ce(stage_a)
    assert len(ce) == 4 and ce[-1] < ce[0]
    (ckpt,) = [d for d in os.listdir(stage_a / "save") if d.startswith("CKPT")]
    projector_a = torch.load(stage_a / "save" / ckpt / "projector.ckpt")
    assert len(_train_ce(stage_c)) == 4
    # both parts were trained: the exported projector and adapter differ from their inputs
    projector_c = torch.load(stage_c / "projector.ckpt")
    assert projector_c.keys() == projector_a.keys()
    assert any(not torch.equal(projector_c[k], projector_a[k]) for k in projector_a)
    adapter_b = load_file(lora_run / "adapter" / "adapter_model.safetensors")
    adapter_c = load_file(stage_c / "adapter" / "adapter_model.safetensors")
    assert adapter_c.keys() == adapter_b.keys()
    assert any(not torch.equal(adapter_c[k], adapter_b[k]) for k in adapter_b)
    with open(stage_c / "train_log.txt", encoding="utf-8") as f:
        assert "valid loss" in f.read()


def test_projector_width_that_does_not_match_the_llm_is_an_error_before_training(
    tiny, covost, tmp_path
):
    with pytest.raises(ValueError, match="outputs 64-dim vectors but .* 128-dim embeddings"):
        run_recipe(
            "train_projector.py",
            "IWSLT25/stage_a1_projector.yaml",
            _multitask_args(tiny, covost, tmp_path / "out", llm_dim=64),
            recipe="IWSLT25",
        )
    assert not (tmp_path / "out" / "curve.jsonl").exists()


def test_task_weights_without_data_are_an_error_before_training(tiny, covost, tmp_path):
    with pytest.raises(ValueError, match=r"ask for task\(s\) \['sqa'\] that have no training data"):
        run_recipe(
            "train_projector.py",
            "IWSLT25/stage_a1_projector.yaml",
            _multitask_args(
                tiny, covost, tmp_path / "out", task_weights={"asr": 0.3, "st": 0.4, "sqa": 0.3}
            ),
            recipe="IWSLT25",
        )


def test_evaluation_through_the_llm_with_the_adapter(tiny, covost, lora_run, tmp_path):
    from speechmapper_plugin.evaluation.results import load_results

    common = {
        "llm_source": tiny["llm"],
        "system": "transcript",
        "system_name": "Transcripts + LLM + LoRA",
        "setting": "topline",
        "test_splits": ["test_en-de"],
        "comet_model": None,
        **covost,
    }
    outputs = {}
    for name, adapter in (("base", None), ("lora", str(lora_run / "adapter"))):
        out = tmp_path / name
        args = preset_overrides(
            PRESET, ["evaluate"], output_folder=str(out), lora_adapter=adapter, **common
        )
        run_recipe("evaluate.py", "CoVoST2/evaluate.yaml", args, recipe="CoVoST2")
        (result,) = load_results([str(out / "results")])
        assert result["decoding"]["lora_adapter"] == adapter
        outputs[name] = [o["hypothesis"] for o in result["outputs"]]
    assert outputs["lora"] != outputs["base"]  # the adapter changes what the LLM generates

    args = preset_overrides(
        PRESET,
        ["evaluate"],
        output_folder=str(tmp_path / "asr"),
        lora_adapter=str(lora_run / "adapter"),
        **{**common, "system": "asr"},
    )
    with pytest.raises(ValueError, match="system='asr' uses no LLM"):
        run_recipe("evaluate.py", "CoVoST2/evaluate.yaml", args, recipe="CoVoST2")


def test_the_fused_system_is_evaluated_through_evaluate_py(
    tiny, covost, multilingual, fusion_run, tmp_path
):
    """A -> B -> C -> evaluation: the stage-C projector (Transformer) and adapter decode the
    CoVoST 2 en-de test set and a German SQA test set through the datasets' evaluation
    recipes, and the report puts both in the talk's table."""
    from speechmapper_plugin.evaluation.report import main as report_main
    from speechmapper_plugin.evaluation.results import load_results

    _, stage_c = fusion_run
    common = {
        "llm_source": tiny["llm"],
        "system_name": "A.2 + B",
        "setting": "in-domain",
        "zero_shot": False,
        "test_splits": ["test_en-de"],
        "comet_model": None,
        "projector_type": "transformer",
        "transformer_projector": _TRANSFORMER,
        "lora_adapter": str(stage_c / "adapter"),
        **covost,
    }
    args = preset_overrides(
        PRESET,
        ["projector", "evaluate"],
        output_folder=str(tmp_path / "fused"),
        projector_checkpoint=str(stage_c / "projector.ckpt"),
        **common,
    )
    run_recipe("evaluate.py", "CoVoST2/evaluate.yaml", args, recipe="CoVoST2")
    (result,) = load_results([str(tmp_path / "fused" / "results")])
    assert result["system"] == "A.2 + B" and result["task"] == "st"
    assert result["decoding"]["lora_adapter"] == str(stage_c / "adapter")
    assert len(result["outputs"]) == 8 and "bleu" in result["metrics"]
    assert "Speech segment:" in result["decoding"]["example_prompt"]

    # SQA with German questions (answers expected in German), same fused model
    args = preset_overrides(
        PRESET,
        ["projector", "evaluate"],
        output_folder=str(tmp_path / "fused_sqa"),
        projector_checkpoint=str(stage_c / "projector.ckpt"),
        **{
            **{k: v for k, v in common.items() if k not in covost},
            "data_folder": str(tmp_path),  # unused: the manifest is already there
            "skip_prep": True,
            "manifest_folder": multilingual["sqa_manifest_folder"],
            "feature_folder": multilingual["features"],
            "test_splits": ["test_de"],
            "judges": [tiny["llm"]],
            "judge_protocol": "freeform",  # the tiny LLM's tokenizer has no "Yes"/"No" token
        },
    )
    run_recipe("evaluate.py", "SpokenSQuAD/evaluate.yaml", args, recipe="SpokenSQuAD")
    (sqa,) = load_results([str(tmp_path / "fused_sqa" / "results")])
    assert sqa["task"] == "sqa" and sqa["target_lang"] == "de" and len(sqa["outputs"]) == 8
    assert "(de) what is the first word?" in sqa["decoding"]["example_prompt"]

    report = tmp_path / "report.md"
    report_main(
        [
            str(tmp_path / "fused" / "results"),
            str(tmp_path / "fused_sqa" / "results"),
            "--layout",
            "iwslt25",
            "--datasets",
            "st=CoVoST2",
            "--output",
            str(report),
        ]
    )
    lines = report.read_text().splitlines()
    header = next(line for line in lines if line.startswith("| System | WER en"))
    row = next(line for line in lines if line.startswith("| A.2 + B"))
    cells = dict(zip(header.split("|")[1:-1], row.split("|")[1:-1]))
    assert cells[" BLEU en-de "].strip() == f"{result['metrics']['bleu']:.2f}"
    assert cells[" WER en "].strip() == "–"  # not evaluated on ASR here

    # a SpeechMapper-architecture YAML cannot load the Transformer projector's weights
    args = preset_overrides(
        PRESET,
        ["projector", "evaluate"],
        output_folder=str(tmp_path / "wrong"),
        projector_checkpoint=str(stage_c / "projector.ckpt"),
        **{**common, "projector_type": "speechmapper"},
    )
    with pytest.raises(RuntimeError, match="does not match this projector's hyper-parameters"):
        run_recipe("evaluate.py", "CoVoST2/evaluate.yaml", args, recipe="CoVoST2")


def test_fusion_under_torchrun_gloo(tiny, covost, fusion_run, lora_run, text_manifests):
    """Stage C on 2 gloo processes for 10 optimizer steps: on every micro-step both processes
    train the same kind of batch (speech / text), each ST speech batch is followed by its MT
    text batch, the projector and adapters stay identical on both processes after every
    step, and the fused model is exported once."""
    from speechmapper_plugin.data.manifests import read_manifest

    stage_a, _ = fusion_run
    out = tiny["root"] / "iwslt_stage_c_ddp"
    args = _multitask_args(
        tiny,
        covost,
        out,
        projector_init=str(stage_a / "save"),
        lora_adapter=str(lora_run / "adapter"),
        text_sources=[{"manifests": [text_manifests["mt"]], "task": "st"}],
        max_steps=10,
        batches_per_step=2,
        batch_log=True,
    )
    run_torchrun(
        "train_fusion.py", "IWSLT25/stage_c_fusion.yaml", args, recipe="IWSLT25", debug=False
    )
    st_ids = set(
        read_manifest(os.path.join(covost["cache_folder"], "manifests", "train_en-de.csv"))
    )
    mt_ids = set(read_manifest(text_manifests["mt"]))
    logs = read_batch_log(out)
    kinds = {}
    for rank, (micro, digests) in logs.items():
        groups = []
        for record in micro:
            ids = set(record["ids"])
            group = "mt" if ids <= mt_ids else "st" if ids <= st_ids else "asr"
            assert record["kind"] == ("text" if group == "mt" else "speech")
            groups.append(group)
        for before, after in zip(groups, groups[1:]):  # each ST speech batch, then MT text
            assert (before == "st") == (after == "mt"), groups
        assert len(groups) == 10 and sorted(digests) == list(range(1, 11))
        kinds[rank] = [record["kind"] for record in micro]
    assert kinds[0] == kinds[1] and "text" in kinds[0] and kinds[0].count("speech") > 1
    assert logs[0][1] == logs[1][1]  # projector + adapters identical after every step
    assert len(set(logs[0][1].values())) == 10  # and they were trained
    assert (out / "projector.ckpt").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
