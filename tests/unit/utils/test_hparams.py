"""Tests for speechmapper_plugin.utils.hparams: loading with overrides and the messages a user gets
for a misspelled key or a missing required value."""

import pytest
import torch

from speechmapper_plugin.utils.hparams import (
    check_overrides,
    load_hparams,
    parse_arguments,
    resolve_device,
)

YAML = """\
seed: 3
lr: 0.1
batch_size: 4
num_workers: 2
output_folder: !ref results/<seed>
data_folder: !PLACEHOLDER
opts:
    shuffle: true
"""


@pytest.fixture
def hparams_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(YAML, encoding="utf-8")
    return str(path)


def test_overrides_as_string_and_dict(hparams_file):
    loaded = load_hparams(hparams_file, "data_folder: /d\nlr: 0.5\nseed: 7")
    assert (loaded["lr"], loaded["batch_size"], loaded["data_folder"]) == (0.5, 4, "/d")
    assert loaded["output_folder"] == "results/7"  # references follow the overrides
    loaded = load_hparams(hparams_file, {"data_folder": "/e", "opts": {"shuffle": False}})
    assert loaded["data_folder"] == "/e" and loaded["opts"] == {"shuffle": False}


def test_misspelled_override_suggests_the_close_key(hparams_file):
    with pytest.raises(KeyError) as err:
        load_hparams(hparams_file, "data_folder: /d\nbatch_sise: 8")
    message = err.value.args[0]
    assert message.startswith("Unknown hyper-parameter --batch_sise (command-line override)")
    assert hparams_file in message
    assert message.endswith("Did you mean --batch_size?")


def test_misspelled_override_in_a_dict(hparams_file):
    with pytest.raises(KeyError) as err:
        load_hparams(hparams_file, {"data_folder": "/d", "num_worker": 1})
    assert "Did you mean --num_workers?" in err.value.args[0]


def test_unrelated_unknown_key_lists_the_files_keys(hparams_file):
    with pytest.raises(KeyError) as err:
        load_hparams(hparams_file, {"data_folder": "/d", "zzz": 1})
    message = err.value.args[0]
    assert "Unknown hyper-parameter --zzz" in message
    assert "Did you mean" not in message
    assert message.endswith(
        "Keys of this file: batch_size, data_folder, lr, num_workers, opts, output_folder, seed."
    )


def test_placeholder_left_names_the_key(hparams_file):
    with pytest.raises(ValueError, match="'data_folder' is a !PLACEHOLDER and must be replaced"):
        load_hparams(hparams_file, "lr: 0.2")
    with pytest.raises(ValueError, match="data_folder"):
        load_hparams(hparams_file)


