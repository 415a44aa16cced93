"""Reading training and published folders: which kind a folder is (``folder_kind``), its best
checkpoint (``find_best_checkpoint``) and the feature configuration of its cache
(``read_feature_config``).

Authors
-------
speechmapper developers, 2026
"""

import json
import logging
import os
import re

from speechmapper_plugin.utils.checkpoints import complete_checkpoints

logger = logging.getLogger(__name__)


HPARAMS_FILE = "hyperparams.yaml"


#: The projector weights of a published model (safetensors).
WEIGHTS_FILE = "projector.safetensors"


#: The projector file of a training checkpoint, and of models published before safetensors.
PROJECTOR_FILE = "projector.ckpt"


#: The sub-folder of a published model holding its peft LoRA adapter (IWSLT 2025 system).
ADAPTER_FOLDER = "adapter"


#: The model card of a published model.
MODEL_CARD = "README.md"


EXPORT_INFO = "export.json"


#: The inference template, shipped inside the package (no repository checkout needed).
DEFAULT_TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inference.yaml")


class _Raw(str):
    """A YAML value written verbatim (e.g. a ``!name:`` tag copied from a training YAML)."""


def _read_yaml(path):
    """Parses a (Hyper)YAML file without building anything; tags are kept as ruamel nodes."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        with open(path, encoding="utf-8") as f:
            tree = YAML().load(f)
    except YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err
    if not hasattr(tree, "keys"):
        raise ValueError(f"{path} does not hold a mapping of hyper-parameters.")
    return tree


def _plain(value, where):
    """Turns a ruamel value into plain Python (str, int, float, bool, None, list)."""
    tag = getattr(getattr(value, "tag", None), "value", None)
    if tag is not None and str(tag).startswith("!"):
        raise ValueError(
            f"{where} is {tag} {value!r}, an unresolved HyperPyYAML expression; the "
            "training folder's hyperparams.yaml should hold plain values."
        )
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item, where) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item, f"{where}.{key}") for key, item in value.items()}
    raise ValueError(f"{where} has an unsupported value {value!r} (expected a plain value).")


def _has_top_level_key(path, key):
    with open(path, encoding="utf-8") as f:
        return re.search(rf"^{re.escape(key)}\s*:", f.read(), flags=re.M) is not None


# A Hugging Face hub-cache snapshot folder: <cache>/models--<org>--<name>/snapshots/<rev>.
_HUB_CACHE_FOLDER = re.compile(r"models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\][^/\\]+[/\\]?$")


def hub_id_of(source):
    """The hub id of a model given as a hub id or as its hub-cache snapshot folder.

    Arguments
    ---------
    source : str or None
        A hub id, a local folder or None.

    Returns
    -------
    str or None
        The hub id (``org/name``) when ``source`` is one or is a hub-cache snapshot folder,
        else ``source`` unchanged (a local folder stays a path).

    Example
    -------
    >>> hub_id_of("/hf/hub/models--meta-llama--Llama-3.1-8B-Instruct/snapshots/0e9e39f")
    'meta-llama/Llama-3.1-8B-Instruct'
    >>> hub_id_of("meta-llama/Llama-3.1-8B-Instruct")
    'meta-llama/Llama-3.1-8B-Instruct'
    """
    if source is None:
        return None
    match = _HUB_CACHE_FOLDER.search(str(source))
    if match:
        return f"{match.group(1)}/{match.group(2)}"
    return source


def is_local_path(value):
    """Whether a model reference is a local path (absolute, relative or existing)."""
    text = str(value)
    return (
        os.path.isabs(text)
        or text.startswith((".", "~"))
        or os.path.exists(os.path.expanduser(text))
    )


def folder_kind(folder):
    """Tells a published model folder from a training output folder.

    Arguments
    ---------
    folder : str
        A local folder.

    Returns
    -------
    str or None
        ``"published"`` (its ``hyperparams.yaml`` has a ``pretrainer``), ``"training"`` (a
        ``hyperparams.yaml`` without ``pretrainer``, or a ``save`` folder), else None.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> folder_kind(folder) is None
    True
    >>> _ = open(os.path.join(folder, "hyperparams.yaml"), "w").write("lr: 0.1\\n")
    >>> folder_kind(folder)
    'training'
    """
    hparams = os.path.join(folder, HPARAMS_FILE)
    if os.path.isfile(hparams):
        return "published" if _has_top_level_key(hparams, "pretrainer") else "training"
    if os.path.isdir(os.path.join(folder, "save")):
        return "training"
    return None


def find_best_checkpoint(save_folder, min_key):
    """The projector file of the best checkpoint of a SpeechBrain ``save`` folder.

    Arguments
    ---------
    save_folder : str
        A ``save`` folder with ``CKPT+...`` sub-folders.
    min_key : str
        The meta key to minimize (``"WER"`` for stage 1, ``"loss"`` for stage 2).
        When no checkpoint has it (only intra-epoch checkpoints), the latest one is used
        and a warning says so.

    Returns
    -------
    dict
        ``path`` (the projector file), ``checkpoint`` (the CKPT folder), ``meta`` and
        ``selected_by`` (``"min <key>"`` or ``"latest"``). Torn checkpoints (a job killed
        during a save) are skipped with a warning naming them.

    Example
    -------
    >>> import tempfile, torch
    >>> from speechbrain.utils.checkpoints import Checkpointer
    >>> save = tempfile.mkdtemp()
    >>> layer = torch.nn.Linear(2, 2)
    >>> ckpt = Checkpointer(save, {"projector": layer})
    >>> _ = ckpt.save_checkpoint(meta={"WER": 50.0}, name="a")
    >>> _ = ckpt.save_checkpoint(meta={"WER": 70.0}, name="b")
    >>> best = find_best_checkpoint(save, "WER")
    >>> os.path.basename(best["checkpoint"]), best["meta"]["WER"], best["selected_by"]
    ('CKPT+a', 50.0, 'min WER')
    """
    if not os.path.isdir(save_folder):
        raise FileNotFoundError(
            f"Checkpoint folder {save_folder} does not exist: the training run saved no "
            "checkpoint (or was run with --debug, which saves to a temporary folder)."
        )
    # Only complete checkpoints: a torn one (a job killed during a save) is skipped with a
    # warning naming it (utils.checkpoints).
    checkpoints = complete_checkpoints(save_folder)
    scored = [c for c in checkpoints if isinstance(c.meta.get(min_key), (int, float))]
    selected_by = f"min {min_key}"
    ckpt = min(scored, key=lambda c: (c.meta[min_key], -c.meta.get("unixtime", 0)), default=None)
    if ckpt is None:
        ckpt = max(checkpoints, key=lambda c: c.meta.get("unixtime", 0), default=None)
        selected_by = "latest"
        if ckpt is not None:
            logger.warning(
                "No checkpoint of %s has the key %r: using the latest one, %s.",
                save_folder,
                min_key,
                ckpt.path,
            )
    if ckpt is None:
        raise FileNotFoundError(f"No complete CKPT+... checkpoint in {save_folder}.")
    if "projector" not in ckpt.paramfiles:
        raise FileNotFoundError(
            f"Checkpoint {ckpt.path} has no projector.ckpt (files: "
            f"{sorted(ckpt.paramfiles)}): is this a SpeechMapper training folder?"
        )
    return {
        "path": str(ckpt.paramfiles["projector"]),
        "checkpoint": str(ckpt.path),
        "meta": dict(ckpt.meta),
        "selected_by": selected_by,
    }


def read_feature_config(feature_config):
    """Encoder settings of a feature cache, as keys of the inference template.

    Arguments
    ---------
    feature_config : str or dict
        A feature cache folder, its ``cache.json``, or the ``config`` dict stored in it
        (``kind``, ``source``, ``layer``, ``frame_average``, ``dim``, ``encoder``...).

    Returns
    -------
    dict
        ``sfm_kind``, ``sfm_source``, ``sfm_layer``, ``sfm_dtype``, ``sfm_front_end``,
        ``frame_average`` and ``feature_dim``.

    Example
    -------
    >>> read_feature_config({"kind": "fbank", "source": None, "layer": None,
    ...                      "frame_average": 4, "dim": 80})["frame_average"]
    4
    """
    where = "the feature config"
    if isinstance(feature_config, (str, os.PathLike)):
        path = os.fspath(feature_config)
        if os.path.isdir(path):
            path = os.path.join(path, "cache.json")
        where = path
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Feature cache description {path} not found: give the feature cache folder "
                "of the training run (the one holding cache.json) or its cache.json."
            )
        try:
            with open(path, encoding="utf-8") as f:
                config = json.load(f)
        except ValueError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        config = config.get("config", config)
    elif isinstance(feature_config, dict):
        config = feature_config.get("config", feature_config)
    else:
        raise TypeError(
            f"feature_config must be a folder, a cache.json path or a dict, got "
            f"{type(feature_config).__name__}."
        )
    encoder = config.get("encoder") or {}
    kind = config.get("kind", encoder.get("kind"))
    average = config.get("frame_average", config.get("average"))
    if kind is None or average is None:
        raise ValueError(
            f"{where} does not say which encoder made the features (keys 'kind' and "
            f"'frame_average' are needed, got {sorted(config)}); it was not written by "
            "recipes/LibriSpeech/extract_features.py."
        )
    if kind == "fbank" and (
        encoder.get("n_mels", 80) != 80 or encoder.get("sample_rate", 16000) != 16000
    ):
        raise ValueError(
            f"{where}: the fbank front-end used n_mels={encoder.get('n_mels')}, "
            f"sample_rate={encoder.get('sample_rate')}; the inference template builds the "
            "default one (80 mels, 16 kHz)."
        )
    return {
        "sfm_kind": kind,
        "sfm_source": config.get("source", encoder.get("source")),
        "sfm_layer": config.get("layer", encoder.get("layer")),
        "sfm_dtype": encoder.get("dtype") or "float32",
        "sfm_front_end": encoder.get("front_end") or "hf",
        "frame_average": int(average),
        "feature_dim": config.get("dim"),
    }
