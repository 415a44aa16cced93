"""Tests for speechmapper_plugin.tiny.preset: overrides that hyperpyyaml reads back exactly, preset
sections, and the consistency of the real hparams/tiny.yaml with the recipe YAML files."""

import pathlib
import re

import pytest
import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml, resolve_references

from speechmapper_plugin.tiny.preset import SECTION_TARGETS, format_override, preset_overrides

ROOT = pathlib.Path(__file__).resolve().parents[3]


HPARAMS = ROOT / "hparams"


TINY = HPARAMS / "tiny.yaml"


def _read_back(argument, default=0):
    """Feed ``--key=value`` through SpeechBrain's argument parser into hyperpyyaml."""
    _, _, overrides = sb.parse_arguments(["recipe.yaml", argument])
    key = argument[2:].split("=", 1)[0]
    return load_hyperpyyaml(f"{key}: {default}\n", overrides)[key]


@pytest.mark.parametrize(
    "value",
    [
        [64, 128],
        ["train-clean-100", "dev-clean"],
        [],
        None,
        True,
        False,
        0.003,
        1e-8,
        1e20,
        5.0,
        0.0,
        3,
        -7,
        "hello world",
        "/data/my corpus/LibriSpeech",
        "meta-llama/Llama-3.1-8B-Instruct",
        "a: b",
        "#not a comment",
        "it's",
        "caf\u00e9",
        "",
        "null",
        "true",
        "yes",
        "-5",
        "12:30",
        "!ref <x>",
        "[1, 2]",
        "two\nlines",
    ],
)
def test_format_override_round_trips_through_hyperpyyaml(value):
    argument = format_override("value_key", value)
    assert argument.startswith("--value_key=")
    assert "\n" not in argument or isinstance(value, str)
    got = _read_back(argument)
    assert got == value and type(got) is type(value)


def test_format_override_exact_text():
    assert format_override("block_dims", [64, 128]) == "--block_dims=[64,128]"
    assert format_override("sfm_layer", None) == "--sfm_layer=null"
    assert format_override("dynamic_batching", False) == "--dynamic_batching=false"
    assert format_override("lr", 0.003) == "--lr=0.003"
    assert format_override("name", "hello world") == '--name="hello world"'
    assert format_override("splits", ["dev-clean"]) == '--splits=["dev-clean"]'


def test_format_override_of_a_mapping():
    argument = format_override("opts", {"batch_size": 4, "shuffle": True})
    _, _, overrides = sb.parse_arguments(["recipe.yaml", argument])
    loaded = load_hyperpyyaml("opts:\n  batch_size: 1\n  shuffle: false\n", overrides)
    assert loaded["opts"] == {"batch_size": 4, "shuffle": True}


def test_number_like_string_round_trips():
    assert _read_back(format_override("value_key", "1e-3")) == "1e-3"


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_preset_overrides_order_later_sections_and_extra_win(tmp_path):
    preset = _write(
        tmp_path / "p.yaml",
        "a:\n  lr: 0.1\n  n: 1\nb:\n  lr: 0.2\n  splits: [x, y]\nempty:\n",
    )
    assert preset_overrides(preset, ["a", "b"]) == ["--lr=0.2", "--n=1", '--splits=["x","y"]']
    assert preset_overrides(preset, ["b", "a"]) == ["--lr=0.1", '--splits=["x","y"]', "--n=1"]
    assert preset_overrides(preset, ["a", "empty"], n=5, data_folder="/d x") == [
        "--lr=0.1",
        "--n=5",
        '--data_folder="/d x"',
    ]
    assert preset_overrides(preset, []) == []


def test_preset_overrides_unknown_section(tmp_path):
    preset = _write(tmp_path / "p.yaml", "a:\n  lr: 0.1\nb:\n  n: 1\n")
    with pytest.raises(KeyError, match=r"has no section 'c' \(sections: \['a', 'b'\]\)"):
        preset_overrides(preset, ["a", "c"])


def test_preset_overrides_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        preset_overrides(str(tmp_path / "missing.yaml"), ["a"])


def _top_level_keys(path):
    keys = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"([A-Za-z_]\w*)\s*:", line)  # not indented: a top-level key
        if match:
            keys.add(match.group(1))
    return keys


def _tiny_sections():
    import yaml

    with open(TINY, encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_tiny_preset_has_the_expected_sections():
    assert set(_tiny_sections()) == set(SECTION_TARGETS)


@pytest.mark.parametrize("section", sorted(SECTION_TARGETS))
def test_tiny_preset_names_only_existing_keys(section):
    names = set(_tiny_sections()[section] or {})
    assert names, f"section {section} is empty"
    for target in SECTION_TARGETS[section]:
        unknown = names - _top_level_keys(HPARAMS / target)
        assert not unknown, f"tiny.yaml [{section}] keys missing from {target}: {sorted(unknown)}"


@pytest.mark.parametrize(
    "target, sections",
    [
        ("features.yaml", ["features"]),
        ("stage1.yaml", ["projector", "both_stages", "stage1"]),
        ("stage2.yaml", ["projector", "both_stages", "stage2"]),
        ("evaluate.yaml", ["projector", "evaluate"]),
    ],
)
def test_tiny_preset_applies_to_the_recipe_yaml(target, sections):
    """Through SpeechBrain's parser and hyperpyyaml's override matching (no instantiation)."""
    paths = {"data_folder": "/data/x"}  # the demo adds the !PLACEHOLDER paths
    if target == "stage2.yaml":
        paths["stage1_checkpoint"] = "/runs/stage1/save"
    args = preset_overrides(str(TINY), sections, **paths)
    _, run_opts, overrides = sb.parse_arguments([str(HPARAMS / target)] + args)
    text = (HPARAMS / target).read_text(encoding="utf-8")
    resolved = resolve_references(text, overrides, overrides_must_match=True).getvalue()
    preset = {}
    for section in sections:
        preset.update(_tiny_sections()[section])
    for key, value in preset.items():
        if key in run_opts.get("overridden_args", ()):  # e.g. ckpt_interval_minutes
            assert run_opts[key] == value
            continue
        line = re.search(rf"^{key}:(.*)$", resolved, flags=re.MULTILINE).group(1)
        got = load_hyperpyyaml(f"{key}:{line.split(' #')[0]}\n")[key]
        assert got == value, key
