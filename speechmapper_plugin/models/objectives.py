"""The stage-1 training objective as one module: projector forward, target embeddings gathered
from the frozen table, and the eq.-2 loss (``Stage1Objective``).

Everything it does stays on the device and depends only on tensor shapes, never on tensor
values read back by the host: one call is one graph for ``torch.compile`` (and, with
``mode="reduce-overhead"``, one CUDA graph per padded batch shape). The host prepares its
inputs from the CPU batch (``EmbeddingTable.target_ids``, ``SpeechMapper.output_lengths``).

Authors
-------
speechmapper developers, 2026
"""

from torch import nn


class Stage1Objective(nn.Module):
    """Projector -> target embeddings -> eq. 2, as ``Stage1Brain`` and the benchmark run it.

    Arguments
    ---------
    projector : torch.nn.Module
        Maps features [B, T, F] and relative lengths [B] to vectors [B, T', D] and relative
        lengths (``SpeechMapper``; possibly wrapped in DDP).
    table : speechmapper_plugin.models.embeddings.EmbeddingTable
        The frozen embedding table (gathers float32 rows).
    loss : speechmapper_plugin.models.losses.SpeechMapperLoss
        Eq. 2 (its pure ``compute`` is called; counting is left to the caller).

    Example
    -------
    >>> import torch
    >>> from speechmapper_plugin.models.embeddings import EmbeddingTable
    >>> from speechmapper_plugin.models.losses import SpeechMapperLoss
    >>> from speechmapper_plugin.models.speechmapper import SpeechMapper
    >>> proj = SpeechMapper(input_dim=8, block_dims=[16], output_dims=[16], num_layers=1, nhead=2)
    >>> table = EmbeddingTable(torch.randn(10, 16), pad_id=9)
    >>> objective = Stage1Objective(proj, table, SpeechMapperLoss())
    >>> ids = table.target_ids([[1, 2], [3]], 5)
    >>> pred, lens, parts = objective(torch.randn(2, 10, 8), torch.ones(2), ids, torch.tensor([2, 1]))
    >>> pred.shape, sorted(parts)
    (torch.Size([2, 5, 16]), ['cosine', 'l_mse', 'loss', 'mse_pad', 'mse_word', 'truncated'])
    """

    def __init__(self, projector, table, loss):
        super().__init__()
        self.projector = projector
        self.table = table
        self.loss = loss

    def forward(self, feats, lengths, target_ids, num_tokens):
        """One forward pass and the loss terms.

        Arguments
        ---------
        feats : torch.Tensor
            [B, T, F] features (on the device).
        lengths : torch.Tensor
            [B] relative lengths.
        target_ids : torch.Tensor
            [B, T'] target ids, pad id after the tokens (``EmbeddingTable.target_ids`` at the
            projector's output length T').
        num_tokens : torch.Tensor
            [B] numbers of target tokens.

        Returns
        -------
        pred : torch.Tensor
            [B, T', D] projector outputs.
        pred_lens : torch.Tensor
            [B] their relative lengths.
        parts : dict
            ``SpeechMapperLoss.compute``'s terms (``loss``, ``l_mse``, ``mse_word``,
            ``mse_pad``, ``cosine``, ``truncated``), all 0-dim tensors on the device.
        """
        pred, pred_lens = self.projector(feats, lengths)
        if pred.shape[:2] != target_ids.shape:
            raise ValueError(
                f"The projector returned {tuple(pred.shape[:2])} (batch, vectors) but the "
                f"targets were built for {tuple(target_ids.shape)}: its output_lengths() "
                "disagrees with its forward."
            )
        target = self.table(target_ids)
        return pred, pred_lens, self.loss.compute(pred, target, num_tokens, pred_lens)
