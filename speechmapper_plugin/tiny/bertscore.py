"""A tiny, random-init BERTScore model built offline, with its rescaling baseline file: the
test stand-in for the models the IWSLT 2025 organizers score SQA with (``bert_score``'s
default model of each language, F1 rescaled with its baseline).

``bert_score.score(..., model_type=<folder>, num_layers=L, rescale_with_baseline=True,
baseline_path=<file>)`` loads any Hugging Face encoder folder; rescaling needs a baseline
file in ``bert_score``'s format (the files shipped in ``bert_score/rescale_baseline/<lang>/``):
a comma-separated table with the header ``LAYER,P,R,F`` and one row per layer ``0..L``
holding the mean precision, recall and F1 of unrelated sentence pairs, so that
``(score - baseline) / (1 - baseline)`` is about 0 for unrelated pairs and 1 for identical
ones. :func:`build_tiny_bertscore` writes a tiny ``XLMRobertaModel`` (random init) with the
sentencepiece tokenizer of :func:`speechmapper_plugin.tiny.comet.train_xlmr_tokenizer`, then
computes its baseline the same way on the given sentences (each sentence against the next
one). Its scores are meaningless, only well defined and deterministic.

Layout of the built folder::

    folder/
      config.json, model.safetensors          # the encoder (AutoModel loads it)
      sentencepiece.bpe.model, tokenizer.json # the tokenizer (AutoTokenizer loads it)
      baseline.tsv                            # LAYER,P,R,F rows 0..num_layers
      tiny_bertscore_build.json               # build key (corpus, settings)

Command line::

    python -m speechmapper_plugin.tiny.bertscore --output_folder DIR --text_file corpus.txt

Authors
-------
speechmapper developers, 2026
"""

import json
from pathlib import Path

from speechmapper_plugin.tiny.builds import builder_cli, cached_build, check_texts, seeded
from speechmapper_plugin.tiny.comet import ENCODER_OPTIONS, train_xlmr_tokenizer
from speechmapper_plugin.utils.files import atomic_write_text

BUILD_MANIFEST = "tiny_bertscore_build.json"


BUILD_FORMAT_VERSION = 1


BASELINE_FILE = "baseline.tsv"


def build_tiny_bertscore(
    folder,
    texts,
    seed=0,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    vocab_size=None,
):
    """Builds (or reuses) a tiny random-init encoder and its BERTScore baseline file.

    The build is idempotent: a folder already holding a build of the same corpus and
    settings is reused; otherwise it is built in a temporary sibling folder that then
    replaces ``folder``.

    Arguments
    ---------
    folder : str or Path
        Output folder (new, empty, or an earlier tiny BERTScore build).
    texts : list of str
        Tokenizer training sentences, also used for the baseline (at least two distinct).
    seed : int
        Seed of the random initialization.
    hidden_size : int
        Encoder hidden size.
    num_layers : int
        Encoder layers (BERTScore uses the last one).
    num_heads : int
        Attention heads.
    intermediate_size : int
        Encoder feed-forward size.
    vocab_size : int, optional
        Sentencepiece vocabulary upper bound.

    Returns
    -------
    dict
        ``model`` (the folder, for ``model_type``), ``num_layers`` and ``baseline_path``
        (the baseline file), the arguments ``bert_score.score`` needs.

    Example
    -------
    >>> import tempfile
    >>> built = build_tiny_bertscore(tempfile.mkdtemp(), ["the cat sat", "a dog ran far"])
    >>> built["num_layers"], open(built["baseline_path"]).readline().strip()
    (2, 'LAYER,P,R,F')
    """
    folder = Path(folder).expanduser().absolute()
    texts = check_texts(texts, "BERTScore")
    if len(set(texts)) < 2:
        raise ValueError(
            "build_tiny_bertscore: the baseline needs at least two distinct sentences "
            f"(unrelated pairs); got {len(set(texts))}."
        )
    for name, value in (
        ("hidden_size", hidden_size),
        ("num_layers", num_layers),
        ("num_heads", num_heads),
        ("intermediate_size", intermediate_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"build_tiny_bertscore: {name} must be a positive int, got {value!r}.")
    if hidden_size % num_heads:
        raise ValueError(
            f"build_tiny_bertscore: hidden_size {hidden_size} is not a multiple of num_heads "
            f"{num_heads}."
        )
    settings = {
        "format": BUILD_FORMAT_VERSION,
        "seed": seed,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "intermediate_size": intermediate_size,
        "vocab_size": vocab_size,
    }
    built = {
        "model": str(folder),
        "num_layers": num_layers,
        "baseline_path": str(folder / BASELINE_FILE),
    }
    cached_build(
        folder,
        "BERTScore model",
        BUILD_MANIFEST,
        texts,
        settings,
        lambda tmp: _build(tmp, texts, settings),
        ready=BASELINE_FILE,
    )
    return built


def _build(folder, texts, settings):
    """Writes the encoder, its tokenizer and its baseline file into ``folder``."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    tokenizer = train_xlmr_tokenizer(texts, folder, vocab_size=settings["vocab_size"])
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
    with seeded(settings["seed"]):
        model = XLMRobertaModel(config, add_pooling_layer=False)
    model.save_pretrained(folder)
    atomic_write_text(
        folder / BASELINE_FILE, _baseline_table(folder, texts, settings["num_layers"])
    )


def _baseline_table(folder, texts, num_layers):
    """``LAYER,P,R,F`` rows: mean BERTScore of each sentence against the next one."""
    import bert_score

    unique = list(dict.fromkeys(texts))
    candidates, references = unique, unique[1:] + unique[:1]
    lines = ["LAYER,P,R,F"]
    for layer in range(num_layers + 1):
        precision, recall, f1 = bert_score.score(
            candidates, references, model_type=str(folder), num_layers=layer, device="cpu"
        )
        means = [float(values.mean()) for values in (precision, recall, f1)]
        lines.append(f"{layer}," + ",".join(f"{value:.8f}" for value in means))
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Command-line entry point (``python -m speechmapper_plugin.tiny.bertscore --help``)."""
    built = builder_cli(
        build_tiny_bertscore,
        "Build a tiny random-init BERTScore encoder and its baseline file (offline).",
        ENCODER_OPTIONS,
        argv,
    )
    print(json.dumps(built))
    return built


if __name__ == "__main__":
    main()
