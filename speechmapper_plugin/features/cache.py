"""The on-disk feature cache: fp16 safetensors shards indexed by utterance id, with the
extraction configuration stored beside them and checked on every use; written atomically and
resumably (``FeatureCacheWriter``), read lazily (``FeatureCache``).

Authors
-------
speechmapper developers, 2026
"""

import json
import logging
import os
import re
from collections.abc import Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file

logger = logging.getLogger(__name__)


CACHE_FORMAT = "speechmapper-feature-cache"


CACHE_VERSION = 1


_CACHE_JSON = "cache.json"


_SHARD_RE = re.compile(r"^shard-(\d{6})\.safetensors$")


_TMP_SUFFIX = ".tmp"


class CacheConfigError(ValueError):
    """A feature cache is reopened with a configuration different from the stored one."""


def _normalize_config(config):
    if not isinstance(config, Mapping):
        raise TypeError(f"Cache config must be a dict, got {type(config).__name__}.")
    try:
        return json.loads(json.dumps(dict(config), sort_keys=True))
    except (TypeError, ValueError) as err:
        raise ValueError(f"Cache config must be JSON-serialisable: {err}") from err


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems / platforms cannot fsync (e.g. directories)
        pass
    finally:
        os.close(fd)


def _atomic_write_json(path, obj):
    tmp = path + _TMP_SUFFIX
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_cache_meta(folder):
    path = os.path.join(folder, _CACHE_JSON)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"Feature cache description {path!r} is not valid JSON: {err}") from err
    if meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"{path!r} is not a {CACHE_FORMAT} description.")
    if meta.get("version") != CACHE_VERSION:
        raise ValueError(
            f"Feature cache {folder!r} has format version {meta.get('version')!r}; this code "
            f"reads version {CACHE_VERSION}. Re-extract the features into a new folder."
        )
    return meta


def _list_shards(folder):
    """Sorted ``(number, filename)`` of the complete shards of a cache folder."""
    shards = []
    for name in os.listdir(folder):
        match = _SHARD_RE.match(name)
        if match:
            shards.append((int(match.group(1)), name))
    return sorted(shards)


def _scan_shards(folder):
    """Reads the shard headers: ``{utt_id: (shard_filename, n_frames)}``."""
    where = {}
    for _, name in _list_shards(folder):
        with safe_open(os.path.join(folder, name), framework="pt") as f:
            for key in f.keys():
                if key in where:
                    raise RuntimeError(
                        f"Corrupt feature cache {folder!r}: utterance {key!r} is stored in both "
                        f"{where[key][0]} and {name}."
                    )
                where[key] = (name, int(f.get_slice(key).get_shape()[0]))
    return where


def _config_diff(stored, requested):
    keys = sorted(set(stored) | set(requested))
    lines = []
    for key in keys:
        if stored.get(key, "<absent>") != requested.get(key, "<absent>"):
            lines.append(
                f"  {key}: cache has {stored.get(key, '<absent>')!r}, "
                f"requested {requested.get(key, '<absent>')!r}"
            )
    return "\n".join(lines)


