"""Tests of ``speechmapper_plugin.data.samplers``: global plans of optimizer steps shared by
the processes, epochs in a new order, mixtures, interleaved speech/text batches aligned on
every process, sharded evaluation batches, and the stage-1 loader settings."""

import collections

import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch

from speechmapper_plugin.data.datasets import load_asr_dataset
from speechmapper_plugin.data.samplers import (
    EpochBatchSampler,
    InterleavedBatchSampler,
    ShardedEvalBatchSampler,
    TaskMixtureBatchSampler,
    train_loader_kwargs,
)

from .helpers import DIM, UTTS, _cache, _manifest


@pytest.fixture
def dataset(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", UTTS)
    return load_asr_dataset(_manifest(tmp_path / "m.csv", UTTS), cache, tokenizer)


def _lengths(data):
    return [UTTS[i][1] for i in data.data_ids]


def _durations(data, order):
    return [UTTS[data.data_ids[i]][0] for i in order]


def test_sorting(dataset):
    hparams = {
        "train_dataloader_opts": {"batch_size": 16, "num_workers": 0},
        "batch_size": 2,
        "batches_per_step": 1,
        "sorting": "ascending",
    }
    data, opts = train_loader_kwargs(dataset, hparams, _lengths(dataset))
    order = [i for b in opts["batch_sampler"] for i in b]
    assert data is dataset and _durations(data, order) == [0.5, 1.0, 2.0, 3.0, 4.5]
    assert set(opts) == {"batch_sampler", "num_workers"}
    assert [len(b) for b in opts["batch_sampler"]] == [2, 2, 1]
    _, opts = train_loader_kwargs(dataset, {**hparams, "sorting": "descending"}, _lengths(dataset))
    order = [i for b in opts["batch_sampler"] for i in b]
    assert _durations(dataset, order) == [4.5, 3.0, 2.0, 1.0, 0.5]
    assert hparams["train_dataloader_opts"] == {"batch_size": 16, "num_workers": 0}  # unchanged


def test_bad_sorting_value(dataset):
    hparams = {"train_dataloader_opts": {}, "sorting": "shortest", "batches_per_step": 1}
    with pytest.raises(ValueError, match="sorting='shortest' is not supported"):
        train_loader_kwargs(dataset, {**hparams, "batch_size": 2}, _lengths(dataset))
    with pytest.raises(ValueError, match="sorting='shortest'"):
        train_loader_kwargs(
            dataset, {**hparams, "dynamic_batching": True, "batch_vectors": 9}, _lengths(dataset)
        )


def test_dynamic_batches_hold_at_most_the_vector_budget_padding_included(dataset):
    hparams = {
        "train_dataloader_opts": {"batch_size": 2, "shuffle": True, "num_workers": 0},
        "dynamic_batching": True,
        "batch_vectors": 9,
        "batches_per_step": 1,
        "num_buckets": 2,
    }
    _, opts = train_loader_kwargs(dataset, hparams, _lengths(dataset))
    sampler = opts["batch_sampler"]
    lengths = _lengths(dataset)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(dataset)))
    assert len(batches) > 1
    for batch in batches:
        assert max(lengths[i] for i in batch) * len(batch) <= 9 or len(batch) == 1
    loader = torch.utils.data.DataLoader(dataset, collate_fn=PaddedBatch, **opts)
    feats, _ = next(iter(loader)).feats
    assert feats.shape[2] == DIM


LENGTHS = [5 + (7 * i) % 40 for i in range(101)]


@pytest.mark.parametrize("batches_per_step", [1, 2, 4])
def test_epochs_train_every_utterance_once_in_a_new_order(batches_per_step):
    sampler = EpochBatchSampler(LENGTHS, batches_per_step, batch_vectors=240, num_buckets=5)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        plan = sampler.plan()
        assert all(len(step) == batches_per_step for step in plan)
        assert all(step_batch for step in plan for step_batch in step)  # no empty micro-batch
        order = [i for step in plan for b in step for i in b]
        assert sorted(order) == list(range(101))  # each utterance exactly once per epoch
        orders.append(order)
    assert orders[0] != orders[1] != orders[2]  # a new order each epoch
    again = EpochBatchSampler(LENGTHS, batches_per_step, batch_vectors=240, num_buckets=5)
    again.set_epoch(1)
    assert [i for step in again.plan() for b in step for i in b] == orders[1]  # (seed, epoch)


