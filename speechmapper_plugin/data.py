"""Data I/O shared by every recipe: atomic manifest writing, SpeechBrain datasets that read
cached SFM features and tokenize targets for the frozen LLM, and loader options (dynamic
batching, fixed-size random sampling for the 1K-step stage 2).

Dataset recipes differ only in their preparation script (which writes the CSV manifests) and
their hparams; everything from the manifests on is here.

Authors
-------
speechmapper developers, 2026
"""

import csv
import io
import logging
import os

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.sampler import DynamicBatchSampler, ReproducibleRandomSampler
from torch.utils.data import Sampler

from .features import FeatureCache
from .files import atomic_write_text

__all__ = [
    "write_csv",
    "read_manifest",
    "read_manifest_rows",
    "split_answers",
    "manifest_path",
    "extraction_items",
    "load_asr_dataset",
    "load_stage2_dataset",
    "load_text_dataset",
    "TaskMixtureBatchSampler",
    "mixture_groups",
    "group_weights",
    "InterleavedBatchSampler",
    "load_eval_dataset",
    "EVAL_FIELDS",
    "ANSWER_SEPARATOR",
    "open_feature_cache",
    "dataio_prepare",
    "train_loader_kwargs",
    "fixed_steps_loader_kwargs",
]

logger = logging.getLogger(__name__)


def write_csv(path, rows, fieldnames):
    """Write a SpeechBrain CSV manifest atomically (tmp file + rename).

    Arguments
    ---------
    path : str
        Destination file.
    rows : list of dict
        One dict per utterance; must hold every field of ``fieldnames``.
    fieldnames : list of str
        Column order; the first must be ``ID``.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.csv")
    >>> write_csv(p, [{"ID": "a", "duration": 1.5}], ["ID", "duration"])
    >>> open(p).read().splitlines()
    ['ID,duration', 'a,1.5']
    """
    if not fieldnames or fieldnames[0] != "ID":
        raise ValueError(f"write_csv: the first column must be 'ID', got {fieldnames}.")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in fieldnames})
    atomic_write_text(path, buffer.getvalue())


def read_manifest(path):
    """Read a manifest written by ``write_csv``: ``{ID: row}``, with ``duration`` as a float.

    Unlike SpeechBrain's ``load_data_csv``, text is read verbatim: no ``$variable``
    substitution (a transcript such as "It costs $5." is data, not a variable) and no
    stripping of leading spaces.

    Raises
    ------
    ValueError
        No ``ID`` column, a repeated ID, or a ``duration`` that is not a number (the message
        names the file and the row).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> write_csv(p, [{"ID": "a", "duration": 1.5, "wrd": "It costs $5, not $ 6."}],
    ...           ["ID", "duration", "wrd"])
    >>> read_manifest(p)
    {'a': {'duration': 1.5, 'wrd': 'It costs $5, not $ 6.'}}
    """
    rows = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if "ID" not in (reader.fieldnames or ()):
            raise ValueError(f"Manifest {path} has no ID column (columns: {reader.fieldnames}).")
        for line, row in enumerate(reader, start=2):
            utt_id = row.pop("ID")
            if utt_id in rows:
                raise ValueError(f"Manifest {path} line {line}: repeated ID {utt_id!r}.")
            if "duration" in row:
                try:
                    row["duration"] = float(row["duration"])
                except (TypeError, ValueError):
                    raise ValueError(
                        f"Manifest {path} line {line} ({utt_id}): duration "
                        f"{row['duration']!r} is not a number."
                    ) from None
            rows[utt_id] = row
    return rows


