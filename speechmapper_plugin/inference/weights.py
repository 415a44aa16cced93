"""The weights of a published model: the projector as ``projector.safetensors`` (written by
:func:`save_safetensors`, read by the SpeechBrain ``Pretrainer`` load hook
:func:`load_safetensors`) and, for the IWSLT 2025 system, the LLM's LoRA adapter as a peft
folder (``adapter/``, read by :func:`load_published_adapter`), from a local folder or a hub
repository.

Authors
-------
speechmapper developers, 2026
"""

import logging
import os
import re

logger = logging.getLogger(__name__)


#: Files of a published peft adapter folder (the last one is optional).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "speechmapper_base.json")


def save_safetensors(state_dict, path):
    """Writes a state dict as a safetensors file, atomically.

    Arguments
    ---------
    state_dict : dict
        Parameter name -> tensor (moved to the CPU, made contiguous).
    path : str
        The ``.safetensors`` file.

    Example
    -------
    >>> import tempfile, torch
    >>> layer = torch.nn.Linear(2, 3)
    >>> path = os.path.join(tempfile.mkdtemp(), "projector.safetensors")
    >>> save_safetensors(layer.state_dict(), path)
    >>> load_safetensors(torch.nn.Linear(2, 3), path).weight.shape
    torch.Size([3, 2])
    """
    from safetensors.torch import save_file

    tensors = {name: t.detach().cpu().contiguous() for name, t in state_dict.items()}
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_safetensors(module, path):
    """``Pretrainer`` load hook: the weights of ``module`` from a safetensors file.

    Arguments
    ---------
    module : torch.nn.Module
        The module to fill (its parameter names and shapes must match the file's).
    path : str
        A ``.safetensors`` file (or a link to one, as the ``Pretrainer`` collects it).

    Returns
    -------
    torch.nn.Module
        ``module``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(os.fspath(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise ValueError(f"Cannot read the safetensors weights {path}: {err}") from err
    diff = shape_differences(state, module.state_dict(), "file", "model")
    if diff:
        raise ValueError(
            f"The weights {path} do not fit the {type(module).__name__} of the hyperparams "
            f"({len(diff)} tensors differ, e.g. {diff[:3]}): the file and hyperparams.yaml "
            "come from different exports."
        )
    module.load_state_dict(state)
    return module


def shape_differences(found, expected, found_name="checkpoint", expected_name="model"):
    """The tensors whose names or shapes differ between two state dicts, described.

    Example
    -------
    >>> import torch
    >>> shape_differences({"w": torch.zeros(2, 3)}, {"w": torch.zeros(3, 3), "b": torch.zeros(3)})
    ['b: checkpoint None, model (3,)', 'w: checkpoint (2, 3), model (3, 3)']
    """
    found = {name: tuple(t.shape) for name, t in found.items()}
    expected = {name: tuple(t.shape) for name, t in expected.items()}
    return sorted(
        f"{name}: {found_name} {found.get(name)}, {expected_name} {expected.get(name)}"
        for name in set(found) | set(expected)
        if found.get(name) != expected.get(name)
    )


def _is_local(source):
    return os.path.isdir(os.fspath(source))


def _fetch_kwargs(kwargs):
    """The fetching options of ``from_hparams`` keyword arguments (cache, token, revision)."""
    return {key: kwargs[key] for key in ("fetch_config", "local_strategy") if key in kwargs}


def _read_hparams(source, hparams_file, kwargs):
    """The text of the hyperparameters file of a local folder or a hub repository."""
    from speechbrain.utils.fetching import fetch

    path = fetch(
        filename=hparams_file,
        source=os.fspath(source),
        savedir=kwargs.get("savedir"),
        **_fetch_kwargs(kwargs),
    )
    with open(path, encoding="utf-8") as f:
        return f.read()


def with_model_source(source, hparams_file, kwargs):
    """``from_hparams`` keyword arguments with ``overrides["model_source"] = source`` when the
    model's hyperparameters have the key (published since safetensors), so that the
    ``Pretrainer`` reads ``<source>/projector.safetensors`` wherever the folder or repository is.

    Arguments
    ---------
    source : str
        The local folder or hub id given to ``from_hparams``.
    hparams_file : str
        The hyperparameters file name.
    kwargs : dict
        The other ``from_hparams`` keyword arguments (``overrides``, ``savedir``...).

    Returns
    -------
    dict
        A copy of ``kwargs``.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(os.path.join(folder, "hyperparams.yaml"), "w").write("model_source: .\\n")
    >>> with_model_source(folder, "hyperparams.yaml", {})["overrides"] == {"model_source": folder}
    True
    """
    kwargs = dict(kwargs)
    overrides = dict(kwargs.get("overrides") or {})
    if "model_source" not in overrides:
        text = _read_hparams(source, hparams_file, kwargs)
        if re.search(r"^model_source\s*:", text, flags=re.M):
            overrides["model_source"] = os.fspath(source)
    if overrides:
        kwargs["overrides"] = overrides
    return kwargs


def load_published_adapter(model, source, kwargs=None):
    """Loads the peft LoRA adapter of a published model onto its LLM (IWSLT 2025 system).

    Does nothing when the model's ``lora_adapter`` hyperparameter is null. Otherwise the
    files of ``<source>/<lora_adapter>/`` (a local folder or a hub repository's sub-folder)
    are fetched (linked into ``<savedir>/<lora_adapter>`` when ``savedir`` is given) and
    loaded with ``models.lora.load_lora`` (checked against the LLM, frozen).

    Arguments
    ---------
    model : SpeechMapperLLM
        A model loaded by ``from_hparams``.
    source : str
        The folder or hub id it was loaded from.
    kwargs : dict, optional
        The ``from_hparams`` keyword arguments (``savedir``: where the files are collected;
        ``fetch_config``, ``local_strategy``: how they are fetched).

    Returns
    -------
    str or None
        The local adapter folder, or None.
    """
    from speechbrain.utils.fetching import fetch

    from speechmapper_plugin.models.lora import load_lora

    subfolder = getattr(model.hparams, "lora_adapter", None)
    if not subfolder:
        return None
    subfolder = str(subfolder).strip("/")
    if _is_local(source):
        folder = os.path.join(os.fspath(source), subfolder)
        if not os.path.isfile(os.path.join(folder, ADAPTER_FILES[0])):
            raise FileNotFoundError(
                f"The published model {source} names the LoRA adapter folder {subfolder!r} "
                f"(lora_adapter) but {folder} has no {ADAPTER_FILES[0]}: re-export it with "
                "`speechmapper export`."
            )
    else:
        kwargs = kwargs or {}
        savedir = kwargs.get("savedir")
        target = None if savedir is None else os.path.join(os.fspath(savedir), subfolder)
        paths = []
        for name in ADAPTER_FILES:
            try:
                paths.append(
                    fetch(
                        filename=f"{subfolder}/{name}",
                        source=source,
                        savedir=target,
                        save_filename=name,
                        **_fetch_kwargs(kwargs),
                    )
                )
            except Exception as err:  # noqa: BLE001 - a missing optional file
                if name != ADAPTER_FILES[-1]:
                    raise OSError(
                        f"Cannot fetch {subfolder}/{name} of the published model {source}: {err}"
                    ) from err
        folder = os.path.dirname(os.fspath(paths[0]))
    load_lora(model.mods.llm, folder, trainable=False)
    model.mods.llm.to(model.device)
    logger.info("LoRA adapter %s loaded onto %s", folder, model.mods.llm.source)
    return folder
