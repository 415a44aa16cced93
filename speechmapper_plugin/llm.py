"""The frozen LLM side of SpeechMapper.

Stage 1 (paper Sec. 2.2) needs only the LLM's *input-embedding table*: the projector output
[B, T, D] is regressed onto the embeddings of the transcript tokens followed by the
embedding of a reserved pad token up to length T. :func:`load_input_embeddings` reads that
single tensor from the checkpoint's safetensors (for a hub id it downloads only the config,
the tokenizer, the shard index and the one shard holding the embeddings: for
Llama-3.1-8B-Instruct the 128256 x 4096 bf16 table, ~1 GB, out of a 16 GB checkpoint), and
:class:`EmbeddingTable` builds the padded targets and decodes projector outputs back to text
by nearest-embedding search (the stage-1 WER diagnostic, no LLM forward).

Stage 2 (Sec. 2.3) plugs the projector into the frozen LLM: :class:`FrozenLLM` splices the
projector output into the chat prompt at a placeholder, computes the cross-entropy on the
answer tokens, and decodes with batched greedy search (150 new tokens by default, Sec. 3).

Models are given either as a Hugging Face hub id (e.g. ``meta-llama/Llama-3.1-8B-Instruct``,
``utter-project/EuroLLM-9B-Instruct``) or as a local folder (see :func:`resolve_source`).

Authors
 * SpeechMapper plugin contributors
"""

import inspect
import json
import logging
import math
import os
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors import safe_open

logger = logging.getLogger(__name__)

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"

# Files needed to build the tokenizer (and read the model config) from a hub repository.
TOKENIZER_FILE_PATTERNS = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "*.tiktoken",
]
# Files needed to find the embedding tensor (its shard is fetched separately).
EMBEDDING_FILE_PATTERNS = TOKENIZER_FILE_PATTERNS + [SAFETENSORS_INDEX]
# Files needed for the full model (safetensors only: the `original/` consolidated .pth
# checkpoint of Llama repos and .bin duplicates are never downloaded).
MODEL_FILE_PATTERNS = TOKENIZER_FILE_PATTERNS + ["*.safetensors", SAFETENSORS_INDEX]
IGNORE_PATTERNS = ["original/*"]

# Input-embedding tensor names, most common first.
EMBEDDING_TENSOR_NAMES = [
    "model.embed_tokens.weight",  # Llama, EuroLLM, Mistral, Qwen, Gemma
    "embed_tokens.weight",  # base model saved without the "model." prefix
    "model.language_model.embed_tokens.weight",  # recent multimodal wrappers
    "language_model.model.embed_tokens.weight",
    "model.decoder.embed_tokens.weight",  # OPT
    "transformer.wte.weight",  # GPT-2, Falcon
    "transformer.word_embeddings.weight",  # BLOOM
    "gpt_neox.embed_in.weight",  # Pythia
    "tok_embeddings.weight",  # original Llama checkpoints
]
EMBEDDING_TENSOR_SUFFIXES = (
    "embed_tokens.weight",
    "wte.weight",
    "word_embeddings.weight",
    "embed_in.weight",
    "tok_embeddings.weight",
)

LLAMA3_PAD_TOKEN = "<|finetune_right_pad_id|>"
IGNORE_INDEX = -100
_ANSWER_SENTINEL = "SpeechMapperAnswerSentinel"
_MARKER = "\n"

_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
}


def _local_folder(source):
    """Returns ``source`` as a Path if it names an existing local directory, else None."""
    path = Path(source).expanduser()
    return path if path.is_dir() else None


def _looks_like_path(source):
    text = str(source)
    return (
        isinstance(source, os.PathLike)
        or text.startswith(("/", "./", "../", "~", "."))
        or text.count("/") > 1
        or "\\" in text
    )


def resolve_source(source, *, cache_dir=None, revision=None, allow_patterns=None):
    """Returns a local folder holding the model given as a local path or a hub id.

    A local folder is used as is (it must contain ``config.json``). Anything else is taken as
    a Hugging Face hub id and resolved with ``huggingface_hub.snapshot_download``, restricted
    to ``allow_patterns``; the cached snapshot is used offline (``HF_HUB_OFFLINE=1``).

    Arguments
    ---------
    source : str or Path
        A local folder or a hub id such as ``meta-llama/Llama-3.1-8B-Instruct``.
    cache_dir : str or Path, optional
        The hub cache (default: ``HF_HUB_CACHE`` / ``HF_HOME``).
    revision : str, optional
        Hub branch, tag or commit (default: ``main``).
    allow_patterns : list of str, optional
        Files to fetch from the hub (default :data:`MODEL_FILE_PATTERNS`: config, tokenizer
        and safetensors weights).

    Returns
    -------
    Path
        The local folder.

    Raises
    ------
    FileNotFoundError
        A local folder without ``config.json``, or a path that does not exist.
    OSError
        A hub id that is not cached and cannot be downloaded (offline / no network).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text("{}")
    >>> resolve_source(folder) == folder
    True
    """
    local = _local_folder(source)
    if local is not None:
        if not (local / "config.json").is_file():
            raise FileNotFoundError(
                f"Model folder {local} has no config.json: give a Hugging Face model folder "
                "(config.json, tokenizer files, *.safetensors) or a hub id."
            )
        return local
    if Path(str(source)).expanduser().exists():
        raise NotADirectoryError(
            f"{source} is a file: give the model folder (config.json, tokenizer files, "
            "*.safetensors) or a Hugging Face hub id."
        )
    if _looks_like_path(source):
        raise FileNotFoundError(
            f"Model folder {source} does not exist (give an existing local folder or a "
            "Hugging Face hub id such as meta-llama/Llama-3.1-8B-Instruct)."
        )
    repo_id = str(source)
    patterns = MODEL_FILE_PATTERNS if allow_patterns is None else list(allow_patterns)
    try:
        folder = snapshot_download(
            repo_id=repo_id,
            cache_dir=cache_dir,
            revision=revision,
            allow_patterns=patterns,
            ignore_patterns=IGNORE_PATTERNS,
        )
    except HFValidationError as err:
        raise ValueError(
            f"{repo_id!r} is neither an existing local folder nor a valid Hugging Face hub "
            f"model id ({err})."
        ) from err
    except Exception as err:
        error = _hub_error(repo_id, revision, err)
        if error is err:
            raise
        raise error from err
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"The hub snapshot of {repo_id!r} in {folder} has no config.json (incomplete "
            f"download?): run `huggingface-cli download {repo_id}` or pass a local folder path."
        )
    return folder


def _is_connection_error(err):
    if isinstance(err, (LocalEntryNotFoundError, ConnectionError, TimeoutError)):
        return True
    return any(
        "Connection" in cls.__name__ or "Timeout" in cls.__name__ for cls in type(err).__mro__
    )