def read_manifest_rows(path, columns=(), hint=""):
    """A manifest as the data tools rewrite it: its rows (dicts with ``ID``, file order) and
    its columns (``ID`` first); read verbatim like ``read_manifest``.

    Arguments
    ---------
    path : str
        The manifest.
    columns : sequence of str
        Columns that must be present.
    hint : str
        What to do when some are missing (appended to the error).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The manifest holds no row.
    KeyError
        Columns are missing (the message names them, the file and its columns).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "sqa.csv")
    >>> write_csv(p, [{"ID": "q1", "question": "Who?", "tgt": "Ann"}], ["ID", "question", "tgt"])
    >>> read_manifest_rows(p, ["question"])
    ([{'ID': 'q1', 'question': 'Who?', 'tgt': 'Ann'}], ['ID', 'question', 'tgt'])
    >>> read_manifest_rows(p, ["context"], hint="An SQA manifest has it.")
    Traceback (most recent call last):
    ...
    KeyError: "Manifest ... lacks the column(s) ['context'] (it has ['ID', 'question', 'tgt']). An SQA manifest has it."
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Input manifest {path} does not exist.")
    data = read_manifest(path)
    if not data:
        raise ValueError(f"Manifest {path} holds no row.")
    first = next(iter(data.values()))
    fieldnames = ["ID", *first]
    missing = [c for c in columns if c not in first]
    if missing:
        raise KeyError(
            f"Manifest {path} lacks the column(s) {missing} (it has {fieldnames}). {hint}".rstrip()
        )
    return [{"ID": utt_id, **row} for utt_id, row in data.items()], fieldnames


def split_answers(tgt):
    """The non-empty answers of a ``tgt`` field (joined by ``ANSWER_SEPARATOR``).

    Example
    -------
    >>> split_answers("1889 ||| in 1889 ||| ")
    ['1889', 'in 1889']
    """
    return [a.strip() for a in str(tgt).split(ANSWER_SEPARATOR.strip()) if a.strip()]


def manifest_path(folder, split):
    """Path of a split's manifest: ``<folder>/<split>.csv``."""
    return os.path.join(folder, f"{split}.csv")


def extraction_items(csv_path):
    """What feature extraction reads from a manifest: ``(audio_id, wav)`` per audio, or
    ``(audio_id, wav, start, stop)`` for segments; rows sharing an ``audio_id`` (SQA questions
    on one passage) give one item.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> write_csv(p, [{"ID": "q1", "wav": "a.wav", "audio_id": "p1"},
    ...               {"ID": "q2", "wav": "a.wav", "audio_id": "p1"}], ["ID", "wav", "audio_id"])
    >>> extraction_items(p)
    [('p1', 'a.wav')]
    """
    items, seen = [], set()
    for utt_id, row in read_manifest(csv_path).items():
        key = row.get("audio_id") or utt_id
        if key in seen:
            continue
        seen.add(key)
        if row.get("start", "") != "" and row.get("stop", "") != "":
            items.append((key, row["wav"], float(row["start"]), float(row["stop"])))
        else:
            items.append((key, row["wav"]))
    return items


def _load_manifests(csv_paths):
    """One DynamicItemDataset over one or several manifests (unique IDs checked)."""
    if isinstance(csv_paths, str):
        csv_paths = [csv_paths]
    data = {}
    for csv_path in csv_paths:
        if not os.path.isfile(csv_path):
            raise FileNotFoundError(
                f"Manifest {csv_path} does not exist: run the dataset's prepare step first "
                "(it runs automatically unless skip_prep=True)."
            )
        rows = read_manifest(csv_path)
        if not rows:
            raise ValueError(f"Manifest {csv_path} holds no utterance.")
        duplicates = data.keys() & rows.keys()
        if duplicates:
            raise ValueError(
                f"Manifest {csv_path} repeats {len(duplicates)} utterance ID(s) of "
                f"{csv_paths[0]}..., e.g. {sorted(duplicates)[:3]}: IDs must be unique."
            )
        data.update(rows)
    for utt_id, row in data.items():  # rows sharing one audio name it; others use their ID
        row["audio_id"] = row.get("audio_id") or utt_id
    return DynamicItemDataset(data), ", ".join(csv_paths)


def _columns(row):
    """The manifest columns of a loaded row (without the derived ``audio_id``)."""
    return sorted(k for k in row if k != "audio_id")


def _load_task_manifests(csv_paths, task, columns, what="task"):
    """The manifests of one task as a dataset, checked to hold ``columns``."""
    dataset, csv_path = _load_manifests(csv_paths)
    first = dataset.data[dataset.data_ids[0]]
    missing = [c for c in columns if c not in first]
    if missing:
        raise KeyError(
            f"Manifest {csv_path} lacks the column(s) {missing} that {what} {task!r} needs "
            f"(it has {_columns(first)}); re-run the dataset's prepare script."
        )
    return dataset, csv_path


def _audio_key(dataset, utt_id):
    """Feature-cache key of a row (``audio_id``, set by ``_load_manifests``)."""
    return dataset.data[utt_id]["audio_id"]


def _keep_cached(dataset, feature_cache, csv_path):
    """Drop (count and log) the utterances that have no cached features."""
    missing = [i for i in dataset.data_ids if _audio_key(dataset, i) not in feature_cache]
    if not missing:
        return dataset
    logger.warning(
        "%s: %d of %d utterances have no cached features (skipped at extraction, see its "
        "log) and are left out, e.g. %s.",
        csv_path,
        len(missing),
        len(dataset),
        missing[:3],
    )
    if len(missing) == len(dataset):
        raise ValueError(
            f"None of the utterances of {csv_path} is in the feature cache "
            f"{feature_cache.folder}: run extract_features.py with the same manifests."
        )
    keep = {i for i in dataset.data_ids if _audio_key(dataset, i) in feature_cache}
    return dataset.filtered_sorted(key_test={"id": lambda i: i in keep})


