"""Validation and test decoding split across the processes of a ``torchrun`` job: each
process decodes every N-th batch (``data.samplers.ShardedEvalBatchSampler``), and the outputs
and statistics are gathered once at the end of the stage, in the one-process order, so that
N processes decode N times faster and write the same result as one.

Authors
-------
speechmapper developers, 2026
"""

import math

import speechbrain as sb
import torch

from speechmapper_plugin.data.samplers import ShardedEvalBatchSampler, process_group


def sharded_loader_kwargs(num_items, loader_kwargs, num_replicas, rank):
    """Loader options that give process ``rank`` its batches of an evaluation set (batches of
    ``loader_kwargs["batch_size"]`` consecutive items, dealt out in turn).

    Example
    -------
    >>> opts = sharded_loader_kwargs(5, {"batch_size": 2, "num_workers": 0}, 2, 1)
    >>> list(opts["batch_sampler"]), opts["num_workers"], "batch_size" in opts
    ([[2, 3]], 0, False)
    """
    opts = dict(loader_kwargs)
    batch_size = opts.pop("batch_size", 1)
    if opts.pop("shuffle", False):
        raise ValueError("Evaluation loaders are not shuffled: drop shuffle from their options.")
    opts.pop("drop_last", None)
    opts["batch_sampler"] = ShardedEvalBatchSampler(num_items, batch_size, num_replicas, rank)
    return opts


def all_gather(value):
    """The list of ``value`` of every process (``[value]`` without ``torchrun``)."""
    world, _ = process_group()
    if world == 1:
        return [value]
    gathered = [None] * world
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def all_sum(values):
    """Element-wise sum over processes of a list of numbers (floats out).

    Example
    -------
    >>> all_sum([1, 2.5])
    [1.0, 2.5]
    """
    values = [float(v) for v in values]
    return [sum(column) for column in zip(*all_gather(values))]


class ShardedEvaluation:
    """Mixin for ``sb.Brain`` subclasses: under ``torchrun``, validation and test loaders
    made from a data set give each process its share of whole batches; ``gather_outputs``,
    ``all_sum`` and ``global_stage_loss`` put the pieces back together at the end of a stage.
    With one process nothing changes."""

    _eval_positions = None
    _eval_loss_sum = 0.0
    _eval_loss_count = 0

    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """Shard VALID / TEST data sets across processes (whole batches, in turn)."""
        if stage != sb.Stage.TRAIN and hasattr(dataset, "data_ids"):
            self._eval_positions = {utt_id: i for i, utt_id in enumerate(dataset.data_ids)}
            world, rank = process_group()
            if world > 1:
                loader_kwargs = sharded_loader_kwargs(len(dataset), loader_kwargs, world, rank)
        return super().make_dataloader(dataset, stage, ckpt_prefix=ckpt_prefix, **loader_kwargs)

    def eval_position(self, utt_id, default=0):
        """Position of ``utt_id`` in the one-process order of the current evaluation set."""
        if self._eval_positions is None:
            return default
        return self._eval_positions.get(utt_id, default)

    def evaluate_batch(self, batch, stage):
        """As SpeechBrain's, also summing the finite batch losses for ``global_stage_loss``."""
        loss = super().evaluate_batch(batch, stage)
        value = float(loss)
        if math.isfinite(value):
            self._eval_loss_sum += value
            self._eval_loss_count += 1
        return loss

    def global_stage_loss(self, stage_loss):
        """The mean batch loss of the evaluation stage over all processes (SpeechBrain's
        ``stage_loss`` is this process's); resets the running sums."""
        total, count = self._eval_loss_sum, self._eval_loss_count
        self._eval_loss_sum, self._eval_loss_count = 0.0, 0
        if process_group()[0] == 1:
            return stage_loss
        total, count = all_sum([total, count])
        return total / count if count else 0.0

    def gather_outputs(self, outputs):
        """Every process's decoded outputs (dicts with ``id``), in the one-process order."""
        if process_group()[0] == 1:
            return outputs
        merged = [o for part in all_gather(list(outputs)) for o in part]
        merged.sort(key=lambda o: self.eval_position(o["id"], math.inf))
        return merged
