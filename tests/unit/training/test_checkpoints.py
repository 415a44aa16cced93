"""Tests of ``speechmapper_plugin.training.checkpoints``: checkpoints complete or absent,
failed saves (a full disk) that say so and keep the previous checkpoint, torn or unloadable
checkpoints skipped on recovery, and the random state restored."""

import errno
import os

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechmapper_plugin.training.checkpoints import (
    AtomicCheckpointer,
    CheckpointSaveError,
    RandomState,
)


def _layer(value):
    layer = torch.nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.fill_(value)
    return layer


def _raises(error):
    def save(obj, path):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise error

    return save


def test_a_failed_save_says_so_and_keeps_the_previous_checkpoint(tmp_path):
    layer = _layer(1.0)
    ckpt = AtomicCheckpointer(tmp_path, {"layer": layer})
    first = ckpt.save_checkpoint(meta={"loss": 1.0})
    with torch.no_grad():
        layer.weight.fill_(2.0)
    ckpt.add_recoverable("extra", object(), custom_save_hook=_raises(OSError(errno.ENOSPC, "x")))
    with pytest.raises(CheckpointSaveError) as err:
        ckpt.save_checkpoint(meta={"loss": 0.5})
    message = str(err.value)
    assert f"The disk holding {tmp_path} is full" in message
    assert f"The previous checkpoint {first.path} is intact: relaunch" in message
    assert sorted(os.listdir(tmp_path)) == [first.path.name]  # nothing half-written
    del ckpt.recoverables["extra"]
    assert ckpt.recover_if_possible().path == first.path
    assert layer.weight.eq(1.0).all()

    ckpt.add_recoverable("extra", object(), custom_save_hook=_raises(ValueError("bad value")))
    with pytest.raises(CheckpointSaveError, match="failed \\(ValueError: bad value\\); it was"):
        ckpt.save_checkpoint()


def test_leftovers_of_a_killed_save_are_ignored_then_removed(tmp_path):
    ckpt = AtomicCheckpointer(tmp_path, {"layer": _layer(1.0)})
    (tmp_path / ".tmp-CKPT+2026-01-01+00-00-00+00").mkdir()
    assert ckpt.list_checkpoints() == []
    saved = ckpt.save_checkpoint()
    assert os.listdir(tmp_path) == [saved.path.name]


def test_recovery_skips_torn_and_unloadable_checkpoints(tmp_path, caplog):
    layer = _layer(1.0)
    ckpt = AtomicCheckpointer(tmp_path, {"layer": layer})
    good = ckpt.save_checkpoint(name="1-good")
    old_style = Checkpointer(tmp_path, {"layer": _layer(2.0)})  # SpeechBrain's own saves
    torn = old_style.save_checkpoint(name="2-torn").path
    (torn / "layer.ckpt").write_bytes(b"")
    junk = old_style.save_checkpoint(name="3-junk").path
    (junk / "layer.ckpt").write_bytes(b"not a torch file")  # complete, but unreadable
    with caplog.at_level("WARNING"):
        loaded = ckpt.recover_if_possible()
    assert loaded.path == good.path and layer.weight.eq(1.0).all()
    assert f"Checkpoint {torn} is incomplete or unreadable (layer.ckpt is empty)" in caplog.text
    assert f"Checkpoint {junk} could not be loaded" in caplog.text


def test_a_checkpoint_of_another_model_is_an_error_not_a_skip(tmp_path):
    AtomicCheckpointer(tmp_path, {"layer": torch.nn.Linear(3, 3)}).save_checkpoint()
    with pytest.raises(RuntimeError, match="does not fit this model"):
        AtomicCheckpointer(tmp_path, {"layer": torch.nn.Linear(2, 2)}).recover_if_possible()


def test_old_checkpoints_are_deleted_whole(tmp_path):
    ckpt = AtomicCheckpointer(tmp_path, {"layer": _layer(1.0)})
    for loss in (3.0, 1.0, 2.0, 4.0):
        ckpt.save_and_keep_only(meta={"loss": loss}, min_keys=["loss"], num_to_keep=1)
    kept = sorted(c.meta["loss"] for c in ckpt.list_checkpoints())
    assert kept == [1.0, 4.0]  # the best and the newest
    assert all(name.startswith("CKPT+") for name in os.listdir(tmp_path))


def test_random_state_continues_the_draws(tmp_path):
    path = tmp_path / "random_state.ckpt"
    torch.manual_seed(0)
    torch.rand(5)
    RandomState().save(path)
    expected = torch.nn.functional.dropout(torch.ones(20), 0.5)
    torch.manual_seed(123)
    RandomState().load(path)
    assert torch.equal(torch.nn.functional.dropout(torch.ones(20), 0.5), expected)
