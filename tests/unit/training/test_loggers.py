"""Live curves (speechmapper_plugin.training.loggers) without a training run: what each
optimizer reports, the validation statistics captured from the stage's train_logger, a
resumed run's TensorBoard points, and W&B as an option that is never required."""

import json
import sys
import types

import pytest
import torch
from speechbrain.utils.train_logger import FileTrainLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from speechmapper_plugin.training.loggers import CurvesTrainLogger, LiveCurves


def _brain(tmp_path, **hparams):
    projector, lora = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(projector.parameters(), lr=0.1)
    lora_optimizer = torch.optim.SGD(lora.parameters(), lr=0.3)
    cache = tmp_path / "feats"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "cache.json").write_text(json.dumps({"config": {"frame_rate": 25.0}}))
    values = {
        "output_folder": str(tmp_path),
        "use_tensorboard": True,
        "feature_folder": str(cache),
        **hparams,
    }
    brain = types.SimpleNamespace(
        hparams=types.SimpleNamespace(**values),
        optimizer=optimizer,
        optimizers_dict={"opt_class": optimizer, "lora_opt_class": lora_optimizer},
        scaler=torch.amp.GradScaler("cpu", enabled=False),
        device="cpu",
        optimizer_step=0,
        modules=(projector, lora),
    )
    return brain


def _scalars(folder, tag):
    events = EventAccumulator(str(folder))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_step_scalars_per_optimizer_and_audio_throughput(tmp_path):
    brain = _brain(tmp_path)
    curves = LiveCurves.from_brain(brain)
    projector, lora = brain.modules
    (projector(torch.ones(1, 2)).sum() + 2 * lora(torch.ones(1, 2)).sum()).backward()
    curves.record_grad_norms(brain)
    batch = types.SimpleNamespace(feats=(torch.zeros(2, 50, 4), torch.tensor([1.0, 0.5])))
    curves.count_batch(batch)  # 50 + 25 frames at 25 Hz = 3 s of audio
    scalars = curves.step_scalars(brain)
    assert scalars["lr"] == 0.1 and scalars["lr_lora"] == 0.3
    expected = torch.linalg.vector_norm(
        torch.cat([p.grad.flatten() for p in projector.parameters()])
    )
    assert scalars["grad_norm"] == pytest.approx(float(expected))
    assert scalars["grad_norm_lora"] == pytest.approx(2 * float(expected))
    assert scalars["audio_seconds_per_second"] > 0
    # The counters restart: a second interval without batches has no audio.
    assert curves.step_scalars(brain)["audio_seconds_per_second"] == 0.0


def test_validation_stats_reach_the_curves_through_the_train_logger(tmp_path):
    brain = _brain(tmp_path)
    curves = LiveCurves.from_brain(brain)
    file_logger = FileTrainLogger(str(tmp_path / "train_log.txt"))
    wrapped = curves.wrap(file_logger, lambda: 40)
    assert isinstance(wrapped, CurvesTrainLogger) and curves.wrap(wrapped, lambda: 1).inner is (
        file_logger
    )  # wrapping twice (a second fit) keeps one layer
    wrapped.log_stats({"epoch": 2}, train_stats={"loss": 1.0}, valid_stats={"wer": 30.0})
    wrapped.log_stats({"split": "test"}, test_stats={"wer": 25.0, "note": "text"})
    assert "valid wer: 30.00" in (tmp_path / "train_log.txt").read_text()  # file log as before
    folder = tmp_path / "tensorboard"
    assert _scalars(folder, "wer/valid") == [(40, 30.0)]
    assert _scalars(folder, "wer/test") == [(40, 25.0)]


def test_resumed_run_replaces_the_points_after_its_checkpoint(tmp_path):
    first = LiveCurves.from_brain(_brain(tmp_path))
    for step in range(1, 6):
        first.log("train", step, {"loss": 10.0 - step})
    first.close()
    resumed = _brain(tmp_path)
    resumed.optimizer_step = 3  # the checkpoint the run resumes from
    second = LiveCurves.from_brain(resumed)
    for step in (4, 5):
        second.log("train", step, {"loss": 100.0 + step})
    second.close()
    points = _scalars(tmp_path / "tensorboard", "loss/train")
    assert points == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 104.0), (5, 105.0)]


def test_nothing_is_logged_when_off_and_wandb_is_optional(tmp_path, monkeypatch):
    curves = LiveCurves.from_brain(_brain(tmp_path, use_tensorboard=False))
    assert not curves.active and curves.step_scalars(None) == {}
    assert not (tmp_path / "tensorboard").exists()
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    with pytest.raises(ImportError, match="pip install wandb"):
        LiveCurves.from_brain(_brain(tmp_path, use_tensorboard=False, use_wandb=True))


def _all_reduce_worker(rank, port, folder, results):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        brain = _brain(folder / str(rank), use_tensorboard=True)
        curves = LiveCurves.from_brain(brain)
        frames = 50 if rank == 0 else 25  # 2 s and 1 s of audio at 25 Hz
        curves.count_batch(types.SimpleNamespace(feats=(torch.zeros(1, frames, 2), torch.ones(1))))
        curves._clock -= 1.0  # one second of training
        results[rank] = curves.step_scalars(brain)["audio_seconds_per_second"]
    finally:
        dist.destroy_process_group()


def test_audio_throughput_sums_the_processes(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_all_reduce_worker, args=(port, tmp_path, results), nprocs=2, join=True)
    # 3 s of audio (both processes) in ~1 s, seen identically by each process
    assert results[0] == pytest.approx(results[1], rel=0.05)
    assert 2.5 < results[0] <= 3.0
