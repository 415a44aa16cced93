#!/usr/bin/env python3
"""IWSLT25 data tool: unanswerable SQA examples. A seeded share of the questions of an SQA
manifest is paired with the audio and context of another passage that does not contain their
answers, and answered with the localized "not answerable" string of the question's language
(``speechmapper_plugin.datatools.unanswerable``). Resumes after an interruption; writes
``<output stem>.report.json`` (kept / dropped by reason) and ``<output stem>.dropped.tsv``.

Usage:
    python recipes/IWSLT25/tools/make_unanswerable.py \
        --input results/spokensquad/manifests/train.csv \
        --output results/iwslt25/sqa/train_unanswerable.csv --fraction 0.1 --seed 1986 \
        [--with-original] [--max-tries 10]

Authors
-------
speechmapper developers, 2026
"""

from speechmapper_plugin.datatools.unanswerable import main

if __name__ == "__main__":
    main()
