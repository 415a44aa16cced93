"""The frozen LLM's input-embedding table without the LLM: reading only that tensor from the
checkpoint (``load_input_embeddings``), stage-1 targets (transcript token embeddings followed
by the pad embedding, paper eq. 1-2) and the nearest-embedding read-out (``EmbeddingTable``).

Authors
-------
speechmapper developers, 2026
"""

import json
import logging
import math

import torch
from safetensors import safe_open

from speechmapper_plugin.models.hub import (
    EMBEDDING_FILE_PATTERNS,
    SAFETENSORS_INDEX,
    SAFETENSORS_SINGLE,
    _download_file,
    _local_folder,
    _read_config,
    resolve_source,
)
from speechmapper_plugin.models.tokens import load_tokenizer, select_pad_token

logger = logging.getLogger(__name__)


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
    >>> from speechmapper_plugin.tiny.llm import build_tiny_llm
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
        >>> from speechmapper_plugin.tiny.llm import build_tiny_llm
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
        ids, kept = self.target_ids(token_ids, length, num_tokens, utt_ids, return_lengths=True)
        out = self(ids)
        if return_lengths:
            return out, kept.to(out.device)
        return out

    def target_ids(self, token_ids, length, num_tokens=None, utt_ids=None, return_lengths=False):
        """The ids that :meth:`targets` gathers: the tokens, then the pad id up to ``length``.

        Built on the host (CPU tensors in, CPU tensors out), so that a training step can build
        them from the loader's CPU batch, copy them to the device with the features and gather
        the rows there, without waiting for the device. Same arguments as :meth:`targets`
        (truncations are counted and logged here).

        Returns
        -------
        torch.Tensor
            [B, T] long tensor on the CPU (and the [B] numbers of tokens kept).

        Example
        -------
        >>> table = EmbeddingTable(torch.eye(4), pad_id=3)
        >>> table.target_ids([[0, 1], [2]], 3).tolist()
        [[0, 1, 3], [2, 3, 3]]
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
        return (ids, kept) if return_lengths else ids

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
        >>> from speechmapper_plugin.tiny.llm import train_tokenizer
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
