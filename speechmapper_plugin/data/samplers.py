"""Batch samplers of the training stages, written for a schedule that does not depend on the
number of processes, and the sharding of validation and test sets.

Every training sampler plans the *global* batches of the whole job: one optimizer step is
``batches_per_step`` micro-batches, whatever the number of processes. Each process takes its
own ``batches_per_step / processes`` micro-batches of every step (its gradient-accumulation
steps), so 1 process and N processes train on the same batches for the same number of steps
(``StepBatchSampler``). The plan depends only on the seed and the epoch (``set_epoch``), so
an interrupted run resumes at exactly the first micro-batch it had not trained.

- ``EpochBatchSampler``: stage 1, each utterance once per epoch, in a new order each epoch,
  micro-batches of at most ``batch_vectors / batches_per_step`` SFM vectors (padding included).
- ``TaskMixtureBatchSampler``: step-budgeted stages, micro-batches drawn from task (or
  task-language) groups with given probabilities.
- ``InterleavedBatchSampler``: IWSLT25 stage C, each speech batch followed by the matching
  text batch, on every process at the same micro-step.
- ``ShardedEvalBatchSampler``: validation / test split across processes by whole batches.

Authors
-------
speechmapper developers, 2026
"""

import torch
from torch.utils.data import Sampler


