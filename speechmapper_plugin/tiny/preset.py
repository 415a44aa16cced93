"""Presets: named groups of ``--key=value`` overrides for the recipe YAML files.

A preset file (e.g. ``hparams/tiny.yaml``) maps section names to plain key/value overrides;
``preset_overrides`` turns chosen sections into the command-line arguments that
``speechbrain.parse_arguments`` accepts, so a preset run is exactly what a user would type.

Authors
-------
speechmapper developers, 2026
"""

import json

import yaml

# The recipe YAML files (under hparams/) that each section of hparams/tiny.yaml overrides.
_DATASETS = [
    "ACL6060",
    "CoVoST2",
    "CommonVoice",
    "EuroParlST",
    "FLEURS",
    "LibriSQA",
    "SpokenSQuAD",
    "VoxPopuli",
]


_TASK_STAGE2 = [
    "stage2_st_minish.yaml",
    "CoVoST2/stage2_st.yaml",
    "EuroParlST/stage2_st.yaml",
    "LibriSQA/stage2_sqa.yaml",
    "SpokenSQuAD/stage2_sqa.yaml",
]


SECTION_TARGETS = {
    "features": ["features.yaml"] + [f"{d}/features.yaml" for d in _DATASETS],
    "projector": ["stage1.yaml", "stage2.yaml", "evaluate.yaml"]
    + [f"{d}/evaluate.yaml" for d in _DATASETS]
    + _TASK_STAGE2,
    "both_stages": ["stage1.yaml", "stage2.yaml"],
    "stage1": ["stage1.yaml"],
    "stage2": ["stage2.yaml"],
    "noise_injection": ["noise_injection.yaml"],
    "stage2_task": _TASK_STAGE2,
    "evaluate": ["evaluate.yaml"] + [f"{d}/evaluate.yaml" for d in _DATASETS],
    "iwslt_lora": ["IWSLT25/stage_b_lora.yaml"],
    "iwslt_multitask": [
        f"IWSLT25/{name}.yaml"
        for name in (
            "stage_a1_projector",
            "stage_a2_projector",
            "stage_a_speechmapper",
            "stage_c_fusion",
        )
    ],
}


def format_override(key, value):
    """One ``--key=value`` argument that hyperpyyaml reads back as exactly ``value``.

    Values are written as JSON, which is valid YAML 1.2 flow syntax: strings are always
    quoted (so "1e-3" stays a string), lists have no spaces (one shell word).

    Example
    -------
    >>> format_override("block_dims", [64, 128]), format_override("sfm_layer", None)
    ('--block_dims=[64,128]', '--sfm_layer=null')
    >>> format_override("lr", 0.003), format_override("data_folder", "/data/LS")
    ('--lr=0.003', '--data_folder="/data/LS"')
    """
    return f"--{key}={json.dumps(value, separators=(',', ':'), ensure_ascii=False)}"


def preset_overrides(preset_file, sections, **extra):
    """Arguments for the given preset ``sections`` (later sections win), then ``extra``.

    Arguments
    ---------
    preset_file : str
        The preset YAML file.
    sections : list of str
        Section names, in order.
    **extra
        Further overrides (e.g. paths), applied last.

    Returns
    -------
    list of str
        ``["--key=value", ...]``.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "preset.yaml")
    >>> _ = open(p, "w").write("a:\\n  lr: 0.1\\nb:\\n  lr: 0.2\\n  n: 3\\n")
    >>> preset_overrides(p, ["a", "b"], data_folder="/data")
    ['--lr=0.2', '--n=3', '--data_folder="/data"']
    """
    with open(preset_file, encoding="utf-8") as f:
        preset = yaml.safe_load(f) or {}
    merged = {}
    for section in sections:
        if section not in preset:
            raise KeyError(
                f"Preset {preset_file} has no section {section!r} (sections: {sorted(preset)})."
            )
        merged.update(preset[section] or {})
    merged.update(extra)
    return [format_override(k, v) for k, v in merged.items()]
