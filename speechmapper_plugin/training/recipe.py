"""The steps every dataset recipe runs, written once: a dataset's ``extract_features.py``,
``evaluate.py`` and task-specific ``train_stage2.py`` are three-line scripts that pass their
preparation function to ``extract_features_main``, ``evaluate_main`` and
``train_stage2_task_main``. Dataset recipes thus differ in data preparation and hparams only.

A preparation function has the signature
``prepare(data_folder, save_folder, splits, max_duration=None, skip_prep=False, **options)``;
``options`` come from the YAML dict ``prepare_options`` (e.g. ``covost_folder``,
``librispeech_folder``).

Authors
-------
speechmapper developers, 2026
"""

import json
import logging
import os

import speechbrain as sb

from speechmapper_plugin.data.cache_config import (
    check_projector_cache,
    check_same_caches,
    track_feature_cache,
    write_beside,
)
from speechmapper_plugin.data.datasets import (
    load_eval_dataset,
    load_stage2_dataset,
    open_feature_cache,
)
from speechmapper_plugin.data.manifests import extraction_items, manifest_path
from speechmapper_plugin.data.samplers import TaskMixtureBatchSampler, mixture_groups
from speechmapper_plugin.features.cache import LOCK_PURPOSE
from speechmapper_plugin.features.extraction import extract_to_cache
from speechmapper_plugin.training.experiment import prepare_data, start_experiment
from speechmapper_plugin.utils.checkpoints import torch_save_atomic
from speechmapper_plugin.utils.files import write_json
from speechmapper_plugin.utils.hparams import resolve_device
from speechmapper_plugin.utils.locks import FolderLock

logger = logging.getLogger(__name__)


def extract_features_main(prepare, argv):
    """``extract_features.py``: manifests, then SFM features of every configured split into
    the feature cache (resumable; one entry per ``audio_id``; segments read by start/stop).

    The feature folder is locked from before the data preparation to the end: a second
    extraction into it stops at once with an error naming the running one (a killed one
    leaves no lock). ``extract_summary.json`` keeps the summary of every split extracted
    into the folder, the latest run's for each."""
    # 1. Hyperparameters and experiment folder
    _, run_opts, _, hparams = start_experiment(argv, purpose="feature extraction")
    with FolderLock(hparams["feature_folder"], LOCK_PURPOSE) as lock:
        # 2. Data preparation (manifests)
        prepare_data(prepare, hparams, hparams["splits"])

        # 3. Extraction into the cache (the configuration is stored with it and checked)
        encoder = hparams["encoder"]
        config = {
            "kind": hparams["sfm_kind"],
            "source": hparams["sfm_source"],
            "layer": hparams["sfm_layer"],
            "frame_average": hparams["frame_average"],
            "dim": encoder.output_dim,
            "frame_rate": encoder.frame_rate / hparams["frame_average"],
        }
        summary_path = os.path.join(hparams["output_folder"], "extract_summary.json")
        summaries = {}
        if os.path.isfile(summary_path):
            try:
                with open(summary_path, encoding="utf-8") as f:
                    summaries = dict(json.load(f))
            except ValueError as err:
                logger.warning("Ignoring unreadable %s (%s): it is rewritten", summary_path, err)
        for split in hparams["splits"]:
            items = extraction_items(manifest_path(hparams["manifest_folder"], split))
            logger.info("Extracting %d audio items of %s", len(items), split)
            summaries[split] = extract_to_cache(
                encoder,
                items,
                hparams["feature_folder"],
                config,
                average=hparams["frame_average"],
                batch_seconds=hparams["extract_batch_seconds"],
                sort_window=hparams["extract_sort_window"],
                num_workers=hparams["extract_num_workers"],
                device=resolve_device(run_opts),
                max_seconds=hparams["max_duration"],
                shard_size=hparams["shard_size"],
                flush_seconds=hparams["extract_flush_seconds"],
                lock=lock,
            )
            logger.info("%s: %s", split, summaries[split])

            # 4. Summary (after each split, so that an interrupted run keeps the finished ones)
            write_json(summary_path, summaries)
    return {split: summaries[split] for split in hparams["splits"]}


