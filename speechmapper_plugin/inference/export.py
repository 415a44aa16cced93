"""Publishing a trained model (``export_model``): a self-contained folder that
``SpeechMapperLLM.from_hparams`` loads from disk or from a hub repository.

- ``hyperparams.yaml``: the inference template (``inference/inference.yaml``, shipped in the
  package) filled with the training run's projector, LLM and encoder settings; every prompt
  is written out as text (no reference to a plugin constant that an upgrade could change),
  the LLM is named by its hub id (a local hub-cache folder is mapped back to its id);
- ``projector.safetensors``: the best checkpoint's projector;
- ``adapter/``: the LLM's LoRA adapter as a peft folder (IWSLT 2025 system, stage C);
- ``README.md``: a model card (``inference.model_card``) with the evaluation results;
- ``export.json``: where it came from (informative only, not uploaded by ``push``).

Supported training folders: stage 1 (lowest validation WER), stage 2 and the task-specific
stage 2 (lowest validation loss), the IWSLT 2025 stage A (Transformer projector, lowest
validation loss) and stage C (the fused projector + adapter the recipe writes at the end).

Authors
-------
speechmapper developers, 2026
"""

import importlib
import json
import logging
import os
import re
import shutil

import torch

from speechmapper_plugin.data.cache_config import check_same_features, read_beside, write_beside
from speechmapper_plugin.inference.folders import (
    ADAPTER_FOLDER,
    DEFAULT_TEMPLATE,
    EXPORT_INFO,
    HPARAMS_FILE,
    MODEL_CARD,
    PROJECTOR_FILE,
    WEIGHTS_FILE,
    _has_top_level_key,
    _plain,
    _read_yaml,
    find_best_checkpoint,
    folder_kind,
    hub_id_of,
    read_feature_config,
)
from speechmapper_plugin.inference.weights import (
    ADAPTER_FILES,
    save_safetensors,
    shape_differences,
)
from speechmapper_plugin.utils.files import atomic_write_text, write_json

logger = logging.getLogger(__name__)


# Arguments of a SpeechMapper projector in a training YAML -> keys of the inference template.
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


# Arguments of the IWSLT 2025 TransformerProjector (the template's transformer_projector).
_TRANSFORMER_KEYS = ("d_model", "num_layers", "nhead", "d_ffn", "dropout")


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


def _named_value(tag, where):
    """The Python object a ``!name:module.attribute`` tag names (e.g. a prompt constant)."""
    path = str(tag)[len("!name:") :]
    module_name, _, attribute = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{where} names {path!r}, which cannot be imported: {err}") from err


def _prompt_value(node, where):
    """A prompt setting of a training YAML as plain text (or dict): a plain value is kept, a
    ``!name:`` tag is replaced by the constant it names; None when unset or computed."""
    if node is None:
        return None
    tag = getattr(getattr(node, "tag", None), "value", None)
    if tag is not None and str(tag).startswith("!name:"):
        value = _named_value(tag, where)
        if isinstance(value, (str, dict)):
            return dict(value) if isinstance(value, dict) else value
        raise ValueError(f"{where} names {tag}, which is not a prompt text.")
    if tag is not None and str(tag).startswith("!"):
        logger.warning("%s is %s: the published model uses the default prompt.", where, tag)
        return None
    return _plain(node, where)


