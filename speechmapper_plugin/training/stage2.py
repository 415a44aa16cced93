"""``Stage2Brain``: the projector spliced into the frozen LLM's prompt, trained with CE or
CE+MSE (paper Sec. 2.3, eq. 3), task-agnostic (ASR) or task-specific (ST, SQA); test sets
decoded by greedy generation with the zero-shot prompt.

Authors
-------
speechmapper developers, 2026
"""

import logging

import speechbrain as sb
import torch

from speechmapper_plugin.evaluation.decoding import is_stuck
from speechmapper_plugin.training.brain import _SpeechMapperBrain

logger = logging.getLogger(__name__)


class Stage2Brain(_SpeechMapperBrain):
    """Stage 2: IT adaptation on the frozen LLM (paper Sec. 2.3), CE (sigma=0) or CE+MSE.

    Trains on ASR data (one IT prompt, transcript targets: task-agnostic stage 2) or on
    task data whose batches carry their own ``prompt`` and ``target`` (task-specific ST / SQA
    stage 2, ``datasets.load_stage2_dataset``); the MSE term always targets the transcript.

    Expected ``modules``: ``projector`` and ``llm`` (``frozen_llm.FrozenLLM``). Expected hparams:
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
        if hasattr(batch, "prompt"):  # task-specific / multitask data (data.load_stage2_dataset)
            prompts, targets = list(batch.prompt), list(batch.target)
        else:  # ASR data: one IT prompt, the transcript as target
            prompts, targets = [self.hparams.train_prompt] * pred.shape[0], list(batch.wrd)
        ce = self.modules.llm(pred, pred_lens, prompts, targets)["loss"]
        return pred, pred_lens, ce

    def compute_objectives(self, predictions, batch, stage):
        """Eq. 3; at validation/test also greedy-decode with the zero-shot prompt."""
        pred, pred_lens, ce = predictions
        if self.hparams.loss.sigma > 0:
            tokens, _ = batch.tokens
            num_tokens = torch.as_tensor(batch.num_tokens, device=pred.device)
            if self.table is None:  # shares the LLM's (on-device) embedding weight
                self.table = self.llm.embedding_table()
            target = self.table.targets(
                tokens, pred.shape[1], num_tokens=num_tokens, utt_ids=batch.id
            )
            parts = self.hparams.loss(ce, pred, target, num_tokens, pred_lens)
        else:
            parts = self.hparams.loss(ce)
        self._accumulate(parts, pred.shape[0])
        if stage == sb.Stage.TEST or (  # valid: the first valid_decode_max in 1-process order
            stage == sb.Stage.VALID
            and self.eval_position(batch.id[0], len(self.outputs)) < self.hparams.valid_decode_max
        ):
            ids = self.llm.generate_ids(
                pred.detach(),
                pred_lens,
                [self.hparams.test_prompt] * pred.shape[0],
                max_new_tokens=self.hparams.max_new_tokens,
            )
            stuck = [is_stuck(row, self.hparams.max_new_tokens) for row in ids]
            self._add_outputs(batch.id, self.llm.decode_ids(ids), batch.wrd, stuck)
        return parts["loss"]

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, checkpoint (lowest validation loss), write test outputs and WER/CER."""
        stage_loss = self._gather_stage(stage, stage_loss)
        stats = {"loss": stage_loss, **self._means(self.sums, self.count)}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if self.outputs and stage == sb.Stage.VALID:
            stats.update({k: v for k, v in self._score_outputs().items() if k in ("wer", "cer")})
        elif self.outputs:
            stats.update(self._score_outputs())
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
            sigma = self.hparams.loss.sigma
            objective = "ASR CE+MSE" if sigma > 0 else "ASR CE"
            self._write_outputs(
                "greedy",
                f"SpeechMapper stage 2 [{objective}]",
                {**stats, "sigma": sigma},
                {
                    "method": "greedy",
                    "max_new_tokens": self.hparams.max_new_tokens,
                    "prompt": self.hparams.test_prompt,
                },
                setting="zero-shot",
            )
            self.last_test_stats = stats