def _add_feats(dataset, feature_cache):
    """Dynamic item ``feats``: the cached features of the row's audio (``audio_id``)."""

    @sb.utils.data_pipeline.takes("audio_id")
    @sb.utils.data_pipeline.provides("feats")
    def feats_pipeline(audio_id):
        return feature_cache[audio_id]

    dataset.add_dynamic_item(feats_pipeline)


def load_asr_dataset(csv_paths, feature_cache, tokenizer, text_key="wrd"):
    """A ``DynamicItemDataset`` over a manifest, yielding cached features and LLM tokens.

    Output keys: ``id``, ``feats`` ([T, D] float32 from the cache), ``wrd`` (target text),
    ``tokens`` (LLM token ids of the target text, no special tokens), ``num_tokens``.
    Utterances absent from the feature cache (skipped at extraction: unreadable or too long
    audio) are dropped here, counted and logged.

    Arguments
    ---------
    csv_paths : str or list of str
        The manifest(s) (columns ``ID, duration, wav, spk_id, wrd`` at least); several
        manifests (e.g. the three LibriSpeech training splits) are merged.
    feature_cache : speechmapper_plugin.features.FeatureCache
        The cache written by ``extract_features.py``.
    tokenizer : transformers.PreTrainedTokenizerBase
        The frozen LLM's tokenizer.
    text_key : str
        Column holding the target text.

    Returns
    -------
    DynamicItemDataset
    """
    dataset, csv_path = _load_manifests(csv_paths)
    first = dataset.data[dataset.data_ids[0]]
    if text_key not in first:
        raise KeyError(f"Manifest {csv_path} has no column {text_key!r} (has {_columns(first)}).")
    dataset = _keep_cached(dataset, feature_cache, csv_path)
    _add_feats(dataset, feature_cache)

    @sb.utils.data_pipeline.takes(text_key)
    @sb.utils.data_pipeline.provides("wrd", "tokens", "num_tokens")
    def text_pipeline(text):
        yield text
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        yield torch.LongTensor(ids)
        yield len(ids)

    dataset.add_dynamic_item(text_pipeline)
    dataset.set_output_keys(["id", "feats", "wrd", "tokens", "num_tokens"])
    return dataset


def load_stage2_dataset(sources, tokenizer, prompt_kwargs=None):
    """One training/validation set for stage 2 over one or several task sources.

    Each row gets the instruction-tuning prompt of its task (``prompts.task_prompt``: speech
    prefix + instruction + IT suffix, Table 12) and its target text: the transcript (ASR), the
    translation (ST) or the first reference answer (SQA). ASR rows and rows with a transcript
    also get the transcript's LLM tokens, the target of the MSE term of eq. 3.

    Output keys: ``id``, ``feats``, ``task``, ``prompt``, ``target``, ``wrd``, ``tokens``,
    ``num_tokens``, ``source`` (index of the source, for ``TaskMixtureBatchSampler``).

    Arguments
    ---------
    sources : list of dict
        ``{"csv": manifest path(s), "cache": FeatureCache, "task": "asr"|"st"|"sqa"}`` each.
        Rows of ST manifests need ``tgt`` and ``tgt_lang``, SQA rows ``question`` and ``tgt``.
    tokenizer : transformers.PreTrainedTokenizerBase
        The frozen LLM's tokenizer.
    prompt_kwargs : dict, optional
        Further ``prompts.task_prompt`` arguments (``st_instructions``, ``sqa_template``...).

    Returns
    -------
    DynamicItemDataset
    """
    from .prompts import task_prompt

    kwargs = {"zero_shot": False, **(prompt_kwargs or {})}
    required = {"asr": ["wrd"], "st": ["tgt", "tgt_lang"], "sqa": ["tgt", "question"]}
    data, caches, dims = {}, [], set()
    for index, source in enumerate(sources):
        task, cache = source["task"], source["cache"]
        if task not in required:
            raise ValueError(f"Unknown task {task!r} for {source['csv']}; use asr, st or sqa.")
        dataset, csv_path = _load_task_manifests(source["csv"], task, required[task])
        dataset = _keep_cached(dataset, cache, csv_path)
        dims.add(cache.dim)
        caches.append(cache)
        for utt_id in dataset.data_ids:
            if utt_id in data:
                raise ValueError(
                    f"Utterance ID {utt_id!r} of {csv_path} also occurs in another stage-2 "
                    "source: IDs must be unique across the training manifests."
                )
            row = dict(dataset.data[utt_id])
            target = _task_target(task, row)
            row.update(
                task=task,
                source=index,
                wrd=row.get("wrd", ""),
                target=target,
                prompt=task_prompt(
                    task,
                    target_lang=row.get("tgt_lang") or None,
                    question=row.get("question"),
                    **kwargs,
                ),
            )
            data[utt_id] = row
    if len(dims) > 1:
        raise ValueError(
            f"The stage-2 feature caches hold features of different sizes {sorted(dims)}: "
            "extract every dataset with the same SFM configuration."
        )
    dataset = DynamicItemDataset(data)

    @sb.utils.data_pipeline.takes("audio_id", "source")
    @sb.utils.data_pipeline.provides("feats")
    def feats_pipeline(audio_id, source):
        return caches[source][audio_id]

    @sb.utils.data_pipeline.takes("wrd")
    @sb.utils.data_pipeline.provides("tokens", "num_tokens")
    def tokens_pipeline(text):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        yield torch.LongTensor(ids)
        yield len(ids)

    dataset.add_dynamic_item(feats_pipeline)
    dataset.add_dynamic_item(tokens_pipeline)
    dataset.set_output_keys(
        ["id", "feats", "task", "prompt", "target", "wrd", "tokens", "num_tokens", "source"]
    )
    return dataset


