"""SpeechMapper losses: the pad-aware MSE (eq. 1), the stage-1 loss (eq. 2) and the
stage-2 loss (eq. 3) of the paper.

    L_MSE    = alpha * MSE_word + (10 - alpha) * MSE_pad        (1)
    L_stage1 = L_MSE - gamma * L_cosine                         (2)
    L_stage2 = (1 - sigma) * L_CE + sigma * L_MSE               (3)

``MSE_word`` covers the real target tokens *and the first pad position*; ``MSE_pad`` covers the
remaining valid (non-padding) output positions. Both tensors are multiplied by ``scale`` (1000,
App. A.3: the LLMs tolerate embedding errors up to ~1e-3, so the MSE target becomes single-digit)
before the squared error. Means are pooled over all selected positions of the batch and over
all dimensions.

Authors
-------
speechmapper developers, 2026
"""

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)


def _position_masks(num_tokens, lengths, T, device):
    """Word / pad / valid position masks [B, T] from token counts and relative lengths."""
    valid_len = torch.round(lengths.to(device).float() * T).long().clamp(0, T)
    num_tokens = num_tokens.to(device).long()
    pos = torch.arange(T, device=device).unsqueeze(0)
    valid = pos < valid_len.unsqueeze(1)
    word = (pos <= num_tokens.unsqueeze(1)) & valid  # real tokens + the first pad
    pad = valid & ~word
    return word, pad, valid, valid_len


def _zero_padding(x, valid):
    """``x`` in float32 with padded positions set to 0, so that whatever the padding holds
    (even inf/NaN) reaches neither the loss nor the gradients."""
    return torch.where(valid.unsqueeze(-1), x.float(), 0.0)


def _masked_mean(sq_err, mask):
    """Mean of ``sq_err`` [B, T, D] over the positions in ``mask`` [B, T] and all dims (0 for
    an empty mask). Computed on the device without reading the count back to the host, so
    that a training step never waits for the GPU here (and ``torch.compile`` sees one graph)."""
    count = mask.sum() * sq_err.shape[-1]
    return torch.where(mask.unsqueeze(-1), sq_err, 0.0).sum() / count.clamp(min=1)


def pad_aware_mse(pred, target, num_tokens, lengths, alpha=5.0, scale=1000.0):
    """Pad-aware MSE of eq. 1.

    Arguments
    ---------
    pred : torch.Tensor
        Projector output [B, T, D].
    target : torch.Tensor
        LLM embeddings of the target tokens followed by the pad embedding up to T, [B, T, D].
    num_tokens : torch.Tensor
        Number of real target tokens per utterance [B].
    lengths : torch.Tensor
        Relative valid lengths of ``pred`` [B] (absolute = round(lengths * T)).
    alpha : float
        Word-to-pad weighting in [1, 9].
    scale : float
        Both tensors are multiplied by it before the squared error.

    Returns
    -------
    dict
        ``l_mse``, ``mse_word``, ``mse_pad`` (scalars) and ``truncated`` (0-dim long tensor:
        the number of utterances whose target has more tokens than valid output positions;
        left on the device, like every value here).

    Example
    -------
    >>> pred, target = torch.zeros(1, 4, 2), torch.ones(1, 4, 2) / 1000
    >>> out = pad_aware_mse(pred, target, torch.tensor([1]), torch.tensor([1.0]))
    >>> out["mse_word"].item(), out["mse_pad"].item(), out["l_mse"].item()
    (1.0, 1.0, 10.0)
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pad_aware_mse: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ; "
            "the target must be padded (or truncated) to the projector's output length."
        )
    if not 0 <= alpha <= 10:
        raise ValueError(f"pad_aware_mse: alpha={alpha} must lie in [0, 10] (paper: 1-9).")
    B, T, _ = pred.shape
    word, pad, valid, valid_len = _position_masks(num_tokens, lengths, T, pred.device)
    pred, target = _zero_padding(pred, valid), _zero_padding(target, valid)
    sq_err = (pred * scale - target * scale) ** 2
    mse_word = _masked_mean(sq_err, word)
    mse_pad = _masked_mean(sq_err, pad)
    truncated = (num_tokens.to(valid_len.device) > valid_len).sum()
    return {
        "l_mse": alpha * mse_word + (10.0 - alpha) * mse_pad,
        "mse_word": mse_word,
        "mse_pad": mse_pad,
        "truncated": truncated,
    }


class _TruncationCounter(nn.Module):
    """Counts targets with more tokens than valid projector outputs (their extra tokens fall
    outside the loss). ``embeddings.EmbeddingTable.targets`` logs each truncation at build time;
    the Brains report this count with every validation.

    The per-batch counts are added up on the device: reading ``truncated`` is the only point
    where the host waits for them (the Brains read it once per validation)."""

    def __init__(self):
        super().__init__()
        self._truncated = 0
        self.seen = 0

    @property
    def truncated(self):
        """Targets truncated since the last reset (an int; reading it synchronizes once)."""
        if torch.is_tensor(self._truncated):
            self._truncated = int(self._truncated)
        return self._truncated

    @truncated.setter
    def truncated(self, value):
        self._truncated = value

    def _count(self, truncated, batch_size):
        """Adds a batch's count (int or device tensor, see :func:`pad_aware_mse`)."""
        self.seen += batch_size
        self._truncated = self._truncated + truncated


