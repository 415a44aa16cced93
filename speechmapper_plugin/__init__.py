"""SpeechMapper: a SpeechBrain plugin that maps speech-foundation-model features into a
frozen LLM's input-embedding space (Mohapatra, Zanon Boito & Calapodescu, 2026), and the
IWSLT 2025 instruction-following system built on the same parts.

Subpackages, by role (lower layers never import upper ones; ``docs/architecture.md`` maps
every paper equation, algorithm, table and stage to its module):

- ``utils``: atomic file writes, hparams loading, text normalization (no package imports).
- ``models``: the projectors, the losses (eq. 1-3), the frozen LLM (hub loading, embedding
  table, tokens, prompt splicing and CE, greedy generation) and LoRA.
- ``features``: audio reading, the frozen speech encoders, the feature cache and extraction.
- ``data``: manifests, prompts, SpeechBrain datasets, samplers, the preparation contract.
- ``evaluation``: decoding statistics, metrics, the LLM judge, cascades, scoring, result
  files, tables and the IWSLT 2025 official scoring.
- ``training``: the Brain of every stage, schedules, learning curves, the shared recipe steps.
- ``datatools``: the IWSLT 2025 synthetic-data tools and their resumable job.
- ``inference``: the ``Pretrained`` interface, export of published models, the CLI.
- ``tiny``: what makes the project run offline (mini-corpus, tiny model builders, preset).
"""

__version__ = "0.1.0"
