#!/usr/bin/env python3
"""Embedding noise injection (SpeechMapper paper App. A.3, Algorithm 1, Table 6) on the
LibriSpeech test transcripts, for any LLM by hub id or local folder: the transcripts' token
embeddings, perturbed at each noise degree, go into the speech slot of the repeat prompt of
App. B.3; the frozen LLM decodes greedily; WER against the transcript. Writes one result file
per degree (``<output_folder>/results``), the embedding error threshold (``eet.json``) and
Table 6 (``noise_table.md``). The steps are in
``speechmapper_plugin.evaluation.noise_injection``.

Usage:
    python recipes/LibriSpeech/noise_injection.py hparams/noise_injection.yaml \
        --data_folder=/path/to/LibriSpeech --device=cuda:0
    # the prose's reading (one offset per token) instead of Algorithm 1:
    python recipes/LibriSpeech/noise_injection.py hparams/noise_injection.yaml \
        --data_folder=/path/to/LibriSpeech --noise_mode=per_token
    # both LLMs and modes in one table:
    python -m speechmapper_plugin.evaluation.report results/noise_injection --layout noise

Authors
-------
speechmapper developers, 2026
"""

import os
import sys

import speechbrain as sb
from librispeech_prepare import prepare_librispeech

from speechmapper_plugin.data.datasets import load_eval_dataset
from speechmapper_plugin.data.manifests import manifest_path
from speechmapper_plugin.evaluation.noise_injection import run_noise_injection
from speechmapper_plugin.evaluation.noise_table import write_noise_table
from speechmapper_plugin.training.experiment import prepare_data, start_experiment

if __name__ == "__main__":
    # 1. Hyperparameters and experiment folder (--key=value overrides any YAML key)
    _, run_opts, _, hparams = start_experiment(sys.argv[1:])

    # 2. Data preparation (no-op when the manifests are up to date)
    prepare_data(prepare_librispeech, hparams, hparams["test_splits"])

    # 3. Test sets: the transcripts (no audio, no features)
    test_sets = {
        split: load_eval_dataset(manifest_path(hparams["manifest_folder"], split), "asr")
        for split in hparams["test_splits"]
    }

    # 4. Every noise degree through the frozen LLM, WER, EET
    results, _ = run_noise_injection(hparams, run_opts, test_sets)

    # 5. Table 6
    if sb.utils.distributed.if_main_process():
        text = write_noise_table(os.path.join(hparams["output_folder"], "noise_table.md"), results)
        print(text)
