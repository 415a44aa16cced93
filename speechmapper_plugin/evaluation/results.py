"""Result files: one JSON per (system, dataset, split, task, language pair, seed).

Each file holds every metric of one evaluation run, the metric signatures (sacreBLEU, COMET
model, judge, ...), the decoding settings and the decoded outputs, so that tables can be
rebuilt, seeds averaged and outputs inspected long after the run. The layout is versioned by
the ``"schema"`` key (:data:`SCHEMA`); ``speechmapper_plugin.evaluation.report`` turns a set of result
files into the papers' tables and a Hugging Face ``model-index``.

Fields::

    schema          "speechmapper-result/1"
    system          row label, e.g. "SpeechMapper stage 2 [ASR CE+MSE]"
    setting         null | "topline" | "baseline" | "zero-shot" | "in-domain"
    llm             hub id or path of the LLM backbone, or null
    dataset         e.g. "LibriSpeech", "EuroParl-ST", "CoVoST2", "SpokenSQuAD"
    split           e.g. "test-clean", "test"
    task            "asr" | "st" | "sqa"
    source_lang     e.g. "en"
    target_lang     e.g. "de" (required for "st"), null otherwise allowed
    seed            int or null (a single run)
    metrics         {name: finite number}
    signatures      {metric name (or family prefix, e.g. "lid" for lid_*): str}
    decoding        free-form dict (prompt, max_new_tokens, ...)
    num_utterances  number of entries in "outputs"
    outputs         [{"id": str, "hypothesis": str, "reference": str, ...}]
    created         ISO-8601 time (UTC)
    versions        {package: version}

Metric units follow the papers: ``wer``, ``cer``, ``bleu``, ``comet`` (system score x100,
as in Table 1), ``judge_accuracy`` and the ``*_pct`` metrics (``lid_target_pct``,
``lid_en_pct``, ``stuck_pct``) are percentages.

Authors
-------
speechmapper developers, 2026
"""

import json
import logging
import math
import numbers
import os
import platform
import re
from datetime import datetime, timezone
from importlib import metadata

from speechmapper_plugin.utils.files import write_json

logger = logging.getLogger(__name__)


SCHEMA = "speechmapper-result/1"


TASKS = ("asr", "st", "sqa")


SETTINGS = ("topline", "baseline", "zero-shot", "in-domain")


# Distributions recorded in "versions" (those not installed are left out).
_VERSIONED = (
    "speechmapper-plugin",
    "torch",
    "torchaudio",
    "speechbrain",
    "transformers",
    "peft",
    "jiwer",
    "sacrebleu",
    "unbabel-comet",
    "langdetect",
)


