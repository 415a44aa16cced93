"""Tests of ``speechmapper_plugin.data.samplers`` (batch samplers and loader settings)."""

import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.sampler import DynamicBatchSampler, ReproducibleRandomSampler

from speechmapper_plugin.data.datasets import load_asr_dataset
from speechmapper_plugin.data.samplers import fixed_steps_loader_kwargs, train_loader_kwargs

from .helpers import DIM, UTTS, _cache, _manifest


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
