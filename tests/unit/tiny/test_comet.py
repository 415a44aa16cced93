"""Tests of the offline tiny COMET builder and of COMET scoring through CometScorer on it."""

import json
import math
import shutil

import pytest
import yaml

from speechmapper_plugin.evaluation.comet import (
    CometModelUnavailableError,
    CometScorer,
    comet_score,
)
from speechmapper_plugin.tiny import comet as tiny_comet
from speechmapper_plugin.tiny.comet import build_tiny_comet, train_xlmr_tokenizer

SOURCES = ["the cat sat on the mat", "we go to the park today", "the weather is nice"]


HYPOTHESES = ["die Katze sass auf der Matte", "wir gehen heute in den Park", ""]


REFERENCES = ["die Katze sass auf der Matte", "heute gehen wir in den Park", "das Wetter ist gut"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_comet") / "model"
    build_tiny_comet(folder, SOURCES + HYPOTHESES + REFERENCES, seed=0)
    return folder


@pytest.fixture(scope="module")
def scorer(tiny_folder):
    return CometScorer(str(tiny_folder), batch_size=2, gpus=0)


def test_layout_matches_a_downloaded_comet_model(tiny_folder):
    assert (tiny_folder / "checkpoints" / "model.ckpt").is_file()
    hparams = yaml.safe_load((tiny_folder / "hparams.yaml").read_text())
    assert hparams["class_identifier"] == "regression_metric"
    assert hparams["encoder_model"] == "XLM-RoBERTa"
    assert hparams["pretrained_model"] == str(tiny_folder / "encoder")
    assert hparams["load_pretrained_weights"] is False
    for name in ("config.json", "sentencepiece.bpe.model", "tokenizer.json"):
        assert (tiny_folder / "encoder" / name).is_file(), name
    config = json.loads((tiny_folder / "encoder" / "config.json").read_text())
    assert (config["model_type"], config["hidden_size"], config["num_hidden_layers"]) == (
        "xlm-roberta",
        32,
        2,
    )


def test_slow_and_fast_xlmr_tokenizers_agree(tiny_folder):
    from transformers import XLMRobertaTokenizer, XLMRobertaTokenizerFast

    slow = XLMRobertaTokenizer.from_pretrained(tiny_folder / "encoder", local_files_only=True)
    fast = XLMRobertaTokenizerFast.from_pretrained(tiny_folder / "encoder", local_files_only=True)
    assert len(slow) == len(fast)
    assert (fast.bos_token_id, fast.pad_token_id, fast.eos_token_id, fast.unk_token_id) == (
        0,
        1,
        2,
        3,
    )
    assert fast.mask_token_id == len(fast) - 1
    for text in SOURCES + REFERENCES + ["unseen Ωmega words"]:
        assert slow(text).input_ids == fast(text).input_ids, text
    assert fast.decode(fast(SOURCES[0]).input_ids, skip_special_tokens=True) == SOURCES[0]


def test_scores_are_finite_deterministic_and_in_input_order(scorer):
    first = scorer.score(SOURCES, HYPOTHESES, REFERENCES)
    second = scorer.score(SOURCES, HYPOTHESES, REFERENCES)
    assert first == second
    assert first["num_utterances"] == 3 and len(first["segments"]) == 3
    assert all(math.isfinite(value) for value in first["segments"])
    assert first["comet"] == pytest.approx(sum(first["segments"]) / 3)
    assert first["model"] == scorer.model
    assert first["signature"].startswith(scorer.model + "|unbabel-comet:")
    # Segments follow the input order although COMET sorts the batch by source length.
    reversed_out = scorer.score(SOURCES[::-1], HYPOTHESES[::-1], REFERENCES[::-1])
    assert reversed_out["segments"] == pytest.approx(first["segments"][::-1], abs=1e-4)
    # A random model still depends on its input: different triples, different scores.
    assert len({round(value, 4) for value in first["segments"]}) == 3


def test_identical_hypotheses_and_references_score_like_comet(scorer):
    out = scorer.score(SOURCES, REFERENCES, REFERENCES)
    assert all(math.isfinite(value) for value in out["segments"])
    single = scorer.score(SOURCES[:1], REFERENCES[:1], REFERENCES[:1])
    assert single["segments"][0] == pytest.approx(out["segments"][0], abs=1e-4)


def test_empty_hypotheses_and_references_are_scored(scorer):
    out = scorer.score(["a source", ""], ["", ""], ["", "a reference"])
    assert all(math.isfinite(value) for value in out["segments"])


def test_model_is_loaded_once(scorer):
    model = scorer.load()
    scorer.score(SOURCES[:1], HYPOTHESES[:1], REFERENCES[:1])
    assert scorer.load() is model


def test_checkpoint_file_path_and_comet_score_function(tiny_folder, scorer):
    reference = scorer.score(SOURCES, HYPOTHESES, REFERENCES)
    ckpt = str(tiny_folder / "checkpoints" / "model.ckpt")
    out = comet_score(SOURCES, HYPOTHESES, REFERENCES, model=ckpt, gpus=0)
    assert out["segments"] == pytest.approx(reference["segments"], abs=1e-4)
    assert out["model"] == ckpt


def test_build_is_deterministic_and_reused(tmp_path, tiny_folder, scorer):
    import torch

    texts = SOURCES + HYPOTHESES + REFERENCES
    other = tmp_path / "again"
    ckpt = build_tiny_comet(other, texts, seed=0)
    mtime = ckpt.stat().st_mtime_ns
    assert build_tiny_comet(other, texts, seed=0) == ckpt
    assert ckpt.stat().st_mtime_ns == mtime  # reused, not rebuilt
    first = torch.load(tiny_folder / "checkpoints" / "model.ckpt", weights_only=True)
    again = torch.load(ckpt, weights_only=True)
    assert first["state_dict"].keys() == again["state_dict"].keys()
    assert all(
        torch.equal(first["state_dict"][k], again["state_dict"][k]) for k in again["state_dict"]
    )
    seeded = build_tiny_comet(tmp_path / "seed1", texts, seed=1)
    weights = torch.load(seeded, weights_only=True)["state_dict"]
    assert any(not torch.equal(first["state_dict"][k], weights[k]) for k in weights)


@pytest.mark.parametrize(
    "encoder, problem",
    [
        ("xlm-roberta-large", "it is not in the Hugging Face cache"),  # as in wmt22-comet-da
        ("{tmp}/gone", "the folder {tmp}/gone holds no config.json"),
    ],
)
def test_hparams_yaml_names_the_encoder_and_a_missing_one_is_a_clear_error(
    tmp_path, tiny_folder, monkeypatch, encoder, problem
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder, problem = encoder.format(tmp=tmp_path), problem.format(tmp=tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_folder, copy)
    hparams = yaml.safe_load((copy / "hparams.yaml").read_text())
    hparams["pretrained_model"] = encoder
    (copy / "hparams.yaml").write_text(yaml.safe_dump(hparams))
    with pytest.raises(CometModelUnavailableError) as info:
        CometScorer(str(copy), gpus=0).load()
    message = str(info.value)
    assert f"needs the encoder {encoder!r}" in message
    assert problem in message
    assert f"huggingface-cli download {encoder}" in message
    assert "set pretrained_model in " + str(copy / "hparams.yaml") in message


def test_hparams_yaml_that_is_not_comets_is_refused(tmp_path, tiny_folder):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_folder, copy)
    (copy / "hparams.yaml").write_text("lr: 0.1\n")
    with pytest.raises(CometModelUnavailableError, match="no class_identifier key"):
        CometScorer(str(copy), gpus=0).load()


def test_builder_bad_input(tmp_path):
    with pytest.raises(ValueError, match="the text corpus is empty"):
        build_tiny_comet(tmp_path / "a", ["", "  "])
    with pytest.raises(ValueError, match="not a multiple of num_heads"):
        build_tiny_comet(tmp_path / "b", ["the cat"], hidden_size=30, num_heads=4)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    with pytest.raises(FileExistsError, match="holds no tiny COMET model build"):
        build_tiny_comet(tmp_path / "busy", ["the cat"])


def test_train_xlmr_tokenizer_maps_unseen_characters_to_unk(tmp_path):
    tok = train_xlmr_tokenizer(["abc abc", "cab"], tmp_path)
    ids = tok("abc Ω").input_ids
    assert tok.unk_token_id in ids and ids[0] == 0 and ids[-1] == 2


def test_command_line(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat\n\ndie Katze sitzt\n")
    ckpt = tiny_comet.main(["--output_folder", str(tmp_path / "cli"), "--text_file", str(corpus)])
    assert ckpt == tmp_path / "cli" / "checkpoints" / "model.ckpt" and ckpt.is_file()
    assert str(ckpt) in capsys.readouterr().out
