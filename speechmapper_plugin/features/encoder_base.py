"""What the frozen speech encoders share: a module that stays in eval mode and a check of the
1-based layer index against the model's depth.

Authors
-------
speechmapper developers, 2026
"""

import operator

import torch


def _check_layer(layer, num_layers, source):
    """Returns ``layer`` as an int if it is a valid 1-based layer index, else ValueError."""
    try:
        index = operator.index(layer) if not isinstance(layer, bool) else None
    except TypeError:
        index = None
    if index is None or not 1 <= index <= num_layers:
        raise ValueError(
            f"layer={layer!r} is out of range for model {source!r}, which has {num_layers} "
            f"layers: valid layers are 1..{num_layers} (1-based; {num_layers} = last layer)."
        )
    return index


class _FrozenEncoder(torch.nn.Module):
    """Common behaviour of the pretrained encoders: always in eval mode, no gradients."""

    def train(self, mode=True):
        """Keeps the frozen encoder in eval mode (dropout / LayerDrop off) whatever ``mode``."""
        return super().train(False)
