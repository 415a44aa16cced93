"""What the end-to-end recipe tests share: running a recipe script in-process exactly as a
user would, and the tiny preset's command-line arguments."""

import os
import runpy
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRESET = os.path.join(ROOT, "hparams", "tiny.yaml")
RECIPE = os.path.join(ROOT, "recipes", "LibriSpeech")
sys.path.insert(0, RECIPE)

from speechmapper_plugin.tiny.preset import preset_overrides  # noqa: E402


def run_recipe(script, hparams, args, recipe="LibriSpeech"):
    """Run a recipe script in-process, as `python recipes/<recipe>/<script> hparams/<hparams>
    args` from the repository root (the recipe folder is on sys.path, as for a script)."""
    folder = os.path.join(ROOT, "recipes", recipe)
    argv, cwd, path = sys.argv, os.getcwd(), list(sys.path)
    sys.argv = [os.path.join(folder, script), os.path.join(ROOT, "hparams", hparams), *args]
    sys.path.insert(0, folder)
    os.chdir(ROOT)
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        sys.argv, sys.path[:] = argv, path
        os.chdir(cwd)


def free_port():
    """A free TCP port on this machine (torchrun's master port)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_torchrun(script, hparams, args, recipe="LibriSpeech", nproc=2, debug=True):
    """Run a recipe under `torchrun --nproc_per_node=<nproc>` on CPU with the gloo backend
    (with SpeechBrain's debug flags, 2 batches and 1 epoch, when ``debug``); assert that it
    exits with 0 and return the completed process."""
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        f"--master_port={free_port()}",
        os.path.join(ROOT, "recipes", recipe, script),
        os.path.join(ROOT, "hparams", hparams),
        *args,
        "--distributed_backend=gloo",
        "--device=cpu",
    ]
    if debug:
        cmd += ["--debug", "--debug_batches=2", "--debug_epochs=1"]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_batch_log(folder):
    """The batch logs (``batch_log: True``) of a run: rank -> (micro-batch records, parameter
    digest per optimizer step)."""
    import json

    logs = {}
    for name in sorted(os.listdir(os.path.join(folder, "batch_log"))):
        with open(os.path.join(folder, "batch_log", name), encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        rank = int(name[len("rank") : -len(".jsonl")])
        logs[rank] = (
            [r for r in records if "ids" in r],
            {r["step"]: r["params"] for r in records if "params" in r},
        )
    return logs


def ids_per_step(folder):
    """Optimizer step -> sorted utterance IDs trained in it, over all processes."""
    steps = {}
    for micro, _ in read_batch_log(folder).values():
        for record in micro:
            steps.setdefault(record["step"], []).extend(record["ids"])
    return {step: sorted(ids) for step, ids in steps.items()}


def newest_checkpoint(save_folder):
    """The newest complete checkpoint folder of a ``save`` folder."""
    from speechmapper_plugin.utils.checkpoints import complete_checkpoints

    return max(complete_checkpoints(save_folder), key=lambda c: c.meta["unixtime"]).path


def stage_args(tiny, stage, **extra):
    """Tiny-preset arguments of stage 1 / stage 2 (sections projector, both_stages, stage)."""
    return preset_overrides(
        PRESET,
        ["projector", "both_stages", stage],
        llm_source=tiny["llm"],
        **tiny["common"],
        **extra,
    )