class FeatureCacheWriter:
    """Writes features into a sharded, resumable fp16 cache folder.

    Features are buffered and written as safetensors shards ``shard-NNNNNN.safetensors`` (one
    fp16 tensor ``[T, D]`` per utterance, key = utterance id). A shard is written under a
    ``.tmp`` name, fsynced and renamed only when complete, so an interruption never leaves a
    corrupt shard; leftover ``.tmp`` files are removed when the folder is reopened. ``config``
    is stored in ``cache.json``; reopening with a different config raises ``CacheConfigError``.
    Used as a context manager, the buffered utterances are written on exit (also when an
    exception interrupts the caller: they are complete, so resuming does not redo them).

    Arguments
    ---------
    folder : str
        Cache folder (created if needed).
    config : dict
        JSON-serialisable description of how the features were made (encoder, layer,
        averaging, dim...). If it has a ``"dim"`` key, every added tensor must have that dim.
    shard_size : int
        Utterances per shard.
    max_shard_bytes : int
        A shard is also written once its buffered tensors reach this size.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with FeatureCacheWriter(tmp.name, {"dim": 4}) as writer:
    ...     writer.add("utt1", torch.ones(3, 4))
    ...     sorted(writer.done_ids())
    ['utt1']
    >>> FeatureCache(tmp.name)["utt1"].shape
    torch.Size([3, 4])
    >>> tmp.cleanup()
    """

    def __init__(self, folder, config, shard_size=1000, max_shard_bytes=512 * 2**20):
        if int(shard_size) < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size!r}.")
        self.folder = os.fspath(folder)
        self.config = _normalize_config(config)
        self.shard_size = int(shard_size)
        self.max_shard_bytes = int(max_shard_bytes)
        os.makedirs(self.folder, exist_ok=True)
        for name in os.listdir(self.folder):
            if name.endswith(_TMP_SUFFIX):
                os.remove(os.path.join(self.folder, name))
                logger.warning(
                    "Removed incomplete file %s left by an interrupted write in %s",
                    name,
                    self.folder,
                )
        meta_path = os.path.join(self.folder, _CACHE_JSON)
        if os.path.exists(meta_path):
            stored = _read_cache_meta(self.folder)["config"]
            if stored != self.config:
                raise CacheConfigError(
                    f"Feature cache {self.folder!r} was made with a different configuration:\n"
                    f"{_config_diff(stored, self.config)}\n"
                    "Features of different models/layers/settings must not be mixed: use another "
                    "cache folder (or delete this one to re-extract)."
                )
        else:
            if _list_shards(self.folder):
                raise ValueError(
                    f"Folder {self.folder!r} holds feature shards but no {_CACHE_JSON}: it is "
                    "not a usable feature cache. Use an empty folder."
                )
            meta = {
                "format": CACHE_FORMAT,
                "version": CACHE_VERSION,
                "dtype": "float16",
                "config": self.config,
            }
            _atomic_write_json(meta_path, meta)
        self._stored = {k: v[0] for k, v in _scan_shards(self.folder).items()}
        shards = _list_shards(self.folder)
        self._next_shard = shards[-1][0] + 1 if shards else 0
        self._pending = {}
        self._pending_bytes = 0
        self._closed = False
        if self._stored:
            logger.info(
                "Resuming feature cache %s: %d utterances already stored",
                self.folder,
                len(self._stored),
            )

    def done_ids(self):
        """Returns the set of utterance ids already stored or buffered.

        Example
        -------
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> FeatureCacheWriter(tmp.name, {}).done_ids()
        set()
        >>> tmp.cleanup()
        """
        return set(self._stored) | set(self._pending)

    def add(self, utt_id, feats):
        """Adds the features of one utterance (converted to fp16).

        Arguments
        ---------
        utt_id : str
            Unique utterance id.
        feats : torch.Tensor
            Features ``[T, D]`` with ``T >= 1``.
        """
        if self._closed:
            raise RuntimeError(f"FeatureCacheWriter for {self.folder!r} is closed.")
        if not isinstance(utt_id, str) or not utt_id:
            raise ValueError(f"Utterance ids must be non-empty strings, got {utt_id!r}.")
        if utt_id in self._stored or utt_id in self._pending:
            raise ValueError(
                f"Duplicate utterance id {utt_id!r}: it is already in the feature cache "
                f"{self.folder!r}. Utterance ids must be unique across the corpus."
            )
        if not isinstance(feats, torch.Tensor) or feats.dim() != 2 or feats.shape[0] == 0:
            shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats)
            raise ValueError(f"Features of {utt_id!r} must be a [T>=1, D] tensor, got {shape}.")
        dim = self.config.get("dim")
        if dim is not None and feats.shape[1] != dim:
            raise ValueError(
                f"Features of {utt_id!r} have dim {feats.shape[1]}, the cache config says {dim}."
            )
        half = feats.detach().to(device="cpu", dtype=torch.float16, copy=True).contiguous()
        if not torch.isfinite(half).all():
            raise ValueError(
                f"Features of {utt_id!r} contain NaN/inf (in fp16, |values| must stay below "
                "65504): check the encoder output for this utterance."
            )
        self._pending[utt_id] = half
        self._pending_bytes += half.numel() * 2
        if len(self._pending) >= self.shard_size or self._pending_bytes >= self.max_shard_bytes:
            self.flush()

    def flush(self):
        """Writes the buffered utterances as one complete shard (atomic)."""
        if not self._pending:
            return
        name = f"shard-{self._next_shard:06d}.safetensors"
        final = os.path.join(self.folder, name)
        tmp = final + _TMP_SUFFIX
        save_file(self._pending, tmp, metadata={"format": "pt"})
        _fsync_path(tmp)
        os.replace(tmp, final)
        _fsync_path(self.folder)
        for key in self._pending:
            self._stored[key] = name
        logger.debug("Wrote %s (%d utterances)", final, len(self._pending))
        self._next_shard += 1
        self._pending = {}
        self._pending_bytes = 0

    def close(self):
        """Writes the buffered utterances; the writer cannot be used afterwards."""
        if not self._closed:
            self.flush()
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception:  # keep the original exception; the shard was not renamed
            logger.exception("Could not write buffered features to %s", self.folder)


