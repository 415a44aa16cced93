"""Where a model's files come from: a local folder used as is, or a Hugging Face hub id
resolved through the local cache (``resolve_source``), with errors that say how to get the
files (``huggingface-cli download`` or a local path) when the hub cannot be reached.

Authors
-------
speechmapper developers, 2026
"""

import json
import os
from pathlib import Path

from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

SAFETENSORS_INDEX = "model.safetensors.index.json"


SAFETENSORS_SINGLE = "model.safetensors"


# Files needed to build the tokenizer (and read the model config) from a hub repository.
TOKENIZER_FILE_PATTERNS = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "*.tiktoken",
]


# Files needed to find the embedding tensor (its shard is fetched separately).
EMBEDDING_FILE_PATTERNS = TOKENIZER_FILE_PATTERNS + [SAFETENSORS_INDEX]


# Files needed for the full model (safetensors only: the `original/` consolidated .pth
# checkpoint of Llama repos and .bin duplicates are never downloaded).
MODEL_FILE_PATTERNS = TOKENIZER_FILE_PATTERNS + ["*.safetensors", SAFETENSORS_INDEX]


IGNORE_PATTERNS = ["original/*"]


def _local_folder(source):
    """Returns ``source`` as a Path if it names an existing local directory, else None."""
    path = Path(source).expanduser()
    return path if path.is_dir() else None


def _looks_like_path(source):
    text = str(source)
    return (
        isinstance(source, os.PathLike)
        or text.startswith(("/", "./", "../", "~", "."))
        or text.count("/") > 1
        or "\\" in text
    )


def resolve_source(source, *, cache_dir=None, revision=None, allow_patterns=None):
    """Returns a local folder holding the model given as a local path or a hub id.

    A local folder is used as is (it must contain ``config.json``). Anything else is taken as
    a Hugging Face hub id and resolved with ``huggingface_hub.snapshot_download``, restricted
    to ``allow_patterns``; the cached snapshot is used offline (``HF_HUB_OFFLINE=1``).

    Arguments
    ---------
    source : str or Path
        A local folder or a hub id such as ``meta-llama/Llama-3.1-8B-Instruct``.
    cache_dir : str or Path, optional
        The hub cache (default: ``HF_HUB_CACHE`` / ``HF_HOME``).
    revision : str, optional
        Hub branch, tag or commit (default: ``main``).
    allow_patterns : list of str, optional
        Files to fetch from the hub (default :data:`MODEL_FILE_PATTERNS`: config, tokenizer
        and safetensors weights).

    Returns
    -------
    Path
        The local folder.

    Raises
    ------
    FileNotFoundError
        A local folder without ``config.json``, or a path that does not exist.
    OSError
        A hub id that is not cached and cannot be downloaded (offline / no network).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text("{}")
    >>> resolve_source(folder) == folder
    True
    """
    local = _local_folder(source)
    if local is not None:
        if not (local / "config.json").is_file():
            raise FileNotFoundError(
                f"Model folder {local} has no config.json: give a Hugging Face model folder "
                "(config.json, tokenizer files, *.safetensors) or a hub id."
            )
        return local
    if Path(str(source)).expanduser().exists():
        raise NotADirectoryError(
            f"{source} is a file: give the model folder (config.json, tokenizer files, "
            "*.safetensors) or a Hugging Face hub id."
        )
    if _looks_like_path(source):
        raise FileNotFoundError(
            f"Model folder {source} does not exist (give an existing local folder or a "
            "Hugging Face hub id such as meta-llama/Llama-3.1-8B-Instruct)."
        )
    repo_id = str(source)
    patterns = MODEL_FILE_PATTERNS if allow_patterns is None else list(allow_patterns)
    try:
        folder = snapshot_download(
            repo_id=repo_id,
            cache_dir=cache_dir,
            revision=revision,
            allow_patterns=patterns,
            ignore_patterns=IGNORE_PATTERNS,
        )
    except HFValidationError as err:
        raise ValueError(
            f"{repo_id!r} is neither an existing local folder nor a valid Hugging Face hub "
            f"model id ({err})."
        ) from err
    except Exception as err:
        error = _hub_error(repo_id, revision, err)
        if error is err:
            raise
        raise error from err
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"The hub snapshot of {repo_id!r} in {folder} has no config.json (incomplete "
            f"download?): run `huggingface-cli download {repo_id}` or pass a local folder path."
        )
    return folder


def _is_connection_error(err):
    if isinstance(err, (LocalEntryNotFoundError, ConnectionError, TimeoutError)):
        return True
    return any(
        "Connection" in cls.__name__ or "Timeout" in cls.__name__ for cls in type(err).__mro__
    )


def _hub_error(repo_id, revision, err, filename=None):
    """Turns a huggingface_hub error into an error saying what to do."""
    what = f"{filename!r} of {repo_id!r}" if filename else repr(repo_id)
    command = f"huggingface-cli download {repo_id}" + (f" {filename}" if filename else "")
    hint = (
        f"Download it first with `{command}` (same HF_HOME or cache_dir), or pass the path "
        "of a local folder holding the model."
    )
    if isinstance(err, GatedRepoError):
        return OSError(
            f"{repo_id!r} is a gated hub repository: accept its license on "
            f"https://huggingface.co/{repo_id} and log in with `huggingface-cli login` "
            f"(or set HF_TOKEN). {err}"
        )
    if isinstance(err, RepositoryNotFoundError):
        return OSError(
            f"{repo_id!r} was not found on the Hugging Face hub (typo, private repository, or "
            f"not logged in) and is not an existing local folder. {err}"
        )
    if isinstance(err, RevisionNotFoundError):
        return OSError(f"Revision {revision!r} of {repo_id!r} does not exist. {err}")
    if _is_connection_error(err):
        return OSError(
            f"Could not get {what}: it is not in the local hub cache and the hub could not be "
            f"reached offline (HF_HUB_OFFLINE=1 or no network). {hint}"
        )
    if isinstance(err, EntryNotFoundError):
        return FileNotFoundError(f"{repo_id!r} has no file {filename!r} on the hub. {err}")
    if isinstance(err, OSError):
        return OSError(f"Could not download {what}: {err}. {hint}")
    return err


def _download_file(repo_id, filename, *, cache_dir=None, revision=None):
    """Fetches one file of a hub repository (from the cache when offline)."""
    try:
        path = hf_hub_download(
            repo_id=repo_id, filename=filename, cache_dir=cache_dir, revision=revision
        )
    except Exception as err:
        error = _hub_error(repo_id, revision, err, filename)
        if error is err:
            raise
        raise error from err
    return Path(path)


def _read_config(folder):
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
