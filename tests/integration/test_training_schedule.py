"""The same training on 1 and N processes, and resumes that never block, repeat or skip
(tiny preset, LibriSpeech recipes): global step budgets under `torchrun` (2 gloo processes),
stage 1 ending at `total_steps`, a new data order each epoch, bit-identical resumes after a
run killed inside a checkpoint save (a full disk), torn checkpoints skipped, evaluation
sharded across processes, and one job per output folder."""

import errno
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from recipe_runs import (
    PRESET,
    ROOT,
    ids_per_step,
    newest_checkpoint,
    read_batch_log,
    run_recipe,
    run_torchrun,
    stage_args,
)

from speechmapper_plugin.data.manifests import read_manifest
from speechmapper_plugin.tiny.preset import preset_overrides
from speechmapper_plugin.training.checkpoints import AtomicCheckpointer, CheckpointSaveError
from speechmapper_plugin.utils.locks import FolderLockedError

LOCKS = os.path.join(ROOT, "speechmapper_plugin", "utils", "locks.py")


def _train_ids(tiny):
    path = os.path.join(tiny["common"]["cache_folder"], "manifests", "train-clean-100.csv")
    return sorted(read_manifest(path))


def _projector(run):
    return torch.load(newest_checkpoint(run / "save") / "projector.ckpt")


def _optimizer_step(run):
    with open(newest_checkpoint(run / "save") / "brain.ckpt", encoding="utf-8") as f:
        return yaml.safe_load(f)["optimizer_step"]


def _assert_close(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def _stage1_args(tiny, out, **extra):
    args = {
        "output_folder": str(out),
        "batches_per_step": 2,
        "batch_vectors": 500,
        "warmup_steps": 2,
        "total_steps": 12,
        "number_of_epochs": 4,
        "batch_log": True,
        **extra,
    }
    return stage_args(tiny, "stage1", **args)


def test_stage1_same_schedule_on_one_and_two_processes(tiny):
    """Stage 1 on 1 and 2 processes: the same 12 optimizer steps (total_steps, mid-epoch)
    over the same utterances, each utterance once per epoch in a new order each epoch, the
    last checkpoint at step 12, the same weights up to float reduction order."""
    one, two = tiny["root"] / "s1_one", tiny["root"] / "s1_two"
    run_recipe("train_stage1.py", "stage1.yaml", _stage1_args(tiny, one))
    run_torchrun("train_stage1.py", "stage1.yaml", _stage1_args(tiny, two), debug=False)

    steps = ids_per_step(one)
    assert sorted(steps) == list(range(1, 13))  # total_steps ends the training
    assert ids_per_step(two) == steps  # 2 processes: the same utterances in every step
    logs = read_batch_log(two)
    assert sorted(logs) == [0, 1] and len(logs[0][0]) == len(logs[1][0]) == 12  # 1 each/step
    micro, _ = read_batch_log(one)[0]
    epochs = {}
    for record in micro:
        epochs.setdefault(record["epoch"], []).extend(record["ids"])
    assert sorted(epochs[1]) == _train_ids(tiny)  # every utterance once in epoch 1
    assert 2 in epochs and epochs[2] != epochs[1][: len(epochs[2])]  # stopped in epoch 2
    assert len(set(epochs[2])) == len(epochs[2])  # a new order, no repeat
    assert _optimizer_step(one) == _optimizer_step(two) == 12  # the last checkpoint
    _assert_close(_projector(one), _projector(two))
    with open(two / "results" / "test-clean.json", encoding="utf-8") as f:
        assert json.load(f)["num_utterances"] == 8  # gathered from both processes, once


def _kill_in_save(monkeypatch, at_step):
    """Make the checkpoint save at optimizer step ``at_step`` fail on a full disk, after
    some of its files are written (as a job killed or out of space while saving)."""
    original = AtomicCheckpointer._save_one

    def save_one(self, key, obj, path):
        if key == "optimizer" and self.recoverables["brain"].optimizer_step == at_step:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, key, obj, path)

    monkeypatch.setattr(AtomicCheckpointer, "_save_one", save_one)


