"""Inference with a trained SpeechMapper: audio + instruction -> text from the frozen LLM.

``SpeechMapperLLM`` is a ``speechbrain.inference.Pretrained`` interface (paper Sec. 3,
"Inference and evaluation"): the frozen SFM encoder, the frame averaging of the feature
cache, the trained projector and the frozen LLM, decoded greedily (150 new tokens).

A *published* folder is what ``from_hparams`` loads, from disk or from a hub repository:

- ``hyperparams.yaml``: ``hparams/inference.yaml`` filled with the model's settings,
- ``projector.ckpt``: the trained projector weights (the LLM and the SFM are referenced by
  hub id or folder, never copied),
- ``export.json``: where it came from (informative only).

``export_model`` builds one from a training output folder of stage 1 or stage 2 (its
``hyperparams.yaml``, its best checkpoint and the ``cache.json`` of its feature cache);
``SpeechMapperLLM.from_training_folder`` and ``load_model`` do it on the fly.

Example
-------
>>> model = SpeechMapperLLM.from_hparams(source="published_folder")  # doctest: +SKIP
>>> model.transcribe_file("audio.flac")  # doctest: +SKIP
>>> model.translate_file("audio.flac", "de")  # doctest: +SKIP
>>> model.ask_file("audio.flac", "Who is speaking?")  # doctest: +SKIP

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
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.data_utils import batch_pad_right

from .features import AudioError, average_frames, load_audio
from .files import atomic_write_text, write_json
from .prompts import build_prompt, check_prompt, sqa_instruction, st_instruction

__all__ = [
    "SpeechMapperLLM",
    "export_model",
    "fill_template",
    "find_best_checkpoint",
    "folder_kind",
    "load_model",
    "read_feature_config",
]

logger = logging.getLogger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
PROJECTOR_FILE = "projector.ckpt"
EXPORT_INFO = "export.json"
DEFAULT_TEMPLATE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hparams", "inference.yaml"
)

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


# --------------------------------------------------------------------------------------------
# Reading training folders
# --------------------------------------------------------------------------------------------


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
    raise ValueError(f"{where} has an unsupported value {value!r} (expected a plain value).")


def _has_top_level_key(path, key):
    with open(path, encoding="utf-8") as f:
        return re.search(rf"^{re.escape(key)}\s*:", f.read(), flags=re.M) is not None


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
        ``selected_by`` (``"min <key>"`` or ``"latest"``).

    Example
    -------
    >>> import tempfile
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
    from speechbrain.utils.checkpoints import Checkpointer

    if not os.path.isdir(save_folder):
        raise FileNotFoundError(
            f"Checkpoint folder {save_folder} does not exist: the training run saved no "
            "checkpoint (or was run with --debug, which saves to a temporary folder)."
        )
    checkpointer = Checkpointer(save_folder)
    ckpt = checkpointer.find_checkpoint(min_key=min_key)
    selected_by = f"min {min_key}"
    if ckpt is None:
        ckpt = checkpointer.find_checkpoint()
        selected_by = "latest"
        if ckpt is not None:
            logger.warning(
                "No checkpoint of %s has the key %r: using the latest one, %s.",
                save_folder,
                min_key,
                ckpt.path,
            )
    if ckpt is None:
        raise FileNotFoundError(f"No CKPT+... checkpoint in {save_folder}.")
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

    if feature_config is None:
        if "feature_folder" not in tree:
            raise ValueError(
                f"{hparams_path} has no feature_folder: pass feature_config= (the feature "
                "cache folder or its cache.json)."
            )
        feature_folder = _absolute_if_exists(_plain(tree["feature_folder"], "feature_folder"))
        if not os.path.isdir(str(feature_folder)):
            raise FileNotFoundError(
                f"The feature cache {feature_folder} (feature_folder in {hparams_path}) is not "
                "reachable from here; pass feature_config= (CLI: --feature-config) with the "
                "feature cache folder or its cache.json."
            )
        feature_config = feature_folder
    features = read_feature_config(feature_config)
    dim = features.pop("feature_dim")
    if dim is not None and values.get("feature_dim") not in (None, dim):
        raise ValueError(
            f"The feature cache has {dim}-dim features but the projector of {hparams_path} "
            f"expects {values['feature_dim']} (feature_dim): wrong feature cache?"
        )
    values.update(features)
    for key in ("llm_source", "sfm_source", "hub_cache_dir"):
        values[key] = _absolute_if_exists(values.get(key))

    save_folder = os.path.join(folder, "save")
    if not os.path.isdir(save_folder) and "save_folder" in tree:
        save_folder = _absolute_if_exists(_plain(tree["save_folder"], "save_folder"))
    best = find_best_checkpoint(str(save_folder), min_key)
    info = {"stage": stage, "hparams": os.path.abspath(hparams_path), **best}
    return values, best["path"], info


# --------------------------------------------------------------------------------------------
# Writing published folders
# --------------------------------------------------------------------------------------------


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

    from .projector import SpeechMapper

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
    and the encoder of its feature cache's ``cache.json``) and ``export.json``. Local model
    paths are written as absolute paths. Re-exporting the same checkpoint does not copy it
    again. An already published folder is accepted too (copied, with ``overrides``).

    Arguments
    ---------
    train_output_folder : str
        The ``output_folder`` of a stage-1 or stage-2 run, or a published folder.
    out_folder : str
        The published folder to write (created; may be the same published folder).
    feature_config : str or dict, optional
        The feature cache folder, its ``cache.json`` or its config, when the run's
        ``feature_folder`` is not reachable from here.
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
    else:
        template = template or DEFAULT_TEMPLATE
        if not os.path.isfile(template):
            raise FileNotFoundError(
                f"Inference template {template} not found (it ships in the repository's "
                "hparams/ folder): pass template= with the path of hparams/inference.yaml."
            )
        with open(template, encoding="utf-8") as f:
            text = f.read()
        values, projector_path, info = _training_values(src, feature_config)
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
            f"{folder}` (speechmapper_plugin.inference.export_model)."
        )
    return projector


# --------------------------------------------------------------------------------------------
# The inference interface
# --------------------------------------------------------------------------------------------


class SpeechMapperLLM(Pretrained):
    """Audio + instruction -> text with a trained SpeechMapper and its frozen LLM.

    Load it with ``from_hparams(source=<published folder or hub id>, savedir=...)`` (see
    :func:`export_model`), ``from_training_folder(<training output folder>)`` or
    :func:`load_model` (any of the three). Decoding is batched greedy search through
    ``FrozenLLM.generate`` (``max_new_tokens`` new tokens, 150 by default).

    Prompts (App. B.3): ``transcribe_*`` uses ``asr_prompt`` (the zero-shot ASR prompt of
    Table 11); ``translate_*``, ``ask_*`` and free instructions use speech prefix +
    instruction + zero-shot suffix (Table 12). An instruction holding the speech
    placeholder ``<speech>`` is used as the whole user prompt.

    Arguments
    ---------
    modules : dict
        ``encoder`` (SFM, ``forward(wavs, wav_lens) -> (feats, lens)``), ``projector``
        (``SpeechMapper``) and ``llm`` (``FrozenLLM``).
    hparams : dict
        The keys of ``HPARAMS_NEEDED``.
    run_opts : dict, optional
        SpeechBrain run options, e.g. ``{"device": "cuda:0"}``.
    freeze_params : bool
        Freeze the modules (default).

    Example
    -------
    >>> model = SpeechMapperLLM.from_hparams(source="published/llama")  # doctest: +SKIP
    >>> model.transcribe_file("audio.flac")  # doctest: +SKIP
    """

    HPARAMS_NEEDED = [
        "frame_average",
        "asr_prompt",
        "speech_prefix",
        "prompt_suffix",
        "st_instructions",
        "sqa_template",
        "max_new_tokens",
        "nearest_metric",
    ]
    MODULES_NEEDED = ["encoder", "projector", "llm"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.MODULES_NEEDED:
            if name not in self.mods:
                raise ValueError(f"SpeechMapperLLM needs the module {name!r} in `modules`.")
        encoder_dim = getattr(self.mods.encoder, "output_dim", None)
        if encoder_dim is not None and encoder_dim != self.mods.projector.input_dim:
            raise ValueError(
                f"The encoder outputs {encoder_dim}-dim features but the projector expects "
                f"{self.mods.projector.input_dim} (feature_dim): sfm_* and feature_dim must "
                "describe the features the projector was trained on."
            )
        if self.mods.projector.llm_dim != self.mods.llm.embed_dim:
            raise ValueError(
                f"The projector outputs {self.mods.projector.llm_dim}-dim vectors but the LLM "
                f"{self.mods.llm.source} has {self.mods.llm.embed_dim}-dim embeddings "
                "(llm_dim / llm_source mismatch)."
            )

    @classmethod
    def from_hparams(cls, source, hparams_file=HPARAMS_FILE, **kwargs):
        """Loads a published model from a local folder or a hub repository.

        A local folder is checked first, so that a training folder or a folder without
        ``projector.ckpt`` gets an error saying what to do.

        Arguments
        ---------
        source : str
            A published folder or a hub id.
        hparams_file : str
            The hyperparameters file of the folder.
        **kwargs
            ``savedir``, ``overrides`` (top-level keys), ``run_opts``... (see
            ``speechbrain.inference.interfaces.pretrained_from_hparams``).

        Returns
        -------
        SpeechMapperLLM
        """
        source_text = os.fspath(source) if isinstance(source, os.PathLike) else source
        if isinstance(source_text, str) and os.path.isdir(source_text):
            _check_published_folder(source_text, hparams_file)
        return super().from_hparams(source_text, hparams_file=hparams_file, **kwargs)

    @classmethod
    def from_training_folder(cls, folder, savedir=None, feature_config=None, **kwargs):
        """Exports a training output folder (see :func:`export_model`) and loads it.

        Arguments
        ---------
        folder : str
            The ``output_folder`` of a stage-1 or stage-2 run.
        savedir : str, optional
            Where the published folder is written (default ``<folder>/published``).
        feature_config : str or dict, optional
            See :func:`export_model`.
        **kwargs
            Passed to :meth:`from_hparams` (``overrides``, ``run_opts``...).

        Returns
        -------
        SpeechMapperLLM
        """
        savedir = savedir or os.path.join(os.fspath(folder), "published")
        export_model(folder, savedir, feature_config=feature_config)
        return cls.from_hparams(source=savedir, **kwargs)

    # ----------------------------------------------------------------------------------------
    # Prompts
    # ----------------------------------------------------------------------------------------

    def prompt(self, instruction):
        """The user prompt of an instruction (speech prefix + instruction + suffix).

        Arguments
        ---------
        instruction : str
            A task instruction, or a whole prompt holding the speech placeholder.

        Returns
        -------
        str
        """
        placeholder = self.mods.llm.placeholder
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"An instruction must be a non-empty string, got {instruction!r}.")
        if placeholder in instruction:
            return check_prompt(instruction, placeholder, name="instruction")
        return build_prompt(instruction, self.hparams.speech_prefix, self.hparams.prompt_suffix)

    def asr_prompt(self):
        """The transcription prompt (``asr_prompt``, Table 11 by default)."""
        return check_prompt(self.hparams.asr_prompt, self.mods.llm.placeholder, "asr_prompt")

    def st_prompt(self, target_lang):
        """The translation prompt; the instruction is written in ``target_lang``.

        Raises ``ValueError`` listing the supported languages for an unknown one.
        """
        return self.prompt(st_instruction(target_lang, self.hparams.st_instructions))

    def sqa_prompt(self, question):
        """The spoken-question-answering prompt for ``question``."""
        return self.prompt(sqa_instruction(question, self.hparams.sqa_template))

    # ----------------------------------------------------------------------------------------
    # Batches
    # ----------------------------------------------------------------------------------------

    @property
    def sample_rate(self):
        """Sampling rate the encoder expects (audio files are resampled to it)."""
        return int(getattr(self.mods.encoder, "sample_rate", 16000))

    def encode_batch(self, wavs, wav_lens=None):
        """Projector outputs of a batch of waveforms.

        encoder -> every ``frame_average`` frames averaged -> fp16 rounding (the feature
        cache the projector was trained on stores fp16) -> projector.

        Arguments
        ---------
        wavs : torch.Tensor
            [B, S] waveforms at :attr:`sample_rate`.
        wav_lens : torch.Tensor, optional
            [B] relative lengths (all 1 if None).

        Returns
        -------
        speech : torch.Tensor
            [B, T, D] vectors in the LLM embedding space.
        speech_lens : torch.Tensor
            [B] relative lengths.
        """
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        wavs = wavs.to(self.device, torch.float32)
        wav_lens = wav_lens.to(self.device, torch.float32)
        with torch.no_grad():
            feats, lens = self.mods.encoder(wavs, wav_lens)
            feats, lens = average_frames(feats.float(), lens, self.hparams.frame_average)
            feats = feats.to(torch.float16).float()
            return self.mods.projector(feats, lens)

    def generate_batch(
        self, wavs, wav_lens, instructions, assistant_prefix="", max_new_tokens=None
    ):
        """Greedy answers of the frozen LLM to instructions about a batch of waveforms.

        Arguments
        ---------
        wavs : torch.Tensor
            [B, S] waveforms.
        wav_lens : torch.Tensor
            [B] relative lengths.
        instructions : str or list of str
            One instruction for all, or one per waveform (see :meth:`prompt`).
        assistant_prefix : str
            Text forced at the start of the answer.
        max_new_tokens : int, optional
            Default: the ``max_new_tokens`` hyper-parameter.

        Returns
        -------
        list of str
        """
        batch = 1 if wavs.dim() == 1 else wavs.shape[0]
        if isinstance(instructions, str):
            instructions = [instructions] * batch
        if len(instructions) != batch:
            raise ValueError(f"Got {len(instructions)} instructions for {batch} waveforms.")
        prompts = [self.prompt(instruction) for instruction in instructions]
        speech, speech_lens = self.encode_batch(wavs, wav_lens)
        return self.mods.llm.generate(
            speech,
            speech_lens,
            prompts,
            max_new_tokens=max_new_tokens or self.hparams.max_new_tokens,
            assistant_prefix=assistant_prefix,
        )

    def transcribe_batch(self, wavs, wav_lens=None):
        """Transcriptions of a batch of waveforms (zero-shot ASR prompt)."""
        return self.generate_batch(wavs, wav_lens, self.asr_prompt())

    def nearest_decode_batch(self, wavs, wav_lens=None):
        """Stage-1 diagnostic: each projector output mapped to its nearest LLM embedding.

        No LLM forward: the text is read off the embedding table (cut at the first pad),
        with the ``nearest_metric`` of the training run.

        Returns
        -------
        list of str
        """
        speech, speech_lens = self.encode_batch(wavs, wav_lens)
        table = self.mods.llm.embedding_table()
        return table.decode(speech, speech_lens, metric=self.hparams.nearest_metric)

    def forward(self, wavs, wav_lens=None, instructions=None):
        """Answers ``instructions`` (default: transcription) about a batch of waveforms."""
        if instructions is None:
            return self.transcribe_batch(wavs, wav_lens)
        return self.generate_batch(wavs, wav_lens, instructions)

    # ----------------------------------------------------------------------------------------
    # Files
    # ----------------------------------------------------------------------------------------

    def load_batch(self, paths):
        """Reads audio files (resampled, down-mixed) into a padded batch.

        Arguments
        ---------
        paths : list of str
            Audio files.

        Returns
        -------
        wavs : torch.Tensor
            [B, S] waveforms.
        wav_lens : torch.Tensor
            [B] relative lengths.

        Raises
        ------
        AudioError
            A file is missing, unreadable or too short for the encoder (the message names it).
        """
        if not paths:
            raise ValueError("No audio file given.")
        min_samples = int(getattr(self.mods.encoder, "min_samples", 1))
        wavs = []
        for path in paths:
            wav = load_audio(path, sample_rate=self.sample_rate)
            if wav.shape[0] < min_samples:
                raise AudioError(
                    f"Audio file {os.fspath(path)!r} is too short: {wav.shape[0]} samples at "
                    f"{self.sample_rate} Hz, the encoder needs at least {min_samples}."
                )
            wavs.append(wav)
        return batch_pad_right(wavs)

    def generate_files(
        self, paths, instructions, batch_size=8, assistant_prefix="", max_new_tokens=None
    ):
        """Answers for many audio files, decoded in batches of similar durations.

        Arguments
        ---------
        paths : list of str
            Audio files.
        instructions : str or list of str
            One instruction for all, or one per file (see :meth:`prompt`).
        batch_size : int
            Files per batch.
        assistant_prefix : str
            Text forced at the start of each answer.
        max_new_tokens : int, optional
            Default: the ``max_new_tokens`` hyper-parameter.

        Returns
        -------
        list of str
            The answers, in the order of ``paths``.
        """
        paths = [os.fspath(path) for path in paths]
        if isinstance(instructions, str):
            instructions = [instructions] * len(paths)
        if len(instructions) != len(paths):
            raise ValueError(f"Got {len(instructions)} instructions for {len(paths)} files.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
        for instruction in set(instructions):
            self.prompt(instruction)  # bad instructions fail before any audio is read
        sizes = [os.path.getsize(path) if os.path.isfile(path) else 0 for path in paths]
        order = sorted(range(len(paths)), key=lambda i: sizes[i], reverse=True)
        answers = [None] * len(paths)
        for first in range(0, len(order), int(batch_size)):
            chunk = order[first : first + int(batch_size)]
            wavs, wav_lens = self.load_batch([paths[i] for i in chunk])
            texts = self.generate_batch(
                wavs,
                wav_lens,
                [instructions[i] for i in chunk],
                assistant_prefix=assistant_prefix,
                max_new_tokens=max_new_tokens,
            )
            for i, text in zip(chunk, texts):
                answers[i] = text
        return answers

    def generate_file(self, path, instruction, assistant_prefix="", max_new_tokens=None):
        """The answer to ``instruction`` about one audio file (see :meth:`prompt`)."""
        return self.generate_files(
            [path], instruction, assistant_prefix=assistant_prefix, max_new_tokens=max_new_tokens
        )[0]

    def transcribe_file(self, path):
        """Transcription of an audio file (zero-shot ASR prompt, Table 11)."""
        return self.generate_file(path, self.asr_prompt())

    def translate_file(self, path, target_lang):
        """Translation of an audio file into ``target_lang`` (de, es, fr, it, zh)."""
        return self.generate_file(path, self.st_prompt(target_lang))

    def ask_file(self, path, question):
        """Answer to a question about an audio file (spoken question answering)."""
        return self.generate_file(path, self.sqa_prompt(question))

    def nearest_decode_file(self, path):
        """Stage-1 nearest-embedding decoding of an audio file (no LLM forward)."""
        wavs, wav_lens = self.load_batch([path])
        return self.nearest_decode_batch(wavs, wav_lens)[0]


def load_model(source, savedir=None, **kwargs):
    """Loads a SpeechMapperLLM from a published folder, a training output folder or a hub id.

    Arguments
    ---------
    source : str
        A published folder, a training output folder (exported to ``savedir``, default
        ``<source>/published``) or a hub repository id.
    savedir : str, optional
        For a training folder, where it is exported; otherwise the ``savedir`` of
        ``from_hparams`` (default: no copy, files are read in place or from the hub cache).
    **kwargs
        Passed to ``from_hparams`` (``overrides``, ``run_opts``...).

    Returns
    -------
    SpeechMapperLLM

    Example
    -------
    >>> load_model("results/stage2/llama/sigma0.9/1986")  # doctest: +SKIP
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        if folder_kind(source) == "training":
            return SpeechMapperLLM.from_training_folder(source, savedir=savedir, **kwargs)
        return SpeechMapperLLM.from_hparams(source=source, savedir=savedir, **kwargs)
    if os.path.exists(source):
        raise NotADirectoryError(
            f"Model {source} is a file: give a published folder, a training output folder "
            "or a hub id."
        )
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise FileNotFoundError(f"Model folder {source} does not exist.")
    return SpeechMapperLLM.from_hparams(source=source, savedir=savedir, **kwargs)