def _hub_error(repo_id, revision, err, filename=None):
    """Turns a huggingface_hub error into an error saying what to do."""
    what = f"{filename!r} of {repo_id!r}" if filename else repr(repo_id)
    command = f"huggingface-cli download {repo_id}" + (f" {filename}" if filename else "")
    hint = (
        f"Download it first with `{command}` (same HF_HOME or cache_dir), or pass the path "
        "of a local folder holding the model."
    )
    if isinstance(err, GatedRepoError):
        return OSError(
            f"{repo_id!r} is a gated hub repository: accept its license on "
            f"https://huggingface.co/{repo_id} and log in with `huggingface-cli login` "
            f"(or set HF_TOKEN). {err}"
        )
    if isinstance(err, RepositoryNotFoundError):
        return OSError(
            f"{repo_id!r} was not found on the Hugging Face hub (typo, private repository, or "
            f"not logged in) and is not an existing local folder. {err}"
        )
    if isinstance(err, RevisionNotFoundError):
        return OSError(f"Revision {revision!r} of {repo_id!r} does not exist. {err}")
    if _is_connection_error(err):
        return OSError(
            f"Could not get {what}: it is not in the local hub cache and the hub could not be "
            f"reached offline (HF_HUB_OFFLINE=1 or no network). {hint}"
        )
    if isinstance(err, EntryNotFoundError):
        return FileNotFoundError(f"{repo_id!r} has no file {filename!r} on the hub. {err}")
    if isinstance(err, OSError):
        return OSError(f"Could not download {what}: {err}. {hint}")
    return err


def _download_file(repo_id, filename, *, cache_dir=None, revision=None):
    """Fetches one file of a hub repository (from the cache when offline)."""
    try:
        path = hf_hub_download(
            repo_id=repo_id, filename=filename, cache_dir=cache_dir, revision=revision
        )
    except Exception as err:
        error = _hub_error(repo_id, revision, err, filename)
        if error is err:
            raise
        raise error from err
    return Path(path)


def _read_config(folder):
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _hidden_size(config):
    for conf in (config, config.get("text_config") or {}):
        for key in ("hidden_size", "n_embd", "d_model"):
            if isinstance(conf.get(key), int):
                return conf[key]
    return None


def find_embedding_tensor_name(names, where="the checkpoint", tensor_name=None):
    """Finds the input-embedding tensor among the tensor names of a checkpoint.

    Arguments
    ---------
    names : iterable of str
        Tensor names (safetensors keys or the index's ``weight_map`` keys).
    where : str
        Used in error messages (the checkpoint path or hub id).
    tensor_name : str, optional
        An explicit name, checked to exist.

    Returns
    -------
    str
        The tensor name.

    Example
    -------
    >>> find_embedding_tensor_name(["lm_head.weight", "model.embed_tokens.weight"])
    'model.embed_tokens.weight'
    >>> find_embedding_tensor_name(["backbone.encoder.embed_tokens.weight", "head.weight"])
    'backbone.encoder.embed_tokens.weight'
    """
    names = list(names)
    known = set(names)
    if tensor_name is not None:
        if tensor_name not in known:
            close = [name for name in names if "embed" in name][:10]
            raise KeyError(
                f"Tensor {tensor_name!r} not found in {where}; embedding-like tensors: {close}"
            )
        return tensor_name
    for name in EMBEDDING_TENSOR_NAMES:
        if name in known:
            return name
    candidates = [name for name in names if name.endswith(EMBEDDING_TENSOR_SUFFIXES)]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise ValueError(
            f"Several input-embedding candidates in {where}: {candidates}; pick one with "
            "tensor_name=..."
        )
    raise KeyError(
        f"No input-embedding tensor found in {where} (looked for {EMBEDDING_TENSOR_NAMES[0]!r} "
        f"and names ending with {EMBEDDING_TENSOR_SUFFIXES}); first tensors: {names[:10]}. "
        "Give the name with tensor_name=..."
    )


def _locate_embedding_file(folder, where, tensor_name=None):
    """Returns (tensor name, file name relative to folder) for a local checkpoint folder."""
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"Unreadable safetensors index {index}: {err}") from err
        name = find_embedding_tensor_name(weight_map, f"{where} ({index.name})", tensor_name)
        return name, weight_map[name]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(
            f"No safetensors weights in {folder} (neither {SAFETENSORS_INDEX} nor *.safetensors); "
            "convert the checkpoint to safetensors (save_pretrained(safe_serialization=True))."
        )
    names = {}
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                names.setdefault(key, path.name)
    name = find_embedding_tensor_name(names, where, tensor_name)
    return name, names[name]


def load_input_embeddings(source, *, cache_dir=None, revision=None, tensor_name=None):
    """Reads only the input-embedding matrix [V, D] of a checkpoint, in its stored dtype.

    The model is never instantiated: the tensor is read from the safetensors file that holds
    it (found through ``model.safetensors.index.json`` for sharded checkpoints). For a hub id
    only the config, tokenizer and index files plus the single shard holding the embeddings
    are downloaded (for an unsharded checkpoint, ``model.safetensors`` as a whole).

    Arguments
    ---------
    source : str or Path
        A local model folder or a hub id (see :func:`resolve_source`).
    cache_dir : str or Path, optional
        The hub cache.
    revision : str, optional
        Hub revision.
    tensor_name : str, optional
        The embedding tensor name, if it is not one of the usual ones.

    Returns
    -------
    torch.Tensor
        The [V, D] embedding matrix (bf16 for Llama-3.1 / EuroLLM checkpoints).

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny_llm import build_tiny_llm
    >>> folder = build_tiny_llm(tempfile.mkdtemp(), ["the cat sat", "the dog ran"])
    >>> weight = load_input_embeddings(folder)
    >>> weight.shape[1], weight.dtype
    (128, torch.float32)
    """
    local = _local_folder(source)
    if local is not None:
        folder = resolve_source(local)
        name, filename = _locate_embedding_file(folder, str(folder), tensor_name)
        path = folder / filename
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} lists {name!r} in {filename!r} which does not exist (incomplete copy?)."
            )
    else:
        folder = resolve_source(
            source, cache_dir=cache_dir, revision=revision, allow_patterns=EMBEDDING_FILE_PATTERNS
        )
        repo_id = str(source)
        if (folder / SAFETENSORS_INDEX).is_file():
            name, filename = _locate_embedding_file(folder, repo_id, tensor_name)
        else:
            name, filename = None, SAFETENSORS_SINGLE
        path = _download_file(repo_id, filename, cache_dir=cache_dir, revision=revision)
        if name is None:
            with safe_open(str(path), framework="pt") as handle:
                name = find_embedding_tensor_name(handle.keys(), repo_id, tensor_name)
    logger.info("Reading the input embeddings %r from %s", name, path)
    with safe_open(str(path), framework="pt") as handle:
        weight = handle.get_tensor(name)
    if weight.ndim != 2:
        raise ValueError(
            f"Tensor {name!r} in {path} has shape {tuple(weight.shape)}, not [vocab, dim]."
        )
    hidden = _hidden_size(_read_config(folder))
    if hidden is not None and weight.shape[1] != hidden:
        raise ValueError(
            f"Tensor {name!r} in {path} has shape {tuple(weight.shape)} but the model's hidden "
            f"size is {hidden}: it is not the input-embedding table (pass tensor_name=...)."
        )
    return weight


