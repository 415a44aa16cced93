"""SpeechBrain ``Brain`` classes of the two SpeechMapper stages.

- ``Stage1Brain``: the projector against the frozen LLM's embedding table only (eq. 1-2);
  validation and test decode with the nearest-embedding diagnostic (no LLM forward).
- ``Stage2Brain``: the projector spliced into the frozen LLM's prompt, CE or CE+MSE (eq. 3),
  test sets decoded by batched greedy generation with the zero-shot ASR prompt.

Recipes instantiate them from their hparams; every dataset recipe uses these classes.

Authors
-------
speechmapper developers, 2026
"""

import logging
import os

import speechbrain as sb
import torch
from speechbrain.utils.distributed import main_process_only

from .curves import CurveLog
from .files import atomic_write_text, write_json
from .metrics import error_rates

__all__ = ["Stage1Brain", "Stage2Brain"]

logger = logging.getLogger(__name__)


class _SpeechMapperBrain(sb.Brain):
    """What both stages share: projector-only optimizer, running loss components, the
    learning-curve log, decoded-output files and result JSONs."""

    #: Name of the split being evaluated; recipes set it before ``evaluate`` (files are
    #: named after it).
    test_name = "test"

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
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if scheduler is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = scheduler.lr_at(scheduler.n_steps)

    def on_stage_start(self, stage, epoch=None):
        """Reset the running sums of loss components and the decoded outputs."""
        self.sums, self.count = {}, 0
        self.interval_sums, self.interval_count = {}, 0
        self.outputs = []
        loss = getattr(self.hparams, "loss", None)
        if loss is not None:  # truncation counts are reported per stage
            loss.truncated = loss.seen = 0

    def _accumulate(self, parts, batch_size):
        for key, value in parts.items():
            if torch.is_tensor(value) and value.dim() == 0:
                v = float(value.detach())
                self.sums[key] = self.sums.get(key, 0.0) + v * batch_size
                self.interval_sums[key] = self.interval_sums.get(key, 0.0) + v * batch_size
        self.count += batch_size
        self.interval_count += batch_size

    def _means(self, sums, count):
        return {k: v / max(count, 1) for k, v in sums.items()}

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Advance the LR schedule and log the training curve every ``log_interval`` steps."""
        if not should_step:
            return
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if scheduler is not None:
            scheduler(self.optimizer)
        interval = getattr(self.hparams, "log_interval", 50)
        if self.optimizer_step % interval == 0 and self.interval_count:
            means = self._means(self.interval_sums, self.interval_count)
            means["lr"] = self.optimizer.param_groups[0]["lr"]
            self._log_curve("train", **means)
            self.interval_sums, self.interval_count = {}, 0

    def _score_outputs(self):
        hyps = [h for _, h, _ in self.outputs]
        refs = [r for _, _, r in self.outputs]
        return error_rates(hyps, refs)

    @main_process_only
    def _write_outputs(self, kind, result):
        """Decoded outputs (TSV) and ``result`` (JSON) of the split ``self.test_name``."""
        folder = self.hparams.output_folder
        lines = ["ID\thypothesis\treference"]
        lines += [f"{i}\t{h}\t{r}" for i, h, r in self.outputs]
        atomic_write_text(
            os.path.join(folder, "decode", f"{self.test_name}.{kind}.tsv"), "\n".join(lines) + "\n"
        )
        write_json(os.path.join(folder, "results", f"{self.test_name}.json"), result)

    @main_process_only
    def _log_curve(self, split, **metrics):
        self.curve.add(self.optimizer_step, split, **metrics)

    @main_process_only
    def _end_valid(self, stage_stats, epoch):
        self.curve.add(self.optimizer_step, "valid", **stage_stats)
        self.curve.plot(
            os.path.join(self.hparams.output_folder, "learning_curve.png"),
            title=self.__class__.__name__,
        )


class Stage1Brain(_SpeechMapperBrain):
    """Stage 1: projector vs. the frozen LLM embedding table (paper Sec. 2.2).

    Expected ``modules``: ``projector`` (``SpeechMapper``) and ``embeddings``
    (``llm.EmbeddingTable``). Expected hparams: ``loss`` (``SpeechMapperLoss``),
    ``lr_scheduler`` (``WarmupCosineScheduler``), ``output_folder``, ``log_interval``,
    ``train_logger``. Set ``brain.tokenizer`` (the LLM tokenizer) before ``fit``.
    """

    def compute_forward(self, batch, stage):
        """Projector forward on cached features."""
        batch = batch.to(self.device)
        feats, feat_lens = batch.feats
        return self.modules.projector(feats, feat_lens)

    def compute_objectives(self, predictions, batch, stage):
        """Eq. 2 against the embeddings of the target tokens padded with the pad embedding."""
        pred, pred_lens = predictions
        tokens, _ = batch.tokens
        num_tokens = torch.as_tensor(batch.num_tokens, device=pred.device)
        target = self.modules.embeddings.targets(
            tokens, pred.shape[1], num_tokens=num_tokens, utt_ids=batch.id
        )
        parts = self.hparams.loss(pred, target, num_tokens, pred_lens)
        self._accumulate(parts, pred.shape[0])
        if stage != sb.Stage.TRAIN:
            hyps = self.modules.embeddings.decode(
                pred.detach().float(),
                pred_lens,
                self.tokenizer,
                metric=getattr(self.hparams, "nearest_metric", "l2"),
            )
            self.outputs.extend(zip(batch.id, hyps, batch.wrd))
        return parts["loss"]

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, checkpoint on validation WER, write test outputs."""
        stats = {"loss": stage_loss, **self._means(self.sums, self.count)}
        stats.pop("l_mse", None)
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        stats.update({k: v for k, v in self._score_outputs().items() if k in ("wer", "cer")})
        stats["truncated_targets"] = self.hparams.loss.truncated
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr, "steps": self.optimizer_step},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self._end_valid({k: stats[k] for k in ("loss", "wer")}, epoch)
            self.checkpointer.save_and_keep_only(
                meta={"WER": stats["wer"], "loss": stage_loss, "epoch": epoch},
                min_keys=["WER"],
                num_to_keep=getattr(self.hparams, "num_checkpoints_to_keep", 2),
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"split": self.test_name, "decoding": "nearest-embedding"},
                test_stats=stats,
            )
            self._write_outputs(
                "nearest",
                {
                    "system": "SpeechMapper stage 1",
                    "decoding": "nearest-embedding (no LLM forward), "
                    f"{getattr(self.hparams, 'nearest_metric', 'l2')} metric",
                    "split": self.test_name,
                    **stats,
                    "num_utterances": len(self.outputs),
                },
            )
            self.last_test_stats = stats


