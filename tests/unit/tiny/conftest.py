"""Fixtures shared by the tests of ``speechmapper_plugin.tiny``."""

import pytest

from speechmapper_plugin.tiny import minicorpus
from speechmapper_plugin.tiny.minicorpus import (
    build_minicorpus,
)

from .helpers import SMALL


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """A small corpus built with 2 worker processes and chapters of 2 utterances."""
    out = tmp_path_factory.mktemp("minicorpus")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(minicorpus, "_CHAPTER_SIZE", 2)
        summary = build_minicorpus(out, jobs=2, **SMALL)
    return out, summary
