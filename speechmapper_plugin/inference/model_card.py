"""The model card (``README.md``) of a published model, built with ``huggingface_hub``'s
``ModelCard`` / ``ModelCardData`` / ``EvalResult``: the ``model-index`` of its evaluation
results (``evaluation.model_index``), ``base_model`` (the LLM's hub id), ``library_name:
speechbrain``, the license, the datasets, a usage snippet and the papers' citations.

Authors
-------
speechmapper developers, 2026
"""

import logging
import os

from speechmapper_plugin.inference.folders import (
    HPARAMS_FILE,
    MODEL_CARD,
    _plain,
    _read_yaml,
    is_local_path,
)

logger = logging.getLogger(__name__)


SPEECHMAPPER_CITATION = """@article{mohapatra2026speechmapper,
  title  = {SpeechMapper: Speech-to-text Embedding Projector for LLMs},
  author = {Mohapatra, Biswesh and Zanon Boito, Marcely and Calapodescu, Ioan},
  year   = {2026}
}"""


IWSLT25_CITATION = """@inproceedings{lee2025naver,
  title     = {NAVER LABS Europe Submission to the Instruction-following Track},
  author    = {Lee, Beomseok and Zanon Boito, Marcely and Besacier, Laurent and
               Calapodescu, Ioan},
  booktitle = {Proceedings of the 22nd International Conference on Spoken Language
               Translation (IWSLT 2025)},
  year      = {2025},
  note      = {arXiv:2506.01808}
}"""


# The hyperparameters the card describes.
_CARD_KEYS = (
    "llm_source",
    "sfm_source",
    "sfm_kind",
    "sfm_layer",
    "frame_average",
    "projector_type",
    "lora_adapter",
    "st_instructions",
)


def eval_results(results, model_name, system=None):
    """``huggingface_hub.EvalResult`` objects of one system's result files.

    Arguments
    ---------
    results : list of dict
        Validated results (``evaluation.results.load_results``).
    model_name : str
        The model's name on the card.
    system : str, optional
        The system to describe when ``results`` hold several.

    Returns
    -------
    list of huggingface_hub.EvalResult

    Example
    -------
    >>> from speechmapper_plugin.evaluation.results import make_result
    >>> r = make_result("S", "LibriSpeech", "test-clean", "asr", {"wer": 2.9}, [])
    >>> [(e.task_type, e.dataset_type, e.metric_type, e.metric_value)
    ...  for e in eval_results([r], "m")]
    [('automatic-speech-recognition', 'librispeech_asr', 'wer', 2.9)]
    """
    from huggingface_hub import EvalResult

    from speechmapper_plugin.evaluation.model_index import model_index

    index = model_index(results, model_name, system=system)["model-index"][0]
    out = []
    for entry in index["results"]:
        dataset = entry["dataset"]
        for metric in entry["metrics"]:
            out.append(
                EvalResult(
                    task_type=entry["task"]["type"],
                    task_name=entry["task"]["name"],
                    dataset_type=dataset["type"],
                    dataset_name=dataset["name"],
                    dataset_config=dataset.get("config"),
                    dataset_split=dataset.get("split"),
                    dataset_args=dataset.get("args"),
                    metric_type=metric["type"],
                    metric_value=metric["value"],
                    metric_name=metric.get("name"),
                    metric_args=metric.get("args"),
                )
            )
    return out


def _hub_id(value):
    return None if value is None or is_local_path(value) else str(value)


def _usage(repo_id, hparams):
    lines = [
        "```python",
        "from speechmapper_plugin.inference.pretrained import SpeechMapperLLM",
        "",
        f'model = SpeechMapperLLM.from_hparams(source="{repo_id}", savedir="pretrained/'
        f'{repo_id.split("/")[-1]}")',
        'model.transcribe_file("audio.flac")',
    ]
    if hparams.get("st_instructions"):
        lang = sorted(hparams["st_instructions"])[0]
        lines.append(f'model.translate_file("audio.flac", "{lang}")')
    lines += ['model.ask_file("audio.flac", "Who is speaking?")', "```", ""]
    lines += [
        "or from the shell:",
        "",
        "```bash",
        f"speechmapper transcribe audio.flac --model {repo_id}",
        "```",
    ]
    return "\n".join(lines)


