"""Using a trained model (top layer).

- ``pretrained``: ``SpeechMapperLLM`` (a ``speechbrain.inference.Pretrained`` interface) and
  ``load_model``.
- ``export``: publishing a training folder as a self-contained model folder (template
  ``inference.yaml``, shipped as package data); ``weights``: its safetensors projector and
  LoRA adapter; ``model_card``: its ``README.md``; ``publish``: ``speechmapper push``.
- ``folders``: reading training and published folders (kind, best checkpoint, cache config).
- ``cli``: the ``speechmapper`` console command.
"""

from speechmapper_plugin.inference.export import export_model
from speechmapper_plugin.inference.pretrained import SpeechMapperLLM, load_model

__all__ = ["SpeechMapperLLM", "export_model", "load_model"]
