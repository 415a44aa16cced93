"""Tests for recipes/EuroParlST/europarlst_prepare.py on a tiny EuroParl-ST v1.1 tree (m4a
speeches encoded with PyAV, parallel segments.lst / segments.en / segments.<tgt> files)."""

import pathlib
import sys

import numpy as np
import prepare_checks as pc
import pytest

av = pytest.importorskip("av")

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "EuroParlST"
sys.path.insert(0, str(RECIPE))

import europarlst_prepare as ep  # noqa: E402

SR = 16000
A = "en.20080924.31.3-243"  # 3 s
B = "en.20090505.12.3-101"  # 2 s
C = "en.20100310.4.3-055"  # no audio file
D = "en.20110117.19.3-200"  # not audio
SPEECHES = {A: 3.0, B: 2.0, D: "garbage"}
SPEAKERS = {A: "http://www.europarl.europa.eu/meps/en/EUmember_96706", B: "EUmember_28310"}
TEST_DE = [  # segments.lst line, segments.en line, segments.de line
    (
        f"{A} 0.0 1.25",
        "Madam President, I welcome this report.",
        "Frau Präsidentin! Ich begrüße das.",
    ),
    (
        f"{A} 1.25 2.5",
        "The Commission\u2019s proposal \u2013 \u201cEurope 2020\u201d \u2013 is fine.",
        "Der Vorschlag der Kommission \u2013 \u201eEuropa 2020\u201c \u2013 ist gut.",
    ),
    (f"{A} 0.0 1.25", "A duplicate segment.", "Ein doppeltes Segment."),
    (
        f"{B} 0.5 1.5",
        "\u00c7a va, Zo\u00eb? Gr\u00f6\u00dfe matters.",
        "Gr\u00f6\u00dfe z\u00e4hlt.",
    ),
    (f"{C} 0.0 1.0", "Missing audio.", "Fehlendes Audio."),
    (f"{D} 0.0 1.0", "Unreadable audio.", "Unlesbares Audio."),
    (f"{A} 2.5 4.0", "Beyond the end.", "Nach dem Ende."),
    (f"{B} 1.5 1.5", "Empty segment.", "Leeres Segment."),
    ("this line is garbage", "Malformed.", "Fehlerhaft."),
    (f"{B} 1.5 1.9", "", "Kein Englisch."),
    (f"{B} 1.0 1.9", "No German.", ""),
]
EXPECTED_DE = [  # ID, duration, start, stop, audio_id, spk_id, wrd, transcript, tgt, tgt_lang, task
    (
        f"{A}_0000000_0001250-de",
        "1.25",
        "0.0",
        "1.25",
        f"{A}_0000000_0001250",
        "EUmember_96706",
        "madam president i welcome this report",
        TEST_DE[0][1],
        TEST_DE[0][2],
        "de",
        "st",
    ),
    (
        f"{A}_0001250_0002500-de",
        "1.25",
        "1.25",
        "2.5",
        f"{A}_0001250_0002500",
        "EUmember_96706",
        "the commission's proposal europe is fine",
        TEST_DE[1][1],
        TEST_DE[1][2],
        "de",
        "st",
    ),
    (
        f"{B}_0000500_0001500-de",
        "1.0",
        "0.5",
        "1.5",
        f"{B}_0000500_0001500",
        "EUmember_28310",
        "\u00e7a va zo\u00eb gr\u00f6\u00dfe matters",
        TEST_DE[3][1],
        TEST_DE[3][2],
        "de",
        "st",
    ),
]
# Rows skipped by run_preparation carry the manifest ID (<segment>-<tgt>); rows the script drops
# while reading the segments (unreadable audio, beyond the audio, malformed) the segment id.
EXPECTED_SKIPS = {
    f"{A}_0000000_0001250-de": "duplicate_id",
    f"{C}_0000000_0001000-de": "missing_audio",
    f"{D}_0000000_0001000": "unreadable_audio",
    f"{A}_0002500_0004000": "segment_beyond_audio",
    f"{B}_0001500_0001500-de": "bad_segment",
    "this": "malformed_segment",
    f"{B}_0001500_0001900-de": "empty_wrd",
    f"{B}_0001000_0001900-de": "empty_tgt",
}
TEST_FR = [
    (f"{B} 0.0 0.75", "Thank you.", "Merci. \u00c0 bient\u00f4t\u2028!"),
    (f"{B} 0.5 1.5", TEST_DE[3][1], "La taille compte."),  # also in en-de
]


