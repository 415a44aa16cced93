#!/usr/bin/env python3
"""The whole SpeechMapper path on the tiny offline preset, in minutes on a CPU:

    synthesize the mini-corpus -> build the tiny LLM -> prepare + extract features
    -> stage 1 -> stage 2 -> decode the held-out test set -> results table

Each step runs the real recipe script with the overrides of ``hparams/tiny.yaml`` (the
commands are printed, so any step can be re-run by hand); logs go to
``<output_folder>/logs``. Every step resumes: re-running the demo skips finished work.

Usage:
    python recipes/LibriSpeech/run_demo.py [--output_folder results/tiny_demo] [--num_train 4000]

Authors
-------
speechmapper developers, 2026
"""

import argparse
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from speechmapper_plugin.data.prompts import ASR_INSTRUCTION, ZERO_SHOT_ASR, build_prompt  # noqa: E402
from speechmapper_plugin.evaluation.results import load_results  # noqa: E402
from speechmapper_plugin.evaluation.tables import markdown_tables  # noqa: E402
from speechmapper_plugin.tiny.llm import build_tiny_llm  # noqa: E402
from speechmapper_plugin.tiny.minicorpus import build_minicorpus  # noqa: E402
from speechmapper_plugin.tiny.preset import preset_overrides  # noqa: E402
from speechmapper_plugin.utils.text import normalize_text  # noqa: E402

# The tiny tokenizer also learns the prompts' words, so prompts are not spelled out in bytes.
PROMPT_TEXTS = [ZERO_SHOT_ASR, build_prompt(ASR_INSTRUCTION)]


def run_step(name, cmd, log_file):
    """Run one recipe script, its output going to ``log_file``; stop the demo on failure."""
    print(f"    $ {shlex.join(cmd)}", flush=True)
    start = time.time()
    with open(log_file, "a", encoding="utf-8") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    if proc.returncode:
        with open(log_file, encoding="utf-8") as log:
            tail = log.readlines()[-30:]
        sys.exit(
            f"{name} failed (exit {proc.returncode}); last lines of {log_file}:\n" + "".join(tail)
        )
    return time.time() - start


def corpus_texts(data_folder, split="train-clean-100"):
    """Normalized transcripts of a split of the mini-corpus (the tiny LLM's text)."""
    texts = []
    for dirpath, _, files in os.walk(os.path.join(data_folder, "LibriSpeech", split)):
        for name in files:
            if name.endswith(".trans.txt"):
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    texts += [normalize_text(line.split(" ", 1)[1]) for line in f if " " in line]
    return sorted(texts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_folder", default="results/tiny_demo")
    parser.add_argument("--preset", default=os.path.join(ROOT, "hparams", "tiny.yaml"))
    parser.add_argument("--num_train", type=int, default=4000)
    parser.add_argument("--num_valid", type=int, default=200)
    parser.add_argument("--num_test", type=int, default=200)
    parser.add_argument("--vocabulary", default="small", choices=["small", "full"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    out = os.path.abspath(args.output_folder)
    data_folder = os.path.join(out, "minicorpus")
    llm_folder = os.path.join(out, "tiny_llm")
    cache_folder = os.path.join(out, "cache")
    stage1_folder = os.path.join(out, "stage1")
    stage2_folder = os.path.join(out, "stage2")
    logs = os.path.join(out, "logs")
    os.makedirs(logs, exist_ok=True)
    py = sys.executable
    timings = {}
    total_start = time.time()

    print("[1/5] Synthesizing the mini-corpus (eSpeak NG voices, LibriSpeech layout)", flush=True)
    start = time.time()
    corpus = build_minicorpus(
        data_folder,
        num_train=args.num_train,
        num_valid=args.num_valid,
        num_test=args.num_test,
        seed=args.seed,
        jobs=args.jobs,
        vocabulary=args.vocabulary,
    )
    timings["synthesize"] = time.time() - start

    print("[2/5] Building the tiny LLM (sentencepiece tokenizer + Llama architecture)", flush=True)
    start = time.time()
    build_tiny_llm(llm_folder, corpus_texts(data_folder) + PROMPT_TEXTS, seed=args.seed)
    timings["tiny LLM"] = time.time() - start

    common = {"data_folder": data_folder, "cache_folder": cache_folder}
    print("[3/5] Data preparation + feature extraction", flush=True)
    timings["prepare + extract"] = run_step(
        "feature extraction",
        [py, "recipes/LibriSpeech/extract_features.py", "hparams/features.yaml"]
        + preset_overrides(args.preset, ["features"], **common),
        os.path.join(logs, "extract_features.log"),
    )

    print("[4/5] Stage 1: projector vs. the LLM embedding table", flush=True)
    timings["stage 1"] = run_step(
        "stage 1",
        [py, "recipes/LibriSpeech/train_stage1.py", "hparams/stage1.yaml"]
        + preset_overrides(
            args.preset,
            ["projector", "both_stages", "stage1"],
            llm_source=llm_folder,
            output_folder=stage1_folder,
            **common,
        ),
        os.path.join(logs, "stage1.log"),
    )

    print("[5/5] Stage 2: CE+MSE adaptation on the frozen LLM, greedy decoding", flush=True)
    timings["stage 2 + decoding"] = run_step(
        "stage 2",
        [py, "recipes/LibriSpeech/train_stage2.py", "hparams/stage2.yaml"]
        + preset_overrides(
            args.preset,
            ["projector", "both_stages", "stage2"],
            llm_source=llm_folder,
            output_folder=stage2_folder,
            stage1_checkpoint=os.path.join(stage1_folder, "save"),
            **common,
        ),
        os.path.join(logs, "stage2.log"),
    )
    total = time.time() - total_start

    # Results through the evaluation suite: the same files and tables as real runs.
    results = load_results(
        [os.path.join(stage1_folder, "results"), os.path.join(stage2_folder, "results")]
    )
    s1, s2 = (
        next(r for r in results if r["system"].startswith(p))
        for p in ("SpeechMapper stage 1", "SpeechMapper stage 2")
    )
    split = corpus["splits"]["test-clean"]
    print()
    print(f"Results folder: {out}")
    print(
        f"Learning curves: {stage1_folder}/learning_curve.png, {stage2_folder}/learning_curve.png"
    )
    print(
        f"Held-out test set: {split['utterances']} unseen sentences, unseen voice "
        f"{corpus['heldout_voice']}"
    )
    print()
    print("| step | seconds |")
    print("|---|---|")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds:.0f} |")
    print(f"| total | {total:.0f} |")
    print()
    print(markdown_tables(results, metrics=["wer", "cer", "stuck_pct", "verbose_pct"]).strip())
    print()
    print(
        f"Report again: python -m speechmapper_plugin.evaluation.report {stage1_folder}/results {stage2_folder}/results"
    )
    print()
    print(f"stage-1 nearest-embedding WER (held-out): {s1['metrics']['wer']:.1f}%")
    print(f"stage-2 WER (held-out): {s2['metrics']['wer']:.1f}%")


if __name__ == "__main__":
    main()
