"""Fixtures shared by the tests of ``speechmapper_plugin.data``."""

import pytest

from speechmapper_plugin.tiny.llm import train_tokenizer

from .helpers import UTTS


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([text for _, _, text in UTTS.values()])
