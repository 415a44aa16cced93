"""Loading recipe hyper-parameters with errors that tell the user what to fix.

``hyperpyyaml`` already refuses an override whose key is not in the YAML file; this module
turns that into a message naming the misspelled ``--key`` and the closest existing keys.

Authors
-------
speechmapper developers, 2026
"""

import difflib
import re

import torch
from hyperpyyaml import load_hyperpyyaml


def load_hparams(hparams_file, overrides=None):
    """Load a recipe YAML with command-line overrides.

    Arguments
    ---------
    hparams_file : str
        The YAML file.
    overrides : str or dict, optional
        Overrides as returned by ``speechbrain.parse_arguments``.

    Returns
    -------
    dict
        The loaded hyper-parameters.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "h.yaml")
    >>> _ = open(path, "w").write("lr: 0.1\\nbatch_size: 4\\n")
    >>> load_hparams(path, "lr: 0.5")["lr"]
    0.5
    >>> load_hparams(path, "batch_sise: 8")
    Traceback (most recent call last):
    ...
    KeyError: 'Unknown hyper-parameter --batch_sise (command-line override) for ... Did you mean --batch_size?'
    """
    with open(hparams_file, encoding="utf-8") as fin:
        text = fin.read()
    try:
        return load_hyperpyyaml(text, overrides or {})
    except KeyError as err:
        match = re.search(r"Override '([^']+)' not found in: (\[.*\])", str(err))
        if not match:
            raise
        key = match.group(1)
        known = re.findall(r"'([^']+)'", match.group(2))
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        hint = (
            f" Did you mean {' or '.join('--' + c for c in close)}?"
            if close
            else f" Keys of this file: {', '.join(sorted(known))}."
        )
        raise KeyError(
            f"Unknown hyper-parameter --{key} (command-line override) for {hparams_file}.{hint}"
        ) from None


def resolve_device(run_opts):
    """The device a script should use: ``--device`` if given, else CUDA when available."""
    device = run_opts.get("device") if hasattr(run_opts, "get") else None
    return device or ("cuda:0" if torch.cuda.is_available() else "cpu")
