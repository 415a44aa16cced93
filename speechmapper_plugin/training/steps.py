"""What makes a training run the same on 1 and N processes, and after a restart: global step
budgets, gradient accumulation derived from the global batch, checkpoints only at optimizer
step boundaries, logs cut back to the resumed step, explicit gradient averaging where the
batches of a step do not all use every module, and an optional log of the trained batches.

``GlobalSteps`` is a mixin of the training Brains (``brain._SpeechMapperBrain``):

- The training loader's ``data.samplers.StepBatchSampler`` plans global optimizer steps;
  this process's share of a step (``batches_per_step / processes`` micro-batches) is its
  gradient-accumulation factor, and SpeechBrain does not split the sampler again.
- ``optimizer_step_limit`` (``fit_for_steps``) counts optimizer steps of the whole job;
  ``number_of_epochs`` is only an upper bound, and a run whose budget is spent trains no
  further when relaunched.
- Intra-epoch checkpoints are taken only after an optimizer step, so a resumed run starts
  with exactly the first micro-batch that was not trained.

Authors
-------
speechmapper developers, 2026
"""

import hashlib
import json
import logging
import os

import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from speechmapper_plugin.data.samplers import StepBatchSampler, process_group
from speechmapper_plugin.training.curves import JsonLinesLog

logger = logging.getLogger(__name__)


