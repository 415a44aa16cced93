"""Tests for recipes/ACL6060/acl6060_prepare.py on a tiny tree in the layout of the ACL 60/60
release (2/acl_6060/<set>/text/xml/*.xml, segmented_wavs/gold/sent_<n>.wav) plus a
translations folder for a target the release lacks (Italian)."""

import json
import pathlib
import sys
from xml.sax.saxutils import escape

import numpy as np
import prepare_checks as pc
import pytest
import soundfile

from speechmapper_plugin.evaluation import iwslt_scoring
from speechmapper_plugin.evaluation.iwslt_scoring import group_by_talk, manifest_rows
from speechmapper_plugin.evaluation.results import make_result, write_result
from speechmapper_plugin.evaluation.talk_metrics import text_normalizer

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "ACL6060"
sys.path.insert(0, str(RECIPE))

import acl6060_prepare as ap  # noqa: E402

SR = 16000
T1, T2 = "2022.acl-long.268", "2022.acl-long.111"
# seg id, talk, seconds (None: no wav), en, de, zh
SEGMENTS = [
    (
        1,
        T1,
        1.0,
        "Hello, I'm Mr. Smith & this is our paper.",
        "Hallo, ich bin Herr Smith.",
        "你好。",
    ),
    (2, T1, 0.5, 'We study "BERT" models.', "Wir untersuchen BERT-Modelle.", "我们研究模型。"),
    (3, T1, 0.75, "Thank you.", "", "谢谢。"),
    (4, T2, 1.5, "Our second talk starts.", "Unser zweiter Vortrag beginnt.", "第二个报告开始。"),
    (5, T2, None, "No audio here.", "Hier kein Audio.", "这里没有音频。"),
]
ITALIAN = ["Ciao, sono il signor Smith.", "Studiamo modelli BERT.", "Grazie.", "Inizia.", "Niente."]


def _xml(path, lang, column):
    docs = {}
    for seg in SEGMENTS:
        docs.setdefault(seg[1], []).append(seg)
    body = []
    for talk, segs in docs.items():
        body.append(f'<doc docid="{talk}" genre="presentations">')
        body += [f'<seg id="{s[0]}">{escape(s[column])}</seg>' for s in segs]
        body.append("</doc>")
    kind = "srcset" if lang == "en" else "refset"
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<mteval>\n'
        f'<{kind} setid="acl_6060" srclang="en" trglang="{lang}">\n'
        + "\n".join(body)
        + f"\n</{kind}>\n</mteval>\n"
    )
    path.write_text(text, encoding="utf-8")


def _release(root, set_name="eval"):
    folder = root / "2" / "acl_6060" / set_name
    (folder / "text" / "xml").mkdir(parents=True)
    gold = folder / "segmented_wavs" / "gold"
    gold.mkdir(parents=True)
    for column, lang in ((3, "en"), (4, "de"), (5, "zh")):
        _xml(folder / "text" / "xml" / f"ACL.6060.{set_name}.en-xx.{lang}.xml", lang, column)
    for seg, _, seconds, *_ in SEGMENTS:
        if seconds is not None:
            soundfile.write(gold / f"sent_{seg}.wav", np.zeros(int(SR * seconds), "float32"), SR)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("acl6060")
    _release(root)
    translations = root / "translations"
    translations.mkdir()
    (translations / "ACL.6060.eval.en-xx.it.txt").write_text("\n".join(ITALIAN) + "\n")
    return root


def _prepare(data_folder, save, splits=("eval_asr", "eval_en-de"), **kwargs):
    return ap.prepare_acl6060(str(data_folder), str(save), list(splits), **kwargs)