def step_sampler(hparams, groups, weights):
    """The ``TaskMixtureBatchSampler`` of a step-budgeted stage: ``max_steps`` optimizer
    steps of ``batches_per_step`` micro-batches of ``batch_size`` (global numbers: each of N
    processes trains ``batches_per_step / N`` micro-batches of every step)."""
    return TaskMixtureBatchSampler(
        groups,
        weights,
        hparams["batch_size"],
        hparams["max_steps"],
        seed=hparams["seed"],
        batches_per_step=hparams["batches_per_step"],
    )


def fit_for_steps(
    brain, hparams, train_data, valid_data, loader_kwargs, max_steps, best_key="loss"
):
    """Train for ``max_steps`` optimizer steps of the whole job, whatever the number of
    processes, on the micro-batches that ``loader_kwargs["batch_sampler"]`` (a
    ``data.samplers.StepBatchSampler``) plans, then load the checkpoint with the lowest
    ``best_key`` (None: keep the last weights). A relaunched run resumes where it stopped;
    one whose budget is spent trains no further."""
    limit = brain.optimizer_step_limit
    brain.optimizer_step_limit = max_steps if limit is None else min(limit, max_steps)
    brain.fit(
        brain.hparams.epoch_counter,
        train_data,
        valid_data,
        train_loader_kwargs={"num_workers": hparams["num_workers"], **loader_kwargs},
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    if best_key:
        brain.checkpointer.recover_if_possible(min_key=best_key)


def _test_sets(hparams, cache):
    return {
        split: load_eval_dataset(
            manifest_path(hparams["manifest_folder"], split),
            hparams["task"],
            cache,
            target_lang=hparams.get("target_lang"),
        )
        for split in hparams["test_splits"]
    }


def evaluate_main(prepare, argv):
    """``evaluate.py``: decode and score the test sets with one system (``EvalBrain``),
    one result file per test set."""
    from speechmapper_plugin.evaluation.run import SYSTEM_MODULES, evaluate_test_sets

    # 1. Hyperparameters and experiment folder
    _, run_opts, _, hparams = start_experiment(argv, purpose="evaluation")

    # 2. Data preparation (no-op when the manifests are up to date)
    prepare_data(prepare, hparams, hparams["test_splits"])

    # 3. Test sets (SpeechMapper systems read the cached SFM features, baselines the audio)
    cache = None
    if "projector" in SYSTEM_MODULES.get(hparams["system"], ()):
        cache = open_feature_cache(hparams["feature_folder"], hparams["feature_dim"])
    test_sets = _test_sets(hparams, cache)

    # 4. Decoding and scoring
    return evaluate_test_sets(hparams, run_opts, test_sets)


def _stage2_sources(hparams, cache, splits, with_asr):
    sources = [
        {
            "csv": [manifest_path(hparams["manifest_folder"], s) for s in splits],
            "cache": cache,
            "task": hparams["task"],
        }
    ]
    if with_asr:
        asr_csvs = [manifest_path(hparams["asr_manifest_folder"], s) for s in hparams["asr_splits"]]
        missing = [p for p in asr_csvs if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f"asr_probability={hparams['asr_probability']} needs the ASR manifests "
                f"{missing}: prepare and extract them with the LibriSpeech recipe "
                "(recipes/LibriSpeech/extract_features.py) and point --asr_manifest_folder / "
                "--asr_feature_folder to its output, or set --asr_probability=0."
            )
        asr_cache = open_feature_cache(
            hparams["asr_feature_folder"], hparams["feature_dim"], key="asr_feature_folder"
        )
        sources.append({"csv": asr_csvs, "cache": asr_cache, "task": "asr"})
    return sources


def holdout_split(dataset, task, size, seed):
    """``(train, valid)``: at least ``size`` random rows of ``task`` (None: of any task) held
    out of a training set, whole audios at a time (the questions of one SQA passage stay on
    one side).

    Example
    -------
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> rows = {str(i): {"task": "sqa", "audio_id": f"p{i // 2}"} for i in range(10)}
    >>> train, valid = holdout_split(DynamicItemDataset(rows), "sqa", 3, seed=0)
    >>> len(train), len(valid), set(train.data_ids) & set(valid.data_ids)
    (6, 4, set())
    """
    import random

    audios = {}
    for utt_id in dataset.data_ids:
        row = dataset.data[utt_id]
        if task is None or row["task"] == task:
            audios.setdefault(row.get("audio_id") or utt_id, []).append(utt_id)
    total = sum(len(ids) for ids in audios.values())
    if not 0 < size < total:
        raise ValueError(
            f"valid_holdout={size} must be between 1 and the {total} training rows of task "
            f"{task or 'any'!r} - 1 (or give a dev manifest for validation)."
        )
    order = sorted(audios)
    random.Random(seed).shuffle(order)
    held = set()
    for audio in order:
        if len(held) >= size:
            break
        held.update(audios[audio])
    if len(held) >= total:
        raise ValueError(
            f"valid_holdout={size} leaves no {task} training row once whole audios are held "
            "out: lower --valid_holdout."
        )
    logger.info("Validation: %d %s training rows held out (no dev split).", len(held), task)
    train = dataset.filtered_sorted(key_test={"id": lambda i: i not in held})
    valid = dataset.filtered_sorted(key_test={"id": lambda i: i in held})
    return train, valid


def train_stage2_task_main(prepare, argv):
    """Task-specific stage 2 (paper Sec. 3, setting iii): the stage-1 projector adapted for
    ``max_steps`` optimizer steps on ST or SQA instruction data (CE, sigma=0 by default),
    optionally mixed with ASR batches drawn with probability ``asr_probability`` (0.5 for SQA,
    Sec. 4.2); then the test sets decoded with the task prompt and scored (``EvalBrain``)."""
    from speechmapper_plugin.evaluation.run import evaluate_test_sets
    from speechmapper_plugin.models.projectors import check_llm_width, load_projector_checkpoint
    from speechmapper_plugin.training.stage2 import Stage2Brain

    # 1. Hyperparameters and experiment folder
    _, run_opts, _, hparams = start_experiment(argv)
    task, asr_p = hparams["task"], float(hparams["asr_probability"])
    if task not in ("st", "sqa"):
        raise ValueError(f"task={task!r}: the task-specific stage 2 trains 'st' or 'sqa'.")
    if not 0.0 <= asr_p < 1.0:
        raise ValueError(f"asr_probability={asr_p} must be in [0, 1).")

    # 2. Data preparation (no-op when the manifests are up to date)
    valid_split = hparams["valid_split"]
    splits = (
        hparams["train_splits"] + ([valid_split] if valid_split else []) + hparams["test_splits"]
    )
    prepare_data(prepare, hparams, splits)

    # 3. Datasets, LLM and the stage-1 projector
    llm = hparams["llm"]
    check_llm_width(hparams["projector"], llm.embed_dim, hparams["llm_source"])
    cache = open_feature_cache(hparams["feature_folder"], hparams["feature_dim"])
    prompt_kwargs = hparams["train_prompt_kwargs"]
    train_data = load_stage2_dataset(
        _stage2_sources(hparams, cache, hparams["train_splits"], asr_p > 0),
        llm.tokenizer,
        prompt_kwargs,
    )
    if valid_split:
        valid_data = load_stage2_dataset(
            _stage2_sources(hparams, cache, [valid_split], False), llm.tokenizer, prompt_kwargs
        )
    else:  # no official dev set (e.g. Spoken-SQuAD): hold out task rows of the train split
        train_data, valid_data = holdout_split(
            train_data, task, hparams["valid_holdout"], hparams["seed"]
        )
    if hparams["sigma"] > 0:
        no_transcript = [i for i in train_data.data_ids if not train_data.data[i]["wrd"]]
        if no_transcript:
            raise ValueError(
                f"sigma={hparams['sigma']} (CE+MSE) needs a transcript (wrd) for every "
                f"training row; {len(no_transcript)} have none, e.g. {no_transcript[:3]}. "
                "Use --sigma=0 (task-specific CE, as in the paper)."
            )
    stage1 = load_projector_checkpoint(hparams["projector"], hparams["stage1_checkpoint"])
    check_projector_cache(stage1, hparams["feature_folder"])
    if asr_p > 0:
        check_same_caches(
            [hparams["feature_folder"], hparams["asr_feature_folder"]],
            ["feature_folder", "asr_feature_folder"],
        )
    track_feature_cache(hparams["checkpointer"], hparams["feature_folder"])

    # 4. Brain
    brain = Stage2Brain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )

    # 5. Training: max_steps optimizer steps of task batches (ASR batches with asr_probability)
    groups = mixture_groups(train_data, "task")
    weights = {task: 1.0 - asr_p, "asr": asr_p} if asr_p > 0 else {task: 1.0}
    sampler = step_sampler(hparams, groups, weights)
    fit_for_steps(
        brain, hparams, train_data, valid_data, {"batch_sampler": sampler}, hparams["max_steps"]
    )

    # 6. Test: the best checkpoint (lowest validation loss), task prompt, task metrics
    test_sets = _test_sets(hparams, cache)
    modules = {"projector": hparams["projector"], "llm": llm}  # the trained, unwrapped modules
    return evaluate_test_sets(hparams, run_opts, test_sets, modules=modules)


