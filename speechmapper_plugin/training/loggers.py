"""Live training curves through SpeechBrain's own loggers: TensorBoard
(``speechbrain.utils.train_logger.TensorboardLogger``, YAML key ``use_tensorboard``) and,
optionally, Weights & Biases (``WandBLogger``, ``use_wandb``; ``wandb`` is not a
requirement).

What is logged, with the optimizer step as x-axis (SpeechBrain's tag layout
``<name>/<split>``, e.g. ``loss/train``, ``wer/valid``):

- every ``log_interval`` optimizer steps (``train``): the running mean of each loss term
  (``loss``, ``l_mse``, ``l_cos``, ``ce``, ``mse``...), the learning rate of each optimizer
  (``lr``, ``lr_lora``), the gradient norm before clipping (``grad_norm``, ``grad_norm_lora``)
  and ``audio_seconds_per_second`` (seconds of training audio over wall-clock seconds, summed
  over the processes of a multi-GPU run);
- at each validation (``valid``) and test (``test``): every statistic the stage logs to
  ``train_log.txt`` (WER, CER, loss terms, truncated targets...), captured by wrapping the
  stage's ``train_logger``.

The same per-step scalars go to ``curve.jsonl`` and ``learning_curve.png``
(``training.curves``). A resumed run continues the curves: TensorBoard drops the points of
the interrupted run logged after the checkpoint (``purge_step``), W&B resumes the same run
(its id is kept in ``<output_folder>/wandb_run_id.txt``).

Authors
-------
speechmapper developers, 2026
"""

import json
import logging
import os
import time
import uuid

import torch
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.train_logger import TensorboardLogger, TrainLogger

logger = logging.getLogger(__name__)


class _PurgingTensorboardLogger(TensorboardLogger):
    """SpeechBrain's TensorBoard logger whose writer drops the points a resumed run re-logs
    (events at or after ``purge_step`` in the folder's earlier event files)."""

    def __init__(self, save_dir, purge_step=None):
        if not purge_step:
            super().__init__(save_dir)
            return
        from torch.utils.tensorboard import SummaryWriter  # as TensorboardLogger, + purge_step

        self.save_dir = save_dir
        self.writer = SummaryWriter(save_dir, purge_step=purge_step) if if_main_process() else None
        self.global_step = {"train": {}, "valid": {}, "test": {}, "meta": 0}

    def add_scalars(self, split, step, scalars):
        """Writes ``<name>/<split>`` scalars at ``step`` (main process only)."""
        if self.writer is None:
            return
        for name, value in scalars.items():
            self.writer.add_scalar(f"{name}/{split}", value, step)
        self.writer.flush()

    def close(self):
        """Flushes and closes the event file."""
        if self.writer is not None:
            self.writer.close()


class _WandBCurves:
    """Adds ``<split>/<name>`` scalars at the optimizer step to a SpeechBrain ``WandBLogger``."""

    def __init__(self, wandb_logger):
        self.logger = wandb_logger

    def add_scalars(self, split, step, scalars):
        """Logs the scalars of one split at ``step`` (main process only)."""
        if self.logger.run is not None:
            self.logger.run.log({f"{split}/{k}": v for k, v in scalars.items()}, step=step)

    def close(self):
        """Finishes the run."""
        if self.logger.run is not None:
            self.logger.run.finish()


def _wandb_logger(hparams, folder):
    """SpeechBrain's ``WandBLogger`` on a run that a resumed training continues."""
    try:
        import wandb
    except ImportError as err:
        raise ImportError(
            "use_wandb: True needs Weights & Biases: pip install wandb (or the plugin's "
            "extra: pip install speechmapper-plugin[wandb]), then `wandb login`; or set "
            "--use_wandb=False."
        ) from err
    from speechbrain.utils.train_logger import WandBLogger

    id_file = os.path.join(folder, "wandb_run_id.txt")
    run_id = None
    if if_main_process():
        if os.path.isfile(id_file):
            with open(id_file, encoding="utf-8") as f:
                run_id = f.read().strip()
        if not run_id:
            run_id = uuid.uuid4().hex[:16]
            with open(id_file, "w", encoding="utf-8") as f:
                f.write(run_id + "\n")
    return WandBLogger(
        wandb.init,
        project=getattr(hparams, "wandb_project", None) or "speechmapper",
        name=folder,
        dir=folder,
        id=run_id,
        resume="allow",
    )


