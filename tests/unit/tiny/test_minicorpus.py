"""Tests of ``speechmapper_plugin.tiny.minicorpus`` (a licence-clean synthetic English mini-corpus in the LibriSpeech layout)."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechmapper_plugin.tiny import grammar, minicorpus
from speechmapper_plugin.tiny.espeak import synthesize
from speechmapper_plugin.tiny.minicorpus import (
    HELDOUT_VOICE,
    SPLITS,
    TRAIN_VOICES,
    build_minicorpus,
)

from .helpers import SMALL, read_corpus, speakers_table


def snapshot(root):
    """{relative path: (mtime_ns, bytes)} of all files."""
    out = {}
    for p in Path(root).rglob("*"):
        if p.is_file():
            out[str(p.relative_to(root))] = (p.stat().st_mtime_ns, p.read_bytes())
    return out


def test_every_corpus_voice_is_known_to_espeak():
    for voice in TRAIN_VOICES + (HELDOUT_VOICE,):
        assert len(synthesize("yes.", voice)) > 1600, voice


# ---- corpus -------------------------------------------------------------------------------
def test_layout_matches_librispeech(corpus_dir):
    out, summary = corpus_dir
    root = out / "LibriSpeech"
    corpus = read_corpus(root)
    for split, n in zip(SPLITS, (SMALL["num_train"], SMALL["num_valid"], SMALL["num_test"])):
        assert len(corpus[split]) == n == summary["splits"][split]["utterances"]
    for split, utts in corpus.items():
        for utt_id, (_, path) in utts.items():
            spk, chap, _ = utt_id.split("-")
            assert path == root / split / spk / chap / f"{utt_id}.flac" and path.is_file()
    # chapters of 2 utterances: some speaker has several chapters
    chapters = {(s, p.parent.name) for s, u in corpus.items() for _, p in u.values()}
    assert len(chapters) == sum(summary["splits"][s]["chapters"] for s in SPLITS)
    assert len(chapters) > sum(summary["splits"][s]["speakers"] for s in SPLITS)
    assert "eSpeak NG" in (root / "README.TXT").read_text()
    assert json.loads((root / ".minicorpus.json").read_text())["settings"]["seed"] == 3
    assert not list(root.rglob("*tmp*")) and not (root / ".minicorpus.partial.json").exists()


def test_audio_is_16k_mono_flac_of_plausible_length(corpus_dir):
    out, _ = corpus_dir
    words, secs = [], []
    for utts in read_corpus(out / "LibriSpeech").values():
        for text, path in utts.values():
            info = sf.info(str(path))
            assert (info.format, info.subtype, info.samplerate, info.channels) == (
                "FLAC",
                "PCM_16",
                16000,
                1,
            )
            words.append(len(text.split()))
            secs.append(info.duration)
    rate = np.array(words) / np.array(secs)
    assert rate.min() > 1.5 and rate.max() < 6.0, "words per second"
    assert np.corrcoef(words, secs)[0, 1] > 0.7, "longer sentences give longer audio"


def test_held_out_sentences_and_voice(corpus_dir):
    out, summary = corpus_dir
    root = out / "LibriSpeech"
    corpus = read_corpus(root)
    train = {t for t, _ in corpus["train-clean-100"].values()}
    vocab = {w for t in train for w in t.split()}
    for split in ("dev-clean", "test-clean"):
        held = [t for t, _ in corpus[split].values()]
        assert not set(held) & train
        assert {w for t in held for w in t.split()} <= vocab
    table = speakers_table(root)
    voices = {s: set() for s in SPLITS}
    for split, utts in corpus.items():
        for utt_id in utts:
            subset, voice, rate, pitch = table[utt_id.split("-")[0]]
            assert subset == split
            assert 140 <= rate <= 200 and 0 <= pitch <= 100
            voices[split].add(voice)
    assert voices["test-clean"] == {HELDOUT_VOICE}
    assert HELDOUT_VOICE not in voices["train-clean-100"] | voices["dev-clean"]
    assert voices["dev-clean"] <= voices["train-clean-100"] <= set(TRAIN_VOICES)
    assert summary["splits"]["test-clean"]["voices"] == [HELDOUT_VOICE]
    assert summary["heldout_voice"] == HELDOUT_VOICE


def test_same_seed_same_texts(corpus_dir, tmp_path):
    out, _ = corpus_dir
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(minicorpus, "_CHAPTER_SIZE", 2)
        build_minicorpus(tmp_path / "again", jobs=1, **SMALL)
        build_minicorpus(tmp_path / "other", jobs=1, **dict(SMALL, seed=4))

    def texts(folder):
        corpus = read_corpus(folder / "LibriSpeech")
        return {s: {k: t for k, (t, _) in u.items()} for s, u in corpus.items()}

    assert texts(tmp_path / "again") == texts(out)
    assert texts(tmp_path / "other") != texts(out)


def test_rerun_is_a_noop(corpus_dir, monkeypatch, capsys):
    out, summary = corpus_dir
    before = snapshot(out)

    def forbidden(batch):
        raise AssertionError("a complete corpus must not be synthesized again")

    monkeypatch.setattr(minicorpus, "_synthesize_batch", forbidden)
    monkeypatch.setattr(minicorpus, "_CHAPTER_SIZE", 2)
    again = build_minicorpus(out, jobs=2, **SMALL)
    assert again["synthesized"] == 0 and again["splits"] == summary["splits"]
    assert again["elapsed_seconds"] < 1.0
    argv = ["--output_folder", str(out), "--num_train", "60", "--num_valid", "8"]
    minicorpus.main(argv + ["--num_test", "8", "--seed", "3"])
    assert json.loads(capsys.readouterr().out)["splits"] == summary["splits"]
    assert snapshot(out) == before


def test_interrupted_run_resumes(tmp_path, monkeypatch):
    settings = dict(num_train=12, num_valid=3, num_test=3, seed=5)
    build_minicorpus(tmp_path / "reference", jobs=1, **settings)
    reference = read_corpus(tmp_path / "reference" / "LibriSpeech")

    calls = {"n": 0}
    write_flac = minicorpus._write_flac

    def interrupted(path, wav):
        if calls["n"] == 7:
            raise KeyboardInterrupt
        calls["n"] += 1
        return write_flac(path, wav)

    monkeypatch.setattr(minicorpus, "_write_flac", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_minicorpus(tmp_path / "run", jobs=1, **settings)
    root = tmp_path / "run" / "LibriSpeech"
    assert not (root / ".minicorpus.json").exists() and (root / ".minicorpus.partial.json").exists()
    kept = sorted(root.rglob("*.flac"))
    assert len(kept) == 7
    kept_state = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in kept}
    stray = kept[0].with_name(kept[0].name + ".999.minicorpus-tmp")
    stray.write_bytes(b"half a file")
    # different settings may not reuse the unfinished folder
    with pytest.raises(RuntimeError, match="unfinished minicorpus with other settings"):
        build_minicorpus(tmp_path / "run", jobs=1, **dict(settings, num_train=13))

    calls["n"] = -1000
    summary = build_minicorpus(tmp_path / "run", jobs=2, **settings)
    assert summary["synthesized"] == 18 - 7
    assert not stray.exists()
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in kept} == kept_state
    resumed = read_corpus(root)
    assert {s: {k: t for k, (t, _) in u.items()} for s, u in resumed.items()} == {
        s: {k: t for k, (t, _) in u.items()} for s, u in reference.items()
    }
    assert (root / ".minicorpus.json").exists() and not (root / ".minicorpus.partial.json").exists()

    # files deleted after completion are restored by a re-run
    os.remove(kept[1])
    again = build_minicorpus(tmp_path / "run", jobs=1, **settings)
    assert again["synthesized"] == 1 and kept[1].is_file()


def test_mismatched_settings_error_and_overwrite(tmp_path):
    settings = dict(num_train=20, num_valid=1, num_test=1, seed=0)
    build_minicorpus(tmp_path, jobs=1, **settings)
    with pytest.raises(RuntimeError, match="other settings.*overwrite=True"):
        build_minicorpus(tmp_path, jobs=1, **dict(settings, seed=1))
    summary = build_minicorpus(tmp_path, jobs=1, overwrite=True, **dict(settings, num_train=21))
    assert summary["splits"]["train-clean-100"]["utterances"] == 21
    assert len(list((tmp_path / "LibriSpeech" / "train-clean-100").rglob("*.flac"))) == 21


def test_foreign_librispeech_folder_is_never_deleted(tmp_path):
    foreign = tmp_path / "LibriSpeech" / "train-clean-100" / "19" / "198"
    foreign.mkdir(parents=True)
    (foreign / "19-198.trans.txt").write_text("19-198-0000 REAL SPEECH\n")
    for overwrite in (False, True):
        with pytest.raises(RuntimeError, match="no minicorpus marker"):
            build_minicorpus(tmp_path, num_train=2, num_valid=0, num_test=0, overwrite=overwrite)
    assert (foreign / "19-198.trans.txt").is_file()


def test_too_few_training_sentences_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="use a larger num_train"):
        build_minicorpus(tmp_path, num_train=1, num_valid=50, num_test=50, jobs=1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_train must be an int >= 1"):
        build_minicorpus("unused", num_train=0)
    with pytest.raises(ValueError, match="jobs must be an int >= 1"):
        build_minicorpus("unused", num_train=1, jobs=0)
    assert not Path("unused").exists()


def test_empty_held_out_splits(tmp_path):
    summary = build_minicorpus(tmp_path, num_train=2, num_valid=0, num_test=0, jobs=1)
    assert [summary["splits"][s]["utterances"] for s in SPLITS] == [2, 0, 0]
    again = build_minicorpus(tmp_path, num_train=2, num_valid=0, num_test=0, jobs=1)
    assert again["synthesized"] == 0
    shutil.rmtree(tmp_path / "LibriSpeech")


def test_small_vocabulary_corpus_uses_only_small_words(tmp_path):
    small = set(grammar.grammar_words("small"))
    assert len(small) < 0.7 * len(grammar.grammar_words())
    summary = minicorpus.build_minicorpus(
        tmp_path, num_train=30, num_valid=3, num_test=3, jobs=1, vocabulary="small"
    )
    texts = []
    for trans in (tmp_path / "LibriSpeech").rglob("*.trans.txt"):
        texts += [line.split(" ", 1)[1].strip().lower() for line in trans.read_text().splitlines()]
    assert len(texts) == 36
    assert {w for t in texts for w in t.split()} <= small
    assert summary["vocabulary_size"] <= len(small)
    # A corpus of one vocabulary is never silently reused for the other.
    with pytest.raises(RuntimeError, match="'vocabulary': 'small'.*overwrite=True"):
        minicorpus.build_minicorpus(tmp_path, num_train=30, num_valid=3, num_test=3, jobs=1)
    with pytest.raises(ValueError, match="vocabulary"):
        minicorpus.build_minicorpus(tmp_path / "x", num_train=30, vocabulary="tiny")
