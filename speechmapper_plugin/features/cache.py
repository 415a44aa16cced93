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
import time
from collections.abc import Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from speechmapper_plugin.utils.locks import FolderLock

logger = logging.getLogger(__name__)


CACHE_FORMAT = "speechmapper-feature-cache"


CACHE_VERSION = 1


_CACHE_JSON = "cache.json"


_SHARD_RE = re.compile(r"^shard-(\d{6})\.safetensors$")


_TMP_SUFFIX = ".tmp"


_DAMAGED_SUFFIX = ".damaged"


LOCK_PURPOSE = "feature extraction"


class CacheConfigError(ValueError):
    """Features are used (or added) with a configuration different from the one that made them."""


class CacheShardError(RuntimeError):
    """A shard of a feature cache is damaged (truncated or unreadable); the message names it.

    Attributes
    ----------
    path : str
        The shard.
    reason : str
        What is wrong with it.
    keys : list of str or None
        The utterances its header lists, when the header is readable.
    set_aside_as : str or None
        Where ``FeatureCacheWriter`` moved it (``<shard>.damaged``).
    """

    def __init__(self, path, reason, keys=None):
        self.path, self.reason, self.keys = path, reason, keys
        self.set_aside_as = None  # where FeatureCacheWriter moved it
        super().__init__(
            f"Feature cache shard {path} is damaged ({reason}). Run the feature extraction "
            f"again on {os.path.dirname(path)}: it sets damaged shards aside (renamed "
            f"*{_DAMAGED_SUFFIX}, not deleted) and re-extracts their utterances."
        )


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


def _shard_header(path):
    """``{utt_id: n_frames}`` from a shard's safetensors header, after checking that the file
    holds every byte the header describes; ``CacheShardError`` otherwise."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CacheShardError(path, f"{size} bytes, not even a header")
        header_size = int.from_bytes(head, "little")
        if header_size > size - 8:
            raise CacheShardError(path, f"truncated inside its header: {size} bytes")
        try:
            header = json.loads(f.read(header_size))
        except ValueError as err:
            raise CacheShardError(path, f"unreadable header: {err}") from None
    try:
        frames = {k: int(v["shape"][0]) for k, v in header.items() if k != "__metadata__"}
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
                  default=0)  # fmt: skip
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        raise CacheShardError(path, "malformed header") from None
    expected = 8 + header_size + end
    if size < expected:
        raise CacheShardError(
            path, f"truncated: {size} bytes of the {expected} its header describes", list(frames)
        )
    if size > expected:
        raise CacheShardError(path, f"{size - expected} bytes past its data", list(frames))
    return frames


def _scan_shards(folder, damaged=None):
    """Reads the shard headers: ``{utt_id: (shard_filename, n_frames)}``. A damaged shard
    raises ``CacheShardError``, or is appended to ``damaged`` (and left out) if given."""
    where = {}
    for _, name in _list_shards(folder):
        try:
            frames = _shard_header(os.path.join(folder, name))
        except CacheShardError as err:
            if damaged is None:
                raise
            damaged.append(err)
            continue
        for key, n_frames in frames.items():
            if key in where:
                raise RuntimeError(
                    f"Corrupt feature cache {folder!r}: utterance {key!r} is stored in both "
                    f"{where[key][0]} and {name}."
                )
            where[key] = (name, n_frames)
    return where


def _config_diff(stored, requested, stored_name="cache has", requested_name="requested"):
    keys = sorted(set(stored) | set(requested))
    lines = []
    for key in keys:
        if stored.get(key, "<absent>") != requested.get(key, "<absent>"):
            lines.append(
                f"  {key}: {stored_name} {stored.get(key, '<absent>')!r}, "
                f"{requested_name} {requested.get(key, '<absent>')!r}"
            )
    return "\n".join(lines)


def _take_lock(folder, lock):
    """The cache folder's lock: ``lock`` if the caller holds it already, else a new one."""
    if lock is None:
        return FolderLock(folder, LOCK_PURPOSE).acquire(), True
    if not lock.held or os.path.realpath(lock.folder) != os.path.realpath(folder):
        raise ValueError(
            f"lock must be a held FolderLock of the cache folder {folder!r}, got one of "
            f"{lock.folder!r} (held: {lock.held})."
        )
    return lock, False


