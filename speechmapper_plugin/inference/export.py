"""Publishing a trained model (``export_model``): ``hyperparams.yaml`` filled from the
inference template with the training run's settings, the projector weights and where they
came from (``export.json``).

Authors
-------
speechmapper developers, 2026
"""

import json
import logging
import os
import re
import shutil

import torch

from speechmapper_plugin.data.cache_config import check_same_features, read_beside, write_beside
from speechmapper_plugin.inference.folders import (
    DEFAULT_TEMPLATE,
    EXPORT_INFO,
    HPARAMS_FILE,
    PROJECTOR_FILE,
    _has_top_level_key,
    _plain,
    _Raw,
    _read_yaml,
    find_best_checkpoint,
    folder_kind,
    read_feature_config,
)
from speechmapper_plugin.utils.files import atomic_write_text, write_json

logger = logging.getLogger(__name__)


# Arguments of the projector in a training YAML -> keys of the inference template.
_PROJECTOR_KEYS = {
    "input_dim": "feature_dim",
    "block_dims": "block_dims",
    "output_dims": "output_dims",
    "llm_dim": "llm_dim",
    "num_layers": "num_layers",
    "nhead": "nhead",
    "d_ffn": "d_ffn",
    "kernel_size": "kernel_size",
    "stride": "stride",
    "dropout": "dropout",
    "conv_activation": "conv_activation",
}


# Projector arguments that only matter at initialization (the checkpoint overwrites them).
_INIT_ONLY = {"final_init_gain"}


def _absolute_if_exists(value):
    """A relative path that exists from the current folder, made absolute (else unchanged).

    Training YAMLs hold paths relative to where the run was started (``results/...``); the
    published folder must work from anywhere. Hub ids are left as they are.
    """
    if value is None or os.path.isabs(str(value)) or not os.path.exists(str(value)):
        return value
    return os.path.abspath(str(value))


