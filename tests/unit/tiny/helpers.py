"""Helpers shared by the tests of ``speechmapper_plugin.tiny``."""

import re
from pathlib import Path

from speechmapper_plugin.tiny.minicorpus import (
    SPLITS,
)

TRANS_RE = re.compile(r"^(\d+)-(\d+)-(\d{4}) ([A-Z]+( [A-Z]+)*)$")


SMALL = dict(num_train=60, num_valid=8, num_test=8, seed=3)


# ---- helpers ------------------------------------------------------------------------------
def read_corpus(root):
    """Returns {split: {utt_id: (text, flac_path)}}, checking file/transcript agreement."""
    corpus = {}
    for split in SPLITS:
        utts = {}
        for trans in sorted(Path(root, split).glob("*/*/*.trans.txt")):
            spk, chap = trans.parent.parent.name, trans.parent.name
            assert trans.name == f"{spk}-{chap}.trans.txt"
            flacs = {p.stem for p in trans.parent.glob("*.flac")}
            listed = set()
            for line in trans.read_text(encoding="utf-8").splitlines():
                m = TRANS_RE.match(line)
                assert m, f"bad transcript line {line!r} in {trans}"
                assert (m.group(1), m.group(2)) == (spk, chap)
                utt_id = line.split(" ", 1)[0]
                listed.add(utt_id)
                utts[utt_id] = (m.group(4), trans.parent / f"{utt_id}.flac")
            assert listed == flacs, f"{trans}: transcript ids and FLAC files differ"
        corpus[split] = utts
    return corpus


def speakers_table(root):
    """Parses SPEAKERS.TXT into {speaker_id: (subset, voice, rate, pitch)}."""
    table = {}
    for line in Path(root, "SPEAKERS.TXT").read_text().splitlines():
        if line.startswith(";"):
            continue
        spk, sex, subset, minutes, voice, rate, pitch = [f.strip() for f in line.split("|")]
        assert sex in ("M", "F") and float(minutes) > 0
        table[spk] = (subset, voice, int(rate), int(pitch))
    return table