def process_group():
    """``(processes, rank)`` of the running ``torch.distributed`` job, ``(1, 0)`` without one.

    Example
    -------
    >>> process_group()
    (1, 0)
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _epoch_generator(seed, epoch):
    return torch.Generator().manual_seed(int(seed) + 1000003 * int(epoch))


class StepBatchSampler(Sampler):
    """This process's micro-batches of a global plan of optimizer steps.

    Subclasses plan the global steps (``global_steps``: one list of ``batches_per_step``
    micro-batches per optimizer step); process ``rank`` of ``num_replicas`` takes the
    micro-batches ``rank * A`` to ``(rank + 1) * A - 1`` of every step, with
    ``A = batches_per_step / num_replicas`` its gradient-accumulation factor.

    Arguments
    ---------
    batches_per_step : int
        Micro-batches per optimizer step over all processes (a global number).
    seed : int
        Random seed of the plan.
    num_replicas, rank : int, optional
        Number of processes and this one's rank (default: from ``torch.distributed``).
    """

    def __init__(self, batches_per_step=1, seed=0, num_replicas=None, rank=None):
        world, this_rank = process_group()
        self.num_replicas = int(world if num_replicas is None else num_replicas)
        self.rank = int(this_rank if rank is None else rank)
        self.batches_per_step = int(batches_per_step)
        if self.batches_per_step < 1:
            raise ValueError(f"batches_per_step={batches_per_step} must be >= 1.")
        if self.batches_per_step % self.num_replicas:
            raise ValueError(
                f"batches_per_step={self.batches_per_step} micro-batches per optimizer step "
                f"cannot be shared evenly by {self.num_replicas} processes: run a number of "
                "processes that divides it, or set --batches_per_step to a multiple of "
                f"{self.num_replicas} (this changes the micro-batch size, not the steps)."
            )
        self.accumulation = self.batches_per_step // self.num_replicas
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch):
        """Called by SpeechBrain at the start of each epoch."""
        self.epoch = int(epoch)

    def global_steps(self):
        """The optimizer steps of the current epoch (lists of micro-batches, all processes)."""
        raise NotImplementedError

    def num_steps(self):
        """Optimizer steps in the current epoch."""
        raise NotImplementedError

    def __iter__(self):
        first = self.rank * self.accumulation
        for step in self.global_steps():
            yield from step[first : first + self.accumulation]

    def __len__(self):
        return self.num_steps() * self.accumulation


def _close_steps(micro_batches, batches_per_step, lengths=None):
    """Group micro-batches into steps of ``batches_per_step``; the utterances of a last,
    incomplete step are re-split into ``batches_per_step`` micro-batches (or, when fewer,
    added to the previous step's micro-batches), so that each is trained once."""
    per = batches_per_step
    full = len(micro_batches) // per
    steps = [[list(b) for b in micro_batches[k * per : (k + 1) * per]] for k in range(full)]
    items = [i for b in micro_batches[full * per :] for i in b]
    if not items:
        return steps
    if len(items) >= per:
        if lengths is not None:  # similar lengths together: less padding
            items = sorted(items, key=lambda i: (lengths[i], i))
        size, extra = divmod(len(items), per)
        cuts = [k * size + min(k, extra) for k in range(per + 1)]
        steps.append([items[cuts[k] : cuts[k + 1]] for k in range(per)])
    elif steps:
        for j, i in enumerate(items):
            steps[-1][j % per].append(i)
    else:
        raise ValueError(
            f"{len(items)} training utterance(s) cannot fill the {per} micro-batches of one "
            "optimizer step: lower --batches_per_step or add data."
        )
    return steps


class EpochBatchSampler(StepBatchSampler):
    """Stage-1 epochs: every utterance once per epoch, in a new order each epoch.

    With ``batch_vectors``, micro-batches hold at most ``batch_vectors / batches_per_step``
    vectors, padding included (dynamic batching: the utterances, shuffled within each of
    ``num_buckets`` equal-count length buckets and taken from short to long, fill one
    micro-batch after the other, so that similar lengths share a micro-batch); otherwise ``batch_size`` utterances
    in the order ``order`` (``random``, or ``ascending`` / ``descending`` by length, the same
    every epoch). The micro-batches are shuffled and grouped ``batches_per_step`` per
    optimizer step; a longer utterance than the budget gets a micro-batch of its own.

    Arguments
    ---------
    lengths : list of int
        Vectors of each dataset item (e.g. ``datasets.feature_lengths``).
    batches_per_step : int
        Micro-batches per optimizer step over all processes.
    batch_vectors : int, optional
        Vectors per optimizer step over all processes (dynamic batching).
    batch_size : int, optional
        Utterances per micro-batch (without ``batch_vectors``).
    num_buckets : int
        Length buckets of the dynamic batching.
    order : str
        ``random``, ``ascending`` or ``descending`` (fixed-size batches only).
    seed : int
        Random seed; the plan of an epoch depends on (seed, epoch) only.
    num_replicas, rank : int, optional
        See ``StepBatchSampler``.

    Example
    -------
    >>> lengths = [10, 30, 20, 40, 10, 30, 20, 40]
    >>> s = EpochBatchSampler(lengths, 2, batch_vectors=120, num_buckets=2)
    >>> plan = list(s.global_steps())
    >>> sorted(i for step in plan for b in step for i in b) == list(range(8))  # once each
    True
    >>> all(len(step) == 2 for step in plan), len(s) == 2 * len(plan)
    (True, True)
    >>> s.set_epoch(1); plan != list(s.global_steps())  # a new order each epoch
    True
    """

    def __init__(
        self,
        lengths,
        batches_per_step=1,
        batch_vectors=None,
        batch_size=None,
        num_buckets=40,
        order="random",
        seed=0,
        num_replicas=None,
        rank=None,
    ):
        super().__init__(batches_per_step, seed, num_replicas, rank)
        if order not in ("random", "ascending", "descending"):
            raise ValueError(
                f"sorting={order!r} is not supported: use 'random', 'ascending' or 'descending'."
            )
        if (batch_vectors is None) == (batch_size is None):
            raise ValueError("EpochBatchSampler: give exactly one of batch_vectors, batch_size.")
        self.lengths = [int(n) for n in lengths]
        if not self.lengths:
            raise ValueError("EpochBatchSampler: the training set is empty.")
        self.order = order
        self.batch_size = None if batch_size is None else int(batch_size)
        self.micro_vectors = None
        if batch_vectors is not None:
            self.micro_vectors = int(batch_vectors) // self.batches_per_step
            if self.micro_vectors < 1:
                raise ValueError(
                    f"batch_vectors={batch_vectors} is smaller than batches_per_step="
                    f"{self.batches_per_step}."
                )
            ranked = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], i))
            buckets = max(1, min(int(num_buckets), len(ranked)))
            self.bucket = [0] * len(ranked)
            for position, index in enumerate(ranked):  # equal-count length buckets
                self.bucket[index] = position * buckets // len(ranked)
            self.num_buckets = buckets
        self._plan = None

    def set_epoch(self, epoch):
        """Called by SpeechBrain at the start of each epoch."""
        if int(epoch) != self.epoch:
            self._plan = None
        super().set_epoch(epoch)

    def _micro_batches(self, gen):
        n = len(self.lengths)
        if self.micro_vectors is None:
            if self.order == "random":
                order = torch.randperm(n, generator=gen).tolist()
            else:
                order = sorted(
                    range(n), key=lambda i: (self.lengths[i], i), reverse=self.order == "descending"
                )
            size = self.batch_size  # sorted orders keep their curriculum: no shuffle
            return [order[k : k + size] for k in range(0, n, size)]
        members = [[] for _ in range(self.num_buckets)]
        for index in torch.randperm(n, generator=gen).tolist():
            members[self.bucket[index]].append(index)
        batches, batch, longest = [], [], 0
        for index in (i for bucket in members for i in bucket):  # short to long, shuffled within
            length = self.lengths[index]
            if batch and max(longest, length) * (len(batch) + 1) > self.micro_vectors:
                batches.append(batch)
                batch, longest = [], 0
            batch.append(index)
            longest = max(longest, length)
        if batch:
            batches.append(batch)
        return [batches[k] for k in torch.randperm(len(batches), generator=gen).tolist()]

    def plan(self):
        """The current epoch's optimizer steps (cached until the epoch changes)."""
        if self._plan is None:
            gen = _epoch_generator(self.seed, self.epoch)
            self._plan = _close_steps(self._micro_batches(gen), self.batches_per_step, self.lengths)
        return self._plan

    def global_steps(self):
        """The current epoch's optimizer steps."""
        return iter(self.plan())

    def num_steps(self):
        """Optimizer steps in the current epoch."""
        return len(self.plan())


