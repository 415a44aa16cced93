"""``TextLoRABrain``: the IWSLT 2025 system's stage B, LoRA adapters of the LLM trained on text
instruction data (MT and QA) with CE; the base weights stay frozen.

Authors
-------
speechmapper developers, 2026
"""

import logging

import speechbrain as sb

from speechmapper_plugin.training.brain import _SpeechMapperBrain

logger = logging.getLogger(__name__)


class TextLoRABrain(_SpeechMapperBrain):
    """IWSLT25 stage B: LoRA adapters on the LLM trained on text instruction data (MT and
    QA, ``datasets.load_text_dataset``), CE on the targets; the base weights stay frozen.

    Expected ``modules``: ``llm`` (``frozen_llm.FrozenLLM`` carrying adapters, ``lora.attach_lora``).
    Expected hparams: ``output_folder``, ``log_interval``, ``train_logger``; the checkpointer
    holds a ``lora.LoraCheckpoint`` (adapter weights only).
    """

    def init_optimizers(self):
        """Optimize the LoRA parameters only."""
        from speechmapper_plugin.models.lora import lora_parameters

        self.optimizer = self.opt_class(lora_parameters(self.llm))
        self.optimizers_dict = {"opt_class": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    def compute_forward(self, batch, stage):
        """CE of the targets given the text prompts."""
        return self.modules.llm(None, None, list(batch.prompt), list(batch.target))["loss"]

    def compute_objectives(self, predictions, batch, stage):
        """The CE (logged as ``ce``)."""
        self._accumulate({"ce": predictions.detach()}, len(batch.id))
        return predictions

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, and checkpoint on the lowest validation loss."""
        stage_loss = self._gather_stage(stage, stage_loss)
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "steps": self.optimizer_step},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self._end_valid(stats, epoch)
            self.checkpointer.save_and_keep_only(
                meta={"loss": stage_loss, "epoch": epoch},
                min_keys=["loss"],
                num_to_keep=getattr(self.hparams, "num_checkpoints_to_keep", 2),
            )
