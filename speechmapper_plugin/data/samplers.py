"""Batch samplers and loader settings: task/language mixtures (``TaskMixtureBatchSampler``),
speech batches interleaved with text batches (``InterleavedBatchSampler``, IWSLT25 stage C),
and the loader keyword arguments of the training stages.

Authors
-------
speechmapper developers, 2026
"""

import torch
from speechbrain.dataio.sampler import DynamicBatchSampler, ReproducibleRandomSampler
from torch.utils.data import Sampler


class TaskMixtureBatchSampler(Sampler):
    """Batches drawn from one group at a time, the group chosen with given probabilities.

    The stage-2 SQA recipe samples an ASR batch with probability 0.5 (paper Sec. 4.2); the
    multitask recipes use task/language ratios. Within a group, items are drawn without
    replacement from a fresh permutation each time the group is used up. The sequence of
    batches depends only on ``seed`` and the epoch (``set_epoch``), so SpeechBrain's
    intra-epoch checkpoints resume at the same batch.

    Arguments
    ---------
    groups : dict
        Group name -> list of dataset indices.
    weights : dict
        Group name -> sampling weight (normalized; groups with weight 0 are never drawn).
    batch_size : int
        Items per batch.
    num_batches : int
        Batches per epoch.
    seed : int
        Random seed.

    Example
    -------
    >>> sampler = TaskMixtureBatchSampler(
    ...     {"asr": [0, 1, 2], "sqa": [3, 4]}, {"asr": 0.5, "sqa": 0.5}, 2, num_batches=4
    ... )
    >>> batches = list(sampler)
    >>> len(batches), all(set(b) <= {0, 1, 2} or set(b) <= {3, 4} for b in batches)
    (4, True)
    """

    def __init__(self, groups, weights, batch_size, num_batches, seed=0):
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
        self.num_batches = int(num_batches)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch):
        """Called by SpeechBrain at the start of each epoch."""
        self.epoch = int(epoch)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed + 1000003 * self.epoch)
        queues = {g: [] for g in self.names}
        for _ in range(self.num_batches):
            name = self.names[int(torch.multinomial(self.probs, 1, generator=gen))]
            batch = []
            while len(batch) < self.batch_size:
                if not queues[name]:
                    order = torch.randperm(len(self.groups[name]), generator=gen).tolist()
                    queues[name] = [self.groups[name][i] for i in order]
                take = min(self.batch_size - len(batch), len(queues[name]))
                batch += queues[name][:take]
                del queues[name][:take]
            yield batch

    def __len__(self):
        return self.num_batches


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
    en-de text batch). ``num_batches`` counts all batches, speech and text.

    Example
    -------
    >>> s = InterleavedBatchSampler({"st-de": [0, 1], "text:st-de": [2, 3]}, {"st-de": 1.0},
    ...                             {"st-de": "text:st-de"}, batch_size=2, num_batches=4)
    >>> [sorted(b) for b in s]
    [[0, 1], [2, 3], [0, 1], [2, 3]]
    """

    def __init__(self, groups, weights, partners, batch_size, num_batches, seed=0):
        speech = {g: groups[g] for g in weights}
        super().__init__(speech, weights, batch_size, num_batches, seed)
        self.partners = {g: p for g, p in partners.items() if p in groups and groups[p]}
        for partner in self.partners.values():
            self.groups[partner] = list(groups[partner])

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed + 1000003 * self.epoch)
        queues = {g: [] for g in self.groups}
        produced = 0
        while produced < self.num_batches:
            name = self.names[int(torch.multinomial(self.probs, 1, generator=gen))]
            for group in [name, self.partners.get(name)]:
                if group is None or produced >= self.num_batches:
                    continue
                yield self._draw(group, queues, gen)
                produced += 1

    def _draw(self, name, queues, gen):
        batch = []
        while len(batch) < self.batch_size:
            if not queues[name]:
                order = torch.randperm(len(self.groups[name]), generator=gen).tolist()
                queues[name] = [self.groups[name][i] for i in order]
            take = min(self.batch_size - len(batch), len(queues[name]))
            batch += queues[name][:take]
            del queues[name][:take]
        return batch


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


def train_loader_kwargs(dataset, hparams):
    """Sorted data set and loader options for epoch-based training (stage 1).

    Reads ``sorting`` (``random``, ``ascending`` or ``descending`` by duration),
    ``dynamic_batching``, ``dynamic_batch_sampler`` (kwargs of SpeechBrain's
    ``DynamicBatchSampler``; ``max_batch_length`` in seconds of audio) and
    ``train_dataloader_opts`` from ``hparams``.

    Returns
    -------
    dataset : DynamicItemDataset
        The data set, sorted if asked.
    opts : dict
        Keyword arguments for ``Brain.fit(train_loader_kwargs=...)``.
    """
    opts = dict(hparams["train_dataloader_opts"])
    sorting = hparams.get("sorting", "random")
    if sorting not in ("random", "ascending", "descending"):
        raise ValueError(
            f"sorting={sorting!r} is not supported: use 'random', 'ascending' or 'descending'."
        )
    if hparams.get("dynamic_batching", False):
        sampler = DynamicBatchSampler(
            dataset,
            length_func=lambda x: float(x["duration"]),
            **hparams["dynamic_batch_sampler"],
        )
        opts.pop("batch_size", None)
        opts.pop("shuffle", None)
        opts["batch_sampler"] = sampler
        return dataset, opts
    if sorting == "random":
        opts.setdefault("shuffle", True)
        return dataset, opts
    opts["shuffle"] = False
    return dataset.filtered_sorted(sort_key="duration", reverse=sorting == "descending"), opts


def fixed_steps_loader_kwargs(dataset, hparams, num_samples):
    """Loader options for step-budgeted training (stage 2: ~1K optimizer steps).

    A reproducible random sampler draws ``num_samples`` utterances (with replacement only if
    the data set is smaller), so one "epoch" is the whole step budget and an interrupted run
    resumes mid-epoch from SpeechBrain's intra-epoch checkpoints.
    """
    opts = dict(hparams["train_dataloader_opts"])
    opts.pop("shuffle", None)
    replacement = num_samples > len(dataset)
    opts["sampler"] = ReproducibleRandomSampler(
        dataset, seed=hparams["seed"], num_samples=num_samples, replacement=replacement
    )
    return opts