class TaskMixtureBatchSampler(StepBatchSampler):
    """Micro-batches drawn from one group at a time, the group chosen with given probabilities,
    for ``num_steps`` optimizer steps of ``batches_per_step`` micro-batches.

    The stage-2 SQA recipe samples an ASR batch with probability 0.5 (paper Sec. 4.2); the
    multitask recipes use task/language ratios; a single group is plain random sampling.
    Within a group, items are drawn without replacement from a fresh permutation each time
    the group is used up. The global sequence of micro-batches depends only on ``seed`` and
    the epoch (``set_epoch``), so SpeechBrain's intra-epoch checkpoints resume at the same
    micro-batch, and on N processes each takes its share of every step.

    Arguments
    ---------
    groups : dict
        Group name -> list of dataset indices.
    weights : dict
        Group name -> sampling weight (normalized; groups with weight 0 are never drawn).
    batch_size : int
        Items per micro-batch.
    num_steps : int
        Optimizer steps per epoch (over all processes).
    seed : int
        Random seed.
    batches_per_step : int
        Micro-batches per optimizer step over all processes.
    num_replicas, rank : int, optional
        See ``StepBatchSampler``.

    Example
    -------
    >>> sampler = TaskMixtureBatchSampler(
    ...     {"asr": [0, 1, 2], "sqa": [3, 4]}, {"asr": 0.5, "sqa": 0.5}, 2, num_steps=4
    ... )
    >>> batches = list(sampler)
    >>> len(batches), all(set(b) <= {0, 1, 2} or set(b) <= {3, 4} for b in batches)
    (4, True)
    >>> make = lambda **kw: list(TaskMixtureBatchSampler({"a": list(range(8))}, {"a": 1}, 2,
    ...                                                  3, batches_per_step=2, **kw))
    >>> one, two = make(), [make(num_replicas=2, rank=r) for r in (0, 1)]
    >>> len(one), one[0::2] == two[0] and one[1::2] == two[1]  # 2 processes share each step
    (6, True)
    """

    def __init__(
        self,
        groups,
        weights,
        batch_size,
        num_steps,
        seed=0,
        batches_per_step=1,
        num_replicas=None,
        rank=None,
    ):
        super().__init__(batches_per_step, seed, num_replicas, rank)
        unknown = sorted(set(weights) - set(groups))
        if unknown:
            raise ValueError(
                f"Sampling weights name group(s) {unknown} that have no data (groups with "
                f"data: {sorted(groups)})."
            )
        self.names = [g for g in groups if weights.get(g, 0) > 0]
        empty = [g for g in self.names if not groups[g]]
        if empty or not self.names:
            raise ValueError(
                f"No data for the group(s) {empty or sorted(weights)} that the sampling "
                f"weights {dict(weights)} ask for."
            )
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"Sampling weights must be >= 0, got {dict(weights)}.")
        total = sum(weights[g] for g in self.names)
        self.probs = torch.tensor([weights[g] / total for g in self.names], dtype=torch.float64)
        self.groups = {g: list(groups[g]) for g in self.names}
        self.batch_size = int(batch_size)
        self.steps = int(num_steps)

    def num_steps(self):
        """Optimizer steps per epoch."""
        return self.steps

    def _pick(self, gen):
        return self.names[int(torch.multinomial(self.probs, 1, generator=gen))]

    def _draw(self, name, queues, gen):
        """The next ``batch_size`` items of group ``name`` (a new permutation when used up)."""
        batch = []
        while len(batch) < self.batch_size:
            if not queues.get(name):
                order = torch.randperm(len(self.groups[name]), generator=gen).tolist()
                queues[name] = [self.groups[name][i] for i in order]
            take = min(self.batch_size - len(batch), len(queues[name]))
            batch += queues[name][:take]
            del queues[name][:take]
        return batch

    def global_steps(self):
        """The optimizer steps of the epoch, each ``batches_per_step`` micro-batches."""
        gen = _epoch_generator(self.seed, self.epoch)
        queues = {}
        for _ in range(self.steps):
            yield [self._draw(self._pick(gen), queues, gen) for _ in range(self.batches_per_step)]