def _task_target(task, row):
    """The training target of a row: transcript (ASR), translation (ST), first answer (SQA)."""
    if task == "asr":
        return row["wrd"]
    if task == "st":
        return row["tgt"]
    return row["tgt"].split(ANSWER_SEPARATOR)[0].strip()


def load_text_dataset(sources, prompt_kwargs=None):
    """Text-only instruction data from speech manifests (IWSLT25 stage B, text LoRA): MT
    from ST rows (the transcript in the text prompt, the translation as target) and text QA
    from SQA rows (the passage transcript in the text prompt with the question, the first
    answer as target), with the text prefix of Table 12 in place of the speech prefix.

    Output keys: ``id``, ``task`` (``st`` / ``sqa``, i.e. MT / QA), ``prompt``, ``target``.

    Arguments
    ---------
    sources : list of dict
        ``{"csv": manifest path(s), "task": "st"|"sqa"}`` each; rows need ``transcript``,
        ``tgt`` and, for ST, ``tgt_lang``, for SQA, ``question``.
    prompt_kwargs : dict, optional
        Further ``prompts.task_prompt`` arguments.

    Returns
    -------
    DynamicItemDataset

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "st.csv")
    >>> write_csv(p, [{"ID": "a", "transcript": "Hello.", "tgt": "Hallo.", "tgt_lang": "de"}],
    ...           ["ID", "transcript", "tgt", "tgt_lang"])
    >>> item = load_text_dataset([{"csv": p, "task": "st"}])[0]
    >>> item["prompt"].splitlines()[0], item["target"]
    ('Text segment: Hello.', 'Hallo.')
    """
    from .prompts import TEXT_PREFIX, fill_text, task_prompt

    kwargs = {"zero_shot": False, "prefix": TEXT_PREFIX, **(prompt_kwargs or {})}
    required = {"st": ["transcript", "tgt", "tgt_lang"], "sqa": ["transcript", "tgt", "question"]}
    data = {}
    for source in sources:
        task = source["task"]
        if task not in required:
            raise ValueError(
                f"Text task {task!r} for {source['csv']} is not supported: use 'st' (MT) or "
                "'sqa' (text QA)."
            )
        dataset, csv_path = _load_task_manifests(source["csv"], task, required[task], "text task")
        for utt_id in dataset.data_ids:
            row = dataset.data[utt_id]
            if utt_id in data:
                raise ValueError(
                    f"Utterance ID {utt_id!r} of {csv_path} also occurs in another text "
                    "source: IDs must be unique across the training manifests."
                )
            prompt = task_prompt(
                task,
                target_lang=row.get("tgt_lang") or None,
                question=row.get("question"),
                **kwargs,
            )
            text = row["transcript"]
            data[utt_id] = {
                "task": task,
                "tgt_lang": row.get("tgt_lang") or "en",
                "prompt": fill_text(prompt, text),
                "target": _task_target(task, row),
            }
    dataset = DynamicItemDataset(data)
    dataset.set_output_keys(["id", "task", "prompt", "target"])
    return dataset


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


