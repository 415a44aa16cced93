#!/usr/bin/env python3
"""Extract frozen SFM features of LibriSpeech into SpeechMapper's on-disk feature cache.

Runs the data preparation (manifests), then the SFM encoder (SeamlessM4T-v2 layer 24 by
default) on every utterance of the configured splits, averaging every ``frame_average``
frames, and stores fp16 features by utterance ID. Re-running resumes: utterances already in
the cache are skipped. Unreadable audio and over-long utterances are skipped and counted.

Usage:
    python recipes/LibriSpeech/extract_features.py hparams/features.yaml \
        --data_folder=/path/to/LibriSpeech [--device=cuda:0]

Authors
-------
speechmapper developers, 2026
"""

import logging
import os
import sys

import speechbrain as sb
from librispeech_prepare import prepare_librispeech
from speechbrain.dataio.dataio import load_data_csv
from speechbrain.utils.distributed import run_on_main

from speechmapper_plugin.data import manifest_path
from speechmapper_plugin.features import extract_to_cache
from speechmapper_plugin.files import write_json
from speechmapper_plugin.hparams import load_hparams, resolve_device

logger = logging.getLogger(__name__)

if __name__ == "__main__":
    # 1. Hyperparameters (any YAML key can be overridden: --key=value)
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    hparams = load_hparams(hparams_file, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    # 2. Data preparation (manifests)
    run_on_main(
        prepare_librispeech,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["manifest_folder"],
            "splits": hparams["splits"],
            "max_duration": hparams["max_duration"],
            "skip_prep": hparams["skip_prep"],
        },
    )

    # 3. Extraction into the cache (the configuration is stored with it and checked)
    config = {
        "kind": hparams["sfm_kind"],
        "source": hparams["sfm_source"],
        "layer": hparams["sfm_layer"],
        "frame_average": hparams["frame_average"],
        "dim": hparams["encoder"].output_dim,
        "frame_rate": hparams["encoder"].frame_rate / hparams["frame_average"],
    }
    summaries = {}
    for split in hparams["splits"]:
        rows = load_data_csv(manifest_path(hparams["manifest_folder"], split))
        items = [(utt_id, row["wav"]) for utt_id, row in rows.items()]
        logger.info("Extracting %d utterances of %s", len(items), split)
        summaries[split] = extract_to_cache(
            hparams["encoder"],
            items,
            hparams["feature_folder"],
            config,
            average=hparams["frame_average"],
            batch_size=hparams["extract_batch_size"],
            device=resolve_device(run_opts),
            max_seconds=hparams["max_duration"],
            shard_size=hparams["shard_size"],
        )
        logger.info("%s: %s", split, summaries[split])

    # 4. Summary
    write_json(os.path.join(hparams["output_folder"], "extract_summary.json"), summaries)
