"""Training (upper layer: imports the core and ``evaluation``).

- One Brain per stage: ``stage1.Stage1Brain`` (eq. 1-2), ``stage2.Stage2Brain`` (eq. 3),
  ``multitask.MultitaskBrain`` (IWSLT 2025 stages A and C), ``text_lora.TextLoRABrain``
  (IWSLT 2025 stage B); ``brain`` holds what they share.
- ``schedulers``: warm-up + cosine learning rate per optimizer step; ``curves``: the
  learning-curve log and plot; ``loggers``: live curves (SpeechBrain's TensorBoard and W&B
  loggers).
- ``steps``: the same schedule on 1 and N processes (global step budgets and batches) and
  exact resumes; ``checkpoints``: checkpoints complete or absent, and the random state.
- ``experiment`` and ``recipe``: the steps every dataset recipe runs, written once.
"""

from speechmapper_plugin.training.multitask import MultitaskBrain
from speechmapper_plugin.training.schedulers import WarmupCosineScheduler
from speechmapper_plugin.training.stage1 import Stage1Brain
from speechmapper_plugin.training.stage2 import Stage2Brain
from speechmapper_plugin.training.text_lora import TextLoRABrain

__all__ = [
    "MultitaskBrain",
    "Stage1Brain",
    "Stage2Brain",
    "TextLoRABrain",
    "WarmupCosineScheduler",
]
