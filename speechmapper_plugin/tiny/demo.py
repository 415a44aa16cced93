"""The steps of the tiny demo (``recipes/LibriSpeech/run_demo.py``) and of the paper's
experiments in miniature (``recipes/LibriSpeech/run_miniature.py``), written once.

Each step runs a real recipe script of the repository with the overrides of the tiny preset
(``hparams/tiny.yaml``), printing the command so that any step can be re-run by hand; its log
goes to ``<output_folder>/logs``. Every step resumes: a finished step is skipped when run
again (its result files are there), so re-running the demo skips finished work.

Authors
-------
speechmapper developers, 2026
"""

import glob
import os
import shlex
import subprocess
import sys
import time

from speechmapper_plugin.evaluation.results import load_results
from speechmapper_plugin.tiny.minicorpus import build_minicorpus
from speechmapper_plugin.tiny.preset import preset_overrides

#: The figures the demo prints last, with their labels (issue 13).
FIGURE_LABELS = {
    "topline": "topline (transcript + LLM) WER (held-out)",
    "nearest": "stage-1 nearest-embedding WER (held-out)",
    "zero_shot": "stage-1 zero-shot WER through the LLM (held-out)",
    "stage2": "stage-2 WER (held-out)",
}


#: What the demo shows, checked on its own figures: the LLM repeats the true text (topline
#: T <= 10), the stage-1 projector already speaks to it (Z < 100), and stage 2 through the
#: LLM beats the nearest-embedding read-out of stage 1 by 15% (S <= 0.85 N).
TOPLINE_MAX = 10.0


ZERO_SHOT_MAX = 100.0


STAGE2_RATIO_MAX = 0.85


class StepFailed(RuntimeError):
    """A recipe script of the demo exited with an error (the message holds its log's tail)."""


def figure_lines(figures):
    """The demo's last lines, one per figure (WER in %, one decimal).

    Example
    -------
    >>> figure_lines({"topline": 0.4, "nearest": 59.0, "zero_shot": 67.9, "stage2": 48.25})[-1]
    'stage-2 WER (held-out): 48.2%'
    """
    return [f"{FIGURE_LABELS[key]}: {figures[key]:.1f}%" for key in FIGURE_LABELS]


def check_figures(figures):
    """The demo's claims that its figures do not hold, in plain words (empty: all hold).

    Arguments
    ---------
    figures : dict
        ``topline``, ``nearest``, ``zero_shot`` and ``stage2`` WER (%).

    Returns
    -------
    list of str
        One message per missed target.

    Example
    -------
    >>> check_figures({"topline": 0.4, "nearest": 59.0, "zero_shot": 67.9, "stage2": 48.0})
    []
    >>> check_figures({"topline": 0.4, "nearest": 59.0, "zero_shot": 67.9, "stage2": 55.0})[0][:44]
    'stage 2 (55.0%) does not beat the stage-1 ne'
    """
    missed = []
    if not figures["topline"] <= TOPLINE_MAX:
        missed.append(
            f"the LLM does not repeat the true transcripts: topline WER {figures['topline']:.1f}% "
            f"> {TOPLINE_MAX:.0f}% (is --llm_folder the trained tiny chat LM?)"
        )
    if not figures["zero_shot"] < ZERO_SHOT_MAX:
        missed.append(
            f"the stage-1 projector does not speak to the LLM: zero-shot WER "
            f"{figures['zero_shot']:.1f}% >= {ZERO_SHOT_MAX:.0f}%"
        )
    target = STAGE2_RATIO_MAX * figures["nearest"]
    if not figures["stage2"] <= target:
        missed.append(
            f"stage 2 ({figures['stage2']:.1f}%) does not beat the stage-1 nearest-embedding "
            f"read-out by 15%: {STAGE2_RATIO_MAX} x {figures['nearest']:.1f}% = {target:.1f}%"
        )
    return missed


def read_result(folder, system_prefix=None, task=None):
    """The one result file under ``<folder>/results`` (of the system whose name starts with
    ``system_prefix``, of ``task``)."""
    results = [
        r
        for r in load_results([os.path.join(folder, "results")])
        if (system_prefix is None or r["system"].startswith(system_prefix))
        and (task is None or r["task"] == task)
    ]
    if len(results) != 1:
        raise ValueError(
            f"Expected one result file of {system_prefix or 'any system'} in {folder}/results, "
            f"found {len(results)}."
        )
    return results[0]


