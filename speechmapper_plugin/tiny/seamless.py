"""A tiny, random-init SeamlessM4T-v2 built offline: the test stand-in for seamless-m4t-v2-large.

``facebook/seamless-m4t-v2-large`` is one Hugging Face folder holding a ``SeamlessM4Tv2Model``
(speech encoder, text encoder and decoder, text-to-unit model, HiFi-GAN vocoder with speaker
and language embeddings), its ``generation_config.json`` (the language -> token id maps of the
text decoder, the text-to-unit model and the vocoder, ``id_to_text`` and ``char_to_id`` the
text-to-unit model needs), a ``SeamlessM4TTokenizer`` (sentencepiece ``sentencepiece.bpe.model``
with the fairseq id offset, ``tokenizer.json`` for the fast tokenizer, language tokens such as
``__eng__`` as special tokens) and a ``SeamlessM4TFeatureExtractor`` (``preprocessor_config.json``).
:func:`build_tiny_seamless` writes the same layout with every size scaled down (hidden size 16,
one layer per stack, a handful of units, speakers and languages) and a sentencepiece model
trained on a few sentences, so that ``SeamlessM4Tv2ForTextToText.from_pretrained(folder)``,
``SeamlessM4Tv2ForTextToSpeech.from_pretrained(folder)`` and ``AutoProcessor`` /
``AutoTokenizer`` run the real ``transformers`` loading and generation code offline, in
seconds. Its translations and speech are meaningless, only well defined and deterministic.

Random-init caveat: the text-to-unit output rows of the control symbols (``<s>``, ``<unk>``,
...) and of the language symbols are zeroed, so greedy unit decoding picks real units (the
vocoder has no embedding for the others; the trained model never predicts them).

Command line::

    python -m speechmapper_plugin.tiny.seamless --output_folder DIR --text_file corpus.txt

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
    train_unigram_spm,
)

BUILD_MANIFEST = "tiny_seamless_build.json"


BUILD_FORMAT_VERSION = 1


SPM_FILE = "sentencepiece.bpe.model"


# Seamless language codes (ISO 639-3, "cmn" for Mandarin) the tiny model knows.
DEFAULT_LANGUAGES = ("eng", "deu", "ita", "cmn", "fra")


# Text-to-unit control symbols (bos, pad, eos, unk) come before the units, as in the real model.
T2U_CONTROL_SYMBOLS = 4


CHAR_SPECIAL = ("<pad>", "<unk>", "<s>", "</s>")


TEXT_MODULES = ("shared.", "text_encoder.", "text_decoder.", "lm_head.")


# Init std of the text stacks (small: the decoder output stays non-empty) and of the speech ones
# (large enough for an audible waveform); the duration predictors use the text one, so every
# character lasts about one unit (20 ms): the audio length follows the generated text length.
TEXT_STD = 0.02


SPEECH_STD = 0.3


DURATION_MODULES = ("duration_predictor", "dur_predictor")


def _check_languages(languages):
    if isinstance(languages, str):
        raise TypeError(f"languages must be a list of codes such as {list(DEFAULT_LANGUAGES)}.")
    codes = [str(code).strip().strip("_") for code in languages]
    bad = [code for code in codes if not code.isalpha() or not code.islower()]
    if bad or not codes or len(set(codes)) != len(codes):
        raise ValueError(
            f"languages must be distinct lower-case Seamless codes such as "
            f"{list(DEFAULT_LANGUAGES)}, got {list(languages)}."
        )
    return codes


def train_seamless_tokenizer(texts, output_folder, languages=DEFAULT_LANGUAGES, vocab_size=None):
    """Trains a sentencepiece model with NLLB's layout and saves it as a SeamlessM4T tokenizer.

    The sentencepiece ids are ``<unk>``=0, ``<s>``=1, ``</s>``=2, then the pieces; with the
    fairseq offset of ``SeamlessM4TTokenizer`` the vocabulary becomes ``<pad>``=0, ``<unk>``=1,
    ``<s>``=2, ``</s>``=3, the pieces, then one ``__<lang>__`` special token per language.
    The slow (``SeamlessM4TTokenizer``) and fast (``SeamlessM4TTokenizerFast``, saved as
    ``tokenizer.json``) tokenizers agree. Characters absent from the corpus map to ``<unk>``.

    Arguments
    ---------
    texts : list of str
        Training sentences (any languages).
    output_folder : str or Path
        Where ``sentencepiece.bpe.model``, ``tokenizer.json`` and the tokenizer configs go.
    languages : list of str
        Seamless language codes (``eng``, ``deu``...), one special token each.
    vocab_size : int, optional
        Sentencepiece vocabulary upper bound (default: ``llm.default_vocab_size``).

    Returns
    -------
    transformers.SeamlessM4TTokenizerFast
        The tokenizer (``src_lang`` and ``tgt_lang`` default to the first two languages).

    Example
    -------
    >>> import tempfile
    >>> tok = train_seamless_tokenizer(["the cat sat", "die Katze"], tempfile.mkdtemp())
    >>> ids = tok("the cat", src_lang="eng").input_ids
    >>> tok.convert_ids_to_tokens(ids[:1]), ids[-2] == tok.eos_token_id == 3, tok.pad_token_id
    (['__eng__'], True, 0)
    >>> tok.decode(ids, skip_special_tokens=True)
    'the cat'
    """
    from transformers import SeamlessM4TTokenizerFast

    from speechmapper_plugin.tiny.llm import default_vocab_size

    texts = check_texts(texts, "Seamless")
    languages = _check_languages(languages)
    if vocab_size is None:
        vocab_size = default_vocab_size(texts)
    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    spm_path = train_unigram_spm(texts, vocab_size, output_folder / SPM_FILE)
    tokenizer = SeamlessM4TTokenizerFast(
        vocab_file=str(spm_path),
        src_lang=languages[0],
        tgt_lang=languages[min(1, len(languages) - 1)],
        additional_special_tokens=[f"__{code}__" for code in languages],
    )
    tokenizer.save_pretrained(output_folder)
    return tokenizer


def build_tiny_seamless(
    folder,
    texts,
    languages=DEFAULT_LANGUAGES,
    num_speakers=4,
    num_units=20,
    seed=0,
    hidden_size=16,
    sampling_rate=16000,
    max_new_tokens=12,
    vocab_size=None,
):
    """Builds (or reuses) a tiny random-init ``SeamlessM4Tv2Model`` folder loadable offline.

    The folder holds what a hub snapshot of ``facebook/seamless-m4t-v2-large`` holds (config,
    safetensors weights, generation config with the language maps, tokenizer and feature
    extractor), so loading it by local path runs the same code as loading the hub model. The
    build is idempotent: a folder already holding a build of the same corpus and settings is
    reused; otherwise it is built in a temporary sibling folder that then replaces ``folder``.

    Arguments
    ---------
    folder : str or Path
        Output folder (new, empty, or an earlier tiny Seamless build).
    texts : list of str
        Tokenizer training sentences (the texts the tests translate or synthesize).
    languages : list of str
        Seamless language codes, each supported for text and speech output.
    num_speakers : int
        Vocoder speakers (speaker ids ``0 .. num_speakers - 1``; the real vocoder has 200).
    num_units : int
        Vocoder units (the real vocoder has 10000).
    seed : int
        Seed of the random initialization.
    hidden_size : int
        Width of every stack (even, at least 4).
    sampling_rate : int
        Vocoder output rate in Hz (the real one: 16000).
    max_new_tokens : int
        Default generation length cap of the text decoder (random weights rarely stop early).
    vocab_size : int, optional
        Sentencepiece vocabulary upper bound.

    Returns
    -------
    Path
        The model folder.

    Example
    -------
    >>> import tempfile
    >>> from transformers import SeamlessM4Tv2ForTextToText, AutoTokenizer
    >>> folder = build_tiny_seamless(tempfile.mkdtemp(), ["the cat sat", "die Katze sitzt"])
    >>> tok = AutoTokenizer.from_pretrained(folder)
    >>> model = SeamlessM4Tv2ForTextToText.from_pretrained(folder).eval()
    >>> out = model.generate(**tok(["the cat sat"], src_lang="eng", return_tensors="pt"),
    ...                      tgt_lang="deu")
    >>> tok.convert_ids_to_tokens(out[0, :2].tolist())  # decoder start, target language
    ['</s>', '__deu__']
    """
    folder = Path(folder).expanduser().absolute()
    texts = check_texts(texts, "Seamless")
    languages = _check_languages(languages)
    for name, value, minimum in (
        ("num_speakers", num_speakers, 1),
        ("num_units", num_units, 2),
        ("hidden_size", hidden_size, 4),
        ("sampling_rate", sampling_rate, 1000),
        ("max_new_tokens", max_new_tokens, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(
                f"build_tiny_seamless: {name} must be an int >= {minimum}, got {value!r}."
            )
    if hidden_size % 2:
        raise ValueError(f"build_tiny_seamless: hidden_size must be even, got {hidden_size}.")
    settings = {
        "format": BUILD_FORMAT_VERSION,
        "languages": languages,
        "num_speakers": num_speakers,
        "num_units": num_units,
        "seed": seed,
        "hidden_size": hidden_size,
        "sampling_rate": sampling_rate,
        "max_new_tokens": max_new_tokens,
        "vocab_size": vocab_size,
    }
    cached_build(
        folder,
        "Seamless model",
        BUILD_MANIFEST,
        texts,
        settings,
        lambda tmp: _build(tmp, texts, settings),
        ready="config.json",
    )
    return folder


def _char_vocabulary(pieces):
    """``char_to_id``: the special symbols, then every character of the pieces, sorted."""
    chars = sorted({char for piece in pieces for char in piece})
    return {symbol: i for i, symbol in enumerate(list(CHAR_SPECIAL) + chars)}


def _build(tmp_folder, texts, settings):
    from transformers import (
        GenerationConfig,
        SeamlessM4TFeatureExtractor,
        SeamlessM4TProcessor,
        SeamlessM4Tv2Config,
        SeamlessM4Tv2Model,
    )

    languages = settings["languages"]
    tokenizer = train_seamless_tokenizer(
        texts, tmp_folder, languages=languages, vocab_size=settings["vocab_size"]
    )
    id_to_text = {str(i): tokenizer.convert_ids_to_tokens(i) for i in range(len(tokenizer))}
    char_to_id = _char_vocabulary(id_to_text.values())
    hidden = settings["hidden_size"]
    num_units = settings["num_units"]
    # t2u vocabulary: control symbols, units, then one symbol per language (as in the real one).
    t2u_vocab_size = T2U_CONTROL_SYMBOLS + num_units + len(languages)
    config = SeamlessM4Tv2Config(
        vocab_size=len(tokenizer),
        t2u_vocab_size=t2u_vocab_size,
        char_vocab_size=len(char_to_id),
        hidden_size=hidden,
        max_new_tokens=settings["max_new_tokens"],
        encoder_layers=1,
        decoder_layers=1,
        encoder_ffn_dim=2 * hidden,
        decoder_ffn_dim=2 * hidden,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        speech_encoder_layers=1,
        speech_encoder_attention_heads=2,
        speech_encoder_intermediate_size=2 * hidden,
        t2u_encoder_layers=1,
        t2u_decoder_layers=1,
        t2u_encoder_ffn_dim=2 * hidden,
        t2u_decoder_ffn_dim=2 * hidden,
        t2u_encoder_attention_heads=2,
        t2u_decoder_attention_heads=2,
        t2u_variance_predictor_embed_dim=hidden,
        t2u_variance_predictor_hidden_dim=hidden,
        sampling_rate=settings["sampling_rate"],
        upsample_initial_channel=32,
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        unit_hifi_gan_vocab_size=num_units,
        unit_embed_dim=hidden,
        lang_embed_dim=4,
        spkr_embed_dim=4,
        vocoder_num_langs=len(languages),
        vocoder_num_spkrs=settings["num_speakers"],
        vocoder_offset=T2U_CONTROL_SYMBOLS,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
    )
    model = SeamlessM4Tv2Model(config)
    _redraw(model, settings["seed"])
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        decoder_start_token_id=config.decoder_start_token_id,
        max_new_tokens=settings["max_new_tokens"],
        text_decoder_lang_to_code_id={
            code: tokenizer.convert_tokens_to_ids(f"__{code}__") for code in languages
        },
        t2u_lang_code_to_id={
            code: T2U_CONTROL_SYMBOLS + num_units + i for i, code in enumerate(languages)
        },
        vocoder_lang_code_to_id={code: i for i, code in enumerate(languages)},
        id_to_text=id_to_text,
        char_to_id=char_to_id,
    )
    model.save_pretrained(tmp_folder, safe_serialization=True)
    processor = SeamlessM4TProcessor(
        feature_extractor=SeamlessM4TFeatureExtractor(sampling_rate=16000), tokenizer=tokenizer
    )
    processor.save_pretrained(tmp_folder)


def _redraw(model, seed):
    """Draws every weight from a seeded generator (independent of the library's init order).

    Layer norms start at (1, 0), biases at 0, the text-to-unit position scales at 1, and the
    text-to-unit output rows of the non-unit symbols (control and language symbols) at 0.
    """
    generator = torch.Generator().manual_seed(seed)
    norms = {
        name
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm))
    }
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            owner, _, leaf = name.rpartition(".")
            if owner in norms:
                param.fill_(1.0 if leaf == "weight" else 0.0)
            elif leaf == "bias":
                param.zero_()
            elif "pos_emb_alpha" in leaf:
                param.fill_(1.0)
            else:
                text = name.startswith(TEXT_MODULES) or any(m in name for m in DURATION_MODULES)
                std = TEXT_STD if text else SPEECH_STD
                param.normal_(0.0, std, generator=generator)
        head = model.t2u_model.lm_head.weight
        units = model.config.unit_hifi_gan_vocab_size
        head[:T2U_CONTROL_SYMBOLS].zero_()
        head[T2U_CONTROL_SYMBOLS + units :].zero_()
    model.eval()


def main(argv=None):
    """Command-line entry point (``python -m speechmapper_plugin.tiny.seamless --help``)."""
    folder = builder_cli(
        build_tiny_seamless,
        "Build a tiny random-init SeamlessM4T-v2 (offline stand-in for "
        "facebook/seamless-m4t-v2-large).",
        {
            "languages": {"nargs": "+", "default": list(DEFAULT_LANGUAGES)},
            "num_speakers": {"type": int, "default": 4},
            "num_units": {"type": int, "default": 20},
            "seed": {"type": int, "default": 0},
            "hidden_size": {"type": int, "default": 16},
            "sampling_rate": {"type": int, "default": 16000},
            "max_new_tokens": {"type": int, "default": 12},
            "vocab_size": {"type": int, "default": None},
        },
        argv,
    )
    print(folder)
    return folder


if __name__ == "__main__":
    main()
