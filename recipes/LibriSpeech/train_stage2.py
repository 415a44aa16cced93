#!/usr/bin/env python3
"""SpeechMapper stage 2 on LibriSpeech: attach the stage-1 projector to the frozen LLM and
adapt it for ~1K steps of ASR instruction tuning (paper Sec. 2.3), with CE (sigma=0) or
CE+MSE (sigma=0.9, task-agnostic). Test sets are decoded greedily with the zero-shot ASR
prompt (Table 11) and scored with WER/CER.

Usage:
    python recipes/LibriSpeech/train_stage2.py hparams/stage2.yaml \
        --data_folder=/path/to/LibriSpeech --stage1_checkpoint=results/stage1/.../save \
        [--sigma=0.0] [--precision=bf16]

Authors
-------
speechmapper developers, 2026
"""

import sys

from librispeech_prepare import prepare_librispeech

from speechmapper_plugin.data.cache_config import check_projector_cache, track_feature_cache
from speechmapper_plugin.data.datasets import dataio_prepare
from speechmapper_plugin.models.projectors import check_llm_width, load_projector_checkpoint
from speechmapper_plugin.training.experiment import prepare_data, start_experiment
from speechmapper_plugin.training.recipe import fit_for_steps, step_sampler
from speechmapper_plugin.training.stage2 import Stage2Brain

if __name__ == "__main__":
    # 1. Hyperparameters and experiment folder (--key=value overrides any YAML key, checked
    #    against its type before anything is written; one job per output folder)
    _, run_opts, _, hparams = start_experiment(sys.argv[1:])

    # 2. Data preparation (no-op when the manifests are up to date)
    splits = hparams["train_splits"] + [hparams["valid_split"]] + hparams["test_splits"]
    prepare_data(prepare_librispeech, hparams, splits)

    # 3. The stage-1 projector, checked against the LLM width and against the feature cache
    #    (the features must be made as its training features); then the datasets. Every
    #    checkpoint stores the cache's configuration. A resumed run reloads its own checkpoint.
    llm = hparams["llm"]
    check_llm_width(hparams["projector"], llm.embed_dim, hparams["llm_source"])
    stage1 = load_projector_checkpoint(hparams["projector"], hparams["stage1_checkpoint"])
    check_projector_cache(stage1, hparams["feature_folder"])
    track_feature_cache(hparams["checkpointer"], hparams["feature_folder"])
    train_data, valid_data, test_datasets = dataio_prepare(hparams, llm.tokenizer)

    # 4. Brain
    brain = Stage2Brain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )

    # 5. Training: max_steps optimizer steps of batches_per_step x batch_size random
    #    utterances (global numbers, whatever the number of processes), each utterance once
    #    per pass over the data
    sampler = step_sampler(hparams, {"asr": list(range(len(train_data)))}, {"asr": 1.0})
    loader_kwargs = {"batch_sampler": sampler}
    fit_for_steps(
        brain, hparams, train_data, valid_data, loader_kwargs, hparams["max_steps"], best_key=None
    )

    # 6. Test: greedy decoding with the zero-shot ASR prompt, WER/CER per split (the
    #    checkpoint with the lowest validation loss)
    for name, data in test_datasets.items():
        brain.test_name = name
        brain.evaluate(data, min_key="loss", test_loader_kwargs=hparams["valid_dataloader_opts"])
