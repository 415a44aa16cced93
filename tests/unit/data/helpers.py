"""Helpers shared by the tests of ``speechmapper_plugin.data``."""

import torch

from speechmapper_plugin.data.manifests import write_csv
from speechmapper_plugin.features.cache import FeatureCache, FeatureCacheWriter

FIELDS = ["ID", "duration", "wav", "spk_id", "wrd"]


DIM = 4


UTTS = {  # id: (duration, frames, text)
    "s1-c1-0001": (3.0, 6, "the cat sat on the mat"),
    "s1-c1-0002": (1.0, 2, "a dog ran"),
    "s2-c1-0001": (2.0, 4, "hello world"),
    "s2-c1-0002": (4.5, 9, "the dog sat"),
    "s3-c2-0001": (0.5, 1, "far away"),
}


def _feats(utt_id):
    """Values exactly representable in fp16, different for every utterance."""
    frames = UTTS[utt_id][1]
    offset = sorted(UTTS).index(utt_id)
    return torch.arange(frames * DIM, dtype=torch.float32).view(frames, DIM) / 8 + offset


def _cache(folder, ids):
    with FeatureCacheWriter(str(folder), {"dim": DIM}) as writer:
        for utt_id in ids:
            writer.add(utt_id, _feats(utt_id))
    return FeatureCache(str(folder))


def _rows(ids):
    return [
        {
            "ID": i,
            "duration": UTTS[i][0],
            "wav": f"/a/{i}.flac",
            "spk_id": i.split("-")[0],
            "wrd": UTTS[i][2],
        }
        for i in ids
    ]


def _manifest(path, ids):
    write_csv(str(path), _rows(ids), FIELDS)
    return str(path)
