#!/usr/bin/env python3
"""Extract frozen SFM features of Common Voice 17 (en) into SpeechMapper's feature cache (the
steps are ``speechmapper_plugin.training.recipe.extract_features_main``: manifests, then the SFM on
every configured split; resumable).

Usage:
    python recipes/CommonVoice/extract_features.py hparams/CommonVoice/features.yaml \
        --data_folder=/path/to/data [--device=cuda:0]

Authors
-------
speechmapper developers, 2026
"""

import sys

from commonvoice_prepare import prepare_commonvoice

from speechmapper_plugin.training.recipe import extract_features_main

if __name__ == "__main__":
    extract_features_main(prepare_commonvoice, sys.argv[1:])