def _installed_versions():
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def make_result(
    system,
    dataset,
    split,
    task,
    metrics,
    outputs,
    *,
    seed=None,
    setting=None,
    llm=None,
    source_lang="en",
    target_lang=None,
    signatures=None,
    decoding=None,
):
    """Build a validated result dictionary (see the module docstring for the fields).

    ``created`` (UTC time), ``versions`` (installed packages) and ``num_utterances``
    (``len(outputs)``) are filled in; metric values are converted to ``float`` (numpy and
    0-d torch values are accepted).

    Arguments
    ---------
    system : str
        Row label of the tables, e.g. ``"SpeechMapper stage 2 [ASR CE+MSE]"``.
    dataset : str
        Dataset name, e.g. ``"LibriSpeech"``.
    split : str
        Split name, e.g. ``"test-clean"``.
    task : str
        One of ``"asr"``, ``"st"``, ``"sqa"``.
    metrics : dict
        ``{name: number}``, e.g. ``{"wer": 3.1, "cer": 1.2}``; values must be finite.
    outputs : list of dict
        One entry per utterance with ``"id"``, ``"hypothesis"`` and ``"reference"``
        (strings); further keys (``"source"``, ``"question"``, ...) are kept.
    seed : int, optional
        Training/decoding seed; results differing only by seed are averaged by the report.
    setting : str, optional
        One of ``"topline"``, ``"baseline"``, ``"zero-shot"``, ``"in-domain"``.
    llm : str or os.PathLike, optional
        Hub id or path of the LLM backbone (stored as a string).
    source_lang : str
        Language of the speech.
    target_lang : str, optional
        Output language; required for ``task="st"``.
    signatures : dict, optional
        ``{metric: signature string}``.
    decoding : dict, optional
        Decoding settings (prompt, max_new_tokens, ...); must be JSON-serializable.

    Returns
    -------
    dict
        The result, already checked by :func:`validate_result`.

    Example
    -------
    >>> r = make_result("Seamless ASR", "LibriSpeech", "test-clean", "asr",
    ...                 {"wer": 2.7, "cer": 0.9},
    ...                 [{"id": "1-2-3", "hypothesis": "a cat", "reference": "a cat"}])
    >>> r["schema"], r["num_utterances"], r["metrics"]["wer"]
    ('speechmapper-result/1', 1, 2.7)
    """
    if isinstance(outputs, (list, tuple)):
        outputs = [dict(o) if isinstance(o, dict) else o for o in outputs]
    result = {
        "schema": SCHEMA,
        "system": system,
        "setting": setting,
        "llm": None if llm is None else str(llm),
        "dataset": dataset,
        "split": split,
        "task": task,
        "source_lang": source_lang,
        "target_lang": target_lang,
        "seed": seed,
        "metrics": _to_floats(metrics, "make_result"),
        "signatures": dict(signatures or {}),
        "decoding": dict(decoding or {}),
        "num_utterances": len(outputs) if isinstance(outputs, list) else None,
        "outputs": outputs,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _installed_versions(),
    }
    validate_result(result, where="make_result")
    try:
        json.dumps(result["decoding"], allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"make_result: 'decoding' must be JSON-serializable (plain str/number/list/dict "
            f"values): {err}."
        ) from err
    return result


def _to_floats(metrics, where):
    if not isinstance(metrics, dict):
        raise ValueError(
            f"{where}: 'metrics' must be a dict {{name: number}}, got {type(metrics).__name__}."
        )
    out = {}
    for name, value in metrics.items():
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            try:
                value = value.item()  # numpy / 0-d torch values
            except (TypeError, ValueError):
                pass  # not a single number: validate_result reports it
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            value = float(value)
        out[name] = value
    return out


def _fail(where, message):
    raise ValueError(f"{where}: {message}")


def _check_str(obj, key, where, nullable=False, nonempty=True):
    value = obj[key]
    if value is None and nullable:
        return
    if not isinstance(value, str) or (nonempty and not value.strip()):
        expected = "a non-empty string" + (" or null" if nullable else "")
        _fail(where, f"key '{key}' is {value!r} but must be {expected}.")