def _run_killed_then_resumed(monkeypatch, script, hparams, args, at_step, out):
    with monkeypatch.context() as patch:
        _kill_in_save(patch, at_step)
        with pytest.raises(CheckpointSaveError) as err:
            run_recipe(script, hparams, args)
    message = str(err.value)
    assert "is full" in message and "is intact: relaunch the same command" in message
    save = out / "save"
    assert not [p for p in os.listdir(save) if not p.startswith("CKPT")]  # no temporary folder
    assert _optimizer_step(out) == at_step - 2  # the previous checkpoint, complete
    run_recipe(script, hparams, args)  # the same command resumes


def test_stage1_killed_in_a_save_mid_epoch_resumes_bit_identical(tiny, monkeypatch):
    """Intra-epoch checkpoints every 2 optimizer steps; the save at a step of epoch 2 fails
    (full disk); the relaunched run resumes from the previous intra-epoch checkpoint and ends
    with exactly the weights, outputs and trained batches of an uninterrupted run (dropout
    on: the random state is restored too)."""
    extra = {"dropout": 0.1, "total_steps": 100, "number_of_epochs": 2}
    straight, killed = tiny["root"] / "s1_straight", tiny["root"] / "s1_killed"
    # every 3 micro-batches, taken at the next optimizer step (2 micro-batches): steps 2, 4...
    run_args = ["--ckpt_interval_steps=3"]
    run_recipe("train_stage1.py", "stage1.yaml", _stage1_args(tiny, straight, **extra) + run_args)
    micro, _ = read_batch_log(straight)[0]
    epoch1_steps = max(r["step"] for r in micro if r["epoch"] == 1)
    at_step = epoch1_steps + 4  # the 2nd intra-epoch save of epoch 2
    args = _stage1_args(tiny, killed, **extra) + run_args
    _run_killed_then_resumed(monkeypatch, "train_stage1.py", "stage1.yaml", args, at_step, killed)

    a, b = _projector(straight), _projector(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical
    assert read_batch_log(killed) == read_batch_log(straight)  # none twice, none skipped
    for epoch in (1, 2):
        ids = [i for r in read_batch_log(killed)[0][0] if r["epoch"] == epoch for i in r["ids"]]
        assert sorted(ids) == _train_ids(tiny)  # each utterance once per epoch
    results = []
    for run in (straight, killed):
        with open(run / "results" / "test-clean.json", encoding="utf-8") as f:
            results.append([o["hypothesis"] for o in json.load(f)["outputs"]])
    assert results[0] == results[1]
    curve = [json.loads(line) for line in open(killed / "curve.jsonl", encoding="utf-8")]
    steps = [(r["split"], r["step"]) for r in curve]
    assert len(steps) == len(set(steps))  # the resumed run logged no step twice


def test_stage2_on_two_processes_and_killed_in_a_save(tiny, stage1_run, monkeypatch):
    """Stage 2 with max_steps=8: 8 optimizer steps of 16 utterances on 1 process, on 2
    processes (it used to run half as many there) over the same utterances to the same
    weights, and, killed by a full disk in the save at step 6, resumed from the checkpoint
    of step 4 to bit-identical weights and batches."""
    runs = {}
    for name in ("straight", "two", "killed"):
        out = tiny["root"] / f"s2_{name}"
        args = stage_args(
            tiny,
            "stage2",
            output_folder=str(out),
            stage1_checkpoint=str(stage1_run[0] / "save"),
            max_steps=8,
            batch_size=8,
            batches_per_step=2,
            max_new_tokens=4,
            batch_log=True,
        ) + ["--ckpt_interval_steps=4"]
        if name == "straight":
            run_recipe("train_stage2.py", "stage2.yaml", args)
        elif name == "two":
            run_torchrun("train_stage2.py", "stage2.yaml", args, debug=False)
        else:
            _run_killed_then_resumed(monkeypatch, "train_stage2.py", "stage2.yaml", args, 6, out)
        runs[name] = out
    steps = ids_per_step(runs["straight"])
    assert sorted(steps) == list(range(1, 9)) and all(len(ids) == 16 for ids in steps.values())
    assert ids_per_step(runs["two"]) == steps
    with open(runs["two"] / "train_log.txt", encoding="utf-8") as f:
        assert "steps: 8" in f.read()
    _assert_close(_projector(runs["straight"]), _projector(runs["two"]))
    a, b = _projector(runs["straight"]), _projector(runs["killed"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_batch_log(runs["killed"]) == read_batch_log(runs["straight"])


def _torn_copy(save, folder):
    """A copy of a stage-1 save folder plus a newer checkpoint with the best WER whose
    projector.ckpt was cut short (a job killed during an old-style save)."""
    shutil.copytree(save, folder)
    best = min(os.listdir(folder))
    torn = folder / "CKPT+2099-01-01+00-00-00+00"
    shutil.copytree(folder / best, torn)
    meta = yaml.safe_load((torn / "CKPT.yaml").read_text())
    meta.update({"WER": 0.0, "unixtime": 4.1e9})
    meta.pop("files", None)
    (torn / "CKPT.yaml").write_text(yaml.dump(meta))
    data = (torn / "projector.ckpt").read_bytes()
    (torn / "projector.ckpt").write_bytes(data[: len(data) // 2])
    return torn


def test_evaluation_on_two_processes_writes_the_one_process_result(tiny, stage1_run, tmp_path):
    """evaluate.py on 2 processes decodes half of the batches each and writes the result of
    1 process; a torn checkpoint (best WER in its CKPT.yaml) in the projector's save folder is
    skipped with a warning that names it."""
    torn_save = tmp_path / "save"
    torn = _torn_copy(stage1_run[0] / "save", torn_save)
    results = []
    for name, save in (("one", stage1_run[0] / "save"), ("two", torn_save)):
        args = preset_overrides(
            PRESET,
            ["projector", "evaluate"],
            output_folder=str(tmp_path / name),
            llm_source=tiny["llm"],
            projector_checkpoint=str(save),
            batch_size=2,  # 4 batches: 2 per process
            max_new_tokens=8,
            **tiny["common"],
        )
        if name == "one":
            run_recipe("evaluate.py", "evaluate.yaml", args)
        else:
            proc = run_torchrun("evaluate.py", "evaluate.yaml", args, debug=False)
            assert f"Checkpoint {torn} is incomplete or unreadable" in proc.stdout + proc.stderr
        (path,) = (tmp_path / name / "results").glob("*.json")
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
        for key in ("created", "versions"):
            result.pop(key, None)
        results.append(result)
    assert results[0]["num_utterances"] == 8
    assert results[1] == results[0]


def test_one_job_per_output_folder(tiny, tmp_path):
    """A run on a folder a live job holds stops at once, naming the folder and the holder;
    a killed holder does not keep it; a recipe holds its folder while its process lives."""
    folder = tmp_path / "run"
    args = stage_args(tiny, "stage1", output_folder=str(folder))
    args += ["--debug", "--debug_batches=2", "--debug_epochs=1"]
    code = (  # a job holding the folder (utils/locks.py alone: a fast start)
        "import importlib.util, sys, time; "
        "spec = importlib.util.spec_from_file_location('locks', sys.argv[2]); "
        "locks = importlib.util.module_from_spec(spec); spec.loader.exec_module(locks); "
        "locks.FolderLock(sys.argv[1], 'training').acquire(); print('held', flush=True); "
        "time.sleep(120)"
    )
    job = [sys.executable, "-c", code, str(folder), LOCKS]
    holder = subprocess.Popen(job, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        held = re.escape(f"{folder} is held by another job (pid ")
        with pytest.raises(FolderLockedError, match=held):
            run_recipe("train_stage1.py", "stage1.yaml", args)
        assert not (folder / "curve.jsonl").exists()
    finally:
        holder.kill()  # kill -9: the lock goes with the process
        holder.wait()
    run_recipe("train_stage1.py", "stage1.yaml", args)
    assert (folder / "results" / "test-clean.json").is_file()
    check = subprocess.run(job, capture_output=True, text=True)
    assert check.returncode != 0 and "is held by another job" in check.stderr
