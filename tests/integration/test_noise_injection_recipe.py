"""End-to-end test of recipes/LibriSpeech/noise_injection.py (paper App. A.3, Algorithm 1,
Table 6) on the tiny preset: the mini-corpus test transcripts, perturbed at each degree,
decoded by a tiny LM through the repeat prompt; result files, EET, Table 6, resume."""

import json

import pytest
from recipe_runs import PRESET, run_recipe

from speechmapper_plugin.data.prompts import (
    NOISE_INJECTION_ASSISTANT_PREFIX,
    NOISE_INJECTION_PROMPT,
)
from speechmapper_plugin.evaluation.noise_injection import (
    embedding_error_threshold,
    llm_label,
    system_label,
)
from speechmapper_plugin.evaluation.report import main as report
from speechmapper_plugin.tiny.chat_lm import shipped_chat_lm
from speechmapper_plugin.tiny.preset import preset_overrides

TABLE6 = [0.0, 1e-1, 1e-2, 1e-3, 1e-4]


@pytest.fixture(scope="module")
def trained_tiny_lm():
    """The LM whose WER must rise with the noise degree: the project's trained tiny chat LM
    (``tiny.chat_lm``, shipped as package data), trained to repeat the text in its speech
    slot (issue 13, point 1)."""
    return {"folder": str(shipped_chat_lm())}


def noise_args(tiny, llm, output_folder, **extra):
    return preset_overrides(
        PRESET,
        ["noise_injection"],
        llm_source=llm,
        output_folder=str(output_folder),
        **tiny["common"],
        **extra,
    )


def read_results(folder):
    results = {}
    for path in sorted((folder / "results").glob("*.json")):
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
        results[result["decoding"]["noise_degree"]] = result
    return results


@pytest.fixture(scope="module")
def noise_run(tiny, trained_tiny_lm):
    """One run of the recipe with Algorithm 1 (per dimension) at the degrees of Table 6."""
    out = tiny["root"] / "noise_per_dimension"
    run_recipe(
        "noise_injection.py",
        "noise_injection.yaml",
        noise_args(tiny, trained_tiny_lm["folder"], out),
    )
    return out, trained_tiny_lm


def test_one_result_per_degree_eet_and_table6(noise_run):
    out, lm = noise_run
    results = read_results(out)
    assert sorted(results) == sorted(TABLE6)
    label = llm_label(lm["folder"])
    references = None
    for degree, result in results.items():
        assert result["system"] == system_label(label, degree, "per_dimension")
        assert (result["task"], result["dataset"], result["split"]) == (
            "asr",
            "LibriSpeech",
            "test-clean",
        )
        assert result["num_utterances"] == 8 and result["llm"] == lm["folder"]
        decoding = result["decoding"]
        assert decoding["prompt"] == NOISE_INJECTION_PROMPT
        assert decoding["assistant_prefix"] == NOISE_INJECTION_ASSISTANT_PREFIX
        assert decoding["noise_mode"] == "per_dimension" and decoding["eet_margin"] == 1.0
        refs = {o["id"]: o["reference"] for o in result["outputs"]}
        assert references in (None, refs)  # every degree scores the same transcripts
        references = refs
    assert all(ref and ref == ref.lower() for ref in references.values())
    # the noise reaches the LLM: the largest degree changes what it writes
    clean = [o["hypothesis"] for o in results[0.0]["outputs"]]
    assert [o["hypothesis"] for o in results[1e-1]["outputs"]] != clean
    with open(out / "eet.json", encoding="utf-8") as f:
        eet = json.load(f)["splits"]["test-clean"]
    wers = {degree: result["metrics"]["wer"] for degree, result in results.items()}
    assert eet["eet"] == embedding_error_threshold(wers, 1.0)["eet"]
    assert eet["wer"]["1e-3"] == wers[1e-3]
    table = (out / "noise_table.md").read_text(encoding="utf-8")
    row = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "per dimension"
    assert cells[2:7] == [f"{wers[d]:.1f}" for d in TABLE6]


