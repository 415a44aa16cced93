"""Data (core layer: imports ``utils`` and ``features``).

- ``manifests``: CSV manifests read verbatim, written atomically, checked for columns.
- ``prompts``: the papers' prompts (Table 11 zero-shot ASR, IT template, ST/SQA instructions).
- ``datasets``: SpeechBrain datasets of every stage (cached features + tokenized targets).
- ``samplers``: global plans of optimizer steps shared by the processes (stage-1 epochs,
  task/language mixtures, interleaved speech/text batches), sharded evaluation batches.
- ``preparation``: the contract every dataset's ``*_prepare.py`` follows (``run_preparation``).
- ``cache_config``: the feature-cache configuration stored with projector checkpoints and checked.
"""

from speechmapper_plugin.data.datasets import (
    dataio_prepare,
    load_asr_dataset,
    load_eval_dataset,
    load_stage2_dataset,
    load_text_dataset,
)
from speechmapper_plugin.data.manifests import read_manifest, write_csv
from speechmapper_plugin.data.preparation import prepare_cli, run_preparation
from speechmapper_plugin.data.prompts import build_prompt, task_prompt
from speechmapper_plugin.data.samplers import (
    EpochBatchSampler,
    InterleavedBatchSampler,
    TaskMixtureBatchSampler,
)

__all__ = [
    "EpochBatchSampler",
    "InterleavedBatchSampler",
    "TaskMixtureBatchSampler",
    "build_prompt",
    "dataio_prepare",
    "load_asr_dataset",
    "load_eval_dataset",
    "load_stage2_dataset",
    "load_text_dataset",
    "prepare_cli",
    "read_manifest",
    "run_preparation",
    "task_prompt",
    "write_csv",
]
