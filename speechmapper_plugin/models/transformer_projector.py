"""The IWSLT 2025 system's projector: a 4-layer Transformer encoder on features averaged every
3 frames, then a linear map into the LLM's embedding width (``TransformerProjector``).

Authors
-------
speechmapper developers, 2026
"""

import torch
from torch import nn

from speechmapper_plugin.models.speechmapper import _SinusoidalPositions, lengths_to_padding_mask


class TransformerProjector(nn.Module):
    """The speech projector of the IWSLT25 instruction-following system (stage A): a linear
    input layer, a stack of Transformer encoder layers and a linear output layer to the LLM
    width, applied to SFM features already averaged every 3 frames (no convolution: the
    length is unchanged).

    Arguments
    ---------
    input_dim : int
        SFM feature size (1024 for SeamlessM4T-v2-large).
    llm_dim : int
        LLM embedding size (4096 for Llama-3.1-8B).
    d_model : int
        Transformer width.
    num_layers : int
        Transformer layers (4 in the IWSLT25 system).
    nhead : int
        Attention heads.
    d_ffn : int
        Feed-forward size.
    dropout : float
        Dropout.

    Example
    -------
    >>> proj = TransformerProjector(16, 32, d_model=8, num_layers=2, nhead=2, d_ffn=16)
    >>> out, lens = proj(torch.randn(3, 7, 16), torch.tensor([1.0, 0.5, 0.25]))
    >>> out.shape, lens.tolist()
    (torch.Size([3, 7, 32]), [1.0, 0.5, 0.25])
    """

    def __init__(
        self, input_dim, llm_dim, d_model=1024, num_layers=4, nhead=16, d_ffn=4096, dropout=0.1
    ):
        super().__init__()
        self.input_dim = input_dim
        self.llm_dim = llm_dim
        self.input = nn.Linear(input_dim, d_model)
        self.positions = _SinusoidalPositions(d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, d_ffn, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.output = nn.Linear(d_model, llm_dim)

    def forward(self, feats, lengths=None):
        """Map features [B, T, input_dim] to LLM-space vectors [B, T, llm_dim]; relative
        ``lengths`` are returned unchanged."""
        if feats.shape[-1] != self.input_dim:
            raise ValueError(
                f"TransformerProjector expects {self.input_dim}-dim features, got "
                f"{feats.shape[-1]}: check feature_dim against the feature cache."
            )
        batch, time = feats.shape[:2]
        if lengths is None:
            lengths = torch.ones(batch, device=feats.device)
        abs_lens = torch.round(lengths * time).long().clamp(min=1)
        pad_mask = lengths_to_padding_mask(abs_lens, time)
        x = self.positions(self.input(feats))
        x = self.norm(self.encoder(x, src_key_padding_mask=pad_mask))
        return self.output(x), lengths
