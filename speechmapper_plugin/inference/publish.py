"""``speechmapper push FOLDER REPO_ID``: uploads a published model folder to the Hugging Face
hub with ``huggingface_hub.upload_folder``, after checking that it is self-contained (no local
model path, safetensors weights, a model card that ``huggingface_hub`` parses).

Authors
-------
speechmapper developers, 2026
"""

import json
import logging
import os

from speechmapper_plugin.inference.folders import (
    ADAPTER_FOLDER,
    EXPORT_INFO,
    HPARAMS_FILE,
    MODEL_CARD,
    WEIGHTS_FILE,
    _has_top_level_key,
    _plain,
    _read_yaml,
    is_local_path,
)
from speechmapper_plugin.utils.files import atomic_write_text

logger = logging.getLogger(__name__)


#: Files of a published folder that stay local (``export.json`` holds local paths).
NOT_UPLOADED = [EXPORT_INFO, "*.tmp*", ".*"]


# Keys of hyperparams.yaml that must not hold a path of this machine.
_PORTABLE_KEYS = ("llm_source", "sfm_source", "hub_cache_dir")


def check_publishable(folder):
    """Checks that a published folder can be uploaded as a self-contained hub model.

    Arguments
    ---------
    folder : str
        A folder written by ``export_model``.

    Returns
    -------
    huggingface_hub.ModelCard
        The folder's model card, as ``huggingface_hub`` parses it.

    Raises
    ------
    FileNotFoundError
        A file of the published model is missing.
    ValueError
        ``hyperparams.yaml`` names a local path (the message says how to re-export), or the
        model card is not valid hub metadata.
    """
    from huggingface_hub import ModelCard

    hparams = os.path.join(folder, HPARAMS_FILE)
    if not os.path.isfile(hparams) or not _has_top_level_key(hparams, "pretrainer"):
        raise FileNotFoundError(
            f"{folder} is not a published model folder (no {HPARAMS_FILE} with a pretrainer): "
            "make one with `speechmapper export TRAIN_FOLDER OUT_FOLDER`."
        )
    for name in (WEIGHTS_FILE, MODEL_CARD):
        if not os.path.isfile(os.path.join(folder, name)):
            raise FileNotFoundError(
                f"{folder} has no {name}: re-export it with `speechmapper export` (models "
                "exported by earlier versions have projector.ckpt and no model card)."
            )
    tree = _read_yaml(hparams)
    local = {key: _plain(tree[key], key) for key in _PORTABLE_KEYS if tree.get(key) is not None}
    local = {key: value for key, value in local.items() if is_local_path(value)}
    if local:
        sets = " ".join(
            f"--set {key}={'null' if key == 'hub_cache_dir' else '<hub id>'}" for key in local
        )
        raise ValueError(
            f"{hparams} names local paths that do not exist on other machines: "
            + ", ".join(f"{key}={value}" for key, value in local.items())
            + f". Re-export with `speechmapper export {folder} {folder} {sets}`."
        )
    if tree.get("lora_adapter") and not os.path.isfile(
        os.path.join(folder, ADAPTER_FOLDER, "adapter_model.safetensors")
    ):
        raise FileNotFoundError(f"{folder} names a LoRA adapter but has no {ADAPTER_FOLDER}/.")
    try:
        card = ModelCard.load(os.path.join(folder, MODEL_CARD))
    except Exception as err:  # huggingface_hub raises ValueError and YAML errors
        raise ValueError(f"{folder}/{MODEL_CARD} is not a valid model card: {err}") from err
    if card.data.library_name != "speechbrain" or not card.data.base_model:
        raise ValueError(
            f"{folder}/{MODEL_CARD} lacks library_name: speechbrain or base_model: re-export "
            "the folder with `speechmapper export`."
        )
    return card


def _point_card_to(folder, repo_id):
    """Replaces the usage snippet's repository (chosen at export) by ``repo_id``."""
    info_path = os.path.join(folder, EXPORT_INFO)
    if not os.path.isfile(info_path):
        return
    with open(info_path, encoding="utf-8") as f:
        old = ((json.load(f) or {}).get("model_card") or {}).get("repo_id")
    if not old or old == repo_id:
        return
    path = os.path.join(folder, MODEL_CARD)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    new = text.replace(f'source="{old}"', f'source="{repo_id}"')
    new = new.replace(f"--model {old}\n", f"--model {repo_id}\n")
    if new != text:
        atomic_write_text(path, new)


def push_model(folder, repo_id, private=False, token=None, revision=None, commit_message=None):
    """Uploads a published model folder to a hub model repository.

    The folder is checked first (:func:`check_publishable`); the usage snippet of its card
    is pointed at ``repo_id``; the repository is created if needed; everything but
    :data:`NOT_UPLOADED` is uploaded in one commit with ``huggingface_hub.upload_folder``.

    Arguments
    ---------
    folder : str
        The published folder.
    repo_id : str
        ``namespace/name`` of the model repository.
    private : bool
        Create the repository as private.
    token : str, optional
        A hub token (default: the logged-in user's, ``huggingface-cli login``).
    revision : str, optional
        The branch to push to.
    commit_message : str, optional
        Default: "Upload <name> (speechmapper export)".

    Returns
    -------
    object
        What ``upload_folder`` returns (the commit information).
    """
    import huggingface_hub

    folder = os.fspath(folder)
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or repo_id.startswith("/"):
        raise ValueError(f"REPO_ID must be 'namespace/name', got {repo_id!r}.")
    check_publishable(folder)
    _point_card_to(folder, repo_id)
    huggingface_hub.create_repo(
        repo_id, token=token, private=private, repo_type="model", exist_ok=True
    )
    return huggingface_hub.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        repo_type="model",
        revision=revision,
        token=token,
        commit_message=commit_message or f"Upload {os.path.basename(folder)} (speechmapper export)",
        ignore_patterns=NOT_UPLOADED,
    )
