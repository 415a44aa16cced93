"""Result files -> seed-averaged Markdown tables in the papers' layouts (the ``report``
command line is ``evaluation.report``; the model-index metadata is ``evaluation.model_index``).

Tables have one row per system and one column per test set, as in the SpeechMapper paper:
ASR cells ``WER / CER`` (Table 8), one ST table per metric (COMET, BLEU) with columns
``<dataset> en-xx`` (Table 1), SQA LLM-as-judge accuracy in % (Table 2), and a
language-identification table with ``EN % / TARGET %`` cells (Table 9, here with systems as
rows like the other tables). Cells are ``mean ± std`` over seeds, except in the SQA table
where, as in the paper's Table 2, the "±" is the spread over the judges and the seed spread
has its own column; ``–`` marks a system not evaluated on that test set.

Usage::

    python -m speechmapper_plugin.evaluation.report results/ --output report.md \\
        --model-index README_meta.md --model-name my-speechmapper --system "Stage 2 [ST CE]"

``--layout iwslt25`` prints instead the IWSLT 2025 talk's table (rows: text-only Llama, text
LoRA, Seamless, A.1, A.2, A+B extractive/fluent; columns: ASR WER, BLEU and COMET per
language, SQA per question language) and the same layout with the organizers' official
metrics (:func:`iwslt25_tables`).

Authors
-------
speechmapper developers, 2026
"""

import logging
import re
import statistics

from speechmapper_plugin.evaluation.results import SETTINGS, TASKS, result_key

logger = logging.getLogger(__name__)


MISSING = "–"


_TASK_NAMES = {
    "asr": "Automatic Speech Recognition",
    "st": "Speech Translation",
    "sqa": "Spoken Question Answering",
}


_TASK_SHORT = {"asr": "ASR", "st": "ST", "sqa": "SQA"}


_METRIC_LABELS = {
    "wer": "WER",
    "cer": "CER",
    "bleu": "BLEU",
    "chrf": "chrF",
    "comet": "COMET",
    "judge_accuracy": "LLM-as-judge accuracy",
    "lid_en_pct": "LID EN %",
    "lid_target_pct": "LID target %",
    "stuck_pct": "stuck decoding %",
    "official_wer": "official WER",
    "official_comet": "official COMET",
    "bertscore_f1": "BERTScore F1",
}


_LOWER_IS_BETTER = {"wer", "cer", "stuck_pct", "official_wer"}


_HIGHER_IS_BETTER = {"bleu", "chrf", "comet", "judge_accuracy", "official_comet", "bertscore_f1"}


_PERCENT_SIGN = {"judge_accuracy"}  # and every "*_pct" metric


# Known datasets, in the papers' column order: normalized name -> Hugging Face hub id (None:
# no canonical hub copy, the name itself is used). Aliases map to the same entry.
_DATASETS = {
    "librispeech": "librispeech_asr",
    "voxpopuli": "facebook/voxpopuli",
    "commonvoice": "mozilla-foundation/common_voice_17_0",  # the paper's CommonVoice v17
    "fleurs": "google/fleurs",
    "europarlst": None,
    "covost2": "facebook/covost2",
    "acl6060": None,
    "spokensquad": None,
    "librisqa": None,
}


_ALIASES = {
    "ls": "librispeech",
    "vp": "voxpopuli",
    "cv": "commonvoice",
    "cv17": "commonvoice",
    "commonvoice17": "commonvoice",
    "commonvoicev17": "commonvoice",
    "europarl": "europarlst",
    "covost": "covost2",
}


# Target languages in the papers' column order; others follow alphabetically.
_LANG_ORDER = ("es", "fr", "de", "it", "zh")


def _dataset_id(name):
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return _ALIASES.get(key, key)


def _setting_rank(setting):
    return SETTINGS.index(setting) if setting in SETTINGS else len(SETTINGS)


