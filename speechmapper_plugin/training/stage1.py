"""``Stage1Brain``: the projector against the frozen LLM's embedding table only (paper Sec. 2.2,
eq. 1-2); validation and test decode with the nearest-embedding diagnostic.

Authors
-------
speechmapper developers, 2026
"""

import logging

import speechbrain as sb
import torch

from speechmapper_plugin.training.brain import _SpeechMapperBrain

logger = logging.getLogger(__name__)


class Stage1Brain(_SpeechMapperBrain):
    """Stage 1: projector vs. the frozen LLM embedding table (paper Sec. 2.2).

    Expected ``modules``: ``projector`` (``SpeechMapper``) and ``embeddings``
    (``embeddings.EmbeddingTable``). Expected hparams: ``loss`` (``SpeechMapperLoss``),
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
            self._add_outputs(batch.id, hyps, batch.wrd)
        return parts["loss"]

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, checkpoint on validation WER, write test outputs."""
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
