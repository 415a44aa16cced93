"""Every dataset recipe keeps the contract the shared steps (speechmapper_plugin.training.recipe) rely
on: its scripts call the shared step with its own prepare function, the prepare function takes
the standard arguments plus exactly the YAML's ``prepare_options``, and each YAML names its
dataset and splits."""

import ast
import glob
import importlib
import inspect
import os
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STANDARD = ["data_folder", "save_folder", "splits", "max_duration", "skip_prep"]
STEPS = {
    "extract_features.py": ("extract_features_main", "features.yaml"),
    "evaluate.py": ("evaluate_main", "evaluate.yaml"),
    "train_stage2.py": ("train_stage2_task_main", "stage2_*.yaml"),
}
RECIPES = sorted(
    os.path.basename(d)
    for d in glob.glob(os.path.join(ROOT, "recipes", "*"))
    if os.path.isdir(os.path.join(ROOT, "hparams", os.path.basename(d)))
    and glob.glob(os.path.join(d, "*_prepare.py"))  # dataset recipes (not IWSLT25's stages)
)


def _prepare_function(recipe):
    folder = os.path.join(ROOT, "recipes", recipe)
    (script,) = glob.glob(os.path.join(folder, "*_prepare.py"))
    sys.path.insert(0, folder)
    try:
        module = importlib.import_module(os.path.basename(script)[:-3])
    finally:
        sys.path.remove(folder)
    # the script's own prepare_<dataset> (not what it imports, e.g. preparation.prepare_cli)
    (name,) = [
        n
        for n in dir(module)
        if n.startswith("prepare_") and getattr(module, n).__module__ == module.__name__
    ]
    return name, getattr(module, name)


def test_every_dataset_recipe_is_covered():
    assert RECIPES == [
        "ACL6060",
        "CoVoST2",
        "CommonVoice",
        "EuroParlST",
        "FLEURS",
        "LibriSQA",
        "SpokenSQuAD",
        "VoxPopuli",
    ]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_scripts_prepare_signature_and_hparams(recipe):
    name, prepare = _prepare_function(recipe)
    params = list(inspect.signature(prepare).parameters)
    assert params[: len(STANDARD)] == STANDARD
    options = set(params[len(STANDARD) :])
    for script, (step, pattern) in STEPS.items():
        path = os.path.join(ROOT, "recipes", recipe, script)
        yamls = glob.glob(os.path.join(ROOT, "hparams", recipe, pattern))
        if not os.path.isfile(path):
            assert script == "train_stage2.py" and not yamls  # ASR test sets: no stage 2
            continue
        calls = [
            node
            for node in ast.walk(ast.parse(open(path, encoding="utf-8").read()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == step
        ]
        assert len(calls) == 1 and calls[0].args[0].id == name, (
            f"{path} must call {step}({name}, ...)"
        )
        assert yamls, f"no hparams/{recipe}/{pattern}"
        for hparams in yamls:
            with open(hparams, encoding="utf-8") as f:
                text = f.read()
            # plain YAML view (tags dropped): the keys and the prepare options
            loader = yaml.SafeLoader
            loader.add_multi_constructor("!", lambda _l, _s, _n: None)
            keys = yaml.load(text, Loader=loader)
            assert set(keys.get("prepare_options") or {}) == options, hparams
            assert keys["dataset"] == recipe if "dataset" in keys else True
            assert any(k in keys for k in ("splits", "test_splits")), hparams


@pytest.mark.parametrize("recipe", RECIPES)
def test_evaluate_hparams_load_with_paths_filled(recipe, tmp_path):
    from speechmapper_plugin.utils.hparams import load_hparams

    overrides = {"data_folder": str(tmp_path), "output_folder": str(tmp_path / "out")}
    if recipe == "LibriSQA":
        overrides["librispeech_folder"] = str(tmp_path)
    hparams = load_hparams(os.path.join(ROOT, "hparams", recipe, "evaluate.yaml"), overrides)
    assert hparams["dataset"] == recipe and hparams["test_splits"]
    assert hparams["task"] in ("asr", "st", "sqa")
    assert (hparams["comet_model"] is not None) == (hparams["task"] == "st")
    assert bool(hparams["judges"]) == (hparams["task"] == "sqa")
