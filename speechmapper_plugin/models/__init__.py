"""The trainable and frozen networks (core layer: imports only ``utils``).

- ``speechmapper``: the SpeechMapper projector (paper App. A.1); ``transformer_projector``:
  the IWSLT 2025 projector; ``projectors``: build by type, width check, checkpoint loading.
- ``losses``: the stage-1 loss (pad-aware MSE + cosine, eq. 1-2), the stage-2 loss (eq. 3).
- The frozen LLM in its parts: ``hub`` (hub id or folder), ``embeddings`` (the input-embedding
  table alone: stage-1 targets and nearest-embedding read-out), ``tokens`` (tokenizer, pad and
  end-of-turn tokens), ``frozen_llm`` (prompt splicing and CE), ``generation`` (greedy decoding).
- ``lora``: LoRA adapters of the LLM (IWSLT 2025 stages B and C).
"""

from speechmapper_plugin.models.embeddings import EmbeddingTable, load_input_embeddings
from speechmapper_plugin.models.frozen_llm import FrozenLLM
from speechmapper_plugin.models.losses import SpeechMapperLoss, Stage2Loss, pad_aware_mse
from speechmapper_plugin.models.projectors import build_projector, load_projector_checkpoint
from speechmapper_plugin.models.speechmapper import SpeechMapper
from speechmapper_plugin.models.transformer_projector import TransformerProjector

__all__ = [
    "EmbeddingTable",
    "FrozenLLM",
    "SpeechMapper",
    "SpeechMapperLoss",
    "Stage2Loss",
    "TransformerProjector",
    "build_projector",
    "load_input_embeddings",
    "load_projector_checkpoint",
    "pad_aware_mse",
]
