"""What every training stage's Brain shares: the projector-only optimizer, running loss terms,
the learning-curve log, the learning-rate schedule per optimizer step, and the decoded
output and result files of validation and test; the same schedule on 1 and N processes and
exact resumes (``steps.GlobalSteps``, ``checkpoints.RandomState``), validation and test split
across processes (``evaluation.sharding.ShardedEvaluation``).

Authors
-------
speechmapper developers, 2026
"""

import os

import speechbrain as sb
import torch
from speechbrain.utils.distributed import main_process_only

from speechmapper_plugin.evaluation.results import make_result, write_result
from speechmapper_plugin.evaluation.scoring import score_outputs
from speechmapper_plugin.evaluation.sharding import ShardedEvaluation, all_gather
from speechmapper_plugin.training.checkpoints import RandomState
from speechmapper_plugin.training.curves import CurveLog
from speechmapper_plugin.training.loggers import LiveCurves
from speechmapper_plugin.training.steps import GlobalSteps
from speechmapper_plugin.utils.files import atomic_write_text


class _SpeechMapperBrain(GlobalSteps, ShardedEvaluation, sb.Brain):
    """What both stages share: projector-only optimizer, running loss components, the
    learning-curve log, decoded-output files and result JSONs."""

    #: Name of the split being evaluated; recipes set it before ``evaluate`` (files are
    #: named after it).
    test_name = "test"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.checkpointer is not None:  # dropout draws continue exactly after a resume
            self.checkpointer.add_recoverable("random_state", RandomState(), optional_load=True)

    @property
    def llm(self):
        """The ``frozen_llm.FrozenLLM`` itself. Under DDP, SpeechBrain wraps an LLM that carries
        trainable LoRA adapters (so that their gradients are averaged across processes):
        calls go through ``self.modules.llm``, attribute access through this."""
        llm = self.modules.llm
        return llm.module if isinstance(llm, torch.nn.parallel.DistributedDataParallel) else llm

    def init_optimizers(self):
        """Optimize the projector only (the LLM and its embeddings are frozen)."""
        params = [p for p in self.modules.projector.parameters() if p.requires_grad]
        self.optimizer = self.opt_class(params)
        self.optimizers_dict = {"opt_class": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    def on_fit_start(self):
        """Set up the curve log and the learning rate of the (possibly resumed) schedule."""
        super().on_fit_start()
        self.curve = CurveLog(os.path.join(self.hparams.output_folder, "curve.jsonl"))
        if sb.utils.distributed.if_main_process() and not self.debug:
            self.curve.truncate_after(self.optimizer_step)  # a resumed run logs them again
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if scheduler is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = scheduler.lr_at(scheduler.n_steps)
        # Live curves: TensorBoard / W&B (training/loggers.py); validation stats through
        # the stage's train_logger.
        self.live = LiveCurves.from_brain(self)
        self.hparams.train_logger = self.live.wrap(
            self.hparams.train_logger, lambda: self.optimizer_step
        )

    def optimizers_step(self):
        """Record the gradient norms on logging steps (live curves), then step."""
        live = getattr(self, "live", None)
        if live is not None and (self.optimizer_step + 1) % self._log_interval() == 0:
            live.record_grad_norms(self)
        super().optimizers_step()

    def _log_interval(self):
        return getattr(self.hparams, "log_interval", 50)

    def on_stage_start(self, stage, epoch=None):
        """Reset the running sums of loss components and the decoded outputs."""
        self.sums, self.count = {}, 0
        self.interval_sums, self.interval_count = {}, 0
        if stage == sb.Stage.TRAIN and getattr(self, "live", None) is not None:
            self.live.restart_clock()  # audio throughput counts training time only
        self.outputs = []
        loss = getattr(self.hparams, "loss", None)
        if loss is not None:  # truncation counts are reported per stage
            loss.truncated = loss.seen = 0

    def _accumulate(self, parts, batch_size):
        """Adds the scalar loss terms of a batch, weighted by its size, to the running sums.

        The sums stay on the device (float64, one vector per set of keys) and are read back
        by ``_means`` only, at log and stage ends: a training step never waits for the GPU
        here. The values are those of summing ``float(term) * batch_size`` on the host.
        """
        keys = tuple(k for k, v in parts.items() if torch.is_tensor(v) and v.dim() == 0)
        if keys:
            device = parts[keys[0]].device
            values = torch.stack([parts[k].detach().to(device) for k in keys])
            values = values.to(torch.float64) * batch_size
            for sums in (self.sums, self.interval_sums):
                sums[keys] = values if keys not in sums else sums[keys] + values
        self.count += batch_size
        self.interval_count += batch_size

    def _gather_stage(self, stage, stage_loss):
        """The stage's loss and running sums over all processes (and, at validation / test,
        every process's decoded outputs, in the one-process order); returns the loss."""
        if stage != sb.Stage.TRAIN:
            stage_loss = self.global_stage_loss(stage_loss)
        parts = all_gather(
            {
                "loss": float(stage_loss),
                "sums": self._totals(self.sums),
                "count": float(self.count),
                "truncated": getattr(getattr(self.hparams, "loss", None), "truncated", 0),
                "seen": getattr(getattr(self.hparams, "loss", None), "seen", 0),
            }
        )
        if len(parts) == 1:
            return stage_loss
        if stage == sb.Stage.TRAIN:  # every process ran as many batches
            stage_loss = sum(p["loss"] for p in parts) / len(parts)
        else:
            self.outputs = self.gather_outputs(self.outputs)
        totals = {}
        for part in parts:
            for key, value in part["sums"].items():
                totals[key] = totals.get(key, 0.0) + value
        self.sums = {
            (key,): torch.tensor([value], dtype=torch.float64) for key, value in totals.items()
        }
        self.count = sum(p["count"] for p in parts)
        loss = getattr(self.hparams, "loss", None)
        if loss is not None and hasattr(loss, "truncated"):
            loss.truncated = sum(p["truncated"] for p in parts)
            loss.seen = sum(p["seen"] for p in parts)
        return stage_loss

    @staticmethod
    def _totals(sums):
        """``{term: float}`` of the sums of ``_accumulate`` (reads them back from the device)."""
        totals = {}
        for keys, values in sums.items():
            for key, value in zip(keys, values.tolist()):
                totals[key] = totals.get(key, 0.0) + value
        return totals

    def _means(self, sums, count):
        """Means of the sums of ``_accumulate`` (reads them back from the device)."""
        return {k: v / max(count, 1) for k, v in self._totals(sums).items()}

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Advance the LR schedule and log the training curve every ``log_interval`` steps."""
        if getattr(self, "live", None) is not None:
            self.live.count_batch(batch)
        if not should_step:
            return
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if scheduler is not None:
            scheduler(self.optimizer)
        interval = self._log_interval()
        if self.optimizer_step % interval == 0 and self.interval_count:
            means = self._means(self.interval_sums, self.interval_count)
            means["lr"] = self.optimizer.param_groups[0]["lr"]
            if getattr(self, "live", None) is not None:
                means.update(self.live.step_scalars(self))  # lr per optimizer, grad norm, audio/s
            self._log_curve("train", **means)
            self.interval_sums, self.interval_count = {}, 0

    def _add_outputs(self, ids, hyps, refs, stuck=None):
        stuck = stuck or [False] * len(hyps)
        self.outputs.extend(
            {"id": i, "hypothesis": h, "reference": r, "stuck": k}
            for i, h, r, k in zip(ids, hyps, refs, stuck)
        )

    def _score_outputs(self):
        metrics, self.signatures = score_outputs(
            "asr", self.outputs, wer_normalizer=getattr(self.hparams, "wer_normalizer", "mms")
        )
        return metrics

    @main_process_only
    def _write_outputs(self, kind, system, metrics, decoding, setting=None):
        """Decoded outputs (TSV) and the result file (``results.make_result`` schema) of the
        split ``self.test_name``, written as ``results/<split>.json``."""
        folder = self.hparams.output_folder
        lines = ["ID\thypothesis\treference"]
        lines += [f"{o['id']}\t{o['hypothesis']}\t{o['reference']}" for o in self.outputs]
        atomic_write_text(
            os.path.join(folder, "decode", f"{self.test_name}.{kind}.tsv"), "\n".join(lines) + "\n"
        )
        result = make_result(
            getattr(self.hparams, "system_name", None) or system,
            getattr(self.hparams, "dataset", "LibriSpeech"),
            self.test_name,
            "asr",
            metrics,
            self.outputs,
            seed=getattr(self.hparams, "seed", None),
            setting=setting,
            llm=getattr(self.hparams, "llm_source", None),
            target_lang="en",
            signatures=self.signatures,
            decoding=decoding,
        )
        write_result(os.path.join(folder, "results", f"{self.test_name}.json"), result)

    @main_process_only
    def _log_curve(self, split, **metrics):
        self.curve.add(self.optimizer_step, split, **metrics)
        if getattr(self, "live", None) is not None:
            self.live.log(split, self.optimizer_step, metrics)

    @main_process_only
    def _end_valid(self, stage_stats, epoch):
        self.curve.add(self.optimizer_step, "valid", **stage_stats)
        self.curve.plot(
            os.path.join(self.hparams.output_folder, "learning_curve.png"),
            title=self.__class__.__name__,
        )