class FeatureCacheWriter:
    """Writes features into a sharded, resumable fp16 cache folder, as its only writer.

    Features are buffered and written as safetensors shards ``shard-NNNNNN.safetensors`` (one
    fp16 tensor ``[T, D]`` per utterance, key = utterance id). A shard is written under a
    ``.tmp`` name, fsynced and published under a shard number no other file has (never
    replacing a shard), so an interruption never leaves a corrupt shard and writing new
    utterances never removes stored ones.

    The writer holds the folder's lock (:class:`~speechmapper_plugin.utils.locks.FolderLock`)
    from its creation to :meth:`close`: a second writer on the same folder, in this or another
    process, stops at once with an error naming the folder and the holder (host, process id,
    command, start time); a holder that died leaves no lock behind. With the lock held,
    leftover ``.tmp`` files are removed, and damaged shards (truncated, e.g. by a full disk
    or a copy cut short) are renamed ``*.damaged`` (set aside, not deleted) and logged with
    their utterances, which are then no longer stored and get re-extracted.

    ``config`` is stored in ``cache.json``; reopening with a different config raises
    ``CacheConfigError``. The buffered utterances are written as one shard once there are
    ``shard_size`` of them, once they reach ``max_shard_bytes``, or once the oldest has waited
    ``flush_seconds``; these conditions are checked after each :meth:`add_batch`, so a shard
    holds whole batches. Used as a context manager, the buffered utterances are written on
    exit (also when an exception interrupts the caller: they are complete, so resuming does
    not redo them).

    Arguments
    ---------
    folder : str
        Cache folder (created if needed).
    config : dict
        JSON-serialisable description of how the features were made (encoder, layer,
        averaging, dim...). If it has a ``"dim"`` key, every added tensor must have that dim.
    shard_size : int
        Utterances per shard (at most, give or take one batch).
    max_shard_bytes : int
        A shard is also written once its buffered tensors reach this size.
    flush_seconds : float, optional
        A shard is also written once its oldest utterance was buffered this long ago, so an
        interruption loses at most about this much work (None: no time limit).
    lock : speechmapper_plugin.utils.locks.FolderLock, optional
        The folder's lock, if the caller holds it already (it then stays held on close).

    Attributes
    ----------
    damaged : list of CacheShardError
        The damaged shards set aside when the writer opened the folder.

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

    def __init__(
        self,
        folder,
        config,
        shard_size=1000,
        max_shard_bytes=512 * 2**20,
        flush_seconds=None,
        lock=None,
    ):
        if int(shard_size) < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size!r}.")
        if flush_seconds is not None and not float(flush_seconds) >= 0:
            raise ValueError(f"flush_seconds must be >= 0 or None, got {flush_seconds!r}.")
        self.folder = os.fspath(folder)
        self.config = _normalize_config(config)
        self.shard_size = int(shard_size)
        self.max_shard_bytes = int(max_shard_bytes)
        self.flush_seconds = None if flush_seconds is None else float(flush_seconds)
        self._closed = True  # until the folder is open (__del__ before that does nothing)
        self._owns_lock = False
        os.makedirs(self.folder, exist_ok=True)
        self._lock, self._owns_lock = _take_lock(self.folder, lock)
        try:
            self._open()
        except BaseException:
            self._release_lock()
            raise
        self._closed = False

    def _open(self):
        for name in os.listdir(self.folder):
            if name.endswith(_TMP_SUFFIX):  # the lock is ours: no live writer owns it
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
        self.damaged = []
        self._stored = {k: v[0] for k, v in _scan_shards(self.folder, self.damaged).items()}
        for err in self.damaged:
            self._set_aside(err)
        numbers = [
            int(name[6:12])
            for name in os.listdir(self.folder)
            if name.startswith("shard-") and name[6:12].isdigit()
        ]
        self._next_shard = max(numbers) + 1 if numbers else 0
        self._pending = {}
        self._pending_bytes = 0
        self._pending_since = None
        if self._stored:
            logger.info(
                "Resuming feature cache %s: %d utterances already stored",
                self.folder,
                len(self._stored),
            )

    def _set_aside(self, err):
        target = err.path + _DAMAGED_SUFFIX
        count = 1
        while os.path.exists(target):
            count += 1
            target = f"{err.path}{_DAMAGED_SUFFIX}-{count}"
        os.rename(err.path, target)
        err.set_aside_as = target
        logger.warning(
            "Feature cache shard %s is damaged (%s): set aside as %s; its utterances%s are "
            "not stored and will be extracted again.",
            err.path,
            err.reason,
            os.path.basename(target),
            f" ({len(err.keys)}: {', '.join(err.keys[:5])}{'...' if len(err.keys) > 5 else ''})"
            if err.keys
            else "",
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
        """Adds the features of one utterance (converted to fp16): ``add_batch([(utt_id, feats)])``.

        Arguments
        ---------
        utt_id : str
            Unique utterance id.
        feats : torch.Tensor
            Features ``[T, D]`` with ``T >= 1``.
        """
        self.add_batch([(utt_id, feats)])

    def add_batch(self, batch):
        """Adds the features of several utterances (all or none), then writes a shard if one
        is due (``shard_size``, ``max_shard_bytes``, ``flush_seconds``).

        Arguments
        ---------
        batch : list of tuple
            ``(utt_id, feats [T >= 1, D])`` pairs.

        Example
        -------
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> with FeatureCacheWriter(tmp.name, {}, flush_seconds=0) as writer:
        ...     writer.add_batch([("a", torch.ones(2, 3)), ("b", torch.ones(4, 3))])
        >>> sorted(os.listdir(tmp.name))[-1], len(FeatureCache(tmp.name))
        ('shard-000000.safetensors', 2)
        >>> tmp.cleanup()
        """
        if self._closed:
            raise RuntimeError(f"FeatureCacheWriter for {self.folder!r} is closed.")
        converted = {}
        for utt_id, feats in batch:
            converted[utt_id] = self._check(utt_id, feats, converted)
        if not converted:
            return
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        self._pending.update(converted)
        self._pending_bytes += sum(t.numel() * 2 for t in converted.values())
        due = len(self._pending) >= self.shard_size or self._pending_bytes >= self.max_shard_bytes
        if self.flush_seconds is not None:
            due = due or time.monotonic() - self._pending_since >= self.flush_seconds
        if due:
            self.flush()

    def _check(self, utt_id, feats, batch):
        if not isinstance(utt_id, str) or not utt_id:
            raise ValueError(f"Utterance ids must be non-empty strings, got {utt_id!r}.")
        if utt_id in self._stored or utt_id in self._pending or utt_id in batch:
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
        return half

    def flush(self):
        """Writes the buffered utterances as one complete shard (atomic, never replacing one)."""
        if not self._pending:
            return
        tmp = os.path.join(self.folder, f"shard-{self._next_shard:06d}.safetensors{_TMP_SUFFIX}")
        save_file(self._pending, tmp, metadata={"format": "pt"})
        _fsync_path(tmp)
        name = self._publish(tmp)
        _fsync_path(self.folder)
        for key in self._pending:
            self._stored[key] = name
        logger.debug("Wrote %s (%d utterances)", name, len(self._pending))
        self._pending = {}
        self._pending_bytes = 0
        self._pending_since = None

    def _publish(self, tmp):
        """Gives the written ``tmp`` file the next free shard name (a hard link fails rather
        than replace a file, should another process ignore the lock)."""
        while True:
            name = f"shard-{self._next_shard:06d}.safetensors"
            final = os.path.join(self.folder, name)
            self._next_shard += 1
            try:
                os.link(tmp, final)
            except FileExistsError:
                continue
            except OSError:  # no hard links on this file system
                if os.path.exists(final):
                    continue
                os.replace(tmp, final)
                return name
            os.remove(tmp)
            return name

    def close(self):
        """Writes the buffered utterances and releases the folder; the writer cannot be used
        afterwards."""
        if not self._closed:
            try:
                self.flush()
            finally:
                self._closed = True
                self._release_lock()

    def _release_lock(self):
        if self._owns_lock:
            self._lock.release()
            self._owns_lock = False

    def __del__(self):  # dropped without close(): like a killed process, release the folder
        try:
            self._release_lock()
        except Exception:  # interpreter shutdown
            pass

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


#: The fields of :func:`cache_config`: what makes two caches' features interchangeable.
CACHE_CONFIG_FIELDS = ("encoder", "layer", "front_end", "frame_rate", "average", "dim", "dtype")


def cache_config(source):
    """The settings that determine the features of a cache, as a flat JSON-serialisable dict
    (``data.cache_config`` stores it with every projector and compares it where the projector
    meets features again).

    Arguments
    ---------
    source : str, os.PathLike, FeatureCache or dict
        A cache folder, its ``cache.json``, an open ``FeatureCache``, the ``cache.json``
        content or its ``config`` dict, or an earlier result of this function.

    Returns
    -------
    dict
        ``encoder`` (the encoder's identity: ``kind``, ``source``, ``revision``..., without
        the fields below), ``layer`` (None for the weight-free fbank), ``front_end``
        (``"hf"``, ``"torchaudio"`` or ``"fbank"``), ``frame_rate`` (vectors per second,
        after averaging), ``average`` (frames averaged), ``dim`` and ``dtype`` (the encoder's
        compute dtype, e.g. ``"bfloat16"``; ``"<dtype>, bfloat16 autocast"`` under autocast).

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.features.front_ends import FbankFrontend
    >>> from speechmapper_plugin.features.extraction import extract_to_cache
    >>> tmp = tempfile.mkdtemp()
    >>> _ = extract_to_cache(FbankFrontend(), [], tmp, {}, average=4, progress=False)
    >>> config = cache_config(tmp)
    >>> config["encoder"], config["frame_rate"], config["average"], config["front_end"]
    ({'kind': 'fbank', 'n_mels': 80, 'sample_rate': 16000}, 25.0, 4, 'fbank')
    """
    where = "the feature config"
    if isinstance(source, FeatureCache):
        where, stored = source.folder, source.config
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            where, stored = path, _read_cache_meta(path)["config"]
        elif os.path.basename(path) == _CACHE_JSON and os.path.isfile(path):
            where, stored = path, _read_cache_meta(os.path.dirname(path) or ".")["config"]
        else:
            raise FileNotFoundError(
                f"{path} is neither a feature cache folder nor its {_CACHE_JSON}."
            )
    elif isinstance(source, Mapping):
        stored = source.get("config") if isinstance(source.get("config"), Mapping) else source
    else:
        raise TypeError(
            "cache_config takes a cache folder, a cache.json path, a FeatureCache or a dict; "
            f"got {type(source).__name__}."
        )
    if set(CACHE_CONFIG_FIELDS) <= set(stored) and "kind" not in stored:
        return {field: stored[field] for field in CACHE_CONFIG_FIELDS}  # already flat
    encoder = dict(stored.get("encoder") or {})
    kind = encoder.get("kind", stored.get("kind"))
    average = stored.get("average", stored.get("frame_average"))
    if kind is None or average is None or stored.get("frame_rate") is None:
        raise ValueError(
            f"{where} does not say how its features were made (encoder kind, averaging and "
            f"frame rate are needed; it has {sorted(stored)}): it was not written by "
            "extract_to_cache (recipes/<Dataset>/extract_features.py)."
        )
    encoder.setdefault("kind", kind)
    if "source" not in encoder and stored.get("source") is not None:
        encoder["source"] = stored["source"]
    layer = encoder.pop("layer", stored.get("layer"))
    dtype = encoder.pop("dtype", None) or "float32"
    front_end = encoder.pop("front_end", None) or ("fbank" if kind == "fbank" else "hf")
    if stored.get("autocast"):
        dtype = f"{dtype}, {stored['autocast']} autocast"
    return {
        "encoder": encoder,
        "layer": layer,
        "front_end": front_end,
        "frame_rate": float(stored["frame_rate"]),
        "average": int(average),
        "dim": stored.get("dim"),
        "dtype": dtype,
    }