class FeatureCache:
    """Read-only access to a feature cache made by ``FeatureCacheWriter``.

    Only the shard headers are read at construction; tensors are memory-mapped on access.
    Shard handles are opened lazily and per process, so the object can be handed to
    DataLoader workers (fork or spawn).

    Arguments
    ---------
    folder : str
        Cache folder.

    Example
    -------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with FeatureCacheWriter(tmp.name, {"dim": 2}) as writer:
    ...     writer.add("a", torch.zeros(5, 2))
    >>> cache = FeatureCache(tmp.name)
    >>> len(cache), "a" in cache, cache.length("a"), cache.dim, cache["a"].dtype
    (1, True, 5, 2, torch.float32)
    >>> tmp.cleanup()
    """

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        if not os.path.isdir(self.folder):
            raise FileNotFoundError(f"Feature cache folder {self.folder!r} does not exist.")
        if not os.path.exists(os.path.join(self.folder, _CACHE_JSON)):
            raise FileNotFoundError(
                f"{self.folder!r} is not a feature cache (no {_CACHE_JSON}); extract the "
                "features first (extract_to_cache)."
            )
        meta = _read_cache_meta(self.folder)
        self.config = meta["config"]
        index = _scan_shards(self.folder)
        self._shard = {k: v[0] for k, v in index.items()}
        self._lengths = {k: v[1] for k, v in index.items()}
        self._handles = {}
        self._pid = os.getpid()
        dim = self.config.get("dim")
        if dim is None and index:
            first = next(iter(index))
            dim = self[first].shape[1]
        self.dim = dim

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def _handle(self, shard):
        if self._pid != os.getpid():  # forked worker: never share file handles with the parent
            self._handles = {}
            self._pid = os.getpid()
        handle = self._handles.get(shard)
        if handle is None:
            handle = safe_open(os.path.join(self.folder, shard), framework="pt")
            self._handles[shard] = handle
        return handle

    def _missing(self, utt_id):
        return KeyError(
            f"Utterance {utt_id!r} is not in the feature cache {self.folder!r} "
            f"({len(self)} utterances): it was skipped during extraction (see the extraction "
            "log) or the cache was built for another data set."
        )

    def __getitem__(self, utt_id):
        shard = self._shard.get(utt_id)
        if shard is None:
            raise self._missing(utt_id)
        return self._handle(shard).get_tensor(utt_id).float()

    def __contains__(self, utt_id):
        return utt_id in self._shard

    def __len__(self):
        return len(self._shard)

    def ids(self):
        """Returns the stored utterance ids (shard order).

        Example
        -------
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> FeatureCacheWriter(tmp.name, {}).close()
        >>> FeatureCache(tmp.name).ids()
        []
        >>> tmp.cleanup()
        """
        return list(self._shard)

    def length(self, utt_id):
        """Returns the number of frames of ``utt_id`` without reading its data.

        Example
        -------
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> with FeatureCacheWriter(tmp.name, {}) as writer:
        ...     writer.add("a", torch.zeros(7, 3))
        >>> FeatureCache(tmp.name).length("a")
        7
        >>> tmp.cleanup()
        """
        if utt_id not in self._lengths:
            raise self._missing(utt_id)
        return self._lengths[utt_id]
