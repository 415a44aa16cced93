"""Everything that exists so that the project runs offline and in minutes on a CPU (it ships
with the package: ``make demo`` runs on it).

- ``minicorpus`` (with ``grammar`` and ``espeak``): a synthetic English corpus in the
  LibriSpeech layout, spoken by eSpeak NG voices.
- Tiny model builders in the hub layout, loaded through the real loading code: ``llm``
  (Llama-3.1-like), ``comet``, ``seamless`` (SeamlessM4T-v2), ``bertscore``; ``builds`` holds
  their shared cached, atomic build.
- ``preset``: the command-line overrides of ``hparams/tiny.yaml``.
"""
