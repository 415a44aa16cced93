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


def run_torchrun(script, hparams, args, recipe="LibriSpeech", nproc=2):
    """Run a recipe under `torchrun --nproc_per_node=<nproc>` on CPU with the gloo backend
    and SpeechBrain's debug flags (2 batches, 1 epoch); assert that it exits with 0."""
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
        "--debug",
        "--debug_batches=2",
        "--debug_epochs=1",
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def stage_args(tiny, stage, **extra):
    """Tiny-preset arguments of stage 1 / stage 2 (sections projector, both_stages, stage)."""
    return preset_overrides(
        PRESET,
        ["projector", "both_stages", stage],
        llm_source=tiny["llm"],
        **tiny["common"],
        **extra,
    )
