"""Tests of ``speechmapper_plugin.models.hub`` (where a model's files come from)."""

import pytest

from speechmapper_plugin.models.hub import resolve_source

from .helpers import fake_hub_cache, tokenizer_files


def test_resolve_source_local_folder(folder, tmp_path):
    assert resolve_source(folder) == folder
    assert resolve_source(str(folder)) == folder
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_source(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_source(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_source("./missing/model")
    with pytest.raises(NotADirectoryError, match="is a file"):
        resolve_source(folder / "config.json")


def test_resolve_source_offline_hub_id_not_cached(offline, tmp_path):
    repo = "meta-llama/Llama-3.1-8B-Instruct"
    with pytest.raises(OSError) as error:
        resolve_source(repo, cache_dir=tmp_path)
    message = str(error.value)
    assert repr(repo) in message
    assert "offline" in message
    assert f"huggingface-cli download {repo}" in message
    assert "local folder" in message
    with pytest.raises(ValueError, match="not a valid|neither"):
        resolve_source("bad id with spaces/x y", cache_dir=tmp_path)


def test_resolve_source_uses_the_offline_hub_cache(offline, folder, tmp_path):
    snapshot = fake_hub_cache(tmp_path, "acme/tiny", folder, tokenizer_files(folder))
    assert resolve_source("acme/tiny", cache_dir=tmp_path) == snapshot
