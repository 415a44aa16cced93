#!/usr/bin/env python3
"""Task-specific stage 2 (paper Sec. 3, setting iii) on a LibriSpeech-layout corpus with a
translation: the mini-corpus' synthetic speech translation into Minish
(``hparams/stage2_st_minish.yaml``, ``translation: minish``). The stage-1 projector is
instruction-tuned through the frozen LLM on the task's data (CE), then the test sets are
decoded with the task's prompt and scored. The steps are
``speechmapper_plugin.training.recipe.train_stage2_task_main``, shared by every dataset.

Usage:
    python recipes/LibriSpeech/train_stage2_task.py hparams/stage2_st_minish.yaml \
        --data_folder=results/tiny_demo/minicorpus --cache_folder=results/tiny_demo/cache \
        --llm_source=<tiny chat LM folder> --stage1_checkpoint=results/tiny_demo/stage1/save

Authors
-------
speechmapper developers, 2026
"""

import sys

from librispeech_prepare import prepare_librispeech

from speechmapper_plugin.training.recipe import train_stage2_task_main

if __name__ == "__main__":
    train_stage2_task_main(prepare_librispeech, sys.argv[1:])