def test_other_errors_are_not_rewritten(hparams_file, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_hparams(str(tmp_path / "missing.yaml"))
    # a KeyError raised while building an object is not an override problem: kept as is
    bad = tmp_path / "bad.yaml"
    bad.write_text("value: !apply:os.environ.__getitem__ [SPEECHMAPPER_NO_SUCH_VARIABLE]\n")
    with pytest.raises(KeyError) as err:
        load_hparams(str(bad))
    assert err.value.args[0] == "SPEECHMAPPER_NO_SUCH_VARIABLE"


def test_resolve_device(monkeypatch):
    assert resolve_device({"device": "cuda:1"}) == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device({"device": None}) == "cpu"
    assert resolve_device({}) == "cpu"
    assert resolve_device(None) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device({}) == "cuda:0"
    assert resolve_device({"device": "cpu"}) == "cpu"


TYPED = """\
lr: 0.00001
max_steps: 1000
dynamic_batching: True
splits: [train, dev]
name: run
cache_dir: null
data_folder: !PLACEHOLDER
peak_lr: !ref <lr>
output_folder: !ref results/<name>
opts:
    batch_size: 4
    shuffle: true
model: !new:collections.OrderedDict
"""


@pytest.fixture
def typed_file(tmp_path):
    path = tmp_path / "typed.yaml"
    path.write_text(TYPED, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("lr: abc", "--lr=abc: expected a number (float), as 1e-05 in {f}, got the string 'abc'."),
        (
            "max_steps: abc",
            "--max_steps=abc: expected an integer, as 1000 in {f}, got the string 'abc'.",
        ),
        (
            "max_steps: 10.5",
            "--max_steps=10.5: expected an integer, as 1000 in {f}, got the number 10.5.",
        ),
        (
            "dynamic_batching: 1",
            "--dynamic_batching=1: expected true or false, as True in {f}, got the number 1.",
        ),
        (
            "splits: dev",
            "--splits=dev: expected a list (YAML [a, b]), as ['train', 'dev'] in {f}, got the "
            "string 'dev'.",
        ),
        (
            "opts: {batch_size: big}",
            "--opts.batch_size=big: expected an integer, as 4 in {f}, got the string 'big'.",
        ),
        (
            "peak_lr: [1]",  # a reference has the type of the key it names
            "--peak_lr=[1]: expected a number (float), as 1e-05 in {f}, got the list [1].",
        ),
        ("name: [a]", "--name=['a']: expected a string, as 'run' in {f}, got the list ['a']."),
    ],
)
def test_override_of_the_wrong_type_names_key_value_and_type(typed_file, override, message):
    with pytest.raises(ValueError) as err:
        check_overrides(typed_file, override)
    assert str(err.value) == message.format(f=typed_file)


def test_overrides_of_the_right_type_pass(typed_file):
    overrides = (
        "lr: 5e-5\nmax_steps: 20\ndynamic_batching: false\nsplits: [dev]\nname: 2024\n"
        "cache_dir: /c\ndata_folder: /d\npeak_lr: 3\noutput_folder: out\nopts: {shuffle: false}\n"
        "model: null\nmax_steps: null"
    )
    assert check_overrides(typed_file, overrides) is not None
    assert check_overrides(typed_file, {"lr": 1, "splits": ("a",)}) == {"lr": 1, "splits": ("a",)}


def test_a_repeated_override_takes_its_last_value(typed_file, caplog):
    with caplog.at_level("WARNING"):
        resolved = check_overrides(typed_file, "lr: 0.1\nname: x\nlr: 0.2")
    assert resolved == "name: x\nlr: 0.2"
    assert "--lr is given twice (0.1, then 0.2): the last one is used." in caplog.text
    # a repeated wrong value is still refused, a wrong value overridden later is not used
    with pytest.raises(ValueError, match="--lr=abc"):
        check_overrides(typed_file, "lr: 0.1\nlr: abc")
    assert check_overrides(typed_file, "lr: abc\nlr: 0.1") == "lr: 0.1"


def test_parse_arguments_checks_before_anything_is_loaded(typed_file):
    _, _, overrides = parse_arguments([typed_file, "--lr=0.1", "--data_folder=/d", "--lr=0.3"])
    assert overrides == "data_folder: /d\nlr: 0.3"
    loaded = load_hparams(typed_file, overrides)
    assert (loaded["lr"], loaded["peak_lr"]) == (0.3, 0.3)
    with pytest.raises(ValueError, match=r"--max_steps=abc: expected an integer"):
        parse_arguments([typed_file, "--max_steps=abc"])


def test_an_equals_sign_inside_a_value_is_kept(typed_file):
    """SpeechBrain's own parser turns "=" inside a value into a space; ours keeps it, in an
    override and in a run option."""
    _, run_opts, overrides = parse_arguments(
        [typed_file, "--data_folder=/d/x=1", "--device=cpu:0=x", "--lr=0.2", "--precision=bf16"]
    )
    assert "data_folder: /d/x=1" in overrides.splitlines()
    assert "lr: 0.2" in overrides.splitlines()
    assert run_opts["device"] == "cpu:0=x" and run_opts["precision"] == "bf16"
    assert run_opts.overridden_args >= {"device", "precision"}  # still SpeechBrain's RunOptions
