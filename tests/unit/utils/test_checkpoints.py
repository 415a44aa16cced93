"""Tests of ``speechmapper_plugin.utils.checkpoints``: which checkpoint folders are complete
(every way a save cut by a kill or a full disk shows), and atomic torch saves."""

import os

import pytest
import torch
import yaml

from speechmapper_plugin.utils.checkpoints import (
    FILES_KEY,
    best_checkpoint,
    checkpoint_problem,
    complete_checkpoints,
    file_problem,
    torch_save_atomic,
)


def _checkpoint(folder, meta=None, files=True, **tensors):
    folder.mkdir(parents=True)
    sizes = {}
    for name, value in tensors.items():
        torch.save(value, folder / f"{name}.ckpt")
        sizes[f"{name}.ckpt"] = (folder / f"{name}.ckpt").stat().st_size
    meta = {"end-of-epoch": True, "unixtime": 1.0, **(meta or {})}
    if files:
        meta[FILES_KEY] = sizes
    (folder / "CKPT.yaml").write_text(yaml.dump(meta))
    return folder


def test_complete_checkpoint_has_no_problem(tmp_path):
    folder = _checkpoint(tmp_path / "CKPT+a", projector={"w": torch.ones(3)})
    assert checkpoint_problem(folder) is None
    assert checkpoint_problem(folder, required=("projector", "optimizer")) == (
        "it holds no optimizer.ckpt"
    )


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda f: (f / "CKPT.yaml").unlink(), "CKPT.yaml is missing"),
        (lambda f: (f / "CKPT.yaml").write_text("a: [1, 2"), "CKPT.yaml cannot be read"),
        (lambda f: (f / "projector.ckpt").unlink(), "projector.ckpt is missing"),
        (lambda f: (f / "projector.ckpt").write_bytes(b""), "projector.ckpt has 0 bytes where"),
    ],
)
def test_torn_checkpoints_name_what_is_wrong(tmp_path, damage, problem):
    folder = _checkpoint(tmp_path / "CKPT+a", projector={"w": torch.ones(300)})
    damage(folder)
    assert checkpoint_problem(folder).startswith(problem)


def test_old_style_checkpoints_are_checked_file_by_file(tmp_path):
    folder = _checkpoint(tmp_path / "CKPT+a", files=False, projector={"w": torch.ones(300)})
    assert checkpoint_problem(folder) is None
    (folder / "counter.ckpt").write_text("")
    assert checkpoint_problem(folder) == "counter.ckpt is empty"
    (folder / "counter.ckpt").write_text("3")
    data = (folder / "projector.ckpt").read_bytes()
    (folder / "projector.ckpt").write_bytes(data[:-30])
    assert file_problem(folder / "projector.ckpt") == (
        "projector.ckpt is cut short (its torch archive has no directory)"
    )
    assert checkpoint_problem(folder).startswith("projector.ckpt is cut short")


def test_listing_skips_torn_checkpoints_with_a_warning_naming_them(tmp_path, caplog):
    _checkpoint(tmp_path / "CKPT+a", {"WER": 20.0, "unixtime": 1.0}, projector={})
    torn = _checkpoint(tmp_path / "CKPT+b", {"WER": 5.0, "unixtime": 2.0}, projector={})
    _checkpoint(tmp_path / "CKPT+c", {"WER": 10.0, "unixtime": 3.0}, model={})
    (torn / "projector.ckpt").write_bytes(b"")
    (tmp_path / ".tmp-CKPT+d").mkdir()  # a save in progress / killed: not a checkpoint
    with caplog.at_level("WARNING"):
        names = [c.path.name for c in complete_checkpoints(tmp_path)]
    assert names == ["CKPT+a", "CKPT+c"]
    assert f"Checkpoint {torn} is incomplete or unreadable (projector.ckpt" in caplog.text
    assert best_checkpoint(tmp_path, required=("projector",)).path.name == "CKPT+a"
    assert best_checkpoint(tmp_path).path.name == "CKPT+c"
    assert best_checkpoint(tmp_path, min_keys=("loss",)).path.name == "CKPT+c"  # newest
    assert best_checkpoint(tmp_path / "nothing") is None


def test_atomic_torch_save_keeps_the_previous_file_when_it_fails(tmp_path):
    path = str(tmp_path / "projector.ckpt")
    torch_save_atomic({"w": torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        torch_save_atomic({"w": Unpicklable()}, path)
    assert torch.load(path)["w"].tolist() == [1.0, 1.0]
    assert os.listdir(tmp_path) == ["projector.ckpt"]