def aggregate(results):
    """Average the metrics of results that differ only by seed.

    Results are grouped by (system, dataset, split, task, source_lang, target_lang, metric);
    each group gives its mean and its *sample* standard deviation (``ddof=1``). With a single
    seed the standard deviation is ``None`` (no spread can be measured) and tables show the
    mean alone.

    Arguments
    ---------
    results : list of dict
        Validated results (``results.load_results`` or ``results.make_result``).

    Returns
    -------
    list of dict
        One row per group, in order of first appearance, with keys ``system``, ``setting``,
        ``llm``, ``dataset``, ``split``, ``task``, ``source_lang``, ``target_lang``,
        ``metric``, ``mean``, ``std``, ``n`` (number of seeds), ``seeds`` and
        ``signatures`` (the distinct signature strings of that metric).

    Raises
    ------
    ValueError
        When two results describe the same run (same seed), or when one system name is
        used with two different settings or LLMs (give each its own system name).

    Example
    -------
    >>> from speechmapper_plugin.evaluation.results import make_result
    >>> runs = [make_result("S", "LibriSpeech", "test-clean", "asr", {"wer": w}, [], seed=s)
    ...         for s, w in ((1, 3.0), (2, 5.0))]
    >>> row = aggregate(runs)[0]
    >>> row["metric"], row["mean"], round(row["std"], 4), row["n"]
    ('wer', 4.0, 1.4142, 2)
    """
    groups, runs, systems = {}, {}, {}
    for result in results:
        key = result_key(result)
        if key in runs:
            raise ValueError(
                f"aggregate: two results describe the same run (system, dataset, split, task, "
                f"source_lang, target_lang, seed) = {key}; keep only one."
            )
        runs[key] = True
        name = result["system"]
        attrs = (result.get("setting"), result.get("llm"))
        if name in systems and systems[name] != attrs:
            raise ValueError(
                f"aggregate: system {name!r} appears with (setting, llm) = {systems[name]} and "
                f"{attrs}; give each configuration its own system name."
            )
        systems[name] = attrs
        for metric, value in result["metrics"].items():
            gkey = key[:-1] + (metric,)
            group = groups.setdefault(gkey, {"values": [], "seeds": [], "signatures": []})
            group["values"].append(float(value))
            group["seeds"].append(result["seed"])
            signatures = result.get("signatures", {})
            signature = signatures.get(metric, signatures.get(metric.split("_")[0]))
            if signature is not None and signature not in group["signatures"]:
                group["signatures"].append(signature)
    rows = []
    for (system, dataset, split, task, src, tgt, metric), group in groups.items():
        values = group["values"]
        rows.append(
            {
                "system": system,
                "setting": systems[system][0],
                "llm": systems[system][1],
                "dataset": dataset,
                "split": split,
                "task": task,
                "source_lang": src,
                "target_lang": tgt,
                "metric": metric,
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "n": len(values),
                "seeds": group["seeds"],
                "signatures": group["signatures"],
            }
        )
    return rows


def _column(row):
    return (row["dataset"], row["split"], row["source_lang"], row["target_lang"])


def _column_sort_key(column):
    dataset, split, src, tgt = column
    known = list(_DATASETS)
    ident = _dataset_id(dataset)
    rank = known.index(ident) if ident in known else len(known)
    lang = _LANG_ORDER.index(tgt) if tgt in _LANG_ORDER else len(_LANG_ORDER)
    return (rank, dataset.lower(), split.lower(), src, lang, tgt or "")


def _column_labels(task, columns):
    """Labels such as "LibriSpeech test-clean" or "EuroParl-ST en-de"."""
    labels = {}
    for dataset, split, src, tgt in columns:
        if task == "st":
            splits = {c[1] for c in columns if c[0] == dataset and c[3] == tgt}
            parts = [dataset] + ([split] if len(splits) > 1 else []) + [f"{src}-{tgt}"]
        else:
            parts = [dataset, split] + ([f"({src})"] if src != "en" else [])
        labels[(dataset, split, src, tgt)] = " ".join(parts)
    return labels


def _escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row_label(system, setting):
    if setting and f"({setting})" not in system:
        return f"{system} ({setting})"
    return system


def _is_percent(metric):
    return metric in _PERCENT_SIGN or metric.endswith("_pct")