class Stage2Brain(_SpeechMapperBrain):
    """Stage 2: IT adaptation on the frozen LLM (paper Sec. 2.3), CE (sigma=0) or CE+MSE.

    Expected ``modules``: ``projector`` and ``llm`` (``llm.FrozenLLM``). Expected hparams:
    ``loss`` (``Stage2Loss``), ``train_prompt`` (IT template), ``test_prompt`` (zero-shot ASR
    prompt), ``max_new_tokens``, ``valid_decode_max`` (utterances decoded at validation, 0 to
    skip), ``output_folder``, ``log_interval``, ``train_logger``.
    """

    table = None

    def compute_forward(self, batch, stage):
        """Projector forward, then CE through the frozen LLM on the instruction prompt."""
        batch = batch.to(self.device)
        feats, feat_lens = batch.feats
        pred, pred_lens = self.modules.projector(feats, feat_lens)
        prompts = [self.hparams.train_prompt] * pred.shape[0]
        ce = self.modules.llm(pred, pred_lens, prompts, list(batch.wrd))["loss"]
        return pred, pred_lens, ce

    def compute_objectives(self, predictions, batch, stage):
        """Eq. 3; at validation/test also greedy-decode with the zero-shot prompt."""
        pred, pred_lens, ce = predictions
        if self.hparams.loss.sigma > 0:
            tokens, _ = batch.tokens
            num_tokens = torch.as_tensor(batch.num_tokens, device=pred.device)
            if self.table is None:  # shares the LLM's (on-device) embedding weight
                self.table = self.modules.llm.embedding_table()
            target = self.table.targets(
                tokens, pred.shape[1], num_tokens=num_tokens, utt_ids=batch.id
            )
            parts = self.hparams.loss(ce, pred, target, num_tokens, pred_lens)
        else:
            parts = self.hparams.loss(ce)
        self._accumulate(parts, pred.shape[0])
        if stage == sb.Stage.TEST or (
            stage == sb.Stage.VALID and len(self.outputs) < self.hparams.valid_decode_max
        ):
            hyps = self.modules.llm.generate(
                pred.detach(),
                pred_lens,
                [self.hparams.test_prompt] * pred.shape[0],
                max_new_tokens=self.hparams.max_new_tokens,
            )
            self.outputs.extend(zip(batch.id, hyps, batch.wrd))
        return parts["loss"]

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, checkpoint (lowest validation loss), write test outputs and WER/CER."""
        stats = {"loss": stage_loss, **self._means(self.sums, self.count)}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if self.outputs:
            stats.update({k: v for k, v in self._score_outputs().items() if k in ("wer", "cer")})
        if self.hparams.loss.sigma > 0:
            stats["truncated_targets"] = self.hparams.loss.truncated
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr, "steps": self.optimizer_step},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self._end_valid({k: v for k, v in stats.items() if k in ("loss", "ce", "wer")}, epoch)
            self.checkpointer.save_and_keep_only(
                meta={"loss": stage_loss, "epoch": epoch},
                min_keys=["loss"],
                num_to_keep=getattr(self.hparams, "num_checkpoints_to_keep", 2),
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"split": self.test_name, "decoding": "greedy, zero-shot ASR prompt"},
                test_stats=stats,
            )
            self._write_outputs(
                "greedy",
                {
                    "system": f"SpeechMapper stage 2 (sigma={self.hparams.loss.sigma})",
                    "sigma": self.hparams.loss.sigma,
                    "decoding": f"greedy, max_new_tokens={self.hparams.max_new_tokens}",
                    "prompt": self.hparams.test_prompt,
                    "split": self.test_name,
                    **stats,
                    "num_utterances": len(self.outputs),
                },
            )
            self.last_test_stats = stats
