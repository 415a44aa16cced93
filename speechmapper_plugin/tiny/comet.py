"""A tiny, random-init COMET model built offline: the test stand-in for wmt22-comet-da.

``Unbabel/wmt22-comet-da`` is a COMET ``RegressionMetric`` on top of XLM-R large, stored as a
Lightning checkpoint ``checkpoints/model.ckpt`` next to an ``hparams.yaml`` whose
``pretrained_model`` names the encoder (its tokenizer and config are loaded from there, the
weights come from the checkpoint). :func:`build_tiny_comet` writes the same layout with a
tiny XLM-R (random init) and a sentencepiece tokenizer trained on a few sentences, the
encoder saved as a local Hugging Face folder, so that
``CometScorer(model=folder)`` (:mod:`speechmapper_plugin.evaluation.metrics`) runs COMET's real loading
and prediction code offline, in seconds. Its scores are meaningless, only well defined and
deterministic.

Layout of the built folder::

    folder/
      hparams.yaml              # class_identifier, pretrained_model: <folder>/encoder, ...
      checkpoints/model.ckpt    # Lightning checkpoint (state_dict, hyper_parameters)
      encoder/                  # config.json, sentencepiece.bpe.model, tokenizer.json, ...
      tiny_comet_build.json     # build key (corpus, settings, location)

Command line::

    python -m speechmapper_plugin.tiny.comet --output_folder DIR --text_file corpus.txt

Authors
-------
speechmapper developers, 2026
"""

from pathlib import Path

import torch

from speechmapper_plugin.tiny.builds import (
    builder_cli,
    cached_build,
    check_texts,
    seeded,
    train_unigram_spm,
)
from speechmapper_plugin.tiny.llm import default_vocab_size
from speechmapper_plugin.utils.files import atomic_write_text

BUILD_MANIFEST = "tiny_comet_build.json"


BUILD_FORMAT_VERSION = 1


ENCODER_FOLDER = "encoder"


SPM_FILE = "sentencepiece.bpe.model"


def train_xlmr_tokenizer(texts, output_folder, vocab_size=None):
    """Trains a sentencepiece model with XLM-R's layout and saves it as an XLM-R tokenizer.

    The sentencepiece ids are ``<unk>``=0, ``<s>``=1, ``</s>``=2, then the pieces, as in
    XLM-R's ``sentencepiece.bpe.model``; with the fairseq offset of the XLM-R tokenizers the
    vocabulary becomes ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, the pieces, ``<mask>``,
    so the slow (``XLMRobertaTokenizer``) and fast (``XLMRobertaTokenizerFast``) tokenizers
    agree. Characters absent from the corpus map to ``<unk>``.

    Arguments
    ---------
    texts : list of str
        Training sentences (any languages).
    output_folder : str or Path
        Where ``sentencepiece.bpe.model``, ``tokenizer.json`` and the tokenizer configs are
        saved.
    vocab_size : int, optional
        Sentencepiece vocabulary upper bound (default: ``llm.default_vocab_size``).

    Returns
    -------
    transformers.XLMRobertaTokenizerFast
        The tokenizer.

    Example
    -------
    >>> import tempfile
    >>> tok = train_xlmr_tokenizer(["the cat sat", "die Katze"], tempfile.mkdtemp())
    >>> ids = tok("the cat").input_ids
    >>> ids[0] == tok.bos_token_id == 0, ids[-1] == tok.eos_token_id == 2, tok.pad_token_id
    (True, True, 1)
    >>> tok.decode(ids, skip_special_tokens=True)
    'the cat'
    """
    from transformers import XLMRobertaTokenizerFast

    texts = check_texts(texts, "COMET")
    if vocab_size is None:
        vocab_size = default_vocab_size(texts)
    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    spm_path = train_unigram_spm(texts, vocab_size, output_folder / SPM_FILE)
    tokenizer = XLMRobertaTokenizerFast(vocab_file=str(spm_path), model_max_length=512)
    tokenizer.save_pretrained(output_folder)
    return tokenizer


