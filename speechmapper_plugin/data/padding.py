"""Bucket padding of training batches: each batch's time axis is padded up to a multiple of a
fixed number of frames, so that the shapes a training step sees come from a small set.

``torch.compile`` then compiles a few graphs instead of one per batch length, and CUDA
graphs (``mode="reduce-overhead"``) are recorded once per shape and replayed. Padding never
changes which utterances form a batch (the sampler decides that, e.g. SpeechBrain's
``DynamicBatchSampler`` by seconds of audio), nor the loss: the relative lengths are
rescaled to the padded length, and the projector and the losses ignore padded frames.

Authors
-------
speechmapper developers, 2026
"""

import math

import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.data_utils import batch_pad_right, pad_right_to


def bucket_length(length, multiple):
    """``length`` rounded up to a multiple of ``multiple`` (unchanged when ``multiple`` <= 0).

    Arguments
    ---------
    length : int
        The longest item of a batch.
    multiple : int
        The bucket step in frames.

    Returns
    -------
    int
        The padded length.

    Example
    -------
    >>> bucket_length(300, 64), bucket_length(320, 64), bucket_length(300, 0)
    (320, 320, 300)
    """
    multiple = int(multiple)
    if multiple <= 0:
        return int(length)
    return max(1, math.ceil(int(length) / multiple)) * multiple


def pad_right_to_bucket(tensors, multiple=0, mode="constant", value=0):
    """``speechbrain.utils.data_utils.batch_pad_right`` with the first axis padded up to a
    multiple of ``multiple`` (a ``PaddedBatch`` ``padding_func``).

    Arguments
    ---------
    tensors : list of torch.Tensor
        Items with equal shapes except the first axis.
    multiple : int
        Bucket step of the first axis (0: pad to the longest item, as SpeechBrain does).
    mode, value
        ``torch.nn.functional.pad`` settings.

    Returns
    -------
    padded : torch.Tensor
        [B, T_bucket, ...] batch.
    lengths : torch.Tensor
        Relative lengths (valid / T_bucket), SpeechBrain's convention.

    Example
    -------
    >>> x, lens = pad_right_to_bucket([torch.ones(5, 2), torch.ones(3, 2)], multiple=4)
    >>> x.shape, lens.tolist()
    (torch.Size([2, 8, 2]), [0.625, 0.375])
    """
    if int(multiple) <= 0:
        return batch_pad_right(tensors, mode=mode, value=value)
    if not tensors:
        raise IndexError("Tensors list must not be empty")
    target = list(tensors[0].shape)
    target[0] = bucket_length(max(t.shape[0] for t in tensors), multiple)
    padded, valid = [], []
    for tensor in tensors:
        if list(tensor.shape[1:]) != target[1:]:
            raise ValueError(
                f"Cannot pad items of shapes {tuple(tensor.shape)} and {tuple(tensors[0].shape)} "
                "together: they differ beyond the first axis."
            )
        out, fraction = pad_right_to(tensor, target, mode=mode, value=value)
        padded.append(out)
        valid.append(fraction[0])
    return torch.stack(padded), torch.tensor(valid)


class BucketPaddedBatch:
    """A ``collate_fn``: SpeechBrain's ``PaddedBatch`` with the ``keys`` padded up to a multiple
    of ``multiple`` frames along time (other keys padded as usual).

    Picklable, so that DataLoader workers pad the batches; the batch keeps ``pin_memory()`` and
    ``to()``.

    Arguments
    ---------
    multiple : int
        Bucket step in frames (e.g. 64 frames = 2.56 s at 25 Hz).
    keys : tuple of str
        The padded keys (default: the features).

    Example
    -------
    >>> collate = BucketPaddedBatch(16)
    >>> batch = collate([{"id": "a", "feats": torch.ones(20, 3)}, {"id": "b", "feats": torch.ones(7, 3)}])
    >>> batch.feats.data.shape, [round(x, 4) for x in batch.feats.lengths.tolist()]
    (torch.Size([2, 32, 3]), [0.625, 0.2188])
    """

    def __init__(self, multiple, keys=("feats",)):
        if int(multiple) <= 0:
            raise ValueError(f"pad_multiple must be a positive number of frames, got {multiple}.")
        self.multiple = int(multiple)
        self.keys = tuple(keys)

    def __call__(self, examples):
        return PaddedBatch(
            examples,
            padding_func=pad_right_to_bucket,
            per_key_padding_kwargs={key: {"multiple": self.multiple} for key in self.keys},
        )

    def __repr__(self):
        return f"BucketPaddedBatch(multiple={self.multiple}, keys={self.keys})"
