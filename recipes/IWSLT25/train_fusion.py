#!/usr/bin/env python3
"""IWSLT25 instruction-following system, stage C: fusion of the stage-A projector and the
stage-B LoRA adapters, trained together (two optimizers) for 1K steps on speech batches
each followed by the matching text batch (``speechmapper_plugin.training.recipe.train_multitask_main``).

Usage:
    python recipes/IWSLT25/train_fusion.py hparams/IWSLT25/stage_c_fusion.yaml \
        --projector_init=results/iwslt25/stage_a2_projector/llama-3.1-8b-instruct/1986/save \
        --lora_adapter=results/iwslt25/stage_b_lora/llama-3.1-8b-instruct/1986/adapter

Authors
-------
speechmapper developers, 2026
"""

import sys

from speechmapper_plugin.training.recipe import train_multitask_main

if __name__ == "__main__":
    train_multitask_main(sys.argv[1:])
