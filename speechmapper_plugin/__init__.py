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
- ``prompts``    : prompt templates (zero-shot ASR prompt, IT template, ST instructions in
  the target language, SQA, noise injection).
- ``data``       : manifests and SpeechBrain datasets (training and evaluation).
- ``decoding``   : stuck-decoding detection, repetition guard, verbosity rates.
- ``metrics``    : WER/CER, BLEU, COMET, output-language ID.
- ``judge``      : SQA LLM-as-judge (yes/no equivalence, averaged over judges).
- ``cascade``    : the HF ASR front-end of the cascaded baselines.
- ``evaluation`` : per-task scoring and the evaluation driver.
- ``results``    : the result-file schema; ``report``: tables and model-index metadata.
- ``inference``  : ``SpeechMapperLLM`` (``speechbrain.inference.Pretrained``); ``cli``:
  the ``speechmapper`` console command.
- ``brains``     : the SpeechBrain ``Brain`` classes (stage 1, stage 2, evaluation).
- ``tiny_llm``, ``tiny_comet``, ``minicorpus``: the offline tiny preset's models and data.
"""

__version__ = "0.1.0"