#: Per-result judge statistics that belong to the SQA cells, not to tables of their own.
_JUDGE_PARTS = ("judge_std", "judge_invalid")


def _is_judge_part(metric):
    return metric in _JUDGE_PARTS or metric.startswith("judge_accuracy[")


def judge_spread(rows):
    """The spread over the judges of one SQA cell (Table 2's "±").

    Arguments
    ---------
    rows : list of dict
        Aggregated rows (:func:`aggregate`) of one (system, test set): the per-judge
        accuracies ``judge_accuracy[<judge>]`` (each averaged over the seeds first) and,
        for results without them, ``judge_std``.

    Returns
    -------
    float or None
        The population standard deviation (ddof=0) of the per-judge accuracies; without
        per-judge rows, the mean of the stored ``judge_std``; None when neither exists or
        there is a single judge.

    Example
    -------
    >>> rows = [{"metric": "judge_accuracy[a]", "mean": 90.0},
    ...         {"metric": "judge_accuracy[b]", "mean": 80.0}]
    >>> judge_spread(rows)
    5.0
    """
    per_judge = [r["mean"] for r in rows if r["metric"].startswith("judge_accuracy[")]
    if len(per_judge) > 1:
        mean = statistics.fmean(per_judge)
        return statistics.fmean([(value - mean) ** 2 for value in per_judge]) ** 0.5
    stored = [r["mean"] for r in rows if r["metric"] == "judge_std"]
    return stored[0] if stored and not per_judge else None


def _format_judge(row, spread, decimals):
    text = f"{row['mean']:.{decimals}f}%"
    return text if spread is None else f"{text} ± {spread:.{decimals}f}"


def _format(row, decimals, percent):
    text = f"{row['mean']:.{decimals}f}" + ("%" if percent else "")
    if row["std"] is not None:
        text += f" ± {row['std']:.{decimals}f}"
    return text


def _table_specs(task, present):
    """(title, metrics) of the tables of one task, in the papers' order."""
    specs, used = [], set()

    def pair(first, second, title):
        if first in present and second in present:
            specs.append((title, (first, second)))
            used.update((first, second))

    if task == "asr":
        pair("wer", "cer", "ASR: WER / CER (↓)")
    if task == "st":
        for metric in ("comet", "bleu"):
            if metric in present:
                specs.append((f"ST: {_METRIC_LABELS[metric]} (↑)", (metric,)))
                used.add(metric)
    if task == "sqa" and "judge_accuracy" in present:
        specs.append(("SQA: LLM-as-judge accuracy (↑)", ("judge_accuracy",)))
        used.add("judge_accuracy")
    used.update(m for m in present if _is_judge_part(m))
    short = _TASK_SHORT.get(task, task)
    pair("lid_en_pct", "lid_target_pct", f"{short}: language identification, EN % / TARGET %")
    for metric in present:
        if metric in used:
            continue
        arrow = " (↓)" if metric in _LOWER_IS_BETTER else ""
        arrow = " (↑)" if metric in _HIGHER_IS_BETTER else arrow
        label = _METRIC_LABELS.get(metric, metric)
        specs.append((f"{short}: {label}{arrow}", (metric,)))
    return specs


def _ordered_systems(results, sort_by_setting):
    systems = {}
    for result in results:
        systems.setdefault(result["system"], result.get("setting"))
    names = list(systems)
    if sort_by_setting:
        names.sort(key=lambda name: _setting_rank(systems[name]))  # stable: keeps appearance
    return names, systems