def _m4a(path, seconds):
    samples = np.random.default_rng(0).uniform(-0.3, 0.3, int(seconds * SR)).astype("float32")
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=SR)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = SR
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _write_set(en, target, set_name, rows, speakers=True):
    folder = en / target / set_name
    folder.mkdir(parents=True)
    for i, name in enumerate(("segments.lst", "segments.en", f"segments.{target}")):
        text = "".join(row[i] + "\n" for row in rows)
        (folder / name).write_text(text, encoding="utf-8")
    if speakers:
        (folder / "speeches.lst").write_text("".join(s + "\n" for s in SPEAKERS))
        (folder / "speakers.lst").write_text("".join(s + "\n" for s in SPEAKERS.values()))
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    data = tmp_path_factory.mktemp("europarl")
    en = data / "v1.1" / "en"
    (en / "audios").mkdir(parents=True)
    for speech, seconds in SPEECHES.items():
        path = en / "audios" / f"{speech}.m4a"
        if seconds == "garbage":
            path.write_bytes(b"not an m4a file" * 20)
        else:
            _m4a(path, seconds)
    _write_set(en, "de", "test", TEST_DE)
    _write_set(en, "fr", "test", TEST_FR, speakers=False)
    return data


def _prepare(data_folder, save, splits=("test_en-de", "test_en-fr"), **kwargs):
    return ep.prepare_europarlst(str(data_folder), str(save), list(splits), **kwargs)


def test_manifest_rows(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save)
    header, rows = pc.read_csv(save / "test_en-de.csv")
    assert header == [
        "ID",
        "duration",
        "wav",
        "start",
        "stop",
        "audio_id",
        "spk_id",
        "wrd",
        "transcript",
        "tgt",
        "tgt_lang",
        "task",
    ]
    assert [tuple(r[:2] + r[3:]) for r in rows] == EXPECTED_DE
    audios = corpus / "v1.1" / "en" / "audios"
    assert [r[2] for r in rows] == [str(audios / f"{A}.m4a")] * 2 + [str(audios / f"{B}.m4a")]
    de_header, de_rows = header, rows
    # fr: no speakers.lst (no spk_id column); a U+2028 inside a translation is not a line break
    header, rows = pc.read_csv(save / "test_en-fr.csv")
    assert "spk_id" not in header
    assert [dict(zip(header, r)) for r in rows] == [
        {
            "ID": f"{B}_0000000_0000750-fr",
            "duration": "0.75",
            "wav": str(audios / f"{B}.m4a"),
            "start": "0.0",
            "stop": "0.75",
            "audio_id": f"{B}_0000000_0000750",
            "wrd": "thank you",
            "transcript": "Thank you.",
            "tgt": TEST_FR[0][2],
            "tgt_lang": "fr",
            "task": "st",
        },
        {
            "ID": f"{B}_0000500_0001500-fr",
            "duration": "1.0",
            "wav": str(audios / f"{B}.m4a"),
            "start": "0.5",
            "stop": "1.5",
            "audio_id": f"{B}_0000500_0001500",
            "wrd": EXPECTED_DE[2][6],
            "transcript": TEST_FR[1][1],
            "tgt": TEST_FR[1][2],
            "tgt_lang": "fr",
            "task": "st",
        },
    ]
    assert summary["test_en-fr"] == {"utterances": 2, "hours": 0.0, "skipped": {}}
    # one segment prepared for two targets: two distinct IDs (the pairs can be trained
    # together), one audio_id (one cached feature file)
    de_row = dict(zip(de_header, de_rows[2]))
    fr_row = dict(zip(header, rows[1]))
    assert (de_row["ID"], fr_row["ID"]) == (f"{B}_0000500_0001500-de", f"{B}_0000500_0001500-fr")
    assert de_row["audio_id"] == fr_row["audio_id"] == f"{B}_0000500_0001500"
    assert [de_row[k] for k in ("wav", "start", "stop")] == [
        fr_row[k] for k in ("wav", "start", "stop")
    ]


