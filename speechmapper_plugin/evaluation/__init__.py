"""Evaluation (upper layer: imports the core only).

- ``decoding``: failure-mode statistics of decoded outputs (stuck, verbose; App. B.2).
- ``metrics`` (WER/CER, BLEU, language ID), ``normalizers`` (OpenAI Whisper's), ``comet``,
  ``judge`` (SQA LLM-as-judge) with ``bergen`` (BERGEN's prompt and decision rule).
- ``cascade``: the HF ASR front-end of the cascaded baselines.
- ``scoring``: all metrics of one task; ``brain``: ``EvalBrain``; ``run``: the evaluation loop;
  ``sharding``: decoding split across ``torchrun`` processes, outputs gathered once.
- ``results``: the result-file schema; ``tables`` and ``model_index``: the papers' tables and
  the model card's metadata; ``report``: their command line.
- ``iwslt_scoring`` with ``talk_metrics`` and ``bertscore``: the IWSLT 2025 official scoring.
- ``noise_injection`` (App. A.3, Algorithm 1: noisy transcript embeddings through the LLM, the
  embedding error threshold) and ``noise_table`` (Table 6).
"""

from speechmapper_plugin.evaluation.brain import EvalBrain
from speechmapper_plugin.evaluation.results import load_results, make_result, write_result
from speechmapper_plugin.evaluation.scoring import score_outputs
from speechmapper_plugin.evaluation.tables import markdown_tables

__all__ = [
    "EvalBrain",
    "load_results",
    "make_result",
    "markdown_tables",
    "score_outputs",
    "write_result",
]