def _frame_rate(hparams):
    """Feature frames per second of the training features (``cache.json`` of the cache)."""
    folders = []
    if getattr(hparams, "feature_folder", None):
        folders.append(hparams.feature_folder)
    folders += [s.get("feature_folder") for s in getattr(hparams, "speech_sources", None) or []]
    for folder in folders:
        path = os.path.join(str(folder), "cache.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                rate = (json.load(f).get("config") or {}).get("frame_rate")
            if rate:
                return float(rate)
    return None


class LiveCurves:
    """The live-curve loggers of one training run and the per-step statistics they get.

    Build it with :meth:`from_brain` when fitting starts (``training.brain``); it is empty
    (logs nothing) when ``use_tensorboard`` and ``use_wandb`` are off.

    Arguments
    ---------
    writers : list
        Objects with ``add_scalars(split, step, scalars)`` and ``close()``.
    frame_rate : float, optional
        Feature frames per second of the training batches (for the audio throughput).

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> curves = LiveCurves([_PurgingTensorboardLogger(folder)])
    >>> curves.log("train", 10, {"loss": 2.0, "lr": 1e-4})
    >>> curves.close()
    >>> from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    >>> events = EventAccumulator(folder); _ = events.Reload()
    >>> sorted(events.Tags()["scalars"]), events.Scalars("loss/train")[0].step
    (['loss/train', 'lr/train'], 10)
    """

    def __init__(self, writers, frame_rate=None):
        self.writers = list(writers)
        self.frame_rate = frame_rate
        self._frames = None
        self._clock = time.time()
        self._grad_norms = {}

    @classmethod
    def from_brain(cls, brain):
        """The loggers a Brain's hparams ask for (``use_tensorboard``, ``tensorboard_folder``,
        ``use_wandb``, ``wandb_project``), created on the main process."""
        hparams = brain.hparams
        folder = str(hparams.output_folder)
        writers = []
        if getattr(hparams, "use_tensorboard", False):
            tb_folder = getattr(hparams, "tensorboard_folder", None) or os.path.join(
                folder, "tensorboard"
            )
            step = int(getattr(brain, "optimizer_step", 0) or 0)
            purge = step + 1 if step else None  # a resumed run replaces the later points
            writers.append(_PurgingTensorboardLogger(str(tb_folder), purge_step=purge))
            if if_main_process():
                logger.info("TensorBoard curves in %s (tensorboard --logdir %s)", tb_folder, folder)
        if getattr(hparams, "use_wandb", False):
            writers.append(_WandBCurves(_wandb_logger(hparams, folder)))
        curves = cls(writers, frame_rate=_frame_rate(hparams) if writers else None)
        if writers and curves.frame_rate is None:
            logger.warning(
                "No cache.json with a frame_rate under feature_folder / speech_sources: "
                "audio_seconds_per_second is not logged."
            )
        return curves

    @property
    def active(self):
        """Whether anything is logged."""
        return bool(self.writers)

    def count_batch(self, batch):
        """Adds the audio of a training batch (feature frames) to the throughput counter;
        no device synchronization (the sum stays on the device until :meth:`step_scalars`)."""
        if not self.active or self.frame_rate is None or not hasattr(batch, "feats"):
            return
        feats, lens = batch.feats
        frames = (lens.float() * feats.shape[1]).sum()
        self._frames = frames if self._frames is None else self._frames + frames

    def record_grad_norms(self, brain):
        """Gradient norm of each optimizer's parameters, before clipping (call it in
        ``optimizers_step`` of the logging steps; undoes the fp16 loss scaling)."""
        if not self.active:
            return
        scale = brain.scaler.get_scale() if brain.scaler.is_enabled() else 1.0
        optimizers = getattr(brain, "optimizers_dict", None) or {"opt_class": brain.optimizer}
        for name, optimizer in optimizers.items():
            grads = [
                p.grad.detach()
                for group in optimizer.param_groups
                for p in group["params"]
                if p.grad is not None
            ]
            if grads:
                norm = torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])
                )
                self._grad_norms[_suffixed("grad_norm", name)] = float(norm) / scale

    def step_scalars(self, brain):
        """The per-step scalars besides the loss terms: learning rates, gradient norms and
        audio throughput since the last call. Called on every process (the audio seconds
        are summed over processes)."""
        if not self.active:
            return {}
        scalars = {}
        optimizers = getattr(brain, "optimizers_dict", None) or {"opt_class": brain.optimizer}
        for name, optimizer in optimizers.items():
            scalars[_suffixed("lr", name)] = float(optimizer.param_groups[0]["lr"])
        scalars.update(self._grad_norms)
        self._grad_norms = {}
        now = time.time()
        if self.frame_rate is not None:
            frames = self._frames if self._frames is not None else torch.zeros(())
            frames = frames.detach().float().reshape(1).to(brain.device)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(frames)
            seconds = float(frames.item()) / self.frame_rate
            scalars["audio_seconds_per_second"] = seconds / max(now - self._clock, 1e-9)
        self._frames = None
        self._clock = now
        return scalars

    def restart_clock(self):
        """Starts a new throughput interval (after validation, which is not training time)."""
        self._frames = None
        self._clock = time.time()

    def log(self, split, step, scalars):
        """Writes finite numeric scalars of one split at ``step`` to every logger."""
        if not self.active or not if_main_process():
            return
        clean = {}
        for name, value in scalars.items():
            if torch.is_tensor(value) and value.numel() == 1:
                value = float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                clean[name] = float(value)
        if clean:
            for writer in self.writers:
                writer.add_scalars(split, int(step), clean)

    def wrap(self, train_logger, step_of):
        """``train_logger`` whose ``log_stats`` also sends the validation and test statistics
        to the live curves at the current optimizer step (``step_of()``)."""
        if isinstance(train_logger, CurvesTrainLogger):
            train_logger = train_logger.inner
        if not self.active:
            return train_logger
        return CurvesTrainLogger(train_logger, self, step_of)

    def close(self):
        """Closes every logger."""
        for writer in self.writers:
            writer.close()