def test_clean_degree_decodes_the_transcript_embeddings(noise_run):
    """Degree 0 is exactly the transcript's token embeddings in the speech slot of the repeat
    prompt, checked against a decoding through the public FrozenLLM API."""
    from speechmapper_plugin.models.frozen_llm import FrozenLLM

    out, lm = noise_run
    result = read_results(out)[0.0]
    llm = FrozenLLM(lm["folder"], dtype="float32")
    table = llm.embedding_table()
    ids = table.encode([o["reference"] for o in result["outputs"]])
    length = max(len(seq) for seq in ids)
    speech = table.targets(ids, length)
    lens = speech.new_tensor([len(seq) / length for seq in ids])
    hyps = llm.generate(
        speech,
        lens,
        NOISE_INJECTION_PROMPT,
        max_new_tokens=40,
        assistant_prefix=NOISE_INJECTION_ASSISTANT_PREFIX,
    )
    assert hyps == [o["hypothesis"] for o in result["outputs"]]


def test_wer_rises_with_the_noise_degree(noise_run):
    out, lm = noise_run
    wers = {degree: result["metrics"]["wer"] for degree, result in read_results(out).items()}
    ordered = [wers[d] for d in sorted(wers)]  # no noise, 1e-4, 1e-3, 1e-2, 1e-1
    assert wers[0.0] <= 50.0, f"the LM does not repeat clean text: {wers}"
    assert wers[1e-1] >= wers[0.0] + 30.0, wers
    assert all(b >= a - 5.0 for a, b in zip(ordered, ordered[1:])), wers
    eet = embedding_error_threshold(wers, 1.0)
    assert eet["eet"] is not None and not eet["censored"], eet  # a threshold inside the range


def test_per_token_mode_resumes_and_reports_beside_algorithm1(tiny, noise_run, capsys):
    first, lm = noise_run
    out = tiny["root"] / "noise_per_token"
    args = noise_args(tiny, lm["folder"], out, noise_mode="per_token", noise_degrees=[0.0, 0.1])
    run_recipe("noise_injection.py", "noise_injection.yaml", args)
    results = read_results(out)
    assert results[0.1]["system"].endswith("+ noise 1e-1 (per token)")
    # degree 0 is the identity in both modes
    clean = read_results(first)[0.0]["outputs"]
    assert [o["hypothesis"] for o in results[0.0]["outputs"]] == [o["hypothesis"] for o in clean]
    # a second run decodes nothing again; a new margin only changes the EET
    created = {d: r["created"] for d, r in results.items()}
    decoded = (out / "noise_log.txt").read_text().splitlines()  # one line per decoded degree
    assert len(decoded) == 2
    run_recipe("noise_injection.py", "noise_injection.yaml", args + ["--eet_margin=1000.0"])
    again = read_results(out)
    assert {d: r["created"] for d, r in again.items()} == created
    assert (out / "noise_log.txt").read_text().splitlines() == decoded
    assert again[0.1]["decoding"]["eet_margin"] == 1000.0
    with open(out / "eet.json", encoding="utf-8") as f:
        eet = json.load(f)["splits"]["test-clean"]
    assert eet["eet"] == 0.1 and eet["censored"]
    # other decoding settings: that degree is decoded again
    shorter = [a for a in args if not a.startswith(("--noise_degrees=", "--max_new_tokens="))]
    shorter += ["--noise_degrees=[0.0,0.1]", "--max_new_tokens=20"]
    run_recipe("noise_injection.py", "noise_injection.yaml", shorter)
    assert read_results(out)[0.1]["decoding"]["max_new_tokens"] == 20
    assert len((out / "noise_log.txt").read_text().splitlines()) == 4
    capsys.readouterr()
    report([str(first), str(out), "--layout", "noise"])
    table = capsys.readouterr().out
    label = llm_label(lm["folder"])
    assert f"| {label} | per dimension |" in table and f"| {label} | per token |" in table