def test_asr_and_st_manifests(corpus, tmp_path):
    save = tmp_path / "m"
    summary = _prepare(corpus, save, ("eval_asr", "eval_en-de", "eval_en-zh"))
    header, rows = pc.read_csv(save / "eval_asr.csv")
    assert header == [
        "ID",
        "duration",
        "wav",
        "audio_id",
        "spk_id",
        "wrd",
        "transcript",
        "task",
    ]
    gold = corpus / "2" / "acl_6060" / "eval" / "segmented_wavs" / "gold"
    assert [dict(zip(header, r)) for r in rows][0] == {
        "ID": f"{T1}_00001",
        "duration": "1.0",
        "wav": str(gold / "sent_1.wav"),
        "audio_id": f"{T1}_00001",
        "spk_id": T1,
        "wrd": "hello i'm mr smith this is our paper",
        "transcript": SEGMENTS[0][3],
        "task": "asr",
    }
    assert [r[0] for r in rows] == [f"{T1}_00001", f"{T1}_00002", f"{T1}_00003", f"{T2}_00004"]
    assert [r[4] for r in rows] == [T1, T1, T1, T2]
    assert rows[1][6] == 'We study "BERT" models.'
    de = pc.read_csv_dicts(save / "eval_en-de.csv")
    assert [(r["ID"], r["audio_id"], r["tgt"], r["tgt_lang"], r["task"]) for r in de] == [
        (f"{T1}_00001-de", f"{T1}_00001", SEGMENTS[0][4], "de", "st"),
        (f"{T1}_00002-de", f"{T1}_00002", SEGMENTS[1][4], "de", "st"),
        (f"{T2}_00004-de", f"{T2}_00004", SEGMENTS[3][4], "de", "st"),
    ]
    zh = pc.read_csv_dicts(save / "eval_en-zh.csv")
    assert [r["tgt"] for r in zh] == [s[5] for s in SEGMENTS[:4]]
    assert summary["eval_asr"] == {"utterances": 4, "hours": 0.001, "skipped": {"missing_audio": 1}}
    assert summary["eval_en-de"]["skipped"] == {"empty_tgt": 1, "missing_audio": 1}
    pc.assert_summary_file(save, summary)
    pc.assert_skip_reasons(
        save, "eval_en-de", {f"{T1}_00003-de": "empty_tgt", f"{T2}_00005-de": "missing_audio"}
    )
    # the official scoring finds the talks, segments in spoken order
    talks, missing = group_by_talk([], manifest_rows(save / "eval_asr.csv"))
    assert [(t, [r["ID"][-5:] for r in rows]) for t, rows in talks] == [
        (T1, ["00001", "00002", "00003"]),
        (T2, ["00004"]),
    ]


def test_translation_not_in_the_release_comes_from_translations_folder(corpus, tmp_path):
    save = tmp_path / "m"
    translations = corpus / "translations"
    summary = _prepare(corpus, save, ["eval_en-it"], translations_folder=str(translations))
    rows = pc.read_csv_dicts(save / "eval_en-it.csv")
    assert [(r["ID"], r["tgt"], r["tgt_lang"]) for r in rows] == [
        (f"{T1}_00001-it", ITALIAN[0], "it"),
        (f"{T1}_00002-it", ITALIAN[1], "it"),
        (f"{T1}_00003-it", ITALIAN[2], "it"),
        (f"{T2}_00004-it", ITALIAN[3], "it"),
    ]
    assert summary["eval_en-it"]["skipped"] == {"missing_audio": 1}
    with pytest.raises(FileNotFoundError) as err:
        _prepare(corpus, tmp_path / "n", ["eval_en-it"])
    message = str(err.value)
    assert "ACL.6060.eval.en-xx.it.xml" in message and "translations_folder" in message
    assert "ACL.6060.eval.en-xx.it.txt, one line per segment" in message
    short = tmp_path / "short"
    short.mkdir()
    (short / "ACL.6060.eval.en-xx.it.txt").write_text("Uno.\nDue.\n")
    with pytest.raises(ValueError, match=r"en-xx.it.txt has 2 lines but the English XML .* 5"):
        _prepare(corpus, tmp_path / "o", ["eval_en-it"], translations_folder=str(short))
    with pytest.raises(FileNotFoundError, match="translations_folder=.*does not exist"):
        _prepare(corpus, tmp_path / "p", ["eval_en-it"], translations_folder=str(tmp_path / "x"))


def test_second_call_is_a_no_op_and_new_translations_are_seen(corpus, tmp_path, monkeypatch):
    save = tmp_path / "m"
    translations = tmp_path / "translations"
    translations.mkdir()
    (translations / "ACL.6060.eval.en-xx.it.txt").write_text("\n".join(ITALIAN) + "\n")

    def call():
        return _prepare(corpus, save, ["eval_asr", "eval_en-it"], translations_folder=translations)

    pc.assert_second_call_is_a_no_op(monkeypatch, ap, "read_split", call, save)
    (translations / "ACL.6060.eval.en-xx.it.txt").write_text("\n".join(ITALIAN[::-1]) + "\n")
    call()
    assert pc.read_csv_dicts(save / "eval_en-it.csv")[0]["tgt"] == ITALIAN[-1]


