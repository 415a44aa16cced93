#!/usr/bin/env python3
"""Evaluate a system on the LibriSpeech test sets (ASR): a SpeechMapper stage-1 or stage-2
projector through the frozen LLM (zero-shot ASR prompt, Table 11), the stage-1
nearest-embedding diagnostic, or the baselines (an HF ASR model; transcripts + LLM).
Writes one result JSON per test set (WER/CER, stuck/verbose rates, decoded outputs). The
steps are ``speechmapper_plugin.training.recipe.evaluate_main``, shared by every dataset.

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

from librispeech_prepare import prepare_librispeech

from speechmapper_plugin.training.recipe import evaluate_main

if __name__ == "__main__":
    evaluate_main(prepare_librispeech, sys.argv[1:])
