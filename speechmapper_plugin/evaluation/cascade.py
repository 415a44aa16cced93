"""ASR front-end of the cascaded baselines (paper Sec. 3: "ASR + LLM" pipelines, Table 8's
"Seamless ASR" row): any Hugging Face speech-recognition model, by hub id or local folder,
through the ``transformers`` ASR pipeline.

The paper's pipeline uses ``facebook/seamless-m4t-v2-large`` (pass
``generate_kwargs={"tgt_lang": "eng"}``); Whisper, wav2vec2-CTC and the other models the ASR
pipeline supports work the same way. Its transcripts go through the same prompts and metrics
as the SpeechMapper outputs (``brain.EvalBrain``).

Authors
-------
speechmapper developers, 2026
"""

import torch

from speechmapper_plugin.features.audio import load_audio
from speechmapper_plugin.models.hub import MODEL_FILE_PATTERNS, resolve_source

#: Files an ASR model folder may need besides the LLM ones (feature extractor, processor).
ASR_FILE_PATTERNS = MODEL_FILE_PATTERNS + ["preprocessor_config.json", "*.model", "vocab.json"]


class HFTranscriber(torch.nn.Module):
    """Greedy transcription of audio files with a Hugging Face ASR model.

    Arguments
    ---------
    source : str
        Hub id or local folder of a model the ``automatic-speech-recognition`` pipeline loads.
    dtype : str
        Weight dtype ("float32", "bfloat16", "float16").
    batch_size : int
        Pipeline batch size.
    generate_kwargs : dict, optional
        Passed to ``generate`` for sequence-to-sequence models (e.g. ``{"tgt_lang": "eng"}``
        for SeamlessM4T-v2, ``{"language": "en"}`` for Whisper).
    cache_dir : str, optional
        Hub cache.
    device : str, optional
        Device the model is loaded on ("cpu", "cuda:0"); moving the module (``.to``, as
        ``EvalBrain`` does for ``--device``) moves the model and the pipeline with it.
    sample_rate : int
        Audio is loaded (resampled, downmixed) at this rate.
    """

    def __init__(
        self,
        source,
        dtype="float32",
        batch_size=8,
        generate_kwargs=None,
        cache_dir=None,
        device=None,
        sample_rate=16000,
    ):
        super().__init__()
        from transformers import pipeline

        folder = resolve_source(source, cache_dir=cache_dir, allow_patterns=ASR_FILE_PATTERNS)
        self.source = str(source)
        self.sample_rate = int(sample_rate)
        self.batch_size = int(batch_size)
        self.generate_kwargs = dict(generate_kwargs or {})
        self.pipe = pipeline(
            "automatic-speech-recognition",
            model=str(folder),
            dtype=getattr(torch, dtype) if isinstance(dtype, str) else dtype,
            device=device,
        )
        self.pipe.model.requires_grad_(False)
        self.asr_model = self.pipe.model  # a submodule: .to(device) moves it with the module

    def train(self, mode=True):
        """Stays in eval mode (frozen baseline)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, paths):
        """Transcribe audio files or segments.

        The pipeline runs on the device of the module (``EvalBrain`` moves it to
        ``--device``).

        Arguments
        ---------
        paths : list of str or tuple
            Audio files (any format ``audio.load_audio`` reads), or ``(path, start, stop)``
            segments in seconds (start/stop "" or None: the whole file).

        Returns
        -------
        list of str
            The transcripts (stripped).
        """
        inputs = []
        for item in paths:
            path, start, stop = (item, None, None) if isinstance(item, str) else item
            wav = load_audio(
                path,
                self.sample_rate,
                start=None if start in ("", None) else float(start),
                stop=None if stop in ("", None) else float(stop),
            )
            inputs.append({"raw": wav.numpy(), "sampling_rate": self.sample_rate})
        self.pipe.device = next(self.asr_model.parameters()).device
        kwargs = {"batch_size": self.batch_size}
        if self.generate_kwargs:
            kwargs["generate_kwargs"] = self.generate_kwargs
        outputs = self.pipe(inputs, **kwargs)
        return [out["text"].strip() for out in outputs]
