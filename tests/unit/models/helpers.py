"""Helpers shared by the tests of ``speechmapper_plugin.models``."""

import random
import shutil

import torch

from speechmapper_plugin.models.speechmapper import (
    SpeechMapper,
)

WORDS = (
    "the of and to in he was that it his her you as had with for she not at but be my on "
    "have him is said me which by so this all from they no were if would or when what there "
    "been one could very an who them mister we now more out do are up their your will little "
    "than then some into any well much about time know should man did like upon such never "
    "only good how before other see must am own come down say after think made might being "
    "mistress again great two can go over too without where first long house old hand eyes"
).split()


EMBED_NAME = "model.embed_tokens.weight"


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_corpus(num_sentences=150, seed=0):
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(num_sentences)
    ]


def fake_hub_cache(cache_dir, repo_id, source, files):
    """Lays ``files`` of ``source`` out as a cached hub snapshot of ``repo_id``."""
    storage = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(COMMIT)
    for name in files:
        shutil.copy(source / name, snapshot / name)
    return snapshot


def tokenizer_files(source):
    return [
        path.name
        for path in source.iterdir()
        if path.name.startswith(("tokenizer", "special_tokens", "chat_template"))
        or path.name in ("config.json", "generation_config.json")
    ]


TINY = dict(input_dim=8, block_dims=[8], output_dims=[8], num_layers=1, nhead=2)


def _tiny(seed):
    torch.manual_seed(seed)
    return SpeechMapper(**TINY)
