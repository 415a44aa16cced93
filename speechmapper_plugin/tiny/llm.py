"""A tiny, random-init, Llama-3.1-like causal LM built offline from a text corpus.

It is the stand-in for Llama-3.1-8B-Instruct / EuroLLM-9B-Instruct in the tests and the
demo recipe: same file layout as a hub checkpoint (``config.json``, safetensors weights,
optionally sharded with ``model.safetensors.index.json``, ``tokenizer.json``,
``tokenizer_config.json`` with a chat template, ``generation_config.json``), so that every
loading path of :mod:`speechmapper_plugin.models.frozen_llm` runs through the real ``transformers`` /
``safetensors`` code, only on a model of a few hundred kB.

The tokenizer is a sentencepiece unigram model trained on the corpus (with byte fallback,
so any text can be encoded) converted to a ``tokenizers`` fast tokenizer, plus the
Llama-3.1 special tokens: ``<|begin_of_text|>`` (bos, prepended by the tokenizer),
``<|end_of_text|>``, ``<|start_header_id|>``, ``<|end_header_id|>``, ``<|eot_id|>``
(the end-of-turn token, also the tokenizer's ``eos_token`` as in the Instruct model) and
the reserved ``<|finetune_right_pad_id|>`` (which, as in Llama-3.1, is *not* set as the
tokenizer's ``pad_token``).

Command line::

    python -m speechmapper_plugin.tiny.llm --output_folder DIR --text_file corpus.txt

Authors
 * SpeechMapper plugin contributors
"""

import os
import tempfile
from pathlib import Path

import torch

from speechmapper_plugin.tiny.builds import builder_cli, cached_build, check_texts, seeded

BOS_TOKEN = "<|begin_of_text|>"


END_OF_TEXT_TOKEN = "<|end_of_text|>"


EOT_TOKEN = "<|eot_id|>"


START_HEADER_TOKEN = "<|start_header_id|>"


END_HEADER_TOKEN = "<|end_header_id|>"


PAD_TOKEN = "<|finetune_right_pad_id|>"


UNK_TOKEN = "<unk>"


# Same order as Llama-3.1 (ids 128000...128010 there, appended after the vocabulary here).
SPECIAL_TOKENS = [
    BOS_TOKEN,
    END_OF_TEXT_TOKEN,
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    PAD_TOKEN,
    "<|reserved_special_token_2|>",
    START_HEADER_TOKEN,
    END_HEADER_TOKEN,
    "<|eom_id|>",
    EOT_TOKEN,
    "<|python_tag|>",
]


# A Llama-3.1-style chat template (the real one, minus tool calling): the first turn is
# always a system turn carrying the knowledge-cutoff header, message contents are trimmed.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}"
    "{%- else %}"
    "{%- set system_message = '' %}"
    "{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: 26 Jul 2024\\n\\n' }}"
    "{{- system_message }}"
    "{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)


BUILD_MANIFEST = "tiny_llm_build.json"


BUILD_FORMAT_VERSION = 1


def default_vocab_size(texts):
    """Returns a sentencepiece vocabulary size large enough for whole-word pieces.

    It is the number of distinct words + the number of distinct characters + the 256
    byte-fallback pieces + a margin of 64 (the unigram trainer treats it as an upper bound).

    Arguments
    ---------
    texts : list of str
        The training sentences.

    Returns
    -------
    int
        The vocabulary size (without the special tokens).

    Example
    -------
    >>> default_vocab_size(["a cat", "a dog"])  # 3 words, 7 characters
    330
    """
    words = {word for text in texts for word in text.split()}
    chars = {char for text in texts for char in text}
    return len(words) + len(chars) + 256 + 64