def _prompts(tree, stage, where):
    """The inference prompts of a training run (App. B.3): zero-shot prompts after stage 1
    and the task-agnostic stage 2, the instruction-tuning suffix for models trained on the
    task's prompts (task-specific stage 2 with ``zero_shot: False``, IWSLT 2025 system)."""
    from speechmapper_plugin.data import prompts as p

    train_kwargs = tree.get("train_prompt_kwargs") or {}

    def first(*candidates):
        for name, node in candidates:
            value = _prompt_value(node, f"{name} in {where}")
            if value is not None:
                return value
        return None

    zero_shot = bool(_plain(tree.get("zero_shot", stage != "multitask"), "zero_shot"))
    prefix = first(
        ("speech_prefix", tree.get("speech_prefix")),
        ("train_prompt_kwargs.prefix", train_kwargs.get("prefix")),
    )
    prefix = p.SPEECH_PREFIX if prefix is None else prefix
    suffix = p.ZERO_SHOT_SUFFIX if zero_shot else p.IT_SUFFIX
    st_instructions = first(
        ("st_instructions", tree.get("st_instructions")),
        ("train_prompt_kwargs.st_instructions", train_kwargs.get("st_instructions")),
    )
    sqa_template = first(
        ("sqa_template", tree.get("sqa_template")),
        ("train_prompt_kwargs.sqa_template", train_kwargs.get("sqa_template")),
    )
    asr_prompt = first(
        ("test_prompt", tree.get("test_prompt")), ("asr_prompt", tree.get("asr_prompt"))
    )
    if asr_prompt is None:  # zero-shot: Table 11's prompt; in-domain: the training prompt
        asr_prompt = (
            p.ZERO_SHOT_ASR if zero_shot else p.task_prompt("asr", zero_shot=False, prefix=prefix)
        )
    return {
        "asr_prompt": asr_prompt,
        "speech_prefix": prefix,
        "prompt_suffix": suffix,
        "st_instructions": dict(p.ST_INSTRUCTIONS if st_instructions is None else st_instructions),
        "sqa_template": p.SQA_INSTRUCTION if sqa_template is None else sqa_template,
    }


def _stage_of(tree, hparams_path):
    """``(stage, min_key)`` of a training configuration."""
    if "embeddings" in tree:
        return "stage1", "WER"
    if "speech_sources" in tree:
        return "multitask", "loss"
    if "projector" not in tree and "lora_rank" in tree:
        raise ValueError(
            f"{hparams_path} is the IWSLT 2025 stage B (text LoRA only, no projector): export "
            "the stage-C fusion folder, which holds the projector and the adapter."
        )
    if "llm" in tree or "sigma" in tree:
        return "stage2", "loss"
    raise ValueError(
        f"{hparams_path} is neither a stage-1 (key 'embeddings'), a stage-2 (keys 'llm', "
        "'sigma') nor an IWSLT 2025 stage-A/C (key 'speech_sources') SpeechMapper training "
        "configuration."
    )


def _projector_values(projector, hparams_path):
    """Template keys of the training YAML's projector (SpeechMapper or Transformer)."""
    if not hasattr(projector, "keys"):
        raise ValueError(f"{hparams_path} has no `projector:` definition.")
    tag = str(getattr(getattr(projector, "tag", None), "value", "") or "")
    args = {
        arg: _plain(projector[arg], f"projector.{arg} in {hparams_path}")
        for arg in projector
        if arg not in _INIT_ONLY
    }
    if tag.endswith("TransformerProjector"):
        unknown = sorted(set(args) - set(_TRANSFORMER_KEYS) - {"input_dim", "llm_dim"})
        if unknown:
            raise ValueError(
                f"TransformerProjector argument(s) {unknown} of {hparams_path} have no key in "
                f"the inference template ({DEFAULT_TEMPLATE})."
            )
        return {
            "projector_type": "transformer",
            "feature_dim": args["input_dim"],
            "llm_dim": args["llm_dim"],
            "transformer_projector": {k: args[k] for k in _TRANSFORMER_KEYS if k in args},
        }
    values = {"projector_type": "speechmapper"}
    for arg, value in args.items():
        if arg not in _PROJECTOR_KEYS:
            raise ValueError(
                f"Projector argument {arg!r} of {hparams_path} has no key in the inference "
                f"template ({DEFAULT_TEMPLATE}); supported: {sorted(_PROJECTOR_KEYS)}."
            )
        values[_PROJECTOR_KEYS[arg]] = value
    if values.get("llm_dim") is None and values.get("output_dims"):
        values["llm_dim"] = values["output_dims"][-1]
    return values


