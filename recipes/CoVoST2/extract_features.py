#!/usr/bin/env python3
"""Extract frozen SFM features of CoVoST 2 into SpeechMapper's feature cache (the
steps are ``speechmapper_plugin.training.recipe.extract_features_main``: manifests, then the SFM on
every configured split; resumable).

Usage:
    python recipes/CoVoST2/extract_features.py hparams/CoVoST2/features.yaml \
        --data_folder=/path/to/data [--device=cuda:0]

Authors
-------
speechmapper developers, 2026
"""

import sys

from covost2_prepare import prepare_covost2

from speechmapper_plugin.training.recipe import extract_features_main

if __name__ == "__main__":
    extract_features_main(prepare_covost2, sys.argv[1:])