def test_data_folder_may_be_any_release_level(corpus, tmp_path):
    _prepare(corpus, tmp_path / "a")
    _prepare(corpus / "2", tmp_path / "b")
    _prepare(corpus / "2" / "acl_6060", tmp_path / "c")
    pc.assert_same_manifests(tmp_path / "a", tmp_path / "b", ("eval_asr", "eval_en-de"))
    pc.assert_same_manifests(tmp_path / "a", tmp_path / "c", ("eval_asr", "eval_en-de"))


def test_wrong_layout_and_corrupt_files(corpus, tmp_path):
    message = pc.empty_folder_error(tmp_path, lambda folder: _prepare(folder, tmp_path / "m"))
    assert "<data_folder>/2/acl_6060/<set>/text/xml/ACL.6060.<set>.en-xx.<lang>.xml" in message
    assert "segmented_wavs/gold/sent_<seg id>.wav" in message
    assert "2023.iwslt-1.2.dataset.zip" in message
    with pytest.raises(FileNotFoundError, match="expected <data_folder>/2/acl_6060"):
        _prepare(corpus, tmp_path / "m", ["dev_asr"])  # no dev set in the fixture
    bad = tmp_path / "bad"
    folder = _release(bad)
    de = folder / "text" / "xml" / "ACL.6060.eval.en-xx.de.xml"
    de.write_text(de.read_text().replace('<seg id="4">', '<seg id="99">'))
    with pytest.raises(ValueError, match=r"en-xx.de.xml holds seg ids .*\['99'\].*parallel"):
        _prepare(bad, tmp_path / "n", ["eval_en-de"])
    de.write_text("<mteval><doc docid='x'>")
    with pytest.raises(ValueError, match="en-xx.de.xml is not valid XML"):
        _prepare(bad, tmp_path / "o", ["eval_en-de"])


def test_unknown_split_and_skip_prep(corpus, tmp_path):
    for split in ("test_asr", "eval_de-en", "eval", "eval_en-DE", "eval_st"):
        with pytest.raises(ValueError, match=r"valid splits are <set>_asr and <set>_en-<tgt>"):
            _prepare(corpus, tmp_path / "m", [split])
    assert ap.parse_split("dev_en-ja") == ("dev", "ja")
    assert _prepare(tmp_path / "none", tmp_path / "m", skip_prep=True) == {}
    assert not (tmp_path / "m").exists()


def test_official_scoring_uses_every_reference_segment_of_the_talks(corpus, tmp_path):
    """Segments the preparation leaves out (no audio, no translation) stay in the references
    of the official scoring, as in the organizers' files: they count as empty hypotheses."""
    save = tmp_path / "m"
    _prepare(corpus, save, ("eval_asr", "eval_en-de"))
    asr_refs = pc.read_csv_dicts(save / "eval_asr.references.csv")
    assert [r["ID"] for r in asr_refs] == [f"{s[1]}_{s[0]:05d}" for s in SEGMENTS]
    assert asr_refs[4]["transcript"] == "No audio here." and asr_refs[4]["spk_id"] == T2
    de_refs = pc.read_csv_dicts(save / "eval_en-de.references.csv")
    assert [(r["ID"], r["tgt"]) for r in de_refs] == [
        (f"{s[1]}_{s[0]:05d}-de", s[4]) for s in SEGMENTS
    ]  # seg 3 (no translation) and seg 5 (no audio) included
    kept = pc.read_csv_dicts(save / "eval_asr.csv")
    outputs = [{"id": r["ID"], "hypothesis": r["transcript"], "reference": r["wrd"]} for r in kept]
    result = make_result("S", "ACL6060", "eval_asr", "asr", {"wer": 0.0}, outputs)
    path = write_result(tmp_path / "eval", result)
    iwslt_scoring.main([path, "--manifest_folder", str(save)])
    scored = json.loads(open(path).read())
    normalize = text_normalizer("en")
    words = sum(len(normalize(s[3]).split()) for s in SEGMENTS)
    missing = len(normalize(SEGMENTS[4][3]).split())  # "no audio here": 3 deletions
    assert scored["metrics"]["official_wer"] == pytest.approx(100 * missing / words)
    assert scored["official_scoring"]["references"] == "eval_asr.references.csv"
    assert scored["official_scoring"]["missing_hypotheses"] == 1
    assert scored["official_scoring"]["num_segments"] == 5
