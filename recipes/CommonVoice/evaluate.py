#!/usr/bin/env python3
"""Evaluate a system on the Common Voice 17 (en) test sets (ASR: WER/CER): a SpeechMapper stage-1/2
projector through the frozen LLM (zero-shot by default), or a baseline (``--system=asr``,
``asr+llm``, ``transcript``). One result file per test set (``speechmapper_plugin.training.recipe.evaluate_main``).

Usage:
    python recipes/CommonVoice/evaluate.py hparams/CommonVoice/evaluate.yaml \
        --data_folder=/path/to/data --projector_checkpoint=results/stage2/.../save --system_name="Stage 2 [ASR CE+MSE]"

Authors
-------
speechmapper developers, 2026
"""

import sys

from commonvoice_prepare import prepare_commonvoice

from speechmapper_plugin.training.recipe import evaluate_main

if __name__ == "__main__":
    evaluate_main(prepare_commonvoice, sys.argv[1:])
