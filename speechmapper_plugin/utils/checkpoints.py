"""Checkpoint folders that are used only when complete: a torn checkpoint (a job killed or out
of disk during a save: a missing or truncated ``CKPT.yaml``, an empty or cut-short
``projector.ckpt``) is skipped with a warning that names it, never loaded.

A SpeechBrain ``save`` folder holds one ``CKPT+...`` folder per checkpoint. Those written by
``training.checkpoints.AtomicCheckpointer`` appear complete or not at all and record the size
of every file (``files`` in ``CKPT.yaml``); for those written otherwise (older runs, plain
SpeechBrain), every ``*.ckpt`` file is checked: not empty and, for a torch archive, with its
zip directory intact (an archive cut short has none). The checks read no tensor data.

Authors
-------
speechmapper developers, 2026
"""

import logging
import os
import pathlib
import zipfile

import yaml

logger = logging.getLogger(__name__)

META_FILE = "CKPT.yaml"
CKPT_PREFIX = "CKPT"
#: ``CKPT.yaml`` key holding ``{file name: bytes}`` of every file of the checkpoint.
FILES_KEY = "files"

_warned = set()


def file_problem(path):
    """Why a saved checkpoint file cannot be read, or None: it is missing, empty, or a torch
    archive (zip) cut short.

    Example
    -------
    >>> import tempfile, torch
    >>> folder = tempfile.mkdtemp()
    >>> good, cut = os.path.join(folder, "good.ckpt"), os.path.join(folder, "cut.ckpt")
    >>> torch.save({"w": torch.zeros(100)}, good)
    >>> with open(good, "rb") as f, open(cut, "wb") as g:
    ...     _ = g.write(f.read()[:300])
    >>> file_problem(good) is None, file_problem(cut)
    (True, 'cut.ckpt is cut short (its torch archive has no directory)')
    """
    name = os.path.basename(path)
    try:
        size = os.path.getsize(path)
        if size == 0:
            return f"{name} is empty"
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        return f"{name} cannot be read ({err.strerror or err})"
    if magic == b"PK\x03\x04":  # a torch (zip) archive: its directory is written last
        try:
            with zipfile.ZipFile(path) as archive:
                archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return f"{name} is cut short (its torch archive has no directory)"
    return None


