"""Tests for speechmapper_plugin.evaluation.noise_table (Table 6's layout) and the report's
``--layout noise``."""

import pytest

from speechmapper_plugin.evaluation.noise_injection import system_label
from speechmapper_plugin.evaluation.noise_table import noise_tables
from speechmapper_plugin.evaluation.report import main
from speechmapper_plugin.evaluation.results import make_result, write_result

LLAMA = {0: 1.4, 1e-1: 207.2, 1e-2: 180.0, 1e-3: 1.6, 1e-4: 1.4}


def noise_run(label, degree, wer, mode="per_dimension", seed=1986, margin=1.0, split="test-clean"):
    return make_result(
        system_label(label, degree, mode),
        "LibriSpeech",
        split,
        "asr",
        {"wer": wer, "cer": wer / 2},
        [{"id": "u1", "hypothesis": "h", "reference": "r"}],
        seed=seed,
        llm=f"org/{label}",
        decoding={
            "experiment": "noise_injection",
            "noise_degree": degree,
            "noise_mode": mode,
            "llm_label": label,
            "eet_margin": margin,
        },
    )


def rows(text):
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]


def test_one_row_per_llm_and_mode_degrees_in_table6_order():
    runs = [noise_run("Llama", d, w) for d, w in reversed(list(LLAMA.items()))]
    runs += [noise_run("Llama", d, w + 1, "per_token") for d, w in LLAMA.items()]
    runs += [noise_run("EuroLLM", d, w) for d, w in {0: 3.9, 1e-2: 13.4, 1e-3: 3.8}.items()]
    runs.append(make_result("Stage 2", "LibriSpeech", "test-clean", "asr", {"wer": 5.0}, []))
    header, *body = rows(noise_tables(runs))
    assert header == "| LLM | noise | no noise | 1e-1 | 1e-2 | 1e-3 | 1e-4 | EET |"
    assert body == [
        "| Llama | per dimension | 1.4 | 207.2 | 180.0 | 1.6 | 1.4 | 1e-3 |",
        "| Llama | per token | 2.4 | 208.2 | 181.0 | 2.6 | 2.4 | 1e-3 |",
        "| EuroLLM | per dimension | 3.9 | – | 13.4 | 3.8 | – | 1e-3 |",
    ]


def test_seeds_are_averaged_and_the_eet_uses_the_means():
    runs = [noise_run("Llama", d, w, seed=1) for d, w in LLAMA.items()]
    runs += [
        noise_run("Llama", d, w + (2.0 if d == 1e-3 else 0.0), seed=2) for d, w in LLAMA.items()
    ]
    text = noise_tables(runs)
    (row,) = rows(text)[1:]
    assert "| 2.6 ± 1.4 |" in row  # 1e-3: mean of 1.6 and 3.6
    assert row.endswith("| 1e-4 |")  # the mean 2.6 is more than 1 point above 1.4
    assert rows(noise_tables(runs, eet_margin=2.0))[1].endswith("| 1e-3 |")
    assert "over up to 2 seeds" in text


def test_one_table_per_split_and_margin_conflicts_are_errors():
    runs = [noise_run("Llama", d, w) for d, w in LLAMA.items()]
    runs += [noise_run("Llama", d, w, split="test-other") for d, w in LLAMA.items()]
    text = noise_tables(runs)
    assert "LibriSpeech test-clean WER" in text and "LibriSpeech test-other WER" in text
    mixed = [noise_run("Llama", d, w, margin=1.0 if d else 5.0) for d, w in LLAMA.items()]
    with pytest.raises(ValueError, match="different eet_margin values.*--eet-margin"):
        noise_tables(mixed)
    assert rows(noise_tables(mixed, eet_margin=5.0))[1].endswith("| 1e-3 |")


def test_no_noise_result_is_an_error():
    with pytest.raises(ValueError, match="no noise-injection result.*noise_injection.py"):
        noise_tables([make_result("S", "LibriSpeech", "test-clean", "asr", {"wer": 5.0}, [])])


def test_report_layout_noise(tmp_path, capsys):
    for degree, wer in LLAMA.items():
        write_result(tmp_path / "results", noise_run("Llama-3.1-8B-Instruct", degree, wer))
    main([str(tmp_path / "results"), "--layout", "noise", "--output", str(tmp_path / "t6.md")])
    printed = capsys.readouterr().out
    assert (
        "| Llama-3.1-8B-Instruct | per dimension | 1.4 | 207.2 | 180.0 | 1.6 | 1.4 | 1e-3 |"
        in printed
    )
    assert (tmp_path / "t6.md").read_text() == printed
    main([str(tmp_path / "results"), "--layout", "noise", "--eet-margin", "0.1"])
    assert "| 1.4 | 1e-4 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(tmp_path / "results"), "--eet-margin", "0.1"])  # papers layout
    assert "--eet-margin applies to --layout noise only" in capsys.readouterr().err
