"""BERTScore F1 rescaled with the baseline, as in the IWSLT 2025 SQA scoring, from a hub id or a
local model (``bertscore_f1``, ``resolve_bertscore_model``).

Authors
-------
speechmapper developers, 2026
"""

import os
from pathlib import Path

from speechmapper_plugin.data.manifests import ANSWER_SEPARATOR
from speechmapper_plugin.evaluation.comet import _hf_offline, _looks_like_path
from speechmapper_plugin.evaluation.metrics import _language_code, _version


class BertScoreModelUnavailableError(RuntimeError):
    """The BERTScore model cannot be found offline or downloaded."""


def _bertscore_message(model, reason):
    return (
        f"BERTScore model {model!r} {reason}. On a machine with internet access download it "
        f"(huggingface-cli download {model}), or point to a local copy: --bertscore_model="
        "/path/to/folder (config.json, weights, tokenizer) with --bertscore_num_layers=N (the "
        "layer bert_score uses, e.g. 17 for roberta-large, 9 for bert-base-multilingual-cased "
        "and 8 for bert-base-chinese) and --bertscore_baseline=FILE (bert_score's "
        "rescale_baseline/<lang>/<model>.tsv)."
    )


def resolve_bertscore_model(lang, model=None, num_layers=None, baseline_path=None):
    """The model, layer and baseline file ``bert_score`` scores ``lang`` with, checked to be
    there (no unscaled or downloaded fallback when something is missing).

    Arguments
    ---------
    lang : str
        Language of the answers; picks ``bert_score``'s default model when ``model`` is None.
    model : str, optional
        Hub id or local folder of the encoder.
    num_layers : int, optional
        Layer used; default: ``bert_score``'s tuned layer of a known hub model (required for
        a local folder).
    baseline_path : str, optional
        Rescaling baseline file; default: the one ``bert_score`` ships for ``lang`` and a
        hub model (required for a local folder).

    Returns
    -------
    tuple
        ``(model, num_layers, baseline_path)``.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny.bertscore import build_tiny_bertscore
    >>> tiny = build_tiny_bertscore(tempfile.mkdtemp(), ["in paris", "two cats"])
    >>> resolve_bertscore_model("en", **tiny)[1]
    2
    >>> resolve_bertscore_model("en", model=tiny["model"])
    Traceback (most recent call last):
      ...
    ValueError: BERTScore model ... is a local folder: give --bertscore_num_layers and ...
    >>> resolve_bertscore_model("en", model="/nonexistent/model")
    Traceback (most recent call last):
      ...
    speechmapper_plugin.evaluation.bertscore.BertScoreModelUnavailableError: BERTScore model ...
    """
    from bert_score.utils import lang2model, model2layers

    lang = _language_code(lang, "bertscore_f1")
    model = str(model) if model else lang2model[lang]
    local = _looks_like_path(model)
    if local:
        folder = Path(os.path.expanduser(model))
        if not (folder / "config.json").is_file():
            raise BertScoreModelUnavailableError(
                _bertscore_message(model, "is not a local model folder (no config.json)")
            )
        missing = [
            flag
            for flag, value in (
                ("--bertscore_num_layers", num_layers),
                ("--bertscore_baseline", baseline_path),
            )
            if value is None
        ]
        if missing:
            raise ValueError(
                f"BERTScore model {model!r} is a local folder: give {' and '.join(missing)} "
                "(bert_score knows the layer and baseline of hub models only)."
            )
    else:
        if num_layers is None:
            if model not in model2layers:
                raise ValueError(
                    f"BERTScore model {model!r} has no default layer in bert_score: give "
                    "--bertscore_num_layers."
                )
            num_layers = model2layers[model]
        if _hf_offline():
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(model, "config.json"), str):
                raise BertScoreModelUnavailableError(
                    _bertscore_message(
                        model,
                        "is not in the Hugging Face cache and HF_HUB_OFFLINE/"
                        "TRANSFORMERS_OFFLINE forbids downloads",
                    )
                )
        if baseline_path is None:
            import bert_score

            baseline_path = os.path.join(
                os.path.dirname(bert_score.__file__), "rescale_baseline", lang, f"{model}.tsv"
            )
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
        raise ValueError(f"bertscore num_layers must be an int >= 0, got {num_layers!r}.")
    if not os.path.isfile(baseline_path):
        raise FileNotFoundError(
            f"BERTScore baseline file {baseline_path} not found: the organizers rescale F1 "
            f"with the baseline of {model!r} for {lang!r}; give the file with "
            "--bertscore_baseline (format: bert_score's rescale_baseline/<lang>/<model>.tsv)."
        )
    return model, num_layers, str(baseline_path)


def bertscore_f1(
    hypotheses,
    references,
    lang,
    model=None,
    num_layers=None,
    baseline_path=None,
    batch_size=64,
    device=None,
):
    """Mean BERTScore F1 (x100), rescaled with the model's baseline, as the organizers score SQA.

    Arguments
    ---------
    hypotheses : list of str
        Generated answers.
    references : list of str
        Reference answers; several answers of one question joined with
        ``manifests.ANSWER_SEPARATOR`` are multiple references (the best F1 counts).
    lang : str
        Answer language.
    model, num_layers, baseline_path
        See :func:`resolve_bertscore_model`.
    batch_size : int
        ``bert_score`` batch size.
    device : str, optional
        Default: CUDA if available.

    Returns
    -------
    dict
        ``bertscore_f1`` (x100), ``num_utterances``, ``model`` and ``signature``
        (``bert_score``'s hash, e.g. "roberta-large_L17_no-idf_version=...-rescaled").

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny.bertscore import build_tiny_bertscore
    >>> tiny = build_tiny_bertscore(tempfile.mkdtemp(), ["in paris", "two cats", "yes"])
    >>> out = bertscore_f1(["in paris"], ["in paris"], "en", **tiny)
    >>> round(out["bertscore_f1"], 3), out["num_utterances"]
    (100.0, 1)
    """
    import bert_score
    import torch

    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("bertscore_f1: hypotheses and references must be lists of strings.")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"bertscore_f1: {len(hypotheses)} hypotheses but {len(references)} references."
        )
    if not hypotheses:
        raise ValueError("bertscore_f1: no answer to score (the lists are empty).")
    model, num_layers, baseline_path = resolve_bertscore_model(
        lang, model, num_layers, baseline_path
    )
    hyps = ["" if h is None else str(h) for h in hypotheses]
    refs = [[a.strip() for a in str(r or "").split(ANSWER_SEPARATOR)] for r in references]
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        (_, _, f1), signature = bert_score.score(
            hyps,
            refs,
            model_type=model,
            num_layers=num_layers,
            lang=_language_code(lang, "bertscore_f1"),
            rescale_with_baseline=True,
            baseline_path=baseline_path,
            batch_size=batch_size,
            device=device,
            return_hash=True,
        )
    except OSError as err:
        raise BertScoreModelUnavailableError(
            _bertscore_message(model, f"could not be loaded ({err})")
        ) from err
    return {
        "bertscore_f1": 100.0 * float(f1.mean()),
        "num_utterances": len(hyps),
        "model": model,
        "signature": f"{signature}|bert-score:{_version('bert-score')}|x100",
    }