def _existing(paths, key):
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"{key}: the manifest(s) {missing} do not exist; prepare them with the dataset's "
            "recipe (e.g. recipes/CoVoST2/covost2_prepare.py) and set --{key} accordingly."
        )
    return list(paths)


def train_text_lora_main(argv):
    """IWSLT25 stage B: LoRA adapters (r=8, alpha=16) on the frozen LLM trained on text MT and
    QA built from the dataset recipes' manifests, tasks drawn with ``task_weights``; the best
    adapter (validation loss) is saved as a standard peft adapter in ``<output_folder>/adapter``."""
    from speechmapper_plugin.data.datasets import load_text_dataset
    from speechmapper_plugin.models.lora import attach_lora, save_lora
    from speechmapper_plugin.training.text_lora import TextLoRABrain

    # 1. Hyperparameters and experiment folder
    _, run_opts, _, hparams = start_experiment(argv)

    # 2. Text data (MT from ST manifests, QA from SQA manifests) and a held-out validation set
    sources = [
        {"csv": _existing(src["manifests"], "text_sources"), "task": src["task"]}
        for src in hparams["text_sources"]
    ]
    data = load_text_dataset(sources, hparams["prompt_kwargs"])
    train_data, valid_data = holdout_split(data, None, hparams["valid_holdout"], hparams["seed"])
    groups = mixture_groups(train_data, "task")
    # a task without data is an error here, before the LLM is loaded
    TaskMixtureBatchSampler(groups, hparams["task_weights"], 1, 1, num_replicas=1, rank=0)

    # 3. Adapters on the LLM
    llm = hparams["llm"]
    attach_lora(
        llm,
        r=hparams["lora_rank"],
        alpha=hparams["lora_alpha"],
        dropout=hparams["lora_dropout"],
        target_modules=hparams["lora_target_modules"],
    )

    # 4. Brain
    brain = TextLoRABrain(
        modules={"llm": llm},
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )

    # 5. Training: max_steps optimizer steps, tasks drawn with task_weights
    sampler = step_sampler(hparams, groups, hparams["task_weights"])
    fit_for_steps(
        brain, hparams, train_data, valid_data, {"batch_sampler": sampler}, hparams["max_steps"]
    )

    # 6. The best adapter, as a standard peft adapter folder
    folder = os.path.join(hparams["output_folder"], "adapter")
    if sb.utils.distributed.if_main_process():
        save_lora(llm, folder)
        logger.info("LoRA adapter saved to %s", folder)
    return folder


