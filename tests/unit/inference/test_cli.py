"""Tests of the ``speechmapper`` console command (speechmapper_plugin.inference.cli), run in-process.

The tiny training folders come from ``test_inference.build_tiny_setup`` (fabricated the way
the recipes write them, random-init projector, tiny LLM).
"""

import configparser
import os
import shutil

import pytest

from speechmapper_plugin.inference import cli
from speechmapper_plugin.inference.pretrained import SpeechMapperLLM

from .test_pretrained import MAX_NEW_TOKENS, build_tiny_setup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_setup(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def published(tiny):
    out = os.path.join(tiny["root"], "published")
    status = cli.main(
        [
            "export",
            tiny["stage1"],
            out,
            "--set",
            "llm_dtype=float32",
            "--set",
            f"max_new_tokens={MAX_NEW_TOKENS}",
        ]
    )
    assert status == 0
    return out


@pytest.fixture(scope="module")
def model(published):
    return SpeechMapperLLM.from_hparams(source=published, run_opts={"device": "cpu"})


def run(argv, capsys):
    if argv[0] in ("transcribe", "translate", "ask") and "--device" not in argv:
        argv = [*argv, "--device", "cpu"]  # same device as the `model` fixture
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_console_script_is_declared():
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    scripts = config["options.entry_points"]["console_scripts"].split("\n")
    assert "speechmapper = speechmapper_plugin.inference.cli:main" in [s.strip() for s in scripts]


def test_export_writes_a_loadable_folder(tiny, published, capsys):
    with open(os.path.join(published, "hyperparams.yaml"), encoding="utf-8") as f:
        text = f.read()
    assert "\nllm_dtype: float32\n" in text and f"\nmax_new_tokens: {MAX_NEW_TOKENS}\n" in text
    assert os.path.isfile(os.path.join(published, "projector.safetensors"))
    out = os.path.join(tiny["root"], "again")
    status, stdout, _ = run(["export", tiny["stage1"], out], capsys)
    assert status == 0 and stdout.strip() == out


def test_transcribe_prints_one_line_per_file(tiny, published, model, capsys):
    wavs = tiny["wavs"]
    status, out, _ = run(["transcribe", *wavs, "--model", published, "--batch-size", "2"], capsys)
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == len(wavs)
    for path, line in zip(wavs, lines):
        name, text = line.split("\t")
        assert name == path
        assert text == " ".join(model.transcribe_file(path).split())


def test_translate_and_ask(tiny, published, model, capsys):
    wav = tiny["wavs"][1]
    status, out, _ = run(["translate", wav, "--model", published, "--lang", "de"], capsys)
    assert status == 0 and out == f"{wav}\t{' '.join(model.translate_file(wav, 'de').split())}\n"
    status, out, _ = run(["ask", wav, "--model", published, "--question", "Who?"], capsys)
    assert status == 0 and out == f"{wav}\t{' '.join(model.ask_file(wav, 'Who?').split())}\n"


def test_training_folder_is_exported_on_the_fly(tiny, tmp_path, capsys):
    wav = tiny["wavs"][0]
    savedir = str(tmp_path / "pub")
    argv = ["transcribe", wav, "--model", tiny["stage2"], "--savedir", savedir]
    status, out, _ = run([*argv, "--max-new-tokens", "3", "--device", "cpu"], capsys)
    assert status == 0 and out.startswith(f"{wav}\t") and out.count("\n") == 1
    assert os.path.isfile(os.path.join(savedir, "projector.safetensors"))


def test_missing_audio_file_exits_2(tiny, published, capsys):
    missing = os.path.join(tiny["root"], "missing.wav")
    status, out, err = run(["transcribe", tiny["wavs"][0], missing, "--model", published], capsys)
    assert status == 2 and out == ""
    assert f"audio file not found: {missing}" in err


def test_unreadable_audio_file_exits_2(published, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    status, out, err = run(["transcribe", str(bad), "--model", published], capsys)
    assert status == 2 and out == "" and "Cannot decode audio file" in err and "bad.wav" in err


def test_unknown_language_lists_supported_ones(tiny, published, capsys):
    argv = ["translate", tiny["wavs"][0], "--model", published, "--lang", "xx"]
    status, out, err = run(argv, capsys)
    assert status == 2 and out == ""
    assert "'xx'; supported: ['de', 'es', 'fr', 'it', 'zh']" in err


def test_published_folder_without_projector_exits_2(tiny, published, tmp_path, capsys):
    folder = tmp_path / "incomplete"
    folder.mkdir()
    shutil.copy(os.path.join(published, "hyperparams.yaml"), folder)
    status, out, err = run(["transcribe", tiny["wavs"][0], "--model", str(folder)], capsys)
    assert status == 2 and out == "" and "has no projector.safetensors" in err


def test_bad_export_and_usage_exit_2(tiny, tmp_path, capsys):
    status, _, err = run(
        ["export", tiny["stage1"], str(tmp_path / "x"), "--set", "nokey=1"], capsys
    )
    assert status == 2 and "'nokey' is not a top-level key" in err
    status, _, err = run(["export", tiny["stage1"], str(tmp_path / "y"), "--set", "oops"], capsys)
    assert status == 2 and "KEY=VALUE" in err
    status, _, err = run(["transcribe", tiny["wavs"][0]], capsys)  # no --model
    assert status == 2 and "--model" in err


def test_report_gets_the_remaining_arguments(monkeypatch, tmp_path, capsys):
    from speechmapper_plugin.evaluation import report

    seen = []
    monkeypatch.setattr(report, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["report", "results/", "--decimals", "2", "-v"]) == 0
    assert seen == [["results/", "--decimals", "2", "-v"]]
    monkeypatch.undo()
    status, _, err = run(["report", str(tmp_path / "none")], capsys)
    assert status == 2 and "none" in err
