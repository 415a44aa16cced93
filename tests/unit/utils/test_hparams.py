"""Tests for speechmapper_plugin.utils.hparams: loading with overrides and the messages a user gets
for a misspelled key or a missing required value."""

import pytest
import torch

from speechmapper_plugin.utils.hparams import load_hparams, resolve_device

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
