"""Learning-rate schedule of stage 1: linear warm-up from a tiny initial value, then cosine
decay (paper Sec. 3 and App. A.2: AdamW, 100K warm-up steps from 1e-8, cosine scheduler).

Authors
-------
speechmapper developers, 2026
"""

import math

from speechbrain.utils import checkpoints


@checkpoints.register_checkpoint_hooks
class WarmupCosineScheduler:
    """Linear warm-up from ``initial_lr`` to ``lr`` over ``warmup_steps``, then cosine decay
    to ``final_lr`` at ``total_steps`` (constant afterwards). Call it once per optimizer step.

    Arguments
    ---------
    lr : float
        Peak learning rate.
    warmup_steps : int
        Warm-up length in optimizer steps.
    total_steps : int
        Step at which the cosine reaches ``final_lr``.
    initial_lr : float
        Learning rate at step 0.
    final_lr : float
        Learning rate at and after ``total_steps``.

    Example
    -------
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    >>> sched = WarmupCosineScheduler(lr=1.0, warmup_steps=10, total_steps=20, initial_lr=0.0)
    >>> [round(sched(opt), 3) for _ in range(3)]
    [0.1, 0.2, 0.3]
    >>> sched.n_steps = 14; round(sched(opt), 3)
    0.5
    """

    def __init__(self, lr, warmup_steps, total_steps, initial_lr=1e-8, final_lr=0.0):
        if total_steps < warmup_steps:
            raise ValueError(
                f"WarmupCosineScheduler: total_steps={total_steps} is smaller than "
                f"warmup_steps={warmup_steps}."
            )
        self.lr, self.warmup_steps, self.total_steps = lr, warmup_steps, total_steps
        self.initial_lr, self.final_lr = initial_lr, final_lr
        self.n_steps = 0

    def lr_at(self, step):
        """Learning rate after ``step`` optimizer steps."""
        if step < self.warmup_steps:
            return self.initial_lr + (self.lr - self.initial_lr) * step / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.final_lr + 0.5 * (self.lr - self.final_lr) * (1 + math.cos(math.pi * progress))

    def __call__(self, optimizer):
        """Advance one step and set the optimizer's learning rate; returns it."""
        self.n_steps += 1
        lr = self.lr_at(self.n_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    @checkpoints.mark_as_saver
    def save(self, path):
        """Save the step counter."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(str(self.n_steps))

    @checkpoints.mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restore the step counter."""
        del end_of_epoch
        with open(path, encoding="utf-8") as f:
            self.n_steps = int(f.read().strip())
