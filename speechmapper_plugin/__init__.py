"""SpeechMapper: a SpeechBrain plugin that maps speech-foundation-model features into a
frozen LLM's input-embedding space (Mohapatra, Zanon Boito & Calapodescu, 2026).

Modules (one idea each):

- ``projector``  : the SpeechMapper projector (paper Sec. 2.1, App. A.1).
- ``losses``     : stage-1 loss (eq. 1-2) and stage-2 loss (eq. 3).
- ``llm``        : the frozen LLM: embedding-only loading (stage 1), prompt splicing,
  CE and greedy generation (stage 2), nearest-embedding decoding.
- ``features``   : SFM feature extraction (SeamlessM4T-v2, wav2vec2/HuBERT, Fbank) and
  the on-disk feature cache.
- ``text``       : MMS-style target-text normalization.
- ``prompts``    : prompt templates (zero-shot ASR prompt, IT template).
- ``metrics``    : WER/CER.
- ``brains``     : the SpeechBrain ``Brain`` classes for stage 1 and stage 2.
"""

__version__ = "0.1.0"
