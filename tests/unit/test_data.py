"""Tests for speechmapper_plugin.data.datasets: manifests, the cached-feature ASR dataset and the
training loader options."""

import csv
import logging
import os

import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataio import load_data_csv
from speechbrain.dataio.sampler import DynamicBatchSampler, ReproducibleRandomSampler

from speechmapper_plugin.data.datasets import dataio_prepare, load_asr_dataset
from speechmapper_plugin.data.manifests import manifest_path, write_csv
from speechmapper_plugin.data.samplers import fixed_steps_loader_kwargs, train_loader_kwargs
from speechmapper_plugin.features.cache import FeatureCache, FeatureCacheWriter
from speechmapper_plugin.tiny.llm import train_tokenizer

FIELDS = ["ID", "duration", "wav", "spk_id", "wrd"]
DIM = 4
UTTS = {  # id: (duration, frames, text)
    "s1-c1-0001": (3.0, 6, "the cat sat on the mat"),
    "s1-c1-0002": (1.0, 2, "a dog ran"),
    "s2-c1-0001": (2.0, 4, "hello world"),
    "s2-c1-0002": (4.5, 9, "the dog sat"),
    "s3-c2-0001": (0.5, 1, "far away"),
}
LOGGER = "speechmapper_plugin.data.datasets"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([text for _, _, text in UTTS.values()])


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


# ------------------------------------------------------------------------------------------
# write_csv
# ------------------------------------------------------------------------------------------


def test_write_csv_content_and_read_back(tmp_path):
    path = tmp_path / "deep" / "x.csv"
    rows = [
        {"ID": "a", "duration": 1.5, "wrd": "hello, world", "extra": "ignored"},
        {"ID": "b", "duration": 2, "wrd": 'say "hi"'},
    ]
    write_csv(str(path), rows, ["ID", "duration", "wrd"])
    assert path.read_text(encoding="utf-8").splitlines() == [
        "ID,duration,wrd",
        'a,1.5,"hello, world"',
        'b,2,"say ""hi"""',
    ]
    loaded = load_data_csv(str(path))
    assert loaded["a"]["wrd"] == "hello, world" and loaded["b"]["wrd"] == 'say "hi"'
    assert loaded["a"]["duration"] == 1.5
    assert os.listdir(path.parent) == ["x.csv"]  # no temporary file left behind


def test_write_csv_replaces_atomically_and_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "x.csv"
    write_csv(str(path), [{"ID": "a", "n": 1}], ["ID", "n"])
    inode = path.stat().st_ino
    write_csv(str(path), [{"ID": "b", "n": 2}], ["ID", "n"])
    assert path.read_text() == "ID,n\nb,2\n"
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    with pytest.raises(KeyError):
        write_csv(str(path), [{"ID": "c", "n": 3}, {"ID": "d"}], ["ID", "n"])
    assert path.read_text() == "ID,n\nb,2\n"
    assert os.listdir(tmp_path) == ["x.csv"]


def test_write_csv_requires_id_first(tmp_path):
    with pytest.raises(ValueError, match="first column must be 'ID'"):
        write_csv(str(tmp_path / "x.csv"), [], ["duration", "ID"])


def test_manifest_path():
    assert manifest_path("/m", "dev-clean") == os.path.join("/m", "dev-clean.csv")


# ------------------------------------------------------------------------------------------
# load_asr_dataset
# ------------------------------------------------------------------------------------------


