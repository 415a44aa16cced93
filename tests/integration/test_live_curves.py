"""Live training curves (speechmapper_plugin.training.loggers): a tiny stage-1 run with
``--use_tensorboard=True`` writes an event file whose scalars TensorBoard's own reader finds,
per optimizer step and per validation; ``--use_wandb=True`` sends the same scalars to a W&B
run (a stand-in ``wandb`` module: W&B is optional and not installed)."""

import sys
import types

from recipe_runs import run_recipe, stage_args


class _FakeRun:
    def __init__(self, **kwargs):
        self.init = kwargs
        self.logged = []

    def log(self, data, step=None):
        self.logged.append((step, data))

    def finish(self):
        pass


def test_stage1_writes_tensorboard_and_wandb_curves(tiny, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = []
    wandb = types.ModuleType("wandb")
    wandb.init = lambda **kwargs: runs.append(_FakeRun(**kwargs)) or runs[-1]
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    out = tiny["root"] / "stage1_curves"
    run_recipe(
        "train_stage1.py",
        "stage1.yaml",
        stage_args(
            tiny,
            "stage1",
            output_folder=str(out),
            use_tensorboard=True,
            use_wandb=True,
            log_interval=1,
            number_of_epochs=2,
        )
        + ["--debug", "--debug_batches=3", "--debug_epochs=2"],
    )
    (events_file,) = (out / "tensorboard").glob("events.out.tfevents.*")
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    per_step = {
        "loss",
        "l_mse",
        "mse_word",
        "mse_pad",
        "cosine",
        "lr",
        "grad_norm",
        "audio_seconds_per_second",
    }
    assert {f"{name}/train" for name in per_step} <= tags, tags
    assert {"loss/valid", "wer/valid", "cer/valid", "truncated_targets/valid"} <= tags
    assert "wer/test" in tags
    steps = [e.step for e in events.Scalars("loss/train")]
    assert steps == list(range(1, 7))  # every optimizer step (log_interval=1), 2 epochs x 3
    assert [e.step for e in events.Scalars("wer/valid")] == [3, 6]  # after each epoch
    assert all(e.value > 0 for e in events.Scalars("grad_norm/train"))
    assert all(e.value > 0 for e in events.Scalars("audio_seconds_per_second/train"))
    lrs = [e.value for e in events.Scalars("lr/train")]
    assert lrs[0] < lrs[-1]  # the warm-up of the schedule

    (run,) = runs
    assert run.init["resume"] == "allow" and run.init["dir"] == str(out)
    assert run.init["id"] == (out / "wandb_run_id.txt").read_text().strip()
    logged_steps = sorted({step for step, data in run.logged if "train/loss" in data})
    assert logged_steps == list(range(1, 7))
    assert any("valid/wer" in data for _, data in run.logged)
    # The PNG learning curve stays (and holds the new per-step scalars).
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert '"grad_norm"' in (out / "curve.jsonl").read_text()


def test_two_processes_write_one_event_file_with_the_audio_of_both(tiny):
    """Under torchrun (2 gloo processes, >= 10 optimizer steps) only the main process writes
    curves, every step and every validation, and the all-reduced audio throughput does not
    stall the processes (the sum itself: tests/unit/training/test_loggers.py)."""
    import json
    import os
    import subprocess

    from recipe_runs import ROOT, free_port
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tiny["root"] / "stage1_curves_ddp"
    args = stage_args(
        tiny,
        "stage1",
        output_folder=str(out),
        use_tensorboard=True,
        log_interval=1,
        batch_vectors=500,  # more, smaller batches: >= 10 steps in 2 epochs
        batches_per_step=2,  # one micro-batch per process and step
    )
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(
            [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        os.path.join(ROOT, "recipes", "LibriSpeech", "train_stage1.py"),
        os.path.join(ROOT, "hparams", "stage1.yaml"),
        *args,
        "--distributed_backend=gloo",
        "--device=cpu",
        "--debug",
        "--debug_batches=6",
        "--debug_epochs=2",
    ]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("loss/train")]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 10
    rates = [e.value for e in events.Scalars("audio_seconds_per_second/train")]
    assert all(rate > 0 for rate in rates)
    assert [e.step for e in events.Scalars("wer/valid")] == [len(steps) // 2, steps[-1]]
    records = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == steps