def train_tokenizer(texts, output_folder=None, vocab_size=None, model_type="unigram"):
    """Trains a sentencepiece model on ``texts`` and wraps it as a Llama-3.1-like fast tokenizer.

    The sentencepiece model uses byte fallback (any character can be encoded) and no text
    normalization, so that ``decode(encode(s)) == s`` for the corpus sentences. Its pieces and
    scores are converted into a ``tokenizers`` unigram model with a metaspace pre-tokenizer
    and a post-processor prepending ``<|begin_of_text|>``. The Llama-3.1 special tokens
    (see :data:`SPECIAL_TOKENS`) are appended after the vocabulary.

    Arguments
    ---------
    texts : list of str
        The training sentences (e.g. normalized lowercase English transcripts).
    output_folder : str or Path, optional
        If given, the tokenizer (and the sentencepiece ``spm.model``) are saved there.
    vocab_size : int, optional
        The maximum sentencepiece vocabulary size (bytes included). Default:
        :func:`default_vocab_size`, so most corpus words are single tokens.
    model_type : str
        The sentencepiece model type ("unigram" or "bpe").

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        The tokenizer (``eos_token`` is ``<|eot_id|>``, no ``pad_token``).

    Example
    -------
    >>> tok = train_tokenizer(["the cat sat", "the dog ran"])
    >>> ids = tok("the cat ran").input_ids
    >>> tok.convert_ids_to_tokens(ids)[:2]
    ['<|begin_of_text|>', '▁the']
    >>> tok.decode(ids, skip_special_tokens=True)
    'the cat ran'
    """
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    texts = check_texts(texts, "LLM")
    if vocab_size is None:
        vocab_size = default_vocab_size(texts)
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")

    proto = _train_sentencepiece(spm, texts, vocab_size, model_type)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    if model_type == "unigram":
        model = models.Unigram(pieces, unk_id=sp.unk_id(), byte_fallback=True)
    else:
        vocab = {piece: i for i, (piece, _) in enumerate(pieces)}
        model = models.BPE(
            vocab=vocab,
            merges=_bpe_merges(vocab, pieces),
            unk_token=UNK_TOKEN,
            byte_fallback=True,
            fuse_unk=True,
        )
    backend = Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    backend.decoder = decoders.Sequence(
        [
            decoders.ByteFallback(),
            decoders.Metaspace(replacement="▁", prepend_scheme="first"),
        ]
    )
    backend.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS]
    )
    bos_id = backend.token_to_id(BOS_TOKEN)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A {BOS_TOKEN}:1 $B:1",
        special_tokens=[(BOS_TOKEN, bos_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOT_TOKEN,
        unk_token=UNK_TOKEN,
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
        model_max_length=2048,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    if output_folder is not None:
        output_folder = Path(output_folder)
        output_folder.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(output_folder)
        _atomic_write_bytes(output_folder / "spm.model", proto)
    return tokenizer


def _train_sentencepiece(spm, texts, vocab_size, model_type):
    import io

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=int(vocab_size),
        model_type=model_type,
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        unk_piece=UNK_TOKEN,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def _bpe_merges(vocab, pieces):
    """Merges reproducing a sentencepiece BPE vocabulary (pieces sorted by score)."""
    merges = []
    for piece, _ in sorted(pieces, key=lambda item: -item[1]):
        for split in range(1, len(piece)):
            left, right = piece[:split], piece[split:]
            if left in vocab and right in vocab:
                merges.append((left, right))
    merges.sort(key=lambda pair: vocab[pair[0] + pair[1]])
    return merges


def _atomic_write_bytes(path, data):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def build_tiny_llm(
    output_folder,
    texts,
    hidden_size=128,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    intermediate_size=256,
    seed=0,
    vocab_size=None,
    max_shard_size=None,
    initializer_range=0.02,
    tie_word_embeddings=False,
):
    """Builds (or reuses) a tiny random-init ``LlamaForCausalLM`` + tokenizer in a HF folder.

    The folder is loadable offline with ``AutoModelForCausalLM.from_pretrained`` and
    ``AutoTokenizer.from_pretrained``; weights are float32 safetensors. The generation config
    stops on ``<|eot_id|>`` and ``<|end_of_text|>`` as Llama-3.1-Instruct does. The build is
    idempotent: if ``output_folder`` already holds a build with the same corpus and settings,
    it is returned at once; otherwise the model is built in a temporary sibling folder that
    then replaces ``output_folder``.

    Arguments
    ---------
    output_folder : str or Path
        Where to save the model.
    texts : list of str
        The tokenizer training corpus.
    hidden_size : int
        Embedding / hidden dimension D.
    num_layers : int
        Number of decoder layers.
    num_heads : int
        Number of attention heads.
    num_kv_heads : int
        Number of key/value heads (grouped-query attention, as in Llama-3).
    intermediate_size : int
        MLP inner dimension.
    seed : int
        Seed of the random initialization.
    vocab_size : int, optional
        Sentencepiece vocabulary size (see :func:`train_tokenizer`).
    max_shard_size : str or int, optional
        If given (e.g. "100KB"), the checkpoint is sharded with
        ``model.safetensors.index.json``, like the 4-shard Llama-3.1-8B checkpoint.
    initializer_range : float
        Std of the random weights (larger values give more input-dependent outputs).
    tie_word_embeddings : bool
        Whether the output layer shares the input embeddings (Llama-3.1-8B: no).

    Returns
    -------
    Path
        The model folder.

    Example
    -------
    >>> import tempfile
    >>> folder = build_tiny_llm(tempfile.mkdtemp(), ["the cat sat", "the dog ran"])
    >>> from transformers import AutoModelForCausalLM
    >>> model = AutoModelForCausalLM.from_pretrained(folder)
    >>> model.get_input_embeddings().weight.shape[1]
    128
    """
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    output_folder = Path(output_folder)
    texts = check_texts(texts, "LLM")
    settings = {
        "format": BUILD_FORMAT_VERSION,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "num_kv_heads": num_kv_heads,
        "intermediate_size": intermediate_size,
        "seed": seed,
        "vocab_size": vocab_size,
        "max_shard_size": max_shard_size,
        "initializer_range": initializer_range,
        "tie_word_embeddings": tie_word_embeddings,
    }

    def write(tmp_folder):
        tokenizer = train_tokenizer(texts, tmp_folder, vocab_size=vocab_size)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            num_key_value_heads=num_kv_heads,
            max_position_embeddings=2048,
            rope_theta=500000.0,
            rms_norm_eps=1e-5,
            initializer_range=initializer_range,
            tie_word_embeddings=tie_word_embeddings,
            bos_token_id=tokenizer.convert_tokens_to_ids(BOS_TOKEN),
            eos_token_id=[
                tokenizer.convert_tokens_to_ids(END_OF_TEXT_TOKEN),
                tokenizer.convert_tokens_to_ids(EOT_TOKEN),
            ],
        )
        generator = torch.Generator().manual_seed(seed)
        with seeded(seed):
            model = LlamaForCausalLM(config)
        # Re-draw every weight from the generator so the build does not depend on the
        # transformers version's init order.
        with torch.no_grad():
            for name, param in sorted(model.named_parameters()):
                if name.endswith("norm.weight"):
                    param.fill_(1.0)
                else:
                    param.normal_(0.0, initializer_range, generator=generator)
        model = model.to(torch.float32).eval()
        save_kwargs = {"safe_serialization": True}
        if max_shard_size is not None:
            save_kwargs["max_shard_size"] = max_shard_size
        model.save_pretrained(tmp_folder, **save_kwargs)
        generation_config = GenerationConfig(
            bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id,
            do_sample=False,
        )
        generation_config.save_pretrained(tmp_folder)

    cached_build(output_folder, "LLM", BUILD_MANIFEST, texts, settings, write)
    return output_folder


def main(argv=None):
    """Command-line entry point (``python -m speechmapper_plugin.tiny.llm --help``)."""
    folder = builder_cli(
        build_tiny_llm,
        "Build a tiny random-init Llama-3.1-like LLM (HF folder) from a text corpus.",
        {
            "hidden_size": {"type": int, "default": 128},
            "num_layers": {"type": int, "default": 2},
            "num_heads": {"type": int, "default": 4},
            "num_kv_heads": {"type": int, "default": 2},
            "intermediate_size": {"type": int, "default": 256},
            "vocab_size": {"type": int, "default": None},
            "seed": {"type": int, "default": 0},
            "max_shard_size": {"default": None, "help": 'e.g. "100KB" for a sharded build'},
            "initializer_range": {"type": float, "default": 0.02},
        },
        argv,
    )
    print(folder)
    return folder


if __name__ == "__main__":
    main()
