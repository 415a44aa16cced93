#!/usr/bin/env python3
"""IWSLT25 instruction-following system, stage A: the speech projector (a 4-layer
Transformer, or a pretrained SpeechMapper) trained through the frozen LLM with CE on
multitask speech data (``speechmapper_plugin.training.recipe.train_multitask_main``).

Usage:
    python recipes/IWSLT25/train_projector.py hparams/IWSLT25/stage_a1_projector.yaml
    python recipes/IWSLT25/train_projector.py hparams/IWSLT25/stage_a2_projector.yaml
    python recipes/IWSLT25/train_projector.py hparams/IWSLT25/stage_a_speechmapper.yaml \
        --projector_init=results/stage1/llama-3.1-8b-instruct/1986/save

Authors
-------
speechmapper developers, 2026
"""

import sys

from speechmapper_plugin.training.recipe import train_multitask_main

if __name__ == "__main__":
    train_multitask_main(sys.argv[1:])
