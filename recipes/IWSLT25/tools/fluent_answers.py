#!/usr/bin/env python3
"""IWSLT25 data tool: fluent SQA answers. Every extractive answer of an SQA manifest is
rewritten into a sentence in the question's language by an LLM (batched greedy decoding), then
rewrites in another language (langdetect), empty ones and those that lost the extractive answer
are dropped (``speechmapper_plugin.datatools.fluent``). Resumes after an interruption without
regenerating what it decided; writes ``<output stem>.report.json`` (kept / dropped by reason)
and ``<output stem>.dropped.tsv``.

Usage:
    python recipes/IWSLT25/tools/fluent_answers.py \
        --input results/iwslt25/sqa/train_de.csv --output results/iwslt25/sqa/train_de_fluent.csv \
        --model meta-llama/Llama-3.1-8B-Instruct --dtype bfloat16 --device cuda:0 \
        [--batch-size 16] [--max-new-tokens 64] [--no-answer-check]

Authors
-------
speechmapper developers, 2026
"""

from speechmapper_plugin.datatools.fluent import main

if __name__ == "__main__":
    main()
