#!/usr/bin/env python3
"""Extract frozen SFM features of ACL 60/60 into SpeechMapper's feature cache (the
steps are ``speechmapper_plugin.training.recipe.extract_features_main``: manifests, then the SFM on
every configured split; resumable).

Usage:
    python recipes/ACL6060/extract_features.py hparams/ACL6060/features.yaml \
        --data_folder=/path/to/acl6060 [--device=cuda:0]

Authors
-------
speechmapper developers, 2026
"""

import sys

from acl6060_prepare import prepare_acl6060

from speechmapper_plugin.training.recipe import extract_features_main

if __name__ == "__main__":
    extract_features_main(prepare_acl6060, sys.argv[1:])
