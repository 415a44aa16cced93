"""Checkpoints that are complete or absent (``AtomicCheckpointer``) and the random state that
makes a resumed run train exactly what an uninterrupted one would (``RandomState``).

``AtomicCheckpointer`` is SpeechBrain's ``Checkpointer`` (same folders, files and hooks) with
three changes: a checkpoint is written into a hidden temporary folder and renamed into place
once every file is on disk (a job killed during a save leaves no ``CKPT+...`` folder, only a
temporary one that the next save removes); a save that fails (full disk) says so, names the
previous checkpoint, which stays usable, and leaves nothing half-written; checkpoints are
listed only when complete (``utils.checkpoints``: torn ones left by older runs are skipped
with a warning naming them), and a checkpoint that still fails to load is skipped for the
previous one. Old checkpoints are removed by renaming them away first, so a kill during a
deletion leaves no torn checkpoint either.

Authors
-------
speechmapper developers, 2026
"""

import errno
import logging
import os
import random
import shutil

import torch
from speechbrain.utils.checkpoints import (
    METAFNAME,
    Checkpoint,
    Checkpointer,
    ckpt_recency,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import ddp_barrier, ddp_broadcast, if_main_process

from speechmapper_plugin.utils.checkpoints import FILES_KEY, complete_checkpoints

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written; the previous checkpoints are untouched."""


def _fsync(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _disk_full(err, folder):
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err).lower()
    if "no space left" in text or "disk quota" in text:
        return True
    try:  # torch reports a full disk as "file write failed": look at the free space
        return shutil.disk_usage(folder).free < 64 * 2**20
    except OSError:
        return False


class AtomicCheckpointer(Checkpointer):
    """SpeechBrain's ``Checkpointer`` whose checkpoints are complete or absent.

    Arguments: those of ``speechbrain.utils.checkpoints.Checkpointer``.

    Example
    -------
    >>> import tempfile
    >>> layer = torch.nn.Linear(2, 2)
    >>> ckpt = AtomicCheckpointer(tempfile.mkdtemp(), {"layer": layer})
    >>> saved = ckpt.save_checkpoint(meta={"loss": 1.0})
    >>> [c.path.name for c in ckpt.list_checkpoints()] == [saved.path.name]
    True
    >>> sorted(saved.meta[FILES_KEY])
    ['layer.ckpt']
    """

    def save_checkpoint(self, meta=None, end_of_epoch=True, name=None, verbosity=logging.INFO):
        """Write every recoverable into a temporary folder, then rename it into place.

        Raises ``CheckpointSaveError`` (naming the previous checkpoint, still usable) when a
        file cannot be written; the temporary folder is removed.
        """
        final = tmp = None
        if if_main_process():
            self._remove_leftovers()
            if name is None:
                final = self._new_checkpoint_dirpath()
            else:
                final = self._custom_checkpoint_dirpath(name)
            tmp = final.with_name(TMP_PREFIX + final.name)
            os.makedirs(tmp)
        tmp, final = ddp_broadcast((tmp, final), src=0)
        try:
            paramfiles = {}
            for key, obj in self.recoverables.items():
                paramfiles[key] = tmp / f"{key}.ckpt"
                self._save_one(key, obj, paramfiles[key])
            saved_meta = None
            if if_main_process():
                files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
                saved_meta = self._save_checkpoint_metafile(
                    tmp / METAFNAME, {**(meta or {}), FILES_KEY: files}, end_of_epoch
                )
                for entry in tmp.iterdir():
                    _fsync(entry)
                _fsync(tmp)
                os.rename(tmp, final)
                _fsync(final.parent)
        except Exception as err:
            if tmp is not None and if_main_process():
                shutil.rmtree(tmp, ignore_errors=True)
            raise self._save_error(final, err) from err
        except BaseException:  # interrupted (Ctrl-C): leave no temporary folder behind
            if if_main_process():
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        ddp_barrier()
        if not if_main_process():
            return None
        logger.log(
            verbosity,
            f"Saved an {'end-of-epoch' if end_of_epoch else 'intra-epoch'} checkpoint in {final}",
        )
        return Checkpoint(final, saved_meta, {k: final / p.name for k, p in paramfiles.items()})

    def _save_one(self, key, obj, path):
        if key in self.custom_save_hooks:
            self.custom_save_hooks[key](obj, path)
            return
        from speechbrain.utils.checkpoints import DEFAULT_SAVE_HOOKS, get_default_hook

        hook = get_default_hook(obj, DEFAULT_SAVE_HOOKS)
        if hook is None:
            raise RuntimeError(f"No checkpoint save hook for {key} ({type(obj).__name__}).")
        hook(obj, path)

    def _save_error(self, final, err):
        previous = complete_checkpoints(self.checkpoints_dir)
        newest = max(previous, key=ckpt_recency).path if previous else None
        kept = (
            f"The previous checkpoint {newest} is intact: relaunch the same command to resume "
            "from it."
            if newest
            else "No earlier checkpoint exists: a relaunch starts from the beginning."
        )
        if _disk_full(err, self.checkpoints_dir):
            free = shutil.disk_usage(self.checkpoints_dir).free / 2**20
            return CheckpointSaveError(
                f"The disk holding {self.checkpoints_dir} is full ({free:.0f} MiB free): the "
                f"checkpoint {final} could not be written ({err}) and was removed. Free some "
                f"space (e.g. older runs' `save` folders). {kept}"
            )
        return CheckpointSaveError(
            f"Writing the checkpoint {final} failed ({type(err).__name__}: {err}); it was "
            f"removed. {kept}"
        )

    def _remove_leftovers(self):
        """Temporary / trash folders of a job killed while saving or deleting (the folder
        lock guarantees that no other job is using them)."""
        if not self.checkpoints_dir.is_dir():
            return
        for entry in self.checkpoints_dir.iterdir():
            if entry.name.startswith((TMP_PREFIX, TRASH_PREFIX)) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)

    def list_checkpoints(self):
        """The complete checkpoints (torn ones are skipped with a warning naming them)."""
        return complete_checkpoints(self.checkpoints_dir)

    def recover_if_possible(
        self, importance_key=None, max_key=None, min_key=None, ckpt_predicate=None
    ):
        """Load the chosen checkpoint; one that fails to load is skipped (with a warning
        naming it) for the next one in the same order. Returns the loaded checkpoint."""
        candidates = self.find_checkpoints(
            importance_key=importance_key,
            max_key=max_key,
            min_key=min_key,
            ckpt_predicate=ckpt_predicate,
        )
        if not candidates:
            logger.info("Would load a checkpoint here, but none found yet.")
            return None
        failures = []
        for ckpt in candidates:
            for obj in self.recoverables.values():  # a failed attempt may have set a position
                if hasattr(obj, "_speechbrain_recovery_skip_to"):
                    obj._speechbrain_recovery_skip_to = None
            try:
                self.load_checkpoint(ckpt)
                return ckpt
            except Exception as err:
                if "Error(s) in loading state_dict" in str(err):
                    raise RuntimeError(
                        f"The checkpoint {ckpt.path} does not fit this model (its "
                        "hyper-parameters differ from the run that wrote it):\n"
                        f"{err}"
                    ) from err
                logger.warning(
                    "Checkpoint %s could not be loaded (%s: %s): it is skipped.",
                    ckpt.path,
                    type(err).__name__,
                    err,
                )
                failures.append(f"{ckpt.path.name}: {type(err).__name__}: {err}")
        raise RuntimeError(
            f"None of the {len(candidates)} checkpoints in {self.checkpoints_dir} could be "
            "loaded:\n" + "\n".join(failures)
        )

    def delete_checkpoints(
        self,
        *,
        num_to_keep=1,
        min_keys=None,
        max_keys=None,
        importance_keys=(ckpt_recency,),
        ckpt_predicate=None,
        verbosity=logging.INFO,
    ):
        """Delete the least important checkpoints (as SpeechBrain's), each renamed away
        before it is removed, so that a kill never leaves part of one."""
        if num_to_keep < 0:
            raise ValueError("Number of checkpoints to keep must be positive.")
        orders = [{"min_key": key} for key in min_keys or []]
        orders += [{"max_key": key} for key in max_keys or []]
        orders += [{"importance_key": key} for key in importance_keys]
        candidates, keep = set(), set()
        for order in orders:
            ranked = self.find_checkpoints(ckpt_predicate=ckpt_predicate, **order)
            candidates.update(ranked)
            keep.update(ranked[:num_to_keep])
        ddp_barrier()
        if if_main_process():
            for ckpt in candidates - keep:
                trash = ckpt.path.with_name(TRASH_PREFIX + ckpt.path.name)
                os.rename(ckpt.path, trash)
                shutil.rmtree(trash, ignore_errors=True)
                logger.log(verbosity, f"Deleted checkpoint in {ckpt.path}")
        ddp_barrier()


def _bytes(tensor):
    return tensor.cpu().numpy().tobytes()


def _tensor(data):
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _capture():
    """This process's generator states, as plain Python values (picklable everywhere)."""
    numpy_state = None
    try:
        import numpy as np

        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        numpy_state = [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]
    except ImportError:
        pass
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return {
        "python": random.getstate(),
        "numpy": numpy_state,
        "torch": _bytes(torch.get_rng_state()),
        "cuda": [_bytes(state) for state in cuda],
    }


def _restore(state):
    random.setstate(_tuples(state["python"]))
    if state.get("numpy") is not None:
        import numpy as np

        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(_tensor(state["torch"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_tensor(s) for s in state["cuda"]])


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


class RandomState:
    """The random generators of every process (Python, NumPy, torch CPU and CUDA) as a
    recoverable: dropout after a resume draws what it would have drawn without the
    interruption. Under ``torchrun`` each process saves and restores its own state.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "random_state.ckpt")
    >>> state = RandomState(); state.save(path)
    >>> a = torch.rand(3); state.load(path); torch.equal(a, torch.rand(3))
    True
    """

    @mark_as_saver
    def save(self, path):
        """Gather every process's state; the main process writes them."""
        states = [_capture()]
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            states = [None] * dist.get_world_size()
            dist.all_gather_object(states, _capture())
        if if_main_process():
            torch.save({"states": states}, path)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restore this process's state (rank ``r`` takes the ``r``-th saved one)."""
        del end_of_epoch
        states = torch.load(path, weights_only=True)["states"]
        dist = torch.distributed
        distributed = dist.is_available() and dist.is_initialized()
        rank = dist.get_rank() if distributed else 0
        world = dist.get_world_size() if distributed else 1
        if len(states) != world:
            logger.warning(
                "The checkpoint's random state was saved by %d process(es), this run has %d: "
                "dropout draws differ from an uninterrupted run.",
                len(states),
                world,
            )
        _restore(states[rank % len(states)])


register_checkpoint_hooks(RandomState, save_on_main_only=False)