def build_tiny_comet(
    folder,
    texts,
    seed=0,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    vocab_size=None,
):
    """Builds (or reuses) a tiny random-init COMET ``RegressionMetric`` loadable offline.

    The encoder is an ``XLMRobertaModel`` of the given size (random init), its config and
    tokenizer (:func:`train_xlmr_tokenizer`) saved in ``<folder>/encoder``; the COMET model
    is created with ``pretrained_model=<folder>/encoder`` (absolute path),
    ``load_pretrained_weights=False`` and ``local_files_only=True`` and saved as a Lightning
    checkpoint, with the ``hparams.yaml`` COMET reads. The build is idempotent: a folder
    already holding a build of the same corpus, settings and location is reused; otherwise
    it is built in a temporary sibling folder that then replaces ``folder``. Moving the
    folder breaks the absolute encoder path: build it again at the new place.

    Arguments
    ---------
    folder : str or Path
        Output folder (new, empty, or an earlier tiny COMET build).
    texts : list of str
        Tokenizer training sentences (sources, hypotheses, references of the tests).
    seed : int
        Seed of the random initialization.
    hidden_size : int
        Encoder hidden size.
    num_layers : int
        Encoder layers.
    num_heads : int
        Attention heads.
    intermediate_size : int
        Encoder feed-forward size.
    vocab_size : int, optional
        Sentencepiece vocabulary upper bound.

    Returns
    -------
    Path
        ``<folder>/checkpoints/model.ckpt``.

    Example
    -------
    >>> import tempfile
    >>> ckpt = build_tiny_comet(tempfile.mkdtemp(), ["the cat sat", "le chat"])
    >>> ckpt.name, ckpt.parent.name, (ckpt.parent.parent / "hparams.yaml").is_file()
    ('model.ckpt', 'checkpoints', True)
    """
    folder = Path(folder).expanduser().absolute()
    texts = check_texts(texts, "COMET")
    for name, value in (
        ("hidden_size", hidden_size),
        ("num_layers", num_layers),
        ("num_heads", num_heads),
        ("intermediate_size", intermediate_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"build_tiny_comet: {name} must be a positive int, got {value!r}.")
    if hidden_size % num_heads:
        raise ValueError(
            f"build_tiny_comet: hidden_size {hidden_size} is not a multiple of num_heads "
            f"{num_heads}."
        )
    settings = {
        "format": BUILD_FORMAT_VERSION,
        "folder": str(folder),
        "seed": seed,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "intermediate_size": intermediate_size,
        "vocab_size": vocab_size,
    }
    checkpoint = folder / "checkpoints" / "model.ckpt"
    cached_build(
        folder,
        "COMET model",
        BUILD_MANIFEST,
        texts,
        settings,
        lambda tmp: _build(tmp, folder / ENCODER_FOLDER, texts, settings),
        ready="checkpoints/model.ckpt",
    )
    return checkpoint


def _build(tmp_folder, final_encoder, texts, settings):
    """Writes encoder, checkpoint and hparams into ``tmp_folder`` (encoder path: final one)."""
    import pytorch_lightning
    import yaml
    from transformers import XLMRobertaConfig

    from speechmapper_plugin.evaluation.comet import _import_comet, _quiet_comet

    encoder_folder = tmp_folder / ENCODER_FOLDER
    tokenizer = train_xlmr_tokenizer(texts, encoder_folder, vocab_size=settings["vocab_size"])
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings["hidden_size"],
        num_hidden_layers=settings["num_layers"],
        num_attention_heads=settings["num_heads"],
        intermediate_size=settings["intermediate_size"],
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config.save_pretrained(encoder_folder)

    _import_comet()
    from comet.models import RegressionMetric

    with _quiet_comet(), seeded(settings["seed"]):
        # The encoder is read from the temporary folder; the saved hparams name the final one.
        model = RegressionMetric(
            pretrained_model=str(encoder_folder),
            load_pretrained_weights=False,
            local_files_only=True,
            hidden_sizes=[4 * settings["hidden_size"]],
            layer_transformation="sparsemax",
            layer_norm=False,
            batch_size=4,
        )
    hparams = dict(model.hparams)
    hparams["pretrained_model"] = str(final_encoder)
    hparams["load_pretrained_weights"] = False
    hparams["local_files_only"] = True
    state = {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": pytorch_lightning.__version__,
        "state_dict": {name: tensor.clone() for name, tensor in model.state_dict().items()},
        "hparams_name": "kwargs",
        "hyper_parameters": hparams,
    }
    checkpoint = tmp_folder / "checkpoints" / "model.ckpt"
    checkpoint.parent.mkdir()
    torch.save(state, checkpoint)
    atomic_write_text(tmp_folder / "hparams.yaml", yaml.safe_dump(hparams, sort_keys=True))


#: Command-line options of the tiny XLM-R-style encoders (COMET, BERTScore).
ENCODER_OPTIONS = {
    "seed": {"type": int, "default": 0},
    "hidden_size": {"type": int, "default": 32},
    "num_layers": {"type": int, "default": 2},
    "num_heads": {"type": int, "default": 2},
    "intermediate_size": {"type": int, "default": 64},
    "vocab_size": {"type": int, "default": None},
}


def main(argv=None):
    """Command-line entry point (``python -m speechmapper_plugin.tiny.comet --help``)."""
    checkpoint = builder_cli(
        build_tiny_comet,
        "Build a tiny random-init COMET model (offline stand-in for wmt22-comet-da).",
        ENCODER_OPTIONS,
        argv,
    )
    print(checkpoint)
    return checkpoint


if __name__ == "__main__":
    main()