#: Manifest columns an evaluation reads (besides ``ID`` and ``wav``): ``wrd`` the normalized
#: source transcript, ``transcript`` the raw one (COMET source, topline input; defaults to
#: ``wrd``), ``tgt`` the task's reference (translation, answer; the transcript for ASR;
#: several SQA answers separated by ``ANSWER_SEPARATOR``), ``tgt_lang``, ``question``, ``context``.
EVAL_FIELDS = ("wrd", "transcript", "tgt", "tgt_lang", "question", "context")
ANSWER_SEPARATOR = " ||| "


def load_eval_dataset(csv_paths, task, feature_cache=None, target_lang=None):
    """A ``DynamicItemDataset`` for evaluating a system on one task.

    Output keys: ``id``, ``wav``, the ``EVAL_FIELDS`` (``tgt`` defaults to ``wrd`` for ASR,
    ``tgt_lang`` to ``target_lang``, ``question``/``context`` to "") and ``feats`` when a
    feature cache is given (uncached utterances are then left out, counted and logged).

    Arguments
    ---------
    csv_paths : str or list of str
        The manifest(s).
    task : str
        ``"asr"``, ``"st"`` or ``"sqa"``: checks that the columns the task needs are there.
    feature_cache : speechmapper_plugin.features.FeatureCache, optional
        Needed by systems that read SFM features (SpeechMapper); cascades read ``wav``.
    target_lang : str, optional
        Target language for rows without a ``tgt_lang`` column (ST).

    Returns
    -------
    DynamicItemDataset
    """
    required = {"asr": ["wrd"], "st": ["wrd", "tgt"], "sqa": ["tgt", "question"]}
    if task not in required:
        raise ValueError(f"Unknown task {task!r}; expected one of {sorted(required)}.")
    dataset, csv_path = _load_task_manifests(csv_paths, task, required[task])
    first = dataset.data[dataset.data_ids[0]]
    if task == "st" and "tgt_lang" not in first and not target_lang:
        raise KeyError(
            f"Manifest {csv_path} has no tgt_lang column: set the target language "
            "(--target_lang=de) for this ST test set."
        )
    for utt_id in dataset.data_ids:
        row = dataset.data[utt_id]
        row.setdefault("wrd", "")
        row["transcript"] = row.get("transcript") or row["wrd"]
        row.setdefault("tgt", row["wrd"])
        row.setdefault("tgt_lang", target_lang or "en")
        row.setdefault("question", "")
        row.setdefault("context", "")
        row.setdefault("wav", "")
    dataset = DynamicItemDataset(dataset.data)  # registers the added columns as static keys
    keys = ["id", "wav", *EVAL_FIELDS]
    if feature_cache is not None:
        dataset = _keep_cached(dataset, feature_cache, csv_path)
        _add_feats(dataset, feature_cache)
        keys.append("feats")
    dataset.set_output_keys(keys)
    return dataset


def open_feature_cache(folder, feature_dim, key="feature_folder"):
    """The feature cache at ``folder``, checked to hold ``feature_dim``-dim features (the
    projector's input size); ``key`` is the YAML key that named the folder."""
    cache = FeatureCache(folder)
    if cache.dim != feature_dim:
        raise ValueError(
            f"feature_dim={feature_dim} but the feature cache {folder} ({key}) holds "
            f"{cache.dim}-dim features ({cache.config.get('kind')} "
            f"{cache.config.get('source')}): set --feature_dim={cache.dim} or point --{key} "
            "to the right cache."
        )
    return cache


def dataio_prepare(hparams, tokenizer):
    """Train/valid/test datasets of an ASR recipe over the cached features.

    Reads ``feature_folder``, ``feature_dim``, ``manifest_folder``, ``train_splits``,
    ``valid_split`` and ``test_splits`` from ``hparams``; checks that the cache holds
    features of the projector's input size.

    Returns
    -------
    train_data, valid_data : DynamicItemDataset
    test_datasets : dict
        Split name -> DynamicItemDataset.
    """
    cache = open_feature_cache(hparams["feature_folder"], hparams["feature_dim"])
    folder = hparams["manifest_folder"]
    train_data = load_asr_dataset(
        [manifest_path(folder, s) for s in hparams["train_splits"]], cache, tokenizer
    )
    valid_data = load_asr_dataset(manifest_path(folder, hparams["valid_split"]), cache, tokenizer)
    test_datasets = {
        s: load_asr_dataset(manifest_path(folder, s), cache, tokenizer)
        for s in hparams["test_splits"]
    }
    return train_data, valid_data, test_datasets


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
