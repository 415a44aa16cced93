"""Fixtures of the end-to-end recipe tests, shared by every recipe's tests (one mini-corpus,
one tiny LLM, one feature cache and one stage-1 run per test session)."""

import os

import pytest
import torch
from recipe_runs import PRESET, run_recipe, stage_args

from speechmapper_plugin.minicorpus import build_minicorpus
from speechmapper_plugin.preset import preset_overrides
from speechmapper_plugin.tiny_llm import build_tiny_llm


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Mini-corpus, tiny LLM and extracted features."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny")
    data = root / "minicorpus"
    corpus = build_minicorpus(str(data), num_train=48, num_valid=8, num_test=8, jobs=1)
    texts = []
    for dirpath, _, files in os.walk(data / "LibriSpeech" / "train-clean-100"):
        for name in files:
            if name.endswith(".trans.txt"):
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    texts += [line.split(" ", 1)[1].strip().lower() for line in f]
    llm = build_tiny_llm(str(root / "llm"), texts)
    common = {"data_folder": str(data), "cache_folder": str(root / "cache")}
    run_recipe(
        "extract_features.py",
        "features.yaml",
        preset_overrides(PRESET, ["features"], **common),
    )
    return {"root": root, "llm": str(llm), "common": common, "corpus": corpus}


@pytest.fixture(scope="session")
def stage1_run(tiny):
    """A short but real stage-1 run (3 epochs), whose checkpoint stage 2 starts from."""
    out = tiny["root"] / "stage1"
    args = stage_args(
        tiny,
        "stage1",
        output_folder=str(out),
        number_of_epochs=3,
        warmup_steps=5,
        total_steps=50,
        max_batch_length=20.0,
    )
    run_recipe("train_stage1.py", "stage1.yaml", args)
    return out, args
