#!/usr/bin/env python3
"""Evaluate a system on the LibriSpeech test sets (ASR): a SpeechMapper stage-1 or stage-2
projector through the frozen LLM (zero-shot ASR prompt, Table 11), the stage-1
nearest-embedding diagnostic, or the baselines (an HF ASR model; transcripts + LLM).
Writes one result JSON per test set (WER/CER, stuck/verbose rates, decoded outputs).

Usage:
    python recipes/LibriSpeech/evaluate.py hparams/evaluate.yaml \
        --data_folder=/path/to/LibriSpeech --projector_checkpoint=results/stage2/.../save \
        --system_name="Stage 2 [ASR CE+MSE]"
    python recipes/LibriSpeech/evaluate.py hparams/evaluate.yaml \
        --data_folder=/path/to/LibriSpeech --system=asr --system_name="Seamless ASR"

Authors
-------
speechmapper developers, 2026
"""

import sys

import speechbrain as sb
from librispeech_prepare import prepare_librispeech
from speechbrain.utils.distributed import run_on_main

from speechmapper_plugin.data import load_eval_dataset, manifest_path
from speechmapper_plugin.evaluation import SYSTEM_MODULES, evaluate_test_sets
from speechmapper_plugin.features import FeatureCache
from speechmapper_plugin.hparams import load_hparams

if __name__ == "__main__":
    # 1. Hyperparameters (any YAML key can be overridden: --key=value)
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
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
            "splits": hparams["test_splits"],
            "max_duration": hparams["max_duration"],
            "skip_prep": hparams["skip_prep"],
        },
    )

    # 3. Test sets (SpeechMapper systems read the cached SFM features, baselines the audio)
    cache = None
    if "projector" in SYSTEM_MODULES.get(hparams["system"], ()):
        cache = FeatureCache(hparams["feature_folder"])
    test_sets = {
        split: load_eval_dataset(
            manifest_path(hparams["manifest_folder"], split), hparams["task"], cache
        )
        for split in hparams["test_splits"]
    }

    # 4. Decoding and scoring, one result file per test set
    evaluate_test_sets(hparams, run_opts, test_sets)