def build_model_card(
    folder,
    results=(),
    model_name=None,
    repo_id=None,
    license="apache-2.0",
    system=None,
    dataset=None,
):
    """The model card of a published folder (not written; see :func:`write_model_card`).

    Arguments
    ---------
    folder : str
        The published folder (its ``hyperparams.yaml`` is read).
    results : list of str
        Result files or folders (``evaluation.results``) for the ``model-index``.
    model_name : str, optional
        Name on the card (default: the folder's name).
    repo_id : str, optional
        The hub repository of the usage snippet (default: ``model_name``).
    license : str
        License identifier (e.g. ``apache-2.0``, ``llama3.1``, ``other``).
    system : str, optional
        The results' system to describe when they hold several.
    dataset : str, optional
        The training dataset's name (added to ``datasets`` when it has a hub id).

    Returns
    -------
    huggingface_hub.ModelCard
    """
    from huggingface_hub import ModelCard, ModelCardData

    from speechmapper_plugin.evaluation.results import load_results
    from speechmapper_plugin.evaluation.tables import _DATASETS, _dataset_id

    tree = _read_yaml(os.path.join(folder, HPARAMS_FILE))
    hparams = {}
    for key in _CARD_KEYS:
        try:
            hparams[key] = _plain(tree.get(key), key)
        except ValueError:  # a HyperPyYAML expression (e.g. a template default)
            hparams[key] = None
    model_name = model_name or os.path.basename(os.path.abspath(folder))
    repo_id = repo_id or model_name
    loaded = load_results(list(results)) if results else []
    evals = eval_results(loaded, model_name, system=system) if loaded else None
    llm = _hub_id(hparams.get("llm_source"))
    if llm is None:
        logger.warning(
            "%s: llm_source %s is a local path, the card has no base_model; re-export with "
            "--set llm_source=<hub id> before publishing.",
            folder,
            hparams.get("llm_source"),
        )
    datasets = []
    for name in [dataset] + [r["dataset"] for r in loaded]:
        hub = _DATASETS.get(_dataset_id(name)) if name else None
        if hub and hub not in datasets:
            datasets.append(hub)
    languages = ["en"] + sorted(
        {r["target_lang"] for r in loaded if r.get("target_lang") and r["target_lang"] != "en"}
    )
    iwslt = hparams.get("projector_type") == "transformer" or bool(hparams.get("lora_adapter"))
    tags = ["speechbrain", "speechmapper", "speech-llm", "automatic-speech-recognition"]
    tags += ["speech-translation", "spoken-question-answering"]
    data = ModelCardData(
        model_name=model_name,
        base_model=llm,
        library_name="speechbrain",
        license=license,
        language=languages,
        datasets=datasets or None,
        tags=tags,
        eval_results=evals,
    )
    system_name = (
        "the IWSLT 2025 instruction-following system (Transformer projector + LoRA adapter)"
        if iwslt
        else "SpeechMapper (a projector from speech-encoder features to the LLM's embeddings)"
    )
    encoder = f"`{hparams.get('sfm_source') or hparams.get('sfm_kind')}`"
    if hparams.get("sfm_layer") is not None:
        encoder += f", layer {hparams['sfm_layer']}"
    encoder += f", frames averaged by {hparams.get('frame_average')}"
    body = [
        f"# {model_name}",
        "",
        f"Speech + instruction -> text with {system_name}, trained with the speechmapper "
        f"SpeechBrain plugin. The frozen speech encoder ({encoder}) and the frozen LLM (`{hparams.get('llm_source')}`) are loaded by reference; this "
        "repository holds the projector (`projector.safetensors`)"
        + (", the LLM's LoRA adapter (`adapter/`, peft)" if hparams.get("lora_adapter") else "")
        + " and `hyperparams.yaml` (every prompt written out).",
        "",
        "## Usage",
        "",
        "Install the speechmapper plugin (its repository: `pip install .`), then:",
        "",
        _usage(repo_id, hparams),
        "",
        "## Evaluation",
        "",
        (
            "The `model-index` metadata of this card lists the results "
            "(`speechmapper_plugin.evaluation.report` builds the tables)."
            if evals
            else "No evaluation result was attached to this export."
        ),
        "",
        "## Citation",
        "",
        "```bibtex",
        IWSLT25_CITATION if iwslt else SPEECHMAPPER_CITATION,
        "```",
        "",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def write_model_card(folder, **kwargs):
    """Writes ``<folder>/README.md`` (:func:`build_model_card`), atomically.

    Returns
    -------
    dict
        What the card was built from (``model_name``, ``repo_id``, ``license``,
        ``num_eval_results``), for ``export.json``.
    """
    from speechmapper_plugin.utils.files import atomic_write_text

    card = build_model_card(folder, **kwargs)
    atomic_write_text(os.path.join(folder, MODEL_CARD), str(card))
    return {
        "model_name": card.data.model_name,
        "repo_id": kwargs.get("repo_id") or card.data.model_name,
        "license": card.data.license,
        "num_eval_results": len(card.data.eval_results or []),
    }
