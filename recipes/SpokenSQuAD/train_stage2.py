#!/usr/bin/env python3
"""Task-specific SpeechMapper stage 2 on Spoken-SQuAD (ASR/SQA CE, ASR batches with probability 0.5; paper Sec. 3-4):
the stage-1 projector adapted for 1K steps on the frozen LLM, then the test sets decoded with
the task prompt and scored (``speechmapper_plugin.training.recipe.train_stage2_task_main``).

Usage:
    python recipes/SpokenSQuAD/train_stage2.py hparams/SpokenSQuAD/stage2_sqa.yaml \
        --data_folder=/path/to/data --stage1_checkpoint=results/stage1/.../save

Authors
-------
speechmapper developers, 2026
"""

import sys

from spokensquad_prepare import prepare_spokensquad

from speechmapper_plugin.training.recipe import train_stage2_task_main

if __name__ == "__main__":
    train_stage2_task_main(prepare_spokensquad, sys.argv[1:])
