#!/usr/bin/env python3
"""The whole SpeechMapper path on the tiny offline preset, in minutes on a CPU:

    synthesize the mini-corpus -> the trained tiny chat LM -> prepare + extract features
    -> topline (transcript + LLM) -> stage 1 (nearest-embedding read-out, zero-shot through
    the LLM) -> stage 2 -> decode the held-out test set -> results table

The frozen LLM is the project's trained tiny chat LM (``speechmapper_plugin.tiny.chat_lm``,
shipped as package data; ``--llm_folder`` takes a rebuilt one): it repeats the text whose
embeddings sit in the ``<speech>`` slot of the paper's prompts, so the demo shows what the
method does: a projector trained against the LLM's embedding table alone makes the LLM hear.

Each step runs the real recipe script with the overrides of ``hparams/tiny.yaml`` (the
commands are printed, so any step can be re-run by hand); logs go to
``<output_folder>/logs``. Every step resumes: re-running the demo skips finished work.
The last four lines are the demo's figures; the demo then says whether they hold what it
claims (``speechmapper_plugin.tiny.demo.check_figures``).

Usage:
    python recipes/LibriSpeech/run_demo.py [--output_folder results/tiny_demo] [--num_train 4000]

Authors
-------
speechmapper developers, 2026
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from speechmapper_plugin.evaluation.results import load_results  # noqa: E402
from speechmapper_plugin.evaluation.tables import markdown_tables  # noqa: E402
from speechmapper_plugin.tiny.chat_lm import shipped_chat_lm  # noqa: E402
from speechmapper_plugin.tiny.demo import (  # noqa: E402
    StepFailed,
    TinyRun,
    check_figures,
    figure_lines,
    read_result,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_folder", default="results/tiny_demo")
    parser.add_argument("--preset", default=os.path.join(ROOT, "hparams", "tiny.yaml"))
    parser.add_argument(
        "--llm_folder", default=None, help="the frozen LLM (default: the shipped tiny chat LM)"
    )
    parser.add_argument("--num_train", type=int, default=4000)
    parser.add_argument("--num_valid", type=int, default=200)
    parser.add_argument("--num_test", type=int, default=200)
    parser.add_argument("--vocabulary", default="small", choices=["small", "full"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--stage2_steps", type=int, default=None, help="override the preset's stage-2 max_steps"
    )
    args = parser.parse_args(argv)

    llm = args.llm_folder or str(shipped_chat_lm())
    run = TinyRun(ROOT, args.output_folder, llm, preset=args.preset)
    timings = {}
    total_start = time.time()

    print("[1/6] Synthesizing the mini-corpus (eSpeak NG voices, LibriSpeech layout)", flush=True)
    start = time.time()
    corpus = run.corpus(
        num_train=args.num_train,
        num_valid=args.num_valid,
        num_test=args.num_test,
        seed=args.seed,
        jobs=args.jobs,
        vocabulary=args.vocabulary,
    )
    timings["synthesize"] = time.time() - start
    print(f"[2/6] The frozen LLM: the trained tiny chat LM in {llm}", flush=True)

    try:
        print("[3/6] Data preparation + feature extraction", flush=True)
        timings["prepare + extract"] = run.extract()

        print("[4/6] Topline: the true transcript in the prompt of the LLM", flush=True)
        start = time.time()
        topline = run.evaluate(
            "topline", system="transcript", setting="topline", system_name="Transcript + LLM"
        )
        timings["topline"] = time.time() - start

        print("[5/6] Stage 1: projector vs. the LLM embedding table; zero-shot", flush=True)
        start = time.time()
        stage1 = run.stage1()
        timings["stage 1"] = time.time() - start
        start = time.time()
        zero_shot = run.evaluate(
            "stage1_zero_shot",
            projector_checkpoint=os.path.join(stage1, "save"),
            system_name="SpeechMapper stage 1 (through the LLM)",
        )
        timings["stage-1 zero-shot decoding"] = time.time() - start

        print("[6/6] Stage 2: CE adaptation through the frozen LLM, greedy decoding", flush=True)
        start = time.time()
        extra = {} if args.stage2_steps is None else {"max_steps": args.stage2_steps}
        stage2 = run.stage2("stage2", os.path.join(stage1, "save"), **extra)
        timings["stage 2 + decoding"] = time.time() - start
    except StepFailed as err:
        sys.exit(str(err))
    total = time.time() - total_start

    # Results through the evaluation suite: the same files and tables as real runs.
    folders = [os.path.join(f, "results") for f in (topline, stage1, zero_shot, stage2)]
    results = load_results(folders)
    figures = {
        "topline": read_result(topline)["metrics"]["wer"],
        "nearest": read_result(stage1, "SpeechMapper stage 1")["metrics"]["wer"],
        "zero_shot": read_result(zero_shot)["metrics"]["wer"],
        "stage2": read_result(stage2, "SpeechMapper stage 2")["metrics"]["wer"],
    }
    split = corpus["splits"]["test-clean"]
    print()
    print(f"Results folder: {run.out}")
    print(f"Learning curves: {stage1}/learning_curve.png, {stage2}/learning_curve.png")
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
    print("Report again: python -m speechmapper_plugin.evaluation.report " + " ".join(folders))
    print()
    missed = check_figures(figures)
    if missed:
        print("Not shown by this run: " + "; ".join(missed))
    else:
        print("The LLM gained ears: T <= 10%, Z < 100%, S <= 0.85 x N all hold.")
    print()
    print("\n".join(figure_lines(figures)))
    return figures


if __name__ == "__main__":
    main()