def test_processes_share_each_step_of_the_one_process_plan():
    kwargs = {"batch_vectors": 240, "num_buckets": 5, "seed": 3}
    one = EpochBatchSampler(LENGTHS, 4, **kwargs)
    one.set_epoch(2)
    plan = one.plan()
    assert list(one) == [b for step in plan for b in step] and len(one) == 4 * len(plan)
    for world in (2, 4):
        shares = [
            EpochBatchSampler(LENGTHS, 4, num_replicas=world, rank=r, **kwargs)
            for r in range(world)
        ]
        for share in shares:
            share.set_epoch(2)
        got = [list(share) for share in shares]
        per = 4 // world
        assert all(len(g) == len(plan) * per for g in got)  # as many micro-batches each
        for k, step in enumerate(plan):  # step k = the processes' k-th shares, in rank order
            assert [b for g in got for b in g[k * per : (k + 1) * per]] == step


def test_a_step_that_processes_cannot_share_is_an_error():
    with pytest.raises(ValueError, match="batches_per_step=4 micro-batches .* 3 processes"):
        EpochBatchSampler(LENGTHS, 4, batch_vectors=240, num_replicas=3, rank=0)
    with pytest.raises(ValueError, match="3 training utterance\\(s\\) cannot fill the 4"):
        EpochBatchSampler([5, 6, 7], 4, batch_size=1).plan()


def test_a_short_last_step_is_split_not_dropped():
    sampler = EpochBatchSampler(list(range(1, 12)), 4, batch_size=2, order="ascending")
    plan = sampler.plan()  # 6 micro-batches of <= 2: one full step, then 3 utterances left
    assert [len(step) for step in plan] == [4]
    assert sorted(i for step in plan for b in step for i in b) == list(range(11))
    sampler = EpochBatchSampler(list(range(1, 14)), 4, batch_size=2, order="ascending")
    assert [[len(b) for b in step] for step in sampler.plan()] == [[2, 2, 2, 2], [2, 1, 1, 1]]


GROUPS = {"asr": list(range(0, 50)), "sqa": list(range(50, 60))}


def test_mixture_on_two_processes_shares_the_one_process_steps():
    make = lambda **kw: list(  # noqa: E731
        TaskMixtureBatchSampler(
            GROUPS, {"asr": 0.5, "sqa": 0.5}, 3, 7, seed=1, batches_per_step=2, **kw
        )
    )
    one = make()
    two = [make(num_replicas=2, rank=r) for r in (0, 1)]
    assert len(one) == 14 and len(two[0]) == len(two[1]) == 7
    assert one[0::2] == two[0] and one[1::2] == two[1]


SPEECH_TEXT = {
    "asr-en": list(range(0, 30)),
    "st-de": list(range(30, 50)),
    "text:st-de": list(range(100, 140)),
}


def _kind(batch):
    return "asr" if batch[0] < 30 else "st" if batch[0] < 100 else "mt"


@pytest.mark.parametrize("world", [1, 2, 4])
def test_interleaved_batches_have_the_same_kind_on_every_process(world):
    shares = [
        list(
            InterleavedBatchSampler(
                SPEECH_TEXT,
                {"asr-en": 0.5, "st-de": 0.5},
                {"st-de": "text:st-de"},
                batch_size=2,
                num_steps=12,
                seed=5,
                batches_per_step=4,
                num_replicas=world,
                rank=r,
            )
        )
        for r in range(world)
    ]
    kinds = [[_kind(b) for b in share] for share in shares]
    assert all(len(k) == 12 * 4 // world for k in kinds)
    assert all(k == kinds[0] for k in kinds)  # same kind on every process, every micro-step
    for before, after in zip(kinds[0], kinds[0][1:]):
        assert (before == "st") == (after == "mt")  # each ST batch, then its MT batch
    assert collections.Counter(kinds[0])["asr"] > 0 and "mt" in kinds[0]
    assert all(share != shares[0] for share in shares[1:])  # each process its own batches


def test_sharded_evaluation_batches_are_the_one_process_batches():
    one = list(ShardedEvalBatchSampler(11, 3, num_replicas=1, rank=0))
    shares = [list(ShardedEvalBatchSampler(11, 3, num_replicas=3, rank=r)) for r in range(3)]
    assert one == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]
    assert sorted(b for share in shares for b in share) == one
    assert shares[1] == [[3, 4, 5]]
