"""Building and loading a projector by type (``speechmapper`` or ``transformer``): the YAML
factory ``build_projector``, the width check against the LLM (``check_llm_width``) and
``load_projector_checkpoint`` for a SpeechBrain checkpoint folder or a ``projector.ckpt``.

Authors
-------
speechmapper developers, 2026
"""

import torch

from speechmapper_plugin.models.speechmapper import SpeechMapper
from speechmapper_plugin.models.transformer_projector import TransformerProjector

PROJECTOR_TYPES = ("speechmapper", "transformer")


def build_projector(projector_type, input_dim, llm_dim, speechmapper, transformer):
    """The projector an evaluation or inference YAML asks for: a SpeechMapper (the paper's
    stage 1/2) or the IWSLT25 system's ``TransformerProjector`` (stage A/C).

    Arguments
    ---------
    projector_type : str
        ``speechmapper`` or ``transformer`` (the YAML key ``projector_type``).
    input_dim : int
        SFM feature size.
    llm_dim : int
        LLM embedding size.
    speechmapper : dict
        ``SpeechMapper`` keyword arguments (``block_dims``, ``output_dims``, ``num_layers``...).
    transformer : dict
        ``TransformerProjector`` keyword arguments (``d_model``, ``num_layers``, ``nhead``,
        ``d_ffn``).

    Returns
    -------
    torch.nn.Module

    Example
    -------
    >>> tf = {"d_model": 8, "num_layers": 1, "nhead": 2, "d_ffn": 16}
    >>> sm = {"block_dims": [8], "output_dims": [8], "num_layers": 1, "nhead": 2}
    >>> type(build_projector("transformer", 16, 32, sm, tf)).__name__
    'TransformerProjector'
    >>> build_projector("mlp", 16, 32, sm, tf)
    Traceback (most recent call last):
    ...
    ValueError: projector_type='mlp' is not supported: choose one of ('speechmapper', 'transformer').
    """
    if projector_type == "speechmapper":
        return SpeechMapper(input_dim, llm_dim=llm_dim, **speechmapper)
    if projector_type == "transformer":
        return TransformerProjector(input_dim, llm_dim, **transformer)
    raise ValueError(
        f"projector_type={projector_type!r} is not supported: choose one of {PROJECTOR_TYPES}."
    )


def check_llm_width(projector, llm_dim, llm_name):
    """Raise a ``ValueError`` naming the fix when the projector's output width differs from
    the LLM's embedding size (checked before any training or decoding step).

    Example
    -------
    >>> check_llm_width(TransformerProjector(8, 16, d_model=8, nhead=2, d_ffn=8), 32, "my-llm")
    Traceback (most recent call last):
    ...
    ValueError: The projector outputs 16-dim vectors but my-llm has 32-dim embeddings: set --llm_dim=32 and use a projector (checkpoint) trained for this LLM.
    """
    if projector.llm_dim != llm_dim:
        raise ValueError(
            f"The projector outputs {projector.llm_dim}-dim vectors but {llm_name} has "
            f"{llm_dim}-dim embeddings: set --llm_dim={llm_dim} and use a projector "
            "(checkpoint) trained for this LLM."
        )


def load_projector_checkpoint(projector, path, device="cpu"):
    """Load trained projector weights (e.g. stage 1's) into ``projector``.

    Arguments
    ---------
    projector : SpeechMapper
        The module to fill; its hyper-parameters must match the checkpoint's.
    path : str
        A ``projector.ckpt`` file, a SpeechBrain ``CKPT+...`` folder holding one, or a
        ``save`` folder (its complete checkpoint with the lowest ``WER`` (stage 1), else the
        lowest ``loss`` (stage 2), else the latest, is used; a torn checkpoint, left by a job
        killed while saving, is skipped with a warning naming it).
    device : str or torch.device
        Where to map the tensors.

    Returns
    -------
    str
        The file that was loaded.

    Example
    -------
    >>> import tempfile, os
    >>> m = SpeechMapper(8, [8], [8], num_layers=1, nhead=2)
    >>> f = os.path.join(tempfile.mkdtemp(), "projector.ckpt")
    >>> torch.save(m.state_dict(), f)
    >>> load_projector_checkpoint(SpeechMapper(8, [8], [8], num_layers=1, nhead=2), f) == f
    True
    """
    import os

    from speechmapper_plugin.utils.checkpoints import (
        CKPT_PREFIX,
        best_checkpoint,
        checkpoint_problem,
        file_problem,
    )

    if os.path.isdir(path):
        direct = os.path.join(path, "projector.ckpt")
        if os.path.basename(os.path.normpath(path)).startswith(CKPT_PREFIX):
            problem = checkpoint_problem(path, required=("projector",))
            if problem:
                raise RuntimeError(
                    f"The checkpoint {path} is incomplete or unreadable ({problem}): give its "
                    "`save` folder instead, whose complete checkpoints are used."
                )
            path = direct
        elif os.path.isfile(direct):
            path = direct
        else:
            ckpt = best_checkpoint(path, required=("projector",))
            if ckpt is None:
                raise FileNotFoundError(
                    f"No complete projector checkpoint under {path}: give a stage-1 `save` "
                    "folder, one of its CKPT+... folders, or a projector.ckpt file."
                )
            path = str(ckpt.paramfiles["projector"])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Projector checkpoint {path} does not exist.")
    problem = file_problem(path)
    if problem:
        raise RuntimeError(f"The projector checkpoint {path} cannot be used: {problem}.")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise RuntimeError(f"The projector checkpoint {path} cannot be read: {err}") from err
    try:
        projector.load_state_dict(state)
    except RuntimeError as err:
        raise RuntimeError(
            f"The projector checkpoint {path} does not match this projector's hyper-parameters "
            "(block_dims, output_dims, num_layers, d_ffn, llm_dim...): use the same projector "
            f"settings as the run that produced it.\n{err}"
        ) from err
    return path
