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
from speechbrain.dataio.dataio import load_data_csv
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.sampler import DynamicBatchSampler, ReproducibleRandomSampler

from .features import FeatureCache
from .files import atomic_write_text

__all__ = [
    "write_csv",
    "manifest_path",
    "load_asr_dataset",
    "load_eval_dataset",
    "EVAL_FIELDS",
    "ANSWER_SEPARATOR",
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


def manifest_path(folder, split):
    """Path of a split's manifest: ``<folder>/<split>.csv``."""
    return os.path.join(folder, f"{split}.csv")


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
        rows = load_data_csv(csv_path)
        if not rows:
            raise ValueError(f"Manifest {csv_path} holds no utterance.")
        duplicates = data.keys() & rows.keys()
        if duplicates:
            raise ValueError(
                f"Manifest {csv_path} repeats {len(duplicates)} utterance ID(s) of "
                f"{csv_paths[0]}..., e.g. {sorted(duplicates)[:3]}: IDs must be unique."
            )
        data.update(rows)
    return DynamicItemDataset(data), ", ".join(csv_paths)


def _keep_cached(dataset, feature_cache, csv_path):
    """Drop (count and log) the utterances that have no cached features."""
    missing = [i for i in dataset.data_ids if i not in feature_cache]
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
    return dataset.filtered_sorted(key_test={"id": lambda i: i in feature_cache})


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
        raise KeyError(f"Manifest {csv_path} has no column {text_key!r} (has {sorted(first)}).")
    dataset = _keep_cached(dataset, feature_cache, csv_path)

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides("feats")
    def feats_pipeline(utt_id):
        return feature_cache[utt_id]

    @sb.utils.data_pipeline.takes(text_key)
    @sb.utils.data_pipeline.provides("wrd", "tokens", "num_tokens")
    def text_pipeline(text):
        yield text
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        yield torch.LongTensor(ids)
        yield len(ids)

    dataset.add_dynamic_item(feats_pipeline)
    dataset.add_dynamic_item(text_pipeline)
    dataset.set_output_keys(["id", "feats", "wrd", "tokens", "num_tokens"])
    return dataset


#: Manifest columns an evaluation reads (besides ``ID`` and ``wav``): ``wrd`` the source
#: transcript, ``tgt`` the task's reference (translation, answer; the transcript for ASR;
#: several SQA answers separated by ``ANSWER_SEPARATOR``), ``tgt_lang``, ``question``, ``context``.
EVAL_FIELDS = ("wrd", "tgt", "tgt_lang", "question", "context")
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
    dataset, csv_path = _load_manifests(csv_paths)
    first = dataset.data[dataset.data_ids[0]]
    missing = [c for c in required[task] if c not in first]
    if missing:
        raise KeyError(
            f"Manifest {csv_path} lacks the column(s) {missing} that task {task!r} needs "
            f"(it has {sorted(first)}); re-run the dataset's prepare script."
        )
    if task == "st" and "tgt_lang" not in first and not target_lang:
        raise KeyError(
            f"Manifest {csv_path} has no tgt_lang column: set the target language "
            "(--target_lang=de) for this ST test set."
        )
    for utt_id in dataset.data_ids:
        row = dataset.data[utt_id]
        row.setdefault("wrd", "")
        row.setdefault("tgt", row["wrd"])
        row.setdefault("tgt_lang", target_lang or "en")
        row.setdefault("question", "")
        row.setdefault("context", "")
        row.setdefault("wav", "")
    dataset = DynamicItemDataset(dataset.data)  # registers the added columns as static keys
    keys = ["id", "wav", *EVAL_FIELDS]
    if feature_cache is not None:
        dataset = _keep_cached(dataset, feature_cache, csv_path)

        @sb.utils.data_pipeline.takes("id")
        @sb.utils.data_pipeline.provides("feats")
        def feats_pipeline(utt_id):
            return feature_cache[utt_id]

        dataset.add_dynamic_item(feats_pipeline)
        keys.append("feats")
    dataset.set_output_keys(keys)
    return dataset


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
    cache = FeatureCache(hparams["feature_folder"])
    if cache.dim != hparams["feature_dim"]:
        raise ValueError(
            f"feature_dim={hparams['feature_dim']} but the feature cache "
            f"{hparams['feature_folder']} holds {cache.dim}-dim features "
            f"({cache.config.get('kind')} {cache.config.get('source')}): set "
            f"--feature_dim={cache.dim} or point --feature_folder to the right cache."
        )
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
