"""The IWSLT 2025 synthetic-data tools (``recipes/IWSLT25/tools/*.py`` are thin scripts over
them), each a resumable job (``resumable.ResumableJob``) with kept/dropped reports:

- ``synthesis``: SQA passages re-synthesized with SeamlessM4T-v2 TTS.
- ``translation``: manifests translated with SeamlessM4T-v2, kept on a round-trip COMET filter.
- ``unanswerable``: unanswerable SQA examples (questions paired with other passages).
- ``fluent``: fluent answers rewritten by the LLM, checked by language ID.
"""
