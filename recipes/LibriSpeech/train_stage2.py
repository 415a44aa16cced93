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

import speechbrain as sb
from librispeech_prepare import prepare_librispeech
from speechbrain.utils.distributed import run_on_main

from speechmapper_plugin.data.cache_config import check_projector_cache, track_feature_cache
from speechmapper_plugin.data.datasets import dataio_prepare
from speechmapper_plugin.data.samplers import fixed_steps_loader_kwargs
from speechmapper_plugin.models.projectors import check_llm_width, load_projector_checkpoint
from speechmapper_plugin.training.stage2 import Stage2Brain
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

    # 5. Training: one pass over max_steps * batch_size * accumulation random utterances
    num_samples = hparams["max_steps"] * hparams["batch_size"] * brain.grad_accumulation_factor
    brain.fit(
        brain.hparams.epoch_counter,
        train_data,
        valid_data,
        train_loader_kwargs=fixed_steps_loader_kwargs(train_data, hparams, num_samples),
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )

    # 6. Test: greedy decoding with the zero-shot ASR prompt, WER/CER per split
    for name, data in test_datasets.items():
        brain.test_name = name
        brain.evaluate(data, min_key="loss", test_loader_kwargs=hparams["valid_dataloader_opts"])