def _suffixed(base, optimizer_name):
    """``lr`` for the main optimizer (``opt_class``), ``lr_lora`` for ``lora_opt_class``..."""
    if optimizer_name in ("opt_class", "optimizer"):
        return base
    return f"{base}_{optimizer_name.replace('_opt_class', '').replace('opt_class', 'opt')}"


class CurvesTrainLogger(TrainLogger):
    """A stage's ``train_logger`` (e.g. ``FileTrainLogger``) that also sends the statistics
    of validation and test to the live curves (:class:`LiveCurves`).

    Arguments
    ---------
    inner : speechbrain.utils.train_logger.TrainLogger
        The logger the stage was given (writes ``train_log.txt`` as before).
    curves : LiveCurves
        The live curves.
    step_of : callable
        Returns the current optimizer step.
    """

    def __init__(self, inner, curves, step_of):
        self.inner = inner
        self.curves = curves
        self.step_of = step_of

    def log_stats(
        self, stats_meta, train_stats=None, valid_stats=None, test_stats=None, verbose=False
    ):
        """See ``TrainLogger.log_stats``."""
        self.inner.log_stats(
            stats_meta,
            train_stats=train_stats,
            valid_stats=valid_stats,
            test_stats=test_stats,
            verbose=verbose,
        )
        step = self.step_of()
        if valid_stats:
            self.curves.log("valid", step, valid_stats)
        if test_stats:
            self.curves.log("test", step, test_stats)

    def __getattr__(self, name):
        if name == "inner":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)