def _render_judge_table(title, task_rows, systems, setting_of, decimals):
    """Table 2: mean over judges ± spread over judges, and the seed spread per test set."""
    chosen = [r for r in task_rows if r["metric"] == "judge_accuracy"]
    columns = sorted({_column(r) for r in chosen}, key=_column_sort_key)
    labels = _column_labels("sqa", columns)
    places = 1 if decimals is None else decimals
    cells = {(r["system"], _column(r)): r for r in chosen}
    parts = {}
    for r in task_rows:
        if _is_judge_part(r["metric"]):
            parts.setdefault((r["system"], _column(r)), []).append(r)
    header = [f"{_escape(labels[c])} | seeds ±" for c in columns]
    lines = [
        f"### {title}",
        "",
        "| System | " + " | ".join(header) + " |",
        "|---" * (2 * len(columns) + 1) + "|",
    ]
    judges, seeds = set(), set()
    for system in systems:
        if not any((system, c) in cells for c in columns):
            continue
        row_cells = []
        for column in columns:
            row = cells.get((system, column))
            if row is None:
                row_cells += [MISSING, MISSING]
                continue
            rows = parts.get((system, column), [])
            judges.add(sum(1 for r in rows if r["metric"].startswith("judge_accuracy[")))
            seeds.add(row["n"])
            row_cells.append(_format_judge(row, judge_spread(rows), places))
            row_cells.append(MISSING if row["std"] is None else f"{row['std']:.{places}f}")
        label = _escape(_row_label(system, setting_of[system]))
        lines.append(f"| {label} | " + " | ".join(row_cells) + " |")
    counts = sorted(judges - {0})
    judged = f"{'/'.join(map(str, counts))} judges" if counts else "the judges"
    lines += [
        "",
        f"_Cells: accuracy averaged over {judged} ± population std (ddof=0) over the judges "
        "(as the paper's Table 2), each judge's accuracy averaged over the seeds first; "
        f"seeds ±: sample std (ddof=1) over {'/'.join(map(str, sorted(seeds)))} seed(s) of "
        f"the judges' mean ({MISSING}: a single run); {MISSING}: not evaluated._",
    ]
    signatures = []
    for r in chosen:
        signatures += [s for s in r["signatures"] if s not in signatures]
    if len(signatures) > 1:
        logger.warning("%s: %d different judge signatures; not comparable.", title, len(signatures))
    lines += [f"_LLM-as-judge signature: `{signature}`_" for signature in signatures]
    return "\n".join(lines)