def load_tokenizer(source, *, cache_dir=None, revision=None):
    """Loads the (fast) tokenizer of a local model folder or hub id (tokenizer files only).

    Arguments
    ---------
    source : str or Path
        A local model folder or a hub id.
    cache_dir : str or Path, optional
        The hub cache.
    revision : str, optional
        Hub revision.

    Returns
    -------
    transformers.PreTrainedTokenizerBase
        The tokenizer.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny_llm import build_tiny_llm
    >>> folder = build_tiny_llm(tempfile.mkdtemp(), ["the cat sat", "the dog ran"])
    >>> load_tokenizer(folder).eos_token
    '<|eot_id|>'
    """
    from transformers import AutoTokenizer

    folder = resolve_source(
        source, cache_dir=cache_dir, revision=revision, allow_patterns=TOKENIZER_FILE_PATTERNS
    )
    return AutoTokenizer.from_pretrained(str(folder))


def _model_name(tokenizer):
    return getattr(tokenizer, "name_or_path", None) or "this model"


def _single_token_id(tokenizer, token):
    """The id of ``token`` if it is one vocabulary entry (not unk), else None."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or isinstance(token_id, list):
        return None
    if tokenizer.unk_token_id is not None and token_id == tokenizer.unk_token_id:
        return None if token != tokenizer.unk_token else token_id
    if tokenizer.convert_ids_to_tokens(token_id) != token:
        return None
    return int(token_id)


def end_of_turn_token(tokenizer):
    """The token closing an assistant turn in the chat template (else the eos token).

    It is found by rendering a one-turn conversation: for Llama-3.1 it is ``<|eot_id|>``,
    for ChatML models such as EuroLLM ``<|im_end|>``.

    Arguments
    ---------
    tokenizer : transformers.PreTrainedTokenizerBase
        The LLM tokenizer.

    Returns
    -------
    tuple
        (token, id).

    Example
    -------
    >>> from speechmapper_plugin.tiny_llm import train_tokenizer
    >>> end_of_turn_token(train_tokenizer(["the cat sat"]))[0]
    '<|eot_id|>'
    """
    if getattr(tokenizer, "chat_template", None):
        messages = [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": _ANSWER_SENTINEL},
        ]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        if isinstance(text, str) and _ANSWER_SENTINEL in text:
            rest = text.split(_ANSWER_SENTINEL, 1)[1]
            ids = tokenizer(rest, add_special_tokens=False)["input_ids"] if rest else []
            special = _special_ids(tokenizer)
            if ids and ids[0] in special:
                return tokenizer.convert_ids_to_tokens(ids[0]), int(ids[0])
    if tokenizer.eos_token is None:
        raise ValueError(
            f"Cannot tell the end-of-turn token of {_model_name(tokenizer)}: its chat template "
            "does not close the assistant turn with a special token and it has no eos_token."
        )
    return tokenizer.eos_token, int(tokenizer.eos_token_id)


def _special_ids(tokenizer):
    ids = set(tokenizer.all_special_ids)
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    return ids


def _pad_candidates(tokenizer, forbidden):
    candidates = [token for token in tokenizer.all_special_tokens if token not in forbidden]
    added = getattr(tokenizer, "added_tokens_decoder", {})
    for token_id in sorted(added):
        token = added[token_id].content
        if token not in forbidden and token not in candidates and "pad" in token.lower():
            candidates.append(token)
    return candidates[:12]


def select_pad_token(tokenizer, pad_token="auto"):
    """Chooses the reserved token whose embedding pads the stage-1 targets.

    ``"auto"`` picks ``<|finetune_right_pad_id|>`` when the vocabulary has it (Llama-3.x),
    otherwise the tokenizer's own ``pad_token`` (EuroLLM sets one). An explicit token must be
    one vocabulary entry (not unk). In all cases it must differ from the eos and end-of-turn
    tokens (the LLM would stop on it).

    Arguments
    ---------
    tokenizer : transformers.PreTrainedTokenizerBase
        The LLM tokenizer.
    pad_token : str
        ``"auto"`` or a token string.

    Returns
    -------
    tuple
        (token, id).

    Example
    -------
    >>> from speechmapper_plugin.tiny_llm import train_tokenizer
    >>> tok = train_tokenizer(["the cat sat"])
    >>> select_pad_token(tok)[0]
    '<|finetune_right_pad_id|>'
    >>> select_pad_token(tok, "<|reserved_special_token_0|>")[0]
    '<|reserved_special_token_0|>'
    """
    name = _model_name(tokenizer)
    eot_token, _ = end_of_turn_token(tokenizer)
    forbidden = {token for token in (tokenizer.eos_token, eot_token) if token is not None}
    hint = (
        f"Choose one with --pad_token=<token>; candidates: {_pad_candidates(tokenizer, forbidden)}"
    )
    if pad_token is None or pad_token == "auto":
        if _single_token_id(tokenizer, LLAMA3_PAD_TOKEN) is not None:
            token = LLAMA3_PAD_TOKEN
        elif tokenizer.pad_token is not None:
            token = tokenizer.pad_token
        else:
            raise ValueError(
                f"{name} has no reserved pad token ({LLAMA3_PAD_TOKEN!r} is not in its "
                f"vocabulary and its tokenizer sets no pad_token). {hint}"
            )
        if token in forbidden:
            raise ValueError(
                f"The pad token of {name} is {token!r}, which is also its eos / end-of-turn "
                f"token and cannot pad the targets. {hint}"
            )
    else:
        token = str(pad_token)
        if token in forbidden:
            raise ValueError(
                f"Pad token {token!r} is the eos / end-of-turn token of {name}: the LLM would "
                f"stop on it. {hint}"
            )
    token_id = _single_token_id(tokenizer, token)
    if token_id is None:
        raise ValueError(
            f"Pad token {token!r} is not a single token of the {name} vocabulary. {hint}"
        )
    return token, token_id


def speech_lengths(lens, length):
    """Relative lengths [B] (SpeechBrain convention) -> numbers of valid frames [B].

    Arguments
    ---------
    lens : torch.Tensor
        Relative lengths in [0, 1].
    length : int
        The padded length T.

    Returns
    -------
    torch.Tensor
        Long tensor, ``round(lens * T)`` clamped to [0, T].

    Example
    -------
    >>> speech_lengths(torch.tensor([1.0, 0.5]), 5).tolist()
    [5, 2]
    """
    if lens is None:
        raise ValueError("Relative lengths are required (got None).")
    lens = torch.as_tensor(lens, dtype=torch.float32)
    return torch.round(lens * length).long().clamp(0, length)


class EmbeddingTable(torch.nn.Module):
    """The frozen LLM input-embedding table: stage-1 targets and nearest-embedding decoding.

    The weight is a non-persistent buffer: it follows ``.to(device)`` but is never optimized,
    never saved in checkpoints, and as the module has no parameters SpeechBrain does not wrap
    it in DDP. It keeps its stored dtype (bf16 for real LLMs, 1 GB for Llama-3.1-8B); gathered
    rows are returned in float32.

    Arguments
    ---------
    weight : torch.Tensor
        The [V, D] input-embedding matrix.
    pad_id : int
        The id of the pad token whose embedding fills targets up to the output length.
    tokenizer : transformers.PreTrainedTokenizerBase, optional
        Used by :meth:`encode` and :meth:`decode`. :meth:`from_pretrained` sets it.
    chunk_size : int
        Vocabulary rows per block in :meth:`nearest` (bounds its memory).

    Example
    -------
    >>> table = EmbeddingTable(torch.eye(4), pad_id=3)
    >>> targets = table.targets([[0, 1], [2]], length=3)
    >>> targets.shape
    torch.Size([2, 3, 4])
    >>> table.nearest(targets, torch.tensor([1.0, 1.0]))
    [[0, 1], [2]]
    """

    def __init__(self, weight, pad_id, tokenizer=None, chunk_size=8192):
        super().__init__()
        if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
            raise ValueError("EmbeddingTable expects a [vocab, dim] tensor.")
        if not 0 <= int(pad_id) < weight.shape[0]:
            raise ValueError(f"pad_id {pad_id} is outside the vocabulary [0, {weight.shape[0]}).")
        self.register_buffer("weight", weight.detach(), persistent=False)
        self.pad_id = int(pad_id)
        self.tokenizer = tokenizer
        self.pad_token = None
        self.chunk_size = int(chunk_size)
        self.num_truncated = 0
        self._sq_norms = None

    @classmethod
    def from_pretrained(
        cls, source, pad_token="auto", *, cache_dir=None, revision=None, tensor_name=None
    ):
        """Builds the table from a local folder or hub id, without loading the model.

        Arguments
        ---------
        source : str or Path
            A local model folder or a hub id.
        pad_token : str
            See :func:`select_pad_token`.
        cache_dir : str or Path, optional
            The hub cache.
        revision : str, optional
            Hub revision.
        tensor_name : str, optional
            See :func:`load_input_embeddings`.

        Returns
        -------
        EmbeddingTable
            The table, with its ``tokenizer`` and ``pad_token`` attributes set.

        Example
        -------
        >>> import tempfile
        >>> from speechmapper_plugin.tiny_llm import build_tiny_llm
        >>> folder = build_tiny_llm(tempfile.mkdtemp(), ["the cat sat", "the dog ran"])
        >>> table = EmbeddingTable.from_pretrained(folder)
        >>> table.pad_token, table.embed_dim
        ('<|finetune_right_pad_id|>', 128)
        """
        tokenizer = load_tokenizer(source, cache_dir=cache_dir, revision=revision)
        weight = load_input_embeddings(
            source, cache_dir=cache_dir, revision=revision, tensor_name=tensor_name
        )
        token, pad_id = select_pad_token(tokenizer, pad_token)
        if len(tokenizer) > weight.shape[0]:
            raise ValueError(
                f"The tokenizer of {source} has {len(tokenizer)} tokens but the embedding table "
                f"only {weight.shape[0]} rows: tokenizer and weights do not match."
            )
        table = cls(weight, pad_id, tokenizer=tokenizer)
        table.pad_token = token
        logger.info(
            "Embedding table of %s: %d x %d %s, pad token %r (id %d)",
            source,
            weight.shape[0],
            weight.shape[1],
            weight.dtype,
            token,
            pad_id,
        )
        return table

    @property
    def vocab_size(self):
        """Number of rows V."""
        return self.weight.shape[0]

    @property
    def embed_dim(self):
        """Embedding dimension D."""
        return self.weight.shape[1]

    def forward(self, token_ids):
        """Gathers embedding rows as float32 (``token_ids`` of any shape -> [..., D]).

        Arguments
        ---------
        token_ids : torch.Tensor
            Long tensor of token ids.

        Returns
        -------
        torch.Tensor
            The float32 embeddings.
        """
        return self.weight[token_ids.to(self.weight.device)].float()

    def encode(self, texts):
        """Tokenizes target texts without special tokens (the stage-1 target ids).

        Arguments
        ---------
        texts : list of str
            Normalized transcripts.

        Returns
        -------
        list of list of int
            Token ids.
        """
        tokenizer = self._need_tokenizer(None)
        return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def targets(self, token_ids, length, num_tokens=None, utt_ids=None, return_lengths=False):
        """Embeddings of the tokens followed by the pad embedding up to ``length``.

        Targets longer than ``length`` are truncated to it; each truncation is counted in
        ``num_truncated`` and logged with the utterance index (or id).

        Arguments
        ---------
        token_ids : list of list of int or torch.Tensor
            Per-utterance token ids, or a padded [B, L] long tensor with ``num_tokens``.
        length : int
            The projector output length T.
        num_tokens : torch.Tensor or list of int, optional
            Numbers of valid tokens per row of a padded tensor (integers), or relative
            lengths (floating point tensor, SpeechBrain convention).
        utt_ids : list of str, optional
            Utterance ids, used in the truncation warning.
        return_lengths : bool
            Whether to also return the numbers of target tokens kept (<= T).

        Returns
        -------
        torch.Tensor
            [B, T, D] float32 targets (and the [B] long tensor of kept tokens).

        Example
        -------
        >>> table = EmbeddingTable(torch.eye(4), pad_id=3)
        >>> padded = torch.tensor([[0, 1, 2], [2, 0, 0]])
        >>> out, kept = table.targets(padded, 2, num_tokens=[3, 1], return_lengths=True)
        >>> out.argmax(-1).tolist(), kept.tolist(), table.num_truncated
        ([[0, 1], [2, 3]], [2, 1], 1)
        """
        sequences = self._as_sequences(token_ids, num_tokens)
        length = int(length)
        ids = torch.full((len(sequences), length), self.pad_id, dtype=torch.long)
        kept = torch.zeros(len(sequences), dtype=torch.long)
        for index, seq in enumerate(sequences):
            if len(seq) > length:
                self.num_truncated += 1
                name = utt_ids[index] if utt_ids is not None else f"#{index} of the batch"
                logger.warning(
                    "Target of utterance %s has %d tokens but the projector output only %d "
                    "frames: truncated (%d truncations so far).",
                    name,
                    len(seq),
                    length,
                    self.num_truncated,
                )
                seq = seq[:length]
            if len(seq):
                row = torch.as_tensor(seq, dtype=torch.long)
                if int(row.min()) < 0 or int(row.max()) >= self.vocab_size:
                    name = utt_ids[index] if utt_ids is not None else f"#{index} of the batch"
                    raise ValueError(
                        f"Target of utterance {name} has token ids outside [0, "
                        f"{self.vocab_size}): were they made with another tokenizer?"
                    )
                ids[index, : len(seq)] = row
            kept[index] = len(seq)
        out = self(ids)
        if return_lengths:
            return out, kept.to(out.device)
        return out

    @staticmethod
    def _as_sequences(token_ids, num_tokens):
        if isinstance(token_ids, torch.Tensor):
            if token_ids.ndim != 2:
                raise ValueError("Padded token ids must be a [B, L] tensor.")
            if num_tokens is None:
                raise ValueError("num_tokens is required with a padded token-id tensor.")
            counts = torch.as_tensor(num_tokens)
            if counts.is_floating_point():
                counts = speech_lengths(counts, token_ids.shape[1])
            counts = counts.long().tolist()
            rows = token_ids.tolist()
            return [row[:count] for row, count in zip(rows, counts)]
        return [list(seq) for seq in token_ids]

    def _norms(self):
        weight = self.weight
        cached = self._sq_norms
        if cached is None or cached.device != weight.device or cached.shape[0] != len(weight):
            norms = []
            for start in range(0, len(weight), self.chunk_size):
                norms.append(weight[start : start + self.chunk_size].float().pow(2).sum(-1))
            self._sq_norms = torch.cat(norms)
        return self._sq_norms

    @torch.no_grad()
    def nearest(self, pred, lens=None, metric="l2"):
        """Nearest embedding row of each valid output vector, cut at the first pad.

        ``metric="l2"`` is the Euclidean nearest neighbour; ``metric="cosine"`` ignores the
        vector norms (useful early in training, when MSE-trained outputs are shrunk towards
        the mean embedding and L2 favours small-norm rows).

        The search runs in blocks of ``chunk_size`` vocabulary rows, so a 128K x 4096 table
        needs no [N, V] distance matrix.

        Arguments
        ---------
        pred : torch.Tensor
            [B, T, D] projector outputs.
        lens : torch.Tensor, optional
            [B] relative lengths (all frames valid if None).
        metric : str
            "l2" or "cosine".

        Returns
        -------
        list of list of int
            Token ids before the first pad id.

        Example
        -------
        >>> table = EmbeddingTable(torch.eye(3), pad_id=2)
        >>> pred = torch.tensor([[[0.9, 0.1, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])
        >>> table.nearest(pred, torch.tensor([1.0]))
        [[0]]
        """
        batch, length, dim = pred.shape
        if dim != self.embed_dim:
            raise ValueError(f"Outputs have dimension {dim}, the embeddings {self.embed_dim}.")
        if metric not in ("l2", "cosine"):
            raise ValueError(f"Unknown nearest-embedding metric {metric!r}: use 'l2' or 'cosine'.")
        counts = (
            torch.full((batch,), length, dtype=torch.long)
            if lens is None
            else speech_lengths(torch.as_tensor(lens).detach().cpu(), length)
        ).tolist()
        device = self.weight.device
        frames = torch.cat([pred[b, : counts[b]] for b in range(batch)]).detach()
        frames = frames.to(device=device, dtype=torch.float32)
        best = torch.full((len(frames),), math.inf, device=device)
        best_ids = torch.zeros(len(frames), dtype=torch.long, device=device)
        norms = self._norms()
        if metric == "cosine":
            frames = torch.nn.functional.normalize(frames, dim=-1)
        frame_chunk = max(1, (1 << 25) // max(1, self.chunk_size))
        for start in range(0, self.vocab_size, self.chunk_size):
            block = self.weight[start : start + self.chunk_size].float()
            block_norms = norms[start : start + self.chunk_size]
            for first in range(0, len(frames), frame_chunk):
                part = frames[first : first + frame_chunk]
                if metric == "cosine":
                    dist = -(part @ block.T) / block_norms.clamp(min=1e-24).sqrt().unsqueeze(0)
                else:
                    dist = block_norms.unsqueeze(0) - 2.0 * (part @ block.T)
                value, index = dist.min(dim=-1)
                better = value < best[first : first + frame_chunk]
                best[first : first + frame_chunk][better] = value[better]
                best_ids[first : first + frame_chunk][better] = index[better] + start
        out, offset = [], 0
        for count in counts:
            seq = best_ids[offset : offset + count].tolist()
            offset += count
            if self.pad_id in seq:
                seq = seq[: seq.index(self.pad_id)]
            out.append(seq)
        return out

    def decode(self, pred, lens=None, tokenizer=None, metric="l2"):
        """Nearest-embedding decoding of projector outputs to text (stage-1 diagnostic).

        Arguments
        ---------
        pred : torch.Tensor
            [B, T, D] projector outputs.
        lens : torch.Tensor, optional
            [B] relative lengths.
        tokenizer : transformers.PreTrainedTokenizerBase, optional
            Default: the table's tokenizer.
        metric : str
            "l2" or "cosine" (see :meth:`nearest`).

        Returns
        -------
        list of str
            The decoded texts (special tokens skipped).

        Example
        -------
        >>> from speechmapper_plugin.tiny_llm import train_tokenizer
        >>> tok = train_tokenizer(["the cat sat", "the dog ran"])
        >>> table = EmbeddingTable(torch.randn(len(tok), 8), pad_id=tok.convert_tokens_to_ids("<|finetune_right_pad_id|>"), tokenizer=tok)
        >>> pred = table.targets(table.encode(["the dog sat"]), length=12)
        >>> table.decode(pred, torch.tensor([1.0]))
        ['the dog sat']
        """
        tokenizer = self._need_tokenizer(tokenizer)
        return [
            tokenizer.decode(ids, skip_special_tokens=True).strip()
            for ids in self.nearest(pred, lens, metric=metric)
        ]

    def _need_tokenizer(self, tokenizer):
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        if tokenizer is None:
            raise ValueError(
                "This EmbeddingTable has no tokenizer: build it with "
                "EmbeddingTable.from_pretrained(...) or pass tokenizer=..."
            )
        return tokenizer


def _parse_dtype(dtype):
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return "auto"
    key = str(dtype).replace("torch.", "").lower()
    if key not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of {sorted(_DTYPES)} or 'auto'.")
    return _DTYPES[key]


def _check_model_files(folder, source):
    """Fails early with a clear message when a (cached) checkpoint misses weight files."""
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"Unreadable safetensors index {index}: {err}") from err
        missing = [shard for shard in shards if not (folder / shard).is_file()]
    else:
        missing = [] if any(folder.glob("*.safetensors")) else [SAFETENSORS_SINGLE]
    if missing:
        raise FileNotFoundError(
            f"The checkpoint of {source} in {folder} misses {missing} (only the embeddings or "
            f"tokenizer were downloaded?). Run `huggingface-cli download {source}` or give a "
            "complete local folder."
        )


class FrozenLLM(torch.nn.Module):
    """A frozen causal LLM fed with projector outputs spliced into its chat prompt.

    The model is loaded with ``AutoModelForCausalLM`` / ``AutoTokenizer`` from a hub id or a
    local folder, has ``requires_grad=False`` everywhere and stays in eval mode even when
    ``train()`` is called (so ``Brain.fit`` never turns its dropout on). It has no trainable
    parameters, hence SpeechBrain does not wrap it in DDP; do not add it to the checkpointer's
    recoverables (it would save the LLM weights).

    Arguments
    ---------
    source : str or Path
        A hub id (e.g. ``meta-llama/Llama-3.1-8B-Instruct``) or a local folder.
    dtype : str or torch.dtype
        Weight dtype ("bfloat16", "float16", "float32" or "auto").
    pad_token : str
        The reserved pad token (see :func:`select_pad_token`); it also pads batches.
    placeholder : str
        The text marking where the speech embeddings go in a user prompt.
    system_prompt : str, optional
        A system message added to every conversation.
    cache_dir : str or Path, optional
        The hub cache.
    revision : str, optional
        Hub revision.
    attn_implementation : str
        "sdpa", "eager" or "flash_attention_2".
    device : str or torch.device, optional
        Load the weights directly on this device.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny_llm import build_tiny_llm
    >>> folder = build_tiny_llm(tempfile.mkdtemp(), ["the cat sat", "the dog ran"])
    >>> llm = FrozenLLM(folder, dtype="float32")
    >>> speech = torch.randn(2, 5, llm.embed_dim, requires_grad=True)
    >>> lens = torch.tensor([1.0, 0.6])
    >>> out = llm(speech, lens, ["<speech>\\nrepeat"] * 2, ["the cat sat", "the dog"])
    >>> out["loss"].backward()
    >>> speech.grad.abs().sum() > 0
    tensor(True)
    >>> texts = llm.generate(speech.detach(), lens, ["<speech>\\nrepeat"] * 2, max_new_tokens=3)
    >>> len(texts)
    2
    """

    def __init__(
        self,
        source,
        *,
        dtype="bfloat16",
        pad_token="auto",
        placeholder="<speech>",
        system_prompt=None,
        cache_dir=None,
        revision=None,
        attn_implementation="sdpa",
        device=None,
    ):
        super().__init__()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not placeholder:
            raise ValueError("The speech placeholder must be a non-empty string.")
        folder = resolve_source(
            source, cache_dir=cache_dir, revision=revision, allow_patterns=MODEL_FILE_PATTERNS
        )
        _check_model_files(folder, source)
        self.source = str(source)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        kwargs = {"dtype": _parse_dtype(dtype)}
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        if device is not None:
            kwargs["device_map"] = {"": torch.device(device)}
        self.model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
        self.model.requires_grad_(False)
        self.model.eval()
        self.placeholder = placeholder
        self.system_prompt = system_prompt
        self.pad_token, self.pad_id = select_pad_token(self.tokenizer, pad_token)
        self.eot_token, self.eot_id = end_of_turn_token(self.tokenizer)
        self.embed_dim = self.model.get_input_embeddings().embedding_dim
        if self.pad_id >= self.model.get_input_embeddings().num_embeddings:
            raise ValueError(
                f"Pad token {self.pad_token!r} (id {self.pad_id}) is outside the embedding "
                f"table of {source}."
            )
        self.eos_ids = self._stop_ids()
        bos_id = self.tokenizer.bos_token_id
        self._bos_id = None
        if bos_id is not None:
            probe = self.tokenizer("a")["input_ids"]
            if probe and probe[0] == bos_id:
                self._bos_id = int(bos_id)
        self._marker_ids = list(self.tokenizer(_MARKER, add_special_tokens=False)["input_ids"])
        self._prompt_cache = {}
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        logger.info(
            "Frozen LLM %s: dim %d, %s, pad %r (id %d), end of turn %r, stops on %s",
            source,
            self.embed_dim,
            self.model.dtype,
            self.pad_token,
            self.pad_id,
            self.eot_token,
            self.eos_ids,
        )

    def _stop_ids(self):
        ids = {self.eot_id}
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        config_eos = getattr(self.model.generation_config, "eos_token_id", None)
        if config_eos is not None:
            ids.update(
                int(i) for i in ([config_eos] if isinstance(config_eos, int) else config_eos)
            )
        return sorted(ids)

    def train(self, mode=True):
        """Keeps the frozen LLM in eval mode whatever ``mode`` is; only the dropout of LoRA
        adapters (``lora.attach_lora``), if any, follows ``mode`` (returns self)."""
        super().train(False)
        if mode and hasattr(self.model, "peft_config"):
            for name, module in self.model.named_modules():
                if name.rsplit(".", 2)[-2:-1] == ["lora_dropout"]:
                    module.train(True)
        return self

    @property
    def dtype(self):
        """The LLM weight dtype."""
        return self.model.dtype

    def embed(self, ids):
        """The LLM input embeddings of token ids (model dtype).

        Arguments
        ---------
        ids : torch.Tensor
            Long tensor of token ids.

        Returns
        -------
        torch.Tensor
            The embeddings, shape ``ids.shape + (D,)``.
        """
        layer = self.model.get_input_embeddings()
        return layer(ids.to(layer.weight.device))

    def embedding_table(self):
        """An :class:`EmbeddingTable` sharing this LLM's embedding weight (no copy).

        Returns
        -------
        EmbeddingTable
            The table (build it after moving the LLM to its device).
        """
        weight = self.model.get_input_embeddings().weight
        table = EmbeddingTable(weight, self.pad_id, tokenizer=self.tokenizer)
        table.pad_token = self.pad_token
        return table

    def _ids(self, text):
        """Token ids of a text segment as it reads in context (after a newline).

        Sentencepiece-style tokenizers (EuroLLM, Llama-2) put a "dummy prefix" space on the
        first word of every tokenized string, which the segment does not have inside the
        rendered chat: the segment is tokenized after a newline whose ids are then removed.
        Byte-level BPE tokenizers (Llama-3) may merge that newline with the segment; they
        add no dummy prefix, so the segment is then tokenized on its own.
        """
        if not text:
            return []
        marked = self.tokenizer(_MARKER + text, add_special_tokens=False)["input_ids"]
        if marked[: len(self._marker_ids)] == self._marker_ids:
            return list(marked[len(self._marker_ids) :])
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, prompt, speech=True):
        """Token ids of the chat-rendered prompt before and after the speech placeholder.

        The prompt is the user message; it is rendered with the chat template (optional system
        prompt, ``add_generation_prompt=True``), so the ids after the placeholder end with the
        assistant header.

        Arguments
        ---------
        prompt : str
            A user message with exactly one placeholder (``speech=True``), or a text-only
            message without it (``speech=False``: the "before" ids are then the whole
            rendered user turn and assistant header, the "after" ids are empty).
        speech : bool
            Whether the prompt receives speech vectors.

        Returns
        -------
        tuple
            (ids before, ids after) as lists of int.
        """
        cached = self._prompt_cache.get((prompt, speech))
        if cached is not None:
            return cached
        if not isinstance(prompt, str):
            raise TypeError(f"A prompt must be a str, got {type(prompt).__name__}: {prompt!r}")
        count = prompt.count(self.placeholder)
        if not speech:
            if count:
                raise ValueError(
                    f"Text-only prompt {prompt!r} still holds the speech placeholder "
                    f"{self.placeholder!r}: fill it first (prompts.fill_text)."
                )
            prompt = prompt + self.placeholder
        elif count != 1:
            raise ValueError(
                f"Prompt {prompt!r} must contain the speech placeholder {self.placeholder!r} "
                f"exactly once (found {count})."
            )
        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        if text.count(self.placeholder) != 1:
            raise ValueError(
                f"The chat template of {self.source} does not keep the placeholder "
                f"{self.placeholder!r} of prompt {prompt!r} exactly once; rendered: {text!r}"
            )
        before, after = text.split(self.placeholder)
        if not speech:
            before, after = before + after, ""
        before_ids, after_ids = self._ids(before), self._ids(after)
        if self._bos_id is not None and (not before_ids or before_ids[0] != self._bos_id):
            before_ids = [self._bos_id] + before_ids
        key = (prompt if speech else prompt[: -len(self.placeholder)], speech)
        self._prompt_cache[key] = (before_ids, after_ids)
        return before_ids, after_ids

    def build_inputs(
        self,
        speech,
        speech_lens,
        prompts,
        answers=None,
        assistant_prefix="",
        padding_side="right",
    ):
        """Splices the speech vectors into the chat prompts (and answers) as LLM inputs.

        Each sequence is: prompt ids before the placeholder, the ``round(lens * T)`` valid
        speech vectors (cast to the LLM dtype, differentiable), prompt ids after the
        placeholder (generation prompt included), the ``assistant_prefix`` ids, and for
        training the answer ids followed by the end-of-turn token. ``labels`` (aligned with
        the inputs, as in Hugging Face) are -100 except on the answer and end-of-turn
        positions. Padding uses the pad-token embedding and ``attention_mask`` 0.

        Arguments
        ---------
        speech : torch.Tensor or None
            [B, T, D] projector outputs; None for text-only prompts (no placeholder).
        speech_lens : torch.Tensor or None
            [B] relative lengths.
        prompts : list of str or str
            User messages, each with one placeholder (a str is used for every utterance).
        answers : list of str, optional
            Target answers (training); None for generation.
        assistant_prefix : str
            Text forced at the start of the assistant turn (tokenized on its own).
        padding_side : str
            "right" (training) or "left" (generation).

        Returns
        -------
        dict
            ``inputs_embeds`` [B, L, D], ``attention_mask`` [B, L], ``labels`` [B, L] (None
            without answers) and ``position_ids`` [B, L].
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if speech is None:  # text-only prompts (cascades, judges)
            if isinstance(prompts, str):
                prompts = [prompts]
            batch, dim = len(prompts), self.embed_dim
            counts = [0] * batch
            device = self.model.get_input_embeddings().weight.device
        else:
            batch, length, dim = speech.shape
            if dim != self.embed_dim:
                raise ValueError(
                    f"Speech vectors have dimension {dim} but {self.source} embeddings "
                    f"{self.embed_dim}."
                )
            counts = speech_lengths(torch.as_tensor(speech_lens).detach().cpu(), length).tolist()
            device = speech.device
        prompts = [prompts] * batch if isinstance(prompts, str) else list(prompts)
        if len(prompts) != batch:
            raise ValueError(f"Got {len(prompts)} prompts for a batch of {batch}.")
        if answers is not None:
            answers = list(answers)
            if len(answers) != batch:
                raise ValueError(f"Got {len(answers)} answers for a batch of {batch}.")
        prefix_ids = self._ids(assistant_prefix)
        dtype = self.model.dtype
        pieces, label_rows = [], []
        for index in range(batch):
            before, after = self.prompt_ids(prompts[index], speech=speech is not None)
            tail = after + prefix_ids
            answer = []
            if answers is not None:
                answer = self._ids(answers[index]) + [self.eot_id]
            ids_before = torch.tensor(before, dtype=torch.long, device=device)
            ids_after = torch.tensor(tail + answer, dtype=torch.long, device=device)
            parts = [self.embed(ids_before).to(device), self.embed(ids_after).to(device)]
            if speech is not None:
                parts.insert(1, speech[index, : counts[index]].to(dtype))
            embeds = torch.cat(parts)
            pieces.append(embeds)
            labels = torch.full((len(embeds),), IGNORE_INDEX, dtype=torch.long, device=device)
            if answer:
                labels[len(embeds) - len(answer) :] = torch.tensor(answer, device=device)
            label_rows.append(labels)
        total = max(len(piece) for piece in pieces)
        pad_embed = self.embed(torch.tensor([self.pad_id], device=device)).to(device)[0]
        inputs_embeds = pad_embed.expand(batch, total, dim).clone()
        attention_mask = torch.zeros(batch, total, dtype=torch.long, device=device)
        labels = torch.full((batch, total), IGNORE_INDEX, dtype=torch.long, device=device)
        for index, piece in enumerate(pieces):
            size = len(piece)
            span = slice(0, size) if padding_side == "right" else slice(total - size, total)
            inputs_embeds[index, span] = piece
            attention_mask[index, span] = 1
            labels[index, span] = label_rows[index]
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return {
            "inputs_embeds": inputs_embeds,
            "attention_mask": attention_mask,
            "labels": labels if answers is not None else None,
            "position_ids": position_ids,
        }

    def forward(
        self, speech, speech_lens, prompts, answers, assistant_prefix="", return_logits=False
    ):
        """Cross-entropy of the answers (+ end-of-turn) given the speech-spliced prompts.

        Only the logits from the first answer position on are computed (``logits_to_keep``),
        and the loss is the float32 mean over all answer tokens of the batch.

        Arguments
        ---------
        speech : torch.Tensor
            [B, T, D] projector outputs.
        speech_lens : torch.Tensor
            [B] relative lengths.
        prompts : list of str or str
            User messages with one placeholder.
        answers : list of str
            Target answers.
        assistant_prefix : str
            Forced start of the assistant turn.
        return_logits : bool
            Also return the full [B, L, V] logits (and compute them all).

        Returns
        -------
        dict
            ``loss`` (scalar), ``num_tokens`` (answer tokens scored), and ``logits`` and
            ``labels`` if ``return_logits``.
        """
        if answers is None:
            raise ValueError("FrozenLLM.forward needs answers (use generate() for inference).")
        inputs = self.build_inputs(
            speech, speech_lens, prompts, answers, assistant_prefix=assistant_prefix
        )
        labels = inputs["labels"]
        shifted = labels[:, 1:]
        valid = shifted != IGNORE_INDEX
        start = 0
        kwargs = {}
        if not return_logits and self._keeps_logits:
            start = int(valid.nonzero()[:, 1].min())
            kwargs["logits_to_keep"] = labels.shape[1] - start
        output = self.model(
            inputs_embeds=inputs["inputs_embeds"],
            attention_mask=inputs["attention_mask"],
            position_ids=inputs["position_ids"],
            use_cache=False,
            **kwargs,
        )
        logits = output.logits
        if logits.shape[1] != labels.shape[1] - start:
            raise RuntimeError(
                f"{self.source} returned {logits.shape[1]} logit positions, expected "
                f"{labels.shape[1] - start}."
            )
        mask = valid[:, start:]
        scored = logits[:, :-1][mask].float()
        loss = torch.nn.functional.cross_entropy(scored, shifted[:, start:][mask])
        result = {"loss": loss, "num_tokens": int(mask.sum())}
        if return_logits:
            result["logits"] = logits
            result["labels"] = labels
        return result

    def generate(
        self,
        speech,
        speech_lens,
        prompts,
        max_new_tokens=150,
        assistant_prefix="",
        batch_size=None,
        guard=None,
    ):
        """Batched greedy decoding (left padding, attention mask, KV cache) to text.

        Decoding stops on the model's eos ids (generation config, tokenizer eos and the
        end-of-turn token). The model's sampling defaults are ignored: it is pure greedy search.

        Arguments
        ---------
        speech : torch.Tensor
            [B, T, D] projector outputs.
        speech_lens : torch.Tensor
            [B] relative lengths.
        prompts : list of str or str
            User messages with one placeholder.
        max_new_tokens : int
            Maximum number of generated tokens (paper: 150).
        assistant_prefix : str
            Text forced at the start of the answer (not part of the returned text).
        batch_size : int, optional
            Decode in sub-batches of this size (default: the whole batch).
        guard : decoding.RepetitionGuard, optional
            Stops (and trims) generations stuck on a repeated n-gram.

        Returns
        -------
        list of str
            The generated answers (special tokens skipped, stripped).
        """
        return self.decode_ids(
            self.generate_ids(
                speech,
                speech_lens,
                prompts,
                max_new_tokens=max_new_tokens,
                assistant_prefix=assistant_prefix,
                batch_size=batch_size,
                guard=guard,
            )
        )

    def decode_ids(self, sequences):
        """Texts of generated id sequences (special tokens skipped, stripped).

        Arguments
        ---------
        sequences : list of list of int
            Output of :meth:`generate_ids`.

        Returns
        -------
        list of str
            The texts.
        """
        return [self.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in sequences]

    def generate_text(self, prompts, max_new_tokens=150, assistant_prefix="", batch_size=None):
        """Batched greedy answers to text-only user prompts (cascades, LLM judges).

        Arguments
        ---------
        prompts : list of str
            User messages without the speech placeholder.
        max_new_tokens : int
            Maximum number of generated tokens.
        assistant_prefix : str
            Text forced at the start of the answer.
        batch_size : int, optional
            Decode in sub-batches of this size.

        Returns
        -------
        list of str
            The generated answers.
        """
        return self.decode_ids(
            self.generate_ids(
                None,
                None,
                prompts,
                max_new_tokens=max_new_tokens,
                assistant_prefix=assistant_prefix,
                batch_size=batch_size,
            )
        )

    @torch.no_grad()
    def generate_ids(
        self,
        speech,
        speech_lens,
        prompts,
        max_new_tokens=150,
        assistant_prefix="",
        batch_size=None,
        guard=None,
    ):
        """Like :meth:`generate`, but returns the generated token ids (eos excluded).

        Arguments
        ---------
        speech : torch.Tensor or None
            [B, T, D] projector outputs (None: text-only prompts).
        speech_lens : torch.Tensor or None
            [B] relative lengths.
        prompts : list of str or str
            User messages with one placeholder.
        max_new_tokens : int
            Maximum number of generated tokens.
        assistant_prefix : str
            Text forced at the start of the answer.
        batch_size : int, optional
            Decode in sub-batches of this size.
        guard : decoding.RepetitionGuard, optional
            Stops a sequence that ends with a repeated n-gram and trims it to one copy.

        Returns
        -------
        list of list of int
            The generated ids of each utterance, cut before the first eos id.
        """
        from transformers import GenerationConfig, StoppingCriteriaList

        if speech is None:
            prompts = [prompts] if isinstance(prompts, str) else list(prompts)
            batch = len(prompts)
        else:
            batch = speech.shape[0]
            prompts = [prompts] * batch if isinstance(prompts, str) else list(prompts)
            speech_lens = torch.as_tensor(speech_lens)
        if len(prompts) != batch:
            raise ValueError(f"Got {len(prompts)} prompts for a batch of {batch}.")
        step = batch if not batch_size else int(batch_size)
        config = GenerationConfig(
            max_new_tokens=int(max_new_tokens),
            do_sample=False,
            num_beams=1,
            eos_token_id=list(self.eos_ids),
            pad_token_id=self.pad_id,
            bos_token_id=self.tokenizer.bos_token_id,
        )
        kwargs = {"generation_config": config}
        if "use_model_defaults" in inspect.signature(self.model.generate).parameters:
            kwargs["use_model_defaults"] = False
        if guard is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([guard])
        results = []
        for first in range(0, batch, step):
            part = slice(first, first + step)
            inputs = self.build_inputs(
                None if speech is None else speech[part],
                None if speech is None else speech_lens[part],
                prompts[part],
                assistant_prefix=assistant_prefix,
                padding_side="left",
            )
            output = self.model.generate(
                inputs_embeds=inputs["inputs_embeds"],
                attention_mask=inputs["attention_mask"],
                **kwargs,
            )
            for row in output.tolist():
                cut = next((i for i, tok in enumerate(row) if tok in self.eos_ids), len(row))
                row = row[:cut]
                if guard is not None:  # a guarded row was padded after its stop
                    while row and row[-1] == self.pad_id:
                        row.pop()
                    row = guard.trim(row)
                results.append(row)
        return results
