#!/usr/bin/env python3
"""Extract frozen SFM features of EuroParl-ST into SpeechMapper's feature cache (the
steps are ``speechmapper_plugin.training.recipe.extract_features_main``: manifests, then the SFM on
every configured split; resumable).

Usage:
    python recipes/EuroParlST/extract_features.py hparams/EuroParlST/features.yaml \
        --data_folder=/path/to/data [--device=cuda:0]

Authors
-------
speechmapper developers, 2026
"""

import sys

from europarlst_prepare import prepare_europarlst

from speechmapper_plugin.training.recipe import extract_features_main

if __name__ == "__main__":
    extract_features_main(prepare_europarlst, sys.argv[1:])
