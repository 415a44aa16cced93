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

from librispeech_prepare import prepare_librispeech

from speechmapper_plugin.data.cache_config import track_feature_cache
from speechmapper_plugin.data.datasets import dataio_prepare, feature_lengths, open_feature_cache
from speechmapper_plugin.data.samplers import train_loader_kwargs
from speechmapper_plugin.training.experiment import prepare_data, start_experiment
from speechmapper_plugin.training.recipe import fit_for_steps
from speechmapper_plugin.training.stage1 import Stage1Brain

if __name__ == "__main__":
    # 1. Hyperparameters and experiment folder (--key=value overrides any YAML key, checked
    #    against its type before anything is written; one job per output folder)
    _, run_opts, _, hparams = start_experiment(sys.argv[1:])

    # 2. Data preparation (no-op when the manifests are up to date)
    splits = hparams["train_splits"] + [hparams["valid_split"]] + hparams["test_splits"]
    prepare_data(prepare_librispeech, hparams, splits)

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

    # 5. Training: total_steps optimizer steps of batch_vectors vectors each (global numbers,
    #    whatever the number of processes), number_of_epochs at most; resumes from the last
    #    checkpoint in save_folder
    cache = open_feature_cache(hparams["feature_folder"], hparams["feature_dim"])
    train_data, train_opts = train_loader_kwargs(
        train_data, hparams, feature_lengths(train_data, cache)
    )
    fit_for_steps(
        brain, hparams, train_data, valid_data, train_opts, hparams["total_steps"], best_key=None
    )

    # 6. Test: nearest-embedding decoding with the best (lowest validation WER) checkpoint
    for name, data in test_datasets.items():
        brain.test_name = name
        brain.evaluate(data, min_key="WER", test_loader_kwargs=hparams["valid_dataloader_opts"])
