"""``Stage1Brain``: the projector against the frozen LLM's embedding table only (paper Sec. 2.2,
eq. 1-2); validation and test decode with the nearest-embedding diagnostic.

Authors
-------
speechmapper developers, 2026
"""

import logging

import speechbrain as sb
import torch

from speechmapper_plugin.data.padding import BucketPaddedBatch
from speechmapper_plugin.models.objectives import Stage1Objective
from speechmapper_plugin.training.brain import _SpeechMapperBrain
from speechmapper_plugin.training.speed import DeferredSyncMixin, compile_objective

logger = logging.getLogger(__name__)


class Stage1Brain(DeferredSyncMixin, _SpeechMapperBrain):
    """Stage 1: projector vs. the frozen LLM embedding table (paper Sec. 2.2).

    Expected ``modules``: ``projector`` (``SpeechMapper``) and ``embeddings``
    (``embeddings.EmbeddingTable``). Expected hparams: ``loss`` (``SpeechMapperLoss``),
    ``lr_scheduler`` (``WarmupCosineScheduler``), ``output_folder``, ``log_interval``,
    ``train_logger``. Set ``brain.tokenizer`` (the LLM tokenizer) before ``fit``.

    A step (``models.objectives.Stage1Objective``): the target ids are built on the host from
    the CPU batch at the projector's output length, the features and ids are copied to the
    device (``non_blocking``: asynchronous from pinned memory), then projector, target
    gathering and eq. 2 run on the device without reading anything back. Speed levers
    (hparams, all off by default, see ``training.speed`` and ``docs/benchmarks.md``):
    ``pad_multiple`` (bucket padding of the training batches, ``data.padding``),
    ``compile_step`` / ``compile_step_mode`` (one compiled graph per step, CUDA graphs),
    ``deferred_sync``; with the bf16 autocast (``precision``), fused AdamW and pinned memory
    set in the YAML.
    """

    _objective = _compiled_objective = None

    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """Training batches padded to a multiple of ``pad_multiple`` frames when it is > 0."""
        multiple = int(getattr(self.hparams, "pad_multiple", 0) or 0)
        if stage == sb.Stage.TRAIN and multiple > 0:
            if loader_kwargs.get("collate_fn") is not None:
                raise ValueError(
                    f"pad_multiple={multiple} pads the training batches with its own collate_fn, "
                    f"but the loader already has one ({loader_kwargs['collate_fn']!r}): set "
                    "--pad_multiple=0 or drop the other collate_fn."
                )
            loader_kwargs["collate_fn"] = BucketPaddedBatch(multiple)
        return super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)

    def _objective_for(self, stage):
        if self._objective is None or self._objective.projector is not self.modules.projector:
            # (re)built when SpeechBrain has wrapped (DDP) or compiled the projector since
            self._objective = Stage1Objective(
                self.modules.projector, self.modules.embeddings, self.hparams.loss
            )
            self._compiled_objective = None
        if stage != sb.Stage.TRAIN or not getattr(self.hparams, "compile_step", False):
            return self._objective
        if self._compiled_objective is None:
            mode = getattr(self.hparams, "compile_step_mode", "reduce-overhead")
            self._compiled_objective = compile_objective(self._objective, mode=mode)
            logger.info("Stage-1 step compiled with torch.compile (mode %s).", mode)
            if not getattr(self.hparams, "pad_multiple", 0):
                logger.warning(
                    "compile_step without pad_multiple: every batch length is a new shape for "
                    "the compiled step (with CUDA graphs, a new graph each); set "
                    "--pad_multiple=64."
                )
        return self._compiled_objective

    def compute_forward(self, batch, stage):
        """Projector forward, targets and eq.-2 terms (``Stage1Objective``) on cached features."""
        feats, feat_lens = batch.feats
        tokens, _ = batch.tokens
        projector = self.modules.projector
        projector = getattr(projector, "module", projector)  # DDP-wrapped
        out_len = int(projector.output_lengths(torch.tensor([feats.shape[1]]))[0])
        target_ids = self.modules.embeddings.target_ids(
            tokens.cpu(), out_len, num_tokens=batch.num_tokens, utt_ids=batch.id
        )
        num_tokens = torch.as_tensor(batch.num_tokens)
        pin = (
            getattr(self.hparams, "pin_memory", False) and torch.device(self.device).type == "cuda"
        )

        def move(x):  # asynchronous from pinned memory (the loader pins the features)
            if pin and not x.is_pinned():
                x = x.pin_memory()
            return x.to(self.device, non_blocking=True)

        return self._objective_for(stage)(
            move(feats), move(feat_lens), move(target_ids), move(num_tokens)
        )

    def compute_objectives(self, predictions, batch, stage):
        """Eq. 2 against the embeddings of the target tokens padded with the pad embedding."""
        pred, pred_lens, parts = predictions
        parts = dict(parts)
        self.hparams.loss._count(parts.pop("truncated"), pred.shape[0])
        self._accumulate(parts, pred.shape[0])
        if stage != sb.Stage.TRAIN:
            hyps = self.modules.embeddings.decode(
                pred.detach().float(),
                pred_lens,
                self.tokenizer,
                metric=getattr(self.hparams, "nearest_metric", "l2"),
            )
            self._add_outputs(batch.id, hyps, batch.wrd)
        return parts["loss"]

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, checkpoint on validation WER, write test outputs."""
        if stage == sb.Stage.TRAIN:
            stage_loss = self.deferred_stage_loss(stage_loss)
        stage_loss = self._gather_stage(stage, stage_loss)
        stats = {"loss": stage_loss, **self._means(self.sums, self.count)}
        stats.pop("l_mse", None)
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        scored = self._score_outputs()
        stats.update({k: v for k, v in scored.items() if k in ("wer", "cer")})
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
                "SpeechMapper stage 1 (nearest-embedding)",
                {**stats, **scored},
                {
                    "method": "nearest-embedding (no LLM forward)",
                    "metric": getattr(self.hparams, "nearest_metric", "l2"),
                },
            )
            self.last_test_stats = stats