def torch_save_atomic(obj, path):
    """``torch.save`` through a temporary file renamed into place: ``path`` holds the whole
    object or its previous content, never part of it.

    Example
    -------
    >>> import tempfile, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "projector.ckpt")
    >>> torch_save_atomic({"w": torch.ones(2)}, path); torch.load(path)["w"].tolist()
    [1.0, 1.0]
    """
    import torch

    tmp = f"{path}.tmp{os.getpid()}"
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_meta(folder):
    """The metadata dict of a checkpoint folder's ``CKPT.yaml`` (raises if unreadable)."""
    with open(os.path.join(folder, META_FILE), encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    if not isinstance(meta, dict):
        raise ValueError(f"{META_FILE} holds no metadata")
    return meta


def checkpoint_problem(folder, required=()):
    """Why the checkpoint folder ``folder`` cannot be used (a short sentence), or None when it
    is complete; ``required`` names recoverables that must be in it (e.g. ``"projector"``).

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> checkpoint_problem(folder)
    'CKPT.yaml is missing'
    >>> with open(os.path.join(folder, META_FILE), "w") as f:
    ...     _ = f.write("end-of-epoch: true\\n")
    >>> open(os.path.join(folder, "projector.ckpt"), "wb").close()
    >>> checkpoint_problem(folder)
    'projector.ckpt is empty'
    """
    if not os.path.isfile(os.path.join(folder, META_FILE)):
        return f"{META_FILE} is missing"
    try:
        meta = read_meta(folder)
    except (OSError, ValueError, yaml.YAMLError) as err:
        return f"{META_FILE} cannot be read ({str(err).splitlines()[0]})"
    files = meta.get(FILES_KEY)
    if isinstance(files, dict):
        for name, size in files.items():
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                return f"{name} is missing"
            actual = os.path.getsize(path)
            if actual != size:
                return f"{name} has {actual} bytes where {size} were written"
    for entry in sorted(os.listdir(folder)):
        if entry.endswith(".ckpt"):
            problem = file_problem(os.path.join(folder, entry))
            if problem:
                return problem
    missing = [n for n in required if not os.path.isfile(os.path.join(folder, f"{n}.ckpt"))]
    if missing:
        return f"it holds no {', '.join(f'{n}.ckpt' for n in missing)}"
    return None


def warn_skipped(folder, problem):
    """Log (once per process) that a torn or unreadable checkpoint is skipped."""
    key = (str(folder), problem)
    if key not in _warned:
        _warned.add(key)
        logger.warning(
            "Checkpoint %s is incomplete or unreadable (%s): it is skipped (the job was "
            "probably killed or out of disk while saving it). Delete it once you no longer "
            "need to look at it.",
            folder,
            problem,
        )


def complete_checkpoints(folder, required=()):
    """The complete checkpoints of a ``save`` folder, as SpeechBrain ``Checkpoint`` tuples
    (``path``, ``meta``, ``paramfiles``); torn ones are skipped with a warning naming them.

    Arguments
    ---------
    folder : str or os.PathLike
        The ``save`` folder (``CKPT+...`` sub-folders).
    required : sequence of str
        Recoverables a checkpoint must hold to be listed (e.g. ``("projector",)``); complete
        checkpoints without them are left out silently.

    Returns
    -------
    list of speechbrain.utils.checkpoints.Checkpoint
    """
    from speechbrain.utils.checkpoints import Checkpoint

    folder = pathlib.Path(folder)
    found = []
    if not folder.is_dir():
        return found
    for entry in sorted(folder.iterdir()):
        if not entry.name.startswith(CKPT_PREFIX) or not entry.is_dir():
            continue
        problem = checkpoint_problem(entry)
        if problem:
            warn_skipped(entry, problem)
            continue
        paramfiles = {p.stem: p for p in entry.iterdir() if p.suffix == ".ckpt"}
        if any(name not in paramfiles for name in required):  # another model's checkpoint
            continue
        found.append(Checkpoint(entry, read_meta(entry), paramfiles))
    return found


def best_checkpoint(folder, min_keys=("WER", "loss"), required=()):
    """The complete checkpoint of a ``save`` folder with the lowest value of the first of
    ``min_keys`` that any checkpoint records (stage 1 keeps ``WER``, stage 2 ``loss``), else
    the newest; None when the folder holds no complete checkpoint.

    Example
    -------
    >>> import tempfile, torch
    >>> save = tempfile.mkdtemp()
    >>> for name, wer in (("CKPT+a", 30.0), ("CKPT+b", 20.0), ("CKPT+c", 10.0)):
    ...     os.makedirs(os.path.join(save, name))
    ...     with open(os.path.join(save, name, META_FILE), "w") as f:
    ...         _ = f.write(f"WER: {wer}\\nunixtime: 1\\nend-of-epoch: true\\n")
    ...     torch.save({}, os.path.join(save, name, "projector.ckpt"))
    >>> open(os.path.join(save, "CKPT+c", "projector.ckpt"), "wb").close()  # torn
    >>> best_checkpoint(save, required=("projector",)).path.name
    'CKPT+b'
    """
    checkpoints = complete_checkpoints(folder, required)
    for key in min_keys:
        scored = [c for c in checkpoints if isinstance(c.meta.get(key), (int, float))]
        if scored:
            return min(scored, key=lambda c: (c.meta[key], -c.meta.get("unixtime", 0)))
    if checkpoints:
        return max(checkpoints, key=lambda c: c.meta.get("unixtime", 0))
    return None
