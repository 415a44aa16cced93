"""The first steps of every recipe: parse the command line (``--key=value`` overrides any YAML
key), load the hparams, create the experiment folder (``start_experiment``) and run the
dataset's preparation on the main process (``prepare_data``).

Authors
-------
speechmapper developers, 2026
"""

import speechbrain as sb
from speechbrain.utils.distributed import run_on_main

from speechmapper_plugin.utils.hparams import load_hparams, parse_arguments


def start_experiment(argv):
    """Parse the command line, load the hparams (``--key=value`` overrides any key) and
    create the experiment folder. Returns ``(hparams_file, run_opts, overrides, hparams)``.

    The overrides are checked before anything is loaded or written
    (``utils.hparams.check_overrides``): a value of the wrong type (``--lr=abc``) stops here
    with a message naming the key, the value and the expected type; a repeated ``--key`` takes
    its last value."""
    hparams_file, run_opts, overrides = parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    hparams = load_hparams(hparams_file, overrides)
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
