#!/usr/bin/env python3
"""IWSLT25 data tool: translation + COMET filter. The chosen columns of a manifest (default:
SQA ``question`` and ``tgt``, each answer apart; ``transcript:tgt`` makes ST rows) are
translated from English into each target language with SeamlessM4T-v2 (text-to-text), and a
``(row, language)`` item is kept only if every translated text has a round-trip COMET score
(back-translation scored against the original) >= 0.85 (``speechmapper_plugin.datatools.translation``).
One output row per kept item, ID ``<ID>_<lang>``, ``tgt_lang`` set. Resumes after an
interruption without translating again what it decided; writes ``<output stem>.report.json``
(kept / dropped by reason) and ``<output stem>.dropped.tsv`` (with the scores).

Usage:
    python recipes/IWSLT25/tools/translate_manifest.py \
        --input results/spokensquad/manifests/train.csv \
        --output results/iwslt25/sqa/train_translated.csv --languages de it zh \
        --model facebook/seamless-m4t-v2-large --comet-model Unbabel/wmt22-comet-da \
        --dtype bfloat16 --device cuda:0 [--columns question tgt] [--threshold 0.85]
    # ST rows from an English ASR manifest:
    python recipes/IWSLT25/tools/translate_manifest.py --input asr.csv --output st.csv \
        --columns transcript:tgt --task st --languages de it zh

Authors
-------
speechmapper developers, 2026
"""

from speechmapper_plugin.datatools.translation import main

if __name__ == "__main__":
    main()