def test_dataset_items(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", UTTS)
    data = load_asr_dataset(_manifest(tmp_path / "m.csv", UTTS), cache, tokenizer)
    assert len(data) == len(UTTS)
    items = {item["id"]: item for item in data}
    assert set(items) == set(UTTS)
    for utt_id, item in items.items():
        assert set(item) == {"id", "feats", "wrd", "tokens", "num_tokens"}
        assert item["feats"].dtype == torch.float32
        assert torch.equal(item["feats"], _feats(utt_id))
        assert item["wrd"] == UTTS[utt_id][2]
        expected = tokenizer.encode(UTTS[utt_id][2], add_special_tokens=False)
        assert item["tokens"].dtype == torch.long
        assert item["tokens"].tolist() == expected
        assert tokenizer.bos_token_id not in expected  # no special tokens in the target
        assert item["num_tokens"] == len(expected)
        assert tokenizer.decode(item["tokens"]) == UTTS[utt_id][2]


def test_other_text_column(tmp_path, tokenizer):
    rows = [{"ID": i, "duration": 1.0, "raw": "HELLO"} for i in UTTS]
    path = tmp_path / "m.csv"
    write_csv(str(path), rows, ["ID", "duration", "raw"])
    cache = _cache(tmp_path / "cache", UTTS)
    item = load_asr_dataset(str(path), cache, tokenizer, text_key="raw")[0]
    assert item["wrd"] == "HELLO"
    with pytest.raises(KeyError, match=r"no column 'wrd' \(has \['duration', 'raw'\]\)"):
        load_asr_dataset(str(path), cache, tokenizer)


def test_utterances_missing_from_the_cache_are_dropped_with_a_warning(tmp_path, tokenizer, caplog):
    kept = ["s1-c1-0001", "s2-c1-0002", "s3-c2-0001"]
    cache = _cache(tmp_path / "cache", kept)
    manifest = _manifest(tmp_path / "m.csv", UTTS)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = load_asr_dataset(manifest, cache, tokenizer)
    assert sorted(item["id"] for item in data) == kept
    assert "2 of 5 utterances have no cached features" in caplog.text
    assert "s1-c1-0002" in caplog.text
    for item in data:  # the remaining items still carry their own features
        assert torch.equal(item["feats"], _feats(item["id"]))


def test_all_utterances_missing_is_an_error(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", ["s1-c1-0001"])
    manifest = _manifest(tmp_path / "m.csv", ["s2-c1-0001", "s2-c1-0002"])
    with pytest.raises(
        ValueError, match="None of the utterances of .*m.csv is in the feature cache"
    ):
        load_asr_dataset(manifest, cache, tokenizer)


def test_several_manifests_are_merged(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", UTTS)
    first = _manifest(tmp_path / "a.csv", ["s1-c1-0001", "s1-c1-0002"])
    second = _manifest(tmp_path / "b.csv", ["s2-c1-0001", "s2-c1-0002", "s3-c2-0001"])
    data = load_asr_dataset([first, second], cache, tokenizer)
    assert sorted(item["id"] for item in data) == sorted(UTTS)


def test_duplicate_ids_across_manifests_are_an_error(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", UTTS)
    first = _manifest(tmp_path / "a.csv", ["s1-c1-0001", "s1-c1-0002"])
    second = _manifest(tmp_path / "b.csv", ["s1-c1-0002", "s2-c1-0001"])
    with pytest.raises(ValueError, match=r"b.csv repeats 1 utterance ID.*\['s1-c1-0002'\]"):
        load_asr_dataset([first, second], cache, tokenizer)


def test_missing_or_empty_manifest(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", UTTS)
    missing = str(tmp_path / "train-clean-100.csv")
    with pytest.raises(FileNotFoundError, match="train-clean-100.csv does not exist.*prepare"):
        load_asr_dataset([_manifest(tmp_path / "a.csv", UTTS), missing], cache, tokenizer)
    empty = tmp_path / "empty.csv"
    empty.write_text("ID,duration,wav,spk_id,wrd\n")
    with pytest.raises(ValueError, match="empty.csv holds no utterance"):
        load_asr_dataset(str(empty), cache, tokenizer)


def test_dataio_prepare(tmp_path, tokenizer):
    _cache(tmp_path / "cache", UTTS)
    folder = tmp_path / "manifests"
    folder.mkdir()
    _manifest(folder / "train-a.csv", ["s1-c1-0001", "s1-c1-0002"])
    _manifest(folder / "train-b.csv", ["s2-c1-0001"])
    _manifest(folder / "dev.csv", ["s2-c1-0002"])
    _manifest(folder / "test.csv", ["s3-c2-0001"])
    hparams = {
        "feature_folder": str(tmp_path / "cache"),
        "feature_dim": DIM,
        "manifest_folder": str(folder),
        "train_splits": ["train-a", "train-b"],
        "valid_split": "dev",
        "test_splits": ["test"],
    }
    train, valid, tests = dataio_prepare(hparams, tokenizer)
    assert len(train) == 3 and len(valid) == 1 and list(tests) == ["test"]
    assert tests["test"][0]["id"] == "s3-c2-0001"
    with pytest.raises(
        ValueError, match=f"feature_dim=80 .* holds {DIM}-dim .*--feature_dim={DIM}"
    ):
        dataio_prepare({**hparams, "feature_dim": 80}, tokenizer)


# ------------------------------------------------------------------------------------------
# Loader options
# ------------------------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", UTTS)
    return load_asr_dataset(_manifest(tmp_path / "m.csv", UTTS), cache, tokenizer)


def _durations(data):
    with data.output_keys_as(["id"]):
        return [UTTS[item["id"]][0] for item in data]


def test_sorting(dataset):
    hparams = {"train_dataloader_opts": {"batch_size": 2, "num_workers": 0}, "sorting": "ascending"}
    data, opts = train_loader_kwargs(dataset, hparams)
    assert _durations(data) == [0.5, 1.0, 2.0, 3.0, 4.5]
    assert opts == {"batch_size": 2, "num_workers": 0, "shuffle": False}
    data, opts = train_loader_kwargs(dataset, {**hparams, "sorting": "descending"})
    assert _durations(data) == [4.5, 3.0, 2.0, 1.0, 0.5]
    assert opts["shuffle"] is False
    data, opts = train_loader_kwargs(dataset, {**hparams, "sorting": "random"})
    assert data is dataset and opts["shuffle"] is True
    assert hparams["train_dataloader_opts"] == {"batch_size": 2, "num_workers": 0}  # not mutated


def test_bad_sorting_value(dataset):
    hparams = {"train_dataloader_opts": {"batch_size": 2}, "sorting": "shortest"}
    with pytest.raises(ValueError, match="sorting='shortest' is not supported"):
        train_loader_kwargs(dataset, hparams)
    with pytest.raises(ValueError, match="sorting='shortest'"):
        train_loader_kwargs(dataset, {**hparams, "dynamic_batching": True})


def test_dynamic_batching_returns_a_batch_sampler(dataset):
    opts_in = {"batch_size": 2, "shuffle": True, "num_workers": 0}
    hparams = {
        "train_dataloader_opts": opts_in,
        "dynamic_batching": True,
        "dynamic_batch_sampler": {
            "max_batch_length": 5.0,
            "num_buckets": 2,
            "shuffle": False,
            "batch_ordering": "ascending",
        },
    }
    data, opts = train_loader_kwargs(dataset, hparams)
    assert data is dataset
    assert set(opts) == {"batch_sampler", "num_workers"}
    assert opts_in == {"batch_size": 2, "shuffle": True, "num_workers": 0}  # not mutated
    sampler = opts["batch_sampler"]
    assert isinstance(sampler, DynamicBatchSampler)
    durations = [UTTS[dataset.data_ids[i]][0] for i in range(len(dataset))]
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(len(dataset)))
    assert len(batches) > 1
    for batch in batches:
        assert sum(durations[i] for i in batch) <= 5.0


def test_fixed_steps_draws_exactly_num_samples(dataset):
    hparams = {
        "seed": 3,
        "train_dataloader_opts": {"batch_size": 2, "shuffle": True, "num_workers": 0},
    }
    opts = fixed_steps_loader_kwargs(dataset, hparams, num_samples=3)
    assert "shuffle" not in opts and opts["batch_size"] == 2
    assert hparams["train_dataloader_opts"]["shuffle"] is True  # not mutated
    sampler = opts["sampler"]
    assert isinstance(sampler, ReproducibleRandomSampler)
    drawn = list(sampler)
    assert len(drawn) == 3 and len(set(drawn)) == 3  # without replacement when possible
    again = list(fixed_steps_loader_kwargs(dataset, hparams, num_samples=3)["sampler"])
    assert again == drawn  # reproducible for a seed

    opts = fixed_steps_loader_kwargs(dataset, hparams, num_samples=12)  # more than the data
    loader = torch.utils.data.DataLoader(dataset, collate_fn=PaddedBatch, **opts)
    batches = list(loader)
    assert [len(b.id) for b in batches] == [2] * 6
    ids = [i for b in batches for i in b.id]
    assert len(ids) == 12 and set(ids) <= set(UTTS)
    feats, lens = batches[0].feats
    assert feats.shape[0] == 2 and feats.shape[2] == DIM and lens.max() == 1.0


def test_csv_module_reads_what_write_csv_writes(tmp_path):
    path = _manifest(tmp_path / "m.csv", UTTS)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["ID"] for r in rows] == list(UTTS)
    assert rows[0] == {k: str(v) for k, v in _rows(UTTS)[0].items()}
