#!/usr/bin/env python3
"""IWSLT25 data tool: SQA audio re-synthesis. Every passage of an SQA manifest (rows sharing
``audio_id``) is synthesized again from its text (``context``) with SeamlessM4T-v2 TTS, sentence
by sentence, by one speaker drawn per passage from a pool of vocoder speakers (seeded,
reproducible); the 16 kHz wavs are written atomically and every question row of the passage
points at the new audio (new ``audio_id``, ``spk_id``, ``duration``) (``speechmapper_plugin.datatools.synthesis``).
Resumes after an interruption without synthesizing a decided passage again; writes
``<output stem>.report.json`` (kept / dropped by reason) and ``<output stem>.dropped.tsv``.

Usage:
    python recipes/IWSLT25/tools/resynthesize_sqa.py \
        --input results/spokensquad/manifests/train.csv \
        --output results/iwslt25/sqa/train_seamless.csv \
        --model facebook/seamless-m4t-v2-large --speakers 0-199 --seed 0 \
        --dtype float16 --device cuda:0 [--audio-folder DIR] [--max-duration 120]

Authors
-------
speechmapper developers, 2026
"""

from speechmapper_plugin.datatools.synthesis import main

if __name__ == "__main__":
    main()