def train_multitask_main(argv):
    """IWSLT25 stage A (projector alone, ``lora_adapter: null``, no text sources) and stage C
    (fusion: the stage-A projector and the stage-B adapters trained together, each with its
    own optimizer, on speech batches each followed by the matching text batch). Tasks and
    languages are drawn with ``task_weights`` x ``lang_weights``. Stage C also writes the
    fused model: ``<output_folder>/adapter`` (peft) and ``<output_folder>/projector.ckpt``."""
    from speechbrain.dataio.batch import PaddedBatch
    from torch.utils.data import ConcatDataset

    from speechmapper_plugin.data.datasets import load_text_dataset
    from speechmapper_plugin.data.samplers import InterleavedBatchSampler, group_weights
    from speechmapper_plugin.models.lora import load_lora, save_lora
    from speechmapper_plugin.models.projectors import check_llm_width, load_projector_checkpoint
    from speechmapper_plugin.training.multitask import MultitaskBrain

    # 1. Hyperparameters and experiment folder
    _, run_opts, _, hparams = start_experiment(argv)

    # 2. Modules, checked before any data is read: projector width, adapter base model
    llm, projector = hparams["llm"], hparams["projector"]
    check_llm_width(projector, llm.embed_dim, hparams["llm_source"])
    folders = [src["feature_folder"] for src in hparams["speech_sources"]]
    features = check_same_caches(folders)  # one projector: the same features everywhere
    if hparams["projector_init"]:
        init = load_projector_checkpoint(projector, hparams["projector_init"])
        check_projector_cache(init, folders[0])
    track_feature_cache(hparams["checkpointer"], folders[0])
    if hparams["lora_adapter"]:
        load_lora(llm, hparams["lora_adapter"], trainable=True)

    # 3. Speech data (validation: held-out speech rows), text data, task/language weights
    sources = [
        {
            "csv": _existing(src["manifests"], "speech_sources"),
            "cache": open_feature_cache(src["feature_folder"], hparams["feature_dim"]),
            "task": src["task"],
        }
        for src in hparams["speech_sources"]
    ]
    speech = load_stage2_dataset(sources, llm.tokenizer, hparams["train_prompt_kwargs"])
    speech_train, valid_data = holdout_split(
        speech, None, hparams["valid_holdout"], hparams["seed"]
    )
    groups = mixture_groups(speech_train, "task_lang")
    weights = group_weights(groups, hparams["task_weights"], hparams["lang_weights"])
    parts, partners = [speech_train], {}
    if hparams["text_sources"]:
        text_sources = [
            {"csv": _existing(src["manifests"], "text_sources"), "task": src["task"]}
            for src in hparams["text_sources"]
        ]
        text = load_text_dataset(text_sources, hparams["prompt_kwargs"])
        for name, indices in mixture_groups(text, "task_lang").items():
            groups[f"text:{name}"] = [len(speech_train) + i for i in indices]
            partners[name] = f"text:{name}"
        parts.append(text)
    train_data = ConcatDataset(parts) if len(parts) > 1 else speech_train

    # 4. Brain (stage C: a second optimizer for the adapters)
    brain = MultitaskBrain(
        modules={"projector": projector, "llm": llm},
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )

    # 5. Training: max_steps optimizer steps over speech batches (stage A: the same batches on
    #    any number of processes) or speech batches each followed by the matching text batch
    #    (stage C: the same kind of batch on every process at each micro-step)
    if not partners:
        sampler = step_sampler(hparams, groups, weights)
    else:
        sampler = InterleavedBatchSampler(
            groups,
            weights,
            partners,
            hparams["batch_size"],
            hparams["max_steps"],
            seed=hparams["seed"],
            batches_per_step=hparams["batches_per_step"],
        )
    loader_kwargs = {
        "batch_sampler": sampler,
        "collate_fn": PaddedBatch,  # a ConcatDataset gets no default collate function
    }
    fit_for_steps(brain, hparams, train_data, valid_data, loader_kwargs, hparams["max_steps"])

    # 6. The best checkpoint (validation loss); stage C exports the fused model
    if hparams["lora_adapter"] and sb.utils.distributed.if_main_process():
        save_lora(llm, os.path.join(hparams["output_folder"], "adapter"))
        projector_file = os.path.join(hparams["output_folder"], "projector.ckpt")
        torch_save_atomic(projector.state_dict(), projector_file)
        write_beside(projector_file, features)
    return brain