class TinyRun:
    """One run of the recipes on the tiny preset: a mini-corpus, its features, and the stages,
    evaluations and task-specific stages run on them, in one output folder.

    Arguments
    ---------
    root : str
        The repository root (holds ``recipes/`` and ``hparams/``).
    output_folder : str
        Where everything goes (``minicorpus/``, ``cache/``, ``logs/``, one folder per step).
    llm_folder : str
        The frozen LLM (the trained tiny chat LM, ``tiny.chat_lm.shipped_chat_lm()``).
    preset : str, optional
        The preset file (default ``<root>/hparams/tiny.yaml``).
    python : str, optional
        The interpreter that runs the recipe scripts (default: this one).
    verbose : bool
        Print each command.
    """

    def __init__(self, root, output_folder, llm_folder, preset=None, python=None, verbose=True):
        self.root = os.path.abspath(root)
        self.out = os.path.abspath(output_folder)
        self.llm = str(llm_folder)
        self.preset = preset or os.path.join(self.root, "hparams", "tiny.yaml")
        self.python = python or sys.executable
        self.verbose = verbose
        self.data_folder = os.path.join(self.out, "minicorpus")
        self.cache_folder = os.path.join(self.out, "cache")
        self.logs = os.path.join(self.out, "logs")
        os.makedirs(self.logs, exist_ok=True)

    def path(self, *parts):
        """A path under the output folder."""
        return os.path.join(self.out, *parts)

    @property
    def common(self):
        """The overrides every step gets (data, features, LLM)."""
        return {"data_folder": self.data_folder, "cache_folder": self.cache_folder}

    def corpus(self, **settings):
        """Synthesize (or reuse) the mini-corpus (``minicorpus.build_minicorpus`` settings)."""
        return build_minicorpus(self.data_folder, **settings)

    def run(self, name, script, yaml_file, sections, **overrides):
        """Run ``recipes/LibriSpeech/<script> hparams/<yaml_file>`` with the preset sections and
        ``overrides``; its output goes to ``logs/<name>.log``. Returns the seconds it took.

        Raises
        ------
        StepFailed
            The script exited with an error (the message holds the last lines of its log).
        """
        cmd = [self.python, f"recipes/LibriSpeech/{script}", f"hparams/{yaml_file}"]
        cmd += preset_overrides(self.preset, sections, **overrides)
        log_file = os.path.join(self.logs, f"{name}.log")
        os.makedirs(os.path.dirname(log_file), exist_ok=True)
        if self.verbose:
            print(f"    $ {shlex.join(cmd)}", flush=True)
        start = time.time()
        with open(log_file, "a", encoding="utf-8") as log:
            proc = subprocess.run(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, check=False
            )
        if proc.returncode:
            with open(log_file, encoding="utf-8") as log:
                tail = log.readlines()[-30:]
            raise StepFailed(
                f"{name} failed (exit {proc.returncode}); last lines of {log_file}:\n"
                + "".join(tail)
            )
        return time.time() - start

    def _step(self, name, script, yaml_file, sections, **overrides):
        """Run one step with the LLM, the data paths and ``output_folder=<output>/<name>``,
        unless that folder already holds its result files. Returns the folder."""
        folder = self.path(name)
        if not glob.glob(os.path.join(folder, "results", "*.json")):
            self.run(
                name,
                script,
                yaml_file,
                sections,
                llm_source=self.llm,
                output_folder=folder,
                **self.common,
                **overrides,
            )
        return folder

    def extract(self):
        """Data preparation and feature extraction (``extract_features.py``)."""
        return self.run(
            "extract_features",
            "extract_features.py",
            "features.yaml",
            ["features"],
            **self.common,
        )

    def stage1(self, name="stage1", **overrides):
        """Stage 1 against the LLM's embedding table (``train_stage1.py``); its test result is
        the nearest-embedding read-out. Returns the output folder."""
        sections = ["projector", "both_stages", "stage1"]
        return self._step(name, "train_stage1.py", "stage1.yaml", sections, **overrides)

    def stage2(self, name, stage1_checkpoint, **overrides):
        """Task-agnostic stage 2 through the frozen LLM (``train_stage2.py``), then greedy
        decoding of the test sets with the zero-shot prompt. Returns the output folder."""
        sections = ["projector", "both_stages", "stage2"]
        overrides["stage1_checkpoint"] = stage1_checkpoint
        return self._step(name, "train_stage2.py", "stage2.yaml", sections, **overrides)

    def evaluate(self, name, **overrides):
        """``evaluate.py`` of one system (``system``, ``projector_checkpoint``, ``task``...).
        Returns the output folder."""
        sections = ["projector", "evaluate"]
        return self._step(name, "evaluate.py", "evaluate.yaml", sections, **overrides)

    def stage2_task(self, name, stage1_checkpoint, yaml_file="stage2_st_minish.yaml", **overrides):
        """Task-specific stage 2 (setting iii, ``train_stage2_task.py``), then the test sets
        with the task prompt. Returns the output folder."""
        overrides["stage1_checkpoint"] = stage1_checkpoint
        sections = ["projector", "stage2_task"]
        return self._step(name, "train_stage2_task.py", yaml_file, sections, **overrides)
