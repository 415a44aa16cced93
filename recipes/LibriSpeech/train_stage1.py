#!/usr/bin/env python3
"""SpeechMapper stage 1 on LibriSpeech: pretrain the projector against the frozen LLM's
embedding table (no LLM forward), paper Sec. 2.2.

Validation and test use the nearest-embedding diagnostic: every output vector is mapped to
the closest row of the embedding table, cut at the first pad, and scored with WER/CER.

Usage (after extract_features.py with the same cache_folder):
    python recipes/LibriSpeech/train_stage1.py hparams/stage1.yaml \
        --data_folder=/path/to/LibriSpeech [--lr=5e-5] [--precision=bf16]

Authors
-------
speechmapper developers, 2026
"""

import sys

import speechbrain as sb
from librispeech_prepare import prepare_librispeech
from speechbrain.utils.distributed import run_on_main

from speechmapper_plugin.data.cache_config import track_feature_cache
from speechmapper_plugin.data.datasets import dataio_prepare
from speechmapper_plugin.data.samplers import train_loader_kwargs
from speechmapper_plugin.training.stage1 import Stage1Brain
from speechmapper_plugin.utils.hparams import load_hparams, parse_arguments

if __name__ == "__main__":
    # 1. Hyperparameters and experiment folder (--key=value overrides any YAML key; the
    #    overrides are type-checked against the YAML before anything is loaded or written)
    hparams_file, run_opts, overrides = parse_arguments(sys.argv[1:])
    sb.utils.distributed.ddp_init_group(run_opts)
    hparams = load_hparams(hparams_file, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    # 2. Data preparation (no-op when the manifests are up to date)
    run_on_main(
        prepare_librispeech,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["manifest_folder"],
            "splits": hparams["train_splits"] + [hparams["valid_split"]] + hparams["test_splits"],
            "max_duration": hparams["max_duration"],
            "skip_prep": hparams["skip_prep"],
        },
    )

    # 3. Datasets (features from the cache, targets tokenized for the frozen LLM); every
    #    checkpoint stores the cache's configuration (checked by stage 2 and evaluation)
    tokenizer = hparams["embeddings"].tokenizer
    train_data, valid_data, test_datasets = dataio_prepare(hparams, tokenizer)
    track_feature_cache(hparams["checkpointer"], hparams["feature_folder"])

    # 4. Brain
    brain = Stage1Brain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.tokenizer = tokenizer

    # 5. Training (resumes from the last checkpoint in save_folder)
    train_data, train_opts = train_loader_kwargs(train_data, hparams)
    brain.fit(
        brain.hparams.epoch_counter,
        train_data,
        valid_data,
        train_loader_kwargs=train_opts,
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )

    # 6. Test: nearest-embedding decoding with the best (lowest validation WER) checkpoint
    for name, data in test_datasets.items():
        brain.test_name = name
        brain.evaluate(data, min_key="WER", test_loader_kwargs=hparams["valid_dataloader_opts"])