def group_weights(groups, task_weights, lang_weights=None):
    """Sampling weight of each ``<task>-<lang>`` group: the task's weight split over its
    languages by ``lang_weights[task]`` (equal split when not given).

    Example
    -------
    >>> groups = {"asr-en": [0], "st-de": [1], "st-it": [2], "st-zh": [3]}
    >>> w = group_weights(groups, {"asr": 0.3, "st": 0.7}, {"st": {"de": 0.4, "it": 0.4, "zh": 0.2}})
    >>> {k: round(v, 2) for k, v in w.items()}
    {'asr-en': 0.3, 'st-de': 0.28, 'st-it': 0.28, 'st-zh': 0.14}
    """
    lang_weights = lang_weights or {}
    by_task = {}
    for name in groups:
        task, _, lang = name.partition("-")
        by_task.setdefault(task, []).append(lang)
    missing = sorted(t for t, w in task_weights.items() if w > 0 and t not in by_task)
    if missing:
        raise ValueError(
            f"task_weights {dict(task_weights)} ask for task(s) {missing} that have no "
            f"training data (tasks with data: {sorted(by_task)})."
        )
    weights = {}
    for task, langs in by_task.items():
        share = lang_weights.get(task)
        if share:
            absent = sorted(set(k for k, v in share.items() if v > 0) - set(langs))
            if absent:
                raise ValueError(
                    f"lang_weights[{task!r}] asks for language(s) {absent} that have no "
                    f"{task} training data (languages with data: {sorted(langs)})."
                )
        total = sum(share.get(lang, 0) for lang in langs) if share else len(langs)
        for lang in langs:
            part = (share.get(lang, 0) if share else 1) / total if total else 0
            weights[f"{task}-{lang}"] = task_weights.get(task, 0) * part
    return weights


class InterleavedBatchSampler(TaskMixtureBatchSampler):
    """``TaskMixtureBatchSampler`` over speech groups where each speech batch is followed by
    a batch of its partner text group (IWSLT25 stage C: an ST en-de speech batch, then an MT
    en-de text batch).

    The plan runs in rounds: a round draws one speech group for all processes, gives each
    process a speech batch of it and then, if the group has a text partner, a text batch of
    the partner. Every process thus runs the same kind of batch (speech or text) at the same
    micro-step, and its speech batch is followed by its own text batch. Each process gets
    ``num_steps * batches_per_step / processes`` micro-batches, speech and text together.

    Example
    -------
    >>> s = InterleavedBatchSampler({"st-de": [0, 1], "text:st-de": [2, 3]}, {"st-de": 1.0},
    ...                             {"st-de": "text:st-de"}, batch_size=2, num_steps=4)
    >>> [sorted(b) for b in s]
    [[0, 1], [2, 3], [0, 1], [2, 3]]
    """

    def __init__(
        self,
        groups,
        weights,
        partners,
        batch_size,
        num_steps,
        seed=0,
        batches_per_step=1,
        num_replicas=None,
        rank=None,
    ):
        speech = {g: groups[g] for g in weights}
        super().__init__(
            speech, weights, batch_size, num_steps, seed, batches_per_step, num_replicas, rank
        )
        self.partners = {g: p for g, p in partners.items() if p in groups and groups[p]}
        for partner in self.partners.values():
            self.groups[partner] = list(groups[partner])

    def rounds(self):
        """Every process's micro-batches, round by round: ``[(kind, [batch per rank])...]``."""
        gen = _epoch_generator(self.seed, self.epoch)
        queues = {}
        while True:
            name = self._pick(gen)
            yield "speech", [self._draw(name, queues, gen) for _ in range(self.num_replicas)]
            partner = self.partners.get(name)
            if partner is not None:
                yield "text", [self._draw(partner, queues, gen) for _ in range(self.num_replicas)]

    def __iter__(self):
        total = self.steps * self.accumulation
        produced = 0
        for _, batches in self.rounds():
            if produced >= total:
                return
            yield batches[self.rank]
            produced += 1

    def global_steps(self):
        """Not defined: the rounds depend on the number of processes (see ``rounds``)."""
        raise NotImplementedError("InterleavedBatchSampler plans rounds, not global steps.")