def _training_values(folder, feature_config):
    """Template values and the checkpoint of a training output folder."""
    hparams_path = os.path.join(folder, HPARAMS_FILE)
    if not os.path.isfile(hparams_path):
        raise FileNotFoundError(
            f"{folder} has no {HPARAMS_FILE}: give a training output folder (the "
            "output_folder of train_stage1.py / train_stage2.py) or a published folder."
        )
    tree = _read_yaml(hparams_path)
    if "embeddings" in tree:
        stage, min_key = 1, "WER"
    elif "llm" in tree or "sigma" in tree:
        stage, min_key = 2, "loss"
    else:
        raise ValueError(
            f"{hparams_path} is neither a stage-1 (key 'embeddings') nor a stage-2 (keys 'llm', "
            "'sigma') SpeechMapper training configuration."
        )

    values = {}
    projector = tree.get("projector")
    if not hasattr(projector, "keys"):
        raise ValueError(f"{hparams_path} has no `projector:` SpeechMapper definition.")
    for arg in projector:
        if arg in _INIT_ONLY:
            continue
        if arg not in _PROJECTOR_KEYS:
            raise ValueError(
                f"Projector argument {arg!r} of {hparams_path} has no key in the inference "
                f"template ({DEFAULT_TEMPLATE}); supported: {sorted(_PROJECTOR_KEYS)}."
            )
        values[_PROJECTOR_KEYS[arg]] = _plain(projector[arg], f"projector.{arg} in {hparams_path}")
    if values.get("llm_dim") is None and values.get("output_dims"):
        values["llm_dim"] = values["output_dims"][-1]

    for key in ("llm_source", "pad_token", "hub_cache_dir", "llm_dtype", "system_prompt"):
        if key in tree:
            values[key] = _plain(tree[key], f"{key} in {hparams_path}")
    if not values.get("llm_source"):
        raise ValueError(f"{hparams_path} has no llm_source.")
    if "nearest_metric" in tree:
        values["nearest_metric"] = _plain(tree["nearest_metric"], "nearest_metric")
    prompt = tree.get("test_prompt")
    if prompt is not None:
        tag = getattr(getattr(prompt, "tag", None), "value", None)
        if tag is None and isinstance(prompt, str):
            values["asr_prompt"] = str(prompt)
        elif tag is not None and str(tag).startswith("!name:") and not str(prompt):
            values["asr_prompt"] = _Raw(tag)
        else:
            logger.warning(
                "test_prompt of %s is not a plain string nor a !name: tag: the published "
                "model keeps the template's asr_prompt (the zero-shot ASR prompt).",
                hparams_path,
            )

    save_folder = os.path.join(folder, "save")
    if not os.path.isdir(save_folder) and "save_folder" in tree:
        save_folder = _absolute_if_exists(_plain(tree["save_folder"], "save_folder"))
    best = find_best_checkpoint(str(save_folder), min_key)
    trained = read_beside(best["path"])  # the cache the projector was trained on, if stored

    if feature_config is None and trained is None:  # saved before the config was stored
        if "feature_folder" not in tree:
            raise ValueError(
                f"{hparams_path} has no feature_folder: pass feature_config= (the feature "
                "cache folder or its cache.json)."
            )
        feature_config = _absolute_if_exists(_plain(tree["feature_folder"], "feature_folder"))
        if not os.path.isdir(str(feature_config)):
            raise FileNotFoundError(
                f"The feature cache {feature_config} (feature_folder in {hparams_path}) is not "
                "reachable from here; pass feature_config= (CLI: --feature-config) with the "
                "feature cache folder or its cache.json."
            )
    description = trained if feature_config is None else _description(feature_config)
    if trained is not None and feature_config is not None:
        check_same_features(
            trained,
            description,
            f"the projector {best['path']}",
            f"the feature config {feature_config}",
            fix="The published model builds its encoder from that config: give the cache the "
            "run was trained on (or none: the checkpoint stores it).",
        )
    features = read_feature_config(description)
    dim = features.pop("feature_dim")
    if dim is not None and values.get("feature_dim") not in (None, dim):
        raise ValueError(
            f"The feature cache has {dim}-dim features but the projector of {hparams_path} "
            f"expects {values['feature_dim']} (feature_dim): wrong feature cache?"
        )
    values.update(features)
    for key in ("llm_source", "sfm_source", "hub_cache_dir"):
        values[key] = _absolute_if_exists(values.get(key))

    info = {"stage": stage, "hparams": os.path.abspath(hparams_path), **best}
    return values, best["path"], info, description


def _description(feature_config):
    """A cache description (``cache.json`` format) from a cache folder, its ``cache.json`` or
    a (config) dict."""
    if isinstance(feature_config, dict):
        return feature_config if "config" in feature_config else {"config": feature_config}
    path = os.fspath(feature_config)
    read_feature_config(path)  # a missing or unreadable description: its own message
    if os.path.isdir(path):
        path = os.path.join(path, "cache.json")
    with open(path, encoding="utf-8") as f:
        return _description(json.load(f))


def _yaml_value(value):
    """One-line YAML text of a plain value (JSON is valid YAML)."""
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_value(item) for item in value) + "]"
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_/.~][\w./:@+-]*", value):
        from ruamel.yaml import YAML

        if YAML(typ="safe").load(value) == value:  # not read back as null, a bool, a number
            return value
    if value is None or isinstance(value, (bool, int, float, str)):
        return json.dumps(value, ensure_ascii=False)
    raise ValueError(f"Cannot write {value!r} ({type(value).__name__}) into hyperparams.yaml.")


def fill_template(text, values, where="the template"):
    """Sets top-level ``key: value`` lines of a HyperPyYAML text, keeping everything else.

    A changed line loses its end-of-line comment (it described the old value).

    Arguments
    ---------
    text : str
        The YAML text.
    values : dict
        Top-level keys to set; values are plain Python values.
    where : str
        Names the text in error messages.

    Returns
    -------
    str
        The filled text.

    Example
    -------
    >>> print(fill_template("a: 1 # one\\nb: [2]\\nc: x\\n", {"a": 3, "b": [4, 5]}), end="")
    a: 3
    b: [4, 5]
    c: x
    """
    for key, value in values.items():
        pattern = re.compile(rf"^{re.escape(key)}:([^\n]*)$", flags=re.M)
        matches = pattern.findall(text)
        if len(matches) != 1:
            known = ", ".join(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*):", text, flags=re.M))
            raise KeyError(f"{key!r} is not a top-level key of {where} (keys: {known}).")
        new = _yaml_value(value)
        old = matches[0].split(" #")[0].strip()
        if old != new:
            line = f"{key}: {new}"
            text = pattern.sub(lambda _, line=line: line, text)
    return text


