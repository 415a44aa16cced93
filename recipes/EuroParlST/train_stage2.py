#!/usr/bin/env python3
"""Task-specific SpeechMapper stage 2 on EuroParl-ST (ST CE; paper Sec. 3-4):
the stage-1 projector adapted for 1K steps on the frozen LLM, then the test sets decoded with
the task prompt and scored (``speechmapper_plugin.training.recipe.train_stage2_task_main``).

Usage:
    python recipes/EuroParlST/train_stage2.py hparams/EuroParlST/stage2_st.yaml \
        --data_folder=/path/to/data --stage1_checkpoint=results/stage1/.../save

Authors
-------
speechmapper developers, 2026
"""

import sys

from europarlst_prepare import prepare_europarlst

from speechmapper_plugin.training.recipe import train_stage2_task_main

if __name__ == "__main__":
    train_stage2_task_main(prepare_europarlst, sys.argv[1:])
