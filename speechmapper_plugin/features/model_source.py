"""The files of an SFM given as a local folder or a Hugging Face hub id, fetched one by one
with messages that say how to get them offline (``ModelNotAvailableError``).

Authors
-------
speechmapper developers, 2026
"""

import contextlib
import os


class ModelNotAvailableError(OSError):
    """A model could not be found locally nor fetched from the Hugging Face Hub."""


def _looks_like_path(source):
    return (
        source.startswith(("/", "./", "../", "~", "."))
        or "\\" in source
        or source.count("/") > 1
        or os.path.isabs(source)
    )


class _ModelSource:
    """Resolves the files of a model given as a local folder or a Hub id."""

    def __init__(self, source, cache_dir=None, revision=None):
        if not isinstance(source, (str, os.PathLike)) or not str(source):
            raise ValueError(f"Model source must be a Hub id or a folder path, got {source!r}.")
        self.source = os.fspath(source)
        self.cache_dir = cache_dir
        self.revision = revision
        expanded = os.path.expanduser(self.source)
        if os.path.isdir(expanded):
            self.local = expanded
            if revision is not None:
                raise ValueError(
                    f"revision={revision!r} only applies to Hub ids, but {self.source!r} is a "
                    "local folder: remove `revision`."
                )
        elif os.path.exists(expanded):
            raise ValueError(
                f"Model source {self.source!r} is a file; pass the folder that holds "
                "config.json and the weights (or a Hub id)."
            )
        elif _looks_like_path(self.source):
            raise FileNotFoundError(
                f"Model folder {self.source!r} does not exist. Pass an existing local folder or "
                "a Hugging Face Hub id such as 'facebook/seamless-m4t-v2-large'."
            )
        else:
            self.local = None

    def _unreachable(self, filename, err):
        from huggingface_hub import constants

        offline = bool(constants.HF_HUB_OFFLINE)
        why = "offline mode is on (HF_HUB_OFFLINE=1)" if offline else "the Hub is unreachable"
        cache = self.cache_dir or constants.HF_HUB_CACHE
        return (
            f"Model {self.source!r} could not be loaded: {filename!r} is not in the local "
            f"Hugging Face cache ({cache}) and {why}. Download the model first on a machine with "
            f"network access, e.g. `huggingface-cli download {self.source}` (into the same cache: "
            f"set HF_HOME/HF_HUB_CACHE accordingly), or pass the path of a local folder holding "
            f"the model (config.json, preprocessor_config.json, *.safetensors) as the source. "
            f"[{type(err).__name__}: {err}]"
        )

    def file(self, filename, required=True):
        """Returns the local path of ``filename`` (downloading it if needed), or ``None``."""
        if self.local is not None:
            path = os.path.join(self.local, filename)
            if os.path.isfile(path):
                return path
            if required:
                raise FileNotFoundError(
                    f"Model folder {self.local!r} has no {filename!r}; it must contain the "
                    "files of a saved Hugging Face model (save_pretrained or a Hub snapshot)."
                )
            return None
        import requests
        from huggingface_hub import errors, hf_hub_download

        try:
            return hf_hub_download(
                self.source, filename, cache_dir=self.cache_dir, revision=self.revision
            )
        except errors.LocalEntryNotFoundError as err:
            if not required:
                return None
            raise ModelNotAvailableError(self._unreachable(filename, err)) from err
        except errors.EntryNotFoundError as err:
            if not required:
                return None
            raise FileNotFoundError(
                f"Hub repository {self.source!r} has no file {filename!r}."
            ) from err
        except errors.RevisionNotFoundError as err:
            raise ModelNotAvailableError(
                f"Revision {self.revision!r} of Hub repository {self.source!r} does not exist."
            ) from err
        except errors.RepositoryNotFoundError as err:
            raise ModelNotAvailableError(
                f"Hub repository {self.source!r} was not found (or it is private/gated: run "
                "`huggingface-cli login` and accept its licence). If it is meant to be a local "
                "folder, that folder does not exist."
            ) from err
        except (errors.OfflineModeIsEnabled, requests.ConnectionError, requests.Timeout) as err:
            raise ModelNotAvailableError(self._unreachable(filename, err)) from err


@contextlib.contextmanager
def _transformers_verbosity_error():
    """Silences transformers' own load reports (we check loading info ourselves)."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
