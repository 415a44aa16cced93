"""Text LoRA adapters on the LLM (IWSLT25 system, stage B; fused with the projector in
stage C): attach, save as a standard peft adapter, load with a check that it was trained for
this base model.

Adapters are saved with peft's ``save_pretrained`` (``adapter_config.json`` +
``adapter_model.safetensors``), the base model named by the hub id or path the user gave
(``base_model_name``), so ``peft.PeftModel.from_pretrained`` loads them anywhere.
Next to them, ``speechmapper_base.json`` records a fingerprint of the base model (architecture
sizes and a checksum of the first embedding rows); loading an adapter into another base model
is an error that names both, before any training step.

Authors
-------
speechmapper developers, 2026
"""

import hashlib
import json
import logging
import os

import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from speechmapper_plugin.utils.files import write_json

logger = logging.getLogger(__name__)


#: peft's default LoRA targets for Llama-family models (query and value projections).
DEFAULT_TARGET_MODULES = ("q_proj", "v_proj")


_FINGERPRINT_FILE = "speechmapper_base.json"


def base_fingerprint(model):
    """What identifies a base model independently of where it was loaded from.

    Arguments
    ---------
    model : transformers.PreTrainedModel
        The base model (or a peft model wrapping it).

    Returns
    -------
    dict
        ``model_type``, ``hidden_size``, ``num_hidden_layers``, ``vocab_size`` and
        ``embedding_sha1`` (of the first 64 embedding rows in float32).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    rows = base.get_input_embeddings().weight[:64].detach().float().cpu().contiguous()
    return {
        "model_type": getattr(config, "model_type", None),
        "hidden_size": getattr(config, "hidden_size", None),
        "num_hidden_layers": getattr(config, "num_hidden_layers", None),
        "vocab_size": getattr(config, "vocab_size", None),
        "embedding_sha1": hashlib.sha1(rows.numpy().tobytes()).hexdigest(),
    }


def attach_lora(llm, r=8, alpha=16, dropout=0.05, target_modules=DEFAULT_TARGET_MODULES):
    """Wrap ``llm.model`` (a ``FrozenLLM``'s model) with fresh trainable LoRA adapters.

    Arguments
    ---------
    llm : speechmapper_plugin.models.frozen_llm.FrozenLLM
        The LLM; its base weights stay frozen.
    r, alpha, dropout : int, int, float
        LoRA rank, scaling numerator and dropout (the IWSLT25 system: r=8, alpha=16).
    target_modules : sequence of str
        Names of the linear layers that get adapters.

    Returns
    -------
    list of torch.nn.Parameter
        The trainable LoRA parameters.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.models.frozen_llm import FrozenLLM
    >>> from speechmapper_plugin.tiny.llm import build_tiny_llm
    >>> llm = FrozenLLM(build_tiny_llm(tempfile.mkdtemp(), ["the cat sat"]), dtype="float32")
    >>> params = attach_lora(llm, r=4, alpha=8)
    >>> sum(p.numel() for p in params) > 0, all(p.requires_grad for p in params)
    (True, True)
    """
    from peft import LoraConfig, get_peft_model

    if hasattr(llm.model, "peft_config"):
        raise ValueError(f"{llm.source} already carries LoRA adapters.")
    config = LoraConfig(
        r=int(r),
        lora_alpha=int(alpha),
        lora_dropout=float(dropout),
        target_modules=list(target_modules),
        task_type="CAUSAL_LM",
    )
    llm.model = get_peft_model(llm.model, config)
    llm.eval()  # peft returns a model in training mode; training stages call train()
    params = lora_parameters(llm)
    logger.info(
        "LoRA r=%d alpha=%d on %s of %s: %d trainable parameters",
        r,
        alpha,
        list(target_modules),
        llm.source,
        sum(p.numel() for p in params),
    )
    return params


def lora_parameters(llm):
    """The LoRA parameters of ``llm`` (made trainable)."""
    params = [p for n, p in llm.model.named_parameters() if "lora_" in n]
    if not params:
        raise ValueError(f"{llm.source} carries no LoRA adapter (call attach_lora or load_lora).")
    for p in params:
        p.requires_grad_(True)
    # Under DDP (multi-GPU stages B and C) only the adapters need synchronizing: the frozen
    # base weights and buffers are the same on every process, broadcasting them is wasted.
    frozen = [n for n, p in llm.named_parameters() if not p.requires_grad]
    frozen += [n for n, _ in llm.named_buffers()]
    torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
        llm, frozen
    )
    return params


def base_model_name(source):
    """The name a saved adapter gives its base model: the hub id as the user gave it, or
    the absolute path of a local folder (never the hub-cache folder it was loaded from).

    Arguments
    ---------
    source : str or Path
        The ``llm_source`` the user gave (hub id or local folder).

    Returns
    -------
    str

    Example
    -------
    >>> base_model_name("meta-llama/Llama-3.1-8B-Instruct")
    'meta-llama/Llama-3.1-8B-Instruct'
    >>> os.path.isabs(base_model_name("."))
    True
    """
    text = os.fspath(source)
    if os.path.isdir(os.path.expanduser(text)):
        return os.path.abspath(os.path.expanduser(text))
    return text


def save_lora(llm, folder):
    """Save the adapters as a standard peft adapter folder plus the base fingerprint.

    ``adapter_config.json`` names the base model by :func:`base_model_name` of
    ``llm.source`` (the hub id or path the user gave), so that
    ``peft.PeftModel.from_pretrained`` and ``AutoPeftModelForCausalLM`` load it on another
    machine; the weights are ``adapter_model.safetensors``.

    Example
    -------
    >>> import json, tempfile
    >>> from speechmapper_plugin.models.frozen_llm import FrozenLLM
    >>> from speechmapper_plugin.tiny.llm import build_tiny_llm
    >>> source = build_tiny_llm(tempfile.mkdtemp(), ["the cat sat"])
    >>> llm = FrozenLLM(source, dtype="float32")
    >>> _ = attach_lora(llm, r=2, alpha=4)
    >>> folder = tempfile.mkdtemp()
    >>> save_lora(llm, folder)
    >>> config = json.load(open(os.path.join(folder, "adapter_config.json")))
    >>> config["base_model_name_or_path"] == os.path.abspath(source)
    True
    """
    if not hasattr(llm.model, "save_pretrained") or not hasattr(llm.model, "peft_config"):
        raise ValueError(f"{llm.source} carries no LoRA adapter to save.")
    os.makedirs(folder, exist_ok=True)
    name = base_model_name(llm.source)
    for config in llm.model.peft_config.values():
        config.base_model_name_or_path = name
    llm.model.save_pretrained(folder, safe_serialization=True)
    write_json(os.path.join(folder, _FINGERPRINT_FILE), base_fingerprint(llm.model))


def load_lora(llm, folder, trainable=True):
    """Load a saved adapter onto ``llm`` after checking it was trained for this base model.

    Raises
    ------
    FileNotFoundError
        ``folder`` is not a peft adapter folder.
    ValueError
        The adapter was trained for another base model (the message names both).
    """
    from peft import PeftModel

    config_file = os.path.join(folder, "adapter_config.json")
    if not os.path.isfile(config_file):
        raise FileNotFoundError(
            f"{folder!r} is not a LoRA adapter folder (no adapter_config.json): point "
            "--lora_adapter to the `adapter` folder written by the text-LoRA stage."
        )
    with open(config_file, encoding="utf-8") as f:
        trained_for = json.load(f).get("base_model_name_or_path")
    mine = base_fingerprint(llm.model)
    fingerprint_file = os.path.join(folder, _FINGERPRINT_FILE)
    if os.path.isfile(fingerprint_file):
        with open(fingerprint_file, encoding="utf-8") as f:
            theirs = json.load(f)
        diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
        if diff:
            raise ValueError(
                f"The LoRA adapter {folder} was trained for another base model "
                f"({trained_for}) than {llm.source}: they differ in "
                + ", ".join(f"{k} (adapter {a}, LLM {b})" for k, (a, b) in sorted(diff.items()))
                + ". Train the adapter on this LLM, or set --llm_source to its base model."
            )
    else:
        logger.warning(
            "%s has no %s: cannot check that it was trained for %s (it says %s).",
            folder,
            _FINGERPRINT_FILE,
            llm.source,
            trained_for,
        )
    try:
        llm.model = PeftModel.from_pretrained(llm.model, folder, is_trainable=trainable)
        llm.eval()
    except RuntimeError as err:  # size mismatch: another architecture
        raise ValueError(
            f"The LoRA adapter {folder} (trained for {trained_for}) does not fit {llm.source}: "
            f"{err}"
        ) from err
    return lora_parameters(llm) if trainable else []


@register_checkpoint_hooks
class LoraCheckpoint:
    """A SpeechBrain recoverable that saves and restores only the LoRA weights of an LLM
    (never the frozen base weights), so training stages with adapters resume."""

    def __init__(self, llm):
        self.llm = llm

    @mark_as_saver
    def save(self, path):
        """Save the adapter weights to ``path``."""
        from peft import get_peft_model_state_dict

        has_adapters = hasattr(self.llm.model, "peft_config")  # stage A: none (yet)
        torch.save(get_peft_model_state_dict(self.llm.model) if has_adapters else {}, path)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restore the adapter weights from ``path``."""
        from peft import set_peft_model_state_dict

        state = torch.load(path, map_location="cpu")
        if state:
            set_peft_model_state_dict(self.llm.model, state)
