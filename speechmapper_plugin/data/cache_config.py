"""The feature cache a projector was trained on, stored with the projector and checked wherever
the projector meets features again (stage 2, evaluation, inference).

A projector only works on features made the way its training features were: same encoder and
layer, front-end, frame rate and averaging, dtype. The width alone does not tell (a cache of
another frame rate with the same width trains and decodes without error, into nonsense).
So every projector checkpoint holds the description of its feature cache, in the format of the
cache's own ``cache.json`` (``format``, ``version``, ``dtype`` and the extraction ``config``):

- SpeechBrain checkpoints: the recoverable ``feature_config`` (``CKPT+.../feature_config.ckpt``,
  JSON), added by ``track_feature_cache``; resuming a run on another cache is refused;
- a ``projector.ckpt`` written outside a checkpointer (IWSLT25 stage C, a published model):
  ``feature_config.json`` beside it (``write_beside``).

``check_projector_cache`` compares the description stored beside a projector file with a cache;
a mismatch is a ``FeatureConfigMismatch`` listing every differing field. Checkpoints written
before this existed hold no description: they are used with a warning.

Fields compared: every key of the cache config (``kind``, ``source``, ``layer``,
``frame_average``, ``frame_rate``, ``dim`` and whatever the extraction stores, e.g. the
front-end and the encoder dtype) and the cache ``dtype``. A key only one side has is not
compared (caches written by older code lack it). ``source`` is compared by model name (its last
path part), so a local copy of a hub model (``/models/seamless-m4t-v2-large``) matches its hub id
(``facebook/seamless-m4t-v2-large``).

Authors
-------
speechmapper developers, 2026
"""

import json
import logging
import os

from speechmapper_plugin.features.cache import CacheConfigError, _read_cache_meta, cache_config
from speechmapper_plugin.utils.files import write_json

logger = logging.getLogger(__name__)


#: Name of the recoverable (``<name>.ckpt`` in a checkpoint) and of the file beside a projector.
RECOVERABLE = "feature_config"


BESIDE_FILE = f"{RECOVERABLE}.json"


class FeatureConfigMismatch(CacheConfigError):
    """A projector meets features made otherwise than its training features."""


def cache_description(folder):
    """The description of a feature cache: its ``cache.json`` (``format``, ``version``,
    ``dtype``, ``config``).

    Example
    -------
    >>> import tempfile, torch
    >>> from speechmapper_plugin.features.cache import FeatureCacheWriter
    >>> folder = tempfile.mkdtemp()
    >>> FeatureCacheWriter(folder, {"kind": "fbank", "frame_rate": 25.0, "dim": 80}).close()
    >>> cache_description(folder)["config"]["frame_rate"]
    25.0
    """
    folder = os.fspath(folder)
    if not os.path.isfile(os.path.join(folder, "cache.json")):
        raise FileNotFoundError(
            f"{folder!r} is not a feature cache (no cache.json): extract the features first "
            "(extract_features.py) or point --feature_folder to the cache."
        )
    return _read_cache_meta(folder)


def _model_name(source):
    return os.path.basename(source.rstrip("/\\")) if isinstance(source, str) and source else source


def _fields(description):
    """The comparable fields of a cache description: the extraction config's own keys, plus
    what ``features.cache.cache_config`` derives from it (front-end, encoder dtype and the
    encoder's other settings), the storage ``dtype``; model sources by name."""
    config = dict(description.get("config") or {})
    encoder = config.pop("encoder", None)
    fields = dict(config)
    if encoder is not None:
        try:
            flat = cache_config(description.get("config"))
        except ValueError:
            flat = None
        if flat is not None:
            fields["front_end"] = flat["front_end"]
            fields["encoder_dtype"] = flat["dtype"]
            for key, value in flat["encoder"].items():
                if key not in ("kind", "source", "layer"):
                    fields[f"encoder_{key}"] = value
                elif key not in fields:
                    fields[key] = value
    if "dtype" in description:
        fields["dtype"] = description["dtype"]
    if "source" in fields:
        fields["source"] = _model_name(fields["source"])
    return fields


def config_differences(trained, found):
    """``[(field, trained value, found value)]`` of two cache descriptions (fields only one
    side has are not compared).

    Example
    -------
    >>> a = {"dtype": "float16", "config": {"kind": "fbank", "frame_rate": 25.0, "dim": 80}}
    >>> b = {"dtype": "float16", "config": {"kind": "fbank", "frame_rate": 50.0, "dim": 80}}
    >>> config_differences(a, b)
    [('frame_rate', 25.0, 50.0)]
    >>> config_differences({"config": {"source": "org/model-x"}},
    ...                    {"config": {"source": "/models/model-x"}})
    []
    """
    left, right = _fields(trained), _fields(found)
    return [
        (key, left[key], right[key])
        for key in sorted(left.keys() & right.keys())
        if left[key] != right[key]
    ]


