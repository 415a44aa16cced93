"""Hugging Face model-index metadata (``model_index``, ``model_card_metadata``) built from the
result files, for the model card of a published model.

Authors
-------
speechmapper developers, 2026
"""

import re

from speechmapper_plugin.evaluation.results import TASKS
from speechmapper_plugin.evaluation.tables import (
    _DATASETS,
    _METRIC_LABELS,
    _TASK_NAMES,
    _column,
    _column_labels,
    _column_sort_key,
    _dataset_id,
    _is_judge_part,
    aggregate,
    judge_spread,
)

_HF_TASK_TYPES = {
    "asr": "automatic-speech-recognition",
    "st": "translation",
    "sqa": "question-answering",
}


_HF_METRIC_TYPES = {"judge_accuracy": "accuracy"}


def _hf_dataset(row):
    ident = _dataset_id(row["dataset"])
    hub = _DATASETS.get(ident)
    task, src, tgt = row["task"], row["source_lang"], row["target_lang"]
    entry = {"name": _column_labels(task, [_column(row)])[_column(row)]}
    entry["type"] = hub or row["dataset"]
    split = row["split"]
    match = re.fullmatch(r"(test|dev|validation)[-_.](clean|other)", split.lower())
    if ident == "librispeech" and match:  # hub layout: config "clean"/"other", split "test"
        entry["config"] = match.group(2)
        entry["split"] = "validation" if match.group(1) == "dev" else match.group(1)
    else:
        entry["split"] = split
    if task == "st":
        entry["config"] = f"{src}_{tgt}" if ident == "covost2" else f"{src}-{tgt}"
        entry["args"] = {"source_language": src, "target_language": tgt}
    else:
        entry["args"] = {"language": src}
    return entry


def model_index(results, model_name, system=None, metrics=None):
    """Hugging Face ``model-index`` metadata for the results of one system.

    One entry per test set, with ``task`` (``automatic-speech-recognition``, ``translation``
    or ``question-answering``), ``dataset`` (``name``, hub-style ``type`` from a small mapping
    — an unknown dataset keeps its name —, ``split``, and ``config``/``args`` holding the
    language pair for ST) and ``metrics`` (``type``, ``value``, ``name``; a metric signature
    goes to ``args``). With several seeds ``value`` is the mean (rounded to 4 decimals) and
    ``name`` states the number of seeds and the std.

    Arguments
    ---------
    results : list of dict
        Validated results.
    model_name : str
        The model's name on the card.
    system : str, optional
        The system to describe; required when ``results`` hold several systems.
    metrics : list of str, optional
        Only these metrics.

    Returns
    -------
    dict
        ``{"model-index": [{"name": model_name, "results": [...]}]}``.

    Example
    -------
    >>> from speechmapper_plugin.evaluation.results import make_result
    >>> r = make_result("S", "LibriSpeech", "test-clean", "asr", {"wer": 2.9}, [])
    >>> entry = model_index([r], "my-model")["model-index"][0]["results"][0]
    >>> entry["task"]["type"], entry["dataset"]["type"], entry["metrics"][0]["value"]
    ('automatic-speech-recognition', 'librispeech_asr', 2.9)
    """
    if not results:
        raise ValueError("model_index: no results to describe.")
    systems = list(dict.fromkeys(r["system"] for r in results))
    if system is None:
        if len(systems) > 1:
            raise ValueError(
                f"model_index: the results hold {len(systems)} systems; a model card describes "
                f"one: choose it with system=... (--system): {'; '.join(systems)}."
            )
        system = systems[0]
    if system not in systems:
        raise ValueError(
            f"model_index: system {system!r} is not in the results; available: "
            f"{'; '.join(systems)}."
        )
    rows = aggregate([r for r in results if r["system"] == system])
    if metrics is not None:
        rows = [r for r in rows if r["metric"] in metrics]
        if not rows:
            raise ValueError(
                f"model_index: none of the metrics {', '.join(metrics)} was computed for "
                f"system {system!r}."
            )
    parts = {}
    for row in rows:
        if _is_judge_part(row["metric"]):  # per-judge accuracies: summarized below
            parts.setdefault(_column(row), []).append(row)
    rows = [row for row in rows if not _is_judge_part(row["metric"])]
    entries = {}
    for row in rows:
        key = (TASKS.index(row["task"]), _column_sort_key(_column(row)))
        if key not in entries:
            entries[key] = {
                "task": {
                    "type": _HF_TASK_TYPES[row["task"]],
                    "name": _TASK_NAMES[row["task"]],
                },
                "dataset": _hf_dataset(row),
                "metrics": [],
            }
        name = _METRIC_LABELS.get(row["metric"], row["metric"])
        if row["metric"] == "judge_accuracy":
            judged = parts.get(_column(row), [])
            count = sum(1 for r in judged if r["metric"].startswith("judge_accuracy["))
            spread = judge_spread(judged)
            if count > 1 and spread is not None:
                name += f" (mean of {count} judges, std {spread:.4g} over judges)"
        if row["n"] > 1:
            name += f" (mean of {row['n']} seeds, std {row['std']:.4g})"
        metric = {
            "type": _HF_METRIC_TYPES.get(row["metric"], row["metric"]),
            "value": round(row["mean"], 4),
            "name": name,
        }
        if row["signatures"]:
            metric["args"] = {"signature": " ; ".join(row["signatures"])}
        entries[key]["metrics"].append(metric)
    ordered = [entries[k] for k in sorted(entries)]
    return {"model-index": [{"name": model_name, "results": ordered}]}


def model_card_metadata(index):
    """The model-card front matter (``---`` YAML ``---``) for a ``model_index`` dict.

    Example
    -------
    >>> print(model_card_metadata({"model-index": [{"name": "m", "results": []}]}), end="")
    ---
    model-index:
    - name: m
      results: []
    ---
    """
    import yaml

    body = yaml.safe_dump(index, sort_keys=False, allow_unicode=True)
    return f"---\n{body}---\n"
