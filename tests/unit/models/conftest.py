"""Fixtures shared by the tests of ``speechmapper_plugin.models``."""

import huggingface_hub
import pytest

from speechmapper_plugin.models.embeddings import (
    EmbeddingTable,
)
from speechmapper_plugin.models.frozen_llm import FrozenLLM
from speechmapper_plugin.tiny.llm import build_tiny_llm

from .helpers import make_corpus


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


@pytest.fixture(scope="module")
def folder(corpus, tmp_path_factory):
    # A larger init std than HF's 0.02 makes greedy outputs depend on the inputs.
    return build_tiny_llm(
        tmp_path_factory.mktemp("tiny") / "llm", corpus, initializer_range=0.2, seed=3
    )


@pytest.fixture(scope="module")
def sharded(corpus, tmp_path_factory):
    return build_tiny_llm(
        tmp_path_factory.mktemp("tiny") / "sharded", corpus, max_shard_size="200KB"
    )


@pytest.fixture(scope="module")
def llm(folder):
    return FrozenLLM(folder, dtype="float32")


@pytest.fixture
def offline(monkeypatch):
    """Makes sure huggingface_hub never goes online in this test."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def table(folder):
    return EmbeddingTable.from_pretrained(folder)
