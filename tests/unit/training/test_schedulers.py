"""Tests for speechmapper_plugin.training.schedulers.WarmupCosineScheduler: the shape of the schedule,
the optimizer update and resuming through a SpeechBrain Checkpointer."""

import math

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechmapper_plugin.training.schedulers import WarmupCosineScheduler

PEAK, INITIAL, FINAL = 1e-3, 1e-6, 1e-5


WARMUP, TOTAL = 100, 500


def _scheduler():
    return WarmupCosineScheduler(
        lr=PEAK, warmup_steps=WARMUP, total_steps=TOTAL, initial_lr=INITIAL, final_lr=FINAL
    )


def _optimizer(groups=1):
    return torch.optim.AdamW(
        [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(groups)], lr=123.0
    )


def test_schedule_key_points():
    sched = _scheduler()
    assert sched.lr_at(0) == pytest.approx(INITIAL)
    assert sched.lr_at(WARMUP // 2) == pytest.approx((INITIAL + PEAK) / 2)
    assert sched.lr_at(WARMUP) == pytest.approx(PEAK)
    midpoint = WARMUP + (TOTAL - WARMUP) // 2
    assert sched.lr_at(midpoint) == pytest.approx((PEAK + FINAL) / 2)
    quarter = WARMUP + (TOTAL - WARMUP) // 4
    assert sched.lr_at(quarter) == pytest.approx(
        FINAL + (PEAK - FINAL) * (1 + math.cos(math.pi / 4)) / 2
    )
    assert sched.lr_at(TOTAL) == pytest.approx(FINAL)
    assert sched.lr_at(TOTAL + 1) == pytest.approx(FINAL)
    assert sched.lr_at(10 * TOTAL) == pytest.approx(FINAL)


def test_schedule_is_monotonic():
    sched = _scheduler()
    lrs = [sched.lr_at(s) for s in range(TOTAL + 10)]
    assert all(a < b for a, b in zip(lrs[:WARMUP], lrs[1 : WARMUP + 1]))  # strictly rising
    assert all(a >= b for a, b in zip(lrs[WARMUP:], lrs[WARMUP + 1 :]))  # never rising again
    assert max(lrs) == pytest.approx(PEAK)


def test_call_advances_one_step_and_sets_every_param_group():
    sched, opt = _scheduler(), _optimizer(groups=2)
    values = [sched(opt) for _ in range(3)]
    assert values == pytest.approx([sched.lr_at(1), sched.lr_at(2), sched.lr_at(3)])
    assert sched.n_steps == 3
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([sched.lr_at(3)] * 2)


def test_no_warmup_starts_at_the_peak():
    sched = WarmupCosineScheduler(lr=0.5, warmup_steps=0, total_steps=10, final_lr=0.0)
    assert sched.lr_at(0) == pytest.approx(0.5)
    assert sched.lr_at(5) == pytest.approx(0.25)
    assert sched.lr_at(10) == pytest.approx(0.0)


def test_total_shorter_than_warmup_is_an_error():
    with pytest.raises(ValueError, match="total_steps=5 is smaller than warmup_steps=10"):
        WarmupCosineScheduler(lr=1.0, warmup_steps=10, total_steps=5)


def test_checkpoint_round_trip_resumes_the_exact_learning_rate(tmp_path):
    sched, opt = _scheduler(), _optimizer()
    for _ in range(137):
        sched(opt)
    Checkpointer(tmp_path, recoverables={"lr_scheduler": sched}).save_checkpoint()
    expected = [sched(opt) for _ in range(5)]

    resumed, opt2 = _scheduler(), _optimizer()
    Checkpointer(tmp_path, recoverables={"lr_scheduler": resumed}).recover_if_possible()
    assert resumed.n_steps == 137
    assert [resumed(opt2) for _ in range(5)] == expected
    assert opt2.param_groups[0]["lr"] == expected[-1]
