"""Inference with a trained SpeechMapper: audio + instruction -> text from the frozen LLM.

``SpeechMapperLLM`` is a ``speechbrain.inference.Pretrained`` interface (paper Sec. 3,
"Inference and evaluation"): the frozen SFM encoder, the frame averaging of the feature
cache, the trained projector and the frozen LLM, decoded greedily (150 new tokens).

A *published* folder is what ``from_hparams`` loads, from disk or from a hub repository:

- ``hyperparams.yaml``: the package's ``inference/inference.yaml`` filled with the model's
  settings (prompts written out),
- ``projector.safetensors``: the trained projector weights (the LLM and the SFM are
  referenced by hub id or folder, never copied),
- ``adapter/``: the LLM's peft LoRA adapter (IWSLT 2025 system only),
- ``README.md``: the model card; ``export.json``: where it came from (informative only).

``export_model`` builds one from a training output folder of stage 1 or stage 2 (its
``hyperparams.yaml``, its best checkpoint and the ``cache.json`` of its feature cache);
``SpeechMapperLLM.from_training_folder`` and ``load_model`` do it on the fly.

Example
-------
>>> model = SpeechMapperLLM.from_hparams(source="published_folder")  # doctest: +SKIP
>>> model.transcribe_file("audio.flac")  # doctest: +SKIP
>>> model.translate_file("audio.flac", "de")  # doctest: +SKIP
>>> model.ask_file("audio.flac", "Who is speaking?")  # doctest: +SKIP

Authors
-------
speechmapper developers, 2026
"""

import os

import torch
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.data_utils import batch_pad_right

from speechmapper_plugin.data.cache_config import check_same_features, read_beside
from speechmapper_plugin.data.prompts import (
    build_prompt,
    check_prompt,
    sqa_instruction,
    st_instruction,
)
from speechmapper_plugin.features.audio import AudioError, load_audio
from speechmapper_plugin.features.frames import average_frames
from speechmapper_plugin.inference.export import _check_published_folder, export_model
from speechmapper_plugin.inference.folders import HPARAMS_FILE, folder_kind
from speechmapper_plugin.inference.weights import load_published_adapter, with_model_source
from speechmapper_plugin.models.frozen_llm import InputTooLong
from speechmapper_plugin.models.hub import _hub_error
from speechmapper_plugin.utils.progress import progress_bar


