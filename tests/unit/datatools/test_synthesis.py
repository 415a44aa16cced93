"""Tests of the SQA re-synthesis data tool (Seamless TTS, random pool of speakers)."""

import collections
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechmapper_plugin.data.manifests import read_manifest, write_csv
from speechmapper_plugin.datatools.resumable import SettingsMismatchError
from speechmapper_plugin.datatools.synthesis import (
    SeamlessSynthesizer,
    draw_speaker,
    parse_speaker_pool,
    resynthesize_sqa,
    split_sentences,
)
from speechmapper_plugin.tiny.seamless import build_tiny_seamless
from speechmapper_plugin.utils.text import normalize_text

SCRIPT = Path(__file__).parents[3] / "recipes" / "IWSLT25" / "tools" / "resynthesize_sqa.py"


FIELDS = ["ID", "duration", "wav", "start", "stop", "audio_id", "spk_id", "wrd", "transcript"]


FIELDS += ["tgt", "tgt_lang", "question", "context", "task"]


PASSAGES = {
    "p1": "the cat sat on the mat. it was black! where did it go? nobody knows",
    "p2": "a dog ran in the park.",
    "p3": "birds sing in the morning. they fly away",
}


def row(utt_id, audio_id, context=None, **extra):
    context = PASSAGES[audio_id] if context is None else context
    return {
        "ID": utt_id,
        "duration": 9.0,
        "wav": f"/data/{audio_id}.wav",
        "start": "",
        "stop": "",
        "audio_id": audio_id,
        "spk_id": "",
        "wrd": "old asr text",
        "transcript": "old asr text",
        "tgt": "the mat",
        "tgt_lang": "en",
        "question": "where?",
        "context": context,
        "task": "sqa",
        **extra,
    }


ROWS = [row("q1", "p1"), row("q2", "p1"), row("q3", "p2"), row("q4", "p3"), row("q5", "p3")]


def write_manifest(path, rows=ROWS):
    write_csv(str(path), rows, FIELDS)
    return str(path)


@pytest.fixture(scope="module")
def tts(tmp_path_factory):
    folder = build_tiny_seamless(tmp_path_factory.mktemp("seamless") / "model", PASSAGES.values())
    return SeamlessSynthesizer(str(folder), device="cpu", batch_size=2)


class Scripted:
    """Each sentence lasts 0.01 s per character at 8 kHz; records calls; can fail."""

    model = "scripted"
    sampling_rate = 8000
    num_speakers = 10

    def __init__(self, fail_on=(), interrupt_on=()):
        self.calls = []
        self.fail_on = fail_on
        self.interrupt_on = interrupt_on

    def synthesize(self, sentences, speaker, lang="en"):
        if any(word in " ".join(sentences) for word in self.interrupt_on):
            raise KeyboardInterrupt("simulated interruption")
        if any(word in " ".join(sentences) for word in self.fail_on):
            raise RuntimeError("CUDA out of memory")
        self.calls.append((tuple(sentences), speaker))
        return [np.full(80 * len(s), 0.5, dtype=np.float32) for s in sentences]


def test_split_sentences_and_speaker_pool():
    assert split_sentences(PASSAGES["p1"]) == [
        "the cat sat on the mat.",
        "it was black!",
        "where did it go?",
        "nobody knows",
    ]
    assert split_sentences("one two three four", max_chars=9) == ["one two", "three", "four"]
    assert parse_speaker_pool("0-2,5,2", 10) == [0, 1, 2, 5]
    assert parse_speaker_pool([7, 1], 10) == [1, 7]
    assert parse_speaker_pool(None, 4) == [0, 1, 2, 3]
    for bad, match in (
        ("5-2", "Bad speaker pool '5-2'"),
        ("a,b", "ids and ranges"),
        ("0-12", r"ids \[10, 11, 12\] are within the vocoder's 10 speakers"),
        ("", "Bad speaker pool"),
        ([], "it is empty"),
    ):
        with pytest.raises(ValueError, match=match):
            parse_speaker_pool(bad, 10)


def test_speaker_draw_is_reproducible_and_spread_over_the_pool():
    pool = [2, 5, 7, 9]
    ids = [f"passage{i}" for i in range(400)]
    draws = [draw_speaker(i, pool, seed=1) for i in ids]
    assert draws == [draw_speaker(i, pool, seed=1) for i in ids]
    counts = collections.Counter(draws)
    assert sorted(counts) == pool and min(counts.values()) > 60  # ~100 each
    other = [draw_speaker(i, pool, seed=2) for i in ids]
    assert sum(a != b for a, b in zip(draws, other)) > 200  # another seed, other voices


def test_resynthesis_with_tiny_seamless(tts, tmp_path):
    src = write_manifest(tmp_path / "sqa.csv", [*ROWS, row("q6", "p4", context=" ")])
    out = tmp_path / "tts.csv"
    report = resynthesize_sqa(src, out, tts, speakers="1-3", seed=0)
    assert report["kept"] == 3 and report["dropped"] == {"empty_text": 1}
    assert report["output_rows"] == 5 and report["input_items"] == 4
    rows = read_manifest(out)
    assert list(rows) == ["q1", "q2", "q3", "q4", "q5"]
    for utt_id, new in rows.items():
        audio_id = next(r["audio_id"] for r in ROWS if r["ID"] == utt_id)
        speaker = draw_speaker(audio_id, [1, 2, 3], 0)
        assert new["spk_id"] == f"seamless_{speaker}"
        assert new["audio_id"] == f"{audio_id}_seamless{speaker}"
        assert Path(new["wav"]).parent == tmp_path / "tts_audio"
        info = soundfile.info(new["wav"])
        assert info.samplerate == 16000 and info.subtype == "PCM_16"
        assert info.frames / 16000 == pytest.approx(new["duration"], abs=1e-9)
        assert new["transcript"] == PASSAGES[audio_id]  # what the new audio says
        assert new["wrd"] == normalize_text(PASSAGES[audio_id])
        assert (new["start"], new["stop"], new["question"], new["tgt"]) == (
            "",
            "",
            "where?",
            "the mat",
        )
    assert rows["q1"]["wav"] == rows["q2"]["wav"]  # the questions of a passage share its audio
    assert len({r["wav"] for r in rows.values()}) == 3
    # The passage is synthesized sentence by sentence: 4 sentences + 3 pauses of 0.2 s.
    p2 = rows["q3"]["duration"]  # one sentence
    assert rows["q1"]["duration"] > 3 * 0.2 + p2