def check_same_features(trained, found, trained_name, found_name, fix="", headline=None):
    """Raise ``FeatureConfigMismatch`` listing every differing field of two descriptions
    (``trained``: what a projector was trained on, ``found``: what it meets).

    Example
    -------
    >>> a = {"dtype": "float16", "config": {"frame_average": 4, "frame_rate": 25.0}}
    >>> b = {"dtype": "float16", "config": {"frame_average": 2, "frame_rate": 50.0}}
    >>> check_same_features(a, b, "the projector", "the cache c/")
    Traceback (most recent call last):
    ...
    speechmapper_plugin.data.cache_config.FeatureConfigMismatch: The features of the cache c/ are not those the projector was trained on: frame_average 4 (trained) != 2 (cache c/); frame_rate 25.0 (trained) != 50.0 (cache c/). Use the feature cache of the training run (same encoder, layer, front-end, frame rate, averaging and dtype), or extract one with those settings.
    """
    diff = config_differences(trained, found)
    if not diff:
        return
    left = "trained" if headline is None else trained_name.replace("the ", "", 1)
    right = found_name.replace("the ", "", 1)
    listed = "; ".join(f"{key} {a!r} ({left}) != {b!r} ({right})" for key, a, b in diff)
    headline = (
        headline or f"The features of {found_name} are not those {trained_name} was trained on"
    )
    raise FeatureConfigMismatch(
        f"{headline}: {listed}. "
        + (
            fix
            or "Use the feature cache of the training run (same encoder, layer, front-end, "
            "frame rate, averaging and dtype), or extract one with those settings."
        )
    )


def check_same_caches(folders, keys=None):
    """The description shared by several feature caches (e.g. the speech sources of one
    training run); ``FeatureConfigMismatch`` when two differ. ``keys`` names the folders in
    messages (default: the folders)."""
    folders = [os.fspath(f) for f in folders]
    keys = keys or folders
    first = cache_description(folders[0])
    for folder, key in zip(folders[1:], keys[1:]):
        check_same_features(
            first,
            cache_description(folder),
            f"the cache {keys[0]}",
            f"the cache {key}",
            fix="One projector is trained on all of them: extract every source with the same "
            "SFM settings.",
            headline=f"The caches {keys[0]} and {key} hold features made differently",
        )
    return first


def read_beside(projector_path):
    """The description stored with a projector file (its checkpoint's ``feature_config.ckpt``
    or a ``feature_config.json`` beside it), or None for projectors saved without one."""
    folder = os.path.dirname(os.path.abspath(os.fspath(projector_path)))
    for name in (f"{RECOVERABLE}.ckpt", BESIDE_FILE):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                try:
                    return json.load(f)
                except ValueError as err:
                    raise ValueError(f"{path} is not valid JSON ({err}).") from None
    return None


def write_beside(projector_path, description):
    """Store ``description`` as ``feature_config.json`` beside a projector file."""
    folder = os.path.dirname(os.path.abspath(os.fspath(projector_path)))
    write_json(os.path.join(folder, BESIDE_FILE), description)


def check_projector_cache(projector_path, folder):
    """Check that the feature cache ``folder`` holds features made like the training features
    of the projector file ``projector_path`` (``FeatureConfigMismatch`` listing the differing
    fields; a warning when the projector has no stored description). Returns the cache's
    description."""
    found = cache_description(folder)
    trained = read_beside(projector_path)
    if trained is None:
        logger.warning(
            "%s has no %s (saved before the feature configuration was stored): the features "
            "of %s cannot be checked against its training features.",
            projector_path,
            RECOVERABLE,
            folder,
        )
        return found
    check_same_features(trained, found, f"the projector {projector_path}", f"the cache {folder}")
    return found


class _Record:
    """The recoverable: saves the description, checks it when a checkpoint is recovered."""

    def __init__(self, description, folder):
        self.description, self.folder = description, folder

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.description, f, indent=2, sort_keys=True)

    def load(self, path, end_of_epoch=True):
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        check_same_features(
            stored,
            self.description,
            f"the checkpoint {os.path.dirname(path)}",
            f"the cache {self.folder}",
            fix="A run resumes on the features it started with: point --feature_folder to "
            "that cache, or start a new run (another output_folder).",
        )


def track_feature_cache(checkpointer, folder):
    """Store the description of the feature cache ``folder`` in every checkpoint of
    ``checkpointer`` (recoverable ``feature_config``), and check it when a checkpoint is
    recovered (a run resumed on another cache stops with the differing fields). Checkpoints
    without it (older runs) are recovered without the check. Returns the description.

    Example
    -------
    >>> import tempfile, torch
    >>> from speechbrain.utils.checkpoints import Checkpointer
    >>> from speechmapper_plugin.features.cache import FeatureCacheWriter
    >>> cache, save = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> FeatureCacheWriter(cache, {"kind": "fbank", "frame_rate": 25.0}).close()
    >>> checkpointer = Checkpointer(save, {"projector": torch.nn.Linear(2, 2)})
    >>> _ = track_feature_cache(checkpointer, cache)
    >>> ckpt = checkpointer.save_checkpoint()
    >>> read_beside(ckpt.paramfiles["projector"])["config"]["frame_rate"]
    25.0
    """
    description = cache_description(folder)
    record = _Record(description, os.fspath(folder))
    checkpointer.add_recoverable(
        RECOVERABLE,
        record,
        custom_load_hook=lambda obj, path, end_of_epoch=True: obj.load(path, end_of_epoch),
        custom_save_hook=lambda obj, path: obj.save(path),
        optional_load=True,
    )
    return description
