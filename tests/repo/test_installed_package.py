"""The installed package works outside a checkout: the wheel is built, unpacked into a
temporary folder, and from another working directory with only that folder on the path (no
repository), the tiny model is exported, reloaded and transcribes exactly as in-process."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from speechmapper_plugin.inference.pretrained import SpeechMapperLLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


SCRIPT = """
import json, os, sys
import speechmapper_plugin
from speechmapper_plugin.inference import cli
from speechmapper_plugin.inference.pretrained import SpeechMapperLLM, load_model

stage1, out, wav = sys.argv[1:4]
assert cli.main(["export", stage1, out, "--set", "llm_dtype=float32"]) == 0
model = SpeechMapperLLM.from_hparams(
    source=out, overrides={"max_new_tokens": 8}, run_opts={"device": "cpu"}
)
text = model.transcribe_file(wav)
on_the_fly = load_model(  # from_training_folder: exported on the fly
    stage1,
    savedir=out + "_2",
    overrides={"llm_dtype": "float32", "max_new_tokens": 8},
    run_opts={"device": "cpu"},
)
assert on_the_fly.transcribe_file(wav) == text
print(json.dumps({"package": speechmapper_plugin.__file__, "text": text}))
"""


def _build_wheel(tmp_path):
    """The wheel of a copy of the repository's packaging files (the checkout stays clean)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    shutil.copytree(
        os.path.join(ROOT, "speechmapper_plugin"),
        src / "speechmapper_plugin",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["--no-index", str(src), "-w", str(wheels)],
        check=True,
        capture_output=True,
        cwd=str(tmp_path),
    )
    (wheel,) = wheels.glob("speechmapper_plugin-*.whl")
    return wheel


def test_wheel_exports_and_reloads_the_tiny_model_outside_the_checkout(tmp_path):
    from tests.unit.inference.test_pretrained import build_tiny_setup

    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "speechmapper_plugin/inference/inference.yaml" in names
        installed = tmp_path / "site"
        archive.extractall(installed)
    tiny = build_tiny_setup(tmp_path / "tiny")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "published"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(installed), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, tiny["stage1"], str(out), tiny["wavs"][0]],
        cwd=str(elsewhere),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["package"].startswith(str(installed))  # the wheel's copy, not the checkout
    expected = SpeechMapperLLM.from_hparams(
        source=str(out), overrides={"max_new_tokens": 8}, run_opts={"device": "cpu"}
    ).transcribe_file(tiny["wavs"][0])
    assert report["text"] == expected


@pytest.mark.parametrize("key", ["install_requires", "package_data"])
def test_setup_cfg_declares_what_the_package_needs(key):
    import configparser

    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    if key == "package_data":
        assert "inference/*.yaml" in config["options.package_data"]["speechmapper_plugin"]
    else:
        requires = config["options"]["install_requires"]
        assert "transformers>=4.56" in requires  # from_pretrained(dtype=...)
        assert "tensorboard" in requires and "tqdm" in requires
        assert "wandb" not in requires and "wandb" in config["options.extras_require"]["wandb"]