def _feature_folder(tree, hparams_path):
    if "feature_folder" in tree:
        return _plain(tree["feature_folder"], "feature_folder")
    sources = tree.get("speech_sources") or []
    if sources and "feature_folder" in sources[0]:
        return _plain(sources[0]["feature_folder"], "speech_sources[0].feature_folder")
    raise ValueError(
        f"{hparams_path} has no feature_folder: pass feature_config= (the feature cache folder "
        "or its cache.json)."
    )


def _weights_of(folder, tree, stage, min_key, hparams_path):
    """``(projector file, adapter folder or None, info)`` of a training output folder."""
    if stage == "multitask" and tree.get("lora_adapter"):  # stage C: the fused model
        projector = os.path.join(folder, PROJECTOR_FILE)
        adapter = os.path.join(folder, ADAPTER_FOLDER)
        if not (os.path.isfile(projector) and os.path.isdir(adapter)):
            raise FileNotFoundError(
                f"{folder} is an IWSLT 2025 stage-C (fusion) run without its fused model "
                f"({PROJECTOR_FILE} + {ADAPTER_FOLDER}/, written when the stage ends): let "
                "the run finish (rerun train_fusion.py: it resumes from its checkpoint)."
            )
        return projector, adapter, {"selected_by": "fused model of the finished stage C"}
    save_folder = os.path.join(folder, "save")
    if not os.path.isdir(save_folder) and "save_folder" in tree:
        save_folder = _absolute_if_exists(_plain(tree["save_folder"], "save_folder"))
    best = find_best_checkpoint(str(save_folder), min_key)
    return best.pop("path"), None, best


def _training_values(folder, feature_config):
    """Template values, projector file, adapter folder and provenance of a training folder."""
    hparams_path = os.path.join(folder, HPARAMS_FILE)
    if not os.path.isfile(hparams_path):
        raise FileNotFoundError(
            f"{folder} has no {HPARAMS_FILE}: give a training output folder (the "
            "output_folder of train_stage1.py / train_stage2.py) or a published folder."
        )
    tree = _read_yaml(hparams_path)
    stage, min_key = _stage_of(tree, hparams_path)
    values = _projector_values(tree.get("projector"), hparams_path)
    for key in ("llm_source", "pad_token", "hub_cache_dir", "llm_dtype", "system_prompt"):
        if key in tree:
            values[key] = _plain(tree[key], f"{key} in {hparams_path}")
    if not values.get("llm_source"):
        raise ValueError(f"{hparams_path} has no llm_source.")
    if "nearest_metric" in tree:
        values["nearest_metric"] = _plain(tree["nearest_metric"], "nearest_metric")
    values.update(_prompts(tree, stage, hparams_path))

    projector_path, adapter, best = _weights_of(folder, tree, stage, min_key, hparams_path)
    trained = read_beside(projector_path)  # the cache the projector was trained on, if stored
    if feature_config is None and trained is None:  # saved before the config was stored
        feature_config = _absolute_if_exists(_feature_folder(tree, hparams_path))
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
            f"the projector {projector_path}",
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
    for key in ("llm_source", "sfm_source"):
        values[key] = hub_id_of(_absolute_if_exists(values.get(key)))
    values["hub_cache_dir"] = _absolute_if_exists(values.get("hub_cache_dir"))

    values["lora_adapter"] = ADAPTER_FOLDER if adapter else None
    info = {"stage": stage, "hparams": os.path.abspath(hparams_path), **best}
    info["dataset"] = _plain(tree["dataset"], "dataset") if "dataset" in tree else None
    return values, projector_path, adapter, info, description


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
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {_yaml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
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
        Top-level keys to set; values are plain Python values (dicts and lists are written
        on one line).
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


def _read_state(path):
    """The tensors of a projector file (a torch checkpoint or safetensors)."""
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise ValueError(f"Cannot read the projector checkpoint {path}: {err}") from err


def _projector_of_text(hparams_text, where):
    """The projector the filled hyperparameters build, on the meta device (no memory)."""
    from hyperpyyaml import resolve_references
    from ruamel.yaml import YAML

    from speechmapper_plugin.models.projectors import build_projector

    tree = YAML().load(resolve_references(hparams_text).getvalue())
    if not hasattr(tree, "keys") or "projector" not in tree:
        raise ValueError(f"{where} has no `projector:` definition.")
    node = tree["projector"]
    args = {arg: _plain(node[arg], f"projector.{arg}") for arg in node}
    with torch.device("meta"):
        if "projector_type" in args:  # the current template: build_projector
            return build_projector(**args)
        from speechmapper_plugin.models.speechmapper import SpeechMapper  # earlier exports

        return SpeechMapper(**args)


def _check_projector_state(state, hparams_text, where, path):
    """Checks the checkpoint's tensor names and shapes against the YAML's projector."""
    projector = _projector_of_text(hparams_text, where)
    diff = shape_differences(state, projector.state_dict(), "checkpoint", "configuration")
    if diff:
        raise ValueError(
            f"The projector checkpoint {path} does not match the projector settings of "
            f"{where} ({len(diff)} tensors differ, e.g. {diff[:3]})."
        )


def _write_adapter(src, out, llm_source):
    """Copies a peft adapter folder, naming its base model ``llm_source`` (the hub id)."""
    config_path = os.path.join(src, ADAPTER_FILES[0])
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"LoRA adapter folder {src} has no {ADAPTER_FILES[0]}.")
    if not os.path.isfile(os.path.join(src, ADAPTER_FILES[1])):
        raise FileNotFoundError(
            f"LoRA adapter folder {src} has no {ADAPTER_FILES[1]} (saved without safetensors?)."
        )
    target = os.path.join(out, ADAPTER_FOLDER)
    os.makedirs(target, exist_ok=True)
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    config["base_model_name_or_path"] = str(llm_source)
    write_json(os.path.join(target, ADAPTER_FILES[0]), config)
    for name in ADAPTER_FILES[1:]:
        path = os.path.join(src, name)
        if os.path.isfile(path):
            tmp = os.path.join(target, f".{name}.tmp{os.getpid()}")
            shutil.copyfile(path, tmp)
            os.replace(tmp, os.path.join(target, name))