class SpeechMapperLLM(Pretrained):
    """Audio + instruction -> text with a trained SpeechMapper and its frozen LLM.

    Load it with ``from_hparams(source=<published folder or hub id>, savedir=...)`` (see
    :func:`export_model`), ``from_training_folder(<training output folder>)`` or
    :func:`load_model` (any of the three). Decoding is batched greedy search through
    ``FrozenLLM.generate`` (``max_new_tokens`` new tokens, 150 by default).

    Prompts (App. B.3): ``transcribe_*`` uses ``asr_prompt`` (the zero-shot ASR prompt of
    Table 11); ``translate_*``, ``ask_*`` and free instructions use speech prefix +
    instruction + zero-shot suffix (Table 12). An instruction holding the speech
    placeholder ``<speech>`` is used as the whole user prompt.

    Arguments
    ---------
    modules : dict
        ``encoder`` (SFM, ``forward(wavs, wav_lens) -> (feats, lens)``), ``projector``
        (``SpeechMapper``) and ``llm`` (``FrozenLLM``).
    hparams : dict
        The keys of ``HPARAMS_NEEDED``.
    run_opts : dict, optional
        SpeechBrain run options, e.g. ``{"device": "cuda:0"}``.
    freeze_params : bool
        Freeze the modules (default).

    Example
    -------
    >>> model = SpeechMapperLLM.from_hparams(source="published/llama")  # doctest: +SKIP
    >>> model.transcribe_file("audio.flac")  # doctest: +SKIP
    """

    HPARAMS_NEEDED = [
        "frame_average",
        "asr_prompt",
        "speech_prefix",
        "prompt_suffix",
        "st_instructions",
        "sqa_template",
        "max_new_tokens",
        "nearest_metric",
    ]
    MODULES_NEEDED = ["encoder", "projector", "llm"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.MODULES_NEEDED:
            if name not in self.mods:
                raise ValueError(f"SpeechMapperLLM needs the module {name!r} in `modules`.")
        encoder_dim = getattr(self.mods.encoder, "output_dim", None)
        if encoder_dim is not None and encoder_dim != self.mods.projector.input_dim:
            raise ValueError(
                f"The encoder outputs {encoder_dim}-dim features but the projector expects "
                f"{self.mods.projector.input_dim} (feature_dim): sfm_* and feature_dim must "
                "describe the features the projector was trained on."
            )
        if self.mods.projector.llm_dim != self.mods.llm.embed_dim:
            raise ValueError(
                f"The projector outputs {self.mods.projector.llm_dim}-dim vectors but the LLM "
                f"{self.mods.llm.source} has {self.mods.llm.embed_dim}-dim embeddings "
                "(llm_dim / llm_source mismatch)."
            )

    @classmethod
    def from_hparams(cls, source, hparams_file=HPARAMS_FILE, **kwargs):
        """Loads a published model from a local folder or a hub repository.

        A local folder is checked first, so that a training folder or a folder without
        ``projector.safetensors`` gets an error saying what to do.

        Arguments
        ---------
        source : str
            A published folder or a hub id.
        hparams_file : str
            The hyperparameters file of the folder.
        **kwargs
            ``savedir``, ``overrides`` (top-level keys), ``run_opts``... (see
            ``speechbrain.inference.interfaces.pretrained_from_hparams``).

        Returns
        -------
        SpeechMapperLLM
        """
        source_text = os.fspath(source) if isinstance(source, os.PathLike) else source
        local = isinstance(source_text, str) and os.path.isdir(source_text)
        if local:
            _check_published_folder(source_text, hparams_file)
        # Published weights: <source>/projector.safetensors and the LoRA adapter (weights.py).
        kwargs = with_model_source(source_text, hparams_file, kwargs)
        model = super().from_hparams(source_text, hparams_file=hparams_file, **kwargs)
        load_published_adapter(model, source_text, kwargs)
        if local:  # the encoder settings must make the features the projector was trained on
            model.check_features(read_beside(os.path.join(source_text, HPARAMS_FILE)))
        return model

    def check_features(self, trained):
        """Check that the encoder settings (``sfm_*``, ``frame_average``) make the features the
        projector was trained on (``trained``: the cache description stored with it, see
        ``data.cache_config``); ``FeatureConfigMismatch`` lists the differing fields."""
        if trained is None:
            return
        hp, encoder = self.hparams, self.mods.encoder
        config = {
            "kind": hp.sfm_kind,
            "source": hp.sfm_source,
            "layer": hp.sfm_layer,
            "frame_average": hp.frame_average,
        }
        if getattr(encoder, "output_dim", None):
            config["dim"] = encoder.output_dim
        if getattr(encoder, "frame_rate", None):
            config["frame_rate"] = encoder.frame_rate / hp.frame_average
        check_same_features(
            trained,
            {"config": config},
            "the projector",
            "the encoder settings of this model",
            fix="Load the model without overriding sfm_* / frame_average (export it again "
            "if its hyperparams.yaml was edited).",
        )

    @classmethod
    def from_training_folder(cls, folder, savedir=None, feature_config=None, **kwargs):
        """Exports a training output folder (see :func:`export_model`) and loads it.

        Arguments
        ---------
        folder : str
            The ``output_folder`` of a stage-1 or stage-2 run.
        savedir : str, optional
            Where the published folder is written (default ``<folder>/published``).
        feature_config : str or dict, optional
            See :func:`export_model`.
        **kwargs
            Passed to :meth:`from_hparams` (``overrides``, ``run_opts``...).

        Returns
        -------
        SpeechMapperLLM
        """
        savedir = savedir or os.path.join(os.fspath(folder), "published")
        export_model(folder, savedir, feature_config=feature_config)
        return cls.from_hparams(source=savedir, **kwargs)

    # ----------------------------------------------------------------------------------------
    # Prompts
    # ----------------------------------------------------------------------------------------

    def prompt(self, instruction):
        """The user prompt of an instruction (speech prefix + instruction + suffix).

        Arguments
        ---------
        instruction : str
            A task instruction, or a whole prompt holding the speech placeholder.

        Returns
        -------
        str
        """
        placeholder = self.mods.llm.placeholder
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"An instruction must be a non-empty string, got {instruction!r}.")
        if placeholder in instruction:
            return check_prompt(instruction, placeholder, name="instruction")
        return build_prompt(instruction, self.hparams.speech_prefix, self.hparams.prompt_suffix)

    def asr_prompt(self):
        """The transcription prompt (``asr_prompt``, Table 11 by default)."""
        return check_prompt(self.hparams.asr_prompt, self.mods.llm.placeholder, "asr_prompt")

    def st_prompt(self, target_lang):
        """The translation prompt; the instruction is written in ``target_lang``.

        Raises ``ValueError`` listing the supported languages for an unknown one.
        """
        return self.prompt(st_instruction(target_lang, self.hparams.st_instructions))

    def sqa_prompt(self, question):
        """The spoken-question-answering prompt for ``question``."""
        return self.prompt(sqa_instruction(question, self.hparams.sqa_template))

    # ----------------------------------------------------------------------------------------
    # Batches
    # ----------------------------------------------------------------------------------------

    @property
    def sample_rate(self):
        """Sampling rate the encoder expects (audio files are resampled to it)."""
        return int(getattr(self.mods.encoder, "sample_rate", 16000))

    def encode_batch(self, wavs, wav_lens=None):
        """Projector outputs of a batch of waveforms.

        encoder -> every ``frame_average`` frames averaged -> fp16 rounding (the feature
        cache the projector was trained on stores fp16) -> projector. The projector runs in
        the ``precision`` of the run options (``bf16``: autocast, as in training); the encoder
        always runs as at extraction.

        Arguments
        ---------
        wavs : torch.Tensor
            [B, S] waveforms at :attr:`sample_rate`.
        wav_lens : torch.Tensor, optional
            [B] relative lengths (all 1 if None).

        Returns
        -------
        speech : torch.Tensor
            [B, T, D] vectors in the LLM embedding space.
        speech_lens : torch.Tensor
            [B] relative lengths.
        """
        return self._project(*self._features(wavs, wav_lens))

    def _features(self, wavs, wav_lens=None):
        """The averaged, fp16-rounded SFM features of a batch, as in the feature cache."""
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        wavs = wavs.to(self.device, torch.float32)
        wav_lens = wav_lens.to(self.device, torch.float32)
        with torch.no_grad():
            feats, lens = self.mods.encoder(wavs, wav_lens)
            feats, lens = average_frames(feats.float(), lens, self.hparams.frame_average)
            return feats.to(torch.float16).float(), lens

    def _project(self, feats, lens):
        with torch.no_grad(), self.inference_ctx:
            return self.mods.projector(feats, lens)

    def speech_counts(self, feats, lens):
        """Speech vectors the projector makes of each utterance of a feature batch (from its
        lengths alone when the projector says how, else by running it)."""
        abs_lens = torch.round(lens.float().cpu() * feats.shape[1]).long()
        if hasattr(self.mods.projector, "output_lengths"):
            return [int(n) for n in self.mods.projector.output_lengths(abs_lens)]
        speech, speech_lens = self._project(feats, lens)
        return [int(n) for n in torch.round(speech_lens.float().cpu() * speech.shape[1])]

    def generate_batch(
        self, wavs, wav_lens, instructions, assistant_prefix="", max_new_tokens=None
    ):
        """Greedy answers of the frozen LLM to instructions about a batch of waveforms.

        Inputs whose speech vectors + prompt + ``max_new_tokens`` exceed the LLM's positions
        (``max_position_embeddings``) are refused before the projector and the LLM run
        (``InputTooLong``, listing them): cut long recordings into shorter files.

        Arguments
        ---------
        wavs : torch.Tensor
            [B, S] waveforms.
        wav_lens : torch.Tensor
            [B] relative lengths.
        instructions : str or list of str
            One instruction for all, or one per waveform (see :meth:`prompt`).
        assistant_prefix : str
            Text forced at the start of the answer.
        max_new_tokens : int, optional
            Default: the ``max_new_tokens`` hyper-parameter.

        Returns
        -------
        list of str
        """
        batch = 1 if wavs.dim() == 1 else wavs.shape[0]
        if isinstance(instructions, str):
            instructions = [instructions] * batch
        if len(instructions) != batch:
            raise ValueError(f"Got {len(instructions)} instructions for {batch} waveforms.")
        prompts = [self.prompt(instruction) for instruction in instructions]
        max_new_tokens = max_new_tokens or self.hparams.max_new_tokens
        feats, lens = self._features(wavs, wav_lens)
        self.mods.llm.check_positions(
            prompts, self.speech_counts(feats, lens), max_new_tokens, assistant_prefix
        )
        speech, speech_lens = self._project(feats, lens)
        with self.inference_ctx:
            return self.mods.llm.generate(
                speech,
                speech_lens,
                prompts,
                max_new_tokens=max_new_tokens,
                assistant_prefix=assistant_prefix,
            )

    def transcribe_batch(self, wavs, wav_lens=None):
        """Transcriptions of a batch of waveforms (zero-shot ASR prompt)."""
        return self.generate_batch(wavs, wav_lens, self.asr_prompt())

    def nearest_decode_batch(self, wavs, wav_lens=None):
        """Stage-1 diagnostic: each projector output mapped to its nearest LLM embedding.

        No LLM forward: the text is read off the embedding table (cut at the first pad),
        with the ``nearest_metric`` of the training run.

        Returns
        -------
        list of str
        """
        speech, speech_lens = self.encode_batch(wavs, wav_lens)
        table = self.mods.llm.embedding_table()
        return table.decode(speech, speech_lens, metric=self.hparams.nearest_metric)

    def forward(self, wavs, wav_lens=None, instructions=None):
        """Answers ``instructions`` (default: transcription) about a batch of waveforms."""
        if instructions is None:
            return self.transcribe_batch(wavs, wav_lens)
        return self.generate_batch(wavs, wav_lens, instructions)

    # ----------------------------------------------------------------------------------------
    # Files
    # ----------------------------------------------------------------------------------------

    def load_batch(self, paths):
        """Reads audio files (resampled, down-mixed) into a padded batch.

        Arguments
        ---------
        paths : list of str
            Audio files.

        Returns
        -------
        wavs : torch.Tensor
            [B, S] waveforms.
        wav_lens : torch.Tensor
            [B] relative lengths.

        Raises
        ------
        AudioError
            A file is missing, unreadable or too short for the encoder (the message names it).
        """
        if not paths:
            raise ValueError("No audio file given.")
        min_samples = int(getattr(self.mods.encoder, "min_samples", 1))
        wavs = []
        for path in paths:
            wav = load_audio(path, sample_rate=self.sample_rate)
            if wav.shape[0] < min_samples:
                raise AudioError(
                    f"Audio file {os.fspath(path)!r} is too short: {wav.shape[0]} samples at "
                    f"{self.sample_rate} Hz, the encoder needs at least {min_samples}."
                )
            wavs.append(wav)
        return batch_pad_right(wavs)

    def generate_files(
        self, paths, instructions, batch_size=8, assistant_prefix="", max_new_tokens=None
    ):
        """Answers for many audio files, decoded in batches of similar durations.

        Arguments
        ---------
        paths : list of str
            Audio files.
        instructions : str or list of str
            One instruction for all, or one per file (see :meth:`prompt`).
        batch_size : int
            Files per batch.
        assistant_prefix : str
            Text forced at the start of each answer.
        max_new_tokens : int, optional
            Default: the ``max_new_tokens`` hyper-parameter.

        Returns
        -------
        list of str
            The answers, in the order of ``paths``.
        """
        paths = [os.fspath(path) for path in paths]
        if isinstance(instructions, str):
            instructions = [instructions] * len(paths)
        if len(instructions) != len(paths):
            raise ValueError(f"Got {len(instructions)} instructions for {len(paths)} files.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
        for instruction in set(instructions):
            self.prompt(instruction)  # bad instructions fail before any audio is read
        sizes = [os.path.getsize(path) if os.path.isfile(path) else 0 for path in paths]
        order = sorted(range(len(paths)), key=lambda i: sizes[i], reverse=True)
        answers = [None] * len(paths)
        starts = range(0, len(order), int(batch_size))  # a progress bar on a terminal
        for first in progress_bar(starts, desc="decode", unit="batch", enable=len(starts) > 1):
            chunk = order[first : first + int(batch_size)]
            wavs, wav_lens = self.load_batch([paths[i] for i in chunk])
            try:
                texts = self.generate_batch(
                    wavs,
                    wav_lens,
                    [instructions[i] for i in chunk],
                    assistant_prefix=assistant_prefix,
                    max_new_tokens=max_new_tokens,
                )
            except InputTooLong as err:
                samples = wav_lens * wavs.shape[1]
                raise self._too_long(err, [paths[i] for i in chunk], samples) from None
            for i, text in zip(chunk, texts):
                answers[i] = text
        return answers

    def _too_long(self, err, paths, samples):
        """``InputTooLong`` naming the files, their durations and the longest that fits."""
        files = []
        longest = None
        for index, count, tokens in err.rows:
            seconds = float(samples[index]) / self.sample_rate
            files.append(f"{paths[index]} ({seconds:.1f} s: {count} speech vectors)")
            room = err.limit - tokens - err.max_new_tokens
            if count and seconds:
                fits = max(room, 0) * seconds / count
                longest = fits if longest is None else min(longest, fits)
        hint = (
            f"cut the recording into pieces of at most {int(longest)} s and decode them one by one"
            if longest
            else "shorten the prompt or lower --max-new-tokens"
        )
        _, count, tokens = err.rows[0]
        return InputTooLong(
            f"too long for the LLM {self.mods.llm.source}: {'; '.join(files)}. Speech vectors + "
            f"{tokens} prompt tokens + {err.max_new_tokens} new tokens must fit in its "
            f"{err.limit} positions (max_position_embeddings); {hint}.",
            err.rows,
            err.limit,
            err.max_new_tokens,
        )

    def generate_file(self, path, instruction, assistant_prefix="", max_new_tokens=None):
        """The answer to ``instruction`` about one audio file (see :meth:`prompt`)."""
        return self.generate_files(
            [path], instruction, assistant_prefix=assistant_prefix, max_new_tokens=max_new_tokens
        )[0]

    def transcribe_file(self, path):
        """Transcription of an audio file (zero-shot ASR prompt, Table 11)."""
        return self.generate_file(path, self.asr_prompt())

    def translate_file(self, path, target_lang):
        """Translation of an audio file into ``target_lang`` (de, es, fr, it, zh)."""
        return self.generate_file(path, self.st_prompt(target_lang))

    def ask_file(self, path, question):
        """Answer to a question about an audio file (spoken question answering)."""
        return self.generate_file(path, self.sqa_prompt(question))

    def nearest_decode_file(self, path):
        """Stage-1 nearest-embedding decoding of an audio file (no LLM forward)."""
        wavs, wav_lens = self.load_batch([path])
        return self.nearest_decode_batch(wavs, wav_lens)[0]


def load_model(source, savedir=None, **kwargs):
    """Loads a SpeechMapperLLM from a published folder, a training output folder or a hub id.

    Arguments
    ---------
    source : str
        A published folder, a training output folder (exported to ``savedir``, default
        ``<source>/published``) or a hub repository id.
    savedir : str, optional
        For a training folder, where it is exported; otherwise the ``savedir`` of
        ``from_hparams`` (default: no copy, files are read in place or from the hub cache).
    **kwargs
        Passed to ``from_hparams`` (``overrides``, ``run_opts``...).

    Returns
    -------
    SpeechMapperLLM

    Example
    -------
    >>> load_model("results/stage2/llama/sigma0.9/1986")  # doctest: +SKIP
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        if folder_kind(source) == "training":
            return SpeechMapperLLM.from_training_folder(source, savedir=savedir, **kwargs)
        return SpeechMapperLLM.from_hparams(source=source, savedir=savedir, **kwargs)
    if os.path.exists(source):
        raise NotADirectoryError(
            f"Model {source} is a file: give a published folder, a training output folder "
            "or a hub id."
        )
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise FileNotFoundError(f"Model folder {source} does not exist.")
    try:
        return SpeechMapperLLM.from_hparams(source=source, savedir=savedir, **kwargs)
    except Exception as err:  # not cached and no hub: say how to get it (models.hub)
        error = _hub_error(source, None, err)
        if error is err:
            raise
        raise error from err
