"""Tests of ``speechmapper_plugin.evaluation.comet`` (cOMET (``Unbabel/wmt22-comet-da`` by default) by hub id or local checkpoint, loaded once per process and scored x100 (``CometScorer``, ``comet_scorer``, ``comet_score``))."""

import os

import pytest

from speechmapper_plugin.evaluation.comet import (
    DEFAULT_COMET_MODEL,
    CometModelUnavailableError,
    CometScorer,
    comet_score,
    comet_scorer,
)


def test_comet_hub_model_missing_offline_names_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = CometScorer(DEFAULT_COMET_MODEL, cache_dir=str(tmp_path))  # cheap: nothing loaded
    with pytest.raises(CometModelUnavailableError) as info:
        scorer.score(["src"], ["hyp"], ["ref"])
    message = str(info.value)
    assert "'Unbabel/wmt22-comet-da' is not in " + str(tmp_path) in message
    assert "huggingface-cli download Unbabel/wmt22-comet-da" in message
    assert "huggingface-cli download xlm-roberta-large" in message
    assert "comet_model" in message


def test_comet_missing_local_paths_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="set comet_model to an existing .ckpt"):
        CometScorer(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="set comet_model to an existing .ckpt"):
        comet_score(["a"], ["b"], ["c"], model=str(tmp_path / "model.ckpt"))
    with pytest.raises(FileNotFoundError, match="holds no checkpoints/model.ckpt"):
        CometScorer(str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "model.ckpt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="has no .*hparams.yaml"):
        CometScorer(str(tmp_path))


def test_comet_scorer_arguments(monkeypatch):
    with pytest.raises(ValueError, match="gpus must be None"):
        CometScorer(gpus=2)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        CometScorer(batch_size=0)
    with pytest.raises(ValueError, match="config key comet_model"):
        CometScorer("")
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert CometScorer().gpus == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert CometScorer().gpus == 1
    assert CometScorer(gpus=0).gpus == 0


def test_comet_list_checks_come_before_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = CometScorer(DEFAULT_COMET_MODEL, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="2 sources but 1 hypotheses but 1 references"):
        scorer.score(["a", "b"], ["a"], ["a"])
    with pytest.raises(ValueError, match="no utterance to score"):
        scorer.score([], [], [])
    assert os.listdir(tmp_path) == []  # nothing was downloaded or created


def test_comet_scorer_factory_for_yaml(tmp_path):
    assert comet_scorer(None) is None and comet_scorer("") is None  # comet_model: null
    scorer = comet_scorer(DEFAULT_COMET_MODEL, batch_size=4, cache_dir=str(tmp_path))
    assert isinstance(scorer, CometScorer) and scorer.batch_size == 4
    assert comet_scorer(DEFAULT_COMET_MODEL, batch_size=4, cache_dir=str(tmp_path)) is scorer
    assert comet_scorer(DEFAULT_COMET_MODEL, batch_size=8, cache_dir=str(tmp_path)) is not scorer
    with pytest.raises(FileNotFoundError, match="set comet_model to an existing .ckpt"):
        comet_scorer(str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="config key comet_model"):
        comet_score(["a"], ["b"], ["c"], model=None)
