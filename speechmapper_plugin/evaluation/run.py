"""Evaluation of one system on a list of test sets (paper Sec. 3): the modules each system
needs (``build_eval_modules``) and the loop that decodes and scores every test set with
``EvalBrain`` (``evaluate_test_sets``).

Authors
-------
speechmapper developers, 2026
"""

#: Modules each system of ``brain.EvalBrain`` needs.
SYSTEM_MODULES = {
    "speechmapper": ("projector", "llm"),
    "nearest": ("projector", "embeddings"),
    "transcript": ("llm",),
    "asr": ("transcriber",),
    "asr+llm": ("transcriber", "llm"),
}


def build_eval_modules(hparams):
    """Instantiate only the modules the configured system needs.

    The YAML holds factories (``!name:``) for ``projector``, ``llm``, ``embeddings`` and
    ``transcriber``, so that e.g. a cascade never loads a projector and the nearest-embedding
    diagnostic never loads the LLM weights. The projector gets ``projector_checkpoint``, the
    LLM the optional ``lora_adapter`` (checked against its base model).

    Arguments
    ---------
    hparams : dict
        The loaded evaluation hparams.

    Returns
    -------
    dict
        Module name -> module.
    """
    from speechmapper_plugin.data.cache_config import check_projector_cache
    from speechmapper_plugin.models.projectors import check_llm_width, load_projector_checkpoint

    system = hparams["system"]
    if system not in SYSTEM_MODULES:
        raise ValueError(
            f"system={system!r} is not supported; choose one of {sorted(SYSTEM_MODULES)}."
        )
    adapter = hparams.get("lora_adapter")  # e.g. the IWSLT25 system's fused adapter
    if adapter and "llm" not in SYSTEM_MODULES[system]:
        raise ValueError(
            f"lora_adapter={adapter!r} adapts the LLM, but system={system!r} uses no LLM."
        )
    modules = {name: hparams[name]() for name in SYSTEM_MODULES[system]}
    if adapter:
        from speechmapper_plugin.models.lora import load_lora

        load_lora(modules["llm"], adapter, trainable=False)
    if "projector" in modules:
        if not hparams.get("projector_checkpoint"):
            raise ValueError(
                f"system={system!r} needs --projector_checkpoint (a stage-1/2 `save` folder, "
                "CKPT+... folder or projector.ckpt)."
            )
        loaded = load_projector_checkpoint(modules["projector"], hparams["projector_checkpoint"])
        check_projector_cache(loaded, hparams["feature_folder"])  # features made as in training
        table = modules.get("llm") or modules.get("embeddings")
        check_llm_width(modules["projector"], table.embed_dim, hparams["llm_source"])
    return modules


def evaluate_test_sets(hparams, run_opts, test_sets, modules=None):
    """Decode and score each test set with ``brain.EvalBrain``; returns the results.

    Arguments
    ---------
    hparams : dict
        The loaded evaluation hparams.
    run_opts : dict
        SpeechBrain run options (device, precision...).
    test_sets : dict
        Split name -> dataset (``datasets.load_eval_dataset``).
    modules : dict, optional
        Modules already in memory (e.g. the projector a stage-2 recipe just trained and its
        LLM); default: built from the hparams factories (``build_eval_modules``).

    Returns
    -------
    dict
        Split name -> result dict (also written under ``<output_folder>/results``).
    """
    from speechmapper_plugin.evaluation.brain import EvalBrain

    if modules is None:
        modules = build_eval_modules(hparams)
    brain = EvalBrain(modules=modules, hparams=hparams, run_opts=run_opts)
    results = {}
    for name, data in test_sets.items():
        brain.test_name = name
        brain.evaluate(data, test_loader_kwargs=hparams["test_dataloader_opts"])
        results[name] = brain.last_result
    return results
