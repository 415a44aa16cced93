"""Tests of ``speechmapper_plugin.models.projectors`` (building and loading a projector by type (``speechmapper`` or ``transformer``))."""

import re

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechmapper_plugin.models.projectors import load_projector_checkpoint

from .helpers import _tiny


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_load_from_a_file_and_a_ckpt_folder(tmp_path):
    source = _tiny(1)
    Checkpointer(tmp_path, recoverables={"projector": source}).save_checkpoint(name="one")
    folder = tmp_path / "CKPT+one"
    file = folder / "projector.ckpt"
    assert file.is_file()
    for path in (str(file), str(folder)):
        target = _tiny(2)
        assert not _same_weights(source, target)
        assert load_projector_checkpoint(target, path) == str(file)
        assert _same_weights(source, target)


def test_load_from_a_save_folder_picks_the_lowest_wer(tmp_path):
    best, worse = _tiny(1), _tiny(2)
    Checkpointer(tmp_path, recoverables={"projector": best}).save_checkpoint(
        name="best", meta={"WER": 10.0}
    )
    Checkpointer(tmp_path, recoverables={"projector": worse}).save_checkpoint(
        name="worse", meta={"WER": 20.0}
    )
    target = _tiny(3)
    loaded = load_projector_checkpoint(target, str(tmp_path))
    assert loaded == str(tmp_path / "CKPT+best" / "projector.ckpt")  # not the latest one
    assert _same_weights(best, target)


def test_load_from_a_save_folder_without_wer_takes_the_latest(tmp_path):
    old, new = _tiny(1), _tiny(2)
    Checkpointer(tmp_path, recoverables={"projector": old}).save_checkpoint(name="b_old")
    Checkpointer(tmp_path, recoverables={"projector": new}).save_checkpoint(name="a_new")
    target = _tiny(3)
    assert load_projector_checkpoint(target, str(tmp_path)).endswith("CKPT+a_new/projector.ckpt")
    assert _same_weights(new, target)


def test_missing_checkpoints_are_file_not_found_errors(tmp_path):
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_projector_checkpoint(_tiny(0), str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="No complete projector checkpoint under .*empty"):
        load_projector_checkpoint(_tiny(0), str(empty))
    other = tmp_path / "other"
    Checkpointer(other, recoverables={"model": _tiny(0)}).save_checkpoint(meta={"WER": 1.0})
    with pytest.raises(FileNotFoundError, match="No complete projector checkpoint under"):
        load_projector_checkpoint(_tiny(0), str(other))


def _torn(folder, name, wer):
    """An old-style checkpoint cut by a kill during its save: CKPT.yaml with the best WER, a
    projector.ckpt cut in half."""
    Checkpointer(folder, recoverables={"projector": _tiny(9)}).save_checkpoint(
        name=name, meta={"WER": wer}
    )
    path = folder / f"CKPT+{name}" / "projector.ckpt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path.parent


def test_a_torn_checkpoint_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    good = _tiny(1)
    Checkpointer(tmp_path, recoverables={"projector": good}).save_checkpoint(
        name="good", meta={"WER": 10.0}
    )
    torn = _torn(tmp_path, "torn", 1.0)  # the lowest WER, but unusable
    target = _tiny(3)
    with caplog.at_level("WARNING"):
        loaded = load_projector_checkpoint(target, str(tmp_path))
    assert loaded == str(tmp_path / "CKPT+good" / "projector.ckpt")
    assert _same_weights(good, target)
    assert f"Checkpoint {torn} is incomplete or unreadable (projector.ckpt is cut short" in (
        caplog.text
    )
    with pytest.raises(RuntimeError, match="CKPT\\+torn is incomplete .* give its `save` folder"):
        load_projector_checkpoint(_tiny(0), str(torn))
    with pytest.raises(RuntimeError, match="projector.ckpt cannot be used: projector.ckpt is cut"):
        load_projector_checkpoint(_tiny(0), str(torn / "projector.ckpt"))