def _file_signature(path):
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _copy_projector(src, out_folder, previous_info):
    """Copies the projector file atomically, unless the same file was already exported."""
    dst = os.path.join(out_folder, PROJECTOR_FILE)
    signature = _file_signature(src)
    if (
        os.path.isfile(dst)
        and previous_info.get("projector_source") == signature
        and os.path.getsize(dst) == signature["size"]
    ):
        return signature
    tmp = f"{dst}.tmp{os.getpid()}"
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return signature


def _check_projector_file(path, hparams_text, where):
    """Checks the checkpoint's tensor names and shapes against the projector of the YAML."""
    from hyperpyyaml import resolve_references

    from speechmapper_plugin.models.speechmapper import SpeechMapper

    tree = _read_yaml_text(resolve_references(hparams_text).getvalue(), where)
    args = {arg: _plain(tree["projector"][arg], f"projector.{arg}") for arg in tree["projector"]}
    with torch.device("meta"):
        projector = SpeechMapper(**args)
    expected = {name: tuple(t.shape) for name, t in projector.state_dict().items()}
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise ValueError(f"Cannot read the projector checkpoint {path}: {err}") from err
    found = {name: tuple(t.shape) for name, t in state.items()}
    if found != expected:
        diff = sorted(
            f"{name}: checkpoint {found.get(name)}, configuration {expected.get(name)}"
            for name in set(found) | set(expected)
            if found.get(name) != expected.get(name)
        )
        raise ValueError(
            f"The projector checkpoint {path} does not match the projector settings of "
            f"{where} ({len(diff)} tensors differ, e.g. {diff[:3]})."
        )


def _read_yaml_text(text, where):
    from ruamel.yaml import YAML

    tree = YAML().load(text)
    if not hasattr(tree, "keys") or "projector" not in tree:
        raise ValueError(f"{where} has no `projector:` definition.")
    return tree