class ShardedEvalBatchSampler(Sampler):
    """Validation / test batches of consecutive items, the batches dealt out to the processes
    in turn (batch ``k`` to process ``k % num_replicas``): every utterance is decoded once,
    in the same batch as on one process, so the gathered outputs equal one process's.

    Example
    -------
    >>> [list(ShardedEvalBatchSampler(7, 2, num_replicas=2, rank=r)) for r in (0, 1)]
    [[[0, 1], [4, 5]], [[2, 3], [6]]]
    """

    def __init__(self, num_items, batch_size, num_replicas=None, rank=None):
        world, this_rank = process_group()
        self.num_replicas = int(world if num_replicas is None else num_replicas)
        self.rank = int(this_rank if rank is None else rank)
        size = int(batch_size)
        self.batches = [
            list(range(k, min(k + size, num_items))) for k in range(0, num_items, size)
        ][self.rank :: self.num_replicas]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def mixture_groups(dataset, key):
    """Group name -> indices of ``dataset`` (a stage-2 set) by ``key`` (``task`` or
    ``task_lang``: ``st-de``, ``sqa-en``...), for ``TaskMixtureBatchSampler``."""
    groups = {}
    for index, utt_id in enumerate(dataset.data_ids):
        row = dataset.data[utt_id]
        if key == "task":
            name = row["task"]
        elif key == "task_lang":
            name = f"{row['task']}-{row.get('tgt_lang') or 'en'}"
        else:
            raise ValueError(f"mixture key must be 'task' or 'task_lang', got {key!r}.")
        groups.setdefault(name, []).append(index)
    return groups


def train_loader_kwargs(dataset, hparams, lengths):
    """Data set and loader options of epoch-based training (stage 1): an
    ``EpochBatchSampler`` over ``lengths`` (vectors of each item).

    Reads ``batches_per_step``, ``dynamic_batching`` (then ``batch_vectors`` and
    ``num_buckets``; otherwise ``batch_size`` and ``sorting``: ``random``, ``ascending`` or
    ``descending`` by length), ``seed`` and ``train_dataloader_opts`` from ``hparams``.

    Returns
    -------
    dataset : DynamicItemDataset
        The data set (unchanged).
    opts : dict
        Keyword arguments for ``Brain.fit(train_loader_kwargs=...)``.
    """
    opts = {
        k: v
        for k, v in hparams["train_dataloader_opts"].items()
        if k not in ("batch_size", "shuffle", "drop_last")
    }
    common = {
        "batches_per_step": hparams["batches_per_step"],
        "order": hparams.get("sorting", "random"),
        "seed": hparams.get("seed", 0),
    }
    if common["order"] not in ("random", "ascending", "descending"):
        raise ValueError(
            f"sorting={common['order']!r} is not supported: use 'random', 'ascending' or "
            "'descending'."
        )
    if hparams.get("dynamic_batching", False):
        sampler = EpochBatchSampler(
            lengths,
            batch_vectors=hparams["batch_vectors"],
            num_buckets=hparams.get("num_buckets", 40),
            **{**common, "order": "random"},
        )
    else:
        sampler = EpochBatchSampler(lengths, batch_size=hparams["batch_size"], **common)
    opts["batch_sampler"] = sampler
    return dataset, opts