def test_skips_are_counted_and_listed(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save, max_duration=1.2)
    assert summary["test_en-de"]["utterances"] == 1  # only the 1.0 s segment is short enough
    assert summary["test_en-de"]["skipped"] == {
        "duplicate_id": 1,
        "missing_audio": 1,
        "unreadable_audio": 1,
        "segment_beyond_audio": 1,
        "bad_segment": 1,
        "malformed_segment": 1,
        "empty_wrd": 1,
        "empty_tgt": 1,
        "too_long": 2,
    }
    pc.assert_summary_file(save, summary)
    listed = pc.read_skipped(save, "test_en-de")
    assert {u: r for u, r, _ in listed if r != "too_long"} == EXPECTED_SKIPS
    assert sorted(u for u, r, _ in listed if r == "too_long") == [
        f"{A}_0000000_0001250-de",
        f"{A}_0001250_0002500-de",
    ]
    details = {u: d for u, _, d in listed}
    assert details[f"{C}_0000000_0001000-de"].endswith(f"audios/{C}.m4a")
    assert details["this"].endswith("test/segments.lst:9: 'this line is garbage'")
    assert "ends at 4.0s" in details[f"{A}_0002500_0004000"]
    assert (save / "test_en-fr.skipped.tsv").read_text() == ""


def test_second_call_is_a_no_op(corpus, tmp_path, monkeypatch):
    save = tmp_path / "m"
    pc.assert_second_call_is_a_no_op(
        monkeypatch, ep, "read_split", lambda: _prepare(corpus, save), save
    )
    # other options: prepared again
    assert _prepare(corpus, save, max_duration=1.2)["test_en-de"]["utterances"] == 1


def test_data_folder_may_be_the_release_folder(corpus, tmp_path):
    _prepare(corpus, tmp_path / "a")
    _prepare(corpus / "v1.1", tmp_path / "b")
    pc.assert_same_manifests(tmp_path / "a", tmp_path / "b", ("test_en-de", "test_en-fr"))


def test_line_count_mismatch_is_a_corrupt_download(tmp_path):
    en = tmp_path / "v1.1" / "en"
    (en / "audios").mkdir(parents=True)
    folder = _write_set(en, "it", "test", TEST_DE[:3])
    (folder / "segments.it").write_text("Una riga.\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        _prepare(tmp_path, tmp_path / "m", splits=["test_en-it"])
    message = str(err.value)
    assert f"{folder / 'segments.lst'} has 3 lines but {folder / 'segments.it'} has 1" in message
    assert "corrupt" in message
    (folder / "segments.it").write_text("a\nb\nc\n", encoding="utf-8")
    (folder / "speakers.lst").write_text("EUmember_1\n")
    with pytest.raises(ValueError, match="speeches.lst has 2 lines but .*speakers.lst has 1"):
        _prepare(tmp_path, tmp_path / "m", splits=["test_en-it"])


def test_wrong_layout_names_the_expected_one(corpus, tmp_path):
    message = pc.empty_folder_error(tmp_path, lambda folder: _prepare(folder, tmp_path / "m"))
    assert "<data_folder>/v1.1/en/<tgt>/<set>/segments.lst" in message
    assert "<data_folder>/v1.1/en/audios/<speech_id>.m4a" in message
    assert "https://www.mllp.upv.es/europarl-st/" in message
    # another release
    (tmp_path / "old" / "v1.0" / "en" / "de" / "test").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"holds \['v1.0'\], not v1.1"):
        _prepare(tmp_path / "old", tmp_path / "m")
    # a pair that is not there: the sets that are there are listed
    with pytest.raises(FileNotFoundError, match=r"lacks .*segments.lst.*\['de/test', 'fr/test'\]"):
        _prepare(corpus, tmp_path / "m", splits=["dev_en-de"])
    # no audios/ folder
    _write_set(tmp_path / "noaudio" / "v1.1" / "en", "de", "test", TEST_DE[:1])
    with pytest.raises(FileNotFoundError, match=r"audios does not exist"):
        _prepare(tmp_path / "noaudio", tmp_path / "m", splits=["test_en-de"])


