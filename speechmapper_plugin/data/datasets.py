"""SpeechBrain datasets of every stage: cached SFM features with targets tokenized for the
frozen LLM (``load_asr_dataset``: stage 1 and the task-agnostic stage 2), task prompts and
targets (``load_stage2_dataset``: task-specific stage 2, IWSLT25 stages A and C), text-only
instruction data (``load_text_dataset``: IWSLT25 stage B), test sets of every task
(``load_eval_dataset``), and ``dataio_prepare`` for the LibriSpeech stage recipes.

Dataset recipes differ only in their preparation script (which writes the CSV manifests) and
their hparams; everything from the manifests on is here and in ``manifests`` / ``samplers``.

Authors
-------
speechmapper developers, 2026
"""

import logging
import os

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from speechmapper_plugin.data.manifests import (
    ANSWER_SEPARATOR,
    EVAL_FIELDS,
    manifest_path,
    read_manifest,
)
from speechmapper_plugin.features.cache import FeatureCache

logger = logging.getLogger(__name__)


def _load_manifests(csv_paths, nonempty=()):
    """One DynamicItemDataset over one or several manifests (unique IDs checked; every row
    holds a non-blank value in the ``nonempty`` columns present, else the line is named)."""
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
        for column in nonempty:
            empty = [i for i, row in rows.items() if column in row and not row[column].strip()]
            if empty:
                raise ValueError(
                    f"Manifest {csv_path}: {len(empty)} row(s) have an empty {column!r}, e.g. "
                    f"{empty[:3]}; every row needs one (fill it in or remove the row)."
                )
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
    dataset, csv_path = _load_manifests(csv_paths, nonempty=columns)
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
    feature_cache : speechmapper_plugin.features.cache.FeatureCache
        The cache written by ``extract_features.py``.
    tokenizer : transformers.PreTrainedTokenizerBase
        The frozen LLM's tokenizer.
    text_key : str
        Column holding the target text.

    Returns
    -------
    DynamicItemDataset
    """
    dataset, csv_path = _load_manifests(csv_paths, nonempty=[text_key])
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
    from speechmapper_plugin.data.prompts import task_prompt

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
    >>> from speechmapper_plugin.data.manifests import write_csv
    >>> p = os.path.join(tempfile.mkdtemp(), "st.csv")
    >>> write_csv(p, [{"ID": "a", "transcript": "Hello.", "tgt": "Hallo.", "tgt_lang": "de"}],
    ...           ["ID", "transcript", "tgt", "tgt_lang"])
    >>> item = load_text_dataset([{"csv": p, "task": "st"}])[0]
    >>> item["prompt"].splitlines()[0], item["target"]
    ('Text segment: Hello.', 'Hallo.')
    """
    from speechmapper_plugin.data.prompts import TEXT_PREFIX, fill_text, task_prompt

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


def load_eval_dataset(csv_paths, task, feature_cache=None, target_lang=None):
    """A ``DynamicItemDataset`` for evaluating a system on one task.

    Output keys: ``id``, ``wav``, ``start`` / ``stop`` (segment bounds in seconds, "" for a
    whole file), the ``EVAL_FIELDS`` (``tgt`` defaults to ``wrd`` for ASR,
    ``tgt_lang`` to ``target_lang``, ``question``/``context`` to "") and ``feats`` when a
    feature cache is given (uncached utterances are then left out, counted and logged).

    Arguments
    ---------
    csv_paths : str or list of str
        The manifest(s).
    task : str
        ``"asr"``, ``"st"`` or ``"sqa"``: checks that the columns the task needs are there.
    feature_cache : speechmapper_plugin.features.cache.FeatureCache, optional
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
        row.setdefault("start", "")  # segments of a longer recording (read by the cascades)
        row.setdefault("stop", "")
    dataset = DynamicItemDataset(dataset.data)  # registers the added columns as static keys
    keys = ["id", "wav", "start", "stop", *EVAL_FIELDS]
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


def feature_lengths(dataset, feature_cache):
    """Vectors of each item of ``dataset`` in ``feature_cache`` (read from the shard headers,
    no feature is loaded), in dataset order: the lengths that stage 1's ``EpochBatchSampler``
    packs into micro-batches.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.features.cache import FeatureCacheWriter
    >>> folder = tempfile.mkdtemp()
    >>> with FeatureCacheWriter(folder, {"dim": 2}) as writer:
    ...     writer.add("a", torch.zeros(5, 2)); writer.add("b", torch.zeros(3, 2))
    >>> data = DynamicItemDataset({"b": {"audio_id": "b"}, "a": {"audio_id": "a"}})
    >>> feature_lengths(data, FeatureCache(folder))
    [3, 5]
    """
    return [feature_cache.length(_audio_key(dataset, utt_id)) for utt_id in dataset.data_ids]
