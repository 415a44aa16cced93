"""Fixtures of the end-to-end recipe tests, shared by every recipe's tests (one mini-corpus,
one tiny LLM, one feature cache, one stage-1 run and one tiny ASR model per test session)."""

import csv
import json
import os

import pytest
import soundfile as sf
import torch
from recipe_runs import PRESET, run_recipe, stage_args

from speechmapper_plugin.tiny.llm import build_tiny_llm
from speechmapper_plugin.tiny.minicorpus import build_minicorpus
from speechmapper_plugin.tiny.preset import preset_overrides


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Mini-corpus, tiny LLM and extracted features."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny")
    data = root / "minicorpus"
    corpus = build_minicorpus(str(data), num_train=48, num_valid=8, num_test=8, jobs=1)
    texts = []
    for dirpath, _, files in os.walk(data / "LibriSpeech" / "train-clean-100"):
        for name in files:
            if name.endswith(".trans.txt"):
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    texts += [line.split(" ", 1)[1].strip().lower() for line in f]
    llm = build_tiny_llm(str(root / "llm"), texts)
    common = {"data_folder": str(data), "cache_folder": str(root / "cache")}
    run_recipe(
        "extract_features.py",
        "features.yaml",
        preset_overrides(PRESET, ["features"], **common),
    )
    return {"root": root, "llm": str(llm), "common": common, "corpus": corpus}


@pytest.fixture(scope="session")
def stage1_run(tiny):
    """A short but real stage-1 run (3 epochs), whose checkpoint stage 2 starts from."""
    out = tiny["root"] / "stage1"
    args = stage_args(
        tiny,
        "stage1",
        output_folder=str(out),
        number_of_epochs=3,
        warmup_steps=5,
        total_steps=50,
        batch_vectors=500,
    )
    run_recipe("train_stage1.py", "stage1.yaml", args)
    return out, args


SPLITS = {"train-clean-100": "train", "dev-clean": "dev", "test-clean": "test"}


def _pseudo_translation(text):
    """A deterministic stand-in for a German translation (word order reversed)."""
    words = text.split()
    return " ".join(reversed(words)).capitalize() + "."


@pytest.fixture(scope="session")
def covost(tiny):
    """The mini-corpus in the CoVoST 2 layout (48 train, 8 dev, 8 test clips, en->de)."""
    root = tiny["root"] / "covost"
    clips = root / "cv" / "en" / "clips"
    clips.mkdir(parents=True)
    validated = [
        ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent"]
    ]
    covost_rows = [["path", "sentence", "translation", "split"]]
    corpus = os.path.join(tiny["common"]["data_folder"], "LibriSpeech")
    for split, covost_split in SPLITS.items():
        for dirpath, _, files in sorted(os.walk(os.path.join(corpus, split))):
            for name in sorted(f for f in files if f.endswith(".trans.txt")):
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    for line in f:
                        utt, text = line.strip().split(" ", 1)
                        wav, rate = sf.read(os.path.join(dirpath, f"{utt}.flac"))
                        clip = f"common_voice_en_{utt}.mp3"
                        sf.write(str(clips / clip), wav, rate, format="MP3")
                        sentence = text.capitalize() + "."
                        validated.append([utt.split("-")[0], clip, sentence, "2", "0", "", "", ""])
                        covost_rows.append(
                            [clip, sentence, _pseudo_translation(text), covost_split]
                        )
    for path, rows in (
        (root / "cv" / "en" / "validated.tsv", validated),
        (root / "covost_v2.en_de.tsv", covost_rows),
    ):
        with open(path, "w", encoding="utf-8", newline="") as f:
            csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n").writerows(
                rows
            )
    paths = {
        "data_folder": str(root / "cv" / "en"),
        "covost_folder": str(root),
        "cache_folder": str(root / "cache"),
    }
    run_recipe(
        "extract_features.py",
        "CoVoST2/features.yaml",
        preset_overrides(
            PRESET, ["features"], splits=["train_en-de", "dev_en-de", "test_en-de"], **paths
        ),
        recipe="CoVoST2",
    )
    return paths


@pytest.fixture(scope="session")
def tiny_asr(tiny):
    """A random-init wav2vec2-CTC model with a character vocabulary, saved locally."""
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder = tiny["root"] / "tiny_asr"
    folder.mkdir(exist_ok=True)
    chars = list("abcdefghijklmnopqrstuvwxyz'")
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return str(folder)