def export_model(
    train_output_folder, out_folder, feature_config=None, overrides=None, template=None
):
    """Builds a published model folder from a training output folder (stage 1 or 2).

    Writes, atomically, ``<out_folder>/projector.ckpt`` (the best checkpoint's projector:
    lowest validation WER for stage 1, lowest validation loss for stage 2),
    ``<out_folder>/hyperparams.yaml`` (``hparams/inference.yaml`` filled with the run's
    projector settings, LLM (``llm_source``, ``pad_token``, ``llm_dtype``, ``system_prompt``)
    and the encoder of the feature cache it was trained on), ``feature_config.json`` (that
    cache's configuration, stored in the checkpoint; loading the published model checks the
    encoder settings against it) and ``export.json``. Checkpoints saved before the
    configuration was stored take it from the run's ``feature_folder`` (its ``cache.json``).
    Local model paths are written as absolute paths. Re-exporting the same checkpoint does not
    copy it again. An already published folder is accepted too (copied, with ``overrides``).

    Arguments
    ---------
    train_output_folder : str
        The ``output_folder`` of a stage-1 or stage-2 run, or a published folder.
    out_folder : str
        The published folder to write (created; may be the same published folder).
    feature_config : str or dict, optional
        The feature cache folder, its ``cache.json`` or its config: needed when the checkpoint
        stores none and the run's ``feature_folder`` is not reachable from here; when the
        checkpoint stores one, a ``feature_config`` that differs is an error listing the
        fields.
    overrides : dict, optional
        Top-level keys of the inference template to set, e.g. ``{"llm_source":
        "meta-llama/Llama-3.1-8B-Instruct"}`` when training used a local copy of the LLM.
    template : str, optional
        The inference template (default ``hparams/inference.yaml`` of this repository).

    Returns
    -------
    str
        ``out_folder``.

    Example
    -------
    >>> export_model("results/stage2/llama/sigma0.9/1986", "published/llama")  # doctest: +SKIP
    'published/llama'
    """
    src = os.fspath(train_output_folder)
    out = os.fspath(out_folder)
    if not os.path.isdir(src):
        raise FileNotFoundError(f"Training output folder {src} does not exist.")
    kind = folder_kind(src)
    if kind is None:
        raise FileNotFoundError(
            f"{src} is neither a training output folder (hyperparams.yaml + save/) nor a "
            "published SpeechMapper folder (hyperparams.yaml + projector.ckpt)."
        )
    same = os.path.realpath(src) == os.path.realpath(out)
    if kind == "training" and same:
        raise ValueError(
            f"Refusing to export {src} into itself: its hyperparams.yaml would be replaced. "
            "Give another out_folder (e.g. <training folder>/published)."
        )
    info_path = os.path.join(out, EXPORT_INFO)
    previous = {}
    if os.path.isfile(info_path):
        try:
            with open(info_path, encoding="utf-8") as f:
                previous = json.load(f)
        except ValueError:
            previous = {}

    if kind == "published":
        projector_path = _check_published_folder(src)
        with open(os.path.join(src, HPARAMS_FILE), encoding="utf-8") as f:
            text = f.read()
        values = {}
        info = {"stage": "published", "source_folder": os.path.abspath(src)}
        description = read_beside(projector_path)
    else:
        template = template or DEFAULT_TEMPLATE
        if not os.path.isfile(template):
            raise FileNotFoundError(
                f"Inference template {template} not found (it ships in the repository's "
                "hparams/ folder): pass template= with the path of hparams/inference.yaml."
            )
        with open(template, encoding="utf-8") as f:
            text = f.read()
        values, projector_path, info, description = _training_values(src, feature_config)
    values.update(overrides or {})
    where = f"the published hyperparams.yaml of {out}"
    text = fill_template(text, values, where=where)
    _check_projector_file(projector_path, text, where)

    if same:  # a published folder re-exported in place: only the overrides change
        if values:
            atomic_write_text(os.path.join(out, HPARAMS_FILE), text)
        return out
    os.makedirs(out, exist_ok=True)
    signature = _copy_projector(projector_path, out, previous)
    if description is not None:  # checked when the published model is loaded
        write_beside(os.path.join(out, PROJECTOR_FILE), description)
    header = "" if kind == "published" else f"# Exported from {os.path.abspath(src)}\n"
    atomic_write_text(os.path.join(out, HPARAMS_FILE), header + text)
    write_json(info_path, {**info, "projector_source": signature, "overrides": overrides or {}})
    logger.info("Exported %s (%s) to %s", src, info.get("selected_by", kind), out)
    return out


def _check_published_folder(folder, hparams_file=HPARAMS_FILE):
    """Returns the projector file of a published folder, or says what is missing."""
    hparams = os.path.join(folder, hparams_file)
    if not os.path.isfile(hparams):
        raise FileNotFoundError(
            f"{folder} has no {hparams_file}: give a published SpeechMapper folder "
            f"({hparams_file} + {PROJECTOR_FILE}, see export_model), a training output folder "
            "(SpeechMapperLLM.from_training_folder) or a hub id."
        )
    if not _has_top_level_key(hparams, "pretrainer"):
        raise ValueError(
            f"{folder} is a training output folder, not a published model (its {hparams_file} "
            "has no `pretrainer`): use SpeechMapperLLM.from_training_folder(folder) or "
            "export_model(folder, out_folder) first."
        )
    projector = os.path.join(folder, PROJECTOR_FILE)
    if not os.path.isfile(projector):
        raise FileNotFoundError(
            f"Published folder {folder} has no {PROJECTOR_FILE} (the trained projector "
            "weights): re-export it with `speechmapper export TRAIN_FOLDER "
            f"{folder}` (speechmapper_plugin.inference.export.export_model)."
        )
    return projector