def test_sentences_pauses_and_resampling(tmp_path):
    src = write_manifest(tmp_path / "sqa.csv", ROWS[:1])
    scripted = Scripted()
    resynthesize_sqa(src, tmp_path / "out.csv", scripted, pause=0.5, max_chars=20)
    sentences, _ = scripted.calls[0]
    assert sentences == (
        "the cat sat on the",
        "mat.",
        "it was black!",
        "where did it go?",
        "nobody knows",
    )
    expected = sum(0.01 * len(s) for s in sentences) + 4 * 0.5  # at 8 kHz, resampled to 16 kHz
    new = read_manifest(tmp_path / "out.csv")["q1"]
    assert new["duration"] == pytest.approx(expected, abs=1 / 16000)
    wav, rate = soundfile.read(new["wav"])
    assert rate == 16000 and len(wav) / 16000 == new["duration"]
    assert abs(wav[800:1000]).min() > 0.4 and abs(wav[int(0.19 * 16000)]) < 1e-3  # speech, pause


def test_failures_are_dropped_with_their_reason(tmp_path):
    rows = [*ROWS, row("q6", "p2", context="another text")]
    src = write_manifest(tmp_path / "sqa.csv", rows)
    report = resynthesize_sqa(
        src, tmp_path / "out.csv", Scripted(fail_on=("birds",)), max_duration=0.5
    )
    assert report["dropped"] == {"too_long": 1, "inconsistent_text": 1, "synthesis_error": 1}
    dropped = (tmp_path / "out.dropped.tsv").read_text().splitlines()
    assert "p3\tsynthesis_error\tRuntimeError: CUDA out of memory" in dropped
    assert "p2\tinconsistent_text\t2 row(s) with 2 different texts" in dropped
    assert any(line.startswith("p1\ttoo_long\t") for line in dropped)
    assert list(read_manifest(tmp_path / "out.csv")) == []


def test_resume_does_not_redo_passages_and_matches(tts, tmp_path):
    src = write_manifest(tmp_path / "sqa.csv")
    folder = tmp_path / "audio"
    reference = tmp_path / "ref.csv"
    resynthesize_sqa(src, reference, tts, audio_folder=folder, seed=3)
    expected = {p.name: p.read_bytes() for p in folder.iterdir()}

    out = tmp_path / "out.csv"
    for path in folder.iterdir():
        path.unlink()

    class Interrupted:
        def __init__(self, inner, word):
            self.inner, self.word, self.texts = inner, word, []
            self.model, self.num_speakers = inner.model, inner.num_speakers
            self.sampling_rate = inner.sampling_rate

        def synthesize(self, sentences, speaker, lang="en"):
            if self.word and any(self.word in s for s in sentences):
                raise KeyboardInterrupt("simulated interruption")
            self.texts.extend(sentences)
            return self.inner.synthesize(sentences, speaker, lang)

    with pytest.raises(KeyboardInterrupt):
        resynthesize_sqa(src, out, Interrupted(tts, "dog"), audio_folder=folder, seed=3)
    assert not out.exists() and len(list(folder.iterdir())) == 1  # p1 done, p2 interrupted
    resumed = Interrupted(tts, None)
    report = resynthesize_sqa(src, out, resumed, audio_folder=folder, seed=3)
    assert not any("cat" in text for text in resumed.texts)  # p1 is not synthesized again
    assert report["kept"] == 3
    assert out.read_text() == reference.read_text()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == expected
    with pytest.raises(SettingsMismatchError, match="seed"):
        resynthesize_sqa(src, out, tts, audio_folder=folder, seed=4)


def test_errors_name_the_problem(tts, tmp_path):
    src = write_manifest(tmp_path / "sqa.csv")
    with pytest.raises(KeyError, match=r"lacks the column\(s\) \['passage'\]"):
        resynthesize_sqa(src, tmp_path / "o.csv", Scripted(), text_column="passage")
    with pytest.raises(ValueError, match=r"ids \[4\] are within the vocoder's 4 speakers"):
        resynthesize_sqa(src, tmp_path / "o.csv", tts, speakers="0-4")
    with pytest.raises(ValueError, match=r"cannot synthesize ja \(jpn\)"):
        resynthesize_sqa(src, tmp_path / "o.csv", tts, lang="ja")
    with pytest.raises(ValueError, match="Unknown language 'xx'"):
        resynthesize_sqa(src, tmp_path / "o.csv", tts, lang="xx")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resynthesize_sqa(tmp_path / "none.csv", tmp_path / "o.csv", Scripted())


def test_command_line_script(tts, tmp_path, monkeypatch, capsys):
    src = write_manifest(tmp_path / "sqa.csv", ROWS[2:3])
    out = tmp_path / "cli.csv"
    argv = [str(SCRIPT), "--input", src, "--output", str(out), "--model", tts.model]
    argv += ["--speakers", "2", "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["kept"] == 1
    assert read_manifest(out)["q3"]["spk_id"] == "seamless_2"
