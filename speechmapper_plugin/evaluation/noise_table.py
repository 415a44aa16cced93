"""Table 6 of the SpeechMapper paper from the noise-injection result files
(``evaluation.noise_injection``): one row per LLM (and noise mode), one column per noise
degree (the WER, mean ± std over seeds), and the embedding error threshold (EET). The
``report`` command line prints it with ``--layout noise``::

    python -m speechmapper_plugin.evaluation.report results/noise_injection --layout noise

Authors
-------
speechmapper developers, 2026
"""

from speechmapper_plugin.evaluation.noise_injection import (
    EXPERIMENT,
    check_degree,
    degree_label,
    eet_label,
    embedding_error_threshold,
    mode_label,
)
from speechmapper_plugin.evaluation.tables import MISSING, _escape, _format, aggregate
from speechmapper_plugin.utils.files import atomic_write_text


def _noise_results(results):
    chosen = [r for r in results if r["decoding"].get("experiment") == EXPERIMENT]
    if not chosen:
        raise ValueError(
            f"no noise-injection result among the {len(results)} result file(s) (they are "
            "written by recipes/LibriSpeech/noise_injection.py, decoding.experiment = "
            f"{EXPERIMENT!r})."
        )
    return chosen


def _row_margin(margins, label, override):
    if override is not None:
        return float(override)
    if len(margins) > 1:
        raise ValueError(
            f"noise table: the results of {label} were written with different eet_margin "
            f"values {sorted(margins)}; choose one with --eet-margin."
        )
    return margins.pop()


def noise_tables(results, *, decimals=None, eet_margin=None):
    """Markdown tables in the layout of Table 6, one per test set (dataset and split).

    Rows are (LLM, noise mode) in order of first appearance; columns "no noise", then the
    degrees from the largest to the smallest (Table 6's order), then the EET. Cells are the
    WER (%) as ``mean ± std`` over seeds (``tables.aggregate``); the EET of a row is
    :func:`noise_injection.embedding_error_threshold` of its mean WERs, with the margin the
    results were written with (``decoding.eet_margin``) unless ``eet_margin`` is given.
    Results of other experiments are ignored.

    Arguments
    ---------
    results : list of dict
        Validated results.
    decimals : int, optional
        Decimals of the WER cells (default 1).
    eet_margin : float, optional
        WER points above the clean WER still tolerated (overrides the stored margins).

    Returns
    -------
    str
        The tables, each followed by a note.

    Example
    -------
    >>> from speechmapper_plugin.evaluation.results import make_result
    >>> def run(degree, wer):
    ...     return make_result(f"L {degree}", "LibriSpeech", "test-clean", "asr", {"wer": wer},
    ...         [], llm="meta-llama/L", decoding={"experiment": "noise_injection",
    ...         "noise_degree": degree, "noise_mode": "per_dimension", "llm_label": "L",
    ...         "eet_margin": 1.0})
    >>> table6 = {0: 1.4, 1e-1: 207.2, 1e-2: 180.0, 1e-3: 1.6, 1e-4: 1.4}
    >>> print("\\n".join(noise_tables([run(d, w) for d, w in table6.items()]).splitlines()[2:5]))
    | LLM | noise | no noise | 1e-1 | 1e-2 | 1e-3 | 1e-4 | EET |
    |---|---|---|---|---|---|---|---|
    | L | per dimension | 1.4 | 207.2 | 180.0 | 1.6 | 1.4 | 1e-3 |
    """
    chosen = _noise_results(results)
    places = 1 if decimals is None else int(decimals)
    about = {}
    for result in chosen:
        decoding = result["decoding"]
        info = (
            decoding.get("llm_label") or result["llm"] or result["system"],
            result["llm"],
            mode_label(decoding["noise_mode"]),
            check_degree(decoding["noise_degree"], f"{result['system']}: noise_degree"),
        )
        if about.setdefault(result["system"], info) != info:
            raise ValueError(
                f"noise table: system {result['system']!r} names two configurations "
                f"{about[result['system']]} and {info}; give each its own --llm_label."
            )
    margins = {}
    for result in chosen:
        margin = result["decoding"].get("eet_margin")
        if margin is not None:
            margins.setdefault(about[result["system"]][:3], set()).add(float(margin))
    cells = {}  # (dataset, split) -> {(label, llm, mode): {degree: aggregate row}}
    for row in aggregate(chosen):
        if row["metric"] != "wer":
            continue
        label, llm, mode, degree = about[row["system"]]
        table = cells.setdefault((row["dataset"], row["split"]), {})
        table.setdefault((label, llm, mode), {})[degree] = row
    tables = []
    for (dataset, split), rows in cells.items():
        degrees = sorted({d for row in rows.values() for d in row}, key=lambda d: (d > 0, -d))
        lines = [
            f"### Table 6 layout: {_escape(dataset)} {_escape(split)} WER (↓) by embedding "
            "noise degree, and the EET",
            "",
            "| LLM | noise | " + " | ".join(degree_label(d) for d in degrees) + " | EET |",
            "|---" * (len(degrees) + 3) + "|",
        ]
        used_margins, seeds = set(), set()
        for key, by_degree in rows.items():
            label, _, mode = key
            wer_cells = []
            for degree in degrees:
                row = by_degree.get(degree)
                wer_cells.append(MISSING if row is None else _format(row, places, False))
                if row is not None:
                    seeds.add(row["n"])
            eet = MISSING
            margin_set = set(margins.get(key, ()))
            if 0.0 in by_degree and len(by_degree) > 1 and (margin_set or eet_margin is not None):
                margin = _row_margin(margin_set, label, eet_margin)
                used_margins.add(margin)
                means = {d: row["mean"] for d, row in by_degree.items()}
                eet = eet_label(embedding_error_threshold(means, margin))
            cells_text = " | ".join(wer_cells)
            lines.append(f"| {_escape(label)} | {mode} | {cells_text} | {eet} |")
        spread = "single runs"
        if seeds and max(seeds) > 1:
            spread = f"mean ± sample std (ddof=1) over up to {max(seeds)} seeds"
        within = " / ".join(f"{m:g}" for m in sorted(used_margins)) or "?"
        lines += [
            "",
            f"_Cells: WER (%), {spread}; {MISSING}: not run. Noise per dimension: Algorithm 1 "
            "(r ~ U{1..9} drawn for every dimension, e += r x degree); per token: one r per "
            "token added to all its dimensions (App. A.3's text). EET: the largest degree d "
            f"such that every tested degree up to d keeps the mean WER within {within} WER "
            "points of the clean WER (≥: every tested degree tolerated; <: none)._",
        ]
        tables.append("\n".join(lines))
    return "\n\n".join(tables) + "\n"


def write_noise_table(path, results):
    """Write :func:`noise_tables` of ``results`` atomically to ``path``; returns the text."""
    text = noise_tables(results)
    atomic_write_text(path, text)
    return text
