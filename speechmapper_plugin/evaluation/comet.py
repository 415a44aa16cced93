"""COMET (``Unbabel/wmt22-comet-da`` by default) by hub id or local checkpoint, loaded once per
process and scored x100 (``CometScorer``, ``comet_scorer``, ``comet_score``).

Authors
-------
speechmapper developers, 2026
"""

import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

from speechmapper_plugin.evaluation.metrics import _as_texts, _check_lengths, _version
from speechmapper_plugin.utils.imports import import_keeping_logging

logger = logging.getLogger(__name__)


#: The COMET model of the paper (Table 15).
DEFAULT_COMET_MODEL = "Unbabel/wmt22-comet-da"


_TRUE_VALUES = ("1", "on", "yes", "true")


class CometModelUnavailableError(RuntimeError):
    """The COMET model (or the encoder its checkpoint names) cannot be found or downloaded."""


def _hf_offline():
    """Whether the Hugging Face hub must not be contacted (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE_VALUES:
            return True
    return False


def _looks_like_path(model):
    """A local path rather than a hub id ("owner/name" or "name")."""
    expanded = os.path.expanduser(model)
    return (
        os.path.exists(expanded)
        or os.path.isabs(expanded)
        or model.startswith((".", "~"))
        or model.endswith(".ckpt")
        or model.count("/") > 1
        or os.sep != "/"
        and os.sep in model
    )


def _import_comet():
    return import_keeping_logging("comet")


@contextmanager
def _quiet_comet():
    """Lightning's device/tip banners and COMET's info messages down to warnings only."""
    names = ("pytorch_lightning", "lightning", "lightning_fabric", "comet")
    loggers = [logging.getLogger(name) for name in names]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
            yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


class CometScorer:
    """COMET scores (x100) of translations, the model loaded once on first use.

    The model is either a hub id, looked up in the Hugging Face cache (``cache_dir`` or the
    default one) and otherwise downloaded with ``comet.download_model``, or a local path: a
    ``.ckpt`` file or a folder holding ``checkpoints/model.ckpt``, with COMET's
    ``hparams.yaml`` next to ``checkpoints/``. The checkpoint is loaded with
    ``comet.load_from_checkpoint(..., reload_hparams=True)``, so ``hparams.yaml`` is
    authoritative: its ``pretrained_model`` names the encoder whose tokenizer and config
    COMET needs (``xlm-roberta-large`` for wmt22-comet-da, looked up in the default
    Hugging Face cache, not in ``cache_dir``) and may be set to a local encoder folder.
    With ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) nothing is downloaded and a
    missing model or encoder raises :class:`CometModelUnavailableError`.

    Arguments
    ---------
    model : str
        Hub id (default: the paper's ``Unbabel/wmt22-comet-da``) or local path (the recipes'
        config key ``comet_model``).
    batch_size : int
        Inference batch size.
    gpus : int, optional
        0 (CPU) or 1; default: 1 if CUDA is available, else 0.
    cache_dir : str, optional
        Hugging Face cache folder for the COMET model (default: the standard cache).

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny.comet import build_tiny_comet
    >>> folder = tempfile.mkdtemp()
    >>> _ = build_tiny_comet(folder, ["the cat sat", "die Katze sitzt", "le chat"])
    >>> scorer = CometScorer(folder, gpus=0)
    >>> out = scorer.score(["the cat sat"], ["die Katze sitzt"], ["die Katze sitzt"])
    >>> out["num_utterances"], len(out["segments"]), out["model"] == folder
    (1, 1, True)
    """

    def __init__(self, model=DEFAULT_COMET_MODEL, batch_size=16, gpus=None, cache_dir=None):
        if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
            raise ValueError(
                f"CometScorer: model (config key comet_model) must be a hub id such as "
                f"{DEFAULT_COMET_MODEL!r} or a local checkpoint path, got {model!r}."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"CometScorer: batch_size must be a positive int, got {batch_size!r}.")
        if gpus is not None and (isinstance(gpus, bool) or gpus not in (0, 1)):
            raise ValueError(
                f"CometScorer: gpus must be None (auto), 0 or 1, got {gpus!r} (COMET's "
                "multi-GPU prediction spawns DDP processes; score on one device)."
            )
        self.model = str(model)
        self.batch_size = batch_size
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self._gpus = gpus
        self._comet_model = None
        self.checkpoint_path = None
        if _looks_like_path(self.model):
            self.checkpoint_path = self._local_checkpoint(Path(os.path.expanduser(self.model)))

    @property
    def gpus(self):
        """The number of GPUs used: the given value, or 1 if CUDA is available else 0."""
        if self._gpus is not None:
            return self._gpus
        import torch

        return 1 if torch.cuda.is_available() else 0

    @staticmethod
    def _local_checkpoint(path):
        if path.is_dir():
            checkpoint = path / "checkpoints" / "model.ckpt"
            if not checkpoint.is_file():
                raise FileNotFoundError(
                    f"COMET model folder {path} holds no checkpoints/model.ckpt; point "
                    "comet_model at a COMET checkpoint (.ckpt) or at a folder laid out as "
                    "a downloaded COMET model (hparams.yaml, checkpoints/model.ckpt)."
                )
        elif path.is_file():
            checkpoint = path
        else:
            raise FileNotFoundError(
                f"COMET checkpoint {path} not found: set comet_model to an existing .ckpt "
                f"file, a folder holding checkpoints/model.ckpt, or a hub id such as "
                f"{DEFAULT_COMET_MODEL!r}."
            )
        hparams = checkpoint.parent.parent / "hparams.yaml"
        if not hparams.is_file():
            raise FileNotFoundError(
                f"COMET checkpoint {checkpoint} has no {hparams}: COMET reads the model "
                "class and its encoder (pretrained_model) from the hparams.yaml found two "
                "levels above the .ckpt file; keep the downloaded folder layout."
            )
        return checkpoint

    def _missing_model_message(self, reason):
        where = self.cache_dir or "the default Hugging Face cache"
        cache_flag = f" --cache-dir {self.cache_dir}" if self.cache_dir else ""
        local_note = (
            " (and no local folder of that name exists)"
            if self.model != DEFAULT_COMET_MODEL
            else ""
        )
        return (
            f"COMET model {self.model!r} is not in {where}{local_note} and {reason}. On a "
            "machine with internet access, download it and the XLM-R encoder whose tokenizer "
            "and config it needs (pretrained_model in its hparams.yaml):\n"
            f"    huggingface-cli download {self.model}{cache_flag}\n"
            '    huggingface-cli download xlm-roberta-large --include "*.json" '
            '"sentencepiece.bpe.model"\n'
            "or set the config key comet_model to a local checkpoint: a .ckpt file or a "
            "folder holding checkpoints/model.ckpt and hparams.yaml."
        )

    def _hub_checkpoint(self):
        from huggingface_hub import snapshot_download

        try:
            folder = snapshot_download(
                repo_id=self.model, cache_dir=self.cache_dir, local_files_only=True
            )
        except Exception:  # not cached (or not a valid repo id): try to download below
            folder = None
        if folder is not None:
            checkpoint = Path(folder) / "checkpoints" / "model.ckpt"
            if checkpoint.is_file():
                return checkpoint
        if _hf_offline():
            raise CometModelUnavailableError(
                self._missing_model_message("HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE forbids downloads")
            )
        comet = _import_comet()
        try:
            checkpoint = Path(comet.download_model(self.model, saving_directory=self.cache_dir))
        except Exception as err:
            raise CometModelUnavailableError(
                self._missing_model_message(f"downloading it failed ({err})")
            ) from err
        return checkpoint

    def resolve_checkpoint(self):
        """The path of the checkpoint file, downloading a hub model if needed (and allowed).

        Returns
        -------
        pathlib.Path
            The ``model.ckpt`` file.
        """
        if self.checkpoint_path is None:
            self.checkpoint_path = self._hub_checkpoint()
        return self.checkpoint_path

    def load(self):
        """Loads the COMET model (once) and returns it; call it early to fail fast."""
        if self._comet_model is not None:
            return self._comet_model
        checkpoint = self.resolve_checkpoint()
        hparams = checkpoint.parent.parent / "hparams.yaml"
        encoder = _encoder_name(hparams)
        offline = _hf_offline()
        # transformers fails obscurely (not with OSError) on a tokenizer missing offline:
        # check that the encoder's files are there before COMET builds it.
        problem = _encoder_problem(encoder, offline)
        if problem is not None:
            raise CometModelUnavailableError(
                _encoder_message(checkpoint, hparams, encoder, problem)
            )
        comet = _import_comet()
        try:
            with _quiet_comet():
                model = comet.load_from_checkpoint(
                    str(checkpoint), reload_hparams=True, local_files_only=offline
                )
        except OSError as err:
            raise CometModelUnavailableError(
                _encoder_message(checkpoint, hparams, encoder, f"loading it failed: {err}")
            ) from err
        model.eval()
        self._comet_model = model
        logger.info("Loaded COMET model %s from %s", self.model, checkpoint)
        return model

    def score(self, sources, hypotheses, references):
        """COMET scores of ``hypotheses`` given ``sources`` and ``references``.

        Arguments
        ---------
        sources : list of str
            Source sentences (the paper uses the reference transcription of the speech).
        hypotheses : list of str
            Translations to score (an empty one gets a well-defined, low score).
        references : list of str
            Reference translations.

        Returns
        -------
        dict
            ``comet`` (system score: mean segment score x100), ``segments`` (list, x100,
            input order), ``model``, ``num_utterances`` and ``signature`` (e.g.
            "Unbabel/wmt22-comet-da|unbabel-comet:2.2.7|x100").
        """
        srcs = _as_texts(sources, "sources", "CometScorer.score")
        hyps = _as_texts(hypotheses, "hypotheses", "CometScorer.score")
        refs = _as_texts(references, "references", "CometScorer.score")
        num = _check_lengths("CometScorer.score", sources=srcs, hypotheses=hyps, references=refs)
        if num == 0:
            raise ValueError("CometScorer.score: no utterance to score (the lists are empty).")
        model = self.load()
        samples = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(srcs, hyps, refs)]
        with _quiet_comet():
            prediction = model.predict(
                samples, batch_size=self.batch_size, gpus=self.gpus, progress_bar=False
            )
        segments = [100.0 * float(value) for value in prediction.scores]
        return {
            "comet": sum(segments) / num,
            "segments": segments,
            "model": self.model,
            "num_utterances": num,
            "signature": f"{self.model}|unbabel-comet:{_version('unbabel-comet')}|x100",
        }


def _encoder_name(hparams):
    """The ``pretrained_model`` named by a COMET ``hparams.yaml`` (COMET's default if absent)."""
    import yaml

    try:
        with open(hparams, encoding="utf-8") as handle:
            content = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as err:
        raise CometModelUnavailableError(f"Cannot read COMET's {hparams}: {err}") from err
    if not isinstance(content, dict) or "class_identifier" not in content:
        raise CometModelUnavailableError(
            f"{hparams} is not a COMET hparams.yaml (no class_identifier key); keep the "
            "file that comes with the checkpoint."
        )
    return str(content.get("pretrained_model", "xlm-roberta-large"))


def _encoder_problem(encoder, offline):
    """Why the encoder's config/tokenizer cannot be loaded, or None if they can (or may)."""
    tokenizer_files = ("tokenizer.json", "sentencepiece.bpe.model")
    folder = Path(os.path.expanduser(encoder))
    if folder.is_dir() or _looks_like_path(encoder):
        if not (folder / "config.json").is_file():
            return f"the folder {folder} holds no config.json"
        if not any((folder / name).is_file() for name in tokenizer_files):
            return f"the folder {folder} holds no {' or '.join(tokenizer_files)}"
        return None
    if not offline:
        return None  # transformers downloads it
    from huggingface_hub import try_to_load_from_cache

    def cached(name):
        return isinstance(try_to_load_from_cache(encoder, name), str)

    if not cached("config.json") or not any(cached(name) for name in tokenizer_files):
        return "it is not in the Hugging Face cache and HF_HUB_OFFLINE forbids downloads"
    return None


def _encoder_message(checkpoint, hparams, encoder, problem):
    return (
        f"COMET checkpoint {checkpoint} needs the encoder {encoder!r} (pretrained_model in "
        f"{hparams}) for its tokenizer and config, but {problem}. Download it on a machine "
        f'with internet access (huggingface-cli download {encoder} --include "*.json" '
        f'"sentencepiece.bpe.model"), or set pretrained_model in {hparams} to a local folder '
        "holding that encoder's config.json and tokenizer files."
    )


_SCORERS = {}


def comet_scorer(model=None, batch_size=16, gpus=None, cache_dir=None):
    """The :class:`CometScorer` of ``model``, shared by later calls, or None without a model.

    This is what a YAML file instantiates (``comet: !apply:...comet_scorer`` with
    ``model: !ref <comet_model>``): ``comet_model: null`` means COMET is not computed.

    Arguments
    ---------
    model : str, optional
        Hub id or local checkpoint path (config key ``comet_model``); None or "": no COMET.
    batch_size : int
        Inference batch size.
    gpus : int, optional
        0 or 1; default: 1 if CUDA is available.
    cache_dir : str, optional
        Hugging Face cache folder for the COMET model.

    Returns
    -------
    CometScorer or None
        The scorer (its model is loaded on first use), the same object for the same
        arguments.

    Example
    -------
    >>> comet_scorer(None) is None
    True
    >>> comet_scorer(DEFAULT_COMET_MODEL) is comet_scorer(DEFAULT_COMET_MODEL)
    True
    """
    if model is None or not str(model).strip():
        return None
    key = (str(model), batch_size, gpus, None if cache_dir is None else str(cache_dir))
    scorer = _SCORERS.get(key)
    if scorer is None:
        scorer = CometScorer(model, batch_size=batch_size, gpus=gpus, cache_dir=cache_dir)
        _SCORERS[key] = scorer
    return scorer


def comet_score(
    sources,
    hypotheses,
    references,
    model=DEFAULT_COMET_MODEL,
    batch_size=16,
    gpus=None,
    cache_dir=None,
):
    """COMET scores (x100) with the :class:`CometScorer` of :func:`comet_scorer`.

    Arguments
    ---------
    sources : list of str
        Source sentences (the paper: the reference transcriptions).
    hypotheses : list of str
        Translations to score.
    references : list of str
        Reference translations.
    model : str
        Hub id or local checkpoint path (config key ``comet_model``).
    batch_size : int
        Inference batch size.
    gpus : int, optional
        0 or 1; default: 1 if CUDA is available.
    cache_dir : str, optional
        Hugging Face cache folder for the COMET model.

    Returns
    -------
    dict
        See :meth:`CometScorer.score`.

    Example
    -------
    >>> import tempfile
    >>> comet_score(["a"], ["b"], ["c"], model=os.path.join(tempfile.mkdtemp(), "none"))
    Traceback (most recent call last):
      ...
    FileNotFoundError: COMET checkpoint ... not found: set comet_model to an existing ...
    """
    if model is None or not str(model).strip():
        raise ValueError(
            f"comet_score: model (config key comet_model) must be a hub id such as "
            f"{DEFAULT_COMET_MODEL!r} or a local checkpoint path, got {model!r}."
        )
    scorer = comet_scorer(model, batch_size=batch_size, gpus=gpus, cache_dir=cache_dir)
    return scorer.score(sources, hypotheses, references)
