#!/usr/bin/env python3
"""Evaluate a system on ACL 60/60 (ST: BLEU, COMET, output-language ID; with --task=asr
--test_splits=[eval_asr]: WER/CER): a SpeechMapper projector through the frozen LLM (with the
IWSLT 2025 LoRA adapter if given), or a baseline (``--system=asr``, ``asr+llm``,
``transcript``). One result file per test set (``speechmapper_plugin.training.recipe.evaluate_main``);
``python -m speechmapper_plugin.evaluation.iwslt_scoring`` then adds the organizers' official metrics.

Usage:
    python recipes/ACL6060/evaluate.py hparams/ACL6060/evaluate.yaml \
        --data_folder=/path/to/acl6060 --projector_checkpoint=results/stage2/.../save --system_name="A.1 Speech Projector (ASR/ST)"

Authors
-------
speechmapper developers, 2026
"""

import sys

from acl6060_prepare import prepare_acl6060

from speechmapper_plugin.training.recipe import evaluate_main

if __name__ == "__main__":
    evaluate_main(prepare_acl6060, sys.argv[1:])
