#!/usr/bin/env python3
"""Extract frozen SFM features of LibriSpeech into SpeechMapper's on-disk feature cache.

Runs the data preparation (manifests), then the SFM encoder (SeamlessM4T-v2 layer 24 by
default) on every utterance of the configured splits, averaging every ``frame_average``
frames, and stores fp16 features by utterance ID. Re-running resumes: utterances already in
the cache are skipped. Unreadable audio and over-long utterances are skipped and counted.
The steps are ``speechmapper_plugin.training.recipe.extract_features_main``, shared by every dataset.

Usage:
    python recipes/LibriSpeech/extract_features.py hparams/features.yaml \
        --data_folder=/path/to/LibriSpeech [--device=cuda:0]

Authors
-------
speechmapper developers, 2026
"""

import sys

from librispeech_prepare import prepare_librispeech

from speechmapper_plugin.training.recipe import extract_features_main

if __name__ == "__main__":
    extract_features_main(prepare_librispeech, sys.argv[1:])