@register_checkpoint_hooks
class StepLayout:
    """Recoverable: how the micro-batches of a step were shared when a checkpoint was saved
    (processes, accumulation steps), so that a run resumed on another number of processes
    continues at the same optimizer step of the epoch (``GlobalSteps``)."""

    def __init__(self, brain):
        self.brain = brain
        self.saved = None

    @mark_as_saver
    def save(self, path):
        """Write the current layout."""
        layout = {
            "processes": process_group()[0],
            "accumulation": int(self.brain.grad_accumulation_factor),
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(layout, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Remember the saved layout (applied when training starts)."""
        del end_of_epoch
        with open(path, encoding="utf-8") as f:
            self.saved = json.load(f)


class _BudgetedEpochs:
    """The epochs of an epoch counter, stopped once the brain's step budget is spent."""

    def __init__(self, counter, brain):
        self.counter, self.brain = counter, brain

    def __iter__(self):
        for epoch in self.counter:
            if self.brain._optimizer_step_limit_exceeded:
                logger.info(
                    "The step budget is spent (%d optimizer steps): no further training.",
                    self.brain.optimizer_step,
                )
                return
            yield epoch


class BatchLog(JsonLinesLog):
    """Per-process JSON-lines record of the trained micro-batches (``batch_log: True``):
    ``{"step", "epoch", "kind", "ids"}`` for each micro-batch (``step``: the optimizer step
    it contributes to) and ``{"step", "params"}`` after each optimizer step (a SHA-1 of the
    trainable parameters). A resumed run first drops the records after its checkpoint.

    Example
    -------
    >>> import tempfile
    >>> log = BatchLog(os.path.join(tempfile.mkdtemp(), "rank0.jsonl"))
    >>> log.add(step=1, epoch=1, kind="speech", ids=["a", "b"]); log.add(step=2, params="x")
    >>> log.truncate_after(1); [r["step"] for r in log.records()]
    [1]
    """

    def add(self, **record):
        """Append one record."""
        self.append(record)


def parameter_digest(modules):
    """SHA-1 of the trainable parameters of ``modules`` (a dict), in a fixed order.

    Example
    -------
    >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    >>> b.load_state_dict(a.state_dict())
    <All keys matched successfully>
    >>> parameter_digest({"m": a}) == parameter_digest({"m": b})
    True
    """
    digest = hashlib.sha1()
    for name in sorted(modules):
        for param in modules[name].parameters():
            if param.requires_grad:
                digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class GlobalSteps:
    """Mixin of the training Brains: the schedule of the whole job, whatever the number of
    processes, and resumes that neither repeat nor skip a batch (see the module docstring).

    Set ``manual_gradient_sync = True`` in a Brain whose micro-batches do not all go through
    every trainable module (IWSLT25 stage C: text batches skip the projector): its modules
    are then not wrapped in DDP, and the gradients are averaged across processes before each
    optimizer step.
    """

    manual_gradient_sync = False
    _batch_log = None

    # -- the global plan -------------------------------------------------------------------

    def _train_loader_specifics(self, dataset, loader_kwargs):
        sampler = loader_kwargs.get("batch_sampler")
        if not isinstance(sampler, StepBatchSampler):
            return super()._train_loader_specifics(dataset, loader_kwargs)
        if self.grad_accumulation_factor not in (1, sampler.accumulation):
            raise ValueError(
                f"--grad_accumulation_factor={self.grad_accumulation_factor}: the accumulation "
                f"is derived from the global batch here, batches_per_step "
                f"({sampler.batches_per_step}) / processes ({sampler.num_replicas}) = "
                f"{sampler.accumulation}; set --batches_per_step instead."
            )
        self.grad_accumulation_factor = sampler.accumulation
        self.train_sampler = sampler  # SpeechBrain calls its set_epoch; no further split
        # DataLoader seeds its workers from this generator, not from the global random state
        # (which a resume restores): the dropout draws stay those of an uninterrupted run.
        loader_kwargs.setdefault("generator", torch.Generator().manual_seed(sampler.seed))
        logger.info(
            "Global batch: %d micro-batches per optimizer step over %d process(es): %d "
            "accumulation step(s) per process.",
            sampler.batches_per_step,
            sampler.num_replicas,
            sampler.accumulation,
        )
        return loader_kwargs

    def fit(self, epoch_counter, train_set, valid_set=None, *args, **kwargs):
        """SpeechBrain's ``fit``, ending when ``optimizer_step_limit`` optimizer steps of the
        whole job are done (``number_of_epochs`` is then only an upper bound)."""
        return super().fit(
            _BudgetedEpochs(epoch_counter, self), train_set, valid_set, *args, **kwargs
        )

    def _should_save_intra_epoch_ckpt(self, last_ckpt_time, steps_since_ckpt):
        if self.step % self.grad_accumulation_factor:  # inside an accumulation: not yet
            return False
        return super()._should_save_intra_epoch_ckpt(last_ckpt_time, steps_since_ckpt)

    # -- a resumed run -------------------------------------------------------------------

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._layout = None
        if self.checkpointer is not None:
            self._layout = StepLayout(self)
            self.checkpointer.add_recoverable("step_layout", self._layout, optional_load=True)

    def on_fit_start(self):
        """SpeechBrain's (recovery included), then continue at the recovered optimizer step
        and open the batch log (dropping its records after that step)."""
        super().on_fit_start()
        self._resume_position()
        if getattr(getattr(self, "hparams", None), "batch_log", False):
            _, rank = process_group()
            path = os.path.join(self.hparams.output_folder, "batch_log", f"rank{rank}.jsonl")
            self._batch_log = BatchLog(path)
            self._batch_log.truncate_after(self.optimizer_step)

    def _resume_position(self):
        """After recovery on another number of processes: continue at the same optimizer
        step of the epoch (the saved position counts the saving processes' micro-batches)."""
        saved = None if self._layout is None else self._layout.saved
        if not saved or saved["accumulation"] == self.grad_accumulation_factor:
            return
        steps_done = self.step // saved["accumulation"]
        self.step = steps_done * self.grad_accumulation_factor
        loader = self.checkpointer.recoverables.get("dataloader-TRAIN")
        if getattr(loader, "_speechbrain_recovery_skip_to", None) is not None:
            loader._speechbrain_recovery_skip_to = self.step
        logger.info(
            "The checkpoint was saved by %d process(es) with %d accumulation step(s), this "
            "run shares the steps as %d: resuming after optimizer step %d of the epoch.",
            saved["processes"],
            saved["accumulation"],
            self.grad_accumulation_factor,
            steps_done,
        )
        self._layout.saved = None

    def fit_batch(self, batch):
        """SpeechBrain's ``fit_batch``, recorded in the batch log when it is on."""
        if self._batch_log is not None:
            self._batch_log.add(
                step=self.optimizer_step + 1,
                epoch=getattr(getattr(self, "train_sampler", None), "epoch", None),
                kind="speech" if hasattr(batch, "feats") else "text",
                ids=list(batch.id),
            )
        loss = super().fit_batch(batch)
        if self._batch_log is not None and self.step % self.grad_accumulation_factor == 0:
            self._batch_log.add(step=self.optimizer_step, params=parameter_digest(self.modules))
        return loss

    # -- gradients averaged explicitly ----------------------------------------------------

    def _wrap_distributed(self):
        if not (self.manual_gradient_sync and self.distributed_launch):
            return super()._wrap_distributed()
        for param in self._trainable():  # what DDP's construction does: rank 0's values
            torch.distributed.broadcast(param.data, src=0)
        return None

    def _trainable(self):
        return [p for m in self.modules.values() for p in m.parameters() if p.requires_grad]

    def optimizers_step(self):
        """Average the gradients across processes first (``manual_gradient_sync``)."""
        if self.manual_gradient_sync and self.distributed_launch:
            average_gradients(self._trainable(), self.device)
        return super().optimizers_step()


def average_gradients(params, device):
    """Average the gradients of ``params`` across processes (one all-reduce per dtype). Every
    process must hold gradients for the same parameters: batches of the same kind on every
    process at the same micro-step (``InterleavedBatchSampler``); a clear error otherwise."""
    dist = torch.distributed
    world = dist.get_world_size()
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
    present = present.to(device)
    dist.all_reduce(present)
    counts = present.cpu().tolist()
    if any(0 < c < world for c in counts):
        raise RuntimeError(
            "The processes disagree on which parameters received gradients in this optimizer "
            "step: they did not train the same kind of batch (speech / text) at the same "
            "micro-step. Use a sampler that plans the batch kinds for all processes "
            "(data.samplers.InterleavedBatchSampler)."
        )
    grads = [p.grad for p, c in zip(params, counts) if c]
    by_dtype = {}
    for grad in grads:
        by_dtype.setdefault((grad.dtype, grad.device), []).append(grad)
    for group in by_dtype.values():
        flat = torch._utils._flatten_dense_tensors(group)
        dist.all_reduce(flat)
        flat /= world
        for grad, synced in zip(group, torch._utils._unflatten_dense_tensors(flat, group)):
            grad.copy_(synced)