def validate_result(obj, where="result"):
    """Check that ``obj`` follows :data:`SCHEMA`; raise ``ValueError`` otherwise.

    The message names ``where`` (the file), the offending key, the value found and what is
    expected. Keys not listed in the schema are allowed (and kept).

    Arguments
    ---------
    obj : dict
        A parsed result.
    where : str
        Name used in error messages (usually the file path).

    Example
    -------
    >>> validate_result({"schema": "speechmapper-result/1"}, where="r.json")
    Traceback (most recent call last):
    ...
    ValueError: r.json: missing key 'system' (schema speechmapper-result/1 needs: ...).
    """
    if not isinstance(obj, dict):
        _fail(where, f"a result must be a JSON object, got {type(obj).__name__}.")
    schema = obj.get("schema")
    if schema != SCHEMA:
        _fail(
            where,
            f"key 'schema' is {schema!r} but this version of speechmapper_plugin reads "
            f"{SCHEMA!r}; re-create the file with speechmapper_plugin.evaluation.results.make_result "
            "(or use the package version that wrote it).",
        )
    required = (
        "system",
        "setting",
        "llm",
        "dataset",
        "split",
        "task",
        "source_lang",
        "target_lang",
        "seed",
        "metrics",
        "signatures",
        "decoding",
        "num_utterances",
        "outputs",
        "created",
        "versions",
    )
    for key in required:
        if key not in obj:
            _fail(where, f"missing key '{key}' (schema {SCHEMA} needs: {', '.join(required)}).")
    for key in ("system", "dataset", "split", "source_lang", "created"):
        _check_str(obj, key, where)
    _check_str(obj, "llm", where, nullable=True)
    if obj["task"] not in TASKS:
        _fail(where, f"key 'task' is {obj['task']!r} but must be one of {', '.join(TASKS)}.")
    if obj["setting"] is not None and obj["setting"] not in SETTINGS:
        _fail(
            where,
            f"key 'setting' is {obj['setting']!r} but must be null or one of "
            f"{', '.join(SETTINGS)}.",
        )
    _check_str(obj, "target_lang", where, nullable=obj["task"] != "st")
    seed = obj["seed"]
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        _fail(where, f"key 'seed' is {seed!r} but must be an integer or null.")
    metrics = obj["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        _fail(where, f"key 'metrics' is {metrics!r} but must be a non-empty {{name: number}}.")
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            _fail(where, f"key 'metrics' has the name {name!r}; metric names must be strings.")
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok or not math.isfinite(value):
            _fail(
                where,
                f"key 'metrics' → {name!r} is {value!r} but must be a finite number "
                "(drop a metric that could not be computed instead of storing NaN).",
            )
    for key in ("signatures", "versions"):
        value = obj[key]
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            _fail(where, f"key '{key}' is {value!r} but must be a {{str: str}} mapping.")
    if not isinstance(obj["decoding"], dict):
        _fail(where, f"key 'decoding' is {obj['decoding']!r} but must be a dict.")
    outputs = obj["outputs"]
    if not isinstance(outputs, list):
        _fail(where, "key 'outputs' must be a list of {id, hypothesis, reference} objects.")
    seen = set()
    for i, entry in enumerate(outputs):
        if not isinstance(entry, dict):
            _fail(where, f"key 'outputs' → entry {i} is {entry!r} but must be an object.")
        for field in ("id", "hypothesis", "reference"):
            if not isinstance(entry.get(field), str):
                _fail(
                    where,
                    f"key 'outputs' → entry {i} field '{field}' is {entry.get(field)!r} but "
                    "must be a string.",
                )
        if entry["id"] in seen:
            _fail(where, f"key 'outputs' → id {entry['id']!r} appears twice; ids must be unique")
        seen.add(entry["id"])
    count = obj["num_utterances"]
    if not isinstance(count, int) or isinstance(count, bool) or count != len(outputs):
        _fail(
            where,
            f"key 'num_utterances' is {count!r} but 'outputs' holds {len(outputs)} entries.",
        )


def result_key(result):
    """The identity of a run: two results with the same key describe the same run.

    ``(system, dataset, split, task, source_lang, target_lang, seed)``; for ASR a
    ``target_lang`` equal to ``source_lang`` is the same as none (``None``).

    Example
    -------
    >>> result_key({"system": "S", "dataset": "CoVoST2", "split": "test", "task": "st",
    ...             "source_lang": "en", "target_lang": "de", "seed": 1})
    ('S', 'CoVoST2', 'test', 'st', 'en', 'de', 1)
    >>> result_key({"system": "S", "dataset": "LibriSpeech", "split": "test-clean",
    ...             "task": "asr", "source_lang": "en", "target_lang": "en", "seed": None})
    ('S', 'LibriSpeech', 'test-clean', 'asr', 'en', None, None)
    """
    target = result["target_lang"]
    if result["task"] == "asr" and target == result["source_lang"]:
        target = None
    fields = ("system", "dataset", "split", "task", "source_lang")
    return tuple(result[k] for k in fields) + (target, result["seed"])


def _slug(text):
    return re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-.") or "x"


def default_file_name(result):
    """File name built from system, dataset, split, task, language pair and seed.

    Example
    -------
    >>> default_file_name({"system": "Stage 2 [ASR CE+MSE]", "dataset": "EuroParl-ST",
    ...     "split": "test", "task": "st", "source_lang": "en", "target_lang": "de", "seed": 2})
    'stage-2-asr-ce-mse__europarl-st__test__st__en-de__seed2.json'
    """
    langs = result["source_lang"]
    if result.get("target_lang"):
        langs = f"{langs}-{result['target_lang']}"
    seed = "noseed" if result.get("seed") is None else f"seed{result['seed']}"
    parts = [result["system"], result["dataset"], result["split"], result["task"], langs]
    return "__".join([_slug(p) for p in parts] + [seed]) + ".json"


def write_result(folder_or_path, result):
    """Validate ``result`` and write it atomically; returns the file path.

    A path ending in ``.json`` is used as is; otherwise it is a folder and the file name comes
    from :func:`default_file_name`, so seeds and language pairs get their own files.
    Re-writing the same run replaces its file; a file holding a *different* run (two system
    names that slugify alike) is never overwritten: a ``ValueError`` asks for a path.

    Arguments
    ---------
    folder_or_path : str
        Destination folder, or a ``.json`` file path.
    result : dict
        From :func:`make_result`.

    Example
    -------
    >>> import tempfile
    >>> r = make_result("S", "LibriSpeech", "test-clean", "asr", {"wer": 5.0}, [], seed=1)
    >>> os.path.basename(write_result(tempfile.mkdtemp(), r))
    's__librispeech__test-clean__asr__en__seed1.json'
    """
    validate_result(result, where="write_result")
    folder_or_path = os.fspath(folder_or_path)
    if folder_or_path.endswith(".json"):
        path = folder_or_path
    else:
        path = os.path.join(folder_or_path, default_file_name(result))
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                existing = json.load(f)
        except (OSError, ValueError):
            existing = None  # not a readable result: the atomic write replaces it
        if isinstance(existing, dict) and "schema" in existing:
            try:
                other = result_key(existing)
            except KeyError:
                other = None
            if other != result_key(result):
                raise ValueError(
                    f"write_result: {path} already holds another run {other}; refusing to "
                    f"overwrite it with {result_key(result)}. Pass an explicit .json path."
                )
    write_json(path, result)
    return path


def _json_files(path):
    if os.path.isdir(path):
        found = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            found.extend(os.path.join(root, f) for f in sorted(files) if f.endswith(".json"))
        return found
    if os.path.isfile(path):
        return [path]
    raise FileNotFoundError(f"load_results: {path} is neither a file nor a folder.")


def load_results(paths):
    """Load and validate result files.

    Folders are searched recursively for ``*.json``; files given explicitly are read whatever
    their extension. A JSON file without a ``"schema"`` key is not a result: it is skipped and
    counted in a log line. A file that is not valid JSON, or that carries a ``"schema"`` but
    does not validate, raises ``ValueError`` naming the file; two files describing the same run
    (same :func:`result_key`) also raise, since the report would count that seed twice.

    Arguments
    ---------
    paths : str or list of str
        Files and/or folders.

    Returns
    -------
    list of dict
        The results, in path order (folders sorted).

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for seed in (1, 2):
    ...     _ = write_result(folder, make_result("S", "LS", "test", "asr", {"wer": 4.0 + seed},
    ...                                          [], seed=seed))
    >>> [r["metrics"]["wer"] for r in load_results(folder)]
    [5.0, 6.0]
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    results, origin, skipped, read = [], {}, 0, set()
    for given in paths:
        for path in _json_files(os.fspath(given)):
            real = os.path.realpath(path)
            if real in read:
                continue
            read.add(real)
            try:
                with open(path, encoding="utf-8") as f:
                    obj = json.load(f)
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}: not a UTF-8 JSON file ({err}).") from err
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{path}: not valid JSON ({err}); delete or re-create the file."
                ) from err
            if not isinstance(obj, dict) or "schema" not in obj:
                skipped += 1
                continue
            validate_result(obj, where=path)
            key = result_key(obj)
            if key in origin:
                raise ValueError(
                    f"{path} and {origin[key]} hold the same run (system, dataset, split, "
                    f"task, source_lang, target_lang, seed) = {key}; keep only one."
                )
            origin[key] = path
            results.append(obj)
    logger.info(
        "load_results: %d result file(s) loaded, %d other JSON file(s) ignored.",
        len(results),
        skipped,
    )
    return results
