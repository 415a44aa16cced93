"""Every YAML under hparams/ loads (hyperpyyaml instantiates every ``!new:`` / ``!name:`` /
``!apply:`` object), with its placeholders filled and the tiny preset's models, so that a
stale class path or ``!ref`` is an error here and not in a user's run."""

import pathlib
import re

import pytest
import yaml
from hyperpyyaml import load_hyperpyyaml

from speechmapper_plugin.tiny.llm import build_tiny_llm
from speechmapper_plugin.tiny.preset import SECTION_TARGETS
from speechmapper_plugin.utils.hparams import check_overrides

HPARAMS = pathlib.Path(__file__).resolve().parents[2] / "hparams"
PRESET = HPARAMS / "tiny.yaml"
RECIPE_YAMLS = sorted(p for p in HPARAMS.rglob("*.yaml") if p != PRESET)
PLACEHOLDER_KEYS = ("data_folder", "stage1_checkpoint", "lora_adapter", "projector_init")


def _top_level_keys(text):
    return {m.group(1) for m in re.finditer(r"^([A-Za-z_]\w*)\s*:", text, flags=re.M)}


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    return str(build_tiny_llm(tmp_path_factory.mktemp("llm"), ["the cat sat on the mat"]))


def test_every_recipe_yaml_is_checked():
    names = {str(p.relative_to(HPARAMS)) for p in RECIPE_YAMLS}
    assert {"stage1.yaml", "stage2.yaml", "IWSLT25/stage_c_fusion.yaml"} <= names
    assert len(names) >= 29


@pytest.mark.parametrize("path", RECIPE_YAMLS, ids=lambda p: str(p.relative_to(HPARAMS)))
def test_yaml_loads_with_the_tiny_models(path, tiny_llm, tmp_path):
    text = path.read_text(encoding="utf-8")
    keys = _top_level_keys(text)
    name = str(path.relative_to(HPARAMS))
    sections = [s for s, targets in SECTION_TARGETS.items() if name in targets] or [
        "features",
        "projector",
    ]
    with open(PRESET, encoding="utf-8") as f:
        preset_file = yaml.safe_load(f)
    preset = {}
    for section in sections:  # in the preset's order, as the demo and the tests pass them
        preset.update(preset_file[section])
    values = {
        **preset,
        **{key: str(tmp_path / key) for key in PLACEHOLDER_KEYS},
        "llm_source": tiny_llm,
        "output_folder": str(tmp_path / "out"),
        "comet_model": None,
        "judges": [],
    }
    overrides = {key: value for key, value in values.items() if key in keys}
    # the preset's values have the types of the YAML's (what every recipe run checks first)
    assert check_overrides(str(path), overrides, text=text) == overrides
    hparams = load_hyperpyyaml(text, overrides)
    assert hparams, path


@pytest.mark.parametrize("projector_type", ["speechmapper", "transformer"])
def test_packaged_inference_template_loads(projector_type, tiny_llm, tmp_path):
    """The export template ships inside the package (speechmapper_plugin/inference/), not
    under hparams/; it builds with either projector."""
    from speechmapper_plugin.inference.folders import DEFAULT_TEMPLATE

    assert pathlib.Path(DEFAULT_TEMPLATE).is_relative_to(HPARAMS.parent / "speechmapper_plugin")
    assert not (HPARAMS / "inference.yaml").exists()
    with open(PRESET, encoding="utf-8") as f:
        preset = yaml.safe_load(f)
    overrides = {
        key: value
        for key, value in {**preset["features"], **preset["projector"]}.items()
        if key in _top_level_keys(pathlib.Path(DEFAULT_TEMPLATE).read_text(encoding="utf-8"))
    }
    overrides.update(llm_source=tiny_llm, projector_type=projector_type, model_source=str(tmp_path))
    with open(DEFAULT_TEMPLATE, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    assert type(hparams["projector"]).__name__ == (
        "SpeechMapper" if projector_type == "speechmapper" else "TransformerProjector"
    )
    assert hparams["pretrainer"].paths["projector"] == f"{tmp_path}/projector.safetensors"
