"""Tests of ``speechmapper_plugin.training.steps``: the accumulation derived from the global
batch, the step budget of the whole job (number_of_epochs only an upper bound), and
intra-epoch checkpoints taken only after an optimizer step."""

import pytest
import speechbrain as sb
import torch
from speechbrain.utils.epoch_loop import EpochCounter

from speechmapper_plugin.data.samplers import EpochBatchSampler
from speechmapper_plugin.training.checkpoints import AtomicCheckpointer
from speechmapper_plugin.training.steps import GlobalSteps


class _Brain(GlobalSteps, sb.Brain):
    batches = 0

    def compute_forward(self, batch, stage):
        self.batches += 1
        return self.modules.m(batch[0])

    def compute_objectives(self, predictions, batch, stage):
        return ((predictions - batch[1]) ** 2).mean()


DATA = torch.utils.data.TensorDataset(torch.randn(12, 2), torch.randn(12, 1))


def _brain(tmp_path=None, **run_opts):
    torch.manual_seed(0)
    checkpointer = None if tmp_path is None else AtomicCheckpointer(tmp_path)
    brain = _Brain(
        modules={"m": torch.nn.Linear(2, 1)},
        opt_class=lambda params: torch.optim.SGD(params, lr=0.1),
        run_opts={"device": "cpu", "noprogressbar": True, **run_opts},
        checkpointer=checkpointer,
    )
    return brain


def _fit(brain, counter, limit):
    sampler = EpochBatchSampler([1] * 12, 3, batch_size=2)  # 6 micro-batches: 2 steps/epoch
    brain.optimizer_step_limit = limit
    brain.fit(counter, DATA, train_loader_kwargs={"batch_sampler": sampler})
    return sampler


def test_the_step_budget_ends_training_mid_epoch_and_holds_on_relaunch():
    brain = _brain()
    counter = EpochCounter(10)
    sampler = _fit(brain, counter, 5)
    assert brain.grad_accumulation_factor == 3 and brain.train_sampler is sampler
    assert brain.optimizer_step == 5 and brain.batches == 15  # stopped inside epoch 3
    assert counter.current == 3
    _fit(brain, counter, 5)  # relaunched with the budget spent: nothing more
    assert brain.optimizer_step == 5 and brain.batches == 15


def test_epochs_stay_an_upper_bound():
    brain = _brain()
    _fit(brain, EpochCounter(2), 100)
    assert brain.optimizer_step == 4


def test_an_explicit_accumulation_that_contradicts_the_global_batch_is_an_error():
    with pytest.raises(ValueError, match=r"derived from the global batch .* = 3; set --batches"):
        _fit(_brain(grad_accumulation_factor=2), EpochCounter(1), 5)


def test_intra_epoch_checkpoints_only_after_an_optimizer_step(tmp_path, monkeypatch):
    brain = _brain(tmp_path, ckpt_interval_steps=1)
    steps = []
    original = _Brain._save_intra_epoch_ckpt

    def save(self):
        steps.append(self.step)
        original(self)

    monkeypatch.setattr(_Brain, "_save_intra_epoch_ckpt", save)
    _fit(brain, EpochCounter(1), 100)
    assert steps == [3, 6]  # never inside an accumulation of 3 micro-batches


class _Recording(_Brain):
    def compute_forward(self, batch, stage):
        self.trained.append(sorted(int(i) for i in batch[0][:, 0]))
        return super().compute_forward(batch, stage)


def test_a_resume_on_another_number_of_processes_continues_at_the_same_step(tmp_path):
    """Saved by 1 process with 3 accumulation steps after optimizer step 2, resumed as
    process 0 of 3 (1 micro-batch per step): it trains its share of steps 3 and 4."""
    data = torch.utils.data.TensorDataset(
        torch.arange(24.0)[:, None].repeat(1, 2), torch.zeros(24, 1)
    )
    plans = []
    for world, limit in ((1, 2), (3, 4)):
        torch.manual_seed(0)
        brain = _Recording(
            modules={"m": torch.nn.Linear(2, 1)},
            opt_class=lambda params: torch.optim.SGD(params, lr=0.01),
            run_opts={"device": "cpu", "noprogressbar": True, "ckpt_interval_steps": 1},
            checkpointer=AtomicCheckpointer(tmp_path),
        )
        brain.trained = []
        sampler = EpochBatchSampler([1] * 24, 3, batch_size=2, num_replicas=world, rank=0)
        brain.optimizer_step_limit = limit
        brain.fit(EpochCounter(1), data, train_loader_kwargs={"batch_sampler": sampler})
        plans.append(sampler.plan())
        assert brain.optimizer_step == limit
    plan = plans[1]
    assert brain.trained == [plan[2][0], plan[3][0]]  # rank 0's share of steps 3 and 4