def _render_table(title, metrics, task_rows, systems, setting_of, decimals):
    if metrics == ("judge_accuracy",):
        return _render_judge_table(title, task_rows, systems, setting_of, decimals)
    cells = {(r["system"], _column(r), r["metric"]): r for r in task_rows}
    chosen = [r for r in task_rows if r["metric"] in metrics]
    columns = sorted({_column(r) for r in chosen}, key=_column_sort_key)
    labels = _column_labels(chosen[0]["task"], columns)
    in_table = {r["system"] for r in chosen}
    places = 1 if decimals is None else decimals
    lines = [
        f"### {title}",
        "",
        "| System | " + " | ".join(_escape(labels[c]) for c in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for system in systems:
        if system not in in_table:
            continue
        row_cells = []
        for column in columns:
            parts = []
            for metric in metrics:
                row = cells.get((system, column, metric))
                parts.append(MISSING if row is None else _format(row, places, _is_percent(metric)))
            row_cells.append(MISSING if all(p == MISSING for p in parts) else " / ".join(parts))
        label = _escape(_row_label(system, setting_of[system]))
        lines.append(f"| {label} | " + " | ".join(row_cells) + " |")
    seeds = sorted({r["n"] for r in chosen})
    span = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    if seeds[-1] > 1:
        note = f"mean ± sample std (ddof=1) over {span} seed(s); single-run cells show the mean"
    else:
        note = "single runs (no seed spread)"
    lines += ["", f"_Cells: {note}; {MISSING}: not evaluated._"]
    by_signature = {}
    for metric in metrics:
        signatures = []
        for r in chosen:
            if r["metric"] == metric:
                signatures += [s for s in r["signatures"] if s not in signatures]
        if len(signatures) > 1:
            logger.warning(
                "%s: %d different signatures for %r; those cells are not comparable.",
                title,
                len(signatures),
                metric,
            )
        for signature in signatures:
            by_signature.setdefault(signature, []).append(_METRIC_LABELS.get(metric, metric))
    for signature, names in by_signature.items():  # one line per signature
        lines.append(f"_{' / '.join(names)} signature: `{signature}`_")
    return "\n".join(lines)


def markdown_tables(results, metrics=None, *, sort_by_setting=False, decimals=None):
    """Markdown tables in the papers' layout: rows systems, columns test sets.

    One table per task and metric family; tasks in the order ASR, ST, SQA, and within a
    task: ASR ``WER / CER`` (Table 8); ST COMET then BLEU (Table 1); SQA LLM-as-judge
    accuracy with a ``%`` sign (Table 2); then language identification ``EN % / TARGET %``
    (Table 9) and one table per other metric (e.g. ``stuck_pct``). A pair table is used only
    when both of its metrics were computed; otherwise each metric gets its own table.

    Columns are ordered by dataset (the papers' order: LibriSpeech, VoxPopuli, CommonVoice,
    Fleurs, EuroParl-ST, CoVoST2, ACL 60/60, SpokenSQuAD, LibriSQA, then the others
    alphabetically), then split, then target language (es, fr, de, it, zh, then alphabetically). Rows follow the
    order in which systems first appear in ``results``, or, with ``sort_by_setting``, the
    setting order topline, baseline, zero-shot, in-domain (systems without a setting last).
    Values are printed as stored (units: see ``speechmapper_plugin.evaluation.results``) with one
    decimal (``decimals`` changes it). Metric signatures are printed under each table; a
    metric's signature is looked up under its name, then under its family prefix (``lid``
    for ``lid_en_pct``).

    Arguments
    ---------
    results : list of dict
        Validated results.
    metrics : list of str, optional
        Only these metrics (all by default); an unknown name raises ``ValueError``.
    sort_by_setting : bool
        Order rows by setting instead of first appearance.
    decimals : int, optional
        Fixed number of decimals for every cell.

    Returns
    -------
    str
        The tables, separated by blank lines, each followed by a note (seeds, signatures).

    Example
    -------
    >>> from speechmapper_plugin.evaluation.results import make_result
    >>> runs = [make_result("S", "LibriSpeech", "test-clean", "asr",
    ...                     {"wer": w, "cer": c}, [], seed=s)
    ...         for s, w, c in ((1, 3.0, 1.0), (2, 5.0, 1.0))]
    >>> print(markdown_tables(runs).splitlines()[4])
    | S | 4.0 ± 1.4 / 1.0 ± 0.0 |
    """
    if not results:
        raise ValueError("markdown_tables: no results to report.")
    rows = aggregate(results)
    available = list(dict.fromkeys(r["metric"] for r in rows))
    if metrics is not None:
        unknown = [m for m in metrics if m not in available]
        if unknown:
            raise ValueError(
                f"markdown_tables: metric(s) {', '.join(unknown)} not found in the results; "
                f"available: {', '.join(available)}."
            )
        keep_judges = "judge_accuracy" in metrics  # its cells need the per-judge rows
        rows = [
            r
            for r in rows
            if r["metric"] in metrics or (keep_judges and _is_judge_part(r["metric"]))
        ]
    systems, setting_of = _ordered_systems(results, sort_by_setting)
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    tables = []
    for task in tasks:
        task_rows = [r for r in rows if r["task"] == task]
        present = list(dict.fromkeys(r["metric"] for r in task_rows))
        for title, table_metrics in _table_specs(task, present):
            tables.append(
                _render_table(title, table_metrics, task_rows, systems, setting_of, decimals)
            )
    return "\n\n".join(tables) + "\n"


#: Row order of the IWSLT 2025 talk's results tables (``--layout iwslt25``): system names as
#: the talk writes them; results whose ``system`` matches one (case and spacing ignored) take
#: its place, the others follow in order of appearance. ``--system-order`` replaces the list.
IWSLT25_SYSTEM_ORDER = (
    "Llama-3.1-8B-Instruct (zero-shot)",
    "B. Text-only LoRA (MT/QA)",
    "SeamlessM4T-v2-large",
    "A.1 Speech Projector (ASR/ST)",
    "A.2 Speech Projector (ASR/ST/SQA)",
    "A.1 + B (ASR/ST/MT/SQA/QA)",
    "A.1 + B (ASR/ST/MT/fluent SQA/fluent QA)",
    "A.2 + B (ASR/ST/MT/SQA/QA)",
    "A.2 + B (ASR/ST/MT/fluent SQA/fluent QA)",
)


#: Test set of each task in the talk's tables (ASR/ST: ACL 60/60; SQA: Spoken-SQuAD).
IWSLT25_DATASETS = {"asr": "ACL6060", "st": "ACL6060", "sqa": "SpokenSQuAD"}


_IWSLT25_ST_LANGS = ("de", "it", "zh")


_IWSLT25_SQA_LANGS = ("en", "de", "it", "zh")


# (title, columns): a column is (header, task, language, metric).
_IWSLT25_TABLES = (
    (
        "IWSLT 2025 IF (talk layout): ASR WER (↓), ST BLEU / COMET (↑), SQA LLM-as-judge (↑)",
        [("WER en", "asr", "en", "wer")]
        + [(f"BLEU en-{t}", "st", t, "bleu") for t in _IWSLT25_ST_LANGS]
        + [(f"COMET en-{t}", "st", t, "comet") for t in _IWSLT25_ST_LANGS]
        + [(f"SQA en-{t}", "sqa", t, "judge_accuracy") for t in _IWSLT25_SQA_LANGS],
    ),
    (
        "IWSLT 2025 IF official metrics: talk-level WER (↓), re-segmented COMET (↑), "
        "SQA BERTScore F1 (↑)",
        [("official WER en", "asr", "en", "official_wer")]
        + [(f"official COMET en-{t}", "st", t, "official_comet") for t in _IWSLT25_ST_LANGS]
        + [(f"BERTScore en-{t}", "sqa", t, "bertscore_f1") for t in _IWSLT25_SQA_LANGS],
    ),
)


def _name_key(name):
    return " ".join(str(name).lower().split())


def _iwslt25_cells(rows, datasets, splits):
    """``{(system, task, lang, metric): row}`` of the talk's test sets; a ``ValueError`` when
    one cell would mix several test sets (splits)."""
    wanted = {task: _dataset_id(name) for task, name in datasets.items()}
    cells, origin = {}, {}
    for row in rows:
        task = row["task"]
        if task not in wanted or _dataset_id(row["dataset"]) != wanted[task]:
            continue
        if splits is not None and row["split"] not in splits:
            continue
        lang = row["source_lang"] if task == "asr" else row["target_lang"] or row["source_lang"]
        key = (row["system"], task, lang, row["metric"])
        if key in cells:
            raise ValueError(
                f"iwslt25_tables: system {row['system']!r} has {row['metric']} for {task} "
                f"({lang}) on several test sets ({origin[key]} and {row['dataset']} "
                f"{row['split']}); choose one split per cell with splits=[...] (--splits)."
            )
        cells[key] = row
        origin[key] = f"{row['dataset']} {row['split']}"
    return cells


def iwslt25_tables(results, *, system_order=None, datasets=None, splits=None, decimals=None):
    """Two Markdown tables in the layout of the IWSLT 2025 talk's results: the team's metrics
    (ASR WER en | BLEU en-de/it/zh | COMET en-de/it/zh | SQA LLM-as-judge en-en/de/it/zh)
    and the organizers' official ones (``iwslt_scoring``: talk-level WER | re-segmented
    COMET en-de/it/zh | BERTScore F1 en-en/de/it/zh).

    Rows are systems, ordered by ``system_order`` (default :data:`IWSLT25_SYSTEM_ORDER`,
    names compared without case and extra spaces), then the other systems in order of
    appearance; a table lists the systems with at least one cell in it. Cells are
    ``mean ± std`` over seeds (:func:`aggregate`), ``–`` when missing; COMET and BERTScore
    are x100 (the talk prints COMET in [0, 1]), the judge accuracy carries a ``%``.

    Arguments
    ---------
    results : list of dict
        Validated results.
    system_order : list of str, optional
        Row order (the talk's by default).
    datasets : dict, optional
        Task -> dataset name (default :data:`IWSLT25_DATASETS`).
    splits : list of str, optional
        Only results of these splits (e.g. ``["eval_asr", "eval_en-de", "test"]``); needed
        when a system has a cell's metric on several splits (e.g. dev and eval).
    decimals : int, optional
        Fixed number of decimals (default: 1, 2 for BLEU as in the talk).

    Returns
    -------
    str
        The tables, each followed by a note.

    Example
    -------
    >>> from speechmapper_plugin.evaluation.results import make_result
    >>> runs = [make_result("A.1 Speech Projector (ASR/ST)", "ACL6060", "eval_asr", "asr",
    ...                     {"wer": 19.8}, []),
    ...         make_result("SeamlessM4T-v2-large", "ACL6060", "eval_asr", "asr",
    ...                     {"wer": 17.6}, [])]
    >>> print("\\n".join(iwslt25_tables(runs).splitlines()[2:6]))
    | System | WER en | BLEU en-de | BLEU en-it | BLEU en-zh | COMET en-de | COMET en-it | COMET en-zh | SQA en-en | SQA en-de | SQA en-it | SQA en-zh |
    |---|---|---|---|---|---|---|---|---|---|---|---|
    | SeamlessM4T-v2-large | 17.6 | – | – | – | – | – | – | – | – | – | – |
    | A.1 Speech Projector (ASR/ST) | 19.8 | – | – | – | – | – | – | – | – | – | – |
    """
    if not results:
        raise ValueError("iwslt25_tables: no results to report.")
    order = [_name_key(n) for n in (IWSLT25_SYSTEM_ORDER if system_order is None else system_order)]
    cells = _iwslt25_cells(aggregate(results), datasets or IWSLT25_DATASETS, splits)
    appearance = list(dict.fromkeys(r["system"] for r in results))

    def rank(name):
        key = _name_key(name)
        return (order.index(key), 0) if key in order else (len(order), appearance.index(name))

    tables = []
    for title, columns in _IWSLT25_TABLES:
        present = {k[0] for k in cells if any(k[1:] == c[1:] for c in columns)}
        systems = sorted(present, key=rank)
        lines = [
            f"### {title}",
            "",
            "| System | " + " | ".join(c[0] for c in columns) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        seeds = set()
        for system in systems:
            row_cells = []
            for _, task, lang, metric in columns:
                row = cells.get((system, task, lang, metric))
                if row is None:
                    row_cells.append(MISSING)
                    continue
                seeds.add(row["n"])
                places = decimals if decimals is not None else (2 if metric == "bleu" else 1)
                if metric == "judge_accuracy":  # ± over the judges, as in Table 2
                    parts = [v for k, v in cells.items() if k[:3] == (system, task, lang)]
                    parts = [r for r in parts if _is_judge_part(r["metric"])]
                    row_cells.append(_format_judge(row, judge_spread(parts), places))
                    continue
                row_cells.append(_format(row, places, _is_percent(metric)))
            lines.append(f"| {_escape(system)} | " + " | ".join(row_cells) + " |")
        if not systems:
            lines.append(
                "_No result holds these metrics (official ones: python -m "
                "speechmapper_plugin.evaluation.iwslt_scoring)._"
            )
        spread = "single runs"
        if seeds and max(seeds) > 1:
            span = f"{min(seeds)}–{max(seeds)}" if min(seeds) < max(seeds) else str(max(seeds))
            spread = f"mean ± sample std (ddof=1) over {span} seed(s)"
        where = ", ".join(f"{t.upper()}: {d}" for t, d in (datasets or IWSLT25_DATASETS).items())
        judge_note = (
            "; SQA LLM-as-judge: ± over the judges (population std)"
            if any(c[3] == "judge_accuracy" for c in columns)
            else ""
        )
        lines += [
            "",
            f"_Cells: {spread}{judge_note}; {MISSING}: not evaluated; COMET/BERTScore x100; "
            f"{where}._",
        ]
        tables.append("\n".join(lines))
    return "\n\n".join(tables) + "\n"
