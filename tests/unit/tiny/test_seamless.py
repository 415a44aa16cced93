"""Tests of the offline tiny SeamlessM4T-v2 builder: hub layout, tokenizer, generation paths."""

import json

import pytest
import torch
from safetensors.torch import load_file

from speechmapper_plugin.tiny import seamless as tiny_seamless
from speechmapper_plugin.tiny.seamless import DEFAULT_LANGUAGES, build_tiny_seamless

TEXTS = [
    "The cat sat on the mat.",
    "Die Katze sitzt auf der Matte.",
    "Il gatto è sul tappeto.",
    "猫坐在垫子上。",
    "Where is the cat? It sat on the mat.",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_seamless(tmp_path_factory.mktemp("tiny_seamless") / "model", TEXTS)


def test_layout_matches_a_hub_snapshot(folder):
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "sentencepiece.bpe.model",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "seamless_m4t_v2"
    assert config["architectures"] == ["SeamlessM4Tv2Model"]
    assert config["vocoder_num_spkrs"] == 4
    generation = json.loads((folder / "generation_config.json").read_text())
    for key in ("text_decoder_lang_to_code_id", "t2u_lang_code_to_id", "vocoder_lang_code_to_id"):
        assert sorted(generation[key]) == sorted(DEFAULT_LANGUAGES), key
    assert generation["id_to_text"]["3"] == "</s>"
    assert generation["char_to_id"]["<pad>"] == 0
    # Every part of the full model is saved (text, speech encoder, text-to-unit, vocoder).
    prefixes = {name.split(".")[0] for name in load_file(folder / "model.safetensors")}
    assert {"text_encoder", "text_decoder", "speech_encoder", "t2u_model", "vocoder"} <= prefixes


def test_tokenizer_has_the_fairseq_layout_and_language_tokens(folder):
    from transformers import AutoProcessor, AutoTokenizer, SeamlessM4TTokenizer

    fast = AutoTokenizer.from_pretrained(folder)
    slow = SeamlessM4TTokenizer.from_pretrained(folder)
    assert type(fast).__name__ == "SeamlessM4TTokenizerFast"
    assert (fast.pad_token_id, fast.unk_token_id, fast.bos_token_id, fast.eos_token_id) == (
        0,
        1,
        2,
        3,
    )
    generation = json.loads((folder / "generation_config.json").read_text())
    for code in DEFAULT_LANGUAGES:
        token_id = fast.convert_tokens_to_ids(f"__{code}__")
        assert token_id == generation["text_decoder_lang_to_code_id"][code]
    assert len(slow) == len(fast)
    assert slow.convert_tokens_to_ids("__cmn__") == fast.convert_tokens_to_ids("__cmn__")
    text = "Where is the cat?"
    ids = fast(text, src_lang="deu").input_ids
    assert ids[0] == fast.convert_tokens_to_ids("__deu__")
    assert fast.decode(ids, skip_special_tokens=True) == text
    processor = AutoProcessor.from_pretrained(folder)
    assert type(processor).__name__ == "SeamlessM4TProcessor"
    assert processor.feature_extractor.sampling_rate == 16000


def test_text_to_text_generation_starts_with_the_target_language(folder):
    from transformers import AutoTokenizer, SeamlessM4Tv2ForTextToText

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = SeamlessM4Tv2ForTextToText.from_pretrained(folder).eval()
    inputs = tokenizer(TEXTS[:2], src_lang="eng", return_tensors="pt", padding=True)
    out = model.generate(**inputs, tgt_lang="ita")
    # </s> (decoder start), __ita__, then at most max_new_tokens (12 in the build) tokens.
    assert out.shape[0] == 2 and out.shape[1] <= 2 + 12
    assert (out[:, 0] == tokenizer.eos_token_id).all()
    assert (out[:, 1] == tokenizer.convert_tokens_to_ids("__ita__")).all()
    assert all(tokenizer.batch_decode(out, skip_special_tokens=True))
    with pytest.raises(ValueError, match="not supported"):
        model.generate(**inputs, tgt_lang="jpn")


def test_text_to_speech_depends_on_the_speaker_and_is_deterministic(folder):
    from transformers import AutoTokenizer, SeamlessM4Tv2ForTextToSpeech

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = SeamlessM4Tv2ForTextToSpeech.from_pretrained(folder).eval()
    assert model.config.sampling_rate == 16000
    inputs = tokenizer(TEXTS[:1], src_lang="eng", return_tensors="pt")
    with torch.no_grad():
        wav0, lengths = model.generate(**inputs, tgt_lang="eng", speaker_id=0)
        again, _ = model.generate(**inputs, tgt_lang="eng", speaker_id=0)
        wav3, _ = model.generate(**inputs, tgt_lang="eng", speaker_id=3)
    assert wav0.shape[0] == 1 and int(lengths.reshape(-1)[0]) > 0
    assert torch.equal(wav0, again)
    assert not torch.allclose(wav0, wav3)
    assert wav0.abs().max() > 0.01  # audible, not a silent waveform
    with pytest.raises(IndexError):
        model.generate(**inputs, tgt_lang="eng", speaker_id=4)


def test_speech_encoder_loads_through_the_feature_extractor_code(folder):
    from speechmapper_plugin.features.seamless import SeamlessSpeechEncoder

    encoder = SeamlessSpeechEncoder(str(folder), layer=1)
    feats, _ = encoder(torch.randn(1, 16000), torch.tensor([1.0]))
    assert feats.shape[-1] == 16


def test_build_is_reused_deterministic_and_rebuilt_on_change(folder, tmp_path):
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_seamless(folder, TEXTS) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt
    twin = build_tiny_seamless(tmp_path / "twin", TEXTS)
    first, second = load_file(folder / "model.safetensors"), load_file(twin / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    build_tiny_seamless(twin, TEXTS, seed=1, num_speakers=2)
    changed = load_file(twin / "model.safetensors")
    assert changed["vocoder.speaker_embedding.weight"].shape[0] == 2
    assert not torch.equal(changed["shared.weight"], first["shared.weight"])


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="corpus is empty"):
        build_tiny_seamless(tmp_path / "a", ["", "  "])
    with pytest.raises(ValueError, match="num_speakers"):
        build_tiny_seamless(tmp_path / "b", TEXTS, num_speakers=0)
    with pytest.raises(ValueError, match="Seamless codes"):
        build_tiny_seamless(tmp_path / "c", TEXTS, languages=["eng", "EN"])
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "other.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        build_tiny_seamless(busy, TEXTS)


def test_command_line(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tiny_seamless.main(
        [
            "--output_folder",
            str(tmp_path / "cli"),
            "--text_file",
            str(corpus),
            "--num_speakers",
            "3",
        ]
    )
    config = json.loads((out / "config.json").read_text())
    assert config["vocoder_num_spkrs"] == 3
