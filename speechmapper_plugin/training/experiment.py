"""The first steps of every recipe: parse the command line (``--key=value`` overrides any YAML
key), load the hparams, hold the experiment folder (one job per folder: ``hold_folder``) and
create it (``start_experiment``), and run the dataset's preparation on the main process
(``prepare_data``).

Authors
-------
speechmapper developers, 2026
"""

import os

import speechbrain as sb
from speechbrain.utils.distributed import ddp_broadcast, if_main_process, run_on_main

from speechmapper_plugin.utils.hparams import load_hparams, parse_arguments
from speechmapper_plugin.utils.locks import FolderLock, FolderLockedError

#: The folders this process holds (a process may run several recipe steps in one folder).
_HELD = {}


def hold_folder(folder, purpose):
    """Hold ``folder`` for this job until the process ends (``utils.locks.FolderLock``).

    Under ``torchrun`` the main process holds it and every process raises the same
    ``FolderLockedError`` (naming the folder and the live holder) when another job has it;
    a dead holder does not keep it. A process that already holds the folder keeps it.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> hold_folder(folder, "training") is hold_folder(folder, "training")
    True
    """
    key = os.path.realpath(folder)
    if key in _HELD:
        return _HELD[key]
    error, lock = None, None
    if if_main_process():
        try:
            lock = FolderLock(folder, purpose).acquire()
        except FolderLockedError as err:
            error = str(err)
    error = ddp_broadcast(error, src=0)
    if error:
        raise FolderLockedError(error)
    _HELD[key] = lock
    return lock


def start_experiment(argv, purpose="training"):
    """Parse the command line, load the hparams (``--key=value`` overrides any key), hold the
    experiment folder (a second job on it stops with an error naming the holder) and create
    it. Returns ``(hparams_file, run_opts, overrides, hparams)``.

    The overrides are checked before anything is loaded or written
    (``utils.hparams.check_overrides``): a value of the wrong type (``--lr=abc``) stops here
    with a message naming the key, the value and the expected type; a repeated ``--key`` takes
    its last value."""
    hparams_file, run_opts, overrides = parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    hparams = load_hparams(hparams_file, overrides)
    hold_folder(hparams["output_folder"], purpose)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    return hparams_file, run_opts, overrides, hparams


def prepare_data(prepare, hparams, splits):
    """Run the dataset's preparation on the main process (a no-op when up to date)."""
    run_on_main(
        prepare,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["manifest_folder"],
            "splits": list(splits),
            "max_duration": hparams["max_duration"],
            "skip_prep": hparams["skip_prep"],
            **(hparams.get("prepare_options") or {}),
        },
    )
