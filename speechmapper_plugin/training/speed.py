"""GPU speed levers of the training loop, each a YAML switch (``hparams/stage1.yaml``):

- ``compile_step``: :func:`compile_objective` compiles the whole training objective
  (projector, targets, loss) as one ``torch.compile`` graph; with ``pad_multiple`` the batch
  shapes come from a few buckets, so ``mode="reduce-overhead"`` records one CUDA graph per
  shape and replays it;
- ``deferred_sync``: :class:`DeferredSyncMixin` keeps the running loss, the loss terms and the
  non-finite check on the device and reads them once every ``log_interval`` optimizer steps,
  so that the host never waits for the GPU inside a step and queues the next step's kernels
  while the GPU runs the current one.

Both leave the computed values unchanged (see ``tests/unit/training/test_speed.py``); what they
buy is measured by ``benchmarks/benchmark.py --parts stage1`` (``docs/benchmarks.md``).

Authors
-------
speechmapper developers, 2026
"""

import logging

import speechbrain as sb
import torch

logger = logging.getLogger(__name__)

#: ``compile_step_mode`` values: torch.compile modes (CUDA graphs with "reduce-overhead").
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_objective(module, mode="reduce-overhead", backend="inductor", fullgraph=False):
    """``torch.compile`` of a training objective, with automatic dynamic shapes.

    The first batch shape is compiled as static; when a second shape arrives, the changing
    dimensions become symbolic and one more graph serves every later shape (no recompilation
    per bucket). CUDA graphs (``mode="reduce-overhead"``) are still recorded per concrete shape,
    which is why batches are padded to a few bucket lengths (``data.padding``). CUDA graphs
    assume one backward per forward before the next step (one micro-batch per process and
    optimizer step: ``batches_per_step`` equal to the number of processes).

    Arguments
    ---------
    module : torch.nn.Module
        E.g. ``models.objectives.Stage1Objective``.
    mode : str
        One of :data:`COMPILE_MODES` (used with the inductor backend only).
    backend : str
        ``torch.compile`` backend (tests use "aot_eager": same graph capture, no code generation).
    fullgraph : bool
        Fail on a graph break instead of splitting the graph (tests use it).

    Returns
    -------
    callable
        The compiled module.

    Example
    -------
    >>> compiled = compile_objective(torch.nn.Linear(2, 2), backend="eager")
    >>> compiled(torch.ones(1, 2)).shape
    torch.Size([1, 2])
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile_step_mode={mode!r} is not one of {list(COMPILE_MODES)}.")
    kwargs = {"backend": backend, "dynamic": None, "fullgraph": fullgraph}
    if backend == "inductor":
        kwargs["mode"] = mode
    return torch.compile(module, **kwargs)


class DeferredSyncMixin:
    """A ``Brain`` mixin: with the hparam ``deferred_sync: True``, the training loop never reads
    a device value back inside a step.

    SpeechBrain's ``fit_batch`` checks ``torch.isfinite(loss)`` and returns ``loss.cpu()``, and
    ``update_average`` calls ``float(loss)``: three waits for the GPU per batch. Here the
    running average (SpeechBrain's exact recursion, in float64 on the device) and the count of
    non-finite losses stay on the device; they are read every ``log_interval`` optimizer steps
    and at the end of the epoch, where a non-finite count beyond ``nonfinite_patience`` raises
    SpeechBrain's error. Differences: the progress bar's loss refreshes at those points only,
    and a non-finite loss stops training at the next of them instead of at once. Without the
    hparam (the default) SpeechBrain's own methods run unchanged.

    Put it before the Brain class in the bases (``class B(DeferredSyncMixin, Brain)``).
    """

    def _deferred(self):
        return bool(getattr(self.hparams, "deferred_sync", False))

    def on_stage_start(self, stage, epoch=None):
        """Forget the device-side running values of the previous stage."""
        super().on_stage_start(stage, epoch)
        self._avg_dev = self._nonfinite_dev = self._last_loss = None
        self._shown_avg = 0.0

    def fit_batch(self, batch):
        """SpeechBrain's ``fit_batch`` without its host reads (deferred mode), else its own."""
        if not self._deferred():
            return super().fit_batch(batch)
        should_step = (self.step % self.grad_accumulation_factor) == 0
        self.on_fit_batch_start(batch, should_step)
        with self.no_sync(not should_step):
            with self.training_ctx:
                outputs = self.compute_forward(batch, sb.Stage.TRAIN)
                loss = self.compute_objectives(outputs, batch, sb.Stage.TRAIN)
            scaled_loss = self.scaler.scale(loss / self.grad_accumulation_factor)
            bad = (~torch.isfinite(loss.detach())).sum()
            self._nonfinite_dev = bad if self._nonfinite_dev is None else self._nonfinite_dev + bad
            scaled_loss.backward()
        if should_step:
            self.optimizers_step()
        self.on_fit_batch_end(batch, outputs, loss, should_step)
        self._last_loss = loss.detach()
        return self._last_loss

    def update_average(self, loss, avg_loss):
        """SpeechBrain's running average, computed on the device for training losses of the
        deferred mode (returns the value last read, see :meth:`sync_deferred`)."""
        if not (self._deferred() and loss is getattr(self, "_last_loss", None)):
            return super().update_average(loss, avg_loss)
        value = loss.to(torch.float64)
        if self._avg_dev is None:  # new epoch, or resumed from an intra-epoch checkpoint
            self._avg_dev = torch.tensor(float(avg_loss), dtype=torch.float64, device=loss.device)
            self._shown_avg = float(avg_loss)
        avg = self._avg_dev
        self._avg_dev = torch.where(
            torch.isfinite(value), avg - avg / self.step + value / self.step, avg
        )
        return self._shown_avg

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Reads the deferred values back every ``log_interval`` optimizer steps."""
        super().on_fit_batch_end(batch, outputs, loss, should_step)
        interval = getattr(self.hparams, "log_interval", 50)
        if self._deferred() and should_step and self.optimizer_step % interval == 0:
            self.sync_deferred()

    def sync_deferred(self):
        """Reads the running average and the non-finite count back (one wait for the device);
        raises SpeechBrain's error once the non-finite losses exceed ``nonfinite_patience``.

        Returns
        -------
        float
            The running average training loss.
        """
        if getattr(self, "_avg_dev", None) is not None:
            self._shown_avg = float(self._avg_dev)
        if getattr(self, "_nonfinite_dev", None) is not None:
            count = int(self._nonfinite_dev)
            self._nonfinite_dev = None
            if count:
                self.nonfinite_count += count
                logger.warning(
                    "%d non-finite training loss(es) since the last check (%d this epoch, "
                    "patience %d).",
                    count,
                    self.nonfinite_count,
                    self.nonfinite_patience,
                )
                if self.nonfinite_count > self.nonfinite_patience:
                    raise ValueError(
                        "Loss is not finite and patience is exhausted (deferred_sync: checked "
                        "every log_interval optimizer steps). To debug, run with "
                        "--deferred_sync=False and wrap `fit()` with autograd's "
                        "`detect_anomaly()`."
                    )
        return self._shown_avg

    def deferred_stage_loss(self, stage_loss):
        """The exact training-stage loss at the end of an epoch (``stage_loss`` otherwise)."""
        if self._deferred() and getattr(self, "_avg_dev", None) is not None:
            return self.sync_deferred()
        return stage_loss
