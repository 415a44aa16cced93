#!/usr/bin/env python3
"""The paper's stage-2 findings in miniature, on the tiny offline preset (issue 13):

* Table 7 / Figure 2: task-agnostic stage 2 on ASR only, with sigma in {0, 0.5, 0.9}
  (eq. 3: CE, CE+MSE), then zero-shot on ASR (the Table 11 prompt) and on a task stage 2
  never saw: speech translation into Minish, the mini-corpus' invented language
  (``speechmapper_plugin.tiny.minish``), with the paper's ST instruction written in Minish;
* setting iii: task-specific stage 2 on that translation task (CE, its IT prompt) against
  the task-agnostic models.

Every run is a real recipe script with the tiny preset (``speechmapper_plugin.tiny.demo``),
under ``<output_folder>/miniature``; the corpus, features and stage-1 projector are the demo's
(the same steps, skipped when the demo already ran in ``<output_folder>``). Stage 1 is trained
once; each seed is one stage-2 run (data order) per system. The report
(``<output_folder>/miniature/report.md``) holds the tables in the papers' layout, mean ± std
over the seeds; the runs resume (a finished run is skipped).

Usage:
    python recipes/LibriSpeech/run_miniature.py [--output_folder results/tiny_demo] \
        [--seeds 1986 1987 1988] [--sigmas 0 0.5 0.9]

Authors
-------
speechmapper developers, 2026
"""

import argparse
import os
import sys
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from speechmapper_plugin.evaluation.results import load_results  # noqa: E402
from speechmapper_plugin.evaluation.tables import markdown_tables  # noqa: E402
from speechmapper_plugin.tiny.chat_lm import shipped_chat_lm  # noqa: E402
from speechmapper_plugin.tiny.demo import StepFailed, TinyRun  # noqa: E402
from speechmapper_plugin.tiny.minish import minish_st_instructions  # noqa: E402
from speechmapper_plugin.utils.files import atomic_write_text  # noqa: E402


def objective(sigma):
    """The paper's name of a stage-2 objective (eq. 3).

    Example
    -------
    >>> objective(0.0), objective(0.5)
    ('CE', 'CE+MSE')
    """
    return "CE" if sigma == 0 else "CE+MSE"


def minish_eval_overrides(run):
    """The overrides that make ``evaluate.py`` score Minish ST on the mini-corpus."""
    return {
        "task": "st",
        "translation": "minish",
        "manifest_folder": os.path.join(run.cache_folder, "manifests_minish"),
        "st_instructions": minish_st_instructions(),
        "comet_model": None,  # no COMET model knows Minish: BLEU only
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_folder", default="results/tiny_demo")
    parser.add_argument("--preset", default=os.path.join(ROOT, "hparams", "tiny.yaml"))
    parser.add_argument("--llm_folder", default=None)
    parser.add_argument("--num_train", type=int, default=4000)
    parser.add_argument("--num_valid", type=int, default=200)
    parser.add_argument("--num_test", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1986, 1987, 1988])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.5, 0.9])
    parser.add_argument(
        "--stage2_steps", type=int, default=None, help="override the preset's stage-2 max_steps"
    )
    args = parser.parse_args(argv)

    llm = args.llm_folder or str(shipped_chat_lm())
    run = TinyRun(ROOT, args.output_folder, llm, preset=args.preset)
    with open(run.preset, encoding="utf-8") as f:
        stage2_preset = yaml.safe_load(f)["stage2"]
    # The task-specific runs get the task-agnostic runs' budget (steps, batch, lr).
    budget = {k: stage2_preset[k] for k in ("max_steps", "batch_size", "batches_per_step", "lr")}
    if args.stage2_steps is not None:
        budget["max_steps"] = args.stage2_steps
    start = time.time()
    folders = []
    try:
        print("[1/4] The demo's corpus, features and stage 1 (skipped when done)", flush=True)
        run.corpus(
            num_train=args.num_train,
            num_valid=args.num_valid,
            num_test=args.num_test,
            seed=0,
            jobs=args.jobs,
            vocabulary="small",
        )
        run.extract()
        stage1_save = os.path.join(run.stage1(), "save")

        print("[2/4] Stage 1 zero-shot through the LLM: ASR and Minish ST", flush=True)
        name = "Stage 1 (no stage 2)"
        folders.append(
            run.evaluate("miniature/stage1/asr", projector_checkpoint=stage1_save, system_name=name)
        )
        folders.append(
            run.evaluate(
                "miniature/stage1/st",
                projector_checkpoint=stage1_save,
                system_name=name,
                **minish_eval_overrides(run),
            )
        )

        print("[3/4] Task-agnostic stage 2 (ASR), zero-shot on ASR and Minish ST", flush=True)
        for seed in args.seeds:
            for sigma in args.sigmas:
                name = f"Stage 2 [ASR {objective(sigma)}] sigma {sigma:g}"
                tag = f"miniature/asr_sigma{sigma:g}/{seed}"
                folder = run.stage2(
                    tag,
                    stage1_save,
                    seed=seed,
                    sigma=sigma,
                    system_name=name,
                    **budget,
                )
                folders.append(folder)
                folders.append(
                    run.evaluate(
                        f"{tag}/st",
                        seed=seed,
                        projector_checkpoint=os.path.join(folder, "save"),
                        system_name=name,
                        **minish_eval_overrides(run),
                    )
                )

        print("[4/4] Task-specific stage 2 (setting iii): Minish ST, CE", flush=True)
        for seed in args.seeds:
            folders.append(
                run.stage2_task(
                    f"miniature/st_task/{seed}",
                    stage1_save,
                    seed=seed,
                    system_name="Stage 2 [ST CE] (task-specific)",
                    **budget,
                )
            )
    except StepFailed as err:
        sys.exit(str(err))

    results = load_results([os.path.join(f, "results") for f in folders])
    tables = markdown_tables(results, metrics=["wer", "bleu", "stuck_pct", "verbose_pct"])
    report = (
        "# The paper's stage-2 findings in miniature\n\n"
        f"Tiny chat LM: {llm}. Seeds: {', '.join(map(str, args.seeds))} (one stage-2 run per "
        f"seed and system; stage 1 trained once). Stage 2: {budget['max_steps']} steps of "
        f"{budget['batch_size']} utterances, lr {budget['lr']}.\n\n" + tables.strip() + "\n"
    )
    out = os.path.join(run.out, "miniature", "report.md")
    atomic_write_text(out, report)
    print()
    print(report)
    print(f"Report: {out} ({time.time() - start:.0f} s)")
    return results


if __name__ == "__main__":
    main()
