"""``MultitaskBrain``: the IWSLT 2025 system's multitask stages, A (projector alone, frozen LLM)
and C (projector and LoRA adapters fused, speech batches interleaved with text batches).

Authors
-------
speechmapper developers, 2026
"""

from speechmapper_plugin.training.stage2 import Stage2Brain


class MultitaskBrain(Stage2Brain):
    """IWSLT25 stages A and C: multitask instruction tuning through the LLM with CE.

    Stage A trains the projector alone (frozen LLM). Stage C ("fusion") trains the projector
    and the LLM's LoRA adapters together, each with its own optimizer and learning rate, on
    speech batches (``datasets.load_stage2_dataset``) interleaved with text batches
    (``datasets.load_text_dataset``): a batch without ``feats`` is a text batch.

    Expected ``modules``: ``projector`` and ``llm`` (with adapters in stage C). Expected
    hparams: those of ``Stage2Brain`` (``loss`` with sigma = 0), plus ``lora_opt_class``
    when the LLM carries adapters.

    Under ``torchrun`` the modules are not wrapped in DDP: a text batch does not go through
    the projector, so DDP would leave the projector's gradients of a step that ends on a
    text batch unsynchronized. The gradients are averaged explicitly before each optimizer
    step instead (``steps.GlobalSteps.manual_gradient_sync``), which needs every process to
    run the same kind of batch at the same micro-step (``InterleavedBatchSampler``).
    """

    manual_gradient_sync = True

    def init_optimizers(self):
        """One optimizer for the projector, one for the LoRA adapters (if any)."""
        super().init_optimizers()
        if hasattr(self.llm.model, "peft_config"):
            from speechmapper_plugin.models.lora import lora_parameters

            self.lora_optimizer = self.hparams.lora_opt_class(lora_parameters(self.llm))
            self.optimizers_dict["lora_opt_class"] = self.lora_optimizer
            if self.checkpointer is not None:
                self.checkpointer.add_recoverable("lora_optimizer", self.lora_optimizer)

    def compute_forward(self, batch, stage):
        """Speech batches through the projector, text batches straight into the LLM."""
        if hasattr(batch, "feats"):
            return super().compute_forward(batch, stage)
        ce = self.modules.llm(None, None, list(batch.prompt), list(batch.target))["loss"]
        return None, None, ce

    def compute_objectives(self, predictions, batch, stage):
        """CE (eq. 3 with sigma = 0)."""
        if self.hparams.loss.sigma > 0:
            raise ValueError("The multitask stages train with CE only: set --sigma=0.")
        ce = predictions[2]
        parts = self.hparams.loss(ce)
        self._accumulate(parts, len(batch.id))
        return parts["loss"]