def _copy_published(src, out):
    """Copies the weights, adapter and model card of a published folder."""
    for name in (WEIGHTS_FILE, PROJECTOR_FILE, MODEL_CARD):
        path = os.path.join(src, name)
        if os.path.isfile(path):
            tmp = os.path.join(out, f".{name}.tmp{os.getpid()}")
            shutil.copyfile(path, tmp)
            os.replace(tmp, os.path.join(out, name))
    adapter = os.path.join(src, ADAPTER_FOLDER)
    if os.path.isdir(adapter):
        with open(os.path.join(adapter, ADAPTER_FILES[0]), encoding="utf-8") as f:
            base = json.load(f).get("base_model_name_or_path")
        _write_adapter(adapter, out, base)


def export_model(
    train_output_folder,
    out_folder,
    feature_config=None,
    overrides=None,
    template=None,
    results=None,
    model_name=None,
    repo_id=None,
    license="apache-2.0",
    system=None,
):
    """Builds a published model folder from a training output folder.

    Writes, atomically, ``projector.safetensors`` (the best checkpoint's projector: lowest
    validation WER for stage 1, lowest validation loss for stage 2 and the IWSLT 2025
    stage A; the fused projector of stage C), ``adapter/`` (stage C: the peft LoRA adapter,
    its base model named by hub id), ``hyperparams.yaml`` (the inference template filled
    with the run's projector, LLM, prompts and the encoder of its feature cache's
    ``cache.json``), ``feature_config.json`` (that cache's configuration, stored in the
    checkpoint; loading the published model checks the encoder settings against it), the model
    card ``README.md`` (``inference.model_card``) and
    ``export.json``. A hub-cache folder of the LLM or SFM is written as its hub id; other
    local paths as absolute paths. Re-exporting the same checkpoint does not rewrite the
    weights. An already published folder is accepted too (copied, with ``overrides``).

    Arguments
    ---------
    train_output_folder : str
        The ``output_folder`` of a training run, or a published folder.
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
        The inference template (default: ``inference/inference.yaml`` of the package).
    results : list of str, optional
        Result files or folders for the model card's evaluation results (default: the
        training folder's ``results/``).
    model_name : str, optional
        The model's name on its card (default: the name of ``out_folder``).
    repo_id : str, optional
        The hub repository it will be pushed to (the card's usage snippet; default:
        ``model_name``).
    license : str
        The card's license identifier.
    system : str, optional
        The system of the result files the card describes (when they hold several).

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
            "published SpeechMapper folder (hyperparams.yaml + projector.safetensors)."
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

    adapter = None
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
            raise FileNotFoundError(f"Inference template {template} not found.")
        with open(template, encoding="utf-8") as f:
            text = f.read()
        values, projector_path, adapter, info, description = _training_values(src, feature_config)
    values.update(overrides or {})
    where = f"the published hyperparams.yaml of {out}"
    text = fill_template(text, values, where=where)
    state = _read_state(projector_path)
    _check_projector_state(state, text, where, projector_path)

    if same:  # a published folder re-exported in place: only the overrides change
        if values:
            atomic_write_text(os.path.join(out, HPARAMS_FILE), text)
        return out
    os.makedirs(out, exist_ok=True)
    if kind == "published":
        _copy_published(src, out)
        signature = None
    else:
        signature = _file_signature(projector_path)
        weights = os.path.join(out, WEIGHTS_FILE)
        if not (os.path.isfile(weights) and previous.get("projector_source") == signature):
            save_safetensors(state, weights)
        if adapter is not None:
            _write_adapter(adapter, out, _llm_name(text))
    if description is not None:  # checked when the published model is loaded
        write_beside(os.path.join(out, WEIGHTS_FILE), description)
    header = "" if kind == "published" else f"# Exported from {os.path.abspath(src)}\n"
    atomic_write_text(os.path.join(out, HPARAMS_FILE), header + text)
    card = None
    if kind == "training":
        from speechmapper_plugin.inference.model_card import write_model_card

        name = model_name or os.path.basename(os.path.abspath(out))
        card = write_model_card(
            out,
            results=results if results is not None else _default_results(src),
            model_name=name,
            repo_id=repo_id or name,
            license=license,
            system=system,
            dataset=info.get("dataset"),
        )
    write_json(
        info_path,
        {
            **info,
            "projector_source": signature,
            "overrides": overrides or {},
            "model_card": card,
        },
    )
    logger.info("Exported %s (%s) to %s", src, info.get("selected_by", kind), out)
    return out


def _llm_name(hparams_text):
    match = re.search(r"^llm_source:\s*(.*?)\s*(?:#.*)?$", hparams_text, flags=re.M)
    value = match.group(1) if match else ""
    return json.loads(value) if value.startswith('"') else value


def _default_results(folder):
    path = os.path.join(folder, "results")
    return [path] if os.path.isdir(path) else []


def _check_published_folder(folder, hparams_file=HPARAMS_FILE):
    """Returns the projector file of a published folder, or says what is missing."""
    hparams = os.path.join(folder, hparams_file)
    if not os.path.isfile(hparams):
        raise FileNotFoundError(
            f"{folder} has no {hparams_file}: give a published SpeechMapper folder "
            f"({hparams_file} + {WEIGHTS_FILE}, see export_model), a training output folder "
            "(SpeechMapperLLM.from_training_folder) or a hub id."
        )
    if not _has_top_level_key(hparams, "pretrainer"):
        raise ValueError(
            f"{folder} is a training output folder, not a published model (its {hparams_file} "
            "has no `pretrainer`): use SpeechMapperLLM.from_training_folder(folder) or "
            "export_model(folder, out_folder) first."
        )
    for name in (WEIGHTS_FILE, PROJECTOR_FILE):  # projector.ckpt: exported before safetensors
        projector = os.path.join(folder, name)
        if os.path.isfile(projector):
            return projector
    raise FileNotFoundError(
        f"Published folder {folder} has no {WEIGHTS_FILE} (the trained projector weights): "
        f"re-export it with `speechmapper export TRAIN_FOLDER {folder}` "
        "(speechmapper_plugin.inference.export.export_model)."
    )