def test_unknown_split_and_skip_prep(corpus, tmp_path):
    for split in ("test_en-zh", "test_de-en", "eval_en-de", "test"):
        with pytest.raises(ValueError, match=r"valid splits are <set>_en-<tgt>"):
            _prepare(corpus, tmp_path / "m", splits=[split])
    assert ep.parse_split("train-noisy_en-pt") == ("train-noisy", "pt")
    assert _prepare(tmp_path / "none", tmp_path / "m", skip_prep=True) == {}
    assert not (tmp_path / "m").exists()


def test_overshoot_within_the_tolerance_is_cut_to_the_audio(tmp_path):
    """A segment ending 0.3 s after its speech (alignment slack): kept, with the stop and
    duration of the audio that exists; one starting after the audio is skipped (issue 17)."""
    en = tmp_path / "v1.1" / "en"
    (en / "audios").mkdir(parents=True)
    _m4a(en / "audios" / f"{B}.m4a", 2.0)
    length, _ = ep.speech_duration(str(en / "audios" / f"{B}.m4a"))
    assert 2.0 <= length < 2.1
    rows = [
        (f"{B} 0.0 1.0", "Inside.", "Drinnen."),
        (f"{B} 1.0 {length + 0.3:.3f}", "Over the end.", "Uber das Ende."),
        (f"{B} {length + 0.1:.3f} {length + 0.3:.3f}", "After the end.", "Nach dem Ende."),
    ]
    _write_set(en, "de", "test", rows, speakers=False)
    summary = _prepare(tmp_path, tmp_path / "m", splits=["test_en-de"])
    assert summary["test_en-de"]["skipped"] == {"segment_beyond_audio": 1}
    rows = pc.read_csv_dicts(tmp_path / "m" / "test_en-de.csv")
    over = rows[1]
    assert float(over["stop"]) == pytest.approx(length) and float(over["start"]) == 1.0
    assert float(over["duration"]) == pytest.approx(length - 1.0, abs=1e-3)
    assert over["ID"] == f"{B}_0001000_{round((length + 0.3) * 1000):07d}-de"  # released times
    (skipped,) = pc.read_skipped(tmp_path / "m", "test_en-de")
    assert skipped[1] == "segment_beyond_audio" and "after its audio" in skipped[2]


def test_non_utf8_line_skips_its_segment_only(tmp_path):
    """A byte that is not UTF-8 in one line of segments.en: that segment is a counted skip
    naming the file and line; the parallel files stay aligned (issue 17)."""
    en = tmp_path / "v1.1" / "en"
    (en / "audios").mkdir(parents=True)
    _m4a(en / "audios" / f"{B}.m4a", 2.0)
    rows = [(f"{B} {i / 2} {i / 2 + 0.5}", f"Segment {i}.", f"Segment {i}.") for i in range(3)]
    folder = _write_set(en, "de", "test", rows, speakers=False)
    (folder / "segments.en").write_bytes(b"Segment 0.\nSegment \xe9 1.\nSegment 2.\n")
    summary = _prepare(tmp_path, tmp_path / "m", splits=["test_en-de"])
    assert summary["test_en-de"]["utterances"] == 2
    assert summary["test_en-de"]["skipped"] == {"bad_encoding": 1}
    (skipped,) = pc.read_skipped(tmp_path / "m", "test_en-de")
    assert skipped[:2] == [f"{B}_0000500_0001000", "bad_encoding"]
    assert skipped[2] == f"{folder / 'segments.en'}:2: byte 0xe9 at column 9"
    kept = pc.read_csv_dicts(tmp_path / "m" / "test_en-de.csv")
    assert [(r["start"], r["transcript"]) for r in kept] == [
        ("0.0", "Segment 0."),
        ("1.0", "Segment 2."),
    ]
