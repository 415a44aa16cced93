#!/usr/bin/env python3
"""IWSLT25 instruction-following system, stage B: text LoRA adapters (r=8, alpha=16) on the
frozen LLM, trained on MT and text QA built from the dataset recipes' manifests; saved as a
standard peft adapter (``speechmapper_plugin.training.recipe.train_text_lora_main``).

Usage:
    python recipes/IWSLT25/train_lora.py hparams/IWSLT25/stage_b_lora.yaml \
        [--llm_source=...] [--lora_rank=8]

Authors
-------
speechmapper developers, 2026
"""

import sys

from speechmapper_plugin.training.recipe import train_text_lora_main

if __name__ == "__main__":
    train_text_lora_main(sys.argv[1:])