class SpeechMapperLoss(_TruncationCounter):
    """Stage-1 loss (eq. 2): ``L_MSE - gamma * cosine``.

    Arguments
    ---------
    alpha : float
        Word-to-pad weighting of eq. 1 (paper: 5).
    gamma : float
        Weight of the cosine similarity (paper: 100).
    scale : float
        Embedding scaling before the squared error (paper: 1000).

    Example
    -------
    >>> loss = SpeechMapperLoss()
    >>> target = torch.randn(2, 6, 8) / 100
    >>> out = loss(target.clone(), target, torch.tensor([3, 2]), torch.tensor([1.0, 0.5]))
    >>> round(out["loss"].item(), 3), round(out["cosine"].item(), 3)
    (-100.0, 1.0)
    """

    def __init__(self, alpha=5.0, gamma=100.0, scale=1000.0):
        super().__init__()
        if not 0 <= alpha <= 10:
            raise ValueError(f"SpeechMapperLoss: alpha={alpha} must lie in [0, 10] (paper: 1-9).")
        self.alpha, self.gamma, self.scale = alpha, gamma, scale

    def forward(self, pred, target, num_tokens, lengths):
        """Compute eq. 2; returns a dict with ``loss``, ``l_mse``, ``mse_word``, ``mse_pad``,
        ``cosine`` (all scalars)."""
        out = self.compute(pred, target, num_tokens, lengths)
        self._count(out.pop("truncated"), pred.shape[0])
        return out

    def compute(self, pred, target, num_tokens, lengths):
        """Eq. 2 as a pure function of its inputs (nothing counted, no host synchronization,
        traceable by ``torch.compile`` in one graph): :meth:`forward`'s dict plus
        ``truncated`` (0-dim tensor), which the caller passes to ``_count``."""
        out = pad_aware_mse(pred, target, num_tokens, lengths, self.alpha, self.scale)
        _, _, valid, _ = _position_masks(num_tokens, lengths, pred.shape[1], pred.device)
        cos = nn.functional.cosine_similarity(
            _zero_padding(pred, valid), _zero_padding(target, valid), dim=-1
        )
        out["cosine"] = torch.where(valid, cos, 0.0).sum() / valid.sum().clamp(min=1)
        out["loss"] = out["l_mse"] - self.gamma * out["cosine"]
        return out


class Stage2Loss(_TruncationCounter):
    """Stage-2 loss (eq. 3): ``(1 - sigma) * CE + sigma * L_MSE`` (no cosine).

    ``sigma = 0`` is plain CE instruction tuning; the paper's task-agnostic models use 0.9.

    Arguments
    ---------
    sigma : float
        Weight of the MSE term in [0, 1].
    alpha : float
        Word-to-pad weighting of eq. 1.
    scale : float
        Embedding scaling before the squared error.

    Example
    -------
    >>> loss = Stage2Loss(sigma=0.5)
    >>> target = torch.zeros(1, 3, 4)
    >>> out = loss(torch.tensor(2.0), target + 0.001, target, torch.tensor([1]), torch.tensor([1.0]))
    >>> round(out["loss"].item(), 4), round(out["mse"].item(), 4)
    (6.0, 10.0)
    """

    def __init__(self, sigma=0.9, alpha=5.0, scale=1000.0):
        super().__init__()
        if not 0 <= sigma <= 1:
            raise ValueError(f"Stage2Loss: sigma={sigma} must lie in [0, 1].")
        if not 0 <= alpha <= 10:
            raise ValueError(f"Stage2Loss: alpha={alpha} must lie in [0, 10] (paper: 1-9).")
        self.sigma, self.alpha, self.scale = sigma, alpha, scale

    def forward(self, ce, pred=None, target=None, num_tokens=None, lengths=None):
        """Compute eq. 3; returns a dict with ``loss``, ``ce``, ``mse`` (and ``mse_word``,
        ``mse_pad`` when the MSE is computed). With ``sigma == 0`` the MSE inputs may be None."""
        if self.sigma == 0 and pred is None:
            zero = ce.new_zeros(())
            return {"loss": ce, "ce": ce, "mse": zero}
        if pred is None or target is None or num_tokens is None or lengths is None:
            raise ValueError("Stage2Loss: sigma > 0 needs pred, target, num_tokens and lengths.")
        out = pad_aware_mse(pred, target, num_tokens, lengths, self.alpha, self.scale)
        self._count(out.pop("truncated"), pred.shape[0])
        out["mse"] = out.pop("l_mse")
        out["ce"] = ce
        out["loss"] = (1.0 - self.sigma) * ce + self.sigma * out["mse"]
        return out
